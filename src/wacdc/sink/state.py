"""wacdc's own state in the target's `wacdc` schema: phase, checkpoint, snapshot progress.

Living next to the data means a data change and the progress that covers it commit
in one PostgreSQL transaction, and `wacdc status` can read it from anywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from wacdc.events import BinlogPosition

STATE_SCHEMA = "wacdc"
STATE = sql.Identifier(STATE_SCHEMA)


def state_sql(text: str) -> sql.Composed:
    """A statement over wacdc's own tables: `{state}` in `text` is the schema."""
    return sql.SQL(text).format(state=STATE)


_q = state_sql

_DDL = sql.SQL("""
-- Concurrent starts (a deploy overlap) create this schema one at a time.
SELECT pg_advisory_xact_lock(hashtext('wacdc:state-ddl'));
CREATE SCHEMA IF NOT EXISTS {state};
CREATE TABLE IF NOT EXISTS {state}.state (
    id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    phase text NOT NULL,
    source_database text,
    binlog_file text,          -- the checkpoint: end of the last applied source transaction
    binlog_pos bigint,
    gtid text,
    last_error text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {state}.snapshot_tables (
    table_name text PRIMARY KEY,
    status text NOT NULL,      -- pending, copying, loaded (rows in, indexes pending), done
    view_id text,              -- the consistent read view the rows came from
    binlog_file text,          -- that view's binlog position: later changes come from the binlog
    binlog_pos bigint,
    gtid text,
    rows_copied bigint NOT NULL DEFAULT 0,
    rows_estimated bigint,
    chunks integer NOT NULL DEFAULT 0,
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- A table's copy is the unit of resume (docs/operations.md, "Stopped mid-snapshot"):
-- where an unfinished copy stopped is not kept.
ALTER TABLE {state}.snapshot_tables DROP COLUMN IF EXISTS last_key;
-- Liveness and lag as the daemon last saw them, for `wacdc status` from anywhere.
ALTER TABLE {state}.state
    ADD COLUMN IF NOT EXISTS seen_at timestamptz,
    ADD COLUMN IF NOT EXISTS source_head_file text,
    ADD COLUMN IF NOT EXISTS source_head_pos bigint,
    ADD COLUMN IF NOT EXISTS lag_seconds double precision,
    ADD COLUMN IF NOT EXISTS lag_bytes bigint,
    ADD COLUMN IF NOT EXISTS daemon text,
    -- the checkpoint passed every table's snapshot position: no change is skipped any more
    ADD COLUMN IF NOT EXISTS past_snapshot boolean NOT NULL DEFAULT false;
-- Row changes applied per table and operation, committed with the data they count.
CREATE TABLE IF NOT EXISTS {state}.applied_rows (
    table_name text NOT NULL,
    op text NOT NULL,
    rows bigint NOT NULL,
    PRIMARY KEY (table_name, op)
);
-- Cutover requests (the control row: `wacdc cutover`, POST /cutover) and their outcome.
CREATE TABLE IF NOT EXISTS {state}.cutover (
    id bigserial PRIMARY KEY,
    status text NOT NULL,      -- requested, waiting, frozen, bridge, done, refused,
                               -- aborted, abort_requested
    requested_at timestamptz NOT NULL DEFAULT now(),
    requested_by text,
    reason text,
    final_file text,
    final_pos bigint,
    freeze_seconds double precision,
    counts jsonb,
    orphans jsonb,
    fence text,
    extras jsonb,              -- the profile's PostgreSQL extras created after it
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE {state}.cutover ADD COLUMN IF NOT EXISTS extras jsonb;
-- A bridge window (`wacdc cutover --bridge`): its limit in seconds (NULL: no window),
-- the operator's close request, and the window's figures as the daemon last saw them.
ALTER TABLE {state}.cutover ADD COLUMN IF NOT EXISTS bridge_max double precision,
    ADD COLUMN IF NOT EXISTS close_requested_at timestamptz,
    ADD COLUMN IF NOT EXISTS bridge jsonb;
-- Rollback requests (`wacdc rollback`, POST /rollback): the same shape; final_file and
-- final_pos are where forward replication resumes.
CREATE TABLE IF NOT EXISTS {state}.rollback (
    id bigserial PRIMARY KEY,
    status text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    requested_by text,
    reason text,
    final_file text,
    final_pos bigint,
    freeze_seconds double precision,
    counts jsonb,
    orphans jsonb,
    fence text,
    extras jsonb,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The writer fence (wacdc.sink.writer): the current lock holder's epoch, and the
-- deployment (source database, target schema) this database's state belongs to.
CREATE TABLE IF NOT EXISTS {state}.writer (
    id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    epoch bigint NOT NULL,
    holder text NOT NULL,
    deployment text NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION {state}.assert_writer() RETURNS void
LANGUAGE plpgsql AS $fence$
DECLARE
    mine text := nullif(current_setting('wacdc.writer_epoch', true), '');
    current_epoch bigint;
    current_holder text;
BEGIN
    SELECT epoch, holder INTO current_epoch, current_holder
        FROM {state}.writer WHERE id = 1 FOR SHARE;
    IF NOT FOUND THEN
        RETURN;  -- no writer has ever claimed this target
    END IF;
    IF mine IS NULL OR mine::bigint <> current_epoch THEN
        RAISE EXCEPTION 'writer epoch % is not the current one: epoch % belongs to %',
            coalesce(mine, '(none)'), current_epoch, current_holder
            USING ERRCODE = 'WC001';
    END IF;
END
$fence$;
CREATE OR REPLACE FUNCTION {state}.fence_progress() RETURNS trigger
LANGUAGE plpgsql AS $fence$
BEGIN
    PERFORM {state}.assert_writer();
    RETURN NULL;
END
$fence$;
DO $fence$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['state', 'snapshot_tables'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'wacdc_writer_fence'
                       AND tgrelid = format('{state}.%I', t)::regclass) THEN
            EXECUTE format('CREATE TRIGGER wacdc_writer_fence BEFORE INSERT OR UPDATE OR '
                           'DELETE ON {state}.%I FOR EACH STATEMENT EXECUTE FUNCTION '
                           '{state}.fence_progress()', t);
        END IF;
    END LOOP;
END
$fence$;
CREATE TABLE IF NOT EXISTS {state}.snapshot_views (
    view_id text PRIMARY KEY,
    binlog_file text NOT NULL,
    binlog_pos bigint NOT NULL,
    gtid text,
    method text NOT NULL,
    write_pause_seconds double precision NOT NULL,
    opened_at timestamptz NOT NULL DEFAULT now()
);
""").format(state=STATE)


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
        conn.execute(_DDL)


