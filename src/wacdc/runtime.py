"""The running daemon's observable state: its phase, lag, progress and health.

One `DaemonStatus` per `wacdc run`, created by the coordinator and handed explicitly to
the stream, the snapshot, the cutover and the HTTP server; nothing keeps one at module
level. `bind_metrics` points the scrape-time gauges at it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import psycopg

from wacdc.log import redact
from wacdc.observe import metrics
from wacdc.observe.lag import LagTracker
from wacdc.observe.status import StatusView, build, live_tables, position
from wacdc.sink import state, writer


class Phase(StrEnum):
    """The daemon's phase; the text is what `wacdc.state.phase` stores."""

    STARTING = "starting"
    WAITING_FOR_LOCK = "waiting_for_lock"
    SNAPSHOT = "snapshot"
    CATCHUP = "catchup"
    STREAMING = "streaming"
    CUTOVER = "cutover"
    BRIDGE = "bridge"  # cut over, MySQL not fenced yet: both stores replicate each other
    DONE = "done"
    REVERSE = "reverse"  # after the cutover: PostgreSQL's changes go back to MySQL
    ROLLBACK = "rollback"  # PostgreSQL frozen: the way back to MySQL
    FAILED = "failed"


STREAM_PHASES = (Phase.CATCHUP, Phase.STREAMING, Phase.CUTOVER, Phase.BRIDGE)
# Stored phases that mean "the cutover is done: PostgreSQL is the primary".
CUT_OVER = (Phase.DONE, Phase.REVERSE, Phase.ROLLBACK)
assert tuple(Phase) == metrics.PHASES  # the gauge's label values are the phases


@dataclass
class ReverseFigures:
    """Reverse replication's figures (wacdc.reverse.worker writes them)."""

    lag_seconds: float = 0.0
    lag_bytes: int = 0
    pending_changes: int = 0
    applied_changes: int = 0
    batches: int = 0
    checkpoint: str | None = None  # the PostgreSQL snapshot MySQL has everything up to
    as_of: float | None = None  # time.time() of the last liveness report to wacdc.state

    def document(self) -> dict[str, Any]:
        return {"lag_seconds": round(self.lag_seconds, 3), "lag_bytes": self.lag_bytes,
                "pending_changes": self.pending_changes,
                "applied_changes": self.applied_changes, "batches": self.batches,
                "checkpoint": self.checkpoint}


@dataclass
class BridgeFigures:
    """A bridge window's figures (wacdc.cutover.bridge and the stream write them)."""

    opened_at: float = 0.0  # time.time()
    closes_by: float = 0.0  # --bridge-max
    quiet_s: float = 60.0
    last_mysql_write: float | None = None  # an app write read from MySQL's binlog
    mysql_writes: int = 0
    conflicts: int = 0

    def document(self, reverse: ReverseFigures) -> dict[str, Any]:
        def stamp(t: float | None) -> str | None:
            return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

        return {"opened_at": stamp(self.opened_at), "closes_by": stamp(self.closes_by),
                "quiet_s": self.quiet_s, "last_mysql_write": stamp(self.last_mysql_write),
                "mysql_writes": self.mysql_writes, "conflicts": self.conflicts,
                "reverse": reverse.document()}


