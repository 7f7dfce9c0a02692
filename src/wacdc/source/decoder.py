"""A compiled row-image decoder for the tables wacdc tracks.

mysql-replication keeps doing the protocol, the connection, heartbeats, GTIDs and
the table-map events with their FULL metadata. Decoding the row images is ours:
for each table map, a plan is compiled once into a Python function (generated
source, exec'd) that reads one row image from the event's bytes with no per-value
dispatch. Runs of fixed-width columns are unpacked with one precompiled `struct`;
strings are slices of the buffer decoded with the column's codec; temporal and
decimal values are built in place.

The values are exactly what the library produces after `rowimage.unambiguous`
(markers for zero dates and empty SETs), so the same converters take either, and
the differential tests compare the two directly. Where the library is wrong or
would crash, the decoder is right: TIME2 is read whole (as rowimage patches the
library), an impossible date such as 2023-02-30 (ALLOW_INVALID_DATES) becomes the
zero-date marker for the bad-value policy instead of a crash, and TIMESTAMP is
read unsigned (MariaDB 11.5+ stores dates past 2038).

Anything a plan does not cover (old-format temporal types, GEOMETRY, partial JSON
events, tables without column names) is decoded by the library, and counted in
`wacdc_decoder_fallback_total{table,reason}`.
"""

from __future__ import annotations

import codecs
import datetime as dt
import struct
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, ClassVar

from pymysqlreplication.constants import BINLOG, FIELD_TYPE
from pymysqlreplication.event import BinLogEvent
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    RowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)
from pymysqlreplication.table import Table

from wacdc.errors import RowImageError
from wacdc.events import EMPTY_SET, ZERO_DATE
from wacdc.log import get_logger
from wacdc.observe import metrics
from wacdc.schema.charsets import lenenc
from wacdc.source.jsonbinary import json_text

log = get_logger(__name__)

DECODERS = ("compiled", "library")

# Event types whose images the plan reads (MySQL's PARTIAL_UPDATE_ROWS_EVENT is not one).
_PLAIN_ROW_EVENTS = frozenset({
    BINLOG.WRITE_ROWS_EVENT_V1, BINLOG.UPDATE_ROWS_EVENT_V1, BINLOG.DELETE_ROWS_EVENT_V1,
    BINLOG.WRITE_ROWS_EVENT_V2, BINLOG.UPDATE_ROWS_EVENT_V2, BINLOG.DELETE_ROWS_EVENT_V2,
    BINLOG.PARTIAL_UPDATE_ROWS_EVENT})
_PARTIAL_JSON_OPTION = 1  # binlog_row_value_options bit of a partial-update after image
# The wrapper reads a 20-byte header (OK byte + 19-byte event header) before the body.
_HEADER = 20


# --- value helpers called by the generated code ---------------------------------------

_EPOCH = dt.datetime(1970, 1, 1)
_COMPRESSED_BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_datetime, _date, _timedelta = dt.datetime, dt.date, dt.timedelta


def _datetime2(packed: int, micro: int) -> Any:
    year_month = (packed >> 22) & 0x1FFFF
    try:
        return _datetime(year_month // 13, year_month % 13, (packed >> 17) & 31,
                         (packed >> 12) & 31, (packed >> 6) & 63, packed & 63, micro)
    except ValueError:  # zero or invalid date: the bad-value policy decides
        return ZERO_DATE


def _date3(packed: int) -> Any:
    try:
        return _date(packed >> 9, (packed >> 5) & 15, packed & 31)
    except ValueError:  # 0000-00-00, or an impossible date stored under a lax sql_mode
        return ZERO_DATE


def time2(raw: bytes, frac_bytes: int) -> dt.timedelta:
    # One big-endian offset-binary integer: int part and fraction together.
    value = int.from_bytes(raw, "big") - (1 << (8 * (3 + frac_bytes) - 1))
    sign = -1 if value < 0 else 1
    value = abs(value)
    hms, frac = value >> (8 * frac_bytes), value & ((1 << (8 * frac_bytes)) - 1)
    micro = frac * 10 ** (6 - 2 * frac_bytes) if frac_bytes else 0
    return sign * _timedelta(hours=(hms >> 12) & 0x3FF, minutes=(hms >> 6) & 0x3F,
                             seconds=hms & 0x3F, microseconds=micro)