def first_row(conn: psycopg.Connection, query: str | sql.Composed,
              row_factory: Any = tuple_row) -> Any:
    """The first row of a query on schema wacdc; None also before the first run created it."""
    try:
        with conn.cursor(row_factory=row_factory) as cur:
            return cur.execute(query).fetchone()
    except psycopg.errors.UndefinedTable:
        if not conn.autocommit:
            conn.rollback()
        return None


def get_phase(conn: psycopg.Connection) -> str | None:
    """The stored phase; None before the first run."""
    row = first_row(conn, _q("SELECT phase FROM {state}.state WHERE id = 1"))
    return row[0] if row else None


def set_phase(conn: psycopg.Connection, phase: str, source_database: str | None = None,
              error: str | None = None) -> None:
    conn.execute(
        _q("INSERT INTO {state}.state (id, phase, source_database, last_error) "
        "VALUES (1, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET phase = EXCLUDED.phase, "
        "source_database = COALESCE(EXCLUDED.source_database, state.source_database), "
        "last_error = EXCLUDED.last_error, updated_at = now()"),
        (phase, source_database, error))


def get_checkpoint(conn: psycopg.Connection) -> BinlogPosition | None:
    row = conn.execute(_q("SELECT binlog_file, binlog_pos, gtid FROM {state}.state "
                       "WHERE id = 1")).fetchone()
    if row is None or row[0] is None:
        return None
    return BinlogPosition(row[0], int(row[1]), row[2])


def set_checkpoint(conn: psycopg.Connection, position: BinlogPosition) -> None:
    """Call inside the transaction that applies the data up to `position`."""
    conn.execute(_q("UPDATE {state}.state SET binlog_file = %s, binlog_pos = %s, "
                 "gtid = %s, updated_at = now() WHERE id = 1"),
                 (position.file, position.pos, position.gtid))


def snapshot_progress(conn: psycopg.Connection) -> dict[str, TableProgress]:
    rows = conn.execute(
        _q("SELECT table_name, status, view_id, binlog_file, binlog_pos, gtid, rows_copied, "
        "rows_estimated, chunks, started_at, finished_at FROM {state}.snapshot_tables")
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
            _q("INSERT INTO {state}.snapshot_tables (table_name, status, rows_estimated) "
            "VALUES (%s, 'pending', %s) ON CONFLICT (table_name) DO UPDATE "
            "SET rows_estimated = EXCLUDED.rows_estimated"), (table, estimate))


def record_view(conn: psycopg.Connection, view_id: str, position: BinlogPosition, method: str,
                pause_seconds: float) -> None:
    conn.execute(
        _q("INSERT INTO {state}.snapshot_views (view_id, binlog_file, binlog_pos, gtid, "
        "method, write_pause_seconds) VALUES (%s, %s, %s, %s, %s, %s)"),
        (view_id, position.file, position.pos, position.gtid, method, pause_seconds))