@dataclass
class DaemonStatus:
    """What the running daemon knows about itself; written by its loop, read by requests."""

    phase: Phase = Phase.STARTING
    stall_seconds: float = 60.0
    lag: LagTracker = field(default_factory=LagTracker)  # the stream's
    backlog: LagTracker = field(default_factory=LagTracker)  # before streaming starts
    started_at: float = field(default_factory=time.time)
    last_progress: float = field(default_factory=time.monotonic)
    waiting_for: str | None = None  # what the loop waits on, when it waits (the lock)
    last_error: str | None = None
    reverse: ReverseFigures = field(default_factory=lambda: ReverseFigures())
    bridge: BridgeFigures = field(default_factory=lambda: BridgeFigures())
    daemon_id: str = field(default_factory=writer.holder_name)

    def set_phase(self, phase: Phase, conn: psycopg.Connection | None = None, *,
                  source_database: str | None = None, error: str | None = None) -> None:
        """The phase in memory (and the gauge); with `conn`, in `wacdc.state` too."""
        if conn is not None:
            state.set_phase(conn, phase, source_database, error=error)
        self.phase = phase
        metrics.set_phase(phase)
        self.progressed()

    def progressed(self) -> None:
        self.last_progress = time.monotonic()

    @contextmanager
    def busy(self, what: str) -> Iterator[None]:
        """Long server-side work with no progress to report (index builds): healthy."""
        self.waiting_for = what
        try:
            yield
        finally:
            self.waiting_for = None
            self.progressed()

    def failed(self, error: str) -> None:
        self.last_error = redact(error)
        self.set_phase(Phase.FAILED)

    def _tracker(self) -> LagTracker | None:
        """Whose figures are lag now: the stream's from catch-up through the cutover, the
        backlog watcher's before streaming (wacdc.observe.backlog); None when not known."""
        if self.phase in STREAM_PHASES:
            return self.lag if self.lag.head is not None else None
        if self.phase in (Phase.STARTING, Phase.SNAPSHOT):
            backlog = self.backlog
            if backlog.applied is not None and backlog.head is not None:
                return backlog
        return None

    def lag_known(self) -> bool:
        """Known: current figures (a head polled within the last seconds), or done."""
        tracker = self._tracker()
        return self.phase in CUT_OVER or (tracker is not None and not tracker.stale())

    def lag_seconds(self) -> float:
        tracker = self._tracker()
        return tracker.seconds() if tracker is not None else 0.0

    def lag_bytes(self) -> int:
        tracker = self._tracker()
        return tracker.bytes() if tracker is not None else 0

    def cutover_ready(self) -> bool:
        return self.phase == Phase.STREAMING and self.lag.caught_up()

    def health(self) -> tuple[bool, str]:
        if self.phase == Phase.FAILED:
            return False, f"failed: {self.last_error or 'see the logs'}"
        quiet = time.monotonic() - self.last_progress
        if quiet > self.stall_seconds and not self.waiting_for:
            return False, (f"stalled: no progress for {quiet:.0f}s in phase {self.phase} "
                           f"(threshold {self.stall_seconds:.0f}s); see the logs for "
                           "reconnect attempts")
        if self.waiting_for:
            return True, f"ok: waiting for {self.waiting_for}"
        return True, f"ok: {self.phase}"

    def document(self) -> dict[str, Any]:
        """`/status`: the same document `wacdc status --json` prints (observe.status)."""
        healthy, reason = self.health()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return build(StatusView(
            phase=str(self.phase), healthy=healthy, health=reason,
            waiting_for=self.waiting_for,
            daemon={"running": True, "id": self.daemon_id, "last_seen": now,
                    "seconds_since_seen": 0.0, "stopped_since": None},
            applied_position=position(self.lag.applied), source_head=position(self.lag.head),
            lag_seconds=round(self.lag_seconds(), 3), lag_bytes=self.lag_bytes(),
            lag_known=self.lag_known(), lag_as_of=now, cutover_ready=self.cutover_ready(),
            last_applied_timestamp=_sample(metrics.last_applied_timestamp) or None,
            stall_seconds=self.stall_seconds, tables=live_tables(),
            reverse=self.reverse.document() if self.phase in (Phase.REVERSE, Phase.ROLLBACK)
            else None,
            bridge=self.bridge.document(self.reverse) if self.phase == Phase.BRIDGE else None,
            last_error=self.last_error,
            started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at))))


def _sample(gauge: Any) -> float:
    return float(gauge.collect()[0].samples[0].value)


def bind_metrics(status: DaemonStatus) -> None:
    """The gauges read `status` at scrape time, so a stuck loop still shows lag growing."""
    metrics.lag_seconds.set_function(status.lag_seconds)
    metrics.lag_bytes.set_function(status.lag_bytes)
    metrics.lag_known.set_function(lambda: 1.0 if status.lag_known() else 0.0)
    metrics.cutover_ready.set_function(lambda: 1.0 if status.cutover_ready() else 0.0)
    metrics.reverse_lag_seconds.set_function(lambda: status.reverse.lag_seconds)
    metrics.reverse_lag_bytes.set_function(lambda: status.reverse.lag_bytes)
