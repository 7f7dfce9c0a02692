"""Apply source transactions to PostgreSQL: upserts and deletes, checkpoint in the same commit.

Several source transactions share one PostgreSQL transaction; inside it the row
changes run in source order, consecutive changes of the same kind to the same table
sent together (executemany in pipeline mode). insert -> upsert; update -> upsert of the
after image, plus a delete of the old key when the key changed; delete -> delete by
key. A change to a table whose snapshot already holds it (its transaction ends at or
before that table's snapshot position) is skipped. Replaying from an earlier
position converges to the same state.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import sql

from wacdc.errors import SchemaError, WacdcError
from wacdc.events import BinlogPosition, Piece, RowChange, Transaction
from wacdc.log import get_logger
from wacdc.observe import metrics
from wacdc.schema.convert import BadValuePolicy, RowConverter
from wacdc.schema.ddl import TargetTable
from wacdc.sink import sql as statements
from wacdc.sink import state, writer

log = get_logger(__name__)


class ApplyError(WacdcError):
    """A change PostgreSQL refused; names table, key and position. Nothing is skipped."""


@dataclass
class ImagePlan:
    """How to apply row images with one particular set of columns."""

    converter: RowConverter
    upsert: sql.Composed
    delete: sql.Composed
    # The two statements as the applying connection sends them, rendered once: psycopg
    # would render a Composed again for every executemany.
    wire: tuple[bytes, bytes] | None = None

    def rendered(self, conn: psycopg.Connection) -> tuple[bytes, bytes]:
        if self.wire is None:
            self.wire = (self.upsert.as_bytes(conn), self.delete.as_bytes(conn))
        return self.wire


class TableSink:
    """One target table. Row images are applied by the columns they carry (names from the
    binlog's row metadata), so an image logged before an ADD COLUMN never overwrites the
    new column, and PostgreSQL-only columns are left alone."""

    def __init__(self, table: TargetTable, policy: BadValuePolicy,
                 snapshot_position: BinlogPosition | None) -> None:
        self.table = table
        self.policy = policy
        self.snapshot_position = snapshot_position
        self._by_name = {c.name: c for c in table.columns}
        self._plans: dict[tuple[str, ...], ImagePlan] = {}

    def plan(self, names: tuple[str, ...]) -> ImagePlan:
        plan = self._plans.get(names)
        if plan is None:
            plan = self._plans[names] = self._build(names)
        return plan

    def _build(self, names: tuple[str, ...]) -> ImagePlan:
        tt = self.table
        unknown = [n for n in names if n not in self._by_name]
        if unknown:
            raise SchemaError(
                f"{tt.name}: the binlog has column(s) {', '.join(unknown)} that PostgreSQL "
                "does not: a schema change reached the source that the target lacks; apply "
                "it to PostgreSQL (wacdc schema --apply) and run again")
        missing_key = [k for k in tt.key if k not in names]
        if missing_key:
            raise SchemaError(f"{tt.name}: row images lack key column(s) {missing_key}; the "
                              "source must log binlog_row_image=FULL")
        columns = [self._by_name[n] for n in names]
        converter = RowConverter(tt.name, columns, tt.key, self.policy)
        upsert = statements.upsert(tt.relation, names, tt.key)
        delete = statements.delete_by_key(tt.relation, tt.key)
        return ImagePlan(converter, upsert, delete)


@dataclass
class BatchStats:
    transactions: int = 0
    rows: int = 0
    skipped: int = 0


Runs = list[tuple[bytes, list[tuple], str, str, list[tuple]]]


class Resolver(Protocol):
    """A step inside each batch's transaction, after its rows (a bridge window's
    conflicts: wacdc.reverse.conflicts); `report` runs once the batch committed."""

    def resolve(self, conn: psycopg.Connection) -> list[Any]: ...

    def report(self, found: list[Any], where: str) -> None: ...

    def forget(self, conn: psycopg.Connection, snapshot: str) -> None:
        """wacdc's reverse transaction up to `snapshot` came back from MySQL."""


