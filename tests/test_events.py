"""The written list of binlog event types, and MariaDB's compressed events
(src/wacdc/source/event_types.py).

Without a server: every type code 0-255 through the library's packet wrapper (handled and
ignorable types pass, refused and unknown ones stop naming code and position), and
compressed events built byte by byte as MariaDB writes them, decoded like their
uncompressed twins, or refused when damaged.

On a private MariaDB with `log_bin_compress=ON`: the same inserts, updates and deletes
written compressed and uncompressed come out identical through the library's rows and
wacdc's compiled decoder, and every event the server wrote passes the check.
"""

from __future__ import annotations

import pickle
import random
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from pymysql.protocol import MysqlPacket
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.column import Column
from pymysqlreplication.constants import BINLOG, FIELD_TYPE
from pymysqlreplication.event import QueryEvent, XidEvent
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    RowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)
from pymysqlreplication.table import Table

from tests.support.flavours import only_on
from tests.support.harness import SourceDb
from wacdc.config import parse_url
from wacdc.errors import BinlogEventError
from wacdc.events import BinlogPosition
from wacdc.source.binlog import open_stream, row_changes
from wacdc.source.compressed import MAX_UNCOMPRESSED, compressed_type
from wacdc.source.connection import connect, connection_kwargs
from wacdc.source.decoder import CompiledDecoder
from wacdc.source.event_types import (
    COMPRESSED_TYPES,
    EVENT_TYPES,
    HANDLED,
    HANDLED_TYPES,
    IGNORABLE,
    IGNORABLE_TYPES,
    PLAIN_TYPE,
    REFUSED,
    REFUSED_TYPES,
    SUBSCRIBE,
    EventTypeError,
)
from wacdc.source.library import install
from wacdc.source.load_query import LoadQueryEvent
from wacdc.source.position import current_position
from wacdc.source.rowimage import unambiguous
from wacdc.source.statements import parse_statement

install()  # as every wacdc stream does when it opens

END_POS = 123_456
ROW_CLASSES = frozenset({WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent})
CTL = SimpleNamespace(charset="utf8mb4", _get_dbms=lambda: "mariadb")


# --- hand-built events ------------------------------------------------------------------

def _event(kind: int, body: bytes, *, checksum: bool = False, flags: int = 0,
           end_pos: int = END_POS) -> bytes:
    """A binlog event as it comes over the wire: 19-byte header, body, maybe its CRC32."""
    size = 19 + len(body) + (4 if checksum else 0)
    raw = struct.pack("<IBIIIH", 1_700_000_000, kind, 1, size, end_pos, flags) + body
    return raw + zlib.crc32(raw).to_bytes(4, "little") if checksum else raw


def _wrap(raw: bytes, allowed: frozenset[type] = frozenset(), *, table_map: dict | None = None,
          checksum: bool = False, verify: bool = False, only_tables: list[str] | None = None,
          post_header_lengths: tuple[int, ...] | None = None) -> BinLogPacketWrapper:
    return BinLogPacketWrapper(
        MysqlPacket(b"\x00" + raw, "utf8"), table_map or {}, CTL, (10, 11, 0), checksum,
        allowed, only_tables, None, None, None, False, False, verify, True, False, False,
        post_header_lengths)


