"""MySQL's compressed transactions (src/wacdc/source/payload.py), without a server.

The real thing (a session with binlog_transaction_compression=ON, end to end through
`wacdc run`) is in tests/test_source_shapes.py; here the payload format itself: header
fields, zstd and uncompressed payloads, events split across reads, and the refusals.
"""

from __future__ import annotations

import struct

import pytest
import zstandard

from wacdc.errors import BinlogEventError
from wacdc.source.payload import (
    NONE,
    ZSTD,
    TransactionPayloadEvent,
    inner_events,
    parse_payload_header,
)
from wacdc.source.stream_reader import PayloadReader


def _lenenc(value: int) -> bytes:
    if value < 0xFB:
        return bytes([value])
    if value <= 0xFFFF:
        return b"\xfc" + value.to_bytes(2, "little")
    if value <= 0xFFFFFF:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + value.to_bytes(8, "little")


def _field(kind: int, value: int) -> bytes:
    encoded = _lenenc(value)
    return _lenenc(kind) + _lenenc(len(encoded)) + encoded


def _event(kind: int, body: bytes) -> bytes:
    """A binlog event as MySQL writes it inside a payload: 19-byte header, no checksum."""
    return struct.pack("<IBIIIH", 1_700_000_000, kind, 1, 19 + len(body), 0, 0) + body


def _payload(events: list[bytes], compression: int = ZSTD, extra: bytes = b"") -> bytes:
    raw = b"".join(events)
    data = zstandard.ZstdCompressor().compress(raw) if compression == ZSTD else raw
    return (_field(2, compression) + _field(1, len(data)) + extra + _field(3, len(raw))
            + _lenenc(0) + data)


EVENTS = [_event(2, b"BEGIN-ish"), _event(19, b"\x01" * 300), _event(30, b"r" * 70_000),
          _event(16, b"\x07" * 8)]


@pytest.mark.parametrize("compression", [ZSTD, NONE])
def test_inner_events_come_back_whole_and_in_order(compression: int) -> None:
    kind, size, data = parse_payload_header(_payload(EVENTS, compression))
    assert kind == compression and size == sum(map(len, EVENTS))
    assert list(inner_events(kind, data)) == EVENTS


def test_unknown_header_fields_are_skipped_by_their_length() -> None:
    body = _payload(EVENTS, extra=_field(9, 123456))
    kind, _, data = parse_payload_header(body)
    assert list(inner_events(kind, data)) == EVENTS


@pytest.mark.parametrize("body, message", [
    (_lenenc(0), "without size or compression"),
    (_field(2, ZSTD) + _field(1, 50) + _lenenc(0) + b"short", "50 bytes declared"),
    (_field(2, ZSTD) + _lenenc(1) + _lenenc(3) + b"\x05" + _lenenc(0), "3 bytes declared"),
    (b"\xff", "length-encoded"),
])
def test_broken_headers_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_payload_header(body)


def test_an_unknown_compression_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown compression type 7"):
        list(inner_events(7, b""))


def test_a_truncated_inner_event_is_refused() -> None:
    raw = zstandard.ZstdCompressor().compress(EVENTS[0] + EVENTS[1][:-5])
    with pytest.raises(ValueError, match="payload ends 5 bytes into an event"):
        list(inner_events(ZSTD, raw))


def test_an_event_shorter_than_its_header_is_refused() -> None:
    bad = struct.pack("<IBIIIH", 0, 2, 1, 7, 0, 0)
    with pytest.raises(ValueError, match="shorter than its header"):
        list(inner_events(NONE, bad))


def test_decompression_streams_one_event_at_a_time() -> None:
    # 200 MB of transaction in ~0.2 MB of zstd: reading the first event must not inflate
    # the rest (bounded memory for transactions of any size).
    big = _event(30, b"\0" * 1_000_000)
    compressed = zstandard.ZstdCompressor().compress(big * 200)
    events = inner_events(ZSTD, compressed)
    assert next(events) == big
    reader = events.gi_frame.f_locals["stream"]  # type: ignore[union-attr]
    assert reader.tell() < 20_000_000  # bytes decompressed so far


def test_an_event_type_unknown_inside_a_payload_stops_with_its_code_and_position() -> None:
    reader = PayloadReader.__new__(PayloadReader)  # no connection: the check comes first
    reader.log_file, reader.log_pos = "binlog.000007", 4242
    event = TransactionPayloadEvent.__new__(TransactionPayloadEvent)
    event.compression, event.uncompressed_size, event.payload = parse_payload_header(
        _payload([_event(0x99, b"?"), _event(2, b"BEGIN")]))
    with pytest.raises(BinlogEventError, match=r"event type 153 inside the compressed "
                       r"transaction ending at binlog\.000007:4242"):
        list(reader._expand(event))
