"""Every change wacdc makes to mysql-replication's behaviour, in one place.

`install()` applies them all, once (idempotent); source/stream_reader.py calls it when a stream
opens and before it decodes the inner events of a compressed transaction, the two places
the library parses events for wacdc. Nothing is patched at import. The patches reach into
the library's private names, so `install()` first checks that the installed
mysql-replication and PyMySQL are the versions they were written for, and stops with a
`LibraryVersionError` naming those versions otherwise.

The library has no extension points for any of them:

- tagged GTIDs (MySQL 8.3+, source/gtid.py): type 0x2A in the packet event map; the
  tagged class allowed wherever GtidEvent is (the library filters by exact class); the
  name `GtidSet` in `binlogstream` (used only to build COM_BINLOG_DUMP_GTID) becomes
  `MysqlGtidSet`, which parses and encodes tagged sets;
- TRANSACTION_PAYLOAD_EVENT (type 0x28, source/payload.py) in the packet event map;
- EXECUTE_LOAD_QUERY_EVENT (type 18) read with its statement (source/load_query.py);
- every event type judged, and MariaDB's compressed events rebuilt, in a wrapper around
  `BinLogPacketWrapper.__init__` (source/event_types.py, source/compressed.py); plain
  row and repeated table-map events framed there from their bytes, when the stream
  has a table-map memo (source/packet_framing.py);
- QUERY events with status variables the library does not know still read (MySQL 9);
- table-map parses reused per stream (source/tablemap.py: off unless the stream's table
  map carries a memo, so the library decoder is the library as it ships);
- binary JSON read as MySQL's text (source/jsonbinary.py), TIME2 read whole (the
  library's own reader mis-rounds negative fractions), `Table.__init__` without its
  double per-column dicts, `Table.data` built once per table instead of per row event;
- no silent re-dump after "server gone" errors (wacdc retries from its checkpoint).
"""

from __future__ import annotations

import inspect
import re
from importlib import metadata
from typing import Any

from pymysqlreplication import binlogstream
from pymysqlreplication.event import BinLogEvent, GtidEvent, QueryEvent
from pymysqlreplication.exceptions import StatusVariableMismatch
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import RowsEvent, TableMapEvent
from pymysqlreplication.table import Table

from wacdc.errors import WacdcError
from wacdc.gtidset import MysqlGtidSet
from wacdc.source import packet_framing
from wacdc.source.compressed import uncompressed_packet
from wacdc.source.event_types import COMPRESSED_TYPES, PASS_TYPES, refusal
from wacdc.source.gtid import GTID_TAGGED_LOG_EVENT, TaggedGtidEvent
from wacdc.source.imageplan import time2
from wacdc.source.jsonbinary import json_text
from wacdc.source.load_query import EXECUTE_LOAD_QUERY_EVENT, LoadQueryEvent
from wacdc.source.packet_framing import FRAMED_TYPES
from wacdc.source.payload import TRANSACTION_PAYLOAD_EVENT, TransactionPayloadEvent

# The versions these patches were written (and tested) for: requirements.lock.
MYSQL_REPLICATION = "1.0.17"  # exactly: the patches use its private names
PYMYSQL = "1.2.4"  # the same major version, 1.2 or later (MysqlPacket, error codes)

_HEADER = 20  # OK byte of the packet + the 19-byte event header

# BinLogPacketWrapper.__init__ of mysql-replication 1.0.17, the arguments after
# `from_packet`: checked at install, so a library that moves them fails loudly.
_WRAPPER_ARGS = ("self", "from_packet", "table_map", "ctl_connection", "mysql_version",
                 "use_checksum", "allowed_events", "only_tables", "ignored_tables",
                 "only_schemas", "ignored_schemas", "freeze_schema", "ignore_decode_errors",
                 "verify_checksum", "optional_meta_data", "enable_logging",
                 "use_column_name_cache", "post_header_lengths")


class LibraryVersionError(WacdcError):
    """mysql-replication or PyMySQL is not a version wacdc's patches were written for."""


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version.split("+")[0])[:3])


def version_problems(found: dict[str, str]) -> list[str]:
    """What is wrong with the installed versions (`found`: distribution -> version)."""
    problems = []
    replication = found.get("mysql-replication")
    if replication != MYSQL_REPLICATION:
        problems.append(f"mysql-replication {replication or 'is not installed'}; wacdc's "
                        f"patches of it were written for exactly {MYSQL_REPLICATION}")
    pymysql = found.get("PyMySQL")
    wanted = _numbers(PYMYSQL)
    have = _numbers(pymysql) if pymysql else ()
    if not have or have[0] != wanted[0] or have[:2] < (wanted[0], 2):
        problems.append(f"PyMySQL {pymysql or 'is not installed'}; wacdc was written for "
                        f"{PYMYSQL} (any {wanted[0]}.x from {wanted[0]}.2 on)")
    return problems