def _record(data: bytes, *, width: int | None = None, size: int | None = None,
            algorithm: int = 0, payload: bytes | None = None) -> bytes:
    """MariaDB's compressed record: header byte, big-endian length, zlib stream."""
    size = len(data) if size is None else size
    width = width or max(1, (size.bit_length() + 7) // 8)
    head = 0x80 | algorithm << 4 | width
    return bytes([head]) + size.to_bytes(width, "big") + (
        zlib.compress(data) if payload is None else payload)


def _table(table_id: int = 77, name: str = "t") -> Table:
    base = {"unsigned": False, "is_primary": False, "character_set_name": None,
            "collation_name": None, "enum_values": None, "set_values": None,
            "visibility": False}
    columns = [
        Column(**{**base, "name": "id", "type": FIELD_TYPE.LONGLONG, "is_primary": True}),
        Column(**{**base, "name": "vc", "type": FIELD_TYPE.VARCHAR, "max_length": 2000,
                  "character_set_name": "utf8mb4"}),
        Column(**{**base, "name": "txt", "type": FIELD_TYPE.BLOB, "length_size": 2,
                  "character_set_name": "utf8mb4"}),
        Column(**{**base, "name": "n", "type": FIELD_TYPE.LONG}),
    ]
    return Table(table_id, "app", name, columns, column_name_flag=True)


def _image(row: tuple[int, str | None, str, int]) -> bytes:
    ident, vc, txt, n = row
    nulls = 0b10 if vc is None else 0
    out = bytes([nulls]) + struct.pack("<q", ident)
    if vc is not None:
        out += struct.pack("<H", len(vc.encode())) + vc.encode()
    return out + struct.pack("<H", len(txt.encode())) + txt.encode() + struct.pack("<i", n)


def _rows_body(kind: int, table: Table, images: bytes, *, compress: bool) -> bytes:
    """A rows event body (v1 or v2 by type), its row images compressed or not."""
    plain = PLAIN_TYPE.get(kind, kind)
    head = struct.pack("<Q", table.table_id)[:6] + struct.pack("<H", 1)  # STMT_END_F
    if plain >= BINLOG.WRITE_ROWS_EVENT_V2:
        head += struct.pack("<H", 2)  # v2: no extra data (the length counts itself)
    present = b"\x0f"
    head += bytes([len(table.columns)]) + present * (2 if plain in (24, 31) else 1)
    return head + (_record(images) if compress else images)


ROWS = [(1, "x" * 700, "ü" * 400, 7), (2, None, "short", -1), (3, "é" * 300, "z" * 3000, 0)]
ROW_TYPES = {  # compressed type: (row images, library class)
    166: (b"".join(map(_image, ROWS)), WriteRowsEvent),
    167: (b"".join(_image(r) + _image((r[0], "new", r[2], r[3] + 1)) for r in ROWS),
          UpdateRowsEvent),
    168: (b"".join(map(_image, ROWS)), DeleteRowsEvent),
}
ROW_TYPES |= {k + 3: v for k, v in ROW_TYPES.items()}  # the v2 forms, 169-171


def _library_images(event: RowsEvent) -> list[tuple]:
    images = []
    for row in event.rows:
        for prefix in (("before_", "after_") if isinstance(event, UpdateRowsEvent) else ("",)):
            images.append(tuple(unambiguous(row[prefix + "values"],
                                            row[prefix + "none_sources"]).values()))
    return images


# --- the written list -------------------------------------------------------------------

def test_the_list_partitions_its_codes_and_names_them_as_the_library_does() -> None:
    assert set(EVENT_TYPES) <= set(range(256))
    assert set(EVENT_TYPES) == HANDLED_TYPES | IGNORABLE_TYPES | REFUSED_TYPES
    assert not (HANDLED_TYPES & IGNORABLE_TYPES or HANDLED_TYPES & REFUSED_TYPES
                or IGNORABLE_TYPES & REFUSED_TYPES)
    assert all(t.why for t in EVENT_TYPES.values() if t.verdict != HANDLED)
    assert all(t.todo for t in EVENT_TYPES.values() if t.verdict == REFUSED)
    # MySQL 0-42 and MariaDB 160-171 (and 172 of MariaDB 12.3): nothing in between.
    assert set(EVENT_TYPES) == set(range(43)) | set(range(160, 173))
    aliases = {"WRITE_ROWS_EVENT_V2": "WRITE_ROWS_EVENT", "XA_PREPARE_EVENT":
               "XA_PREPARE_LOG_EVENT", "UPDATE_ROWS_EVENT_V2": "UPDATE_ROWS_EVENT",
               "DELETE_ROWS_EVENT_V2": "DELETE_ROWS_EVENT",
               "MARIADB_GTID_GTID_LIST_EVENT": "GTID_LIST_EVENT"}
    named = 0
    for name in dir(BINLOG):
        if "EVENT" not in name or (name.startswith("INTVAR_") and name != "INTVAR_EVENT"):
            continue  # INTVAR_*_EVENT are INTVAR_EVENT's subtypes, not event types
        assert EVENT_TYPES[getattr(BINLOG, name)].name == \
            aliases.get(name, name.removeprefix("MARIADB_")), name
        named += 1
    assert named > 40
    # Whatever the library itself decodes is on the list.
    event_map = BinLogPacketWrapper._BinLogPacketWrapper__event_map  # type: ignore[attr-defined]
    assert set(event_map) <= set(EVENT_TYPES)


@pytest.mark.parametrize(("code", "verdict"), [
    (2, HANDLED), (16, HANDLED), (19, HANDLED), (23, HANDLED), (30, HANDLED), (33, HANDLED),
    (38, HANDLED), (39, HANDLED), (40, HANDLED), (42, HANDLED), (162, HANDLED),
    (165, HANDLED), (171, HANDLED), (3, IGNORABLE), (5, IGNORABLE), (13, IGNORABLE),
    (14, IGNORABLE), (28, IGNORABLE), (29, IGNORABLE), (34, IGNORABLE), (35, IGNORABLE),
    (36, IGNORABLE), (37, IGNORABLE), (41, IGNORABLE), (160, IGNORABLE), (161, IGNORABLE),
    (163, IGNORABLE), (164, IGNORABLE), (9, IGNORABLE), (11, IGNORABLE), (17, IGNORABLE),
    (18, HANDLED), (0, REFUSED), (20, REFUSED), (26, REFUSED), (172, REFUSED)])
def test_the_verdicts_the_rule_asks_for(code: int, verdict: str) -> None:
    assert EVENT_TYPES[code].verdict == verdict


@pytest.mark.parametrize("code", range(256))
def test_every_type_code_passes_or_stops_with_code_and_position(code: int) -> None:
    raw = _event(code, b"\x00" * 12)
    known = EVENT_TYPES.get(code)
    if code in COMPRESSED_TYPES:
        with pytest.raises(EventTypeError, match="cannot decompress"):
            _wrap(raw)
    elif known is not None and known.verdict != REFUSED:
        wrapper = _wrap(raw)  # nothing subscribed: the library drops it, as before
        assert wrapper.event_type == code and wrapper.event is None
    else:
        with pytest.raises(EventTypeError) as caught:
            _wrap(raw)
        error = caught.value
        assert isinstance(error, BinlogEventError)
        assert (error.type_code, error.end_pos, error.file) == (code, END_POS, None)
        text = str(error)
        assert text.startswith(f"binlog event type {code}")
        assert f"at end position {END_POS} of the current binlog file" in text
        assert "nothing after it was applied" in text
        if known is not None:
            assert f"({known.name})" in text and known.todo in text
        else:
            assert "not a type wacdc knows" in text and "upgrade wacdc" in text


def test_a_statement_logged_load_data_reads_as_its_statement_and_database() -> None:
    query = "LOAD DATA LOCAL INFILE '/tmp/SQL_LOAD-1-2-3.data' INTO TABLE `T` FIELDS " \
            "TERMINATED BY ','"
    status = b"\x00\x00\x00\x00\x00\x04\x21\x00\x21\x00\x2d\x00"  # flags2, charset
    body = struct.pack("<IIBHH", 7, 0, 3, 0, len(status)) + struct.pack(
        "<IIIB", 5, 23, 52, 0) + status + b"app\x00" + query.encode()
    wrapper = _wrap(_event(18, body), frozenset({LoadQueryEvent}))
    event = wrapper.event
    assert isinstance(event, LoadQueryEvent) and isinstance(event, QueryEvent)
    assert (event.schema, event.query, event.file_id) == (b"app", query, 5)
    parsed = parse_statement(event.query, "app")
    assert (parsed.kind, [t.name for t in parsed.tables]) == ("dml", ["T"])
    # a post-header longer than this wacdc knows (a later server) still reads
    longer = body[:26] + b"\xee\xee" + body[26:]
    lengths = tuple(28 if code == 18 else 0 for code in range(1, 43))
    assert _wrap(_event(18, longer), frozenset({LoadQueryEvent}),
                 post_header_lengths=lengths).event.query == query


def test_the_error_takes_the_file_name_and_survives_pickling() -> None:
    with pytest.raises(EventTypeError) as caught:
        _wrap(_event(26, b"\x01\x00"))
    error = caught.value.in_file("mariadb-bin.000042")
    assert f"binlog event type 26 (INCIDENT_EVENT) at mariadb-bin.000042:{END_POS}: " in \
        str(error)
    assert "current binlog file" not in str(error)
    again = pickle.loads(pickle.dumps(error))  # the decode process pickles its errors
    assert type(again) is EventTypeError and str(again) == str(error)
    assert (again.type_code, again.end_pos, again.file) == (26, END_POS, "mariadb-bin.000042")


def test_an_unknown_type_the_source_flags_ignorable_still_stops_and_says_so() -> None:
    with pytest.raises(EventTypeError, match="LOG_EVENT_IGNORABLE_F"):
        _wrap(_event(99, b"", flags=0x80))


def test_install_is_idempotent_and_wraps_the_library_once() -> None:
    wrapped = BinLogPacketWrapper.__init__
    install()
    install()
    assert BinLogPacketWrapper.__init__ is wrapped
    assert getattr(wrapped, "_wacdc_events", False)
    assert not getattr(wrapped.__wrapped__, "_wacdc_events", False)


def test_importing_wacdc_patches_nothing_of_the_library() -> None:
    """The patches come with the first stream (source/library.py), never with an import."""
    code = ("import wacdc.source.binlog, wacdc.source.reader, wacdc.source.rowimage; "
            "from pymysqlreplication.packet import BinLogPacketWrapper as W; "
            "from pymysqlreplication import binlogstream; "
            "assert not getattr(W, '_wacdc_installed', False); "
            "assert not getattr(W.__init__, '_wacdc_events', False); "
            "assert 0x2A not in W._BinLogPacketWrapper__event_map; "
            "assert binlogstream.MYSQL_EXPECTED_ERROR_CODES")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_patches_stop_on_library_versions_they_were_not_written_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from wacdc.source import library

    assert library.version_problems({"mysql-replication": "1.0.17", "PyMySQL": "1.2.4"}) == []
    assert library.version_problems({"mysql-replication": "1.0.17", "PyMySQL": "1.3.0"}) == []
    [problem] = library.version_problems({"mysql-replication": "1.0.18", "PyMySQL": "1.2.4"})
    assert "mysql-replication 1.0.18" in problem and "exactly 1.0.17" in problem
    [problem] = library.version_problems({"mysql-replication": "1.0.17", "PyMySQL": "2.0.0"})
    assert "PyMySQL 2.0.0" in problem and "1.2.4" in problem
    assert len(library.version_problems({})) == 2
    monkeypatch.setattr(library.metadata, "version", lambda name: "1.0.16")
    with pytest.raises(library.LibraryVersionError, match=r"mysql-replication 1\.0\.16.*1\.0\.17"):
        library.check_versions()


def test_what_compressed_events_arrive_as_is_subscribed_by_every_wacdc_stream() -> None:
    assert frozenset({WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, QueryEvent}) == \
        SUBSCRIBE


# --- compressed events, hand-built ------------------------------------------------------

@pytest.mark.parametrize("checksum", [False, True])
@pytest.mark.parametrize("kind", sorted(ROW_TYPES))
def test_compressed_rows_decode_like_their_uncompressed_twin(kind: int, checksum: bool) -> None:
    images, cls = ROW_TYPES[kind]
    table = _table()
    plain = _wrap(_event(PLAIN_TYPE[kind], _rows_body(kind, table, images, compress=False),
                         checksum=checksum), ROW_CLASSES, table_map={77: table},
                  checksum=checksum, verify=checksum)
    packed = _wrap(_event(kind, _rows_body(kind, table, images, compress=True),
                          checksum=checksum), ROW_CLASSES, table_map={77: table},
                   checksum=checksum, verify=checksum)
    for wrapper in (plain, packed):
        assert type(wrapper.event) is cls
        assert wrapper.event_type == PLAIN_TYPE[kind] and wrapper.log_pos == END_POS
    assert compressed_type(plain.event) is None and compressed_type(packed.event) == kind
    assert packed.event.packet.packet.get_all_data() == plain.packet.get_all_data()
    assert packed.event.event_size == plain.event.event_size
    # wacdc's compiled decoder first (it reads the buffer, not the packet cursor) ...
    decoded_plain = CompiledDecoder().images(plain.event, "x:1")
    decoded_packed = CompiledDecoder().images(packed.event, "x:1")
    assert decoded_plain is not None and decoded_packed == decoded_plain
    # ... then the library's own rows.
    library = _library_images(packed.event)
    assert library == _library_images(plain.event) == decoded_packed[1]
    expected = [(1, "x" * 700, "ü" * 400, 7), (2, None, "short", -1),
                (3, "é" * 300, "z" * 3000, 0)]
    if cls is UpdateRowsEvent:
        expected = [image for row in expected for image in (row, (*row[:1], "new", *row[2:3],
                                                                row[3] + 1))]
    assert library == expected


def test_table_filters_apply_to_compressed_rows() -> None:
    images, _ = ROW_TYPES[166]
    wrapper = _wrap(_event(166, _rows_body(166, _table(), images, compress=True)),
                    ROW_CLASSES, table_map={77: _table()}, only_tables=["other"])
    assert wrapper.event is None and wrapper.compressed_type == 166


def test_a_compressed_query_becomes_a_query_event() -> None:
    query = "INSERT INTO t VALUES " + ",".join(f"({k}, 'ä{k}')" for k in range(200))
    status = bytes([0x04]) + struct.pack("<HHH", 45, 45, 224)  # Q_CHARSET_CODE
    body = (struct.pack("<IIBHH", 9, 0, 3, 0, len(status)) + status + b"app\x00"
            + _record(query.encode()))
    wrapper = _wrap(_event(165, body, checksum=True), frozenset({QueryEvent}), checksum=True,
                    verify=True)
    assert type(wrapper.event) is QueryEvent and wrapper.event_type == BINLOG.QUERY_EVENT
    assert wrapper.event.query == query and wrapper.event.schema == b"app"
    assert compressed_type(wrapper.event) == 165


def _damaged(kind: int, record: bytes) -> bytes:
    images, _ = ROW_TYPES.get(kind, ROW_TYPES[166])
    good = _rows_body(kind, _table(), images, compress=True)
    return good[:len(good) - len(_record(images))] + record


IMAGES = ROW_TYPES[166][0]


@pytest.mark.parametrize(("record", "why"), [
    (_record(IMAGES, payload=b"not zlib at all"), "zlib"),
    (_record(IMAGES, payload=zlib.compress(IMAGES)[:-9]), "truncated"),
    (_record(IMAGES, size=len(IMAGES) + 1), "decompressed 5154 bytes"),
    (_record(IMAGES, size=len(IMAGES) - 1), "more than the declared"),
    (_record(IMAGES, payload=zlib.compress(IMAGES) + b"??"), "after the zlib stream"),
    (_record(IMAGES, algorithm=1), "compression algorithm 1"),
    (_record(IMAGES)[1:], "not marked compressed"),
    (bytes([0x85]) + _record(IMAGES)[1:], "length field of 5 bytes"),
    (_record(b"", size=0, payload=zlib.compress(b"")), "declared uncompressed size 0"),
    (_record(IMAGES, size=MAX_UNCOMPRESSED + 1), "above wacdc's limit"),
    (b"", "ends before its compressed part"),
])
def test_a_damaged_compressed_event_stops_naming_type_and_position(record: bytes,
                                                                   why: str) -> None:
    with pytest.raises(EventTypeError, match=why) as caught:
        _wrap(_event(166, _damaged(166, record)), ROW_CLASSES, table_map={77: _table()})
    assert caught.value.type_code == 166 and caught.value.end_pos == END_POS
    assert str(caught.value).startswith(
        f"binlog event type 166 (WRITE_ROWS_COMPRESSED_EVENT_V1) at end position {END_POS} "
        "of the current binlog file: cannot decompress it")


def test_a_bad_checksum_of_a_compressed_event_stops_when_checksums_are_verified() -> None:
    raw = bytearray(_event(166, _rows_body(166, _table(), IMAGES, compress=True),
                           checksum=True))
    raw[-1] ^= 0xFF
    with pytest.raises(EventTypeError, match="CRC32"):
        _wrap(bytes(raw), ROW_CLASSES, table_map={77: _table()}, checksum=True, verify=True)


def test_a_post_header_length_other_than_mariadbs_stops() -> None:
    lengths = [0] * 171
    lengths[166 - 1] = 10  # a v1 compressed rows event declared with the v2 post-header
    with pytest.raises(EventTypeError, match="post-header of 10 bytes"):
        _wrap(_event(166, _rows_body(166, _table(), IMAGES, compress=True)), ROW_CLASSES,
              table_map={77: _table()}, post_header_lengths=tuple(lengths))


def test_a_truncated_packet_stops() -> None:
    raw = _event(166, _rows_body(166, _table(), IMAGES, compress=True))
    with pytest.raises(EventTypeError, match="declared"):
        _wrap(raw[:-5], ROW_CLASSES, table_map={77: _table()})


# --- a real MariaDB with log_bin_compress=ON ----------------------------------------------

def _position(db: SourceDb) -> BinlogPosition:
    with connect(parse_url(db.url, "mysql")) as conn:
        return current_position(conn)


@contextmanager
def _log_bin_compress(db: SourceDb, on: bool) -> Iterator[None]:
    """Set the server-wide compression for a while (the server serves the whole session)."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.log_bin_compress, @@GLOBAL.log_bin_compress_min_len")
        was_on, was_min_len = cur.fetchone()
        try:
            cur.execute("SET GLOBAL log_bin_compress_min_len = 10")  # the smallest allowed
            cur.execute(f"SET GLOBAL log_bin_compress = {'ON' if on else 'OFF'}")
            yield
        finally:
            cur.execute("SET GLOBAL log_bin_compress = %s", (int(was_on),))
            cur.execute("SET GLOBAL log_bin_compress_min_len = %s", (int(was_min_len),))


def _workload(db: SourceDb, table: str) -> None:
    rng = random.Random(7)  # the same rows for both tables

    def text(low: int, high: int) -> str:
        return "".join(rng.choice("abcdé€ xyz") for _ in range(rng.randint(low, high)))

    db.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, n BIGINT, body TEXT, "
               "note VARCHAR(600), data LONGBLOB) ENGINE=InnoDB")
    rows = [(k, rng.randint(-2**40, 2**40), text(300, 3000), text(0, 500) if k % 3 else None,
             rng.randbytes(rng.randint(300, 900)) + b"\x00" * 600) for k in range(1, 41)]
    with db.connect(autocommit=False) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)", rows[:30])
        conn.commit()
        cur.execute(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)",
                    (99, 1, "ü" * 30_000, "big", b"\x01" * 200_000))  # several rows events
        for row in rows[30:]:
            cur.execute(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)", row)
        conn.commit()
        cur.execute(f"UPDATE {table} SET body = CONCAT(body, %s), n = n + 1, note = NULL "
                    "WHERE id <= 25", (text(300, 400),))
        cur.execute(f"UPDATE {table} SET id = id + 1000 WHERE id BETWEEN 26 AND 28")
        cur.execute(f"DELETE FROM {table} WHERE id > 30 AND id < 1000")
        conn.commit()
        cur.execute(f"DELETE FROM {table} WHERE id = 1")
        conn.commit()


def _reader(db: SourceDb, start: BinlogPosition, server_id: int,
            only_events: list[type] | None, **kwargs: Any) -> BinLogStreamReader:
    settings = connection_kwargs(parse_url(db.url, "mysql"))
    settings.pop("database")
    return BinLogStreamReader(connection_settings=settings, server_id=server_id,
                              log_file=start.file, log_pos=start.pos, resume_stream=True,
                              blocking=False, only_events=only_events, **kwargs)


def _read(db: SourceDb, start: BinlogPosition, end: BinlogPosition, table: str
          ) -> tuple[list[tuple[str, tuple[str, ...], list[tuple]]], list[Any], list[str]]:
    """(per rows event: class, column names, images; the compressed types seen; queries),
    checking that compiled decoder and library agree on every image."""
    stream = _reader(db, start, 5400 + start.pos % 500,
                     [WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, QueryEvent, XidEvent],
                     only_schemas=[db.name], only_tables=[table])
    decoder = CompiledDecoder()
    changes, kinds, queries = [], [], []
    try:
        for event in stream:
            if BinlogPosition(stream.log_file, stream.log_pos) > end:
                break
            kinds.append(compressed_type(event))
            if isinstance(event, QueryEvent):
                queries.append(event.query)
            if not isinstance(event, RowsEvent):
                continue
            assert event.table == table
            decoded = decoder.images(event, f"{stream.log_file}:{stream.log_pos}")
            assert decoded is not None, "the compiled decoder fell back to the library"
            names, images = decoded
            assert _library_images(event) == images
            changes.append((type(event).__name__, names, images))
    finally:
        stream.close()
    return changes, kinds, queries


def _server_counts(db: SourceDb, start: BinlogPosition, end: BinlogPosition) -> dict[str, int]:
    """Event types as MariaDB itself lists them between two positions (one binlog file)."""
    assert start.file == end.file, "the binlog rotated during the test"
    counts: dict[str, int] = {}
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SHOW BINLOG EVENTS IN '{start.file}' FROM {start.pos}")
        for row in cur.fetchall():
            if row[1] < end.pos:
                counts[row[2]] = counts.get(row[2], 0) + 1
    return counts


@pytest.fixture
def mariadb(source_db: SourceDb) -> SourceDb:
    only_on(source_db.server, "mariadb", "log_bin_compress is MariaDB's")
    return source_db


def test_compressed_binlog_rows_are_the_uncompressed_ones(mariadb: SourceDb) -> None:
    db = mariadb
    plain_start = _position(db)
    with _log_bin_compress(db, on=False):
        _workload(db, "plain")
    packed_start = _position(db)
    with _log_bin_compress(db, on=True):
        _workload(db, "packed")
    end = _position(db)

    server = _server_counts(db, packed_start, end)
    assert not any("compressed" in name.lower()
                   for name in _server_counts(db, plain_start, packed_start))
    written = {name: n for name, n in server.items() if "compressed" in name.lower()}
    # MariaDB writes v1 rows events: compressed, they are 166-168 (and 165 for queries).
    assert set(written) == {"Query_compressed", "Write_rows_compressed_v1",
                            "Update_rows_compressed_v1", "Delete_rows_compressed_v1"}, server

    plain, plain_kinds, _ = _read(db, plain_start, packed_start, "plain")
    packed, packed_kinds, queries = _read(db, packed_start, end, "packed")
    assert set(plain_kinds) == {None}
    seen = {k: packed_kinds.count(k) for k in set(packed_kinds) - {None}}
    assert seen == {165: written["Query_compressed"], 166: written["Write_rows_compressed_v1"],
                    167: written["Update_rows_compressed_v1"],
                    168: written["Delete_rows_compressed_v1"]}
    assert any(q.startswith("CREATE TABLE packed") for q in queries)
    assert packed == plain  # same classes, names and images, event by event
    rows = sum(len(images) for _, _, images in packed)
    assert rows == 41 + 2 * 28 + 12  # inserts, update images (before, after), deletes


def test_wacdcs_own_stream_reads_compressed_rows_with_both_decoders(mariadb: SourceDb) -> None:
    db = mariadb
    plain_start = _position(db)
    _workload(db, "plain")
    packed_start = _position(db)
    with _log_bin_compress(db, on=True):
        _workload(db, "packed")
        db.execute("CREATE TABLE other (id INT PRIMARY KEY, v TEXT)",
                   "INSERT INTO other VALUES (1, REPEAT('q', 5000)), (2, REPEAT('r', 900))")
    end = _position(db)
    assert _server_counts(db, packed_start, end).get("Write_rows_compressed_v1", 0) >= 3

    def changes(start: BinlogPosition, stop: BinlogPosition, table: str, decoder: str
                ) -> list[tuple]:
        stream = open_stream(parse_url(db.url, "mysql"), 5900 + start.pos % 90, start,
                             [table, "other"] if table == "packed" else [table],
                             decoder=decoder)
        found = []
        try:
            for change in row_changes(stream):
                if change.position > stop:
                    break
                found.append((change.table, change.op, change.names, change.before,
                              change.after))
        finally:
            stream.close()
        return found

    plain = changes(plain_start, packed_start, "plain", "compiled")
    for decoder in ("compiled", "library"):
        packed = changes(packed_start, end, "packed", decoder)
        assert [c for c in packed if c[0] == "other"] == [
            ("other", "insert", ("id", "v"), None, (1, "q" * 5000)),
            ("other", "insert", ("id", "v"), None, (2, "r" * 900))]
        assert [("plain", *c[1:]) for c in packed if c[0] == "packed"] == plain, decoder
    assert len(plain) == 41 + 28 + 12


def test_every_event_the_server_wrote_passes_the_check(source_db: SourceDb) -> None:
    """From the first binlog file to the head, all types (whatever this test session
    wrote before, on either flavour): nothing stops, and the codes seen are on the list."""
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        first = cur.fetchone()[0]
    if source_db.server.flavour == "mariadb":
        with _log_bin_compress(source_db, on=True):
            _workload(source_db, "packed")
    else:
        _workload(source_db, "packed")
    end = _position(source_db)
    stream = _reader(source_db, BinlogPosition(first, 4), 5990, None)
    seen: set[int] = set()
    original = BinLogPacketWrapper.__init__

    def spy(self: BinLogPacketWrapper, from_packet: Any, *args: Any, **kwargs: Any) -> None:
        seen.add(from_packet.get_all_data()[5])
        original(self, from_packet, *args, **kwargs)

    BinLogPacketWrapper.__init__ = spy  # type: ignore[method-assign]
    try:
        for _ in stream:
            if BinlogPosition(stream.log_file, stream.log_pos) >= end:
                break
    finally:
        BinLogPacketWrapper.__init__ = original  # type: ignore[method-assign]
        stream.close()
    assert seen <= set(EVENT_TYPES) - REFUSED_TYPES
    assert {BINLOG.FORMAT_DESCRIPTION_EVENT, BINLOG.TABLE_MAP_EVENT} <= seen
    if source_db.server.flavour == "mariadb":
        assert {165, 166, 167, 168, BINLOG.MARIADB_GTID_EVENT} <= seen
