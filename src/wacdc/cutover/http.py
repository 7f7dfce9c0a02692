"""POST /cutover: a cutover request over HTTP, behind the admin token."""

from __future__ import annotations

import hmac
from typing import Any

from wacdc.config import Settings
from wacdc.cutover.control import request
from wacdc.log import get_logger
from wacdc.observe.http import PostHandler
from wacdc.sink.pool import TargetPool

log = get_logger("wacdc.cutover")


def http_endpoint(settings: Settings, pool: TargetPool) -> PostHandler:
    """POST /cutover: Authorization: Bearer $WACDC_ADMIN_TOKEN (401 without, 403 wrong)."""

    def handle(headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization")
        if not auth:
            return 401, {"error": "Authorization: Bearer <WACDC_ADMIN_TOKEN> is required"}
        if settings.admin_token is None:
            return 403, {"error": "POST /cutover is off: WACDC_ADMIN_TOKEN is not set"}
        scheme, _, given = auth.strip().partition(" ")
        expected = settings.admin_token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                  expected):
            return 403, {"error": "wrong token"}
        with pool.connection() as conn:
            cutover_id = request(conn, "POST /cutover")
        log.info("cutover requested over HTTP", cutover=cutover_id)
        return 202, {"cutover": cutover_id, "status": "requested",
                     "follow": "GET /status, or `wacdc cutover --wait`"}
    return handle
