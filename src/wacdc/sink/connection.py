"""Connections to the PostgreSQL target."""

from __future__ import annotations

import psycopg

from wacdc.config import DatabaseUrl
from wacdc.errors import ConnectError
from wacdc.log import redact


def connect_target(url: DatabaseUrl, *, autocommit: bool = False,
                   connect_timeout: int = 10) -> psycopg.Connection:
    """Open a UTC session on the target; ConnectError (one line, no password) when it fails."""
    try:
        return psycopg.connect(url.conninfo(), autocommit=autocommit,
                               connect_timeout=connect_timeout,
                               options="-c TimeZone=UTC", application_name="wacdc")
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConnectError(f"cannot connect to the target {url.redacted}: "
                           f"{redact(first_line)}") from None
