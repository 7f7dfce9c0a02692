"""Row and table-map events framed straight from the packet, without the library's
per-event work.

For every event the library builds its packet wrapper and event object through three or
four constructors with sixteen keyword arguments, and reads a row event's post-header a
field at a time (a quarter of the streaming loop, measured with py-spy). The result
depends only on the event's bytes and on what the stream knows (its table map, filters,
options), so this module fills the wrapper and the event with exactly the attributes
the library's constructors set, from the bytes directly, for two shapes:

- a plain row event (V1 or V2 WRITE/UPDATE/DELETE_ROWS, no extra data, a one-byte column
  count, the post-header length the library expects), its per-table part kept on the
  table; the packet is left just past the bitmaps, as the library leaves it, so
  `event.rows` (the library's decode, for tables the compiled plans do not cover) works
  on it unchanged;
- a table-map event identical to one this stream parsed (source/tablemap.py's memo).

Anything else, any stream without a table-map memo (WACDC_DECODER=library: the library
as it ships) and any stream verifying checksums goes the library's way. The event is the
library's own class; tests/test_packet_framing.py compares the two attribute by attribute
on real binlogs of both flavours.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pymysqlreplication.constants import BINLOG
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    RowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from wacdc.source.tablemap import HEADER

# type -> (event class, post-header length the library reads, bitmaps after the count)
_SHAPES: dict[int, tuple[type[RowsEvent], int, int]] = {
    BINLOG.WRITE_ROWS_EVENT_V1: (WriteRowsEvent, 8, 1),
    BINLOG.UPDATE_ROWS_EVENT_V1: (UpdateRowsEvent, 8, 2),
    BINLOG.DELETE_ROWS_EVENT_V1: (DeleteRowsEvent, 8, 1),
    BINLOG.WRITE_ROWS_EVENT_V2: (WriteRowsEvent, 10, 1),
    BINLOG.UPDATE_ROWS_EVENT_V2: (UpdateRowsEvent, 10, 2),
    BINLOG.DELETE_ROWS_EVENT_V2: (DeleteRowsEvent, 10, 1),
}
FRAMED_TYPES = frozenset({*_SHAPES, BINLOG.TABLE_MAP_EVENT})

_EVENT_HEADER = struct.Struct("<IBIIIH")  # after the OK byte, as the wrapper unpacks it
_WRAPPER_BUFFER = "_BinLogPacketWrapper__data_buffer"
_PRIVATE = "_RowsEvent__"
_TEMPLATES = "_wacdc_row_templates"  # on the Table: (type, stream options) -> attributes


def frame(wrapper: Any, from_packet: Any, data: bytes, kind: int, table_map: Any,
          ctl_connection: Any, mysql_version: Any, use_checksum: Any, allowed_events: Any,
          only_tables: Any, ignored_tables: Any, only_schemas: Any, ignored_schemas: Any,
          freeze_schema: Any, ignore_decode_errors: Any, verify_checksum: Any,
          optional_meta_data: Any, enable_logging: Any, use_column_name_cache: Any = False,
          post_header_lengths: Any = None) -> bool:
    """Fill `wrapper` as BinLogPacketWrapper.__init__ would for this event (of
    FRAMED_TYPES); False (and nothing touched) when the library must do it. The arguments
    are the wrapper's own."""
    if getattr(table_map, "memo", None) is None or verify_checksum:
        return False
    stream = _Stream(table_map, ctl_connection, mysql_version, use_checksum, allowed_events,
                     (only_tables, ignored_tables, only_schemas, ignored_schemas),
                     ignore_decode_errors, optional_meta_data, enable_logging,
                     use_column_name_cache, post_header_lengths)
    if kind == BINLOG.TABLE_MAP_EVENT:
        return _table_map(wrapper, from_packet, data, stream)
    return _rows(wrapper, from_packet, data, kind, stream)


@dataclass(slots=True)
class _Stream:
    """What the wrapper is told about the stream, per event."""

    table_map: Any
    ctl_connection: Any
    mysql_version: Any
    use_checksum: Any
    allowed_events: Any
    filters: tuple[Any, Any, Any, Any]  # only/ignored tables, only/ignored schemas
    ignore_decode_errors: Any
    optional_meta_data: Any
    enable_logging: Any
    use_column_name_cache: Any
    post_header_lengths: Any

    def body_size(self, event_size: int) -> int:
        """The event's size less its header (and checksum), as the library counts it."""
        return event_size - (23 if self.use_checksum else 19)

    def per_event(self, kind: int) -> dict[str, Any]:
        """What BinLogEvent.__init__ sets from the stream (the memo's PER_EVENT)."""
        return {"event_type": kind, "_post_header_lengths": self.post_header_lengths,
                "_ctl_connection": self.ctl_connection, "mysql_version": self.mysql_version,
                "_ignore_decode_errors": self.ignore_decode_errors,
                "_verify_checksum": False, "_is_event_valid": None, "complete": True,
                "dbms": self.ctl_connection._get_dbms()}


