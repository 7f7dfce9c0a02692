"""The snapshot phase: copy every table from one consistent view, resumably, with COPY.

Per table: pending -> copying (chunks commit with their progress row) -> loaded
(rows in; secondary indexes build in the background while the next table copies)
-> done. A consistent view lives only as long as its MySQL transaction, so after a
restart a table that was mid-copy is truncated and copied again from a new view,
with that view's position recorded for it; finished tables keep theirs. Streaming
then starts at the oldest table position and skips, per table, what its copy holds.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
import pymysql
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from wacdc.config import Settings
from wacdc.errors import WacdcError
from wacdc.events import BinlogPosition
from wacdc.log import get_logger
from wacdc.observe import metrics
from wacdc.runtime import DaemonStatus, Phase
from wacdc.schema.convert import BadValuePolicy, Coercion, RowConverter
from wacdc.schema.ddl import TargetTable, apply_steps, create_index_sql, plan_ddl
from wacdc.schema.profile import Profile
from wacdc.sink import sql as statements
from wacdc.sink import state, writer
from wacdc.sink.connection import connect_target
from wacdc.source.catalog import plan_target
from wacdc.source.read_view import ChunkReader, ReadView, open_read_view

log = get_logger("wacdc.snapshot")
PROGRESS_EVERY_S = 5.0


def coercion_policy(settings: Settings) -> BadValuePolicy:
    def on_coercion(c: Coercion) -> None:
        metrics.values_coerced.labels(table=c.table, column=c.column, reason=c.reason).inc()
        log.warning("value coerced", table=c.table, column=c.column, reason=c.reason,
                    key=c.key, position=c.position, value=c.value_repr)
    return BadValuePolicy(strict=settings.bad_value_policy == "strict", on_coercion=on_coercion)


class Progress:
    """Per-table progress: a log line every few seconds, a live bar on a terminal."""

    def __init__(self, tty: bool | None = None, what: str = "snapshot",
                 done_event: str = "table copied") -> None:
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.what, self.done_event = what, done_event
        self.table = ""
        self.done = 0
        self.estimate = 0
        self.started = time.monotonic()
        self.last_log = 0.0

    def begin(self, table: str, estimate: int) -> None:
        self.table, self.done, self.estimate = table, 0, estimate
        self.started = self.last_log = time.monotonic()

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if self.tty:
            self._draw()
        if now - self.last_log >= PROGRESS_EVERY_S:
            self.last_log = now
            rate, eta = self.rate_eta()
            log.info(f"{self.what} progress", table=self.table, rows=self.done,
                     estimated=self.estimate, rows_per_s=round(rate), eta_s=eta)

    def rate_eta(self) -> tuple[float, float | None]:
        elapsed = max(1e-6, time.monotonic() - self.started)
        rate = self.done / elapsed
        left = max(0, self.estimate - self.done)
        return rate, (round(left / rate, 1) if rate > 0 and self.estimate else None)

    def finish(self) -> None:
        if self.tty:
            self._draw()
            sys.stderr.write("\n")
        rate, _ = self.rate_eta()
        log.info(self.done_event, table=self.table, rows=self.done, rows_per_s=round(rate),
                 seconds=round(time.monotonic() - self.started, 2))

    def _draw(self) -> None:
        share = min(1.0, self.done / self.estimate) if self.estimate else 0.0
        filled = int(share * 30)
        rate, eta = self.rate_eta()
        eta_text = f"ETA {eta:.0f}s" if eta is not None else ""
        sys.stderr.write(f"\r{self.table[:28]:<28} [{'#' * filled}{'.' * (30 - filled)}] "
                         f"{self.done:>10,}/{self.estimate:,} {rate:>8,.0f} rows/s {eta_text}  ")
        sys.stderr.flush()


class IndexBuilder(threading.Thread):
    """Builds secondary indexes on its own connection while the next table copies."""

    def __init__(self, settings: Settings, lease: writer.WriterLease | None) -> None:
        super().__init__(name="wacdc-index-builder", daemon=True)
        self.settings, self.lease = settings, lease
        self.jobs: queue.Queue[TargetTable | None] = queue.Queue()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with connect_target(self.settings.target(), autocommit=True) as conn:
                if self.lease is not None:
                    writer.join(conn, self.lease)
                while (table := self.jobs.get()) is not None:
                    started = time.monotonic()
                    for name, index in table.indexes:
                        exists = conn.execute(
                            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = "
                            "c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                            (table.schema, name)).fetchone()
                        if not exists:
                            with conn.transaction():  # built only while still the writer
                                writer.assert_writer(conn)
                                conn.execute(create_index_sql(table, name, index))
                    conn.execute(sql.SQL("ANALYZE {}.{}").format(
                        sql.Identifier(table.schema), sql.Identifier(table.name)))
                    state.set_table_status(conn, table.name, "done")
                    log.info("indexes built", table=table.name, indexes=len(table.indexes),
                             seconds=round(time.monotonic() - started, 2))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, re-raised there
            self.error = exc

    def finish(self) -> None:
        self.jobs.put(None)
        self.join()
        if self.error is not None:
            raise self.error


@dataclass
class SnapshotResult:
    tables: dict[str, int] = field(default_factory=dict)  # rows copied in this run
    positions: dict[str, BinlogPosition] = field(default_factory=dict)
    stopped: bool = False

    @property
    def start_position(self) -> BinlogPosition | None:
        return min(self.positions.values(), default=None)


def run_snapshot(settings: Settings, stop: threading.Event | None = None,
                 lease: writer.WriterLease | None = None,
                 on_chunk: Callable[[str, int], None] | None = None,
                 status: DaemonStatus | None = None) -> SnapshotResult:
    """Copy what is not copied yet. Returns per-table positions for streaming.

    Every commit is proved against `lease` (wacdc.sink.writer): an instance that lost
    the writer lock stops at its next chunk. `status`: the daemon's (else one of its own)."""
    stop = stop or threading.Event()
    status = status or DaemonStatus()
    # allow_retired: a restart after an interrupted cutover finds the tables fenced.
    profile, tables = plan_target(settings, allow_retired=True)
    source_url = settings.source()
    policy = coercion_policy(settings)

    target = connect_target(settings.target(), autocommit=True)
    with target:
        state.ensure_schema(target)
        if lease is not None:
            writer.join(target, lease)
        if state.get_phase(target) in (None, "failed"):
            status.set_phase(Phase.SNAPSHOT, target, source_database=source_url.database)
        state.register_tables(target, {t.name: t.source.estimated_rows for t in tables})
        progress_rows = state.snapshot_progress(target)
        # Tables already copied follow the source's schema changes through the binlog.
        to_create = [t for t in tables if progress_rows[t.name].status not in ("done",
                                                                                "loaded")]
        apply_steps(target, plan_ddl(to_create, profile, settings.target_schema,
                                     indexes=False), to_create, settings.target_schema)
        metrics.start_series([t.name for t in tables])
        for t in tables:
            metrics.snapshot_rows_estimated.labels(table=t.name).set(t.source.estimated_rows)

        result = SnapshotResult()
        builder = IndexBuilder(settings, lease)
        builder.start()
        todo = _still_to_copy(tables, progress_rows, builder, result)
        try:
            if todo:  # converters for these only: a restart with all copied builds none
                converters = {t.name: RowConverter(t.name, t.columns, t.key, policy)
                              for t in todo}
                _copy_tables(settings, target, todo, converters, builder, result, stop,
                             on_chunk)
        finally:
            with status.busy("building secondary indexes"):
                builder.finish()
        if not result.stopped:
            log.info("snapshot complete", tables=len(tables),
                     start_position=str(result.start_position))
    return result