def _decimal_reader(precision: int, scale: int) -> tuple[int, Callable[[bytes], Decimal]]:
    """(size, bytes -> Decimal) for NEWDECIMAL(precision, scale), the library's digits."""
    integral = precision - scale
    int_groups, int_rest = divmod(integral, 9)
    frac_groups, frac_rest = divmod(scale, 9)
    head, tail = _COMPRESSED_BYTES[int_rest], _COMPRESSED_BYTES[frac_rest]
    size = head + 4 * (int_groups + frac_groups) + tail
    full = struct.Struct(f">{int_groups + frac_groups}I")

    def read(raw: bytes) -> Decimal:
        data = bytearray(raw)
        positive = data[0] & 0x80
        data[0] ^= 0x80
        if not positive:
            data = bytearray(b ^ 0xFF for b in data)
        text = "" if positive else "-"
        if head:
            text += str(int.from_bytes(data[:head], "big"))
        groups = full.unpack_from(data, head)
        text += "".join(f"{g:09d}" for g in groups[:int_groups]) + "."
        text += "".join(f"{g:09d}" for g in groups[int_groups:])
        if tail:
            text += f"{int.from_bytes(data[size - tail:], 'big'):0{frac_rest}d}"
        return Decimal(text)
    return size, read


def _set_reader(members: list[str] | None) -> Callable[[int], Any]:
    members = list(members or ())

    def read(mask: int) -> Any:
        chosen = {m for i, m in enumerate(members) if mask & (1 << i)}
        return chosen or EMPTY_SET
    return read


def _json_binary(data: bytes) -> str:
    """MySQL's binary JSON as the text MySQL itself prints (what the snapshot reads).

    An empty value is JSON null, as MySQL reads it ('' is stored for NULL put into a NOT
    NULL JSON column by INSERT IGNORE or a lax sql_mode); SQL NULL is the NULL bitmap.
    """
    return json_text(data)


def _codec(column: Any) -> str | None:
    """The Python codec the library decodes this text column with; None: keep bytes."""
    name = column.character_set_name
    if name is None:
        return "utf-8"
    encoding = RowsEvent.charset_to_encoding(name)
    try:
        return codecs.lookup(encoding).name
    except LookupError:  # 'binary' and charsets Python lacks: bytes, as the library does
        return None


class PartialJson:
    """A JSON column of a partial-update after image: MySQL's diff against the before
    image (binlog_row_value_options=PARTIAL_JSON). An empty diff: the value is unchanged."""

    __slots__ = ("diff",)

    def __init__(self, diff: bytes) -> None:
        self.diff = bytes(diff)


# --- plans ----------------------------------------------------------------------------

class Unsupported(Exception):
    """The plan cannot cover this table map; the library decodes it (counted)."""


_FIXED = {  # type -> (struct code signed, unsigned, size)
    FIELD_TYPE.TINY: ("b", "B", 1), FIELD_TYPE.SHORT: ("h", "H", 2),
    FIELD_TYPE.LONG: ("i", "I", 4), FIELD_TYPE.LONGLONG: ("q", "Q", 8),
    FIELD_TYPE.FLOAT: ("f", "f", 4), FIELD_TYPE.DOUBLE: ("d", "d", 8),
    FIELD_TYPE.YEAR: ("B", "B", 1),
}
_BLOBS = frozenset({FIELD_TYPE.TINY_BLOB, FIELD_TYPE.MEDIUM_BLOB, FIELD_TYPE.LONG_BLOB,
                    FIELD_TYPE.BLOB})


