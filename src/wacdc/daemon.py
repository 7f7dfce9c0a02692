"""The coordinator of `wacdc run`: snapshot -> catch-up -> streaming, signals, exit codes."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import psycopg
import pymysql
import tenacity

from wacdc.config import Settings
from wacdc.errors import EXIT_OK, ConfigError, ConnectError, WacdcError
from wacdc.events import BinlogPosition, Heartbeat, Piece, Statement, StreamItem, Transaction
from wacdc.evolution import SchemaEvolver, truncate_sql
from wacdc.log import get_logger, redact
from wacdc.observe import metrics
from wacdc.observe.backlog import BacklogWatcher
from wacdc.observe.http import STATUS
from wacdc.observe.lag import commit_estimate
from wacdc.schema.convert import BadValuePolicy
from wacdc.schema.ddl import TargetTable
from wacdc.schema.extras import extras_for, refresh_views
from wacdc.schema.profile import load_profile
from wacdc.sink import state, writer
from wacdc.sink.apply import Applier, TableSink
from wacdc.sink.connection import connect_target
from wacdc.sink.pool import TargetPool
from wacdc.sink.pooler import DIRECT_URL_FIX, probe_pooler
from wacdc.snapshot import coercion_policy, run_snapshot
from wacdc.source.binlog import control_read_timeout, timed_out
from wacdc.source.catalog import plan_target
from wacdc.source.connection import connect, server_info
from wacdc.source.position import binlog_file_sizes, current_position
from wacdc.source.reader import StreamSpec, open_source

log = get_logger("wacdc.daemon")
HEARTBEAT_S = 0.1  # an idle source still wakes the loop this often: flush, stop, lag
POLL_S = 0.5  # source head polled (for lag) and liveness written to `wacdc` this often


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
    `pool` lends the short control-plane connections (wacdc.sink.pool)."""
    STATUS.stall_seconds = settings.stall_seconds
    lease: writer.WriterLease | None = None
    try:
        with connect_target(settings.target(), autocommit=True) as lock_conn:
            refuse_a_pooler(lock_conn, settings)
            lease = acquire_writer_lock(lock_conn, settings, stop, "snapshot")
            if lease is None:
                return EXIT_OK
            following = state.get_phase(lock_conn) == "done"
            if following and settings.fence != "none":
                log.info("the cutover is done: PostgreSQL is the primary; nothing to "
                         "replicate (see `wacdc status`)")
                return after_cutover(settings, stop, pool)
            if not following:
                STATUS.set_phase("snapshot")
                watcher = BacklogWatcher(settings, lease)  # lag while the binlog is unread
                watcher.start()
                try:
                    with fenced(lease):
                        result = run_snapshot(settings, stop, lease, on_chunk=lambda t, n:
                                              STATUS.progressed())
                finally:
                    watcher.stop()
    except WacdcError as exc:
        _record_failure(settings, exc, lease, pool)
        raise
    if following:  # WACDC_FENCE=none: MySQL may still be written; keep following it
        return _follow_after_cutover(settings, stop, pool, exit_when_caught_up)
    # The lock is released here and taken again by the streaming connection.
    if result.stopped:
        log.info("stopped during the snapshot; run again to continue")
        return EXIT_OK
    if snapshot_only:
        log.info("snapshot done; streaming starts at the next `wacdc run`",
                 start_position=str(result.start_position))
        return EXIT_OK
    holder = LeaseHolder()
    try:
        with fenced(holder):
            code = stream(settings, result.positions, stop, exit_when_caught_up,
                          resume_after_ddl, holder)
    except WacdcError as exc:
        _record_failure(settings, exc, holder.lease, pool)
        raise
    if STATUS.phase == "done" and not stop.is_set():
        return after_cutover(settings, stop, pool)
    return code


