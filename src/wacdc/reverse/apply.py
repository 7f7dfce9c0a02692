"""MySQL's side of the way back: a batch and its checkpoint in one MySQL transaction.

The checkpoint (the PostgreSQL snapshot the batch ends at) lives in the MySQL
database itself, `wacdc_reverse_checkpoint`, so a crash anywhere leaves MySQL with
either the whole batch and its checkpoint or neither: exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pymysql

from wacdc.errors import BadValueError, WacdcError
from wacdc.log import get_logger
from wacdc.observe import metrics
from wacdc.reverse.batch import Batch, ReverseChange
from wacdc.reverse.plan import TablePlan
from wacdc.reverse.values import lossy_json_number, not_a_member, too_big
from wacdc.source.sql import quote_ident

log = get_logger("wacdc.reverse")
CHECKPOINT_TABLE = "wacdc_reverse_checkpoint"
OPS = {"I": "insert", "U": "update", "D": "delete", "T": "delete"}
# MySQL errors that mean "this value does not fit that column" (strict sql_mode).
VALUE_ERRORS = {1264, 1265, 1292, 1366, 1406, 3140, 1048, 1690, 4025}
TRANSIENT = {1205, 1213}  # lock wait timeout, deadlock: the batch is tried again
DUPLICATE = 1062
CLIENT_ERRORS = 2000  # CR_*: the connection, not the statement


class ReverseBadValue(BadValueError):
    """A PostgreSQL value MySQL cannot hold, under WACDC_BAD_VALUES=strict (or one no
    coercion exists for)."""

    @property
    def txid(self) -> str:
        found = re.search(r"transaction (\d+)", self.position or "")
        return found.group(1) if found else "<transaction id>"

    def _message(self) -> str:
        return (f"reverse replication: bad value ({self.reason}) for MySQL column "
                f"{self.table}.{self.column} key={self.key!r} at {self.position}: "
                f"{self.value_repr}. Nothing of its PostgreSQL transaction was applied. "
                "Widen the MySQL column, or set WACDC_BAD_VALUES=coerce where a "
                "documented coercion exists, or skip that transaction with "
                f"WACDC_REVERSE_SKIP={self.txid} and repair the row in MySQL by hand "
                "(docs/rollback.md, \"Bad values\")")


def session_setup(conn: pymysql.connections.Connection) -> None:
    """Strict values (a misfit is an error, never a silent cut), UTC, and PostgreSQL's
    own foreign-key actions replayed from its log rather than MySQL's cascades."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,"
                    "NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00', foreign_key_checks = 0, "
                    "innodb_lock_wait_timeout = 30")


def ensure_checkpoint_table(conn: pymysql.connections.Connection) -> None:
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} (id TINYINT PRIMARY KEY, "
                    "snapshot TEXT NOT NULL, batches BIGINT NOT NULL, changes BIGINT NOT NULL, "
                    "applied_at DATETIME(6) NOT NULL) ENGINE=InnoDB")
    conn.commit()


def read_checkpoint(conn: pymysql.connections.Connection) -> str | None:
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
                    "DATABASE() AND table_name = %s", (CHECKPOINT_TABLE,))
        row = cur.fetchone()
        if not row or not row[0]:
            return None
        cur.execute(f"SELECT snapshot FROM {CHECKPOINT_TABLE} WHERE id = 1")
        row = cur.fetchone()
    conn.commit()
    return None if row is None else str(row[0])


def drop_checkpoint_table(conn: pymysql.connections.Connection) -> None:
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {CHECKPOINT_TABLE}")