def _still_to_copy(tables: list[TargetTable], progress_rows: dict[str, state.TableProgress],
                   builder: IndexBuilder, result: SnapshotResult) -> list[TargetTable]:
    """The tables to copy (again); the others keep their positions, and a loaded one
    still gets its indexes."""
    todo = []
    for table in tables:
        row = progress_rows[table.name]
        if row.status == "done":
            result.positions[table.name] = row.position  # type: ignore[assignment]
        elif row.status == "loaded":
            result.positions[table.name] = row.position  # type: ignore[assignment]
            builder.jobs.put(table)
        else:
            if row.status == "copying":
                log.warning("consistent view of an earlier run is gone; copying the table "
                            "again from a new view", table=table.name,
                            rows_discarded=row.rows_copied)
            todo.append(table)
    return todo


def _copy_tables(settings: Settings, target: psycopg.Connection, todo: list[TargetTable],
                 converters: dict[str, RowConverter], builder: IndexBuilder,
                 result: SnapshotResult, stop: threading.Event,
                 on_chunk: Callable[[str, int], None] | None) -> None:
    changed = _copy_in_one_view(settings, target, todo, converters, builder, result, stop,
                                on_chunk)
    for attempt in range(1, DDL_RETRIES + 1):
        if not changed or result.stopped:
            return
        # A table whose definition changed under the view (ALTER, TRUNCATE, ... after the
        # view began): planned again from the source as it is now, created again in
        # PostgreSQL, and copied from a view of its own (its own position: streaming
        # skips, for it alone, what that copy holds). The other tables keep their copies.
        profile, planned = plan_target(settings, allow_retired=True)
        again = [t for t in planned if t.name in changed]
        for table in again:
            log.warning("table changed during its snapshot (DDL); copying it again from a "
                        "new read view", table=table.name, attempt=attempt)
            _recreate(target, table, profile, settings.target_schema)
            converters[table.name] = RowConverter(table.name, table.columns, table.key,
                                                  converters[table.name].policy)
        changed = _copy_in_one_view(settings, target, again, converters, builder, result,
                                    stop, on_chunk)
    if changed:
        raise WacdcError(f"table(s) {', '.join(sorted(changed))} changed again during each "
                         f"of {DDL_RETRIES} copies (schema changes in a loop?); wait for "
                         "the migration to finish, then run wacdc run again: it copies "
                         "what is not copied yet")


