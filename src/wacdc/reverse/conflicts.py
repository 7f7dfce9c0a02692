"""A bridge window's conflicts, found and resolved inside the forward stream's batch.

In a bridge window (docs/cutover.md) the app writes both stores. A row the app changed
in PostgreSQL is in `wacdc.reverse_log` until the forward stream has read back, from
MySQL's binlog, the reverse transaction that carried it (its echo). A MySQL change to
that row read before then happened in MySQL before PostgreSQL's change got there, so
MySQL ends with PostgreSQL's version: PostgreSQL's must stay. The rule is "PostgreSQL
wins", row by row.

The forward batch is applied first (its row locks make later app writes wait); then,
in the same transaction, every row it touched (cascades too: the capture trigger
records them in `pg_temp.wacdc_touched`) that the log still holds gets PostgreSQL's
latest version back: the captured row, or its absence after a delete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from wacdc.log import get_logger
from wacdc.observe import metrics
from wacdc.reverse.batch import forget_applied
from wacdc.reverse.capture import primary_key, relation
from wacdc.runtime import BridgeFigures
from wacdc.sink.state import STATE

log = get_logger("wacdc.bridge")
LOGGED_PER_BATCH = 20  # conflicts logged one by one per batch; the metric counts all

_SETUP = ("CREATE TEMP TABLE IF NOT EXISTS wacdc_touched (table_name text NOT NULL, "
          "key jsonb NOT NULL) ON COMMIT DELETE ROWS")
# The newest captured change of each touched row the log still holds.
# Per table: the newest captured change of each touched row the log still holds. The
# log's row after a change is its text; its key is read back from it here, in the
# bridge's batches, so the app's writes pay nothing for it. (Two equi-joins, not one
# OR: hash joins, whatever the temp table's missing statistics.)
_FIND = """
WITH touched AS (SELECT DISTINCT key FROM pg_temp.wacdc_touched WHERE table_name = %(t)s),
log AS (
    SELECT l.seq, l.op, l.new_row, l.txid, l.old_key, {new_key} AS new_key
    FROM {state}.reverse_log l
    LEFT JOIN LATERAL (SELECT (l.new_row::{rel}).*) r ON l.new_row IS NOT NULL
    WHERE l.table_name = %(t)s AND l.op <> 'T'),
hits AS (
    SELECT t.key, l.seq FROM touched t JOIN log l ON l.new_key = t.key
    UNION
    SELECT t.key, l.seq FROM touched t JOIN log l ON l.old_key = t.key)
