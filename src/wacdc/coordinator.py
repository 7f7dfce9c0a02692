"""`wacdc run`: the writer lock, snapshot -> catch-up -> streaming, retries, signals,
following after the cutover, and the failure record.

It creates the daemon's state (wacdc.runtime) and hands it to everything that reports
into it; it wires the cutover controller to the stream (which knows nothing of it).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import FrameType

import psycopg
import pymysql
import tenacity

from wacdc.config import Settings
from wacdc.cutover.control import ROLLBACK
from wacdc.cutover.controller import CutoverController
from wacdc.cutover.http import http_endpoint
from wacdc.errors import EXIT_OK, ConnectError, WacdcError
from wacdc.events import BinlogPosition
from wacdc.evolution import SchemaEvolver
from wacdc.log import get_logger, redact
from wacdc.observe import metrics
from wacdc.observe.backlog import BacklogWatcher
from wacdc.observe.http import serve
from wacdc.refresh import ViewRefresher
from wacdc.reverse.rollback import finish_interrupted
from wacdc.reverse.runner import reverse_off, run_reverse
from wacdc.runtime import CUT_OVER, DaemonStatus, Phase, bind_metrics
from wacdc.sink import state, writer
from wacdc.sink.connection import connect_target
from wacdc.sink.pool import TargetPool
from wacdc.sink.pooler import refuse_a_pooler
from wacdc.snapshot import SnapshotResult, run_snapshot
from wacdc.source.binlog import control_read_timeout, timed_out
from wacdc.source.catalog import plan_target
from wacdc.source.connection import connect
from wacdc.stream import HEARTBEAT_S, SourceGone, StreamSession

log = get_logger("wacdc.daemon")
_PURGED = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: the position is not on the server


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM (Railway redeploys) and SIGINT finish the current unit of work, then stop."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second signal: stopping harder", signal=signal.Signals(signum).name)
            raise KeyboardInterrupt
        log.info("stop requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run(settings: Settings, stop: threading.Event, pool: TargetPool, *,
        snapshot_only: bool = False, exit_when_caught_up: bool = False,
        resume_after_ddl: bool = False) -> int:
    """`stop` is set by the signal handlers (install_stop_handlers) to end cleanly;
    `pool` lends the short control-plane connections (wacdc.sink.pool). Serves
    /metrics, /healthz, /status and POST /cutover on WACDC_METRICS_PORT meanwhile."""
    status = DaemonStatus(stall_seconds=settings.stall_seconds)
    bind_metrics(status)
    serve(settings.metrics_port, status, {"/cutover": http_endpoint(settings, pool),
                                          "/rollback": http_endpoint(settings, pool, ROLLBACK)})
    daemon = Daemon(settings, stop, pool, status)
    return daemon.run(snapshot_only, exit_when_caught_up, resume_after_ddl)


class LeaseHolder:
    """The streaming side's current lease: each reconnect takes the lock and a new one."""

    def __init__(self) -> None:
        self.lease: writer.WriterLease | None = None


@contextmanager
def fenced(lease: writer.WriterLease | LeaseHolder | None) -> Iterator[None]:
    """A write refused by the writer fence anywhere inside: stop with LostWriterLock."""
    try:
        yield
    except psycopg.Error as exc:
        if writer.is_lost_lease(exc):
            current = lease.lease if isinstance(lease, LeaseHolder) else lease
            raise writer.lost(exc, current) from None
        raise


class StopRequested(Exception):
    """A stop signal arrived while waiting to retry."""


def transient_side(exc: BaseException) -> str | None:
    """Which side a transient failure came from, or None if it is not transient."""
    if isinstance(exc, psycopg.OperationalError):
        return "target"
    if isinstance(exc, SourceGone):
        return "source"
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and exc.args[0] == _PURGED:
        return None
    if isinstance(exc, pymysql.err.OperationalError | ConnectionError | OSError):
        return "source"
    if isinstance(exc, ConnectError):
        return exc.side
    return None


