"""Events framed from their bytes (source/packet_framing.py) are the library's own.

The same binlog range is read twice on each source flavour: as the library ships it (no
table-map memo, so every event goes through the library's constructors) and as the
compiled decoder's stream reads it (plain row events and repeated table maps framed by
wacdc). Every row event must come out of both with the same class, attributes, packet
position, table map and rows (the library's own decode, run on the framed event); the
shapes the framing leaves to the library (a table of more than 250 columns, MySQL's
partition information, a table map not seen before) must still reach it, and a filtered
table must yield nothing. Every packet of a framed type (table maps and dropped events
too) must leave its wrapper, packet position and event as the library leaves them; and
on hand-built row events, every combination of the stream's options (checksums,
filters, subscribed classes, post-header lengths, V2 extra data, freeze_schema) either
frames the event exactly as the library's constructor builds it or leaves it to the
library where it must.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from pymysql.protocol import MysqlPacket
from pymysqlreplication.column import Column
from pymysqlreplication.constants import BINLOG, FIELD_TYPE
from pymysqlreplication.event import QueryEvent
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    RowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)
from pymysqlreplication.table import Table

from tests.support.harness import SourceDb
from wacdc.config import parse_url
from wacdc.events import BinlogPosition
from wacdc.source.binlog import open_stream
from wacdc.source.connection import connect
from wacdc.source.library import _original, install
from wacdc.source.packet_framing import FRAMED_TYPES, frame
from wacdc.source.position import current_position
from wacdc.source.tablemap import StreamTableMap, TableMapMemo

WIDE = 260  # columns: the count no longer fits the one-byte length the framing reads
TABLES = ["fr_plain", "fr_wide", "fr_part"]

# Per-stream or per-connection objects: compared by what they describe instead.
_IDENTITY = {"packet", "table_map", "_ctl_connection", "columns"}


def _position(db: SourceDb) -> BinlogPosition:
    with connect(parse_url(db.url, "mysql")) as conn:
        return current_position(conn)


def _write(db: SourceDb) -> None:
    wide_columns = ", ".join(f"c{k} INT" for k in range(WIDE))
    db.execute(
        "CREATE TABLE fr_plain (id INT PRIMARY KEY, v VARCHAR(40), j JSON, d DATETIME(3))",
        f"CREATE TABLE fr_wide (id INT PRIMARY KEY, {wide_columns})",
        "CREATE TABLE fr_part (id INT PRIMARY KEY, v INT) PARTITION BY HASH (id) PARTITIONS 3",
        "CREATE TABLE fr_other (id INT PRIMARY KEY, v INT)",
    )
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO fr_plain VALUES (%s, %s, %s, %s)",
                        [(k, f"v{k}" * (k % 5), f'{{"k": {k}}}', "2024-01-02 03:04:05.678")
                         for k in range(300)])
        cur.execute("INSERT INTO fr_other VALUES (1, 1), (2, 2)")
        cur.execute(f"INSERT INTO fr_wide (id, c0, c{WIDE - 1}) VALUES (1, 7, 8), (2, NULL, 9)")
        cur.execute("INSERT INTO fr_part VALUES (1, 1), (2, 2), (3, 3), (4, 4)")
        conn.commit()
        cur.execute("UPDATE fr_plain SET v = CONCAT(v, '✓'), j = JSON_ARRAY(id) WHERE id < 200")
        cur.execute("UPDATE fr_other SET v = v + 1")
        cur.execute(f"UPDATE fr_wide SET c{WIDE - 1} = c{WIDE - 1} + 1")
        cur.execute("UPDATE fr_part SET v = -v")
        cur.execute("DELETE FROM fr_plain WHERE id % 3 = 0")
        cur.execute("DELETE FROM fr_part WHERE id = 2")
        conn.commit()


def _events(db: SourceDb, start: BinlogPosition, end: BinlogPosition, decoder: str
            ) -> Iterator[tuple[dict[str, Any], dict[str, Any], Any]]:
    """(event attributes, wrapper attributes, rows) per row event of the range."""
    stream = open_stream(parse_url(db.url, "mysql"), 5300 + start.pos % 500, start, TABLES,
                         decoder=decoder)
    try:
        for event in stream:
            if BinlogPosition(stream.log_file, stream.log_pos) > end:
                break
            attributes = {k: v for k, v in vars(event).items() if k not in _IDENTITY}
            attributes["columns"] = [vars(c) for c in event.columns]
            attributes["table_map"] = {
                table_id: {k: v for k, v in vars(table).items()
                           if k != "columns" and not k.startswith("_wacdc")}
                for table_id, table in event.table_map.items()}
            wrapper = {k: v for k, v in vars(event.packet).items() if k not in ("packet", "event")}
            wrapper["position"] = event.packet.packet._position
            yield attributes, wrapper, event.rows
    finally:
        stream.close()


@pytest.fixture
def constructed(monkeypatch: pytest.MonkeyPatch) -> dict[type, list[str]]:
    """The tables of the events that went through the library's constructors, by class."""
    install()  # patched first, so that undoing these spies leaves the patches in place
    tables: dict[type, list[str]] = {RowsEvent: [], TableMapEvent: []}
    for cls, seen in tables.items():
        original = cls.__init__

        def counting(self: Any, *args: Any, _original: Any = original,
                     _seen: list[str] = seen, **kwargs: Any) -> None:
            _original(self, *args, **kwargs)
            _seen.append(getattr(self, "table", "?"))

        monkeypatch.setattr(cls, "__init__", counting)
    return tables


