"""MariaDB's compressed events (`log_bin_compress=ON`) rebuilt into the plain events they
stand for (source/library.py hands each one here before the library sees it).

The compressed types (165-171) are, as the server itself reads them
(`query_event_uncompress` and `row_log_event_uncompress` in MariaDB's sql/log_event.cc),
rebuilt into the event they compress, before the library sees them:

- the compressed part is one record: a header byte (bit 7 set = compressed; bits 4-6 the
  algorithm, 0 = zlib, the only one; bits 0-2 the size of the length field, 1-4 bytes),
  the uncompressed length (big-endian), then the zlib stream;
- QUERY_COMPRESSED_EVENT (165): post-header, status variables, schema name and its NUL
  stay as they are; the query text is the compressed record. It becomes a QUERY_EVENT (2);
- WRITE/UPDATE/DELETE_ROWS_COMPRESSED_EVENT_V1 (166-168) and the v2 forms (169-171): the
  post-header (table id, flags; v2 also its variable-length extra data), the column count
  and the column bitmap(s) stay as they are; the row images are the compressed record.
  They become WRITE/UPDATE/DELETE_ROWS_EVENT_V1 (23-25) or v2 (30-32).

The rebuilt event gets the plain type code and its new length in the header (its end
position, `log_pos`, is unchanged: it is where the compressed event ends in the binlog),
and a new CRC32 when the stream carries checksums (the compressed event's own is checked
first when the stream verifies checksums). The library then decodes it with its own
QueryEvent / WriteRowsEvent / UpdateRowsEvent / DeleteRowsEvent, exactly as an
uncompressed event: table and schema filters apply, `isinstance` checks hold, the
stream's subscriptions (`SUBSCRIBE`: classes any stream of wacdc already subscribes) need
nothing new, and wacdc's compiled decoder reads the row images from the rebuilt packet
(`event.packet.packet.get_all_data()`). `compressed_type(event)` says which events came
compressed. A declared uncompressed size above `MAX_UNCOMPRESSED` (1 GiB), or data that
does not decompress to exactly the declared size, stops the stream naming type and
position.
"""

from __future__ import annotations

import zlib
from typing import Any

from pymysql.protocol import MysqlPacket

from wacdc.schema.charsets import lenenc
from wacdc.source.event_types import PLAIN_TYPE, QUERY_COMPRESSED_EVENT, STOPPED, EventTypeError

MAX_UNCOMPRESSED = 1 << 30  # bytes; MariaDB's max_allowed_packet cannot exceed 1 GiB either
_QUERY_POST_HEADER = 13  # thread id 4, exec time 4, db length 1, error code 2, status len 2
_ROWS_POST_HEADER = {1: 8, 2: 10}  # table id 6 + flags 2; v2 + extra-data length 2


class _Corrupt(ValueError):
    pass


def _inflate(record: bytes) -> bytes:
    """One compressed record (header byte, big-endian length, zlib data), bounded."""
    if len(record) < 2:
        raise _Corrupt("the compressed record is missing")
    head = record[0]
    if not head & 0x80:
        raise _Corrupt(f"record header 0x{head:02x} is not marked compressed")
    algorithm, width = (head >> 4) & 0x07, head & 0x07
    if algorithm != 0:
        raise _Corrupt(f"compression algorithm {algorithm} (MariaDB has only zlib, 0)")
    if not 1 <= width <= 4 or len(record) < 1 + width:
        raise _Corrupt(f"length field of {width} bytes in record header 0x{head:02x}")
    size = int.from_bytes(record[1:1 + width], "big")
    if size == 0:
        raise _Corrupt("declared uncompressed size 0")
    if size > MAX_UNCOMPRESSED:
        raise _Corrupt(f"declared uncompressed size {size} bytes is above wacdc's limit of "
                       f"{MAX_UNCOMPRESSED} bytes")
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(record[1 + width:], size)  # never more than declared
        if len(out) == size and not inflater.eof and inflater.decompress(
                inflater.unconsumed_tail, 1):
            raise _Corrupt(f"the data decompresses to more than the declared {size} bytes")
    except zlib.error as exc:
        raise _Corrupt(f"zlib: {exc}") from None
    if not inflater.eof:
        raise _Corrupt(f"the zlib stream is truncated ({len(out)} of {size} bytes)")
    if len(out) != size:
        raise _Corrupt(f"decompressed {len(out)} bytes, {size} declared")
    if inflater.unused_data:
        raise _Corrupt(f"{len(inflater.unused_data)} bytes after the zlib stream")
    return out


