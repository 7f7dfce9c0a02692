"""Lag before streaming: how far the source has run from where streaming will start.

During the snapshot (hours on a big table) the stream is not read yet, but the binlog
piles up and ops must see it (DESIGN §5): a thread polls the source head and the
position streaming will start at (the checkpoint, else the oldest table position of
the snapshot) into the daemon's backlog tracker. Its lag in seconds counts from when
the read view of that position opened: every change after it committed later, so the figure is an
upper bound by at most the time between the view and the first such change, and
never 0 while something is waiting. The figures also go to `wacdc.state` for
`wacdc status`.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pymysql

from wacdc.config import Settings
from wacdc.errors import ConnectError
from wacdc.events import BinlogPosition
from wacdc.log import get_logger, redact
from wacdc.observe.lag import LagTracker
from wacdc.sink import state, writer
from wacdc.sink.connection import connect_target
from wacdc.source.connection import connect
from wacdc.source.position import binlog_file_sizes, current_position

log = get_logger("wacdc.backlog")
POLL_S = 0.5
WARN_EVERY_S = 60.0


def stream_start(conn: psycopg.Connection) -> tuple[BinlogPosition, float | None] | None:
    """Where streaming will start, and since when changes after it may wait (unix time of
    the read view it came from; None for a checkpoint); None before any view opened."""
    checkpoint = state.get_checkpoint(conn)
    if checkpoint is not None:
        return checkpoint, None
    rows = conn.execute(state.state_sql(
        "SELECT t.binlog_file, t.binlog_pos, v.opened_at FROM {state}.snapshot_tables t "
        "LEFT JOIN {state}.snapshot_views v "
        "ON v.view_id = t.view_id WHERE t.binlog_file IS NOT NULL")).fetchall()
    if not rows:
        return None
    file, pos, opened = min(rows, key=lambda r: BinlogPosition(r[0], int(r[1])).key)
    opened_at = opened.timestamp() if isinstance(opened, dt.datetime) else None
    return BinlogPosition(file, int(pos)), opened_at


class BacklogWatcher(threading.Thread):
    """Polls the backlog into `tracker` until stopped (see the module)."""

    def __init__(self, settings: Settings, lease: writer.WriterLease,
                 tracker: LagTracker) -> None:
        super().__init__(name="wacdc-backlog", daemon=True)
        self.settings, self.lease = settings, lease
        self.tracker = tracker
        self.done = threading.Event()
        self.daemon_id = writer.holder_name()
        self._warned_at = 0.0

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)

    def run(self) -> None:
        target = source = None
        while not self.done.is_set():
            try:
                if target is None or target.closed:
                    target = connect_target(self.settings.target(), autocommit=True)
                    writer.join(target, self.lease)
                if source is None or not source.open:
                    source = connect(self.settings.source(), read_timeout=10)
                self.poll(target, source)
            except (ConnectError, psycopg.Error, pymysql.err.MySQLError, OSError) as exc:
                if writer.is_lost_lease(exc):
                    break  # the main thread stops at its next commit, with the message
                self._warn(exc)
                for conn in (target, source):
                    if conn is not None:
                        conn.close()
                target = source = None
            self.done.wait(POLL_S)
        for conn in (target, source):
            if conn is not None:
                conn.close()

    def poll(self, target: psycopg.Connection, source: pymysql.connections.Connection
             ) -> None:
        start = stream_start(target)
        if start is None:
            return  # no read view yet: the lag is not known
        position, view_opened = start
        head = current_position(source)
        sizes = binlog_file_sizes(source) if position.file != head.file else None
        lag = self.tracker
        lag.applied = position
        lag.polled(head, sizes)
        if lag.behind_since is not None and view_opened is not None:
            lag.behind_since = min(lag.behind_since, view_opened)
        state.report_liveness(target, head, lag.seconds(), lag.bytes(), self.daemon_id)

    def _warn(self, exc: BaseException) -> None:
        if time.monotonic() - self._warned_at >= WARN_EVERY_S:
            self._warned_at = time.monotonic()
            text = redact(str(exc)).strip().splitlines()
            log.warning("cannot poll the source head for the lag during the snapshot; "
                        "retrying (the lag figures are not current meanwhile)",
                        error=text[0] if text else type(exc).__name__)
