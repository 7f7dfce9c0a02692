"""PostgreSQL's side of the way back: capture triggers, the change log, the fence.

Capture is by triggers, not logical decoding (docs/rollback.md, "Why triggers"): it
needs no `wal_level = logical` (a restart of Railway's PostgreSQL service) and leaves
no replication slot that could fill the disk. Each change the app makes to a
replicated table adds a row to `wacdc.reverse_log` in the app's own transaction, with
that transaction's id. Commit order comes from snapshots (wacdc.reverse.batch).

wacdc's own writes carry `wacdc.writer_epoch` (wacdc.sink.writer): the capture skips
them (no echo) and the fence lets them through. In a bridge window (docs/cutover.md)
the forward stream also sets `wacdc.bridge`: the keys its transaction touched (cascades
too) go to its session's `pg_temp.wacdc_touched`, where wacdc.reverse.conflicts finds
the rows the app changed in PostgreSQL meanwhile.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from wacdc.sink.state import STATE, state_sql

CAPTURE_TRIGGER = "wacdc_capture"
CAPTURE_TRUNCATE_TRIGGER = "wacdc_capture_truncate"
FENCE_TRIGGER = "wacdc_rollback_fence"
FENCED = "WC002"  # SQLSTATE of a write refused by the fence after a rollback

_DDL = state_sql("""
CREATE SCHEMA IF NOT EXISTS {state};
CREATE TABLE IF NOT EXISTS {state}.reverse_log (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- order of the changes
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),       -- the app's transaction
    captured_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    lsn pg_lsn NOT NULL DEFAULT pg_current_wal_insert_lsn(),
    table_name text NOT NULL,
    op "char" NOT NULL,  -- I, U, D, T (truncate)
    old_key jsonb,       -- the key before an update or delete
    new_row text         -- the row after an insert or update, as the row type's text
);
-- The snapshot reverse replication starts from (taken with the triggers' creation).
CREATE TABLE IF NOT EXISTS {state}.reverse_start (
    id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    snapshot pg_snapshot NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- The row's text form is exact for every type (SQL NULL apart from JSON null, too);
-- the settings fix how it is written, whatever the app's session has.
CREATE OR REPLACE FUNCTION {state}.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET extra_float_digits = 3
SET bytea_output = 'hex' SET TimeZone = 'UTC' AS $capture$
DECLARE
    old_row jsonb;
    new_row jsonb;
    key jsonb;
BEGIN
    -- wacdc's own write: not the app's, never sent back; but PostgreSQL's version that a
    -- bridge window's conflict check puts back ('capture') goes to MySQL, its cascades too.
    IF coalesce(current_setting('wacdc.writer_epoch', true), '') <> ''
            AND coalesce(current_setting('wacdc.bridge', true), '') <> 'capture' THEN
        -- In a bridge window the forward stream's keys are kept for its conflict check
        -- (wacdc.reverse.conflicts).
        IF current_setting('wacdc.bridge', true) = 'on' AND TG_OP <> 'TRUNCATE' THEN
            IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
            IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
            INSERT INTO pg_temp.wacdc_touched (table_name, key)
            SELECT DISTINCT TG_TABLE_NAME, k FROM (
                SELECT jsonb_object_agg(c, r -> c) k FROM unnest(TG_ARGV) c,
                    (VALUES (old_row), (new_row)) v(r) WHERE r IS NOT NULL GROUP BY r) keys;
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO {state}.reverse_log (table_name, op) VALUES (TG_TABLE_NAME, 'T');
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        old_row := to_jsonb(OLD);
        IF TG_NARGS = 0 THEN
            key := old_row;
        ELSE
            SELECT jsonb_object_agg(c, old_row -> c) INTO key FROM unnest(TG_ARGV) c;
        END IF;
    END IF;
    INSERT INTO {state}.reverse_log (table_name, op, old_key, new_row)
    VALUES (TG_TABLE_NAME, left(TG_OP, 1), key,
            CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW::text END);
    RETURN NULL;
END
$capture$;
""")
_FENCE_DDL = state_sql("""
CREATE SCHEMA IF NOT EXISTS {state};
CREATE OR REPLACE FUNCTION {state}.refuse_write() RETURNS trigger
LANGUAGE plpgsql AS $fence$
BEGIN
    IF coalesce(current_setting('wacdc.writer_epoch', true), '') <> '' THEN
        RETURN NULL;  -- wacdc replicating MySQL's changes forward
    END IF;
    RAISE EXCEPTION 'wacdc: table % is fenced: the application was rolled back to MySQL '
        '(wacdc rollback); write to MySQL instead', TG_TABLE_NAME
        USING ERRCODE = 'WC002';
END
$fence$;
""")


def relation(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def primary_key(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    """The table's primary key columns in PostgreSQL (empty: the whole row is the key)."""
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey, a.attnum)",
        (relation(schema, table).as_string(conn),)).fetchall()
    return [str(r[0]) for r in rows]