SELECT DISTINCT ON (h.key) h.key, l.op, l.new_row, l.new_key, l.seq, l.txid::text
FROM hits h JOIN log l ON l.seq = h.seq
ORDER BY h.key, l.seq DESC
"""


def _find(schema: str, table: str, key: list[str]) -> sql.Composed:
    new_key = sql.SQL("CASE WHEN l.new_row IS NULL THEN NULL ELSE jsonb_build_object({}) END"
                      ).format(sql.SQL(", ").join(
                          sql.SQL("{}, r.{}").format(sql.Literal(k), sql.Identifier(k))
                          for k in key))
    return sql.SQL(_FIND).format(state=STATE, rel=relation(schema, table), new_key=new_key)


@dataclass(frozen=True)
class Conflict:
    table: str
    key: dict[str, Any]
    kept: str  # what PostgreSQL kept: "row" or "delete"
    txid: str  # the app's PostgreSQL transaction that won


def bridge_on(conn: psycopg.Connection) -> None:
    """The forward session records what it touches (autocommit `conn`)."""
    conn.execute(_SETUP)
    conn.execute("SET wacdc.bridge = 'on'")


def bridge_off(conn: psycopg.Connection) -> None:
    conn.execute("SET wacdc.bridge = 'off'")


@dataclass
class ConflictResolver:
    """The Applier's in-transaction step during a bridge window (wacdc.sink.apply)."""

    schema: str
    figures: BridgeFigures
    queries: dict[str, sql.Composed] = field(default_factory=dict)  # per table

    def resolve(self, conn: psycopg.Connection) -> list[Conflict]:
        """PostgreSQL's version back for every touched row the app changed meanwhile."""
        tables = [str(r[0]) for r in conn.execute(
            "SELECT DISTINCT table_name FROM pg_temp.wacdc_touched").fetchall()]
        if not tables:
            return []
        # How the captured row texts read back (written under these settings).
        conn.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        conn.execute("SET LOCAL IntervalStyle = 'postgres'")
        found = []
        for table in tables:
            if table not in self.queries:
                self.queries[table] = _find(self.schema, table,
                                            primary_key(conn, self.schema, table))
            query = self.queries[table]
            found += [(table, *row) for row in conn.execute(query, {"t": table}).fetchall()]
        if not found:
            return []
        # What is put back is captured as the app's changes are: it reaches MySQL, and
        # so do the rows PostgreSQL's foreign keys cascade to.
        conn.execute("SET LOCAL wacdc.bridge = 'capture'")
        items = [self._conflict(*row) for row in found]
        pending = list(items)
        while pending:  # parents before children, children's deletes before parents'
            left = [c for c in pending if not self._put_back(conn, c)]
            if len(left) == len(pending):
                self._put_back(conn, left[0], last_try=True)
                left = left[1:]
            pending = left
        conn.execute("SET LOCAL wacdc.bridge = 'on'")
        return [c for c, _ in items]

    @staticmethod
    def _conflict(table: str, key: dict[str, Any], op: str, new_row: str | None,
                  new_key: dict[str, Any] | None, _seq: int, txid: str
                  ) -> tuple[Conflict, str | None]:
        gone = op == "D" or (new_key is not None and new_key != key)
        return Conflict(table, key, "delete" if gone else "row", txid), \
            None if gone else new_row

    def _put_back(self, conn: psycopg.Connection, item: tuple[Conflict, str | None],
                  last_try: bool = False) -> bool:
        """PostgreSQL's version of one row; False when a foreign key needs another first."""
        conflict, row = item
        try:
            with conn.transaction():  # a savepoint: a refusal undoes only this row
                if row is None:
                    self._delete(conn, conflict.table, conflict.key)
                else:
                    self._restore(conn, conflict.table, row)
        except psycopg.errors.ForeignKeyViolation as exc:
            if not last_try:
                return False
            # Its parent is gone (MySQL deleted it meanwhile): PostgreSQL's version cannot
            # stand, so the delete wins, in both stores.
            self._delete(conn, conflict.table, conflict.key)
            conn.execute(sql.SQL("INSERT INTO {}.reverse_log (table_name, op, old_key) "
                                 "VALUES (%s, 'D', %s::jsonb)").format(STATE),
                         (conflict.table, json.dumps(conflict.key)))
            log.warning("bridge conflict: PostgreSQL's version of the row needs a row MySQL "
                        "deleted meanwhile; the delete wins in both stores",
                        table=conflict.table, key=conflict.key,
                        postgres_transaction=conflict.txid,
                        foreign_key=str(exc).strip().splitlines()[0])
        return True

    def _delete(self, conn: psycopg.Connection, table: str, key: dict[str, Any]) -> None:
        rel = relation(self.schema, table)
        match = sql.SQL(" AND ").join(
            sql.SQL("t.{c} IS NOT DISTINCT FROM k.{c}").format(c=sql.Identifier(c))
            for c in key)
        conn.execute(sql.SQL("DELETE FROM {rel} t USING jsonb_populate_record(NULL::{rel}, "
                             "%s::jsonb) k WHERE {match}").format(rel=rel, match=match),
                     (json.dumps(key),))

    def _restore(self, conn: psycopg.Connection, table: str, row: str) -> None:
        rel = relation(self.schema, table)
        columns = [str(r[0]) for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            (rel.as_string(conn),)).fetchall()]
        key = primary_key(conn, self.schema, table)
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        assign = sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
                                    for c in columns if c not in key)
        conn.execute(sql.SQL(
            "INSERT INTO {rel} ({names}) OVERRIDING SYSTEM VALUE SELECT {names} FROM "
            "(SELECT (%s::text::{rel}).*) r ON CONFLICT ({key}) DO {action}").format(
            rel=rel, names=names, key=sql.SQL(", ").join(map(sql.Identifier, key)),
            action=sql.SQL("UPDATE SET {}").format(assign) if assign else sql.SQL("NOTHING")),
            (row,))

    def forget(self, conn: psycopg.Connection, snapshot: str) -> None:
        """The log's rows up to `snapshot` came back through MySQL's binlog: a MySQL change
        read after them happened after PostgreSQL's there too, and is no conflict."""
        forget_applied(conn, snapshot)

    def report(self, conflicts: list[Conflict], where: str) -> None:
        """Counted and logged once the batch committed."""
        self.figures.conflicts += len(conflicts)
        for n, c in enumerate(conflicts):
            metrics.bridge_conflicts.labels(table=c.table).inc()
            if n < LOGGED_PER_BATCH:
                log.warning("bridge conflict: the row changed in MySQL and in PostgreSQL; "
                            "PostgreSQL's change wins (MySQL gets it too)", table=c.table,
                            key=c.key, kept=c.kept, postgres_transaction=c.txid,
                            mysql_binlog=where)
        if len(conflicts) > LOGGED_PER_BATCH:
            log.warning("more bridge conflicts in that batch", conflicts=len(conflicts),
                        mysql_binlog=where)