class ImagePlan:
    """How to read one row image of one table map: a generated function and its names."""

    def __init__(self, table: Table, errors: str = "strict") -> None:
        columns = table.columns
        self.names: tuple[str, ...] = tuple(c.name for c in columns)
        if any(not name for name in self.names):
            raise Unsupported("no column names (binlog_row_metadata is not FULL)")
        self.width = len(columns)
        self.null_bytes = (self.width + 7) // 8
        # Bits of the columns-present bitmap that name columns. MySQL sets the padding
        # bits of the last byte too (b'\xff\xff\xff' for 20 columns), MariaDB clears
        # them: only these bits count.
        self.all_present = (1 << self.width) - 1
        self._namespace: dict[str, Any] = {
            "_from_bytes": int.from_bytes, "_datetime2": _datetime2, "_date3": _date3,
            "_time2": time2, "_EPOCH": _EPOCH, "_timedelta": _timedelta,
            "_json_binary": _json_binary, "_ZERO_DATE": ZERO_DATE,
            "_PartialJson": PartialJson,
            "_errors": errors}
        self.json_columns = tuple(i for i, c in enumerate(columns)
                                  if c.type == FIELD_TYPE.JSON)
        body = self._generate(columns)
        names = ", ".join(f"v{i}" for i in range(self.width))
        # `partial`: bit k set when the k-th JSON column holds a partial-update diff
        # (MySQL's PARTIAL_UPDATE_ROWS_EVENT after images), not a value.
        source = ("def read_image(buf, pos, partial=0):\n"
                  f"    nulls = _from_bytes(buf[pos:pos + {self.null_bytes}], 'little')\n"
                  f"    pos += {self.null_bytes}\n"
                  + "".join(f"    {line}\n" for line in body)
                  + f"    return ({names},), pos\n")
        self.source = source
        code = compile(source, f"<wacdc row image {table.schema}.{table.table}>", "exec")
        exec(code, self._namespace)
        # read_image(buf, pos, partial=0): partial is the JSON-diff mask of an after image
        self.read_image: Callable[..., tuple[tuple, int]] = \
            self._namespace["read_image"]

    def _generate(self, columns: list) -> list[str]:
        self._columns = columns
        lines: list[str] = []
        i = 0
        while i < len(columns):
            run = self._fixed_run(columns, i)
            if len(run) > 1:  # unpacked together when none of them is NULL
                lines += self._run(run, i)
                i += len(run)
                continue
            lines += self._one(columns[i], i)
            i += 1
        return lines

    @staticmethod
    def _fixed_run(columns: list, start: int) -> list:
        run = []
        for column in columns[start:]:
            if column.type not in _FIXED:
                break
            run.append(column)
        return run

    def _struct_code(self, column: Any) -> tuple[str, int]:
        signed, unsigned, size = _FIXED[column.type]
        return (unsigned if column.unsigned else signed), size

    def _run(self, run: list, start: int) -> list[str]:
        codes = [self._struct_code(c) for c in run]
        fmt = "<" + "".join(code for code, _ in codes)
        size = sum(n for _, n in codes)
        unpacker = f"_run{start}"
        self._namespace[unpacker] = struct.Struct(fmt).unpack_from
        mask = sum(1 << (start + k) for k in range(len(run)))
        targets = ", ".join(f"v{start + k}" for k in range(len(run)))
        lines = [f"if not nulls & {mask}:",
                 f"    {targets} = {unpacker}(buf, pos)",
                 f"    pos += {size}"]
        lines += [f"    v{start + k} += 1900" for k, c in enumerate(run)
                  if c.type == FIELD_TYPE.YEAR]
        lines.append("else:")
        for k, column in enumerate(run):
            lines += ["    " + line for line in self._one(column, start + k)]
        return lines

    def _one(self, column: Any, i: int) -> list[str]:
        """Lines that set v{i} (None when NULL) and advance pos."""
        value = self._value(column, i)
        return [f"if nulls & {1 << i}:", f"    v{i} = None", "else:"] + \
            ["    " + line for line in value]

    def _value(self, column: Any, i: int) -> list[str]:
        t = column.type
        v = f"v{i}"
        if t in _FIXED:
            code, size = self._struct_code(column)
            name = f"_s{i}"
            self._namespace[name] = struct.Struct("<" + code).unpack_from
            year = " + 1900" if t == FIELD_TYPE.YEAR else ""
            return [f"{v} = {name}(buf, pos)[0]{year}", f"pos += {size}"]
        if t == FIELD_TYPE.INT24:
            signed = not column.unsigned
            return [f"{v} = _from_bytes(buf[pos:pos + 3], 'little', signed={signed})",
                    "pos += 3"]
        if t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING):
            return self._text(column, i, 2 if column.max_length > 255 else 1)
        if t in _BLOBS:
            return self._text(column, i, column.length_size)
        if t == FIELD_TYPE.JSON:
            length = self._length(column.length_size)
            bit = 1 << sum(1 for c in self._columns[:i] if c.type == FIELD_TYPE.JSON)
            return [f"n = {length}", f"pos += {column.length_size}",
                    f"{v} = _PartialJson(buf[pos:pos + n]) if partial & {bit} else "
                    "_json_binary(buf[pos:pos + n])", "pos += n"]
        if t == FIELD_TYPE.NEWDECIMAL:
            size, reader = _decimal_reader(column.precision, column.decimals)
            self._namespace[f"_dec{i}"] = reader
            return [f"{v} = _dec{i}(buf[pos:pos + {size}])", f"pos += {size}"]
        if t == FIELD_TYPE.DATETIME2:
            frac = (column.fsp + 1) // 2
            micro = self._micro(5, column.fsp)
            return [f"{v} = _datetime2(_from_bytes(buf[pos:pos + 5], 'big'), {micro})",
                    f"pos += {5 + frac}"]
        if t == FIELD_TYPE.TIMESTAMP2:
            frac = (column.fsp + 1) // 2
            micro = self._micro(4, column.fsp)
            return [f"{v} = _EPOCH + _timedelta(seconds=_from_bytes(buf[pos:pos + 4], 'big'),"
                    f" microseconds={micro})", f"pos += {4 + frac}"]
        if t == FIELD_TYPE.TIME2:
            frac = (column.fsp + 1) // 2
            return [f"{v} = _time2(buf[pos:pos + {3 + frac}], {frac})", f"pos += {3 + frac}"]
        if t == FIELD_TYPE.DATE:
            return [f"{v} = _date3(_from_bytes(buf[pos:pos + 3], 'little'))", "pos += 3"]
        if t == FIELD_TYPE.ENUM:
            if not column.enum_values:
                raise Unsupported("ENUM without its values in the table map")
            self._namespace[f"_enum{i}"] = tuple(column.enum_values)
            return [f"{v} = _enum{i}[_from_bytes(buf[pos:pos + {column.size}], 'little')]",
                    f"pos += {column.size}"]
        if t == FIELD_TYPE.SET:
            self._namespace[f"_set{i}"] = _set_reader(column.set_values)
            return [f"{v} = _set{i}(_from_bytes(buf[pos:pos + {column.size}], 'little'))",
                    f"pos += {column.size}"]
        if t == FIELD_TYPE.BIT:
            return [f"{v} = format(_from_bytes(buf[pos:pos + {column.bytes}], 'big') & "
                    f"{(1 << column.bits) - 1}, '0{column.bits}b')", f"pos += {column.bytes}"]
        raise Unsupported(f"column type {t}")

    @staticmethod
    def _micro(offset: int, fsp: int) -> str:
        """Expression for the fraction after `offset` bytes, in microseconds. The server
        packs fsp 1-2 in 1 byte, 3-4 in 2, 5-6 in 3; an odd fsp keeps one digit too many."""
        frac = (fsp + 1) // 2
        if not frac:
            return "0"
        raw = f"_from_bytes(buf[pos + {offset}:pos + {offset + frac}], 'big')"
        return f"({raw}{' // 10' if fsp % 2 else ''} * {10 ** (6 - fsp)})"

    @staticmethod
    def _length(size: int) -> str:
        if size == 1:
            return "buf[pos]"
        if size == 2:
            return "buf[pos] | buf[pos + 1] << 8"
        return f"_from_bytes(buf[pos:pos + {size}], 'little')"

    def _text(self, column: Any, i: int, length_size: int) -> list[str]:
        codec = _codec(column)
        value = "buf[pos:pos + n]" if codec is None else \
            f"buf[pos:pos + n].decode({codec!r}, _errors)"
        return [f"n = {self._length(length_size)}", f"pos += {length_size}",
                f"v{i} = {value}", "pos += n"]


