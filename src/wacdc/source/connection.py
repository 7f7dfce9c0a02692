"""Connections to the MySQL/MariaDB source and the facts about the server we need."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.converters
import pymysql.cursors

from wacdc.config import DatabaseUrl
from wacdc.errors import ConnectError
from wacdc.log import redact


@dataclass(frozen=True)
class ServerInfo:
    version: str  # as reported, e.g. "10.11.19-MariaDB-0+deb12u1-log"
    is_mariadb: bool

    @property
    def flavour(self) -> str:
        return "MariaDB" if self.is_mariadb else "MySQL"

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        match = re.match(r"(\d+)\.(\d+)\.(\d+)", self.version)
        if not match:
            return (0, 0, 0)
        major, minor, patch = match.groups()
        return int(major), int(minor), int(patch)

    def __str__(self) -> str:
        return f"{self.flavour} {'.'.join(map(str, self.version_tuple))}"


def connection_kwargs(url: DatabaseUrl, database: str | None = None) -> dict[str, Any]:
    """PyMySQL keyword arguments for a URL (also what mysql-replication takes)."""
    return {
        "host": url.host,
        "port": url.port,
        "user": url.user,
        "password": url.password,
        "database": url.database if database is None else (database or None),
        "charset": "utf8mb4",
    }


# Encoders only, no decoders: every value arrives as MySQL's text (bytes for binary
# columns). Twice as fast as PyMySQL's conversions, and the text is what COPY parses.
TEXT_CONVERSIONS = {k: v for k, v in pymysql.converters.conversions.items()
                    if not isinstance(k, int)}


def connect(url: DatabaseUrl, *, database: str | None = None, autocommit: bool = True,
            connect_timeout: float = 10, read_timeout: float | None = None,
            cursorclass: type = pymysql.cursors.Cursor,
            text_values: bool = False) -> pymysql.connections.Connection:
    """Open a utf8mb4, UTC session; ConnectError (one line, no password) when it fails."""
    extra: dict[str, Any] = {"conv": TEXT_CONVERSIONS} if text_values else {}
    try:
        conn = pymysql.connect(
            **extra,
            **connection_kwargs(url, database),
            autocommit=autocommit,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            cursorclass=cursorclass,
            # TIMESTAMP values come back in UTC, as the binlog carries them.
            init_command="SET time_zone = '+00:00'",
        )
    except pymysql.err.MySQLError as exc:
        raise ConnectError(
            f"cannot connect to the source {url.redacted}: {redact(_mysql_message(exc))}"
        ) from None
    return conn


def _mysql_message(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[1], str):
        return f"({args[0]}) {args[1]}"
    return str(exc) or type(exc).__name__


def server_info(conn: pymysql.connections.Connection) -> ServerInfo:
    version = query_value(conn, "SELECT VERSION()")
    return ServerInfo(version=str(version), is_mariadb="mariadb" in str(version).lower())


def query_value(conn: pymysql.connections.Connection, sql: str, args: Any = None) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    return None if row is None else row[0]


def global_variables(conn: pymysql.connections.Connection, names: list[str]) -> dict[str, str]:
    """Global server variables by name (lower case); missing ones are absent from the dict."""
    placeholders = ", ".join(["%s"] * len(names))
    with conn.cursor() as cur:
        cur.execute(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({placeholders})", names)
        return {str(name).lower(): str(value) for name, value in cur.fetchall()}


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
