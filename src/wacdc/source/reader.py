"""Where the binlog is read and decoded (WACDC_DECODE_IN): inline, or in a child process.

With `process` a child owns the replication connection: it reads, decodes and groups
the stream into transactions, and hands them over in order through one pipe (its
buffer is the bound: the child waits when the applier is behind). Nothing is applied or
checkpointed in the child, so exactly-once stays what it is inline: the daemon applies
each transaction once, with its checkpoint, and after any failure both start again
from the committed checkpoint. (A thread instead of a process was measured too: the
GIL made it 2.3x slower than inline; see docs/benchmarks.md.)

Neither side can hang the other. The child's stream socket has the heartbeat-tied read
timeout (source/binlog.py), so a dead source connection comes back as `SourceDead`
through the pipe. A child that stops altogether (stopped, deadlocked, swapped out: no
item sent and no CPU used for `child_silence_bound`) is killed, and the daemon
resumes from its checkpoint as after any source failure.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pymysql

from wacdc.config import DatabaseUrl
from wacdc.errors import WacdcError
from wacdc.events import (
    BinlogPosition,
    GtidState,
    Heartbeat,
    Piece,
    Statement,
    StreamItem,
    Transaction,
)
from wacdc.log import configure_logging, get_logger
from wacdc.observe import metrics
from wacdc.source.binlog import SourceDead, open_stream, stream_read_timeout, timed_out
from wacdc.source.framing import transactions

log = get_logger(__name__)

BATCH_CHANGES = 500  # a batch is handed over at this many row changes, or sooner


@dataclass(frozen=True)
class StreamSpec:
    """Everything needed to open the stream, in either process (picklable)."""

    url: DatabaseUrl
    server_id: int
    start: BinlogPosition
    tables: list[str]
    heartbeat_s: float
    auto_position: str | None
    mariadb: bool
    decoder: str
    gtid: str | None  # GTID state to fold transactions into (None: no GTIDs)
    log_format: str = "auto"
    log_level: str = "info"
    piece_rows: int = 0  # WACDC_TRANSACTION_PIECE_ROWS
    kept_at_rollback: frozenset[str] = frozenset()  # tracked tables that are not InnoDB


class ItemSource(Protocol):
    items: Iterator[StreamItem]

    def close(self) -> None: ...


class InlineSource:
    """Read and decode in this process (the default)."""

    def __init__(self, spec: StreamSpec) -> None:
        self.reader = _open(spec)
        self.items = _bounded(transactions(self.reader, spec.url.database, set(spec.tables),
                                           _gtids(spec), spec.piece_rows,
                                           spec.kept_at_rollback),
                              stream_read_timeout(spec.heartbeat_s), spec.heartbeat_s)

    def close(self) -> None:
        self.reader.close()


def _open(spec: StreamSpec) -> Any:
    return open_stream(spec.url, spec.server_id, spec.start, spec.tables, blocking=True,
                       heartbeat_s=spec.heartbeat_s, transactions=True,
                       auto_position=spec.auto_position, mariadb=spec.mariadb,
                       decoder=spec.decoder)


def _bounded(items: Iterator[StreamItem], bound_s: float, heartbeat_s: float
             ) -> Iterator[StreamItem]:
    """The items; a read timeout on the stream (or its setup) as SourceDead."""
    try:
        yield from items
    except pymysql.err.OperationalError as exc:
        if not timed_out(exc):
            raise
        raise SourceDead.after(bound_s, f"binlog stream, heartbeat every {heartbeat_s:g}s"
                               ) from None


def _gtids(spec: StreamSpec) -> GtidState | None:
    return GtidState(spec.gtid, spec.mariadb) if spec.gtid or not spec.mariadb else None


class DecodeProcessGone(ConnectionError):
    """The decode process ended without saying why (killed, out of memory): a source-side
    failure like a dropped connection, so the daemon resumes from the checkpoint."""


class DecodeProcessHung(ConnectionError):
    """The decode process neither sent anything nor used any CPU for longer than its
    bound: stopped or stuck. It is killed; the daemon resumes from the checkpoint."""

    bound_s: float = 0.0


CHILD_GRACE_S = 5.0  # beyond the child's own stream bound, before the daemon steps in


def child_silence_bound(heartbeat_s: float) -> float:
    """How long a decode process may send nothing while using no CPU: its stream's read
    timeout (it reports a dead source itself by then) plus CHILD_GRACE_S (10 s)."""
    return stream_read_timeout(heartbeat_s) + CHILD_GRACE_S


def _cpu_ticks(pid: int | None) -> int | None:
    """CPU time used by a process (clock ticks), None where /proc cannot tell (not Linux)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return None