def _follow_after_cutover(settings: Settings, stop: threading.Event, pool: TargetPool,
                          exit_when_caught_up: bool) -> int:
    """A restart after a WACDC_FENCE=none cutover: follow the binlog again (see
    StreamSession.following)."""
    log.warning("the cutover is done and WACDC_FENCE=none: following the MySQL binlog for "
                "writes that land there after the cutover (each one is an alarm); stop "
                "wacdc once the app writes PostgreSQL only")
    holder = LeaseHolder()
    try:
        with fenced(holder):
            return stream(settings, {}, stop, exit_when_caught_up, False, holder)
    except WacdcError as exc:
        _record_failure(settings, exc, holder.lease, pool)
        raise


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


def after_cutover(settings: Settings, stop: threading.Event, pool: TargetPool) -> int:
    """PostgreSQL is the primary: refresh the profile's materialized views on a schedule
    (WACDC_MATVIEW_REFRESH; 0: nothing to do, exit) until stopped."""
    STATUS.set_phase("done")
    interval = settings.matview_refresh
    if interval <= 0:
        return EXIT_OK
    profile = load_profile(settings.profile)
    tables = set(settings.tables or profile.tables)
    if not any(e.refresh for e in extras_for(profile, tables)):
        return EXIT_OK
    STATUS.waiting_for = (f"the next materialized view refresh (every {interval:.0f}s); the "
                          "cutover is done")
    log.info("refreshing materialized views on a schedule", every_s=interval)
    while not stop.wait(interval):
        try:
            with pool.connection() as conn:
                refreshed = refresh_views(conn, profile, settings.target_schema, tables)
            log.info("materialized views refreshed", views=refreshed)
            STATUS.progressed()
        except (ConnectError, psycopg.Error) as exc:
            metrics.errors.labels(kind="MatviewRefresh").inc()
            log.warning("materialized view refresh failed; trying again at the next interval",
                        error=redact(str(exc)).splitlines()[0])
    log.info("stopped")
    return EXIT_OK


def _record_failure(settings: Settings, exc: WacdcError,
                    lease: writer.WriterLease | None, pool: TargetPool) -> None:
    """Phase `failed` with the reason, for `wacdc status` and the next operator; only
    while this instance is still the writer (a new one's phase is not overwritten)."""
    STATUS.failed(str(exc))
    metrics.errors.labels(kind=type(exc).__name__).inc()
    if isinstance(exc, writer.LostWriterLock | writer.DeploymentClash) or lease is None:
        return  # the state is another instance's (or deployment's) to write
    try:
        with pool.connection() as conn:
            writer.join(conn, lease)  # undone when the pool takes it back
            # After the cutover PostgreSQL is the primary: a failure while following
            # MySQL (WACDC_FENCE=none) is recorded, but the phase stays `done`.
            done = state.get_phase(conn) == "done"
            state.set_phase(conn, "done" if done else "failed", error=str(exc))
    except (ConnectError, psycopg.Error) as note:
        log.error("could not record the failure in the target",
                  error=str(note).strip().splitlines()[0] if str(note).strip() else "")


class SourceGone(Exception):
    """The binlog stream ended (server shut down or restarted); reconnect and resume."""


class StopRequested(Exception):
    """A stop signal arrived while waiting to retry."""


_PURGED = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: the position is not on the server


def _side(exc: BaseException) -> str | None:
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