def _drop_trigger(conn: psycopg.Connection, name: str, schema: str, table: str) -> None:
    """Only a trigger that is there: DROP TRIGGER locks the table out even for readers,
    so it is not sent for nothing (the cutover's finish runs this on every table)."""
    present = conn.execute(
        "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = to_regclass(%s)",
        (name, relation(schema, table).as_string(conn))).fetchone()
    if present:
        conn.execute(sql.SQL("DROP TRIGGER {} ON {}").format(
            sql.Identifier(name), relation(schema, table)))


def install_capture(conn: psycopg.Connection, schema: str, tables: list[str]) -> None:
    """Inside the caller's transaction: the log, the triggers, and the starting snapshot.

    CREATE TRIGGER locks each table against writes until this commits, so no app
    transaction that the starting snapshot sees as committed can have been captured."""
    conn.execute(_DDL)
    for table in tables:
        remove_fence(conn, schema, [table])
        for name in (CAPTURE_TRIGGER, CAPTURE_TRUNCATE_TRIGGER):
            _drop_trigger(conn, name, schema, table)
        key = primary_key(conn, schema, table)
        conn.execute(sql.SQL(
            "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {} FOR EACH ROW "
            "EXECUTE FUNCTION {}.capture({})").format(
            sql.Identifier(CAPTURE_TRIGGER), relation(schema, table), STATE,
            sql.SQL(", ").join(map(sql.Literal, key))))
        conn.execute(sql.SQL(
            "CREATE TRIGGER {} AFTER TRUNCATE ON {} FOR EACH STATEMENT "
            "EXECUTE FUNCTION {}.capture()").format(
            sql.Identifier(CAPTURE_TRUNCATE_TRIGGER), relation(schema, table), STATE))
    conn.execute(state_sql("DELETE FROM {state}.reverse_log"))
    conn.execute(state_sql(
        "INSERT INTO {state}.reverse_start (id, snapshot) VALUES (1, pg_current_snapshot()) "
        "ON CONFLICT (id) DO UPDATE SET snapshot = EXCLUDED.snapshot, created_at = now()"))


def remove_capture(conn: psycopg.Connection, schema: str, tables: list[str]) -> None:
    """The triggers, the log and the starting snapshot gone (WACDC_REVERSE=0, a rollback)."""
    for table in tables:
        for name in (CAPTURE_TRIGGER, CAPTURE_TRUNCATE_TRIGGER):
            _drop_trigger(conn, name, schema, table)
    conn.execute(state_sql("DROP TABLE IF EXISTS {state}.reverse_log"))
    conn.execute(state_sql("DROP TABLE IF EXISTS {state}.reverse_start"))
    conn.execute(state_sql("DROP FUNCTION IF EXISTS {state}.capture()"))


def remove_capture_gently(conn: psycopg.Connection, schema: str, tables: list[str],
                          lock_timeout: str) -> bool:
    """The same while the app uses the tables (autocommit `conn`): one table per
    transaction, none waiting longer than `lock_timeout` behind the app (DROP TRIGGER
    locks its table out, readers too). False when a table was busy: what is left stays
    for the next attempt."""
    try:
        for table in tables:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                    sql.Literal(lock_timeout)))
                for name in (CAPTURE_TRIGGER, CAPTURE_TRUNCATE_TRIGGER):
                    _drop_trigger(conn, name, schema, table)
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                sql.Literal(lock_timeout)))
            remove_capture(conn, schema, [])
    except psycopg.errors.LockNotAvailable:
        return False
    return True


def capture_installed(conn: psycopg.Connection, schema: str, tables: list[str]) -> list[str]:
    """The tables that carry the capture trigger."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.tgname = %s "
        "AND n.nspname = %s AND c.relname = ANY(%s)",
        (CAPTURE_TRIGGER, schema, tables)).fetchall()
    return sorted(str(r[0]) for r in rows)


def start_snapshot(conn: psycopg.Connection) -> str | None:
    try:
        with conn.transaction():
            row = conn.execute(state_sql(
                "SELECT snapshot::text FROM {state}.reverse_start WHERE id = 1")).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return None if row is None else str(row[0])


def install_fence(conn: psycopg.Connection, schema: str, tables: list[str]) -> None:
    """Every session but wacdc's is refused writes to `tables` (after a rollback)."""
    conn.execute(_FENCE_DDL)
    for table in tables:
        _drop_trigger(conn, FENCE_TRIGGER, schema, table)
        conn.execute(sql.SQL(
            "CREATE TRIGGER {} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
            "FOR EACH STATEMENT EXECUTE FUNCTION {}.refuse_write()").format(
            sql.Identifier(FENCE_TRIGGER), relation(schema, table), STATE))


def remove_fence(conn: psycopg.Connection, schema: str, tables: list[str]) -> None:
    for table in tables:
        _drop_trigger(conn, FENCE_TRIGGER, schema, table)
