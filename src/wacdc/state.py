"""wacdc's own state in the target's `wacdc` schema: phase, checkpoint, snapshot progress.

Living next to the data means a data change and the progress that covers it commit
in one PostgreSQL transaction, and `wacdc status` can read it from anywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from wacdc.source.position import BinlogPosition

STATE_SCHEMA = "wacdc"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA};
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.state (
    id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    phase text NOT NULL,
    source_database text,
    binlog_file text,          -- the checkpoint: end of the last applied source transaction
    binlog_pos bigint,
    gtid text,
    last_error text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.snapshot_tables (
    table_name text PRIMARY KEY,
    status text NOT NULL,      -- pending, copying, loaded (rows in, indexes pending), done
    view_id text,              -- the consistent read view the rows came from
    binlog_file text,          -- that view's binlog position: later changes come from the binlog
    binlog_pos bigint,
    gtid text,
    rows_copied bigint NOT NULL DEFAULT 0,
    rows_estimated bigint,
    chunks integer NOT NULL DEFAULT 0,
    last_key text,
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.snapshot_views (
    view_id text PRIMARY KEY,
    binlog_file text NOT NULL,
    binlog_pos bigint NOT NULL,
    gtid text,
    method text NOT NULL,
    write_pause_seconds double precision NOT NULL,
    opened_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass
class TableProgress:
    table: str
    status: str
    view_id: str | None
    position: BinlogPosition | None
    rows_copied: int
    rows_estimated: int | None
    chunks: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


def ensure_schema(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute(_DDL)  # type: ignore[arg-type]


def get_phase(conn: psycopg.Connection) -> str | None:
    row = conn.execute(f"SELECT phase FROM {STATE_SCHEMA}.state WHERE id = 1").fetchone()
    return row[0] if row else None


def set_phase(conn: psycopg.Connection, phase: str, source_database: str | None = None,
              error: str | None = None) -> None:
    conn.execute(
        f"INSERT INTO {STATE_SCHEMA}.state (id, phase, source_database, last_error) "
        "VALUES (1, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET phase = EXCLUDED.phase, "
        "source_database = COALESCE(EXCLUDED.source_database, state.source_database), "
        "last_error = EXCLUDED.last_error, updated_at = now()",
        (phase, source_database, error))


def get_checkpoint(conn: psycopg.Connection) -> BinlogPosition | None:
    row = conn.execute(f"SELECT binlog_file, binlog_pos, gtid FROM {STATE_SCHEMA}.state "
                       "WHERE id = 1").fetchone()
    if row is None or row[0] is None:
        return None
    return BinlogPosition(row[0], int(row[1]), row[2])


def set_checkpoint(conn: psycopg.Connection, position: BinlogPosition) -> None:
    """Call inside the transaction that applies the data up to `position`."""
    conn.execute(f"UPDATE {STATE_SCHEMA}.state SET binlog_file = %s, binlog_pos = %s, "
                 "gtid = %s, updated_at = now() WHERE id = 1",
                 (position.file, position.pos, position.gtid))


def snapshot_progress(conn: psycopg.Connection) -> dict[str, TableProgress]:
    rows = conn.execute(
        "SELECT table_name, status, view_id, binlog_file, binlog_pos, gtid, rows_copied, "
        f"rows_estimated, chunks, started_at, finished_at FROM {STATE_SCHEMA}.snapshot_tables"
    ).fetchall()
    result = {}
    for name, status, view, file, pos, gtid, copied, estimated, chunks, started, finished \
            in rows:
        position = BinlogPosition(file, int(pos), gtid) if file else None
        result[name] = TableProgress(name, status, view, position, copied, estimated, chunks,
                                     started, finished)
    return result


def register_tables(conn: psycopg.Connection, estimates: dict[str, int]) -> None:
    for table, estimate in estimates.items():
        conn.execute(
            f"INSERT INTO {STATE_SCHEMA}.snapshot_tables (table_name, status, rows_estimated) "
            "VALUES (%s, 'pending', %s) ON CONFLICT (table_name) DO UPDATE "
            "SET rows_estimated = EXCLUDED.rows_estimated", (table, estimate))


def record_view(conn: psycopg.Connection, view_id: str, position: BinlogPosition, method: str,
                pause_seconds: float) -> None:
    conn.execute(
        f"INSERT INTO {STATE_SCHEMA}.snapshot_views (view_id, binlog_file, binlog_pos, gtid, "
        "method, write_pause_seconds) VALUES (%s, %s, %s, %s, %s, %s)",
        (view_id, position.file, position.pos, position.gtid, method, pause_seconds))


def start_table(conn: psycopg.Connection, table: str, view_id: str,
                position: BinlogPosition) -> None:
    conn.execute(
        f"UPDATE {STATE_SCHEMA}.snapshot_tables SET status = 'copying', view_id = %s, "
        "binlog_file = %s, binlog_pos = %s, gtid = %s, rows_copied = 0, chunks = 0, "
        "last_key = NULL, started_at = now(), finished_at = NULL, updated_at = now() "
        "WHERE table_name = %s", (view_id, position.file, position.pos, position.gtid, table))


def chunk_done(conn: psycopg.Connection, table: str, rows: int, last_key: str) -> None:
    conn.execute(
        f"UPDATE {STATE_SCHEMA}.snapshot_tables SET rows_copied = rows_copied + %s, "
        "chunks = chunks + 1, last_key = %s, updated_at = now() WHERE table_name = %s",
        (rows, last_key, table))


def set_table_status(conn: psycopg.Connection, table: str, status: str) -> None:
    finished = ", finished_at = now()" if status == "done" else ""
    conn.execute(f"UPDATE {STATE_SCHEMA}.snapshot_tables SET status = %s, updated_at = now()"
                 f"{finished} WHERE table_name = %s", (status, table))
