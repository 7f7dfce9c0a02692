"""Writes that reach MySQL when they should not: in a bridge window (counted), after the
cutover under WACDC_FENCE=none (each one an alarm)."""

from __future__ import annotations

import time

from wacdc.events import Piece, Statement, Transaction
from wacdc.log import get_logger
from wacdc.observe import metrics
from wacdc.runtime import DaemonStatus

log = get_logger("wacdc.stream")
LATE_WRITES_LOGGED = 20  # per transaction; the metric counts every row


def write_in_bridge(txn: Transaction, status: DaemonStatus) -> None:
    """An app write that still reached MySQL in a bridge window: counted, and the window's
    quiet period starts again."""
    for change in txn.changes:
        metrics.bridge_mysql_writes.labels(table=change.table).inc()
    status.bridge.mysql_writes += len(txn.changes)
    status.bridge.last_mysql_write = time.time()


def statement_after_cutover(statement: Statement) -> None:
    """A TRUNCATE or DDL on a tracked table in MySQL after the cutover (FENCE=none): not
    applied to the primary (PostgreSQL), raised instead."""
    metrics.errors.labels(kind="StatementAfterCutover").inc()
    log.error("a schema change or TRUNCATE ran in MySQL after the cutover: NOT applied to "
              "PostgreSQL (it is the primary now); find who still uses MySQL",
              statement=statement.query[:300], position=str(statement.position))


def write_after_cutover(txn: Transaction | Piece) -> None:
    """An alarm for each row change that reached MySQL after the cutover (FENCE=none)."""
    for n, change in enumerate(txn.changes):
        metrics.writes_after_cutover.labels(table=change.table, op=change.op).inc()
        if n < LATE_WRITES_LOGGED:
            log.error("a write landed in MySQL after the cutover: applied to PostgreSQL too; "
                      "the app (or a job) still writes MySQL: stop it", table=change.table,
                      op=change.op, position=str(change.position))
    metrics.errors.labels(kind="WriteAfterCutover").inc()
    if len(txn.changes) > LATE_WRITES_LOGGED:
        log.error("more writes of that transaction landed in MySQL after the cutover",
                  rows=len(txn.changes),
                  end=str(txn.end if isinstance(txn, Transaction) else txn.position))
