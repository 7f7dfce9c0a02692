"""The target: reachable, recent enough, and the privileges wacdc needs there."""

from __future__ import annotations

from collections.abc import Iterator

from wacdc.check.findings import OK, PROBLEM, WARN, Finding
from wacdc.check.transport import target_transport_checks
from wacdc.config import Settings
from wacdc.sink.connection import connect_target

MIN_PG_VERSION = 120000


def target_checks(settings: Settings, allow_plaintext: bool = False) -> Iterator[Finding]:
    url = settings.target()
    conn = connect_target(url, autocommit=True)  # unreachable: ConnectError, exit 2
    with conn:
        version = conn.info.server_version
        pretty = f"PostgreSQL {version // 10000}.{version % 10000}"
        if version < MIN_PG_VERSION:
            yield Finding(PROBLEM, "target reachable", f"{pretty} at {url.redacted} is too old",
                          "use PostgreSQL 12 or newer (Railway offers 15/16)")
        else:
            yield Finding(OK, "target reachable", f"{pretty} at {url.redacted}")
        yield from target_transport_checks(settings, conn, url, allow_plaintext)
        schema = settings.target_schema
        row = conn.execute(
            "SELECT has_database_privilege(current_database(), 'CREATE'), "
            "(SELECT has_schema_privilege(n.oid, 'CREATE') FROM pg_namespace n "
            " WHERE n.nspname = %s), "
            "has_database_privilege(current_database(), 'TEMP')", (schema,)).fetchone()
        can_create_db, can_create_in_schema, can_temp = row  # type: ignore[misc]
        if can_create_in_schema or (can_create_in_schema is None and can_create_db):
            yield Finding(OK, "target privileges", f"can create tables in schema {schema} and "
                          "the wacdc state schema" if can_create_db else
                          f"can create tables in schema {schema}")
        else:
            yield Finding(PROBLEM, "target privileges",
                          f"user {url.user} cannot create objects in schema {schema}",
                          f"GRANT CREATE ON DATABASE {url.database} TO {url.user}; "
                          f"GRANT CREATE ON SCHEMA {schema} TO {url.user}")
        if not can_temp:
            yield Finding(WARN, "target privileges",
                          "no TEMP privilege; batched apply uses temporary tables",
                          f"GRANT TEMP ON DATABASE {url.database} TO {url.user}")