# --- events ---------------------------------------------------------------------------

Image = tuple[Any, ...]


class CompiledDecoder:
    """Decodes the row events of one stream; plans are cached per table map."""

    def __init__(self) -> None:
        self._plans: dict[int, tuple[Table, ImagePlan | None, str]] = {}
        self._fallbacks: dict[tuple[str, str], int] = {}

    def _fallback(self, table: str, reason: str) -> None:
        metrics.decoder_fallback.labels(table=table, reason=reason).inc()
        key = (table, reason)
        self._fallbacks[key] = self._fallbacks.get(key, 0) + 1

    def take_fallbacks(self) -> dict[tuple[str, str], int]:
        """Fallbacks counted since the last call (a decode process reports them)."""
        taken, self._fallbacks = self._fallbacks, {}
        return taken

    def plan_for(self, event: RowsEvent) -> tuple[ImagePlan | None, str]:
        table = event.table_map[event.table_id]
        cached = self._plans.get(id(table))
        if cached is not None and cached[0] is table:
            return cached[1], cached[2]
        errors = "ignore" if event._ignore_decode_errors else "strict"
        try:
            plan: ImagePlan | None = ImagePlan(table, errors)
            reason = ""
        except Unsupported as exc:
            plan, reason = None, str(exc)
            log.info("the library decodes this table's row images", table=event.table,
                     reason=reason)
        if len(self._plans) > 1024:  # table maps churn with DDL: keep the cache bounded
            self._plans.clear()
        self._plans[id(table)] = (table, plan, reason)
        return plan, reason

    def images(self, event: RowsEvent, where: str) -> tuple[tuple[str, ...], list[Image]] | None:
        """(column names, images in event order), or None when the library must decode."""
        if event.event_type not in _PLAIN_ROW_EVENTS:
            self._fallback(event.table, "event type")
            return None
        plan, reason = self.plan_for(event)
        if plan is None:
            self._fallback(event.table, reason)
            return None
        self._check_present(event, plan, where)
        packet = event.packet
        start = _HEADER + packet.read_bytes
        end = _HEADER + event.event_size
        buf = packet.packet.get_all_data()
        read_image = plan.read_image
        images = []
        pos = start
        partial_event = event.event_type == BINLOG.PARTIAL_UPDATE_ROWS_EVENT
        try:
            while pos < end:
                image, pos = read_image(buf, pos)
                images.append(image)
                if partial_event:  # after each before image: the after image's options
                    after, pos = self._partial_after(plan, buf, pos, image, event, where)
                    images.append(after)
        except RowImageError:
            raise
        except (ValueError, IndexError, KeyError, struct.error, UnicodeDecodeError) as exc:
            raise RowImageError(
                f"cannot decode a row image of {event.schema}.{event.table} at {where}: "
                f"{exc}; run again with WACDC_DECODER=library to compare, and report it"
            ) from exc
        if pos != end:
            raise RowImageError(
                f"row images of {event.schema}.{event.table} at {where} end at byte "
                f"{pos - start}, not {end - start}: the table map does not describe them")
        return plan.names, images

    @staticmethod
    def _partial_after(plan: ImagePlan, buf: bytes, pos: int, before: Image, event: RowsEvent,
                       where: str) -> tuple[Image, int]:
        """The after image of a PARTIAL_UPDATE_ROWS_EVENT row: its value options, the
        bitmap of JSON columns sent as diffs, the image. An empty diff means unchanged
        (the before value, exact); a real diff cannot be applied without the document
        it patches, so it stops the stream naming that column."""
        options, pos = lenenc(buf, pos)
        mask = 0
        if options & _PARTIAL_JSON_OPTION:
            size = (len(plan.json_columns) + 7) // 8
            mask = int.from_bytes(buf[pos:pos + size], "little")
            pos += size
        after, pos = plan.read_image(buf, pos, mask)
        if not mask:
            return after, pos
        values = list(after)
        for k, i in enumerate(plan.json_columns):
            if mask >> k & 1:
                value = values[i]
                if not isinstance(value, PartialJson):
                    continue  # NULL: the NULL bitmap said so
                if value.diff:
                    raise RowImageError(
                        f"column {plan.names[i]!r} of {event.schema}.{event.table} arrived "
                        f"as a partial JSON update at {where}, which cannot be applied; set "
                        "binlog_row_value_options='' on the source (wacdc check --fix) and "
                        "take a new snapshot of this table")
                values[i] = before[i]
        return tuple(values), pos

    @staticmethod
    def _check_present(event: RowsEvent, plan: ImagePlan, where: str) -> None:
        bitmaps = [event.columns_present_bitmap]
        if isinstance(event, UpdateRowsEvent):
            bitmaps.append(event.columns_present_bitmap2)
        if event.number_of_columns != plan.width:
            raise RowImageError(
                f"a row event of {event.schema}.{event.table} at {where} has "
                f"{event.number_of_columns} columns, its table map {plan.width}: the binlog "
                "is inconsistent; run again with WACDC_DECODER=library to compare")
        for bitmap in bitmaps:
            present = int.from_bytes(bitmap, "little") & plan.all_present
            if present != plan.all_present:
                missing = [n for k, n in enumerate(plan.names) if not present >> k & 1]
                raise RowImageError(
                    f"column(s) {', '.join(missing) or '?'} of {event.table} are missing "
                    f"from the row image at {where}: the source logs "
                    "binlog_row_image=MINIMAL/NOBLOB; set binlog_row_image=FULL "
                    "(wacdc check --fix)")