def test_framed_events_are_the_librarys(source_db: SourceDb,
                                        constructed: dict[type, list[str]]) -> None:
    start = _position(source_db)
    _write(source_db)
    end = _position(source_db)
    library = list(_events(source_db, start, end, "library"))
    by_library = sorted(set(constructed[RowsEvent]))
    maps_by_library = len(constructed[TableMapEvent])
    for seen in constructed.values():
        seen.clear()
    framed = list(_events(source_db, start, end, "compiled"))

    assert len(framed) == len(library) >= 8
    for k, (lib, ours) in enumerate(zip(library, framed, strict=True)):
        assert ours[0] == lib[0], (k, lib[0].get("table"), _diff(lib[0], ours[0]))
        assert ours[1] == lib[1], (k, lib[0].get("table"), _diff(lib[1], ours[1]))
        assert ours[2] == lib[2], (k, lib[0].get("table"))
    assert {a["table"] for a, _, _ in framed} == set(TABLES)
    assert sum(len(rows) for _, _, rows in framed) == 300 + 2 + 4 + 200 + 2 + 4 + 100 + 1
    # The library built every event of its own stream (fr_other's too, "?": it drops them
    # after reading a table id it has no map for); the framing left it only the shapes it
    # does not read.
    assert by_library == sorted(["?", *TABLES])
    left = set(constructed[RowsEvent])
    assert "fr_plain" not in left and "?" not in left
    assert "fr_wide" in left
    partition_info = not source_db.server.is_mariadb  # MySQL logs it for partitioned tables
    assert ("fr_part" in left) == partition_info
    # A table map per statement: the library parses each; of the tracked ones, the framed
    # stream parses each table's first only (fr_other's, filtered, are never kept).
    maps = constructed[TableMapEvent]
    assert maps_by_library >= 10
    assert sorted(t for t in maps if t != "fr_other") == sorted(TABLES)


def _diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _plain(value: Any, depth: int = 0) -> Any:
    """A value with the library's objects (tables, columns, metadata) as their attributes."""
    if isinstance(value, dict):
        return {k: _plain(v, depth) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth) for v in value]
    if hasattr(value, "__dict__") and not isinstance(value, type) and depth < 3:
        return {k: _plain(v, depth + 1) for k, v in vars(value).items()
                if k not in _IDENTITY and not k.startswith("_wacdc")}
    return value