def stream(settings: Settings, snapshot_positions: dict[str, BinlogPosition],
           stop: threading.Event, exit_when_caught_up: bool,
           resume_after_ddl: bool = False, holder: LeaseHolder | None = None) -> int:
    """Follow the binlog from the checkpoint; reconnect and resume on connection loss."""
    # A cutover interrupted after its fence finds the source tables renamed.
    profile, tables = plan_target(settings, allow_retired=True)
    evolver = SchemaEvolver(settings, profile, {t.name: t for t in tables}, resume_after_ddl)

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise StopRequested

    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        side = _side(exc) if exc else "source"
        metrics.reconnects.labels(side=side or "source").inc()
        # A read that timed out: the connection went silent (docs/operations.md, "Dead
        # connections"): SourceDead, TargetDead, DecodeProcessHung carry their bound; a
        # bare timeout is the source control connection's.
        bound = getattr(exc, "bound_s", None) or (
            control_read_timeout(HEARTBEAT_S, settings.cutover_max_freeze)
            if exc is not None and timed_out(exc) else None)
        log.warning("dead or half-open connection: nothing received within its bound; "
                    "reconnecting and resuming from the checkpoint" if bound else
                    "connection lost; reconnecting and resuming from the checkpoint",
                    side=side, error=redact(str(exc)).splitlines()[0] if exc else "",
                    **({"bound_s": bound} if bound else {}),
                    attempt=retry_state.attempt_number,
                    retry_in_s=round(retry_state.upcoming_sleep, 2))

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: _side(e) is not None),
        wait=tenacity.wait_exponential_jitter(initial=0.5, max=30, jitter=1),
        sleep=sleep, before_sleep=before_sleep, reraise=True)
    try:
        for attempt in retrying:
            with attempt:
                return _stream_once(settings, tables, evolver, snapshot_positions, stop,
                                    exit_when_caught_up, holder or LeaseHolder())
    except StopRequested:
        log.info("stopped while reconnecting; the checkpoint is where it was")
        return EXIT_OK
    except pymysql.err.MySQLError as exc:
        if exc.args and exc.args[0] == _PURGED:
            raise WacdcError(
                f"the binlog position wacdc needs is no longer on the source ({exc.args[1]}): "
                "binlogs were purged while wacdc was behind. A new snapshot is needed: see "
                "docs/operations.md, 'Binlog purged'") from None
        raise
    return EXIT_OK


def refuse_a_pooler(conn: psycopg.Connection, settings: Settings) -> None:
    """Through a transaction-mode pooler the advisory lock, session settings and the
    writer epoch do not hold: refuse it (exit 2) with the fix; warn about a proxy."""
    verdict = probe_pooler(conn, settings.target())
    if verdict.transaction_pooling:
        raise ConfigError(f"{settings.url_variable('target_url')}: {verdict.describe()}; "
                          f"{DIRECT_URL_FIX}")
    if verdict.proxied:
        log.warning("something between wacdc and PostgreSQL answers for it (a proxy or a "
                    "session-mode pooler); fine if it keeps one server session per "
                    "connection", detail=verdict.describe())


def acquire_writer_lock(conn: psycopg.Connection, settings: Settings,
                        stop: threading.Event, what: str) -> writer.WriterLease | None:
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
            STATUS.progressed()  # connected and doing what it should: waiting
            if waiting_since is None:
                waiting_since = time.monotonic()
                STATUS.set_phase("waiting_for_lock")
                STATUS.waiting_for = ("the replication lock: another wacdc instance "
                                      "applies to this target")
                log.info("another wacdc instance holds the replication lock for this target; "
                         "waiting (it is the one applying changes)",
                         lock=writer.lock_key(database))
            stop.wait(1.0)
        return None
    finally:
        STATUS.waiting_for = None


def _stream_once(settings: Settings, tables: list[TargetTable], evolver: SchemaEvolver,
                 snapshot_positions: dict[str, BinlogPosition], stop: threading.Event,
                 exit_when_caught_up: bool, holder: LeaseHolder) -> int:
    source_url = settings.source()
    target = connect_target(settings.target(), autocommit=True)
    # Bounded reads: a dead or half-open control connection fails instead of hanging.
    control = connect(source_url, read_timeout=control_read_timeout(
        HEARTBEAT_S, settings.cutover_max_freeze))
    with target, control:
        # The lock lives on the applying connection: if that connection dies, so does
        # the lock, and this instance must win it again (a new epoch) before applying.
        holder.lease = acquire_writer_lock(target, settings, stop, "streaming")
        if holder.lease is None:
            return EXIT_OK
        # Another instance cut over while this one waited (or a restart after the cutover):
        # done, unless WACDC_FENCE=none, where the binlog is followed on (see `following`).
        if state.get_phase(target) == "done" and settings.fence != "none":
            STATUS.set_phase("done")
            return EXIT_OK
        session = StreamSession(settings, evolver, snapshot_positions, stop, target, control,
                                holder.lease)
        try:
            return session.run(exit_when_caught_up)
        finally:
            # Pieces of a transaction whose end was not applied: never commit them with
            # the connection's close (a restart reads that transaction again).
            session.applier.abandon()
            session.source.close()