@dataclass
class Statements:
    """Plain statements by key: exactly once needs no upsert, and an upsert would merge
    rows on MySQL's other unique keys (MySQL's collations ignore case and accents where
    PostgreSQL does not): a duplicate is an error that names the row instead."""

    insert: str
    update: str
    exists: str
    delete: str
    truncate: str

    @classmethod
    def of(cls, plan: TablePlan) -> Statements:
        table = quote_ident(plan.mysql_table)
        cols = ", ".join(map(quote_ident, plan.columns))
        marks = ", ".join(["%s"] * len(plan.columns))
        where = " AND ".join(f"{quote_ident(k)} <=> %s" for k in plan.key)
        assign = ", ".join(f"{quote_ident(c)} = %s" for c in plan.columns)
        return cls(f"INSERT INTO {table} ({cols}) VALUES ({marks})",
                   f"UPDATE {table} SET {assign} WHERE {where} LIMIT 1",
                   f"SELECT 1 FROM {table} WHERE {where} LIMIT 1",
                   f"DELETE FROM {table} WHERE {where} LIMIT 1", f"DELETE FROM {table}")


@dataclass
class MySQLApplier:
    """Applies batches to the retired MySQL tables (one connection, autocommit off)."""

    conn: pymysql.connections.Connection
    plans: dict[str, TablePlan]
    strict: bool
    mariadb: bool
    skip: frozenset[str] = frozenset()  # WACDC_REVERSE_SKIP: PostgreSQL transaction ids
    bridge: bool = False  # a bridge window: the app writes these MySQL tables too
    statements: dict[str, Statements] = field(default_factory=dict)

    def _skipped(self, change: ReverseChange) -> None:
        plan = self.plans[change.table]
        metrics.errors.labels(kind="ReverseSkipped").inc()
        log.error("reverse replication: a change skipped by WACDC_REVERSE_SKIP; MySQL "
                  "lacks it until repaired by hand", table=plan.mysql_table,
                  op=OPS[change.op], key=self._key(plan, change), position=change.where())

    def __post_init__(self) -> None:
        self.statements = {t: Statements.of(p) for t, p in self.plans.items()}

    def apply(self, batch: Batch, batches: int, total: int) -> dict[tuple[str, str], int]:
        """The batch and its checkpoint, committed together; the counts per table and op."""
        counts: dict[tuple[str, str], int] = {}
        try:
            with self.conn.cursor() as cur:
                # The checkpoint first: in a bridge window the forward stream reads this
                # transaction back from the binlog, and knows it for wacdc's by this row
                # before any other (wacdc.stream: an echo, never applied again).
                cur.execute(f"REPLACE INTO {CHECKPOINT_TABLE} (id, snapshot, batches, changes, "
                            "applied_at) VALUES (1, %s, %s, %s, UTC_TIMESTAMP(6))",
                            (batch.upto, batches, total + len(batch.changes)))
                for change in batch.changes:
                    if change.txid in self.skip:
                        self._skipped(change)
                        continue
                    self._one(cur, change)
                    op = (change.table, OPS[change.op])
                    counts[op] = counts.get(op, 0) + 1
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return counts

    def _one(self, cur: Any, change: ReverseChange) -> None:
        plan, sql = self.plans[change.table], self.statements[change.table]
        try:
            if change.op == "T":
                cur.execute(sql.truncate)
            elif change.op == "D":
                cur.execute(sql.delete, change.key)
            elif change.op == "I":
                self._insert(cur, plan, sql, change)
            else:
                self._update(cur, plan, sql, change)
        except pymysql.err.MySQLError as exc:
            raise self._explain(exc, plan, change) from None

    def _insert(self, cur: Any, plan: TablePlan, sql: Statements,
                change: ReverseChange) -> None:
        row = self._fit(plan, change)
        try:
            cur.execute(sql.insert, row)
        except pymysql.err.IntegrityError as exc:
            # A bridge window: the app inserted the same key in MySQL too. PostgreSQL's
            # row wins (the forward stream counts the conflict when it reads MySQL's).
            if not (self.bridge and exc.args and exc.args[0] == DUPLICATE):
                raise
            cur.execute(sql.exists, self._key_values(plan, change))
            if not cur.fetchone():
                raise  # another unique key holds it: named by _explain
            cur.execute(sql.update, (*row, *self._key_values(plan, change)))

    @staticmethod
    def _key_values(plan: TablePlan, change: ReverseChange) -> tuple[Any, ...]:
        return tuple(change.row[plan.columns.index(k)] for k in plan.key)

    def _update(self, cur: Any, plan: TablePlan, sql: Statements,
                change: ReverseChange) -> None:
        """By the old key (a new key is one of the columns set); a row MySQL does not
        have is inserted, and said."""
        row = self._fit(plan, change)
        if cur.execute(sql.update, (*row, *change.key)):
            return
        cur.execute(sql.exists, change.key)
        if cur.fetchone():
            return  # there, and already as PostgreSQL has it
        log.warning("reverse replication: an update of a row MySQL does not have; inserted",
                    table=plan.mysql_table, key=self._key(plan, change),
                    position=change.where())
        cur.execute(sql.insert, row)

    def _explain(self, exc: pymysql.err.MySQLError, plan: TablePlan,
                 change: ReverseChange) -> BaseException:
        """What a MySQL error means here: a bad value, a duplicate, a passing lock
        conflict or connection loss (retried), or a refusal that needs the operator."""
        code = exc.args[0] if exc.args else None
        message = exc.args[-1] if exc.args else str(exc)
        key = self._key(plan, change)
        if code in VALUE_ERRORS:
            # MySQL: column 'c'; MariaDB: column `db`.`t`.`c`
            found = re.search(r"column (\S+) at row", str(message))
            column = found.group(1).split(".")[-1].strip("`'") if found else "?"
            return ReverseBadValue(f"MySQL refused it: {message}", plan.mysql_table, column,
                                   "(see the reason)", key, change.where())
        if code in TRANSIENT or (isinstance(code, int) and code >= CLIENT_ERRORS):
            return pymysql.err.OperationalError(code, message)  # retried from the checkpoint
        hint = (" (a unique key of MySQL's table already holds it: MySQL's collation "
                "compares text without case or accents where PostgreSQL does not)"
                if code == DUPLICATE else "")
        return WacdcError(
            f"reverse replication: MySQL refused a {OPS[change.op]} of {plan.mysql_table} "
            f"key={key!r} at {change.where()}: {message}{hint}. Nothing of its PostgreSQL "
            "transaction was applied. Fix it in MySQL, or skip that transaction with "
            f"WACDC_REVERSE_SKIP={change.txid} and repair MySQL by hand, then start "
            "`wacdc run` again (docs/rollback.md, \"Bad values\")")

    @staticmethod
    def _key(plan: TablePlan, change: ReverseChange) -> Any:
        values = change.key if change.op != "I" else tuple(
            change.row[plan.columns.index(k)] for k in plan.key)
        return values[0] if len(values) == 1 else values

    def _fit(self, plan: TablePlan, change: ReverseChange) -> tuple[Any, ...]:
        """The row as MySQL takes it: Python steps, then the checks MySQL's types need."""
        out = []
        for name, post, value in zip(plan.columns, plan.posts, change.row, strict=True):
            if post is not None:
                value = post(value)
            column = plan.mysql_columns[name]
            misfit = not_a_member(value, column)
            if misfit:
                raise ReverseBadValue(misfit, plan.mysql_table, name, repr(value)[:120],
                                      self._key(plan, change), change.where())
            lossy = lossy_json_number(value) if column.is_json and not self.mariadb else None
            if lossy is not None:
                value = self._coerce(plan, change, name, lossy, value, value, "reverse_json_double")
            big = too_big(value, column)
            if big is not None:
                value = self._coerce(plan, change, name, big[0], value, big[1],
                                     "reverse_too_long")
            out.append(value)
        return tuple(out)

    def _coerce(self, plan: TablePlan, change: ReverseChange, column: str, reason: str,
                value: Any, substitute: Any, label: str) -> Any:
        """Under strict: stop, naming it all; else count, log, and go on with `substitute`."""
        if self.strict:
            raise ReverseBadValue(reason, plan.mysql_table, column, repr(value)[:120],
                                  self._key(plan, change), change.where())
        metrics.values_coerced.labels(table=plan.mysql_table, column=column,
                                      reason=label).inc()
        log.warning("value coerced on the way to MySQL (WACDC_BAD_VALUES=coerce)",
                    table=plan.table, column=column, reason=reason,
                    key=self._key(plan, change), position=change.where())
        return substitute
