"""MySQL's compressed transactions: TRANSACTION_PAYLOAD_EVENT (type 40).

With `binlog_transaction_compression=ON` (a session variable: a batch job can turn it on
for itself while the global value stays OFF) MySQL 8.0.20+ writes a whole transaction,
its BEGIN, table maps, row events and XID, zstd-compressed inside one payload event. The
GTID event stays outside, before it. mysql-replication does not know the type and drops
it, so the transaction would vanish silently.

Here the payload event is read and its inner events are taken out again, decompressed
as a stream (bounded memory: one inner event at a time, never the whole transaction);
source/stream_reader.py decodes each one with the library's own packet wrapper exactly as if
it had come over the wire, so the rest of the pipeline sees BEGIN, rows and XID in
order. An inner event type that is not expected in a compressed transaction stops the
stream with its type code and position.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import zstandard
from pymysqlreplication.constants import BINLOG
from pymysqlreplication.event import BinLogEvent

from wacdc.schema.charsets import lenenc

TRANSACTION_PAYLOAD_EVENT = 0x28

# The payload header: <field type, length, value> triples, each a length-encoded integer,
# until the end mark; then the (compressed) events.
_END_MARK, _SIZE, _COMPRESSION, _UNCOMPRESSED_SIZE = 0, 1, 2, 3
ZSTD, NONE = 0, 255
_EVENT_HEADER = 19

# What MySQL puts inside a payload (row-format transactions only). Anything else is news:
# the stream stops instead of guessing.
INNER_EVENT_TYPES = frozenset({
    BINLOG.QUERY_EVENT, BINLOG.TABLE_MAP_EVENT, BINLOG.XID_EVENT,
    BINLOG.WRITE_ROWS_EVENT_V2, BINLOG.UPDATE_ROWS_EVENT_V2, BINLOG.DELETE_ROWS_EVENT_V2,
    BINLOG.WRITE_ROWS_EVENT_V1, BINLOG.UPDATE_ROWS_EVENT_V1, BINLOG.DELETE_ROWS_EVENT_V1,
    BINLOG.PARTIAL_UPDATE_ROWS_EVENT, BINLOG.ROWS_QUERY_LOG_EVENT,
})


def parse_payload_header(body: bytes) -> tuple[int, int | None, memoryview]:
    """(compression type, uncompressed size or None, payload bytes) of an event body."""
    fields: dict[int, int] = {}
    pos = 0
    while True:
        kind, pos = lenenc(body, pos)
        if kind == _END_MARK:
            break
        length, pos = lenenc(body, pos)
        value, end = lenenc(body, pos)
        if end != pos + length:
            raise ValueError(f"payload header field {kind}: {length} bytes declared, "
                             f"{end - pos} read")
        fields[kind] = value  # unknown fields are skipped by their length, as MySQL does
        pos += length
    size = fields.get(_SIZE)
    if size is None or _COMPRESSION not in fields:
        raise ValueError("payload header without size or compression type")
    if pos + size != len(body):
        raise ValueError(f"payload of {size} bytes declared, {len(body) - pos} present")
    return fields[_COMPRESSION], fields.get(_UNCOMPRESSED_SIZE), memoryview(body)[pos:]


class TransactionPayloadEvent(BinLogEvent):
    """A compressed transaction as it came over the wire (expanded by PayloadReader)."""

    def __init__(self, from_packet: Any, event_size: int, table_map: dict,
                 ctl_connection: Any, **kwargs: Any) -> None:
        super().__init__(from_packet, event_size, table_map, ctl_connection, **kwargs)
        body = self.packet.read(event_size)
        self.compression, self.uncompressed_size, self.payload = parse_payload_header(body)


def inner_events(compression: int, payload: bytes | memoryview) -> Iterator[bytes]:
    """The raw inner events (header + body, no checksum: MySQL writes none inside)."""
    if compression == ZSTD:
        # A stream reader: one event in memory at a time, however large the transaction.
        stream: Any = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload))
    elif compression == NONE:
        stream = io.BytesIO(payload)
    else:
        raise ValueError(f"unknown compression type {compression} (known: zstd 0, none 255)")
    with stream:
        while True:
            header = _read_exactly(stream, _EVENT_HEADER, allow_eof=True)
            if not header:
                return
            size = int.from_bytes(header[9:13], "little")
            if size < _EVENT_HEADER:
                raise ValueError(f"inner event of {size} bytes, shorter than its header")
            yield header + _read_exactly(stream, size - _EVENT_HEADER)


def _read_exactly(stream: Any, size: int, allow_eof: bool = False) -> bytes:
    chunks, missing = [], size
    while missing:
        chunk = stream.read(missing)
        if not chunk:
            if allow_eof and missing == size:
                return b""
            raise ValueError(f"payload ends {missing} bytes into an event")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