class StreamSession:
    """One connected stretch of streaming: the loop, and the drains the cutover needs."""

    def __init__(self, settings: Settings, evolver: SchemaEvolver,
                 snapshot_positions: dict[str, BinlogPosition], stop: threading.Event,
                 target: psycopg.Connection, control: pymysql.connections.Connection,
                 lease: writer.WriterLease) -> None:
        from wacdc.cutover import CutoverController

        self.settings, self.evolver, self.stop = settings, evolver, stop
        self.target, self.control = target, control  # `target` is joined to `lease`
        self.lease = lease
        self.policy = coercion_policy(settings)
        checkpoint = state.get_checkpoint(target)
        if checkpoint is None:  # first start after the snapshot: the stream begins here
            checkpoint = min(snapshot_positions.values())
            state.set_checkpoint(target, checkpoint)
        mariadb = server_info(control).is_mariadb
        auto_position = _auto_position(settings, checkpoint)
        snapshot_positions = _positions_still_needed(target, checkpoint, snapshot_positions,
                                                     bool(auto_position))
        self.sinks = {name: TableSink(t, self.policy, snapshot_positions.get(name))
                      for name, t in evolver.tables.items()}
        # WACDC_FENCE=none after the cutover: MySQL is not fenced, so a write the app
        # still sends there is applied and raised as an alarm until wacdc is stopped.
        self.following = state.get_phase(target) == "done"
        if self.following:
            STATUS.set_phase("done")
        else:
            state.set_phase(target, "catchup")
            STATUS.set_phase("catchup")
        self.lag = STATUS.lag
        self.lag.applied = None if auto_position else checkpoint
        self.lag.oldest_pending = self.lag.behind_since = None
        self.daemon_id = f"{socket.gethostname()}:{os.getpid()}"
        self.poll_at = 0.0
        self.applier = Applier(target, self.sinks, lease)
        source_url = settings.source()
        self.source = open_source(StreamSpec(
            source_url, settings.effective_server_id(), checkpoint, list(self.sinks),
            HEARTBEAT_S, auto_position, mariadb, settings.decoder,
            checkpoint.gtid, settings.log_format, settings.log_level,
            settings.transaction_piece_rows), settings.decode_in)
        self.items = self.source.items
        log.info("streaming", start=str(checkpoint), tables=len(self.sinks),
                 resume_by="gtid" if auto_position else "position", decoder=settings.decoder,
                 decode_in=settings.decode_in)
        self.batch: list[Transaction] = []
        self.rows = 0
        self.first_at = 0.0
        # By GTID the checkpoint's file:pos may name another server's binlog: only the
        # stream's own positions count towards "caught up".
        self.applied = BinlogPosition("", 0) if auto_position else checkpoint
        self.fence_marker: str | None = None  # cutover: the RENAME that ends the stream
        self.fence_seen = False
        self.cutover = CutoverController(settings, self)

    def run(self, exit_when_caught_up: bool) -> int:
        for item in self.items:
            self.step(item)
            if self.stop.is_set():
                log.info("stopped; checkpoint committed", position=str(self.applied))
                return EXIT_OK
            if not self.following and self.cutover.tick() == "done":
                if self.settings.fence != "none":
                    return EXIT_OK
                self.following = True
                log.warning("cutover done with WACDC_FENCE=none: MySQL is not fenced; "
                            "following its binlog for writes that land there after the "
                            "cutover (each one is an alarm); stop wacdc once the app writes "
                            "PostgreSQL only")
            if isinstance(item, Heartbeat) and exit_when_caught_up and not self.batch:
                head = current_position(self.control)
                if self.applied >= head or _at_head(item, head):
                    log.info("caught up with the source head", position=str(head))
                    return EXIT_OK
        # The server ended the dump (shutdown, restart): resume from the checkpoint.
        raise SourceGone("the source closed the binlog stream")

    def step(self, item: StreamItem) -> None:
        """Take one stream item: batch it, apply when due, keep lag and liveness."""
        idle = isinstance(item, Heartbeat)
        if isinstance(item, Transaction):
            if self.following and item.changes:
                _write_after_cutover(item)
            if not self.batch:
                self.first_at = time.monotonic()
            self.batch.append(item)
            self.rows += len(item.changes)
            self.lag.read(item.end, bool(item.changes), item.commit_time, item.received_at)
        elif isinstance(item, Piece):
            self.flush()  # whole transactions before it commit first
            if self.following and item.changes:
                _write_after_cutover(item)
            if not self.applier.in_piece:
                log.info("a large source transaction: applying it in pieces inside one "
                         "PostgreSQL transaction (committed with its end)",
                         position=str(item.position), piece_rows=len(item.changes))
            self.applier.apply_piece(item)
            STATUS.progressed()
        elif isinstance(item, Statement):
            self.flush()  # everything before the statement first
            if self.fence_marker and self.fence_marker in item.query:
                self.fence_seen = True  # the cutover's own fence: the end of the stream
            elif self.following:  # PostgreSQL is the primary: MySQL's DDL is not its own
                _statement_after_cutover(item)
            else:
                _schema_change(item, self.evolver, self.sinks, self.target, self.policy)
        else:
            self.lag.idle(item.position)
            STATUS.progressed()  # idle and connected
        due = (self.rows >= self.settings.batch_max_rows
               or (self.batch and time.monotonic() - self.first_at
                   >= self.settings.batch_max_seconds))
        if idle or due or self.stop.is_set():
            self.flush()
        if time.monotonic() >= self.poll_at:
            self.poll_at = time.monotonic() + POLL_S
            _poll_source(self.control, self.target, self.daemon_id)
            self.cutover.poll()
        if STATUS.phase == "catchup" and self.lag.caught_up():
            state.set_phase(self.target, "streaming")
            STATUS.set_phase("streaming")
            log.info("caught up: streaming", position=str(self.lag.applied))

    def flush(self) -> None:
        if not self.batch:
            return
        if self.batch[0].discard_pieces:  # the source rolled back what its pieces applied
            self.applier.abandon()
        self.applier.apply(self.batch)
        self.applied = self.batch[-1].end
        last = self.batch[-1]
        self.lag.applied_up_to(self.applied, commit_estimate(last.commit_time, last.received_at))
        STATUS.progressed()
        self.batch, self.rows = [], 0

    def drain_to(self, head: BinlogPosition, give_up: Callable[[], bool]) -> bool:
        """Apply everything up to `head` now (no batching delay); False if `give_up`."""
        self.flush()
        if self.applied >= head:
            return True
        for item in self.items:
            self.step(item)
            if isinstance(item, Transaction) and item.end >= head:
                self.flush()
            if self.applied >= head or (isinstance(item, Heartbeat) and not self.batch
                                        and item.position >= head):
                return True
            if give_up():
                return False
        raise SourceGone("the source closed the binlog stream during the cutover")

    def drain_until_fence(self, marker: str, timeout: float) -> bool:
        """Apply until the fence statement itself is read: nothing written before it is
        left behind. False if it does not show up in time."""
        self.fence_marker, self.fence_seen = marker, False
        deadline = time.monotonic() + timeout
        for item in self.items:
            self.step(item)
            if self.fence_seen:
                self.flush()
                return True
            if time.monotonic() > deadline:
                return False
        raise SourceGone("the source closed the binlog stream during the cutover")


