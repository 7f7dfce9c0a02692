"""The coordinator of `wacdc run`: snapshot -> catch-up -> streaming, signals, exit codes."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

import psycopg
from pymysqlreplication.event import QueryEvent

from wacdc import metrics, state
from wacdc.config import Settings
from wacdc.errors import EXIT_OK
from wacdc.log import get_logger
from wacdc.schema.catalog import plan_target
from wacdc.schema.convert import BadValuePolicy
from wacdc.schema.evolve import DdlStop, SchemaEvolver, truncate_sql
from wacdc.sink.apply import Applier, TableSink
from wacdc.sink.connection import connect_target
from wacdc.snapshot import coercion_policy, run_snapshot
from wacdc.source.binlog import Heartbeat, Transaction, open_stream, transactions
from wacdc.source.connection import connect
from wacdc.source.position import BinlogPosition, current_position

log = get_logger("wacdc.daemon")
HEARTBEAT_S = 0.1  # an idle source still wakes the loop this often: flush, stop, lag


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


def run(settings: Settings, stop: threading.Event, *, snapshot_only: bool = False,
        exit_when_caught_up: bool = False, resume_after_ddl: bool = False) -> int:
    """`stop` is set by the signal handlers (install_stop_handlers) to end cleanly."""
    metrics.set_phase("snapshot")
    result = run_snapshot(settings, stop)
    if result.stopped:
        log.info("stopped during the snapshot; run again to continue")
        return EXIT_OK
    if snapshot_only:
        log.info("snapshot done; streaming starts at the next `wacdc run`",
                 start_position=str(result.start_position))
        return EXIT_OK
    return stream(settings, result.positions, stop, exit_when_caught_up, resume_after_ddl)


def stream(settings: Settings, snapshot_positions: dict[str, BinlogPosition],
           stop: threading.Event, exit_when_caught_up: bool,
           resume_after_ddl: bool = False) -> int:
    """Follow the binlog from the checkpoint; apply whole transactions in batches."""
    profile, tables = plan_target(settings)
    evolver = SchemaEvolver(settings, profile, {t.name: t for t in tables}, resume_after_ddl)
    source_url = settings.source()
    policy = coercion_policy(settings)
    sinks = {t.name: TableSink(t, policy, snapshot_positions.get(t.name)) for t in tables}
    target = connect_target(settings.target(), autocommit=True)
    control = connect(source_url)
    with target, control:
        checkpoint = state.get_checkpoint(target) or min(snapshot_positions.values())
        state.set_phase(target, "streaming")
        metrics.set_phase("streaming")
        applier = Applier(target, sinks)
        # file:pos dump on MariaDB too: the library's MariaDB mode positions by GTID only.
        reader = open_stream(source_url, settings.effective_server_id(), checkpoint,
                             list(sinks), blocking=True, heartbeat_s=HEARTBEAT_S,
                             transactions=True)
        log.info("streaming", start=str(checkpoint), tables=len(sinks))
        batch: list[Transaction] = []
        rows = 0
        first_at = 0.0
        applied = checkpoint
        try:
            for item in transactions(reader, source_url.database, set(sinks)):
                idle = isinstance(item, Heartbeat)
                if isinstance(item, Transaction):
                    if not batch:
                        first_at = time.monotonic()
                    batch.append(item)
                    rows += len(item.changes)
                elif isinstance(item, QueryEvent):
                    if batch:  # everything before the statement first
                        applier.apply(batch)
                        applied = batch[-1].end
                        batch, rows = [], 0
                    _schema_change(item, reader, evolver, sinks, target, policy)
                due = (rows >= settings.batch_max_rows
                       or (batch and time.monotonic() - first_at >= settings.batch_max_seconds))
                if batch and (idle or due or stop.is_set()):
                    applier.apply(batch)
                    applied = batch[-1].end
                    batch, rows = [], 0
                if stop.is_set():
                    log.info("stopped; checkpoint committed", position=str(applied))
                    return EXIT_OK
                if idle and exit_when_caught_up and not batch:
                    head = current_position(control)
                    if applied >= head or _at_head(item, head):
                        log.info("caught up with the source head", position=str(head))
                        return EXIT_OK
        finally:
            reader.close()
    return EXIT_OK


def _at_head(beat: Transaction | Heartbeat | QueryEvent, head: BinlogPosition) -> bool:
    # Idle with nothing pending: the stream stands at the head even if the last events were
    # not transactions of ours (rotations, heartbeats of another file).
    return isinstance(beat, Heartbeat) and beat.position >= head


def _schema_change(event: QueryEvent, reader: object, evolver: SchemaEvolver,
                   sinks: dict[str, TableSink], target: psycopg.Connection,
                   policy: BadValuePolicy) -> None:
    position = BinlogPosition(getattr(reader, "log_file", "?"), getattr(reader, "log_pos", 0))
    # A table copied after this statement already has it (in data and shape).
    done = {n for n, s in sinks.items()
            if s.snapshot_position is not None and position <= s.snapshot_position}
    try:
        changes = evolver.handle(event.query.strip(), position, target, done)
    except DdlStop as exc:
        state.set_phase(target, "failed", error=str(exc))
        metrics.set_phase("failed")
        metrics.errors.labels(kind="ddl").inc()
        raise
    for change in changes:
        sink = sinks[change.table]
        if change.truncate:
            with target.transaction():
                target.execute(truncate_sql(sink.table))
            log.info("TRUNCATE applied", table=change.table, position=str(position))
        elif change.refreshed is not None:
            sinks[change.table] = TableSink(change.refreshed, policy, sink.snapshot_position)
