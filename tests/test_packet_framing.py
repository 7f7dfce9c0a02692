"""Events framed from their bytes (source/packet_framing.py) are the library's own.

The same binlog range is read twice on each source flavour: as the library ships it (no
table-map memo, so every event goes through the library's constructors) and as the
compiled decoder's stream reads it (plain row events and repeated table maps framed by
wacdc). Every row event must come out of both with the same class, attributes, packet
position, table map and rows (the library's own decode, run on the framed event); the
shapes the framing leaves to the library (a table of more than 250 columns, MySQL's
partition information, a table map not seen before) must still reach it, and a filtered
table must yield nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymysqlreplication.row_event import RowsEvent, TableMapEvent

from tests.support.harness import SourceDb
from wacdc.config import parse_url
from wacdc.events import BinlogPosition
from wacdc.source.binlog import open_stream
from wacdc.source.connection import connect
from wacdc.source.library import install
from wacdc.source.position import current_position

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