DDL_RETRIES = 3
ER_TABLE_DEF_CHANGED = 1412  # "Table definition has changed, please retry transaction"


def _recreate(target: psycopg.Connection, table: TargetTable, profile: Profile,
              schema: str) -> None:
    with target.transaction():
        writer.assert_writer(target)
        target.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(
            sql.Identifier(table.schema), sql.Identifier(table.name)))
    apply_steps(target, plan_ddl([table], profile, schema, indexes=False), [table], schema)


def _copy_in_one_view(settings: Settings, target: psycopg.Connection,
                      todo: list[TargetTable], converters: dict[str, RowConverter],
                      builder: IndexBuilder, result: SnapshotResult, stop: threading.Event,
                      on_chunk: Callable[[str, int], None] | None) -> set[str]:
    """Copy `todo` from one consistent view; the names of tables whose definition changed
    under it (to copy again), empty when all were copied."""
    source_url = settings.source()
    view = open_read_view(source_url, [t.source for t in todo], settings.snapshot_lock)
    changed: set[str] = set()
    try:
        state.record_view(target, view.view_id, view.position, view.method,
                          view.write_pause_seconds)
        log.info("consistent read view open", view=view.view_id, position=str(view.position),
                 method=view.method, write_pause_s=round(view.write_pause_seconds, 4))
        progress = Progress()
        for table in todo:
            if stop.is_set():
                result.stopped = True
                log.info("stop requested: snapshot paused; a restart copies the rest",
                         table=table.name)
                return changed
            try:
                copied = copy_table(view, target, table, converters[table.name],
                                    settings.snapshot_chunk_rows, progress, stop, on_chunk)
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != ER_TABLE_DEF_CHANGED:
                    raise
                changed.add(table.name)  # the view cannot read it; the next one will
                continue
            if copied is None:
                result.stopped = True
                return changed
            result.tables[table.name] = copied
            result.positions[table.name] = view.position
            builder.jobs.put(table)
    except pymysql.err.OperationalError as exc:
        raise WacdcError(f"source connection lost during the snapshot ({exc.args[-1]}); the "
                         "consistent view is gone: restart wacdc run, which copies the "
                         "unfinished tables again from a new view") from None
    finally:
        view.close()
    return changed


def copy_table(view: ReadView, target: psycopg.Connection, table: TargetTable,
                converter: RowConverter, chunk_rows: int, progress: Progress,
                stop: threading.Event, on_chunk: Callable[[str, int], None] | None
                ) -> int | None:
    """Copy one table in keyset chunks; each chunk commits with its progress row."""
    reader = ChunkReader(view, table.source, converter, chunk_rows)
    copy_sql = statements.copy_in(table.relation, [c.name for c in table.columns])
    with target.transaction():
        target.execute(sql.SQL("TRUNCATE {}").format(table.relation))
        state.start_table(target, table.name, view.view_id, view.position)
    progress.begin(table.name, table.source.estimated_rows)
    after: tuple | None = None
    total = 0
    while True:
        if stop.is_set():
            log.info("stop requested: table left mid-copy; a restart copies it again",
                     table=table.name, rows=total)
            return None
        count = 0
        last_raw: tuple | None = None
        with target.transaction():
            # The queued writer sends from its own thread, so PostgreSQL consumes one
            # batch while this thread reads and converts the next.
            with target.cursor() as cur, cur.copy(copy_sql,
                                                  writer=QueuedLibpqWriter(cur)) as copy:
                write = copy.write_row
                for raw, row in reader.chunk(after):
                    write(row)
                    last_raw = raw
                    count += 1
            if count:
                after = reader.key_of(last_raw)  # type: ignore[arg-type]
                state.chunk_done(target, table.name, count)
        if count:
            total += count
            metrics.snapshot_rows.labels(table=table.name).inc(count)
            progress.advance(count)
            if on_chunk is not None:
                on_chunk(table.name, total)
        if count < chunk_rows:
            break
    with target.transaction():
        state.set_table_status(target, table.name, "loaded")
    progress.finish()
    return total
