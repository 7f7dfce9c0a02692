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
as it ships), verifying checksums or freezing its schema goes the library's way. The
event is the library's own class, and the wrapper and packet are left where the
library's reads leave them (for an event it drops too); tests/test_packet_framing.py
compares the two attribute by attribute on real binlogs of both flavours, and over every
combination of the stream's options on hand-built events.
"""

from __future__ import annotations

import struct
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
_EVENT_SIZE = struct.Struct("<I")
_WRAPPER_BUFFER = "_BinLogPacketWrapper__data_buffer"
_PRIVATE = "_RowsEvent__"
_TEMPLATES = "_wacdc_row_templates"  # on the Table: (context, {type: attributes})


def frame(wrapper: Any, from_packet: Any, data: bytes, kind: int, *args: Any) -> bool:
    """Fill `wrapper` as BinLogPacketWrapper.__init__ would for this event (of
    FRAMED_TYPES); False (and nothing touched) when the library must do it. `args`: the
    wrapper's own arguments after the packet, positional as the library passes them."""
    table_map: Any = args[0] if args else None
    if getattr(table_map, "memo", None) is None:
        return False
    context = table_map.framing
    # Once per stream and table map, mostly. use_checksum (args[3]) is left out: MySQL's
    # compressed transactions carry inner events without one, between outer events with.
    if context is None or context.args[4:] != args[4:] or context.args[:3] != args[:3]:
        context = table_map.framing = _Context(args)
    if context.verify_checksum or context.freeze_schema:
        return False
    body_less = 23 if args[3] else 19  # the header (and checksum) of the event's size
    if kind == BINLOG.TABLE_MAP_EVENT:
        return _table_map(wrapper, from_packet, data, context, body_less)
    return _rows(wrapper, from_packet, data, kind, context, body_less)


