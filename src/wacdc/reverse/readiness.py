"""Can reverse replication run here? Asked by `wacdc check` and before the cutover's
freeze (a cutover whose way back cannot be set up is refused, not half-done)."""

from __future__ import annotations

import psycopg
import pymysql

from wacdc.config import Settings
from wacdc.reverse.capture import relation
from wacdc.source.connection import connect
from wacdc.source.grants import has_privilege, parse_grants

MIN_PG_VERSION = 130000  # pg_current_snapshot(), pg_visible_in_snapshot(), xid8
# What reverse replication and the rollback do in the MySQL database: write the retired
# tables, keep a checkpoint table, rename the tables back.
MYSQL_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER")


def target_problems(conn: psycopg.Connection, schema: str, tables: list[str]) -> list[str]:
    """What keeps the capture triggers (and the rollback's fence) off these tables."""
    problems = []
    version = conn.info.server_version
    if version < MIN_PG_VERSION:
        problems.append(f"PostgreSQL {version // 10000} is too old for the capture "
                        "(PostgreSQL 13 or newer)")
    rows = conn.execute(
        "SELECT t, has_table_privilege(to_regclass(t), 'TRIGGER') FROM unnest(%s::text[]) t "
        "WHERE to_regclass(t) IS NOT NULL",
        ([relation(schema, t).as_string(conn) for t in tables],)).fetchall()
    lacking = [str(t) for t, ok in rows if not ok]
    if lacking:
        problems.append(f"user {conn.info.user} may not create triggers on "
                        f"{', '.join(lacking[:5])}{' ...' if len(lacking) > 5 else ''} "
                        f"(GRANT TRIGGER ON ALL TABLES IN SCHEMA {schema} TO "
                        f"{conn.info.user})")
    return problems


def source_problems(conn: pymysql.connections.Connection, database: str) -> list[str]:
    """The MySQL privileges reverse replication and the rollback need and lack."""
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        grants = parse_grants([row[0] for row in cur.fetchall()])
    missing = [p for p in MYSQL_PRIVILEGES if not has_privilege(grants, p, database)]
    return [f"the source user lacks {', '.join(missing)} on {database} (reverse "
            "replication writes the retired tables; the rollback renames them back)"
            ] if missing else []


def problems(settings: Settings, target: psycopg.Connection, tables: list[str]) -> list[str]:
    """Everything that keeps reverse replication from running (both servers)."""
    with connect(settings.source()) as source:
        found = source_problems(source, settings.source().database)
    return found + target_problems(target, settings.target_schema, tables)


def stale_slots(conn: psycopg.Connection) -> list[tuple[str, int]]:
    """Replication slots named wacdc* that nothing reads: (name, WAL bytes they retain).
    wacdc's capture uses none; one left by a tool or an older setup fills the disk."""
    rows = conn.execute(
        "SELECT slot_name, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0) "
        "FROM pg_replication_slots WHERE slot_name LIKE 'wacdc%' AND NOT active").fetchall()
    return [(str(name), int(held)) for name, held in rows]
