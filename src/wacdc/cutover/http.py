"""POST /cutover and POST /rollback: requests over HTTP, behind the admin token."""

from __future__ import annotations

import hmac
import math
from typing import Any
from urllib.parse import parse_qs

from wacdc.config import Settings
from wacdc.cutover.control import CUTOVER, ROLLBACK, request
from wacdc.log import get_logger
from wacdc.observe.http import PostHandler
from wacdc.sink.pool import TargetPool
from wacdc.sink.state import get_phase

log = get_logger("wacdc.cutover")
TRUE, FALSE = ("1", "true", "yes", "on", ""), ("0", "false", "no", "off")


def http_endpoint(settings: Settings, pool: TargetPool, kind: str = CUTOVER) -> PostHandler:
    """POST /<kind>: Authorization: Bearer $WACDC_ADMIN_TOKEN (401 without, 403 wrong)."""

    def handle(headers: dict[str, str], query: str) -> tuple[int, dict[str, Any]]:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization")
        if not auth:
            return 401, {"error": "Authorization: Bearer <WACDC_ADMIN_TOKEN> is required"}
        if settings.admin_token is None:
            return 403, {"error": f"POST /{kind} is off: WACDC_ADMIN_TOKEN is not set"}
        scheme, _, given = auth.strip().partition(" ")
        expected = settings.admin_token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                  expected):
            return 403, {"error": "wrong token"}
        with pool.connection() as conn:
            if kind == ROLLBACK and get_phase(conn) == "bridge":
                return 409, {"error": "a bridge window is open: close it first (wacdc "
                                      "cutover --close-bridge), then roll back"}
            if kind == ROLLBACK and get_phase(conn) not in ("done", "reverse", "rollback"):
                return 409, {"error": "nothing to roll back: no cutover is done (MySQL is "
                                      "the primary)"}
            bridge_max = _bridge_of(query, settings) if kind == CUTOVER else None
            if isinstance(bridge_max, str):
                return 400, {"error": bridge_max}
            request_id = request(conn, f"POST /{kind}", kind, bridge_max)
        log.info(f"{kind} requested over HTTP", **{kind: request_id})
        return 202, {kind: request_id, "status": "requested",
                     "follow": f"GET /status, or `wacdc {kind} --wait`"}
    return handle


def _bridge_of(query: str, settings: Settings) -> float | str | None:
    """`POST /cutover?bridge=1` (and `&bridge_max=600`) asks for a bridge window,
    `?bridge=0` for none (WACDC_CUTOVER_BRIDGE=1 makes one the default); a string: what
    is wrong with the query."""
    asked = parse_qs(query, keep_blank_values=True)
    limit_text = asked.get("bridge_max", [None])[0]
    limit = None
    if limit_text is not None:
        try:
            limit = float(limit_text)
        except ValueError:
            limit = -1.0
        if not (limit > 0 and math.isfinite(limit)):
            return ("bridge_max is a number of seconds > 0 "
                    "(POST /cutover?bridge=1&bridge_max=600)")
    flag = asked.get("bridge", [None])[0]
    if flag is not None and flag.lower() not in TRUE + FALSE:
        return "bridge is 1 or 0 (POST /cutover?bridge=1)"
    wanted = flag.lower() in TRUE if flag is not None else (
        limit is not None or settings.cutover_bridge)
    return float(limit or settings.bridge_max) if wanted else None