@dataclass
class Daemon:
    """One `wacdc run`: its settings, stop event, control-plane pool and state."""

    settings: Settings
    stop: threading.Event
    pool: TargetPool
    status: DaemonStatus

    def run(self, snapshot_only: bool, exit_when_caught_up: bool,
            resume_after_ddl: bool) -> int:
        settings, lease = self.settings, None
        result = SnapshotResult()
        try:
            with connect_target(settings.target(), autocommit=True) as lock_conn:
                refuse_a_pooler(lock_conn, settings)
                lease = acquire_writer_lock(lock_conn, settings, self.stop, "snapshot",
                                            self.status)
                if lease is None:
                    return EXIT_OK
                following = state.get_phase(lock_conn) in CUT_OVER
                primary = following and settings.fence != "none"  # PostgreSQL is
                if primary:
                    log.info("the cutover is done: PostgreSQL is the primary (see `wacdc "
                             "status`)")
                    if not self._reverses():  # else its connection takes the lock
                        return self.after_cutover(exit_when_caught_up)
                if not following:
                    finish_interrupted(settings, lock_conn, self._table_names)
                    result = self._snapshot(lease)
        except WacdcError as exc:
            self._record_failure(exc, lease)
            raise
        if primary:
            return self.after_cutover(exit_when_caught_up)
        if following:  # WACDC_FENCE=none: MySQL may still be written; keep following it
            return self._follow_after_cutover(exit_when_caught_up)
        # The lock is released here and taken again by the streaming connection.
        if result.stopped:
            log.info("stopped during the snapshot; run again to continue")
            return EXIT_OK
        if snapshot_only:
            log.info("snapshot done; streaming starts at the next `wacdc run`",
                     start_position=str(result.start_position))
            return EXIT_OK
        code = self._guarded_stream(result.positions, exit_when_caught_up, resume_after_ddl)
        if self.status.phase == Phase.DONE and not self.stop.is_set():
            return self.after_cutover(exit_when_caught_up)
        return code

    def _finish_rollback(self) -> None:
        """A rollback whose MySQL side failed on a lost connection: finish it now."""
        try:
            for attempt in self._retrying():
                with attempt, self.pool.connection() as conn:
                    finish_interrupted(self.settings, conn, self._table_names)
        except StopRequested:
            log.info("stopped while finishing the rollback; the next start finishes it")

    def _reverses(self) -> bool:
        return self.settings.reverse and self.settings.fence == "rename"

    def _table_names(self) -> list[str]:
        return [t.name for t in plan_target(self.settings, allow_retired=True)[1]]

    def _snapshot(self, lease: writer.WriterLease) -> SnapshotResult:
        self.status.set_phase(Phase.SNAPSHOT)
        # Lag while the binlog is unread.
        watcher = BacklogWatcher(self.settings, lease, self.status.backlog)
        watcher.start()
        try:
            with fenced(lease):
                return run_snapshot(self.settings, self.stop, lease,
                                    on_chunk=lambda t, n: self.status.progressed(),
                                    status=self.status)
        finally:
            watcher.stop()

    def _follow_after_cutover(self, exit_when_caught_up: bool) -> int:
        """A restart after a WACDC_FENCE=none cutover: follow the binlog again (see
        StreamSession.following)."""
        log.warning("the cutover is done and WACDC_FENCE=none: following the MySQL binlog "
                    "for writes that land there after the cutover (each one is an alarm); "
                    "stop wacdc once the app writes PostgreSQL only")
        return self._guarded_stream({}, exit_when_caught_up, False)

    def _guarded_stream(self, snapshot_positions: dict[str, BinlogPosition],
                        exit_when_caught_up: bool, resume_after_ddl: bool) -> int:
        holder = LeaseHolder()
        try:
            with fenced(holder):
                return self.stream(snapshot_positions, exit_when_caught_up,
                                   resume_after_ddl, holder)
        except WacdcError as exc:
            self._record_failure(exc, holder.lease)
            raise

    def after_cutover(self, exit_when_caught_up: bool = False) -> int:
        """PostgreSQL is the primary: reverse replication (WACDC_REVERSE, the default),
        and forward again after a rollback; without it, refresh the profile's
        materialized views on a schedule (WACDC_MATVIEW_REFRESH; 0: exit) until stopped."""
        settings, status = self.settings, self.status
        while self._reverses():
            code = self.reverse(exit_when_caught_up)
            if status.phase != Phase.CATCHUP or self.stop.is_set():
                return code
            # Rolled back: MySQL is the primary; forward until stopped or cut over again.
            self._finish_rollback()
            code = self._guarded_stream({}, exit_when_caught_up, False)
            if status.phase != Phase.DONE or self.stop.is_set():
                return code
        with self.pool.connection() as conn:
            reverse_off(settings, conn, self._table_names)
        status.set_phase(Phase.DONE)
        refresher = ViewRefresher(settings, self.pool)
        if not refresher.needed:
            return EXIT_OK
        status.waiting_for = (f"the next materialized view refresh (every "
                              f"{refresher.interval:.0f}s); the cutover is done")
        log.info("refreshing materialized views on a schedule", every_s=refresher.interval)
        while not self.stop.wait(refresher.interval):
            refresher.refresh()
            status.progressed()
        log.info("stopped")
        return EXIT_OK

    def _record_failure(self, exc: WacdcError, lease: writer.WriterLease | None) -> None:
        """Phase `failed` with the reason, for `wacdc status` and the next operator; only
        while this instance is still the writer (a new one's phase is not overwritten)."""
        self.status.failed(str(exc))
        metrics.errors.labels(kind=type(exc).__name__).inc()
        if isinstance(exc, writer.LostWriterLock | writer.DeploymentClash) or lease is None:
            return  # the state is another instance's (or deployment's) to write
        try:
            with self.pool.connection() as conn:
                writer.join(conn, lease)  # undone when the pool takes it back
                # After the cutover PostgreSQL is the primary: a failure while following
                # MySQL (WACDC_FENCE=none), in reverse or in a bridge window (it opens
                # again at the restart) is recorded, the phase stays.
                stored, keep = state.get_phase(conn), (*CUT_OVER, Phase.BRIDGE)
                state.set_phase(conn, stored if stored in keep else Phase.FAILED,
                                error=str(exc))
        except (ConnectError, psycopg.Error) as note:
            log.error("could not record the failure in the target",
                      error=str(note).strip().splitlines()[0] if str(note).strip() else "")

    def reverse(self, exit_when_caught_up: bool) -> int:
        """Reverse replication until stopped or rolled back (then phase `catchup`)."""
        holder = LeaseHolder()
        try:
            for attempt in self._retrying():
                with attempt:
                    return run_reverse(self.settings, self.stop, self.status, holder,
                                       lambda conn, what: acquire_writer_lock(
                                           conn, self.settings, self.stop, what, self.status),
                                       self._table_names(), exit_when_caught_up,
                                       [ViewRefresher(self.settings, self.pool).due])
        except StopRequested:
            log.info("stopped while reconnecting; the reverse checkpoint is where it was")
        except WacdcError as exc:
            self._record_failure(exc, holder.lease)
            raise
        return EXIT_OK

    def stream(self, snapshot_positions: dict[str, BinlogPosition],
               exit_when_caught_up: bool, resume_after_ddl: bool = False,
               holder: LeaseHolder | None = None) -> int:
        """Follow the binlog from the checkpoint; reconnect and resume on connection loss."""
        # A cutover interrupted after its fence finds the source tables renamed.
        profile, tables = plan_target(self.settings, allow_retired=True)
        evolver = SchemaEvolver(self.settings, profile, {t.name: t for t in tables},
                                resume_after_ddl)
        holder = holder or LeaseHolder()
        try:
            for attempt in self._retrying():
                with attempt:
                    return self._stream_once(evolver, snapshot_positions,
                                             exit_when_caught_up, holder)
        except StopRequested:
            log.info("stopped while reconnecting; the checkpoint is where it was")
            return EXIT_OK
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] == _PURGED:
                raise WacdcError(
                    f"the binlog position wacdc needs is no longer on the source "
                    f"({exc.args[1]}): binlogs were purged while wacdc was behind. A new "
                    "snapshot is needed: see docs/operations.md, 'Binlog purged'") from None
            raise
        return EXIT_OK

    def _retrying(self) -> tenacity.Retrying:
        def sleep(seconds: float) -> None:
            if self.stop.wait(seconds):
                raise StopRequested

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: transient_side(e) is not None),
            wait=tenacity.wait_exponential_jitter(initial=0.5, max=30, jitter=1),
            sleep=sleep, before_sleep=self._before_retry, reraise=True)

    def _before_retry(self, retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        side = transient_side(exc) if exc else "source"
        metrics.reconnects.labels(side=side or "source").inc()
        # A read that timed out: the connection went silent (docs/operations.md, "Dead
        # connections"): SourceDead, TargetDead, DecodeProcessHung carry their bound; a
        # bare timeout is the source control connection's.
        bound = getattr(exc, "bound_s", None) or (
            control_read_timeout(HEARTBEAT_S, self.settings.cutover_max_freeze)
            if exc is not None and timed_out(exc) else None)
        log.warning("dead or half-open connection: nothing received within its bound; "
                    "reconnecting and resuming from the checkpoint" if bound else
                    "connection lost; reconnecting and resuming from the checkpoint",
                    side=side, error=redact(str(exc)).splitlines()[0] if exc else "",
                    **({"bound_s": bound} if bound else {}),
                    attempt=retry_state.attempt_number,
                    retry_in_s=round(retry_state.upcoming_sleep, 2))

    def _stream_once(self, evolver: SchemaEvolver,
                     snapshot_positions: dict[str, BinlogPosition],
                     exit_when_caught_up: bool, holder: LeaseHolder) -> int:
        settings, status = self.settings, self.status
        target = connect_target(settings.target(), autocommit=True)
        # Bounded reads: a dead or half-open control connection fails instead of hanging.
        control = connect(settings.source(), read_timeout=control_read_timeout(
            HEARTBEAT_S, settings.cutover_max_freeze))
        with target, control:
            # The lock lives on the applying connection: if that connection dies, so does
            # the lock, and this instance must win it again (a new epoch) before applying.
            holder.lease = acquire_writer_lock(target, settings, self.stop, "streaming",
                                               status)
            if holder.lease is None:
                return EXIT_OK
            # Another instance cut over while this one waited (or a restart after the
            # cutover): done, unless WACDC_FENCE=none, where the binlog is followed on.
            if state.get_phase(target) in CUT_OVER and settings.fence != "none":
                status.set_phase(Phase.DONE)
                return EXIT_OK
            session = StreamSession(settings, evolver, snapshot_positions, self.stop,
                                    target, control, holder.lease, status)
            with ExitStack() as cleanup:
                # Pieces of a transaction whose end was not applied: never commit them
                # with the connection's close (a restart reads that transaction again).
                cleanup.callback(session.source.close)
                cleanup.callback(session.applier.abandon)
                cutover = CutoverController(settings, session, status)
                cleanup.callback(cutover.close)  # a bridge window's own connections
                session.every_poll.append(cutover.poll)
                session.between_items.append(cutover.tick)
                return session.run(exit_when_caught_up)


def acquire_writer_lock(conn: psycopg.Connection, settings: Settings,
                        stop: threading.Event, what: str,
                        status: DaemonStatus) -> writer.WriterLease | None:
    """One writer per target: wait (logged) while another wacdc holds the lock, then take
    a new writer epoch on `conn` (wacdc.sink.writer). None if stopped while waiting."""
    deployment = writer.deployment_of(settings.source().database, settings.target_schema)
    writer.check_deployment(conn, deployment)  # another deployment's state: refuse now
    database = settings.target().database
    waiting_since = None
    try:
        while not stop.is_set():
            if writer.try_lock(conn, database, settings.target_schema):
                if waiting_since is not None:
                    log.info("replication lock acquired; this instance applies now",
                             waited_s=round(time.monotonic() - waiting_since, 1))
                state.ensure_schema(conn)
                lease = writer.take_epoch(conn, what, deployment)
                log.info("writer lease taken", epoch=lease.epoch, holder=lease.holder)
                return lease
            status.progressed()  # connected and doing what it should: waiting
            if waiting_since is None:
                waiting_since = time.monotonic()
                status.set_phase(Phase.WAITING_FOR_LOCK)
                status.waiting_for = ("the replication lock: another wacdc instance "
                                      "applies to this target")
                log.info("another wacdc instance holds the replication lock for this "
                         "target; waiting (it is the one applying changes)",
                         lock=writer.lock_key(database))
            stop.wait(1.0)
        return None
    finally:
        status.waiting_for = None
