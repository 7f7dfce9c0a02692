"""The compiled row-image decoder against mysql-replication, value for value.

Two sources of row events:
- the real MariaDB binlog (every type of the types issue, random rows and NULL
  patterns, multi-row events, update before/after images, MINIMAL images);
- row events built byte by byte as MySQL 8 writes them, with a table map as the
  library parses MySQL's FULL metadata (binary JSON, MySQL charset ids), for
  random rows and random column bitmaps: no MySQL server is needed to test the
  MySQL flavour, and both decoders read exactly the same bytes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import struct
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysql.protocol import MysqlPacket
from pymysqlreplication.constants import BINLOG, FIELD_TYPE
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
    find_charset,
)
from pymysqlreplication.table import Table

from tests.support.alltypes import ALLTYPES, ROWS, _insert_all
from tests.support.harness import SourceDb
from wacdc.config import parse_url
from wacdc.errors import RowImageError
from wacdc.events import BinlogPosition, RowChange
from wacdc.observe import metrics
from wacdc.source.binlog import open_stream, row_changes
from wacdc.source.connection import connect
from wacdc.source.decoder import CompiledDecoder, pairs
from wacdc.source.position import current_position
from wacdc.source.rowimage import unambiguous

EXAMPLES = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _fallbacks(table: str) -> float:
    return sum(s.value for m in metrics.REGISTRY.collect()
               if m.name == "wacdc_decoder_fallback"
               for s in m.samples if s.name.endswith("_total") and s.labels["table"] == table)


# --- the real binlog -----------------------------------------------------------------

def _position(db: SourceDb) -> BinlogPosition:
    with connect(parse_url(db.url, "mysql")) as conn:
        return current_position(conn)


def _decode(db: SourceDb, start: BinlogPosition, end: BinlogPosition, tables: list[str],
            decoder: str) -> list[RowChange]:
    stream = open_stream(parse_url(db.url, "mysql"), 5100 + start.pos % 1000, start, tables,
                         decoder=decoder)
    changes: list[RowChange] = []
    try:
        for change in row_changes(stream):
            if change.position > end:
                break
            changes.append(change)
    finally:
        stream.close()
    return changes


def _both(db: SourceDb, start: BinlogPosition, tables: list[str]) -> list[RowChange]:
    """Decode [start, now) with both decoders; assert they agree; the changes."""
    end = _position(db)
    library = [_library_quirks(c) for c in _decode(db, start, end, tables, "library")]
    compiled = _decode(db, start, end, tables, "compiled")
    assert len(compiled) == len(library)
    for lib, ours in zip(library, compiled, strict=True):
        assert ours == lib, (lib.op, lib.position, _differences(lib, ours))
    return compiled


def _library_quirks(change: RowChange) -> RowChange:
    """The library's one known difference: an EMPTY binary value comes back as '' (str),
    because b''.decode('binary') succeeds where any other byte fails the codec lookup.
    The decoder gives b''; the converters make the same PostgreSQL value of both."""
    def fix(image: tuple | None) -> tuple | None:
        return None if image is None else tuple(b"" if v == "" and n in BINARY else v
                                                for n, v in zip(change.names, image,
                                                                strict=True))
    return RowChange(change.table, change.op, change.names, fix(change.before),
                     fix(change.after), change.position)


BINARY = {"bn", "vb", "bl", "lb", "g"}  # the binary-charset columns of these tests


def _differences(lib: RowChange, ours: RowChange) -> list:
    found = []
    for side in ("before", "after"):
        a, b = getattr(lib, side), getattr(ours, side)
        if a is None or b is None:
            found.append((side, a, b)) if a is not b else None
            continue
        found += [(side, name, x, y) for name, x, y in zip(lib.names, a, b, strict=True)
                  if x != y or type(x) is not type(y)]
    return found


def test_every_type_with_multi_row_events_and_update_images(source_db: SourceDb) -> None:
    source_db.execute(ALLTYPES)
    start = _position(source_db)
    before = _fallbacks("alltypes")
    _insert_all(source_db)
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("INSERT INTO alltypes SELECT id + 100, ti, tiu, si, siu, mi, miu, i, iu, bi,"
                    " biu, b, d, d2, f, db, c, vc, tt, t, mt, lt, bn, vb, bl, lb, dt0, dt3,"
                    " dt6, ts0, ts3, ts6, dte, tm, tm6, yr, j, e, s, bit1, bit64 FROM alltypes")
        # One multi-row UPDATE: every row's before and after image, every column changed.
        cur.execute("UPDATE alltypes SET ti = -ti, tiu = 255 - tiu, d = -d, f = f * 2, "
                    "vc = CONCAT(vc, '✓'), bn = 0x01020304, dt3 = '2001-02-03 04:05:06.789',"
                    " ts6 = '2020-01-01 00:00:00.000001', tm = '-00:00:01', yr = 1999, "
                    "j = JSON_OBJECT('k', id), e = 'b', s = 'x,y,z', bit64 = b'1', "
                    "lb = REPEAT(0xFF, 70000)")
        cur.execute("UPDATE alltypes SET id = id + 1000 WHERE id > 100")  # key change
        cur.execute("DELETE FROM alltypes WHERE id > 1000")
        conn.commit()
    changes = _both(source_db, start, ["alltypes"])
    n = len(ROWS)
    assert [c.op for c in changes] == ["insert"] * (2 * n) + ["update"] * (3 * n) + \
        ["delete"] * n
    assert _fallbacks("alltypes") == before  # every column had a plan


@st.composite
def alltypes_row(draw: Any) -> tuple:
    def maybe(strategy: Any) -> Any:
        return draw(st.one_of(st.none(), strategy))

    text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
    ints = [maybe(st.integers(lo, hi)) for lo, hi in (
        (-128, 127), (0, 255), (-32768, 32767), (0, 65535), (-(2**23), 2**23 - 1),
        (0, 2**24 - 1), (-(2**31), 2**31 - 1), (0, 2**32 - 1), (-(2**63), 2**63 - 1),
        (0, 2**64 - 1))]
    moment = st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59))
    stamp = st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2038, 1, 18))
    return (
        *ints, maybe(st.booleans()),
        maybe(st.decimals(Decimal("-1e30"), Decimal("1e30"), places=30)),
        maybe(st.decimals(Decimal("-99999999.99"), Decimal("99999999.99"), places=2)),
        maybe(st.floats(width=32, allow_nan=False, allow_infinity=False)),
        maybe(st.floats(allow_nan=False, allow_infinity=False)),
        maybe(st.text("abc xyz", max_size=10)), maybe(text), maybe(text), maybe(text),
        maybe(text), maybe(text), maybe(st.binary(min_size=4, max_size=4)),
        maybe(st.binary(max_size=300)), maybe(st.binary(max_size=500)),
        maybe(st.binary(max_size=500)),
        maybe(moment), maybe(moment), maybe(moment), maybe(stamp), maybe(stamp), maybe(stamp),
        maybe(st.dates(dt.date(1000, 1, 1), dt.date(9999, 12, 31))),
        maybe(st.timedeltas(-dt.timedelta(hours=838, minutes=59, seconds=59),
                            dt.timedelta(hours=838, minutes=59, seconds=59))),
        maybe(st.timedeltas(-dt.timedelta(hours=838, minutes=59, seconds=58),
                            dt.timedelta(hours=838, minutes=59, seconds=58))),
        maybe(st.integers(1901, 2155)),
        maybe(st.recursive(st.none() | st.booleans() | st.integers(-(2**40), 2**40) | text,
                           lambda kids: st.lists(kids, max_size=3)
                           | st.dictionaries(text, kids, max_size=3), max_leaves=6)
              .map(json.dumps)),
        maybe(st.sampled_from(["a", "b", "c d"])),
        maybe(st.sets(st.sampled_from(["x", "y", "z"])).map(",".join)),
        maybe(st.integers(0, 1)), maybe(st.integers(0, 2**64 - 1)),
    )


def _time_literal(value: dt.timedelta) -> str:
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(int(value.total_seconds()), 3600)
    return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}.{value.microseconds:06d}"


@pytest.fixture
def alltypes(source_db: SourceDb) -> SourceDb:
    source_db.execute(ALLTYPES)
    return source_db


@EXAMPLES
@given(rows=st.lists(alltypes_row(), min_size=1, max_size=6),
       updates=st.lists(alltypes_row(), min_size=1, max_size=6))
def test_random_rows_and_null_patterns(alltypes: SourceDb, rows: list[tuple],
                                       updates: list[tuple]) -> None:
    columns = 41
    marks = ", ".join(["%s"] * columns)

    def params(row: tuple) -> tuple:
        return tuple(_time_literal(v) if isinstance(v, dt.timedelta) else v for v in row)

    alltypes.execute("DELETE FROM alltypes")
    start = _position(alltypes)
    with alltypes.connect() as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        # One statement, one multi-row event.
        cur.execute(f"INSERT INTO alltypes VALUES {', '.join([f'({marks})'] * len(rows))}",
                    [v for i, row in enumerate(rows) for v in (i, *params(row))])
        cur.execute("SELECT * FROM alltypes LIMIT 0")
        names = [d[0] for d in cur.description][1:]
        for i, row in enumerate(updates[: len(rows)]):
            sets = ", ".join(f"`{n}` = %s" for n in names)
            cur.execute(f"UPDATE alltypes SET {sets} WHERE id = %s", (*params(row), i))
        cur.execute("DELETE FROM alltypes WHERE id % 2 = 0")
        conn.commit()
    changes = _both(alltypes, start, ["alltypes"])
    assert [c.op for c in changes].count("insert") == len(rows)


def test_minimal_and_noblob_images_are_rejected_by_both(source_db: SourceDb) -> None:
    source_db.execute("CREATE TABLE m (id INT PRIMARY KEY, a VARCHAR(10), b TEXT)",
                      "INSERT INTO m VALUES (1, 'x', 'y'), (2, 'p', 'q')")
    for image, missing in (("MINIMAL", "a, b"), ("NOBLOB", "b")):
        start = _position(source_db)
        with source_db.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SET SESSION binlog_row_image = {image}")
            cur.execute("UPDATE m SET a = CONCAT(a, '!') WHERE id = 1")
            conn.commit()
        end = _position(source_db)
        for decoder in ("compiled", "library"):
            with pytest.raises(RowImageError, match="binlog_row_image=FULL") as caught:
                _decode(source_db, start, end, ["m"], decoder)
            assert re.search(rf"\bm\b.*{start.file}", str(caught.value)), caught.value
        with pytest.raises(RowImageError) as caught:
            _decode(source_db, start, end, ["m"], "compiled")
        message = str(caught.value)
        assert f"column(s) {missing} of m are missing" in message and start.file in message


def test_a_type_without_a_plan_falls_back_to_the_library_and_is_counted(
        source_db: SourceDb) -> None:
    source_db.execute("CREATE TABLE geo (id INT PRIMARY KEY, label VARCHAR(20), g GEOMETRY)")
    start = _position(source_db)
    before = _fallbacks("geo")
    source_db.execute("INSERT INTO geo VALUES (1, 'here', ST_GeomFromText('POINT(1 2)')), "
                      "(2, NULL, NULL)")
    changes = _both(source_db, start, ["geo"])
    assert [c.after[1] for c in changes] == ["here", None]  # type: ignore[index]
    assert isinstance(changes[0].after[2], bytes)  # type: ignore[index]
    # Counted once per event, per stream that decoded it (the compiled one).
    assert _fallbacks("geo") == before + 1


# --- MySQL 8 row events, byte by byte ---------------------------------------------------
# The table map as mysql-replication parses MySQL 8's FULL metadata (charset ids are
# MySQL's: 255 utf8mb4_0900_ai_ci, 8 latin1, 63 binary); JSON is MySQL's binary JSON.

def _charset(collation_id: int) -> str:
    return find_charset(str(collation_id), dbms="mysql")[0]


MYSQL_COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "type": FIELD_TYPE.LONGLONG, "unsigned": True, "is_primary": True},
    {"name": "ti", "type": FIELD_TYPE.TINY, "unsigned": False},
    {"name": "si", "type": FIELD_TYPE.SHORT, "unsigned": True},
    {"name": "mi", "type": FIELD_TYPE.INT24, "unsigned": False},
    {"name": "miu", "type": FIELD_TYPE.INT24, "unsigned": True},
    {"name": "i", "type": FIELD_TYPE.LONG, "unsigned": False},
    {"name": "f", "type": FIELD_TYPE.FLOAT, "unsigned": False, "size": 4},
    {"name": "db", "type": FIELD_TYPE.DOUBLE, "unsigned": False, "size": 8},
    {"name": "yr", "type": FIELD_TYPE.YEAR, "unsigned": False},
    {"name": "dec", "type": FIELD_TYPE.NEWDECIMAL, "precision": 30, "decimals": 11},
    {"name": "vc", "type": FIELD_TYPE.VARCHAR, "max_length": 764,
     "character_set_name": _charset(255)},
    {"name": "l1", "type": FIELD_TYPE.VARCHAR, "max_length": 40,
     "character_set_name": _charset(8)},
    {"name": "ch", "type": FIELD_TYPE.STRING, "max_length": 40,
     "character_set_name": _charset(255)},
    {"name": "vb", "type": FIELD_TYPE.VARCHAR, "max_length": 300,
     "character_set_name": _charset(63)},
    {"name": "txt", "type": FIELD_TYPE.BLOB, "length_size": 2,
     "character_set_name": _charset(255)},
    {"name": "blb", "type": FIELD_TYPE.BLOB, "length_size": 3,
     "character_set_name": _charset(63)},
    {"name": "j", "type": FIELD_TYPE.JSON, "length_size": 4},
    {"name": "dt0", "type": FIELD_TYPE.DATETIME2, "fsp": 0},
    {"name": "dt3", "type": FIELD_TYPE.DATETIME2, "fsp": 3},
    {"name": "dt5", "type": FIELD_TYPE.DATETIME2, "fsp": 5},
    {"name": "ts6", "type": FIELD_TYPE.TIMESTAMP2, "fsp": 6},
    {"name": "ts1", "type": FIELD_TYPE.TIMESTAMP2, "fsp": 1},
    {"name": "tm4", "type": FIELD_TYPE.TIME2, "fsp": 4},
    {"name": "dte", "type": FIELD_TYPE.DATE},
    {"name": "e", "type": FIELD_TYPE.ENUM, "size": 1, "enum_values": ["", "a", "b", "ü"]},
    {"name": "s", "type": FIELD_TYPE.SET, "size": 1, "set_values": ["x", "y", "z"]},
    {"name": "bits", "type": FIELD_TYPE.BIT, "bits": 10, "bytes": 2},
]
_DEFAULTS = {"unsigned": False, "is_primary": False, "character_set_name": None,
             "collation_name": None, "enum_values": None, "set_values": None,
             "visibility": False}


def _mysql_table(table_id: int = 77) -> Table:
    from pymysqlreplication.column import Column
    columns = [Column(**{**_DEFAULTS, **spec}) for spec in MYSQL_COLUMNS]
    return Table(table_id, "app", "t", columns, column_name_flag=True)


def _json_binary(value: Any) -> bytes:
    """MySQL binary JSON for scalars and small arrays of small ints (enough for framing)."""
    if value is None or isinstance(value, bool):
        return b"\x04" + bytes([{None: 0, True: 1, False: 2}[value]])
    if isinstance(value, int):
        return b"\x09" + struct.pack("<q", value)
    if isinstance(value, float):
        return b"\x0b" + struct.pack("<d", value)
    if isinstance(value, str):
        data, n, length = value.encode(), b"", len(value.encode())
        while True:
            n += bytes([(length & 0x7F) | (0x80 if length > 0x7F else 0)])
            length >>= 7
            if not length:
                break
        return b"\x0c" + n + data
    count = len(value)  # array of int16, inline entries
    entries = b"".join(b"\x05" + struct.pack("<h", v) for v in value)
    return b"\x02" + struct.pack("<HH", count, 4 + 3 * count) + entries


def _decimal_binary(value: Decimal, precision: int, scale: int) -> bytes:
    sizes = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
    with decimal.localcontext(prec=100):
        sign, digits, _ = value.quantize(Decimal(1).scaleb(-scale)).as_tuple()
    text = "".join(map(str, digits)).rjust(precision, "0")
    whole, frac = text[: precision - scale], text[precision - scale:]
    head = len(whole) % 9
    parts = [(whole[:head], sizes[head])] if head else []
    parts += [(whole[k:k + 9], 4) for k in range(head, len(whole), 9)]
    parts += [(frac[k:k + 9], 4) for k in range(0, len(frac) - len(frac) % 9, 9)]
    if len(frac) % 9:
        parts.append((frac[len(frac) - len(frac) % 9:], sizes[len(frac) % 9]))
    data = bytearray(b"".join(int(d).to_bytes(n, "big") for d, n in parts))
    if sign:
        data = bytearray(b ^ 0xFF for b in data)
    data[0] ^= 0x80
    return bytes(data)


def _fsp(micro: int, fsp: int) -> bytes:
    size = (fsp + 1) // 2
    return (micro // 10 ** (6 - fsp) * (10 if fsp % 2 else 1)).to_bytes(size, "big") \
        if size else b""


def _encode(spec: dict[str, Any], value: Any) -> bytes:
    t = spec["type"]
    if t in (FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG):
        code = {FIELD_TYPE.TINY: "b", FIELD_TYPE.SHORT: "h", FIELD_TYPE.LONG: "i",
                FIELD_TYPE.LONGLONG: "q"}[t]
        return struct.pack("<" + (code.upper() if spec["unsigned"] else code), value)
    if t == FIELD_TYPE.INT24:
        return value.to_bytes(3, "little", signed=not spec["unsigned"])
    if t == FIELD_TYPE.FLOAT:
        return struct.pack("<f", value)
    if t == FIELD_TYPE.DOUBLE:
        return struct.pack("<d", value)
    if t == FIELD_TYPE.YEAR:
        return bytes([value - 1900])
    if t == FIELD_TYPE.NEWDECIMAL:
        return _decimal_binary(value, spec["precision"], spec["decimals"])
    if t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING, FIELD_TYPE.BLOB, FIELD_TYPE.JSON):
        size = spec.get("length_size") or (2 if spec.get("max_length", 0) > 255 else 1)
        data = _json_binary(value) if t == FIELD_TYPE.JSON else value
        return len(data).to_bytes(size, "little") + data
    if t == FIELD_TYPE.DATETIME2:
        packed = ((1 << 39) | (value.year * 13 + value.month) << 22 | value.day << 17
                  | value.hour << 12 | value.minute << 6 | value.second)
        return packed.to_bytes(5, "big") + _fsp(value.microsecond, spec["fsp"])
    if t == FIELD_TYPE.TIMESTAMP2:
        seconds = int((value - dt.datetime(1970, 1, 1)).total_seconds())
        return seconds.to_bytes(4, "big") + _fsp(value.microsecond, spec["fsp"])
    if t == FIELD_TYPE.TIME2:
        frac = (spec["fsp"] + 1) // 2
        whole, micro = divmod(abs(value) // dt.timedelta(microseconds=1), 10**6)
        hours, rest = divmod(whole, 3600)
        packed = (hours << 12 | rest // 60 << 6 | rest % 60) << (8 * frac)
        packed |= micro // 10 ** (6 - 2 * frac)
        packed = -packed if value < dt.timedelta(0) else packed
        return (packed + (1 << (8 * (3 + frac) - 1))).to_bytes(3 + frac, "big")
    if t == FIELD_TYPE.DATE:
        return (value.year << 9 | value.month << 5 | value.day).to_bytes(3, "little")
    if t in (FIELD_TYPE.ENUM, FIELD_TYPE.SET):
        return value.to_bytes(spec["size"], "little")
    if t == FIELD_TYPE.BIT:
        return value.to_bytes(spec["bytes"], "big")
    raise AssertionError(t)


def _mysql_value(spec: dict[str, Any]) -> Any:
    t = spec["type"]
    text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
    charset = spec.get("character_set_name")
    if t in (FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG,
             FIELD_TYPE.LONGLONG):
        bits = {FIELD_TYPE.TINY: 8, FIELD_TYPE.SHORT: 16, FIELD_TYPE.INT24: 24,
                FIELD_TYPE.LONG: 32, FIELD_TYPE.LONGLONG: 64}[t]
        return st.integers(0, 2**bits - 1) if spec["unsigned"] else \
            st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    simple = {
        FIELD_TYPE.FLOAT: st.floats(width=32, allow_nan=False),
        FIELD_TYPE.DOUBLE: st.floats(allow_nan=False),
        FIELD_TYPE.YEAR: st.integers(1901, 2155),
        FIELD_TYPE.NEWDECIMAL: st.decimals(Decimal("-1e19") + 1, Decimal("1e19") - 1,
                                           places=11),
        FIELD_TYPE.JSON: st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False) | text
        | st.lists(st.integers(-(2**15), 2**15 - 1), max_size=5),
        FIELD_TYPE.DATETIME2: st.datetimes(dt.datetime(1000, 1, 1)),
        # The library reads TIMESTAMP signed (to 2038); wacdc unsigned (MariaDB 11.5+: 2106).
        FIELD_TYPE.TIMESTAMP2: st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2038, 1, 19)),
        FIELD_TYPE.TIME2: st.timedeltas(-dt.timedelta(hours=838), dt.timedelta(hours=838)),
        FIELD_TYPE.DATE: st.dates(dt.date(1000, 1, 1)),
        FIELD_TYPE.ENUM: st.integers(0, 3),
        FIELD_TYPE.SET: st.integers(0, 7),
        FIELD_TYPE.BIT: st.integers(0, 1023),
    }
    if t in simple:
        return simple[t]
    if charset == "binary":
        return st.binary(max_size=300)
    if charset == "cp1252":
        return st.text(st.characters(codec="cp1252"), max_size=30).map(
            lambda s: s.encode("cp1252"))
    return text.map(str.encode)


def _rows_event(table: Table, event_type: int, present: bytes, images: list[bytes]) -> Any:
    body = (struct.pack("<Q", table.table_id)[:6] + struct.pack("<HH", 0, 2)
            + bytes([len(table.columns)]) + present
            + (present if event_type == BINLOG.UPDATE_ROWS_EVENT_V2 else b"")
            + b"".join(images))
    header = struct.pack("<IBIIIH", 1_700_000_000, event_type, 1, 19 + len(body), 4, 0)
    packet = MysqlPacket(b"\x00" + header + body, "utf8")
    ctl = SimpleNamespace(charset="utf8mb4", _get_dbms=lambda: "mysql")
    wrapper = BinLogPacketWrapper(
        packet, {table.table_id: table}, ctl, (8, 0, 36), False,
        frozenset({WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent}), None, None, None, None,
        False, False, False, True, False)
    return wrapper.event


def _image(present_mask: int, values: list[Any]) -> bytes:
    """One row image: the NULL bitmap over the present columns, then their values."""
    present = [k for k in range(len(MYSQL_COLUMNS)) if present_mask >> k & 1]
    nulls = sum(1 << n for n, k in enumerate(present) if values[k] is None)
    return nulls.to_bytes((len(present) + 7) // 8, "little") + b"".join(
        _encode(MYSQL_COLUMNS[k], values[k]) for k in present if values[k] is not None)


def _library_images(event: Any) -> list[tuple]:
    images = []
    for row in event.rows:
        for prefix in (("before_", "after_") if isinstance(event, UpdateRowsEvent) else ("",)):
            values = unambiguous(row[prefix + "values"], row[prefix + "none_sources"])
            images.append(tuple(values.values()))
    return images


mysql_row = st.tuples(*[st.one_of(st.none(), _mysql_value(spec)) if spec["name"] != "id"
                        else _mysql_value(spec) for spec in MYSQL_COLUMNS]).map(list)
EVENT_TYPES = [BINLOG.WRITE_ROWS_EVENT_V2, BINLOG.UPDATE_ROWS_EVENT_V2,
               BINLOG.DELETE_ROWS_EVENT_V2]


@settings(max_examples=300, deadline=None)
@given(event_type=st.sampled_from(EVENT_TYPES),
       rows=st.lists(mysql_row, min_size=1, max_size=5))
def test_mysql_style_events_decode_identically(event_type: int, rows: list[list]) -> None:
    if event_type == BINLOG.UPDATE_ROWS_EVENT_V2 and len(rows) % 2:
        rows = rows + rows[:1]  # before/after pairs
    table = _mysql_table()
    full = (1 << len(MYSQL_COLUMNS)) - 1
    present = full.to_bytes((len(MYSQL_COLUMNS) + 7) // 8, "little")
    images = [_image(full, row) for row in rows]
    library = [tuple(b"" if v == "" and spec.get("character_set_name") == "binary" else v
                     for v, spec in zip(image, MYSQL_COLUMNS, strict=True))
               for image in _library_images(_rows_event(table, event_type, present, images))]
    event = _rows_event(table, event_type, present, images)
    decoded = CompiledDecoder().images(event, "synthetic")
    assert decoded is not None
    names, ours = decoded
    assert names == tuple(spec["name"] for spec in MYSQL_COLUMNS)
    assert ours == library
    for lib, mine in zip(library, ours, strict=True):  # same types too (1 == 1.0 == True)
        assert [type(v) for v in lib] == [type(v) for v in mine]
    assert len(list(pairs(event, ours))) == (len(rows) // 2 if event_type ==
                                            BINLOG.UPDATE_ROWS_EVENT_V2 else len(rows))


@settings(max_examples=100, deadline=None)
@given(row=mysql_row, dropped=st.sets(st.integers(1, len(MYSQL_COLUMNS) - 1), min_size=1))
def test_partial_column_bitmaps_are_rejected_cleanly(row: list, dropped: set[int]) -> None:
    """MINIMAL/NOBLOB images leave columns out: both decoders refuse, naming a column."""
    table = _mysql_table()
    mask = ((1 << len(MYSQL_COLUMNS)) - 1) & ~sum(1 << k for k in dropped)
    present = mask.to_bytes((len(MYSQL_COLUMNS) + 7) // 8, "little")
    image = _image(mask, row)
    missing = [MYSQL_COLUMNS[k]["name"] for k in sorted(dropped)]
    with pytest.raises(RowImageError, match="binlog_row_image=FULL") as caught:
        CompiledDecoder().images(
            _rows_event(table, BINLOG.WRITE_ROWS_EVENT_V2, present, [image]), "here")
    assert f"column(s) {', '.join(missing)} of t are missing from the row image at here" \
        in str(caught.value)
    with pytest.raises(RowImageError, match="binlog_row_image=FULL"):
        _library_images(_rows_event(table, BINLOG.WRITE_ROWS_EVENT_V2, present, [image]))


def test_a_truncated_image_is_an_error_naming_table_and_position() -> None:
    table = _mysql_table()
    full = (1 << len(MYSQL_COLUMNS)) - 1
    present = full.to_bytes((len(MYSQL_COLUMNS) + 7) // 8, "little")
    row = [1] + [None] * (len(MYSQL_COLUMNS) - 1)
    row[10] = b"long enough text"
    image = _image(full, row)[:-5]
    with pytest.raises(RowImageError, match=r"app\.t at binlog\.000009:4"):
        CompiledDecoder().images(
            _rows_event(table, BINLOG.WRITE_ROWS_EVENT_V2, present, [image]),
            "binlog.000009:4")


def test_a_changed_table_map_gets_a_new_plan() -> None:
    """After DDL the table map differs (new id or new columns): never a stale plan."""
    decoder = CompiledDecoder()
    table = _mysql_table()
    full = (1 << len(MYSQL_COLUMNS)) - 1
    present = full.to_bytes((len(MYSQL_COLUMNS) + 7) // 8, "little")
    row = [7] + [None] * (len(MYSQL_COLUMNS) - 1)
    first = decoder.images(_rows_event(table, BINLOG.WRITE_ROWS_EVENT_V2, present,
                                       [_image(full, row)]), "a")
    narrowed = _mysql_table()
    narrowed.columns[1].name = "renamed"
    second = decoder.images(_rows_event(narrowed, BINLOG.WRITE_ROWS_EVENT_V2, present,
                                        [_image(full, row)]), "b")
    assert first is not None and second is not None
    assert first[0][1] == "ti" and second[0][1] == "renamed"


def test_library_and_compiled_streams_agree_on_the_fixture_tables(source_db: SourceDb) -> None:
    """The real schema (19 tables, Prisma types) under app-like writes."""
    start = _position(source_db)
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'")
        tables = [r[0] for r in cur.fetchall()]
        for k in range(30):
            cur.execute("INSERT INTO WhatsAppMessage (id, message, status, payload, `to`, "
                        "updatedAt) VALUES (%s, %s, 'sent', %s, %s, NOW(3))",
                        (f"m{k}", "hello 🙏 " * k, json.dumps({"k": k, "ü": [k, None]}),
                         f"whatsapp:+91{k:010d}"))
        cur.execute("UPDATE WhatsAppMessage SET status = 'read', deliveredAt = NOW(6)")
        cur.execute("DELETE FROM WhatsAppMessage WHERE id LIKE 'm1%'")
        conn.commit()
    changes = _both(source_db, start, tables)
    assert len(changes) == 30 + 30 + 11


def test_table_maps_are_parsed_once_and_filters_still_apply(source_db: SourceDb) -> None:
    """Identical table-map events reuse one parse, yet each stream keeps its own filter."""
    from wacdc.source.tablemap import TableMapMemo

    source_db.execute("CREATE TABLE x (id INT PRIMARY KEY, v VARCHAR(10))",
                      "CREATE TABLE y (id INT PRIMARY KEY, v VARCHAR(10))")
    start = _position(source_db)
    with source_db.connect() as conn, conn.cursor() as cur:
        for k in range(20):  # one table map per statement, 20 identical ones per table
            cur.execute("INSERT INTO x VALUES (%s, 'x')", (k,))
            cur.execute("INSERT INTO y VALUES (%s, 'y')", (k,))
        conn.commit()
    end = _position(source_db)
    url = parse_url(source_db.url, "mysql")
    seen: dict[str, set[int]] = {}
    for tables in (["y"], ["x"], ["x", "y"]):
        stream = open_stream(url, 5300, start, tables, decoder="compiled")
        assert isinstance(stream.table_map.memo, TableMapMemo)  # per stream, compiled only
        parsed: list[Any] = []  # held, so no two of them can share an id()
        try:
            for change in row_changes(stream):
                parsed += stream.table_map.values()
                seen.setdefault(",".join(tables), set()).add(change.after[0])  # type: ignore[index]
                assert change.table in tables
                if change.position >= end:
                    break
        finally:
            stream.close()
        assert len({id(t) for t in parsed}) == len(tables)  # one parse per table
    assert seen == {"y": set(range(20)), "x": set(range(20)), "x,y": set(range(20))}
    library = open_stream(url, 5301, start, ["x"], decoder="library")
    assert library.table_map.memo is None  # the library decoder: the library as it ships
    library.close()