def _table_map(wrapper: Any, from_packet: Any, data: bytes, stream: _Stream) -> bool:
    """A table map this stream parsed before (identical bytes): that parse, no reading."""
    if TableMapEvent not in stream.allowed_events:
        return False
    memo = stream.table_map.memo
    size = stream.body_size(int.from_bytes(data[10:14], "little"))
    only_tables, ignored_tables, only_schemas, ignored_schemas = stream.filters
    parsed = memo.get((data[HEADER:HEADER + size], bool(stream.optional_meta_data)),
                      {"only_tables": only_tables, "ignored_tables": ignored_tables,
                       "only_schemas": only_schemas, "ignored_schemas": ignored_schemas})
    if parsed is None:
        return False  # new to this stream, or filtered: the library parses it (and keeps it)
    _fill_wrapper(wrapper, from_packet, data, stream)
    event = object.__new__(TableMapEvent)
    event.__dict__.update(stream.per_event(BINLOG.TABLE_MAP_EVENT))
    event.__dict__.update({"packet": wrapper, "table_map": stream.table_map,
                           "timestamp": wrapper.timestamp, "event_size": size})
    event.__dict__.update(parsed)
    stream.table_map[event.table_id] = event.table_obj
    wrapper.event = event
    return True


def _rows(wrapper: Any, from_packet: Any, data: bytes, kind: int, stream: _Stream) -> bool:
    """A plain row event: the wrapper, and the event as RowsEvent and its subclass build it
    (or none, for a table the stream filtered, as the library gives)."""
    cls, known, bitmaps = _SHAPES[kind]
    lengths = stream.post_header_lengths
    if lengths and len(lengths) >= kind and lengths[kind - 1] != known:
        return False
    body = HEADER + known
    if known == 10 and data[HEADER + 8] | data[HEADER + 9] << 8 != 2:
        return False  # V2 extra data (partition or NDB information): the library reads it
    width = data[body] if len(data) > body else 251
    if width >= 251:  # a longer length-coded count (or none): the library's reader
        return False
    size = (width + 7) // 8
    end = body + 1 + bitmaps * size
    if end > len(data):
        return False  # truncated: the library raises its own error
    table_id = int.from_bytes(data[HEADER:HEADER + 6], "little")
    table = stream.table_map.get(table_id) if cls in stream.allowed_events else None
    _fill_wrapper(wrapper, from_packet, data, stream)
    if table is None or not _kept(table, stream.filters):
        # Not subscribed, or a table the library filtered (its map was never kept).
        wrapper.event = None
        return True
    event = object.__new__(cls)  # the library's class, filled as its constructors would
    attributes = event.__dict__
    attributes.update(_template(table, kind, stream))
    attributes.update({
        "packet": wrapper, "table_map": stream.table_map, "timestamp": wrapper.timestamp,
        "event_size": stream.body_size(wrapper.event_size), "table_id": table_id,
        "flags": data[HEADER + 6] | data[HEADER + 7] << 8, "number_of_columns": width,
        "columns_present_bitmap": data[body + 1:body + 1 + size],
        _PRIVATE + "rows": None, _PRIVATE + "none_sources": {},
    })
    if bitmaps == 2:
        attributes["columns_present_bitmap2"] = data[body + 1 + size:end]
    if known == 10:
        attributes["extra_data_length"] = 2
    # Where the library's reads leave the packet: the images begin here.
    from_packet.advance(end - HEADER)
    wrapper.read_bytes = end - HEADER
    wrapper.event = event
    return True


def _fill_wrapper(wrapper: Any, from_packet: Any, data: bytes, stream: _Stream) -> None:
    """The wrapper's own attributes, from the 20-byte header the library would unpack."""
    timestamp, kind, server_id, event_size, log_pos, flags = _EVENT_HEADER.unpack_from(data, 1)
    from_packet.advance(HEADER)
    wrapper.__dict__.update({
        "read_bytes": 0, _WRAPPER_BUFFER: b"", "packet": from_packet,
        "charset": stream.ctl_connection.charset, "enable_logging": stream.enable_logging,
        "use_column_name_cache": stream.use_column_name_cache, "timestamp": timestamp,
        "event_type": kind, "server_id": server_id, "event_size": event_size,
        "log_pos": log_pos, "flags": flags,
    })


def _kept(table: Any, filters: tuple[Any, Any, Any, Any]) -> bool:
    """RowsEvent.__init__'s filters, in its order."""
    only_tables, ignored_tables, only_schemas, ignored_schemas = filters
    name, schema = table.table, table.schema
    return ((only_tables is None or name in only_tables)
            and (ignored_tables is None or name not in ignored_tables)
            and (only_schemas is None or schema in only_schemas)
            and (ignored_schemas is None or schema not in ignored_schemas))


def _template(table: Any, kind: int, stream: _Stream) -> dict[str, Any]:
    """The attributes of this table's row events of this type that do not vary per event,
    kept on the table (a table object belongs to one stream's maps and filters; a new
    control connection or format description makes a new template)."""
    templates = table.__dict__.setdefault(_TEMPLATES, {})
    cached = templates.get(kind)
    if cached is not None and cached["_ctl_connection"] is stream.ctl_connection \
            and cached["mysql_version"] is stream.mysql_version \
            and cached["_post_header_lengths"] is stream.post_header_lengths:
        return cached
    only_tables, ignored_tables, only_schemas, ignored_schemas = stream.filters
    cached = {
        **stream.per_event(kind), "_processed": True,
        _PRIVATE + "only_tables": only_tables, _PRIVATE + "ignored_tables": ignored_tables,
        _PRIVATE + "only_schemas": only_schemas,
        _PRIVATE + "ignored_schemas": ignored_schemas,
        _PRIVATE + "use_column_name_cache": stream.use_column_name_cache,
        _PRIVATE + "enable_logging": stream.enable_logging,
        "primary_key": table.primary_key, "schema": table.schema, "table": table.table,
        "columns": table.columns,
    }
    templates[kind] = cached
    return cached
