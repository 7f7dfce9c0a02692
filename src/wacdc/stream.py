"""The streaming loop: batch -> apply -> checkpoint, and the drains a cutover asks for.

It knows nothing of the cutover: whoever drives it subscribes callables that run
between items (`between_items`) and on the half-second poll (`every_poll`), and the
cutover drives it through `drain_to` and `drain_until` (wacdc.cutover.controller's
Drainer). The drains never poll: no source-head, liveness or control-row queries
while the source is frozen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import psycopg
import pymysql

from wacdc.config import Settings
from wacdc.errors import EXIT_OK, WacdcError
from wacdc.events import (
    BinlogPosition,
    Heartbeat,
    Piece,
    Statement,
    StreamItem,
    Transaction,
)
from wacdc.evolution import SchemaEvolver, truncate_sql
from wacdc.log import get_logger
from wacdc.observe.lag import commit_estimate
from wacdc.observe.late_writes import (
    statement_after_cutover,
    write_after_cutover,
    write_in_bridge,
)
from wacdc.reverse.echo import ECHO_TABLE, echo_of
from wacdc.runtime import DaemonStatus, Phase
from wacdc.schema.convert import BadValuePolicy
from wacdc.sink import state, writer
from wacdc.sink.apply import Applier, Resolver, TableSink
from wacdc.sink.behind import ApplyBehind
from wacdc.snapshot import coercion_policy
from wacdc.source.connection import server_info
from wacdc.source.introspect import non_transactional
from wacdc.source.position import binlog_file_sizes, current_position
from wacdc.source.reader import StreamSpec, open_source

log = get_logger("wacdc.stream")
HEARTBEAT_S = 0.1  # an idle source still wakes the loop this often: flush, stop, lag
POLL_S = 0.5  # source head polled (for lag) and liveness written to `wacdc` this often

Hook = Callable[[], None]


class SourceGone(Exception):
    """The binlog stream ended (server shut down or restarted); reconnect and resume."""


class StreamSession:
    """One connected stretch of streaming: the loop, and the drains the cutover needs."""

    def __init__(self, settings: Settings, evolver: SchemaEvolver,
                 snapshot_positions: dict[str, BinlogPosition], stop: threading.Event,
                 target: psycopg.Connection, control: pymysql.connections.Connection,
                 lease: writer.WriterLease, status: DaemonStatus) -> None:
        self.settings, self.evolver, self.stop = settings, evolver, stop
        self._target, self.control = target, control  # `target` is joined to `lease`
        self.lease, self.status = lease, status
        self.policy = coercion_policy(settings)
        checkpoint = state.get_checkpoint(target)
        if checkpoint is None:  # first start after the snapshot: the stream begins here
            checkpoint = min(snapshot_positions.values())
            state.set_checkpoint(target, checkpoint)
        auto_position = _auto_position(settings, checkpoint)
        snapshot_positions = _positions_still_needed(target, checkpoint, snapshot_positions,
                                                     bool(auto_position))
        self.sinks = {name: TableSink(t, self.policy, snapshot_positions.get(name))
                      for name, t in evolver.tables.items()}
        # WACDC_FENCE=none after the cutover: MySQL is not fenced, so a write the app
        # still sends there is applied and raised as an alarm until wacdc is stopped.
        stored = state.get_phase(target)
        self.following = stored == Phase.DONE
        if self.following:
            status.set_phase(Phase.DONE)
        elif stored == Phase.BRIDGE:  # restarted inside a bridge window (cutover.bridge)
            status.set_phase(Phase.BRIDGE)
        else:
            status.set_phase(Phase.CATCHUP, target)
        self.lag = status.lag
        self.lag.applied = None if auto_position else checkpoint
        self.lag.oldest_pending = self.lag.behind_since = None
        self.poll_at = 0.0
        self.applier = Applier(target, self.sinks, lease)
        self.applying = ApplyBehind(self.applier, self._committed,
                                    enabled=settings.apply_behind)
        # Rows of non-transactional tracked tables stay through a ROLLBACK (framing).
        self.kept_at_rollback = frozenset(non_transactional(
            control, settings.source().database, list(self.sinks)))
        self.source = open_source(StreamSpec(
            # The reverse checkpoint's table too: its row opens each transaction wacdc
            # wrote to MySQL in a bridge window (an echo, see _echo_of).
            settings.source(), settings.effective_server_id(), checkpoint,
            [*self.sinks, ECHO_TABLE],
            HEARTBEAT_S, auto_position, server_info(control).is_mariadb, settings.decoder,
            checkpoint.gtid, settings.log_format, settings.log_level,
            settings.transaction_piece_rows, self.kept_at_rollback), settings.decode_in)
        self.items = self.source.items
        log.info("streaming", start=str(checkpoint), tables=len(self.sinks),
                 resume_by="gtid" if auto_position else "position", decoder=settings.decoder,
                 decode_in=settings.decode_in)
        self.batch: list[Transaction] = []
        self.rows = 0
        self.first_at = 0.0
        # By GTID the checkpoint's file:pos may name another server's binlog: only the
        # stream's own positions count towards "caught up".
        self._applied = BinlogPosition("", 0) if auto_position else checkpoint
        self.between_items: list[Hook] = []  # run after each item while not following
        self.every_poll: list[Hook] = []  # run every POLL_S, between items
        self.echo: str | None = None  # inside an echo applied in pieces: its snapshot

    @property
    def tables(self) -> list[str]:
        return list(self.sinks)

    @property
    def target(self) -> psycopg.Connection:
        """The applying connection, once the batch in flight committed (wacdc.sink.behind)."""
        self.applying.settle()
        return self._target

    @property
    def applied(self) -> BinlogPosition:
        """Where PostgreSQL's committed checkpoint stands (the batch in flight settled)."""
        self.applying.settle()
        return self._applied

    def bridge(self, resolver: Resolver | None) -> None:
        """A bridge window opens (its conflicts resolved in each batch) or closes."""
        self.flush()
        self.applier.resolver = resolver

    def run(self, exit_when_caught_up: bool) -> int:
        try:
            return self._run(exit_when_caught_up)
        finally:  # nothing else may use the connection while a batch is in flight
            self.applying.close()

    def _run(self, exit_when_caught_up: bool) -> int:
        # The subscribers run once before the first item too: a cutover interrupted
        # after its fence drains to that fence before anything else is taken.
        if self._between_items():
            return EXIT_OK
        for item in self.items:
            self.step(item)
            self._poll_when_due()
            if self._stopped() or self._between_items():
                return EXIT_OK
            if isinstance(item, Heartbeat) and exit_when_caught_up and not self.batch:
                head = current_position(self.control)
                if self.applied >= head or _at_head(item, head):
                    log.info("caught up with the source head", position=str(head))
                    return EXIT_OK
        # The server ended the dump (shutdown, restart): resume from the checkpoint.
        raise SourceGone("the source closed the binlog stream")

    def _stopped(self) -> bool:
        if self.stop.is_set():
            log.info("stopped; checkpoint committed", position=str(self.applied))
            return True
        return False

    def _between_items(self) -> bool:
        """The subscribers (while not following); True when the stream ends here: stopped,
        or a cutover just finished (under WACDC_FENCE=none it follows MySQL on instead)."""
        if self.following:
            return False
        for hook in self.between_items:
            hook()
        if self._stopped():
            return True
        if self.status.phase != Phase.DONE:
            return False
        if self.settings.fence != "none":
            return True
        self.following = True
        log.warning("cutover done with WACDC_FENCE=none: MySQL is not fenced; following its "
                    "binlog for writes that land there after the cutover (each one is an "
                    "alarm); stop wacdc once the app writes PostgreSQL only")
        return False

    def _poll_when_due(self, *, subscribers: bool = True) -> None:
        """Lag, liveness and the subscribers' polls; then catch-up ends once caught up."""
        if time.monotonic() >= self.poll_at:
            self.poll_at = time.monotonic() + POLL_S
            _poll_source(self.control, self.target, self.status)
            for hook in self.every_poll if subscribers else ():
                hook()
        if self.status.phase == Phase.CATCHUP and self.lag.caught_up():
            self.status.set_phase(Phase.STREAMING, self.target)
            log.info("caught up: streaming", position=str(self.lag.applied))

    def step(self, item: StreamItem, *, behind: bool = True) -> None:
        """Take one stream item: batch it, apply when due (with `behind`, the next batch is
        read while it commits; drains wait for each), keep lag and liveness."""
        idle = isinstance(item, Heartbeat)
        if isinstance(item, Transaction) and (self.echo or echo_of(item.changes)):
            item = self._echo(item)
        if isinstance(item, Transaction):
            if self.status.phase == Phase.BRIDGE and item.changes:
                write_in_bridge(item, self.status)
            if self.following and item.changes:
                write_after_cutover(item)
            if not self.batch:
                self.first_at = time.monotonic()
            self.batch.append(item)
            self.rows += len(item.changes)
            self.lag.read(item.end, bool(item.changes), item.commit_time, item.received_at)
        elif isinstance(item, Piece):
            self._piece(item)
        elif isinstance(item, Statement):
            self._statement(item)
        else:
            self.lag.idle(item.position)
            self.status.progressed()  # idle and connected
        due = (self.rows >= self.settings.batch_max_rows
               or (self.batch and time.monotonic() - self.first_at
                   >= self.settings.batch_max_seconds))
        if idle or self.stop.is_set():
            self.flush()
        elif due:
            self.flush(behind=behind)

    def _statement(self, item: Statement) -> None:
        self.flush()  # everything before the statement first
        if item.tables == (ECHO_TABLE,):
            pass  # reverse replication creates (or drops) its checkpoint table
        elif self.following:  # PostgreSQL is the primary: MySQL's DDL is not its own
            statement_after_cutover(item)
        else:
            _schema_change(item, self.evolver, self.sinks, self.target, self.policy,
                           self.kept_at_rollback)

    def _echo(self, item: Transaction) -> Transaction:
        """wacdc's own reverse transaction read back: nothing of it is applied again; it
        starts a batch of its own, which tells PostgreSQL its changes came back."""
        snapshot = echo_of(item.changes) or self.echo
        self.echo = None
        self.flush()  # what MySQL committed before it is resolved before it
        return Transaction(item.end, item.commit_time, [], item.received_at,
                           item.checkpoint, echo_of=snapshot)

    def _piece(self, item: Piece) -> None:
        if self.echo:
            return  # the rest of an echo: skipped
        self.flush()  # whole transactions before it commit first (a pieced one's end too)
        if not self.applier.in_piece and echo_of(item.changes):
            self.echo = echo_of(item.changes)  # an echo's first piece: skipped
            return
        if self.following and item.changes:
            write_after_cutover(item)
        if not self.applier.in_piece:
            log.info("a large source transaction: applying it in pieces inside one "
                     "PostgreSQL transaction (committed with its end)",
                     position=str(item.position), piece_rows=len(item.changes))
        self.applier.apply_piece(item)
        self.status.progressed()

    def flush(self, *, behind: bool = False) -> None:
        """Apply the batch; `behind`: return while it commits (settled by the next use)."""
        self.applying.settle()  # (while self.batch is still pending: see _committed)
        if not self.batch:
            return
        batch, self.batch, self.rows = self.batch, [], 0
        self.applying.apply(batch, behind=behind)

    def _committed(self, batch: Sequence[Transaction]) -> None:
        last = batch[-1]
        self._applied = last.end
        self.lag.applied_up_to(last.end, commit_estimate(last.commit_time, last.received_at))
        # Read while that batch committed, not applied yet: lag still counts from it.
        for txn in self.batch:
            self.lag.read(txn.end, bool(txn.changes), txn.commit_time, txn.received_at)
        self.status.progressed()

    def drain_to(self, head: BinlogPosition, give_up: Callable[[], bool]) -> bool:
        """Apply everything up to `head` now (no batching delay); False if `give_up`."""
        self.flush()
        if self.applied >= head:
            return True
        for item in self.items:
            self.step(item, behind=False)
            if isinstance(item, Transaction) and item.end >= head:
                self.flush()
            if self.applied >= head or (isinstance(item, Heartbeat) and not self.batch
                                        and item.position >= head):
                return True
            if give_up():
                return False
        raise SourceGone("the source closed the binlog stream during the cutover")

    def drain_until(self, seen: Callable[[StreamItem], bool], timeout: float | None) -> bool:
        """Apply until an item `seen` is read (it is taken, not applied): nothing written
        before it is left behind. False if it does not show up within `timeout` seconds
        (None: no limit, but a stop request ends the wait)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for item in self.items:
            if seen(item):
                self.flush()
                return True
            self.step(item, behind=False)
            if deadline is None:
                # Unbounded (a cutover resumed after its fence: nothing is frozen): lag
                # and liveness are still reported; the subscribers wait for the end.
                self._poll_when_due(subscribers=False)
                if self.stop.is_set():
                    return False
            if deadline is not None and time.monotonic() > deadline:
                return False
        raise SourceGone("the source closed the binlog stream during the cutover")


def _poll_source(control: pymysql.connections.Connection, target: psycopg.Connection,
                 status: DaemonStatus) -> None:
    """The source head for lag; liveness and lag into `wacdc.state` for `wacdc status`."""
    lag = status.lag
    head = current_position(control)
    behind_a_file = lag.applied is not None and lag.applied.file != head.file
    lag.polled(head, binlog_file_sizes(control) if behind_a_file else None)
    state.report_liveness(target, head, status.lag_seconds(), lag.bytes(), status.daemon_id)


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
                   policy: BadValuePolicy, kept_at_rollback: frozenset[str]) -> None:
    position = statement.position
    # A table copied after this statement already has it (in data and shape).
    done = {n for n, s in sinks.items()
            if s.snapshot_position is not None and position <= s.snapshot_position}
    # A DdlStop propagates: run() records phase `failed` with the statement.
    changes = evolver.handle(statement, target, done, kept_at_rollback)
    for change in changes:
        sink = sinks[change.table]
        if change.truncate:
            with target.transaction():
                target.execute(truncate_sql(sink.table))
            log.info("TRUNCATE applied", table=change.table, position=str(position))
        elif change.refreshed is not None:
            sinks[change.table] = TableSink(change.refreshed, policy, sink.snapshot_position)
            evolver.tables[change.table] = change.refreshed