def start_table(conn: psycopg.Connection, table: str, view_id: str,
                position: BinlogPosition) -> None:
    conn.execute(
        _q("UPDATE {state}.snapshot_tables SET status = 'copying', view_id = %s, "
        "binlog_file = %s, binlog_pos = %s, gtid = %s, rows_copied = 0, chunks = 0, "
        "started_at = now(), finished_at = NULL, updated_at = now() "
        "WHERE table_name = %s"), (view_id, position.file, position.pos, position.gtid, table))


def chunk_done(conn: psycopg.Connection, table: str, rows: int) -> None:
    """Call inside the chunk's transaction (its progress, and the writer fence's proof)."""
    conn.execute(
        _q("UPDATE {state}.snapshot_tables SET rows_copied = rows_copied + %s, "
        "chunks = chunks + 1, updated_at = now() WHERE table_name = %s"), (rows, table))


def set_table_status(conn: psycopg.Connection, table: str, status: str) -> None:
    finished = sql.SQL(", finished_at = now()" if status == "done" else "")
    conn.execute(sql.SQL("UPDATE {state}.snapshot_tables SET status = %s, updated_at = now()"
                         "{finished} WHERE table_name = %s").format(state=STATE,
                                                                    finished=finished),
                 (status, table))


def add_applied_rows(conn: psycopg.Connection, counts: dict[tuple[str, str], int]) -> None:
    """Call inside the transaction that applies those rows."""
    if counts:
        with conn.cursor() as cur:
            cur.executemany(
                _q("INSERT INTO {state}.applied_rows (table_name, op, rows) "
                "VALUES (%s, %s, %s) ON CONFLICT (table_name, op) "
                "DO UPDATE SET rows = applied_rows.rows + EXCLUDED.rows"),
                [(table, op, n) for (table, op), n in counts.items()])


def report_liveness(conn: psycopg.Connection, head: BinlogPosition | None, lag_seconds: float,
                    lag_bytes: int, daemon: str) -> None:
    conn.execute(
        _q("UPDATE {state}.state SET seen_at = now(), source_head_file = %s, "
        "source_head_pos = %s, lag_seconds = %s, lag_bytes = %s, daemon = %s WHERE id = 1"),
        (head.file if head else None, head.pos if head else None, lag_seconds, lag_bytes,
         daemon))


@dataclass
class StoredStatus:
    phase: str
    checkpoint: BinlogPosition | None
    source_head: BinlogPosition | None
    lag_seconds: float | None
    lag_bytes: int | None
    last_error: str | None
    updated_at: dt.datetime
    seen_at: dt.datetime | None
    daemon: str | None
    applied_rows: dict[str, dict[str, int]]
    snapshot: dict[str, TableProgress]
    writer_pid: int | None  # the PostgreSQL backend holding the writer lock, if any


def read_status(conn: psycopg.Connection, lock: str) -> StoredStatus | None:
    """Everything `wacdc status` shows, from PostgreSQL alone; None before the first run."""
    row = first_row(conn, _q("SELECT phase, binlog_file, binlog_pos, gtid, source_head_file, "
                          "source_head_pos, lag_seconds, lag_bytes, last_error, updated_at, "
                          "seen_at, daemon FROM {state}.state WHERE id = 1"))
    if row is None:
        return None
    (phase, file, pos, gtid, head_file, head_pos, lag_s, lag_b, error, updated, seen,
     daemon) = row
    applied: dict[str, dict[str, int]] = {}
    for table, op, rows in conn.execute(
            _q("SELECT table_name, op, rows FROM {state}.applied_rows ORDER BY 1, 2")):
        applied.setdefault(table, {})[op] = int(rows)
    (key,) = conn.execute("SELECT hashtext(%s)::bigint",
                          (lock,)).fetchone()  # type: ignore[misc]
    holder = conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1",
        ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)).fetchone()
    return StoredStatus(
        phase=phase,
        checkpoint=BinlogPosition(file, int(pos), gtid) if file else None,
        source_head=BinlogPosition(head_file, int(head_pos)) if head_file else None,
        lag_seconds=lag_s, lag_bytes=lag_b, last_error=error, updated_at=updated,
        seen_at=seen, daemon=daemon, applied_rows=applied,
        snapshot=snapshot_progress(conn), writer_pid=holder[0] if holder else None)


def past_snapshot(conn: psycopg.Connection) -> bool:
    row = conn.execute(_q("SELECT past_snapshot FROM {state}.state WHERE id = 1")).fetchone()
    return bool(row and row[0])


def mark_past_snapshot(conn: psycopg.Connection) -> None:
    conn.execute(_q("UPDATE {state}.state SET past_snapshot = true WHERE id = 1"))
