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
from dataclasses import dataclass

import psycopg
from psycopg import sql

from wacdc import metrics, state
from wacdc.errors import SchemaError, WacdcError
from wacdc.schema.convert import BadValuePolicy, RowConverter
from wacdc.schema.ddl import TargetTable
from wacdc.source.binlog import Transaction
from wacdc.source.position import BinlogPosition


class ApplyError(WacdcError):
    """A change PostgreSQL refused; names table, key and position. Nothing is skipped."""


@dataclass
class ImagePlan:
    """How to apply row images with one particular set of columns."""

    converter: RowConverter
    upsert: sql.Composed
    delete: sql.Composed


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
        qualified = sql.SQL("{}.{}").format(sql.Identifier(tt.schema), sql.Identifier(tt.name))
        non_key = [n for n in names if n not in tt.key]
        keys = sql.SQL(", ").join(map(sql.Identifier, tt.key))
        action = sql.SQL("DO UPDATE SET {}").format(sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in non_key)) \
            if non_key else sql.SQL("DO NOTHING")
        upsert = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
            qualified, sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(sql.Placeholder() * len(names)), keys, action)
        delete = sql.SQL("DELETE FROM {} WHERE {}").format(
            qualified, sql.SQL(" AND ").join(
                sql.SQL("{} = %s").format(sql.Identifier(k)) for k in tt.key))
        return ImagePlan(converter, upsert, delete)


@dataclass
class BatchStats:
    transactions: int = 0
    rows: int = 0
    skipped: int = 0


class Applier:
    def __init__(self, conn: psycopg.Connection, sinks: dict[str, TableSink]) -> None:
        self.conn = conn
        self.sinks = sinks

    def apply(self, batch: Sequence[Transaction]) -> BatchStats:
        """Apply whole transactions and move the checkpoint to the end of the last one."""
        stats = BatchStats(transactions=len(batch))
        if not batch:
            return stats
        started = time.monotonic()
        # (statement, [params...]) runs in source order; same-statement neighbours merge.
        runs: list[tuple[sql.Composed, list[tuple], str, str, list[tuple]]] = []
        counts: dict[tuple[str, str], int] = {}

        def add(statement: sql.Composed, params: tuple, table: str, op: str,
                key: tuple) -> None:
            if runs and runs[-1][0] is statement:
                runs[-1][1].append(params)
                runs[-1][4].append(key)
            else:
                runs.append((statement, [params], table, op, [key]))

        for txn in batch:
            for change in txn.changes:
                sink = self.sinks[change.table]
                if sink.snapshot_position is not None and txn.end <= sink.snapshot_position:
                    stats.skipped += 1
                    continue
                where = str(change.position)
                plan = sink.plan(change.names)
                converter = plan.converter
                if change.after is not None:
                    row = converter.convert(change.after, where)
                    if change.before is not None:
                        old_key = converter.key_of(converter.convert(change.before, where))
                        if old_key != converter.key_of(row):
                            add(plan.delete, old_key, change.table, "delete", old_key)
                    add(plan.upsert, row, change.table, change.op, converter.key_of(row))
                else:
                    assert change.before is not None
                    key = converter.key_of(converter.convert(change.before, where))
                    add(plan.delete, key, change.table, "delete", key)
                counts[(change.table, change.op)] = counts.get((change.table, change.op), 0) + 1
                stats.rows += 1
        end = batch[-1].resume_at
        try:
            with self.conn.transaction(), self.conn.pipeline(), self.conn.cursor() as cur:
                for statement, params, _, _, _ in runs:
                    cur.executemany(statement, params)
                state.add_applied_rows(self.conn, counts)
                state.set_checkpoint(self.conn, end)
        except psycopg.errors.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise
            raise self._explain(exc, runs, batch) from None
        for (table, op), n in counts.items():
            metrics.rows_applied.labels(table=table, op=op).inc(n)
        metrics.transactions.inc(len(batch))
        metrics.apply_batch_seconds.observe(time.monotonic() - started)
        metrics.last_applied_timestamp.set(batch[-1].commit_time)
        return stats

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
