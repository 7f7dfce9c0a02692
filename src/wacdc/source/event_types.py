"""Every binlog event type, judged before mysql-replication can drop it; MariaDB's
compressed events (`log_bin_compress=ON`) decompressed into the plain events they stand for.

The rule: every binlog event type is either handled or on the written list of ignorable
types below (`EVENT_TYPES`); anything else stops the stream with its type code and
position. mysql-replication would instead turn an unknown type into NotImplementedEvent,
and drop any event whose class the stream did not subscribe, without a word.

`install()` wraps the library's `BinLogPacketWrapper.__init__`, through which every event
passes (the stream's own, and the inner events of a MySQL compressed transaction decoded
by source/payload.py), so the check runs before the library looks the type up or filters
it. Per event it costs one frozenset lookup of the header's type byte.

A stop raises `EventTypeError` (a `BinlogEventError`) naming the type code, its name when
known, the event's end position (`log_pos` of its header) and what to do. The wrapper does
not know the binlog file name: the message says "end position N of the current binlog
file", and the exception carries `type_code` and `end_pos`. The stream knows the file
(`stream.log_file` is still that of the failed event when the wrapper raises: the library
updates it only after the wrapper returns), so the caller re-raises with it:

    try:
        event = stream.fetchone()
    except EventTypeError as exc:
        raise exc.in_file(stream.log_file) from None   # "... at mysql-bin.000007:1234: ..."

MariaDB's compressed events (types 165-171) are, as the server itself reads them
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

import inspect
import zlib
from typing import Any, NamedTuple

from pymysql.protocol import MysqlPacket
from pymysqlreplication.event import QueryEvent
from pymysqlreplication.exceptions import StatusVariableMismatch
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from wacdc.errors import BinlogEventError
from wacdc.schema.charsets import lenenc

HANDLED, IGNORABLE, REFUSED = "handled", "ignorable", "refused"


class EventType(NamedTuple):
    name: str
    verdict: str  # HANDLED, IGNORABLE or REFUSED
    why: str  # IGNORABLE: why skipping it loses nothing; REFUSED: what it means
    todo: str = ""  # REFUSED: what the operator does next


def _h(name: str, why: str = "") -> EventType:
    return EventType(name, HANDLED, why)


def _i(name: str, why: str) -> EventType:
    return EventType(name, IGNORABLE, why)


def _r(name: str, why: str, todo: str) -> EventType:
    return EventType(name, REFUSED, why, todo)


_SNAPSHOT = "take a new snapshot (docs/operations.md, 'Binlog purged')"
_ANCIENT = ("written only by MySQL before 5.1, never by a supported source",
            "Point wacdc at MySQL 8.0-9.x or MariaDB 10.5-11.x")
_LOAD_DATA = ("part of a LOAD DATA logged as a statement (that session ran with "
              "binlog_format=STATEMENT or MIXED): the loaded rows are not in the binlog",
              f"Set binlog_format=ROW (wacdc check --fix), then {_SNAPSHOT}")
_CONTEXT = ("it only sets context for the statement-format statement that follows (its "
            "QUERY_EVENT, which the caller judges); it carries no rows")

# Log_event_type of MySQL 8.0-9.x (libs/mysql/binlog/event/binlog_event.h) and MariaDB
# 10.5-11.x (sql/log_event.h; 160+ are MariaDB's own). A code that is not here stops the
# stream. The comment says who writes it.
EVENT_TYPES: dict[int, EventType] = {
    0: _r("UNKNOWN_EVENT", "never written by a server", "Report it"),  # none
    1: _r("START_EVENT_V3", *_ANCIENT),  # MySQL 3.23-4.x binlog start
    2: _h("QUERY_EVENT"),  # both: BEGIN, COMMIT, DDL, XA, SAVEPOINT, statements
    3: _i("STOP_EVENT", "the source shut down; the binlog goes on in its next file"),  # both
    4: _h("ROTATE_EVENT"),  # both: next binlog file
    5: _i("INTVAR_EVENT", "AUTO_INCREMENT/LAST_INSERT_ID of a statement: " + _CONTEXT),  # both
    6: _r("LOAD_EVENT", *_ANCIENT),  # MySQL < 5.0 LOAD DATA
    7: _r("SLAVE_EVENT", *_ANCIENT),  # reserved, never used
    8: _r("CREATE_FILE_EVENT", *_ANCIENT),  # MySQL 4.x LOAD DATA
    9: _r("APPEND_BLOCK_EVENT", *_LOAD_DATA),  # both: a block of LOAD DATA's file
    10: _r("EXEC_LOAD_EVENT", *_ANCIENT),  # MySQL 4.x LOAD DATA
    11: _r("DELETE_FILE_EVENT", *_LOAD_DATA),  # both: a failed LOAD DATA's file dropped
    12: _r("NEW_LOAD_EVENT", *_ANCIENT),  # MySQL 4.x LOAD DATA
    13: _i("RAND_EVENT", "the RAND() seeds of a statement: " + _CONTEXT),  # both
    14: _i("USER_VAR_EVENT", "a @variable of a statement: " + _CONTEXT + " (MariaDB also "
           "sends one as a dummy for an event an older replica could not take)"),  # both
    15: _h("FORMAT_DESCRIPTION_EVENT"),  # both: starts every binlog file
    16: _h("XID_EVENT"),  # both: commit of a transactional engine
    17: _r("BEGIN_LOAD_QUERY_EVENT", *_LOAD_DATA),  # both: LOAD DATA's first file block
    18: _r("EXECUTE_LOAD_QUERY_EVENT", *_LOAD_DATA),  # both: the LOAD DATA statement
    19: _h("TABLE_MAP_EVENT"),  # both: the table of the rows events that follow
    20: _r("PRE_GA_WRITE_ROWS_EVENT", *_ANCIENT),  # MySQL 5.1.0-5.1.15 betas
    21: _r("PRE_GA_UPDATE_ROWS_EVENT", *_ANCIENT),  # MySQL 5.1.0-5.1.15 betas
    22: _r("PRE_GA_DELETE_ROWS_EVENT", *_ANCIENT),  # MySQL 5.1.0-5.1.15 betas
    23: _h("WRITE_ROWS_EVENT_V1"),  # MariaDB's rows events; MySQL's OBSOLETE_*_V1
    24: _h("UPDATE_ROWS_EVENT_V1"),  # MariaDB's rows events; MySQL's OBSOLETE_*_V1
    25: _h("DELETE_ROWS_EVENT_V1"),  # MariaDB's rows events; MySQL's OBSOLETE_*_V1
    26: _r("INCIDENT_EVENT", "the source logged an incident: its binlog has a gap here "
          "(changes it could not log); its own replicas stop at it too",
          f"Check the source's error log, then {_SNAPSHOT}"),  # both
    27: _h("HEARTBEAT_LOG_EVENT"),  # both: sent (never logged) while the source is idle
    28: _i("IGNORABLE_LOG_EVENT", "ignorable by definition: a replica that does not know "
           "it may skip it"),  # MySQL (a base type, not written itself)
    29: _i("ROWS_QUERY_LOG_EVENT", "the statement text of the rows events that follow "
           "(binlog_rows_query_log_events); the rows themselves come as rows"),  # MySQL
    30: _h("WRITE_ROWS_EVENT"),  # MySQL's rows events (v2)
    31: _h("UPDATE_ROWS_EVENT"),  # MySQL's rows events (v2)
    32: _h("DELETE_ROWS_EVENT"),  # MySQL's rows events (v2)
    33: _h("GTID_LOG_EVENT"),  # MySQL: the GTID of the transaction that follows
    34: _i("ANONYMOUS_GTID_LOG_EVENT", "starts a transaction that has no GTID (gtid_mode "
           "OFF); the transaction itself follows and is read"),  # MySQL
    35: _i("PREVIOUS_GTIDS_LOG_EVENT", "the GTIDs of earlier binlog files, informational; "
           "wacdc keeps its own GTID state from the transactions"),  # MySQL
    36: _i("TRANSACTION_CONTEXT_EVENT", "group replication's certification data of a "
           "transaction; the transaction itself is read"),  # MySQL group replication
    37: _i("VIEW_CHANGE_EVENT", "group replication's membership change; no rows"),  # MySQL GR
    38: _h("XA_PREPARE_LOG_EVENT"),  # both: XA PREPARE (source/framing.py)
    39: _h("PARTIAL_UPDATE_ROWS_EVENT"),  # MySQL: binlog_row_value_options=PARTIAL_JSON
    40: _h("TRANSACTION_PAYLOAD_EVENT"),  # MySQL: compressed transaction (source/payload.py)
    41: _i("HEARTBEAT_LOG_EVENT_V2", "a heartbeat, sent (never logged) only to replicas that "
           "ask for it in their dump request, which the library does not"),  # MySQL 8.0.26+
    42: _h("GTID_TAGGED_LOG_EVENT"),  # MySQL 8.3+: tagged GTID (source/gtid.py)
    160: _i("ANNOTATE_ROWS_EVENT", "the statement text of the rows events that follow "
            "(binlog_annotate_row_events); the rows themselves come as rows"),  # MariaDB
    161: _i("BINLOG_CHECKPOINT_EVENT", "the source's own crash-recovery bookkeeping; no "
            "data"),  # MariaDB
    162: _h("GTID_EVENT"),  # MariaDB: GTID, starts a transaction (source/position.py)
    163: _i("GTID_LIST_EVENT", "the GTID state at the start of a binlog file, "
            "informational"),  # MariaDB
    # The dump thread decrypts the events it reads (Log_event::read_log_event) and sends
    # this one flagged LOG_EVENT_IGNORABLE_F (older servers do not send it at all).
    164: _i("START_ENCRYPTION_EVENT", "the binlog file is encrypted on the source's disk; "
            "the dump thread sends its events decrypted"),  # MariaDB encrypt_binlog=ON
    165: _h("QUERY_COMPRESSED_EVENT"),  # MariaDB log_bin_compress: as QUERY_EVENT
    166: _h("WRITE_ROWS_COMPRESSED_EVENT_V1"),  # MariaDB log_bin_compress: as 23
    167: _h("UPDATE_ROWS_COMPRESSED_EVENT_V1"),  # MariaDB log_bin_compress: as 24
    168: _h("DELETE_ROWS_COMPRESSED_EVENT_V1"),  # MariaDB log_bin_compress: as 25
    169: _h("WRITE_ROWS_COMPRESSED_EVENT"),  # MariaDB log_bin_compress: as 30
    170: _h("UPDATE_ROWS_COMPRESSED_EVENT"),  # MariaDB log_bin_compress: as 31
    171: _h("DELETE_ROWS_COMPRESSED_EVENT"),  # MariaDB log_bin_compress: as 32
    172: _r("PARTIAL_ROW_DATA_EVENT", "a fragment of a rows event the source split "
            "(binlog_row_event_fragment_threshold), which wacdc cannot reassemble",
            f"Raise that threshold on the source, then {_SNAPSHOT}"),  # MariaDB 12.3+
}

HANDLED_TYPES = frozenset(k for k, t in EVENT_TYPES.items() if t.verdict == HANDLED)
IGNORABLE_TYPES = frozenset(k for k, t in EVENT_TYPES.items() if t.verdict == IGNORABLE)
REFUSED_TYPES = frozenset(k for k, t in EVENT_TYPES.items() if t.verdict == REFUSED)

QUERY_COMPRESSED_EVENT = 165
# Compressed type -> the plain type it stands for (MariaDB: type - 166 + 23, type - 169 + 30).
PLAIN_TYPE = {165: 2, 166: 23, 167: 24, 168: 25, 169: 30, 170: 31, 171: 32}
COMPRESSED_TYPES = frozenset(PLAIN_TYPE)
# What passes the wrapper untouched: one lookup per event.
_PASS = (HANDLED_TYPES | IGNORABLE_TYPES) - COMPRESSED_TYPES

# The library classes compressed events are decoded as. Every wacdc stream subscribes the
# rows classes (and, for transactions, QueryEvent) already: nothing new to subscribe.
SUBSCRIBE: frozenset[type] = frozenset({QueryEvent, WriteRowsEvent, UpdateRowsEvent,
                                        DeleteRowsEvent})

MAX_UNCOMPRESSED = 1 << 30  # bytes; MariaDB's max_allowed_packet cannot exceed 1 GiB either
LOG_EVENT_IGNORABLE_F = 0x80
_HEADER = 20  # OK byte of the packet + the 19-byte event header
_QUERY_POST_HEADER = 13  # thread id 4, exec time 4, db length 1, error code 2, status len 2
_ROWS_POST_HEADER = {1: 8, 2: 10}  # table id 6 + flags 2; v2 + extra-data length 2


def type_name(code: int) -> str | None:
    known = EVENT_TYPES.get(code)
    return known.name if known else None


class EventTypeError(BinlogEventError):
    """A binlog event wacdc stops on: an unknown or refused type, or a compressed event
    that does not decompress. `file` is None until the caller adds it (`in_file`)."""

    def __init__(self, type_code: int, end_pos: int, detail: str,
                 file: str | None = None) -> None:
        self.type_code = type_code
        self.end_pos = end_pos
        self.detail = detail
        self.file = file
        name = type_name(type_code)
        where = (f"{file}:{end_pos}" if file
                 else f"end position {end_pos} of the current binlog file")
        super().__init__(f"binlog event type {type_code}{f' ({name})' if name else ''} at "
                         f"{where}: {detail}")

    def in_file(self, file: str | None) -> EventTypeError:
        """The same error, naming the binlog file (`stream.log_file`)."""
        return type(self)(self.type_code, self.end_pos, self.detail, file or self.file)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: the decode process sends it
        return type(self), (self.type_code, self.end_pos, self.detail, self.file)


_STOPPED = "wacdc stopped there; nothing after it was applied"


def refusal(code: int, end_pos: int, flags: int = 0) -> EventTypeError:
    """The error for an event type that is neither handled nor ignorable."""
    known = EVENT_TYPES.get(code)
    if known is not None and known.verdict == REFUSED:
        return EventTypeError(code, end_pos, f"{known.why}. {_STOPPED}. {known.todo}")
    hint = (" The source flags it LOG_EVENT_IGNORABLE_F (a MySQL replica would skip it); "
            "wacdc skips only the types on its written list."
            if flags & LOG_EVENT_IGNORABLE_F else "")
    return EventTypeError(
        code, end_pos,
        f"not a type wacdc knows (it reads the binlogs of MySQL 8.0-9.x and MariaDB "
        f"10.5-11.x). {_STOPPED}, and a restart stops at it again. If the source is newer, "
        f"upgrade wacdc, or report the type code with the source's version.{hint}")


# --- MariaDB compressed events --------------------------------------------------------

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


def _uncompressed_packet(data: bytes, kind: int, use_checksum: bool, verify_checksum: bool,
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
            f"cannot decompress it ({exc}). {_STOPPED}. The source's binlog may be damaged "
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


# --- the monkeypatch ------------------------------------------------------------------

# BinLogPacketWrapper.__init__ of mysql-replication 1.0.17, the arguments after
# `from_packet`: checked at install, so a library upgrade that moves them fails loudly.
_WRAPPER_ARGS = ("self", "from_packet", "table_map", "ctl_connection", "mysql_version",
                 "use_checksum", "allowed_events", "only_tables", "ignored_tables",
                 "only_schemas", "ignored_schemas", "freeze_schema", "ignore_decode_errors",
                 "verify_checksum", "optional_meta_data", "enable_logging",
                 "use_column_name_cache", "post_header_lengths")


def _checksum_options(table_map: Any, ctl_connection: Any, mysql_version: Any,
                      use_checksum: bool, allowed_events: Any, only_tables: Any,
                      ignored_tables: Any, only_schemas: Any, ignored_schemas: Any,
                      freeze_schema: Any, ignore_decode_errors: Any, verify_checksum: bool,
                      optional_meta_data: Any, enable_logging: Any,
                      use_column_name_cache: Any = False, post_header_lengths: Any = None,
                      ) -> tuple[bool, bool, Any]:
    return bool(use_checksum), bool(verify_checksum), post_header_lengths


def install() -> None:
    """Judge every event type, and expand MariaDB's compressed events (idempotent).

    One monkeypatch, because the library has no hook between reading an event's header
    and dropping it: `BinLogPacketWrapper.__init__` (which reads the header, looks the type
    up in its event map and returns without an event when the class is not allowed) is
    wrapped so that, before it runs, the type byte of the packet is checked against the
    written list. Unknown and refused types raise EventTypeError; compressed ones replace
    the packet with the plain event they stand for (marked `compressed_type` on the
    wrapper); every other type goes on untouched.
    """
    original = BinLogPacketWrapper.__init__
    if getattr(original, "_wacdc_events", False):
        return
    found = tuple(inspect.signature(original).parameters)
    if found != _WRAPPER_ARGS:
        raise RuntimeError(f"mysql-replication's BinLogPacketWrapper.__init__ takes {found}, "
                           f"not {_WRAPPER_ARGS}: review wacdc/source/events.py for it")

    def __init__(self: BinLogPacketWrapper, from_packet: Any, *args: Any,
                 **kwargs: Any) -> None:
        data = from_packet.get_all_data()  # a fresh packet: the OK byte, then the header
        kind = data[5] if len(data) >= _HEADER else None
        if kind is None or kind in _PASS:
            original(self, from_packet, *args, **kwargs)  # a short packet: the library's error
            return
        if kind not in COMPRESSED_TYPES:
            raise refusal(kind, int.from_bytes(data[14:18], "little"), data[18])
        packet = _uncompressed_packet(data, kind, *_checksum_options(*args, **kwargs))
        original(self, packet, *args, **kwargs)
        self.compressed_type = kind

    __init__._wacdc_events = True  # type: ignore[attr-defined]
    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    BinLogPacketWrapper.__init__ = __init__


def install_query_status_tolerance() -> None:
    """Query events whose status variables the library does not know still read (idempotent).

    mysql-replication reads a QUERY event's status variables one key at a time and raises
    StatusVariableMismatch at a key it does not know; Oracle MySQL 9 writes newer keys in
    statement-format events. wacdc uses none of the variables, and the block's length is
    in the post-header: at an unknown key the rest of the block is skipped by that length,
    so the default database and the statement text (what wacdc reads) stay exact.
    """
    if getattr(QueryEvent._read_status_vars_value_for_key, "_wacdc_tolerant", False):
        return
    read_value = QueryEvent._read_status_vars_value_for_key
    advance = QueryEvent._advance_to_payload

    def advance_to_payload(self: QueryEvent, known: int) -> int:
        length = advance(self, known)
        self._wacdc_status_end = self.packet.read_bytes + self.status_vars_length
        return length

    def read_status_value(self: QueryEvent, key: int) -> None:
        try:
            read_value(self, key)
        except StatusVariableMismatch:
            self.packet.advance(self._wacdc_status_end - self.packet.read_bytes)

    read_status_value._wacdc_tolerant = True  # type: ignore[attr-defined]
    QueryEvent._advance_to_payload = advance_to_payload
    QueryEvent._read_status_vars_value_for_key = read_status_value
