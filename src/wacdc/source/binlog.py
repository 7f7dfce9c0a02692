"""Binlog reader on mysql-replication: the stream, its row changes, and the items it
becomes.

`open_stream` opens the dump (by file:pos or GTID) with what the library lacks plugged in
as the stream opens (source/library.py): compressed transactions (payload.py), tagged
GTIDs (gtid.py), the event-type list (event_types.py) and MariaDB's compressed events
(compressed.py). source/framing.py groups the events into one
`Transaction` per source commit, also for transactions that touch no tracked table, so
the applied position advances while the main application is busy elsewhere. With a
heartbeat the server sends something at least every `heartbeat_s`, so an idle source
still wakes the loop (to flush, to notice a stop request, to measure lag).

The heartbeat is also how a dead or half-open connection is found: a server that
sends something at least every `heartbeat_s` and has sent nothing for
`stream_read_timeout(heartbeat_s)` is not there any more (a NAT dropped the mapping, a
proxy hung, a partition). The stream socket has that read timeout, and the timeout
comes out of the stream as `SourceDead`, a transient source failure: the daemon
reconnects from its checkpoint instead of waiting for the kernel's keepalive (hours).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import GtidEvent as MysqlGtidEvent
from pymysqlreplication.event import (
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from wacdc.config import DatabaseUrl
from wacdc.errors import RowImageError
from wacdc.events import BinlogPosition, RowChange
from wacdc.source.connection import SourceConnection, connection_kwargs
from wacdc.source.decoder import DECODERS, CompiledDecoder, pairs
from wacdc.source.load_query import LoadQueryEvent
from wacdc.source.payload import TransactionPayloadEvent
from wacdc.source.rowimage import unambiguous
from wacdc.source.stream_reader import PayloadReader
from wacdc.source.tablemap import TableMapMemo

# No byte from a source that heartbeats every `heartbeat_s` for this many heartbeats, and
# at least this long (scheduling hiccups, a busy server, TLS renegotiation): dead.
SILENT_HEARTBEATS = 10
SILENT_MIN_S = 5.0


def stream_read_timeout(heartbeat_s: float) -> float:
    """The binlog stream's read timeout: max(10 heartbeats, 5 s); 5 s at wacdc's 0.1 s."""
    return max(SILENT_HEARTBEATS * heartbeat_s, SILENT_MIN_S)


def control_read_timeout(heartbeat_s: float, longest_query_s: float) -> float:
    """A control connection's read timeout: the stream's, plus its longest legitimate
    query (the cutover's row counts, which must fit in the freeze anyway)."""
    return stream_read_timeout(heartbeat_s) + longest_query_s


class SourceDead(pymysql.err.OperationalError):
    """A dead or half-open connection to the source: nothing received within its bound.
    A pymysql OperationalError (CR_SERVER_LOST), so transient: reconnect, resume."""

    bound_s: float = 0.0

    @classmethod
    def after(cls, bound_s: float, what: str) -> SourceDead:
        exc = cls(2013, f"dead or half-open connection to the source ({what}): nothing "
                        f"received within {bound_s:g}s")
        exc.bound_s = bound_s
        return exc


def timed_out(exc: BaseException) -> bool:
    """Whether a pymysql failure is a read (or connect) timeout: nothing came."""
    return isinstance(exc, pymysql.err.OperationalError) and (
        isinstance(exc.__context__, TimeoutError) or "timed out" in str(exc))


def open_stream(url: DatabaseUrl, server_id: int, start: BinlogPosition,
                tables: list[str] | None, *, blocking: bool = False,
                heartbeat_s: float | None = None, transactions: bool = False,
                auto_position: str | None = None, mariadb: bool = True,
                decoder: str = "compiled") -> BinLogStreamReader:
    """A dump from `start` (file:pos) or, with `auto_position`, from a GTID state.

    `decoder` says who decodes the row images (`row_changes`, `transactions`): wacdc's
    compiled plans, or the library as it ships (WACDC_DECODER=library)."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, not {decoder!r}")
    settings = connection_kwargs(url)
    settings.pop("database")
    if heartbeat_s:  # the server sends at least this often: silence means it is gone
        settings["read_timeout"] = stream_read_timeout(heartbeat_s)
    # MySQL's partial-JSON updates come as their own event class: subscribed, so they stop
    # the stream with a clear error instead of being dropped by the library's filter.
    # Compressed transactions are expanded into their inner events (source/payload.py).
    events: list[type] = [WriteRowsEvent, UpdateRowsEvent, PartialUpdateRowsEvent,
                          DeleteRowsEvent, TransactionPayloadEvent]
    if transactions:
        # A statement-logged LOAD DATA is judged by its table, as any statement is.
        events += [XidEvent, QueryEvent, LoadQueryEvent, RotateEvent, HeartbeatLogEvent,
                   MariadbGtidEvent, MysqlGtidEvent, XAPrepareEvent]
    compiled = decoder == "compiled"
    stream = PayloadReader(
        # Table-map parses are reused with the compiled decoder only: the library as it
        # ships otherwise (the benchmark's library figure).
        table_map_memo=TableMapMemo() if compiled else None,
        connection_settings=settings,
        pymysql_wrapper=SourceConnection,  # PREFERRED's TLS context built once
        server_id=server_id,
        log_file=None if auto_position else start.file,
        log_pos=None if auto_position else start.pos,
        resume_stream=True,
        auto_position=auto_position,
        # The library's MariaDB flag switches to its GTID dump, so only with auto_position.
        is_mariadb=bool(auto_position) and mariadb,
        blocking=blocking,
        only_events=events,
        # Row events of other tables are dropped before decoding; XID/query events all
        # pass, so the position advances through transactions on untracked tables too.
        only_schemas=[url.database],
        only_tables=tables,
        slave_heartbeat=heartbeat_s,
    )
    stream.wacdc_decoder = CompiledDecoder() if compiled else None
    return stream


def row_changes_of(stream: BinLogStreamReader, event: Any, position: BinlogPosition
                   ) -> Iterator[RowChange]:
    """The row changes of one row event, decoded by the stream's decoder."""
    table = event.table
    op = "insert" if isinstance(event, WriteRowsEvent) else \
        "delete" if isinstance(event, DeleteRowsEvent) else "update"
    decoder: CompiledDecoder | None = stream.wacdc_decoder
    decoded = decoder.images(event, position) if decoder is not None else None
    if decoded is not None:
        names, images = decoded
        for before, after in pairs(event, images):
            yield RowChange(table, op, names, before, after, position)
        return
    try:
        yield from _library_row_changes(event, op, position)
    except RowImageError as exc:
        raise RowImageError(f"{event.schema}.{table} at {position}: {exc}") from None


def _library_row_changes(event: Any, op: str, position: BinlogPosition
                         ) -> Iterator[RowChange]:
    for row in event.rows:  # the library's own decoding
        if op == "update":
            before = unambiguous(row["before_values"], row["before_none_sources"])
            after = unambiguous(row["after_values"], row["after_none_sources"], before)
            yield RowChange(event.table, op, tuple(after), tuple(before.values()),
                            tuple(after.values()), position)
        else:
            values = unambiguous(row["values"], row["none_sources"])
            image = tuple(values.values())
            yield RowChange(event.table, op, tuple(values), image if op == "delete" else None,
                            image if op == "insert" else None, position)


def row_changes(stream: BinLogStreamReader) -> Iterator[RowChange]:
    """Every row change of the (filtered) stream, one by one."""
    for event in stream:
        yield from row_changes_of(stream, event, BinlogPosition(stream.log_file,
                                                                stream.log_pos))


