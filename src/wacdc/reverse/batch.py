"""The app's transactions in commit order, read from `wacdc.reverse_log` a batch at a time.

A batch is every change of the transactions that committed between two snapshots:
visible in `upto` (the current one), not in `after` (the checkpoint). Each app
transaction is wholly in one batch (a commit is atomic for snapshots), and a batch
is applied to MySQL as one transaction with its checkpoint, so MySQL sees the app's
transactions whole. Inside a batch the changes go in capture order: two transactions
that touch the same row cannot overlap (the second waits for the first's row lock),
so every row's changes arrive in the order they committed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from wacdc.errors import WacdcError
from wacdc.reverse.plan import TablePlan
from wacdc.sink.state import state_sql


@dataclass(frozen=True)
class ReverseChange:
    seq: int
    txid: str
    table: str
    op: str  # I, U, D, T
    key: tuple[Any, ...]  # before an update or delete, in the plan's key order
    row: tuple[Any, ...]  # after an insert or update, in the plan's column order

    def where(self) -> str:
        """Where this change came from, for errors and logs."""
        return f"PostgreSQL transaction {self.txid}, change #{self.seq}"


@dataclass(frozen=True)
class Batch:
    upto: str  # the snapshot it ends at: the checkpoint once applied
    changes: list[ReverseChange]


@dataclass(frozen=True)
class Backlog:
    """What is captured and not yet applied (`wacdc_reverse_lag_*`)."""

    oldest: dt.datetime | None  # capture time of the oldest pending change
    wal_bytes: int  # WAL written since it (0 when nothing is pending)
    changes: int


def current_snapshot(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
    assert row is not None
    return str(row[0])


def read_batch(conn: psycopg.Connection, plans: dict[str, TablePlan], after: str) -> Batch:
    """Every change committed since `after`, in order (an empty batch when none)."""
    upto = current_snapshot(conn)
    counts = conn.execute(state_sql(
        "SELECT table_name, count(*) FROM {state}.reverse_log "
        "WHERE pg_visible_in_snapshot(txid, %s::pg_snapshot) "
        "AND NOT pg_visible_in_snapshot(txid, %s::pg_snapshot) GROUP BY table_name"),
        (upto, after)).fetchall()
    changes: list[ReverseChange] = []
    for table, _ in counts:
        plan = plans.get(table)
        if plan is None:
            raise WacdcError(
                f"reverse replication: PostgreSQL captured changes of table {table}, which "
                "it does not replicate (its capture trigger outlived a change of "
                "WACDC_TABLES?). Put the table back in WACDC_TABLES, or drop the trigger "
                f"wacdc_capture on it and delete its rows from wacdc.reverse_log")
        width = len(plan.key)
        for row in conn.execute(plan.select, {"table": table, "upto": upto,
                                              "after": after}).fetchall():
            changes.append(ReverseChange(int(row[0]), str(row[1]), table, str(row[2]),
                                         tuple(row[3:3 + width]), tuple(row[3 + width:])))
    changes.sort(key=lambda c: c.seq)
    return Batch(upto, changes)


def forget_applied(conn: psycopg.Connection, applied: str) -> int:
    """Delete what MySQL has committed (the log's rows seen by the checkpoint)."""
    cur = conn.execute(state_sql("DELETE FROM {state}.reverse_log "
                                 "WHERE pg_visible_in_snapshot(txid, %s::pg_snapshot)"),
                       (applied,))
    return cur.rowcount


def backlog(conn: psycopg.Connection, after: str) -> Backlog:
    """What the checkpoint `after` does not cover (in a bridge window the log also
    holds applied rows until their echo is read back)."""
    pending = ("FROM {state}.reverse_log "
               "WHERE NOT pg_visible_in_snapshot(txid, %(after)s::pg_snapshot)")
    row = conn.execute(state_sql(
        f"SELECT (SELECT captured_at {pending} ORDER BY seq LIMIT 1), "
        f"coalesce((SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), lsn) "
        f"{pending} ORDER BY seq LIMIT 1), 0), (SELECT count(*) {pending})"),
        {"after": after}).fetchone()
    assert row is not None
    return Backlog(row[0], int(row[1]), int(row[2]))