class ChildSource:
    """Read and decode in a child process; transactions arrive here in binlog order.

    They cross a one-way pipe: its buffer bounds what is in flight (the child blocks in
    send while the daemon is behind). The daemon holds no write end, so a child that
    dies, even halfway through a message, is seen at once as the end of the pipe."""

    def __init__(self, spec: StreamSpec) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a threaded daemon
        self.conn, child_end = context.Pipe(duplex=False)
        self.waiting = context.Event()  # set while the daemon waits for items
        self.process = context.Process(target=_child_main,
                                       args=(spec, child_end, self.waiting),
                                       name="wacdc-decode", daemon=True)
        self.process.start()
        child_end.close()
        self.silence_bound = child_silence_bound(spec.heartbeat_s)
        self.hung = False
        self.items = self._receive()

    def _wait_for_the_child(self) -> None:
        """Until the child sends something; DecodeProcessHung if it stopped."""
        self.waiting.set()
        since, ticks = time.monotonic(), _cpu_ticks(self.process.pid)
        while not self.conn.poll(1.0):
            now, used = time.monotonic(), _cpu_ticks(self.process.pid)
            if used is None or used != ticks:  # busy (or cannot tell): not stuck
                since, ticks = now, used
            elif now - since > self.silence_bound:
                self.hung = True
                exc = DecodeProcessHung(
                    f"the decode process sent nothing and used no CPU for "
                    f"{now - since:.0f}s (bound {self.silence_bound:g}s): it is stuck; "
                    "killing it and resuming from the checkpoint")
                exc.bound_s = self.silence_bound
                raise exc
        self.waiting.clear()

    def _receive(self) -> Iterator[StreamItem]:
        while True:
            try:
                if not self.conn.poll(0):
                    self._wait_for_the_child()
                kind, payload, fallbacks = self.conn.recv()
            except DecodeProcessHung:
                raise
            except (EOFError, OSError):
                self.process.join(timeout=5)
                raise DecodeProcessGone(
                    f"the decode process exited (code {self.process.exitcode}) without "
                    "a word; resuming from the checkpoint") from None
            for (table, reason), n in fallbacks.items():
                metrics.decoder_fallback.labels(table=table, reason=reason).inc(n)
            if kind == "items":
                yield from payload
            elif kind == "error":
                raise payload
            else:  # "end": the server closed the dump
                return

    def close(self) -> None:
        if self.hung and self.process.is_alive():
            self.process.kill()  # a stopped process does not act on SIGTERM
        elif self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _forward(items: Iterator[StreamItem], put: Any, decoder: Any) -> None:
    """Group items into batches: at once when the consumer waits, else by size."""
    batch: list[StreamItem] = []
    changes = 0
    for item in items:
        batch.append(item)
        if isinstance(item, Transaction | Piece):
            changes += len(item.changes)
        if isinstance(item, Heartbeat | Statement) or changes >= BATCH_CHANGES or put.idle():
            put(("items", batch, decoder.take_fallbacks() if decoder is not None else {}))
            batch, changes = [], 0
    put(("items", batch, decoder.take_fallbacks() if decoder is not None else {}))


def open_source(spec: StreamSpec, decode_in: str) -> ItemSource:
    return ChildSource(spec) if decode_in == "process" else InlineSource(spec)


# --- the child --------------------------------------------------------------------------

def _child_main(spec: StreamSpec, out: Any, waiting: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the daemon's to handle
    configure_logging(spec.log_format, spec.log_level)
    sender = _Sender(out, waiting)
    try:
        source = InlineSource(spec)
        _forward(source.items, sender, source.reader.wacdc_decoder)
        sender(("end", None, {}))
    except (BrokenPipeError, ConnectionResetError):
        os._exit(1)  # the daemon is gone (kill -9): so are we
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the daemon
        try:
            sender(("error", _picklable(exc), {}))
        except (BrokenPipeError, ConnectionResetError):
            os._exit(1)


class _Sender:
    """Sends batches to the daemon: at once while it waits for them."""

    def __init__(self, out: Any, waiting: Any) -> None:
        self.out, self.waiting = out, waiting

    def idle(self) -> bool:
        return bool(self.waiting.is_set())

    def __call__(self, message: tuple) -> None:
        self.out.send(message)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any pickling failure: send the text instead
        return WacdcError(f"{type(exc).__name__}: {exc}")
