"""Waiting for changes in flight to land, so verify compares a suspect row again only
once the daemon has had the chance to apply it.

Forward (phases catchup/streaming): until the checkpoint passes the source head as it was
after the read. Reverse (after the cutover, PostgreSQL is the primary): until every
PostgreSQL transaction committed before the wait began has reached MySQL, i.e. its capture
rows are gone from wacdc.reverse_log (they are deleted once MySQL committed them)."""

from __future__ import annotations

import time

import psycopg

from wacdc.config import Settings
from wacdc.events import BinlogPosition
from wacdc.log import get_logger
from wacdc.runtime import Phase
from wacdc.sink import writer
from wacdc.sink.state import get_checkpoint, read_status, state_sql

log = get_logger("wacdc.verify")
SETTLE_TIMEOUT_S = 30.0


def settling_direction(settings: Settings, target: psycopg.Connection) -> str | None:
    """'forward' or 'reverse' while a running daemon replicates that way; else None."""
    status = read_status(target, writer.lock_key(settings.target().database))
    if not status or status.writer_pid is None:
        return None
    if status.phase in (Phase.CATCHUP, Phase.STREAMING):
        return "forward"
    if status.phase == Phase.REVERSE:
        return "reverse"
    return None


def wait_forward(target: psycopg.Connection, head: BinlogPosition) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        checkpoint = get_checkpoint(target)
        if checkpoint is not None and checkpoint >= head:
            return
        time.sleep(0.1)
    log.warning("wacdc did not reach the source head in time; differences below may be "
                "changes not applied yet", head=str(head), waited_s=SETTLE_TIMEOUT_S)


def wait_reverse(target: psycopg.Connection) -> None:
    row = target.execute("SELECT pg_current_snapshot()::text").fetchone()
    assert row is not None
    committed_before = str(row[0])
    pending = state_sql("SELECT count(*) FROM {state}.reverse_log "
                        "WHERE pg_visible_in_snapshot(txid, %s::pg_snapshot)")
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    left = 0
    while time.monotonic() < deadline:
        found = target.execute(pending, (committed_before,)).fetchone()
        left = int(found[0]) if found else 0
        if left == 0:
            return
        time.sleep(0.1)
    log.warning("reverse replication did not bring MySQL up to PostgreSQL in time; "
                "differences below may be changes not applied yet",
                pending_changes=left, waited_s=SETTLE_TIMEOUT_S)