def _packed_int(body: bytes, pos: int) -> tuple[int, int]:
    try:
        return lenenc(body, pos)
    except (ValueError, IndexError) as exc:
        raise _Corrupt(f"the column count: {exc}") from None


def _declared(post_header_lengths: Any, code: int) -> int | None:
    if post_header_lengths and 0 < code <= len(post_header_lengths):
        return int(post_header_lengths[code - 1])
    return None


def _uncompressed_body(kind: int, body: bytes, post_header_lengths: Any) -> bytes:
    """The body of the plain event a compressed event body stands for."""
    plain = PLAIN_TYPE[kind]
    if kind == QUERY_COMPRESSED_EVENT:
        post_header = _declared(post_header_lengths, kind) or _QUERY_POST_HEADER
        if post_header < _QUERY_POST_HEADER or post_header != (
                _declared(post_header_lengths, plain) or post_header):
            raise _Corrupt(f"post-header of {post_header} bytes declared for it, "
                           f"{_declared(post_header_lengths, plain)} for QUERY_EVENT")
        if len(body) < post_header:
            raise _Corrupt("the event is shorter than its post-header")
        db_len, status_len = body[8], int.from_bytes(body[11:13], "little")
        start = post_header + status_len + db_len + 1  # status vars, db name, its NUL
    else:
        version = 2 if kind >= 169 else 1
        expected = _ROWS_POST_HEADER[version]
        for code in (kind, plain):  # the library reads the rebuilt event by the plain one
            declared = _declared(post_header_lengths, code)
            if declared not in (None, expected):
                raise _Corrupt(f"post-header of {declared} bytes declared for type {code}, "
                               f"{expected} expected")
        start = 8  # table id, flags
        if version == 2:
            if len(body) < start + 2:
                raise _Corrupt("the event is shorter than its post-header")
            extra = int.from_bytes(body[start:start + 2], "little")  # counts its 2 bytes
            if extra < 2:
                raise _Corrupt(f"extra-data length {extra}")
            start += extra
        if start >= len(body):
            raise _Corrupt("the event ends before its column count")
        width, start = _packed_int(body, start)
        bitmaps = 2 if plain in (24, 31) else 1  # an update has a before and an after bitmap
        start += bitmaps * ((width + 7) // 8)
    if start >= len(body):
        raise _Corrupt("the event ends before its compressed part")
    return body[:start] + _inflate(body[start:])


def uncompressed_packet(data: bytes, kind: int, use_checksum: bool, verify_checksum: bool,
                         post_header_lengths: Any) -> MysqlPacket:
    """A fresh packet holding the plain event that the compressed one in `data` stands for
    (`data`: the OK byte, the event, its CRC32 when `use_checksum`)."""
    end_pos = int.from_bytes(data[14:18], "little")
    try:
        size = int.from_bytes(data[10:14], "little")
        crc = 4 if use_checksum else 0
        if len(data) != 1 + size or size < 19 + crc:
            raise _Corrupt(f"event of {size} bytes declared, {len(data) - 1} received")
        event = data[1:1 + size - crc]
        if verify_checksum and crc and \
                zlib.crc32(event).to_bytes(4, "little") != data[1 + size - crc:1 + size]:
            raise _Corrupt("its CRC32 checksum does not match")
        body = _uncompressed_body(kind, event[19:], post_header_lengths)
    except (_Corrupt, IndexError) as exc:
        raise EventTypeError(
            kind, end_pos,
            f"cannot decompress it ({exc}). {STOPPED}. The source's binlog may be damaged "
            "(read it with mariadb-binlog at that position); report it with the server's "
            "version. log_bin_compress=OFF on the source avoids compressed events from "
            "then on; the events already written need a new snapshot") from None
    header = bytearray(event[:19])
    header[4] = PLAIN_TYPE[kind]
    header[9:13] = (19 + len(body) + crc).to_bytes(4, "little")
    rebuilt = bytes(header) + body
    if crc:
        rebuilt += zlib.crc32(rebuilt).to_bytes(4, "little")
    return MysqlPacket(b"\x00" + rebuilt, "utf8")


def compressed_type(event: Any) -> int | None:
    """The MariaDB compressed type (165-171) an event was rebuilt from, else None."""
    return getattr(getattr(event, "packet", None), "compressed_type", None)