class _Context:
    """What a stream tells the wrapper (the same for every event until a rotation, a new
    format description or a reconnect), and what follows from it, worked out once."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        (table_map, ctl_connection, mysql_version, _use_checksum, allowed_events, only_tables,
         ignored_tables, only_schemas, ignored_schemas, freeze_schema, ignore_decode_errors,
         verify_checksum, optional_meta_data, enable_logging, *rest) = args
        # The two the library's signature gives defaults (False, None).
        use_column_name_cache = rest[0] if rest else False
        post_header_lengths = rest[1] if len(rest) > 1 else None
        self.args = args
        self.table_map = table_map
        self.memo = table_map.memo
        self.verify_checksum = verify_checksum
        # The library drops a repeated table map under freeze_schema: its way, not ours.
        self.freeze_schema = freeze_schema
        self.allowed = {cls: cls in allowed_events for cls in
                        (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, TableMapEvent)}
        self.filters = (only_tables, ignored_tables, only_schemas, ignored_schemas)
        self.filter_kwargs = {"only_tables": only_tables, "ignored_tables": ignored_tables,
                              "only_schemas": only_schemas, "ignored_schemas": ignored_schemas}
        self.optional_meta_data = bool(optional_meta_data)
        self.lengths = post_header_lengths or ()
        self.wrapper = {_WRAPPER_BUFFER: b"",
                        "charset": ctl_connection.charset, "enable_logging": enable_logging,
                        "use_column_name_cache": use_column_name_cache}
        # What BinLogEvent.__init__ sets from the stream (the memo's PER_EVENT, less the
        # event's own packet, type, timestamp and size).
        self.event = {"table_map": table_map, "_post_header_lengths": post_header_lengths,
                      "_ctl_connection": ctl_connection, "mysql_version": mysql_version,
                      "_ignore_decode_errors": ignore_decode_errors,
                      "_verify_checksum": False, "_is_event_valid": None, "complete": True,
                      "dbms": ctl_connection._get_dbms()}
        # RowsEvent.__init__'s own, from the stream.
        self.rows = {_PRIVATE + "only_tables": only_tables,
                     _PRIVATE + "ignored_tables": ignored_tables,
                     _PRIVATE + "only_schemas": only_schemas,
                     _PRIVATE + "ignored_schemas": ignored_schemas,
                     _PRIVATE + "use_column_name_cache": use_column_name_cache,
                     _PRIVATE + "enable_logging": enable_logging}
        self.maps: dict[bytes, dict[str, Any]] = {}  # table-map bytes -> event attributes


def _table_map(wrapper: Any, from_packet: Any, data: bytes, context: _Context,
               body_less: int) -> bool:
    """A table map this stream parsed before (identical bytes): that parse, no reading."""
    if not context.allowed[TableMapEvent]:
        return False
    size = _EVENT_SIZE.unpack_from(data, 10)[0] - body_less
    if HEADER + size > len(data):
        return False  # truncated: the library raises its own error
    key = data[HEADER:HEADER + size]
    attributes = context.maps.get(key)
    if attributes is None:
        parsed = context.memo.get((key, context.optional_meta_data), context.filter_kwargs)
        if parsed is None:
            return False  # new to this stream, or filtered: the library parses it
        if len(context.maps) >= context.memo.limit:
            context.maps.clear()
        attributes = context.maps[key] = {
            **context.event, "event_type": BINLOG.TABLE_MAP_EVENT, "event_size": size,
            **parsed}
    _fill_wrapper(wrapper, from_packet, data, context, size)  # the library reads it all
    event = object.__new__(TableMapEvent)
    event.__dict__.update(attributes)
    event.packet, event.timestamp = wrapper, wrapper.timestamp
    context.table_map[event.table_id] = event.table_obj
    wrapper.event = event
    return True


def _rows(wrapper: Any, from_packet: Any, data: bytes, kind: int, context: _Context,
          body_less: int) -> bool:
    """A plain row event: the wrapper, and the event as RowsEvent and its subclass build it
    (or none, for a table the stream filtered, as the library gives)."""
    cls, known, bitmaps = _SHAPES[kind]
    lengths = context.lengths
    if len(lengths) >= kind and lengths[kind - 1] != known:
        return False
    body = HEADER + known
    if len(data) <= body:
        return False  # truncated: the library raises its own error
    if known == 10 and data[HEADER + 8] | data[HEADER + 9] << 8 != 2:
        return False  # V2 extra data (partition or NDB information): the library reads it
    width = data[body]
    if width >= 251:  # a longer length-coded count (or none): the library's reader
        return False
    size = (width + 7) // 8
    end = body + 1 + bitmaps * size
    if end > len(data):
        return False  # truncated: the library raises its own error
    table_id = int.from_bytes(data[HEADER:HEADER + 6], "little")
    if not context.allowed[cls]:  # not subscribed: the library reads no further
        _fill_wrapper(wrapper, from_packet, data, context, 0)
        wrapper.event = None
        return True
    table = context.table_map.get(table_id)
    if table is None or not _kept(table, context.filters):
        # A table the library filtered (its map was never kept), or filters here: it stops
        # once it has read the table id.
        _fill_wrapper(wrapper, from_packet, data, context, 6)
        wrapper.event = None
        return True
    _fill_wrapper(wrapper, from_packet, data, context, end - HEADER)
    event = object.__new__(cls)  # the library's class, filled as its constructors would
    attributes = event.__dict__
    attributes.update(_template(table, kind, context))
    attributes.update({
        "packet": wrapper, "timestamp": wrapper.timestamp,
        "event_size": wrapper.event_size - body_less, "table_id": table_id,
        "flags": data[HEADER + 6] | data[HEADER + 7] << 8, "number_of_columns": width,
        "columns_present_bitmap": data[body + 1:body + 1 + size],
        _PRIVATE + "rows": None, _PRIVATE + "none_sources": {},
    })
    if bitmaps == 2:
        attributes["columns_present_bitmap2"] = data[body + 1 + size:end]
    wrapper.event = event
    return True


def _fill_wrapper(wrapper: Any, from_packet: Any, data: bytes, context: _Context,
                  read: int) -> None:
    """The wrapper's own attributes, from the 20-byte header the library would unpack, and
    the packet `read` bytes past that header, where the library's reads would leave it
    (for a row event, where its images begin)."""
    timestamp, kind, server_id, event_size, log_pos, flags = _EVENT_HEADER.unpack_from(data, 1)
    from_packet.advance(HEADER + read)
    attributes = wrapper.__dict__
    attributes.update(context.wrapper)
    attributes.update({"read_bytes": read, "packet": from_packet, "timestamp": timestamp,
                       "event_type": kind,
                       "server_id": server_id, "event_size": event_size, "log_pos": log_pos,
                       "flags": flags})


def _kept(table: Any, filters: tuple[Any, Any, Any, Any]) -> bool:
    """RowsEvent.__init__'s filters, in its order."""
    only_tables, ignored_tables, only_schemas, ignored_schemas = filters
    name, schema = table.table, table.schema
    return ((only_tables is None or name in only_tables)
            and (ignored_tables is None or name not in ignored_tables)
            and (only_schemas is None or schema in only_schemas)
            and (ignored_schemas is None or schema not in ignored_schemas))


def _template(table: Any, kind: int, context: _Context) -> dict[str, Any]:
    """The attributes of this table's row events of this type that do not vary per event,
    kept on the table for the stream's current context."""
    kept = table.__dict__.get(_TEMPLATES)
    if kept is None or kept[0] is not context:
        kept = table.__dict__[_TEMPLATES] = (context, {})
    templates = kept[1]
    cached = templates.get(kind)
    if cached is None:
        cached = templates[kind] = {
            **context.event, **context.rows, "event_type": kind, "_processed": True,
            "primary_key": table.primary_key, "schema": table.schema, "table": table.table,
            "columns": table.columns,
            **({"extra_data_length": 2} if _SHAPES[kind][1] == 10 else {})}
    return cached