def check_versions() -> None:
    """Stop unless the installed libraries are the ones the patches were written for."""
    found = {}
    for name in ("mysql-replication", "PyMySQL"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    problems = version_problems(found)
    if problems:
        raise LibraryVersionError(
            "wacdc cannot read binlogs with these libraries: " + "; ".join(problems)
            + ". Install the versions of requirements.lock (pip install --require-hashes "
            "-r requirements.lock)")
    found_args = tuple(inspect.signature(_original(BinLogPacketWrapper.__init__)).parameters)
    if found_args != _WRAPPER_ARGS:
        raise LibraryVersionError(
            f"mysql-replication's BinLogPacketWrapper.__init__ takes {found_args}, not "
            f"{_WRAPPER_ARGS}: review wacdc/source/library.py for it")


def _original(function: Any) -> Any:
    return getattr(function, "__wrapped__", function)


def install() -> None:
    """Apply every patch of the library (idempotent: a second call only checks a flag)."""
    if getattr(BinLogPacketWrapper, "_wacdc_installed", False):
        return
    check_versions()
    event_map = BinLogPacketWrapper._BinLogPacketWrapper__event_map
    event_map[GTID_TAGGED_LOG_EVENT] = TaggedGtidEvent
    event_map[TRANSACTION_PAYLOAD_EVENT] = TransactionPayloadEvent
    event_map[EXECUTE_LOAD_QUERY_EVENT] = LoadQueryEvent
    binlogstream.GtidSet = MysqlGtidSet
    _allow_tagged_gtids()
    _judge_event_types()
    _tolerate_query_status()
    _memoize_table_maps()
    _read_json_as_text()
    RowsEvent._RowsEvent__read_time2 = _read_time2
    Table.__init__ = _table_init
    Table.data = property(_table_data)
    # The library silently re-dumps after "server gone" errors, from its own idea of the
    # position (and, in GTID mode, from the original start). wacdc wants the failure
    # instead: it retries from the committed checkpoint, logged and counted per side.
    binlogstream.MYSQL_EXPECTED_ERROR_CODES = []
    BinLogPacketWrapper._wacdc_installed = True


def _allow_tagged_gtids() -> None:
    """`_allowed_event_list` adds TaggedGtidEvent wherever GtidEvent is allowed."""
    reader = binlogstream.BinLogStreamReader
    if getattr(reader._allowed_event_list, "_wacdc_tagged", False):
        return
    original = reader._allowed_event_list

    def _allowed_event_list(self: Any, *args: Any, **kwargs: Any) -> frozenset[type]:
        events = original(self, *args, **kwargs)
        return events | {TaggedGtidEvent} if GtidEvent in events else events

    _allowed_event_list._wacdc_tagged = True  # type: ignore[attr-defined]
    reader._allowed_event_list = _allowed_event_list


def _checksum_options(table_map: Any, ctl_connection: Any, mysql_version: Any,
                      use_checksum: bool, allowed_events: Any, only_tables: Any,
                      ignored_tables: Any, only_schemas: Any, ignored_schemas: Any,
                      freeze_schema: Any, ignore_decode_errors: Any, verify_checksum: bool,
                      optional_meta_data: Any, enable_logging: Any,
                      use_column_name_cache: Any = False, post_header_lengths: Any = None,
                      ) -> tuple[bool, bool, Any]:
    return bool(use_checksum), bool(verify_checksum), post_header_lengths


def _judge_event_types() -> None:
    """Before the wrapper looks an event's type up (and drops what it does not know), the
    type byte is checked against the written list: unknown and refused types raise
    EventTypeError, MariaDB's compressed ones are replaced by the plain event they stand
    for (marked `compressed_type` on the wrapper), every other type goes on untouched."""
    original = BinLogPacketWrapper.__init__
    if getattr(original, "_wacdc_events", False):
        return

    def __init__(self: BinLogPacketWrapper, from_packet: Any, *args: Any,
                 **kwargs: Any) -> None:
        data = from_packet.get_all_data()  # a fresh packet: the OK byte, then the header
        kind = data[5] if len(data) >= _HEADER else None
        if kind is None:
            original(self, from_packet, *args, **kwargs)  # a short packet: the library's error
            return
        if kind in PASS_TYPES:
            # The library passes every argument by position; anything else is its own way.
            if kwargs or kind not in FRAMED_TYPES or not packet_framing.frame(
                    self, from_packet, data, kind, *args):
                original(self, from_packet, *args, **kwargs)
            return
        if kind not in COMPRESSED_TYPES:
            raise refusal(kind, int.from_bytes(data[14:18], "little"), data[18])
        packet = uncompressed_packet(data, kind, *_checksum_options(*args, **kwargs))
        original(self, packet, *args, **kwargs)
        self.compressed_type = kind

    __init__._wacdc_events = True  # type: ignore[attr-defined]
    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    BinLogPacketWrapper.__init__ = __init__


def _tolerate_query_status() -> None:
    """The library reads a QUERY event's status variables one key at a time and raises
    StatusVariableMismatch at a key it does not know (Oracle MySQL 9 writes newer ones).
    wacdc uses none of them, and the block's length is in the post-header: at an unknown
    key the rest of the block is skipped, so the default database and the statement text
    stay exact."""
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


def _memoize_table_maps() -> None:
    """A table-map event identical to one this stream parsed reuses that parse, when the
    stream's table map carries a memo (source/tablemap.py); otherwise the library's."""
    original = TableMapEvent.__init__
    if getattr(original, "_wacdc_memo", False):
        return

    def __init__(self: TableMapEvent, from_packet: Any, event_size: int, table_map: dict,
                 ctl_connection: Any, **kwargs: Any) -> None:
        memo = getattr(table_map, "memo", None)
        if memo is None:
            original(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
            return
        key = memo.key(from_packet, event_size, kwargs)
        parsed = memo.get(key, kwargs)
        if parsed is None:
            original(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
            if self._processed:  # filtered table maps are cheap: the library stops early
                memo.keep(key, self.__dict__)
            return
        BinLogEvent.__init__(self, from_packet, event_size, table_map, ctl_connection,
                             **kwargs)
        self.__dict__.update(parsed)
        table_map[self.table_id] = self.table_obj

    __init__._wacdc_memo = True  # type: ignore[attr-defined]
    TableMapEvent.__init__ = __init__


def _read_json_as_text() -> None:
    """Whole JSON values (`is_partial=False`) come as `json_text(...)`, the text the
    compiled decoder and the snapshot give, instead of the library's Python objects (JSON
    null as None, i.e. SQL NULL; DECIMAL and temporal values its own way, or a crash).
    Partial updates keep the library's JsonDiff, which rowimage.unambiguous refuses."""
    original = BinLogPacketWrapper.read_binary_json
    if getattr(original, "_wacdc_json_text", False):
        return

    def read_binary_json(self: Any, size: int, is_partial: bool) -> Any:
        if is_partial:
            return original(self, size, is_partial)
        return json_text(self.read(self.read_uint_by_size(size)))

    read_binary_json._wacdc_json_text = True  # type: ignore[attr-defined]
    BinLogPacketWrapper.read_binary_json = read_binary_json


def _read_time2(self: RowsEvent, column: Any) -> Any:
    """TIME(fsp) as MySQL packs it: one big-endian offset-binary integer, int part and
    fraction. The library negates them separately, which turns -838:59:58.999999 into
    -838:59:58.000001; this reads the whole value at once, as the compiled decoder does
    (for WACDC_DECODER=library and the events the compiled decoder leaves to the library)."""
    frac_bytes = (column.fsp + 1) // 2
    return time2(self.packet.read(3 + frac_bytes), frac_bytes)


def _table_init(self: Table, table_id: int, schema: str, table: str, columns: list,
                primary_key: Any = None, column_name_flag: bool = False) -> None:
    """The library's Table.__init__ without building a dict per column twice.

    Same result; the original spends ~25% of the streaming loop's CPU here, once per
    table-map event, i.e. once per source transaction (measured with py-spy at 1,000
    one-row transactions/s).
    """
    if primary_key is None:
        keys = [c.name for c in columns if getattr(c, "is_primary", False)]
        primary_key = "" if not keys else keys[0] if len(keys) == 1 else tuple(keys)
    self.__dict__.update({"table_id": table_id, "schema": schema, "table": table,
                          "columns": columns, "primary_key": primary_key,
                          "column_name_flag": column_name_flag})


def _table_data(self: Table) -> dict[str, Any]:
    """Table.data (the table's public attributes), built once per table: RowsEvent reads
    it for every row event and the library builds the dict anew each time (1.5% of the
    streaming loop). A table's attributes are all set when its table map is parsed."""
    data = self.__dict__.get("_wacdc_data")
    if data is None:
        data = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        self.__dict__["_wacdc_data"] = data
    return data