LATE_WRITES_LOGGED = 20  # per transaction; the metric counts every row


def _statement_after_cutover(statement: Statement) -> None:
    """A TRUNCATE or DDL on a tracked table in MySQL after the cutover (FENCE=none): not
    applied to the primary (PostgreSQL), raised instead."""
    metrics.errors.labels(kind="StatementAfterCutover").inc()
    log.error("a schema change or TRUNCATE ran in MySQL after the cutover: NOT applied to "
              "PostgreSQL (it is the primary now); find who still uses MySQL",
              statement=statement.query[:300], position=str(statement.position))


def _write_after_cutover(txn: Transaction | Piece) -> None:
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


def _poll_source(control: pymysql.connections.Connection, target: psycopg.Connection,
                 daemon_id: str) -> None:
    """The source head for lag; liveness and lag into `wacdc.state` for `wacdc status`."""
    lag = STATUS.lag
    head = current_position(control)
    behind_a_file = lag.applied is not None and lag.applied.file != head.file
    lag.polled(head, binlog_file_sizes(control) if behind_a_file else None)
    state.report_liveness(target, head, STATUS.lag_seconds(), lag.bytes(), daemon_id)


def _positions_still_needed(target: psycopg.Connection, checkpoint: BinlogPosition,
                            snapshot: dict[str, BinlogPosition], by_gtid: bool
                            ) -> dict[str, BinlogPosition]:
    """The snapshot's per-table positions, while the stream has not passed them all.

    They say which early changes a table's copy already holds. Once the checkpoint is
    past the last of them they are no longer needed, and that is recorded: a later
    resume by GTID (another server, other file names) must not compare against them."""
    if state.past_snapshot(target):
        return {}
    if not snapshot or checkpoint >= max(snapshot.values()):
        state.mark_past_snapshot(target)
        return {}
    if by_gtid:
        raise WacdcError(
            f"WACDC_RESUME_FROM=gtid, but the stream has not yet passed the snapshot's "
            f"positions (checkpoint {checkpoint}, snapshot up to {max(snapshot.values())}): "
            "until it has, resume by position (unset WACDC_RESUME_FROM), or take a new "
            "snapshot")
    return snapshot


