"""Reverse replication's loop: PostgreSQL's change log -> the retired MySQL tables.

One `ReverseSession` per connection pair (the coordinator retries and reconnects);
each step reads the changes committed since the checkpoint and applies them to
MySQL with the new checkpoint in one MySQL transaction, then forgets them in
PostgreSQL. A crash between the two leaves rows MySQL already has; the checkpoint
says so and they are forgotten at the next start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
import pymysql

from wacdc.config import Settings
from wacdc.errors import WacdcError
from wacdc.log import get_logger
from wacdc.observe import metrics
from wacdc.reverse.apply import (
    MySQLApplier,
    ensure_checkpoint_table,
    read_checkpoint,
    session_setup,
)
from wacdc.reverse.batch import Batch, backlog, forget_applied, read_batch
from wacdc.reverse.capture import start_snapshot
from wacdc.reverse.plan import TablePlan, plan_table
from wacdc.runtime import DaemonStatus
from wacdc.sink import state
from wacdc.source.catalog import RETIRED_SUFFIX
from wacdc.source.connection import server_info
from wacdc.source.introspect import introspect_tables

log = get_logger("wacdc.reverse")
LIVENESS_EVERY_S = 1.0
BRIDGE_LOCK_WAIT_S = 1  # a bridge window's reverse batch behind an app's MySQL row lock
NOT_CAPTURED = ("reverse replication cannot start: PostgreSQL's changes since the cutover "
                "were not captured (the cutover ran with WACDC_REVERSE=0, or by a wacdc "
                "without it), so the retired MySQL tables are behind by an unknown amount. "
                "Set WACDC_REVERSE=0 to run without the way back, or make the MySQL tables "
                "current by hand and request a new cutover (docs/rollback.md)")


def build_plans(target: psycopg.Connection, mysql: pymysql.connections.Connection,
                database: str, schema: str, tables: list[str],
                suffix: str = RETIRED_SUFFIX) -> dict[str, TablePlan]:
    """Each replicated table's plan, against its retired MySQL table (in a bridge
    window, `suffix` "": the tables the app still uses)."""
    retired = introspect_tables(mysql, database, [t + suffix for t in tables])
    missing = [t for t in tables if t + suffix not in retired]
    if missing and not suffix:
        raise WacdcError("a bridge window writes the MySQL tables, and these are not there: "
                         + ", ".join(missing))
    if missing:
        raise WacdcError(
            "reverse replication writes the retired MySQL tables, and these are not there: "
            + ", ".join(t + RETIRED_SUFFIX for t in missing) + ". It needs the cutover's "
            "rename fence (WACDC_FENCE=rename); with another fence set WACDC_REVERSE=0")
    mysql.commit()
    return {t: plan_table(target, schema, t, retired[t + suffix], t + suffix) for t in tables}


@dataclass
class ReverseSession:
    """The applying pair: `target` (the writer's PostgreSQL connection, autocommit) and
    `mysql` (autocommit off)."""

    settings: Settings
    target: psycopg.Connection
    mysql: pymysql.connections.Connection
    tables: list[str]
    status: DaemonStatus
    plans: dict[str, TablePlan] = field(default_factory=dict)
    after: str = ""  # the checkpoint: the snapshot MySQL has every change up to
    # A bridge window (wacdc.cutover.bridge): MySQL's live tables; the log's rows stay
    # until the forward stream reads their echo back (wacdc.reverse.conflicts).
    bridge: bool = False

    def __post_init__(self) -> None:
        session_setup(self.mysql)
        if self.bridge:  # the forward stream waits meanwhile: an app lock is retried later
            with self.mysql.cursor() as cur:
                cur.execute(f"SET SESSION innodb_lock_wait_timeout = {BRIDGE_LOCK_WAIT_S}")
        # How the log's row texts are read back (they are written the same way).
        self.target.execute("SET DateStyle = 'ISO, YMD'")
        self.target.execute("SET IntervalStyle = 'postgres'")
        ensure_checkpoint_table(self.mysql)
        self.plans = build_plans(self.target, self.mysql, self.settings.source().database,
                                 self.settings.target_schema, self.tables,
                                 "" if self.bridge else RETIRED_SUFFIX)
        self.applier = MySQLApplier(self.mysql, self.plans,
                                    self.settings.bad_value_policy == "strict",
                                    server_info(self.mysql).is_mariadb,
                                    frozenset(t.strip() for t in
                                              self.settings.reverse_skip.split(",")
                                              if t.strip()), self.bridge)
        stored = read_checkpoint(self.mysql)
        start = stored or start_snapshot(self.target)
        if start is None:
            raise WacdcError(NOT_CAPTURED)
        self.after = start
        forgotten = 0 if self.bridge else forget_applied(self.target, start)
        log.info("reverse replication: PostgreSQL -> the MySQL tables the app still uses "
                 "(a bridge window)" if self.bridge else
                 "reverse replication: PostgreSQL -> the retired MySQL tables",
                 checkpoint=start, resumed=stored is not None, forgotten=forgotten,
                 tables=len(self.tables))

    def step(self) -> Batch:
        """Apply what committed since the checkpoint (nothing, when nothing did)."""
        batch = read_batch(self.target, self.plans, self.after)
        figures = self.status.reverse
        if batch.changes:
            counts = self.applier.apply(batch, figures.batches + 1, figures.applied_changes)
            self.after = batch.upto
            if not self.bridge:
                forget_applied(self.target, batch.upto)
            for (table, op), n in counts.items():
                metrics.reverse_rows_applied.labels(table=table, op=op).inc(n)
            metrics.reverse_transactions.inc()
            figures.batches += 1
            figures.applied_changes += len(batch.changes)
        figures.checkpoint = self.after
        self.measure()
        self.status.progressed()
        return batch

    def measure(self) -> None:
        pending = backlog(self.target, self.after)
        figures = self.status.reverse
        figures.pending_changes = pending.changes
        figures.lag_bytes = pending.wal_bytes if pending.changes else 0
        figures.lag_seconds = 0.0 if pending.oldest is None else max(
            0.0, time.time() - pending.oldest.timestamp())
        now = time.time()
        if self.bridge:
            figures.as_of = now  # the forward stream reports liveness
        elif figures.as_of is None or now - figures.as_of >= LIVENESS_EVERY_S:
            # `wacdc status` sees the daemon alive (forward: nothing to replicate).
            state.report_liveness(self.target, None, 0.0, 0, self.status.daemon_id)
            figures.as_of = now

    def drain(self, give_up: float | None = None) -> bool:
        """Apply until nothing is pending; False when `give_up` (monotonic) came first."""
        while True:
            if not self.step().changes:
                return True
            if give_up is not None and time.monotonic() > give_up:
                return False


def run_loop(session: ReverseSession, stop: threading.Event, poll: float,
             exit_when_caught_up: bool, on_poll: list[Callable[[], bool]]) -> None:
    """Step until stopped (or caught up, with `exit_when_caught_up`); `on_poll` run
    before each step (the rollback controller) may end it by returning True."""
    while not stop.is_set():
        if any(hook() for hook in on_poll):
            return
        if session.step().changes:
            continue
        if exit_when_caught_up:
            log.info("reverse replication caught up; exiting (--exit-when-caught-up)",
                     batches=session.status.reverse.batches,
                     changes=session.status.reverse.applied_changes)
            return
        stop.wait(poll)