class Applier:
    """Applies source transactions in order, each batch in one PostgreSQL transaction with
    its checkpoint. A source transaction too large to hold arrives as Pieces first: they
    are applied inside an outer PostgreSQL transaction that stays open until the batch
    holding the rest of it commits (with the checkpoint), so memory stays bounded and a
    crash in between leaves nothing of it behind."""

    def __init__(self, conn: psycopg.Connection, sinks: dict[str, TableSink],
                 lease: writer.WriterLease | None = None) -> None:
        self.conn = conn  # joined to `lease`: every commit is proved (wacdc.sink.writer)
        self.sinks = sinks
        self.lease = lease
        # Open while pieces are applied: entered by hand, left with the batch or abandon().
        self._outer: AbstractContextManager[psycopg.Transaction] | None = None
        self.resolver: Resolver | None = None  # set for a bridge window (wacdc.reverse)

    @property
    def in_piece(self) -> bool:
        return self._outer is not None

    def _plan(self, items: Sequence[tuple[BinlogPosition, Sequence[RowChange]]],
              stats: BatchStats) -> tuple[Runs, dict[tuple[str, str], int]]:
        """(statement, [params...]) runs in source order; same-statement neighbours merge.
        `items`: (where the source transaction ends, or a position inside it, changes)."""
        runs: Runs = []
        counts: dict[tuple[str, str], int] = {}

        def add(statement: bytes, params: tuple, table: str, op: str,
                key: tuple) -> None:
            if runs and runs[-1][0] is statement:
                runs[-1][1].append(params)
                runs[-1][4].append(key)
            else:
                runs.append((statement, [params], table, op, [key]))

        for at, changes in items:
            for change in changes:
                sink = self.sinks[change.table]
                # A snapshot position is a transaction boundary: a transaction with an event
                # before it ends at or before it (its copy holds the change).
                if sink.snapshot_position is not None and at <= sink.snapshot_position:
                    stats.skipped += 1
                    continue
                where = change.position  # text only if a message needs it
                plan = sink.plan(change.names)
                converter = plan.converter
                upsert, delete = plan.rendered(self.conn)
                if change.after is not None:
                    row = converter.convert(change.after, where)
                    if change.before is not None and not converter.same_source_key(
                            change.before, change.after):
                        old_key = converter.key_of(converter.convert(change.before, where))
                        if old_key != converter.key_of(row):
                            add(delete, old_key, change.table, "delete", old_key)
                    add(upsert, row, change.table, change.op, converter.key_of(row))
                else:
                    assert change.before is not None
                    key = converter.key_of(converter.convert(change.before, where))
                    add(delete, key, change.table, "delete", key)
                counts[(change.table, change.op)] = counts.get((change.table, change.op), 0) + 1
                stats.rows += 1
        return runs, counts

    def apply_piece(self, piece: Piece) -> BatchStats:
        """Apply a part of a large source transaction, uncommitted (see the class)."""
        stats = BatchStats()
        if self._outer is None:
            self._outer = self.conn.transaction()
            self._outer.__enter__()
        runs, counts = self._plan([(piece.position, piece.changes)], stats)
        try:
            with self.conn.transaction(), self.conn.pipeline(), self.conn.cursor() as cur:
                writer.assert_writer(self.conn)  # a lost lease stops here, not at the end
                for statement, params, _, _, _ in runs:
                    cur.executemany(statement, params)
                state.add_applied_rows(self.conn, counts)
        except BaseException as exc:
            self.abandon(exc)
            if writer.is_lost_lease(exc):
                raise writer.lost(exc, self.lease) from None
            if isinstance(exc, psycopg.errors.Error) and not isinstance(
                    exc, psycopg.OperationalError):
                raise self._explain(exc, runs, [piece]) from None  # type: ignore[list-item]
            raise
        self._counted(counts)
        return stats

    def abandon(self, exc: BaseException | None = None) -> None:
        """Roll back the pieces applied so far (an error, or the source rolled it back)."""
        if self._outer is None:
            return
        outer, self._outer = self._outer, None
        rollback = exc if exc is not None else psycopg.Rollback()
        try:  # an exception at the exit of a transaction block rolls it back
            outer.__exit__(type(rollback), rollback, None)
        except psycopg.Error as error:
            log.warning("rolling back a partly applied transaction failed; the "
                        "connection's end rolls it back", error=str(error))

    def apply(self, batch: Sequence[Transaction]) -> BatchStats:
        """Apply whole transactions and move the checkpoint to the end of the last one."""
        stats = BatchStats(transactions=len(batch))
        if not batch:
            return stats
        started = time.monotonic()
        runs, counts = self._plan([(txn.end, txn.changes) for txn in batch], stats)
        end = batch[-1].resume_at
        resolved: list = []
        echo = batch[0].echo_of  # an echo starts its batch (wacdc.stream)
        try:
            with self.conn.transaction():
                if echo is not None and self.resolver is not None:
                    self.resolver.forget(self.conn, echo)
                with self.conn.pipeline(), self.conn.cursor() as cur:
                    for statement, params, _, _, _ in runs:
                        cur.executemany(statement, params)
                    if self.resolver is None:
                        state.add_applied_rows(self.conn, counts)
                        state.set_checkpoint(self.conn, end)
                if self.resolver is not None:  # a bridge window: after the rows, before commit
                    resolved = self.resolver.resolve(self.conn)
                    state.add_applied_rows(self.conn, counts)
                    state.set_checkpoint(self.conn, end)
            if self._outer is not None:  # the rest of a transaction applied in pieces
                outer, self._outer = self._outer, None
                outer.__exit__(None, None, None)  # commit: pieces, rest and checkpoint
        except psycopg.errors.Error as exc:
            self.abandon(exc)
            if writer.is_lost_lease(exc):  # the checkpoint's fence refused the commit
                raise writer.lost(exc, self.lease) from None
            if isinstance(exc, psycopg.OperationalError):
                raise
            raise self._explain(exc, runs, batch) from None
        except BaseException as exc:
            self.abandon(exc)
            raise
        self._counted(counts)
        if self.resolver is not None and resolved:
            self.resolver.report(resolved, f"{batch[0].end} .. {end}")
        metrics.transactions.inc(len(batch))
        metrics.apply_batch_seconds.observe(time.monotonic() - started)
        metrics.last_applied_timestamp.set(batch[-1].commit_time)
        return stats

    @staticmethod
    def _counted(counts: dict[tuple[str, str], int]) -> None:
        for (table, op), n in counts.items():
            metrics.rows_applied.labels(table=table, op=op).inc(n)

    def _explain(self, exc: psycopg.errors.Error, runs: list, batch: Sequence[Transaction]
                 ) -> ApplyError:
        """Find the first change PostgreSQL refuses, one by one in a rolled-back transaction."""
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        try:
            with self.conn.transaction(force_rollback=True), self.conn.cursor() as cur:
                for statement, params, table, op, keys in runs:
                    for one, key in zip(params, keys, strict=True):
                        try:
                            with self.conn.transaction():
                                cur.execute(statement, one)
                        except psycopg.errors.Error as inner:
                            detail = str(inner).strip().splitlines()[0]
                            shown = key[0] if len(key) == 1 else key
                            return ApplyError(
                                f"PostgreSQL refused the {op} of {table} key={shown!r} in "
                                f"the batch ending at {batch[-1].end}: {detail}; nothing "
                                "was applied, "
                                "the checkpoint did not move (see docs/operations.md)")
        except psycopg.errors.Error as probe:  # the probe itself failed: report the original
            first_line += f" (locating the row failed too: {probe})"
        return ApplyError(f"applying the batch ending at {batch[-1].end} failed: {first_line}")