def _auto_position(settings: Settings, checkpoint: BinlogPosition) -> str | None:
    """The GTID state to dump from under WACDC_RESUME_FROM=gtid, else None (file:pos)."""
    if settings.resume_from != "gtid":
        return None
    if not checkpoint.gtid:
        raise WacdcError(
            f"WACDC_RESUME_FROM=gtid, but the checkpoint {checkpoint} has no GTID state: the "
            "source had no GTIDs when it was written (MySQL: gtid_mode=ON). Resume by "
            "position (unset WACDC_RESUME_FROM) or take a new snapshot")
    return checkpoint.gtid


def _at_head(beat: StreamItem, head: BinlogPosition) -> bool:
    # Idle with nothing pending: the stream stands at the head even if the last events were
    # not transactions of ours (rotations, heartbeats of another file).
    return isinstance(beat, Heartbeat) and beat.position >= head


def _schema_change(statement: Statement, evolver: SchemaEvolver,
                   sinks: dict[str, TableSink], target: psycopg.Connection,
                   policy: BadValuePolicy) -> None:
    position = statement.position
    # A table copied after this statement already has it (in data and shape).
    done = {n for n, s in sinks.items()
            if s.snapshot_position is not None and position <= s.snapshot_position}
    # A DdlStop propagates: run() records phase `failed` with the statement.
    changes = evolver.handle(statement, target, done)
    for change in changes:
        sink = sinks[change.table]
        if change.truncate:
            with target.transaction():
                target.execute(truncate_sql(sink.table))
            log.info("TRUNCATE applied", table=change.table, position=str(position))
        elif change.refreshed is not None:
            sinks[change.table] = TableSink(change.refreshed, policy, sink.snapshot_position)
            evolver.tables[change.table] = change.refreshed