def pairs(event: RowsEvent, images: list[Image]) -> Iterator[tuple[Image | None, Image | None]]:
    """(before, after) per row change of the event."""
    if isinstance(event, WriteRowsEvent):
        for image in images:
            yield None, image
    elif isinstance(event, DeleteRowsEvent):
        for image in images:
            yield image, None
    else:
        for k in range(0, len(images), 2):
            yield images[k], images[k + 1]


# --- table maps -------------------------------------------------------------------------
# The library parses every table-map event in full (a third of its streaming time when
# transactions are short). Its result depends only on the event's bytes, so an event
# identical to one already parsed reuses that parse. Off for the library decoder, so
# the benchmark's library figure is the library as it ships.

class TableMapMemo:
    enabled = False
    limit = 4096
    _parsed: ClassVar[dict[tuple[bytes, bool], dict[str, Any]]] = {}
    # What BinLogEvent.__init__ sets per event; everything else is the table map's parse.
    _PER_EVENT = frozenset({"packet", "table_map", "event_type", "timestamp", "event_size",
                            "_post_header_lengths", "_ctl_connection", "mysql_version",
                            "_ignore_decode_errors", "_verify_checksum", "_is_event_valid",
                            "complete", "dbms"})

    @classmethod
    def install(cls) -> None:
        if getattr(TableMapEvent.__init__, "_wacdc_memo", False):
            return
        original = TableMapEvent.__init__

        def init(self: TableMapEvent, from_packet: Any, event_size: int, table_map: dict,
                 ctl_connection: Any, **kwargs: Any) -> None:
            if not cls.enabled:
                original(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
                return
            key = (from_packet.packet.get_all_data()[_HEADER:_HEADER + event_size],
                   bool(kwargs.get("optional_meta_data")))
            parsed = cls._parsed.get(key)
            if parsed is None or not _passes_filters(parsed, kwargs):
                original(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
                if self._processed:  # filtered table maps are cheap: the library stops early
                    if len(cls._parsed) >= cls.limit:
                        cls._parsed.clear()
                    cls._parsed[key] = {k: v for k, v in self.__dict__.items()
                                        if k not in cls._PER_EVENT}
                return
            BinLogEvent.__init__(self, from_packet, event_size, table_map, ctl_connection,
                                 **kwargs)
            self.__dict__.update(parsed)
            table_map[self.table_id] = self.table_obj

        init._wacdc_memo = True  # type: ignore[attr-defined]
        TableMapEvent.__init__ = init


def _passes_filters(parsed: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    """Would this stream's table filters keep the table map (they differ per stream)?"""
    table, schema = parsed["table"], parsed["schema"]
    only_tables, ignored_tables = kwargs.get("only_tables"), kwargs.get("ignored_tables")
    only_schemas, ignored_schemas = kwargs.get("only_schemas"), kwargs.get("ignored_schemas")
    return ((only_tables is None or table in only_tables)
            and (ignored_tables is None or table not in ignored_tables)
            and (only_schemas is None or schema in only_schemas)
            and (ignored_schemas is None or schema not in ignored_schemas))


TableMapMemo.install()