@pytest.fixture
def wrapped(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every packet wrapper of a framed event type, as the wrapper left it: its attributes,
    the packet's position, and its event's attributes (None for an event dropped)."""
    install()
    seen: list[tuple[Any, ...]] = []
    original = BinLogPacketWrapper.__init__

    def recording(self: Any, from_packet: Any, *args: Any, **kwargs: Any) -> None:
        original(self, from_packet, *args, **kwargs)
        if self.event_type in FRAMED_TYPES:
            attributes = {k: v for k, v in vars(self).items() if k not in ("packet", "event")}
            seen.append((self.event_type, attributes, from_packet._position,
                         _plain(self.event) if self.event is not None else None))

    monkeypatch.setattr(BinLogPacketWrapper, "__init__", recording)
    return seen


def test_every_framed_packet_is_left_as_the_library_leaves_it(
        source_db: SourceDb, wrapped: list[tuple[Any, ...]]) -> None:
    """Table maps (first and repeated), row events of tracked, filtered and wide tables:
    wrapper, packet position and event, packet by packet, both ways."""
    start = _position(source_db)
    _write(source_db)
    end = _position(source_db)
    list(_events(source_db, start, end, "library"))
    library = list(wrapped)
    wrapped.clear()
    list(_events(source_db, start, end, "compiled"))
    assert len(wrapped) == len(library) >= 20
    kinds = {kind for kind, _, _, _ in library}
    assert 19 in kinds and kinds & {23, 24, 25, 30, 31, 32}  # table maps and row events
    assert any(event is None for _, _, _, event in library)  # fr_other's, dropped
    for k, (lib, ours) in enumerate(zip(library, wrapped, strict=True)):
        assert ours[:3] == lib[:3], (k, lib[0], _diff(lib[1], ours[1]), lib[2], ours[2])
        assert ours[3] == lib[3], (k, lib[0], None if lib[3] is None or ours[3] is None
                                   else _diff(lib[3], ours[3]))


# --- the stream's options, without a server: one event, both ways ------------------------

_ROW_TYPES = (BINLOG.WRITE_ROWS_EVENT_V1, BINLOG.UPDATE_ROWS_EVENT_V1,
              BINLOG.DELETE_ROWS_EVENT_V1, BINLOG.WRITE_ROWS_EVENT_V2,
              BINLOG.UPDATE_ROWS_EVENT_V2, BINLOG.DELETE_ROWS_EVENT_V2)
_V2 = {BINLOG.WRITE_ROWS_EVENT_V2, BINLOG.UPDATE_ROWS_EVENT_V2, BINLOG.DELETE_ROWS_EVENT_V2}
_UPDATES = {BINLOG.UPDATE_ROWS_EVENT_V1, BINLOG.UPDATE_ROWS_EVENT_V2}


def _packet(kind: int, table_id: int, extra: bytes, checksum: bool, declared_extra: int
            ) -> MysqlPacket:
    """A row event of a two-INT table, one row: V2 with `extra` data (after its length),
    `declared_extra` bytes of post-header beyond the known, a checksum if asked."""
    post = struct.pack("<Q", table_id)[:6] + struct.pack("<H", 1)
    if kind in _V2:
        post += struct.pack("<H", 2 + len(extra)) + b"\0" * declared_extra + extra
    else:
        post += b"\0" * declared_extra
    image = b"\0" + struct.pack("<ii", 7, -8)
    bitmaps = b"\x03" * (2 if kind in _UPDATES else 1)
    body = post + b"\x02" + bitmaps + image * (2 if kind in _UPDATES else 1)
    tail = b"\xde\xad\xbe\xef" if checksum else b""
    header = struct.pack("<IBIIIH", 1_700_000_123, kind, 9, 19 + len(body) + len(tail),
                         4321, 0)
    return MysqlPacket(b"\0" + header + body + tail, "utf8")


def _table(table_id: int) -> Table:
    columns = [Column(name=name, type=FIELD_TYPE.LONG, unsigned=False, is_primary=name == "a",
                      character_set_name=None, collation_name=None, enum_values=None,
                      set_values=None, visibility=False) for name in ("a", "b")]
    return Table(table_id, "app", "t", columns, column_name_flag=True)


def _lengths(kind: int, declared_extra: int) -> tuple[int, ...] | None:
    if declared_extra < 0:
        return None
    lengths = [0] * 40
    lengths[kind - 1] = (10 if kind in _V2 else 8) + declared_extra
    return tuple(lengths)


_CASES = list(itertools.product(
    _ROW_TYPES,
    (77, 78),  # the table in the map, and one that is not (filtered by its table map)
    (False, True),  # use_checksum
    (None, ["t"], ["u"]),  # only_tables
    (None, ["app"], ["x"]),  # only_schemas
    (None, ["t"]),  # ignored_tables
    (True, False),  # every rows class allowed, or not WriteRowsEvent
    (-1, 0, 2),  # post-header lengths: none given, the known one, 2 bytes longer
    (b"", b"\x01\x05\x00"),  # V2 extra data: none, partition information
    (False, True),  # freeze_schema
))


@pytest.mark.parametrize("chunk", range(8))
def test_a_row_event_is_framed_as_the_library_builds_it_whatever_the_options(chunk: int
                                                                              ) -> None:
    """Each case: the library's own constructor and `frame` on the same packet and
    arguments; where `frame` takes the event, the wrapper, the packet's position and the
    event's attributes are the library's; the shapes it leaves are the ones it must."""
    library_init = _original(BinLogPacketWrapper.__init__)
    ctl = SimpleNamespace(charset="utf8mb4", _get_dbms=lambda: "mysql")
    framed_count = 0
    size = -(-len(_CASES) // 8)
    for case in _CASES[chunk * size:(chunk + 1) * size]:
        kind, table_id, checksum, only_tables, only_schemas, ignored_tables, write_allowed, \
            declared_extra, extra, freeze = case
        if extra and kind not in _V2:
            continue
        allowed = frozenset({UpdateRowsEvent, DeleteRowsEvent, QueryEvent,
                             *([WriteRowsEvent] if write_allowed else [])})
        results: list[tuple[Any, ...] | None] = []
        for way in ("library", "framed"):
            table_map = StreamTableMap({77: _table(77)}, TableMapMemo())
            args = (table_map, ctl, (8, 0, 40), checksum, allowed, only_tables,
                    ignored_tables, only_schemas, None, freeze, False, False, True, False,
                    False, _lengths(kind, max(declared_extra, 0)) if declared_extra >= 0
                    else None)
            packet = _packet(kind, table_id, extra, checksum, max(declared_extra, 0))
            wrapper = object.__new__(BinLogPacketWrapper)
            if way == "library":
                library_init(wrapper, packet, *args)
                took = True
            else:
                data = packet.get_all_data()
                took = frame(wrapper, packet, data, data[5], *args)
            if not took:
                results.append(None)
                continue
            event = wrapper.event
            results.append((
                {k: v for k, v in vars(wrapper).items() if k not in ("packet", "event")},
                packet._position,  # type: ignore[attr-defined]
                None if event is None else type(event),
                None if event is None else _plain(event)))
        library, framed = results
        must_leave = bool(extra) or declared_extra == 2 or freeze
        assert (framed is None) == must_leave, case
        if framed is not None:
            framed_count += 1
            assert framed[:3] == library[:3], (case, _diff(library[0], framed[0]))
            assert framed[3] == library[3], (case, _diff(library[3] or {}, framed[3] or {}))
    assert framed_count >= 10


def test_the_arguments_the_library_gives_defaults_may_be_left_out() -> None:
    """use_column_name_cache and post_header_lengths omitted: the library's defaults."""
    library_init = _original(BinLogPacketWrapper.__init__)
    ctl = SimpleNamespace(charset="utf8mb4", _get_dbms=lambda: "mariadb")
    seen = []
    for way in ("library", "framed"):
        table_map = StreamTableMap({77: _table(77)}, TableMapMemo())
        args = (table_map, ctl, (10, 11, 0), False,
                frozenset({WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent}), None, None,
                None, None, False, False, False, True, False)
        packet = _packet(BINLOG.UPDATE_ROWS_EVENT_V1, 77, b"", False, 0)
        wrapper = object.__new__(BinLogPacketWrapper)
        if way == "library":
            library_init(wrapper, packet, *args)
        else:
            data = packet.get_all_data()
            assert frame(wrapper, packet, data, data[5], *args)
        seen.append((_plain(wrapper.event), packet._position,  # type: ignore[attr-defined]
                     wrapper.read_bytes))
    assert seen[0] == seen[1]
    assert seen[1][0]["_post_header_lengths"] is None
