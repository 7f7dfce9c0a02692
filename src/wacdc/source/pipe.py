"""Where the binlog is read and decoded (WACDC_DECODE_IN): inline, or in a child process.

With `process` a child owns the replication connection: it reads, decodes and groups
the stream into transactions, and hands them over in order through one pipe (its
buffer is the bound: the child waits when the applier is behind). Nothing is applied or
checkpointed in the child, so exactly-once stays what it is inline: the daemon applies
each transaction once, with its checkpoint, and after any failure both start again
from the committed checkpoint. (A thread instead of a process was measured too: the
GIL made it 2.3x slower than inline; see docs/benchmarks.md.)
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from wacdc import metrics
from wacdc.config import DatabaseUrl
from wacdc.errors import WacdcError
from wacdc.log import configure_logging, get_logger
from wacdc.source.binlog import (
    Heartbeat,
    Piece,
    Statement,
    StreamItem,
    Transaction,
    open_stream,
)
from wacdc.source.framing import transactions
from wacdc.source.position import BinlogPosition, GtidState

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


class ItemSource(Protocol):
    items: Iterator[StreamItem]

    def close(self) -> None: ...


class InlineSource:
    """Read and decode in this process (the default)."""

    def __init__(self, spec: StreamSpec) -> None:
        self.reader = _open(spec)
        self.items = transactions(self.reader, spec.url.database, set(spec.tables),
                                  _gtids(spec), spec.piece_rows)

    def close(self) -> None:
        self.reader.close()


def _open(spec: StreamSpec) -> Any:
    return open_stream(spec.url, spec.server_id, spec.start, spec.tables, blocking=True,
                       heartbeat_s=spec.heartbeat_s, transactions=True,
                       auto_position=spec.auto_position, mariadb=spec.mariadb,
                       decoder=spec.decoder)


def _gtids(spec: StreamSpec) -> GtidState | None:
    return GtidState(spec.gtid, spec.mariadb) if spec.gtid or not spec.mariadb else None


class DecodeProcessGone(ConnectionError):
    """The decode process ended without saying why (killed, out of memory): a source-side
    failure like a dropped connection, so the daemon resumes from the checkpoint."""


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
        self.items = self._receive()

    def _receive(self) -> Iterator[StreamItem]:
        while True:
            try:
                if not self.conn.poll(0):
                    self.waiting.set()
                    while not self.conn.poll(1.0):
                        pass
                    self.waiting.clear()
                kind, payload, fallbacks = self.conn.recv()
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
        if self.process.is_alive():
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
