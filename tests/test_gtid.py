"""wacdc.source.gtid: MySQL GTID sets with tags, their binary form, GTID_TAGGED_LOG_EVENT.

The expected text forms and bytes come from a real Oracle MySQL 9.7.4 (Debian sid build),
started with --gtid-mode=ON --log-bin, as noted at each constant. The last test runs
against the test session's Oracle MySQL (the harness's `mysql` flavour).
"""

from __future__ import annotations

import secrets
import struct
import uuid as uuidlib
from typing import Any

import pymysql
import pytest
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import GtidEvent
from pymysqlreplication.gtid import GtidSet as LibraryGtidSet
from pymysqlreplication.packet import BinLogPacketWrapper

from wacdc.events import GtidState
from wacdc.gtidset import MAX_GNO, MysqlGtidSet, read_varlen_signed, read_varlen_unsigned
from wacdc.source.gtid import (
    GTID_TAGGED_LOG_EVENT,
    TaggedGtidEvent,
    decode_tagged_gtid_event,
)
from wacdc.source.library import install

U = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
SERVER_UUID = "7417fe8a-ed62-11f1-99fb-02fc00000001"  # @@server_uuid of the capture server

# ---- text ----

# (input, what MySQL 9.7.4 printed for SELECT GTID_SUBTRACT(input, '')): MySQL's own
# normalisation, uuids sorted and joined by ",\n", untagged intervals first, tags sorted
# in byte order and lower-cased, intervals merged. (GTID_UNION does not exist in 9.7:
# "No database selected", it is taken for a stored function.)
MYSQL_TEXT_FORMS = [
    (f"{U}:5-7:zz:1:1-3:abc:4,{U.upper()}:ZZ:2:8, 0e11fa47-71ca-11e1-9e33-c80aa9429562:3:1",
     f"0e11fa47-71ca-11e1-9e33-c80aa9429562:1:3,\n{U}:5-7:abc:4:zz:1-3:8"),
    (f"{U}:b:1:_a:1:a_:1:a1:1:a:1:A9:3:Z:1,ffffffff-71ca-11e1-9e33-c80aa9429562:1,"
     f"00000000-0000-0000-0000-000000000000:1,{U}:1:3-4:2",
     "00000000-0000-0000-0000-000000000000:1,\n"
     f"{U}:1-4:_a:1:a:1:a1:1:a9:3:a_:1:b:1:z:1,\nffffffff-71ca-11e1-9e33-c80aa9429562:1"),
    (f" {U} : 1 - 3 : t : 4 , ", f"{U}:1-3:t:4"),
    (f",,{U}:1,,", f"{U}:1"),
    (f"{U}:1-3:3-5:2", f"{U}:1-5"),
    (f"{U}:1,{U}:2", f"{U}:1-2"),
    (f"{U}:tag:1:2:tag:5", f"{U}:tag:1-2:5"),
    (f"{{{U}}}:1", f"{U}:1"),
    (f"{U.replace('-', '')}:1", f"{U}:1"),
    (f"{U}:9223372036854775806", f"{U}:9223372036854775806"),
    (f"{U}:_t:1", f"{U}:_t:1"),
    (f"{U}:abcdefghijabcdefghijabcdefghijab:1", f"{U}:abcdefghijabcdefghijabcdefghijab:1"),
    (f"{SERVER_UUID}:1-6:aa_upper:1:wacdc1:1-2", f"{SERVER_UUID}:1-6:aa_upper:1:wacdc1:1-2"),
    (U, ""),  # a uuid without intervals, and a tag without intervals, are empty
    (f"{U}:tag", ""),
    ("", ""),
]


@pytest.mark.parametrize(("text", "mysql"), MYSQL_TEXT_FORMS)
def test_text_is_normalised_as_mysql_does(text: str, mysql: str) -> None:
    gtids = MysqlGtidSet(text)
    assert str(gtids) == mysql
    assert MysqlGtidSet(str(gtids)) == gtids  # round trip
    assert str(MysqlGtidSet(str(gtids))) == mysql
    assert gtids.to_string(",") == mysql.replace("\n", "")


# Rejected by MySQL 9.7.4 too (ER_MALFORMED_GTID_SET_SPECIFICATION), except `5-3`,
# which MySQL takes as an empty interval and wacdc refuses as a likely mistake.
@pytest.mark.parametrize("text", [
    f"{U}:0",
    f"{U}:9223372036854775807",
    f"{U}::1",
    f"{U}:1tag:1",
    f"{U}:abcdefghijabcdefghijabcdefghijabc:1",  # 33 characters
    f"{U}:tag:",
    f"{U}:",
    f"{U}:t-x:1",
    f"{U}:1 2",
    f"{U}:1-",
    f"{U}:5-3",
    f"{U}:1:-3",
    f"{U}:t:1,x",
    "3e11fa47-71ca-11e1-9e33-c80aa942956:1",
    "3e11fa47-71ca-11e1-9e33c-80aa9429562:1",
    "not-a-uuid:1",
    f"{U}:１",  # a non-ASCII digit
    f"{U}:{'9' * 5000}",
])
def test_invalid_text_is_rejected_clearly(text: str) -> None:
    with pytest.raises(ValueError, match="malformed GTID set"):
        MysqlGtidSet(text)


def test_add_folds_one_gtid_in() -> None:
    gtids = MysqlGtidSet(f"{U}:1-3")
    gtids.add(f"{U}:4")
    gtids.add(f"{U}:6")
    gtids.add(f"{U}:Wacdc:1")  # tags are case-insensitive, kept in lower case
    gtids.add(f"{U}:wacdc:2")
    gtids.add(f"{U}:5")  # closes the gap: one interval
    gtids.add(f"{U}:5")  # a repeat changes nothing
    gtids.add(f"{SERVER_UUID.upper()}:7")
    assert str(gtids) == f"{U}:1-6:wacdc:1-2,\n{SERVER_UUID}:7"
    assert gtids == f"{SERVER_UUID}:7,{U}:wacdc:1-2,{U}:1-6"  # order-insensitive
    assert gtids != f"{U}:1-6:wacdc:1-2"
    assert gtids != f"{SERVER_UUID}:7,{U}:wacdc:1-2:1-6"  # a tag holds until the next
    assert gtids != "not a GTID set"


@pytest.mark.parametrize("gtid", [f"{U}:1-3", U, f"{U}:tag", f"{U}:0", f"{U}:t:a:1",
                                  f"{U}:9:1", "xyz:1", f"{U}:{MAX_GNO + 1}"])
def test_add_rejects_what_is_not_one_gtid(gtid: str) -> None:
    with pytest.raises(ValueError, match="malformed GTID"):
        MysqlGtidSet().add(gtid)


def test_containment_and_subsets() -> None:
    gtids = MysqlGtidSet(f"{U}:1-10:20:wacdc:3-5,{SERVER_UUID}:1")
    assert f"{U}:10" in gtids
    assert f"{U}:11" not in gtids
    assert f"{U}:WACDC:4" in gtids
    assert f"{U}:wacdc:6" not in gtids
    assert f"{U}:other:4" not in gtids
    assert f"{SERVER_UUID}:wacdc:1" not in gtids  # a tag is its own source
    assert MysqlGtidSet(f"{U}:2-9:20:wacdc:5") in gtids
    assert MysqlGtidSet(f"{U}:2-9:20:wacdc:5").issubset(gtids)
    assert MysqlGtidSet(f"{U}:2-9:20:wacdc:5").issubset(str(gtids))
    assert not MysqlGtidSet(f"{U}:9-11").issubset(gtids)  # spans a gap
    assert not MysqlGtidSet(f"{U}:19-20").issubset(gtids)
    assert MysqlGtidSet().issubset(gtids)
    assert gtids.issubset(gtids)
    assert not gtids.issubset(MysqlGtidSet())
    assert 42 not in gtids


def test_union() -> None:
    left = MysqlGtidSet(f"{U}:1-3:t:1")
    both = left | f"{U}:4-5:t:3,{SERVER_UUID}:1"
    assert both == f"{U}:1-5:t:1:3,{SERVER_UUID}:1"
    assert left == f"{U}:1-3:t:1"  # | leaves its operands alone
    assert bool(left) and not MysqlGtidSet("")
    assert MysqlGtidSet(left) == left and MysqlGtidSet(left) is not left


# ---- binary ----

# The Previous_gtids event body (without its CRC) at the start of binlog.000002 after
# FLUSH BINARY LOGS on the capture server, whose gtid_executed was then
# f"{SERVER_UUID}:1-6:aa_upper:1:wacdc1:1-2" (`mysqlbinlog --hexdump`): MySQL's
# Gtid_set::encode in the tagged (v1) format.
PREVIOUS_GTIDS_TAGGED = bytes.fromhex(
    "0103000000000001"  # header: format 1, 3 TSIDs, format 1
    "7417fe8aed6211f199fb02fc00000001" "00"  # uuid, empty tag
    "0100000000000000" "0100000000000000" "0700000000000000"  # 1 interval [1, 7)
    "7417fe8aed6211f199fb02fc00000001" "10" "61615f7570706572"  # tag aa_upper (8 << 1)
    "0100000000000000" "0100000000000000" "0200000000000000"
    "7417fe8aed6211f199fb02fc00000001" "0c" "776163646331"  # tag wacdc1 (6 << 1)
    "0100000000000000" "0100000000000000" "0300000000000000")


def test_tagged_encoding_is_what_mysql_writes() -> None:
    gtids = MysqlGtidSet(f"{SERVER_UUID}:1-6:aa_upper:1:wacdc1:1-2")
    assert gtids.encode() == PREVIOUS_GTIDS_TAGGED
    assert gtids.encoded() == PREVIOUS_GTIDS_TAGGED
    assert gtids.encoded_length == len(PREVIOUS_GTIDS_TAGGED)
    assert MysqlGtidSet.decode(PREVIOUS_GTIDS_TAGGED) == gtids


def _interval_bytes(*intervals: tuple[int, int]) -> bytes:
    return struct.pack("<Q", len(intervals)) + b"".join(struct.pack("<QQ", a, b)
                                                         for a, b in intervals)


def test_tagged_encoding_by_the_documented_format() -> None:
    """v1: byte 0 and byte 7 = 1, bytes 1-6 the TSID count; per TSID (uuid, tag) in
    order: 16-byte uuid, tag as varlen length + characters, interval count, intervals
    as [start, end) u64 pairs."""
    gtids = MysqlGtidSet(f"{SERVER_UUID}:X:7,{U}:3-4:6:b:1:a:{MAX_GNO}")
    u, s = uuidlib.UUID(U).bytes, uuidlib.UUID(SERVER_UUID).bytes
    assert gtids.encode() == (
        bytes([1, 4, 0, 0, 0, 0, 0, 1])
        + u + b"\x00" + _interval_bytes((3, 5), (6, 7))
        + u + b"\x02a" + _interval_bytes((MAX_GNO, MAX_GNO + 1))
        + u + b"\x02b" + _interval_bytes((1, 2))
        + s + b"\x02x" + _interval_bytes((7, 8)))
    assert MysqlGtidSet.decode(gtids.encode()) == gtids


def test_untagged_encoding_is_the_old_format() -> None:
    """v0 (what mysql-replication writes, and MySQL for a set without tags): TSID count
    as u64 (format byte 7 = 0), then uuid, interval count, intervals."""
    text = f"{SERVER_UUID}:1-5:7,{U}:2"
    gtids = MysqlGtidSet(text)
    expected = (struct.pack("<Q", 2) + uuidlib.UUID(U).bytes + _interval_bytes((2, 3))
                + uuidlib.UUID(SERVER_UUID).bytes + _interval_bytes((1, 6), (7, 8)))
    assert gtids.encode() == expected
    assert LibraryGtidSet(f"{U}:2,{SERVER_UUID}:1-5:7").encode() == expected
    assert MysqlGtidSet.decode(expected) == gtids
    # The empty set: the 8-byte header of the capture server's first Previous_gtids.
    assert MysqlGtidSet("").encode() == bytes(8)
    assert MysqlGtidSet.decode(bytes(8)) == MysqlGtidSet()


@pytest.mark.parametrize("data", [
    b"\x01\x00", PREVIOUS_GTIDS_TAGGED[:-1], PREVIOUS_GTIDS_TAGGED + b"\x00",
    bytes([2, 1, 0, 0, 0, 0, 0, 2]),  # v2 (compact): MySQL never sends it
    bytes([1, 1, 0, 0, 0, 0, 0, 2]),  # inconsistent version bytes
    struct.pack("<Q", 1) + uuidlib.UUID(U).bytes + _interval_bytes((5, 5)),
])
def test_bad_binary_sets_are_rejected(data: bytes) -> None:
    with pytest.raises(ValueError, match="encoded GTID set"):
        MysqlGtidSet.decode(data)


# mysql::serialization's own examples (libs/mysql/serialization/readme.md), bytes shown
# there big-endian, stored little-endian.
@pytest.mark.parametrize(("data", "unsigned", "signed"), [
    (bytes([0b11111011, 0b11111111, 0b00000111]), 65535, -32768),
    (bytes([0b11110011, 0b11111111, 0b00001111]), 131070, 65535),
    (bytes([0b11101011, 0b11111111, 0b00001111]), 131069, -65535),
    (bytes([0b11111011, 0b11111111, 0b00001111]), 131071, -65536),
    (b"\x00", 0, 0),
    (b"\x0c", 6, 3),
    (b"\xff" + b"\xfc" + b"\xff" * 7, 2**64 - 4, 2**63 - 2),
])
def test_varlen_integers(data: bytes, unsigned: int, signed: int) -> None:
    assert read_varlen_unsigned(data, 0) == (unsigned, len(data))
    assert read_varlen_signed(data, 0) == (signed, len(data))


# ---- GTID_TAGGED_LOG_EVENT ----

# Whole events (19-byte header, body, CRC32) read from the capture server's binlog files
# (the event at offset 1370 of binlog.000001, and the one at 295 of binlog.000002), made
# with `SET gtid_next = 'AUTOMATIC:wacdc1'; INSERT ...` (the server's 6th transaction)
# and `SET gtid_next = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee:Big_Tag_9:
# 9223372036854775806'; INSERT ...`. `mysqlbinlog -vv` shows the same values.
TAGGED_EVENT = bytes.fromhex(
    "5e870e6b2a0100000052000000ac0500000000"
    "027600000002e82ef9032902b503c422c5036502ed0304f103000000020404060c7761636463310810"
    "0a180c7f30cc16718e6106108d041283120b"
    "30f1928e")
TAGGED_EVENT_MAX_GNO = bytes.fromhex(
    "9a880e6b2a01000000660000008d0100000000"
    "029e00000002a902a902a902a902ed02ed023103310375037503b903b903b903b903b903b90304ff"
    "fcffffffffffffff06126269675f7461675f3908000a040c7fb5dfe1838e610610dd041283120b"
    "0cb28106")


def test_decode_a_real_tagged_gtid_event() -> None:
    event = decode_tagged_gtid_event(TAGGED_EVENT[19:-4])
    assert (event.uuid, event.tag, event.gno) == (SERVER_UUID, "wacdc1", 1)
    assert event.gtid == f"{SERVER_UUID}:wacdc1:1"
    assert event.flags == 0  # row-based only
    assert (event.last_committed, event.sequence_number) == (4, 6)
    assert event.immediate_commit_timestamp == 1796114270833712
    assert event.original_commit_timestamp == 1796114270833712  # left out: the same
    assert event.transaction_length == 291
    assert event.immediate_server_version == event.original_server_version == 90704
    assert event.commit_group_ticket is None

    big = decode_tagged_gtid_event(TAGGED_EVENT_MAX_GNO[19:-4])
    assert big.gtid == f"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee:big_tag_9:{MAX_GNO}"
    assert (big.last_committed, big.sequence_number, big.transaction_length) == (0, 1, 311)


def test_decode_skips_fields_a_newer_server_adds() -> None:
    body = bytearray(TAGGED_EVENT[19:-4])
    body += bytes([12 << 1, 7 << 1])  # field 12 (unknown), value 7
    body[1] = len(body) << 1  # message size
    assert decode_tagged_gtid_event(bytes(body)).gtid == f"{SERVER_UUID}:wacdc1:1"


@pytest.mark.parametrize("body", [
    b"", TAGGED_EVENT[19:30], b"\x04" + TAGGED_EVENT[20:-4],  # version 2
    TAGGED_EVENT[19:20] + b"\xfe\x0f" + TAGGED_EVENT[21:-4],  # size beyond the body
    bytes.fromhex("020a0000000400"),  # no uuid
])
def test_decode_rejects_broken_events(body: bytes) -> None:
    with pytest.raises(ValueError, match="malformed GTID_TAGGED_LOG_EVENT"):
        decode_tagged_gtid_event(body)


class _Control:
    charset = "utf8mb4"

    def _get_dbms(self) -> str:
        return "mysql"


def _packet_event(event: bytes, allowed: frozenset[type]) -> object:
    """What the library makes of one binlog packet (an OK byte, then the event)."""
    packet = pymysql.connections.MysqlPacket(b"\x00" + event, "utf8")
    return BinLogPacketWrapper(packet, {}, _Control(), (9, 7, 4), True, allowed, None,
                               None, None, None, False, False, True, False, False).event


def test_install_registers_the_event_class() -> None:
    install()
    install()  # idempotent
    event = _packet_event(TAGGED_EVENT, frozenset({TaggedGtidEvent}))
    assert isinstance(event, TaggedGtidEvent) and isinstance(event, GtidEvent)
    assert event.event_type == GTID_TAGGED_LOG_EVENT
    assert event.gtid == f"{SERVER_UUID}:wacdc1:1"
    assert (event.uuid, event.tag, event.gno) == (SERVER_UUID, "wacdc1", 1)
    assert event.sid == uuidlib.UUID(SERVER_UUID).bytes
    assert event.last_committed == 4 and event.sequence_number == 6
    assert "wacdc1:1" in repr(event)
    # Wherever GtidEvent is allowed, so is the tagged kind (the library filters by class).
    allowed = BinLogStreamReader._allowed_event_list(None, [GtidEvent], None, False)
    assert TaggedGtidEvent in allowed
    assert TaggedGtidEvent not in BinLogStreamReader._allowed_event_list(None, [], None,
                                                                         False)


def test_gtid_state_folds_tagged_gtids() -> None:
    state = GtidState(f"{U}:1-23,\n{SERVER_UUID}:t:1", mariadb=False)
    state.advance(f"{U}:24")
    state.advance(f"{U}:WACDC:1")
    state.advance(f"{SERVER_UUID}:t:2")
    state.advance(f"{SERVER_UUID}:t:2")  # seen again after a reconnect
    assert str(state) == f"{U}:1-24:wacdc:1,{SERVER_UUID}:t:1-2"
    assert GtidState(None, mariadb=False).__str__() == ""


# ---- against a live server ----

def test_live_server_tagged_stream_and_gtid_dump(mysql_server: Any) -> None:
    from tests.support.flavours import only_on
    from wacdc.config import parse_url

    only_on(mysql_server, "mysql", "tagged GTIDs are Oracle MySQL 8.3+")
    install()
    url = parse_url(mysql_server.url("mysql"), "mysql")
    settings = {"host": url.host, "port": url.port, "user": url.user, "password": url.password}
    conn = pymysql.connect(**settings, autocommit=True)
    tag = f"wacdc_{secrets.token_hex(4)}"  # a fresh tag: its transactions are 1 and 2
    try:
        with conn.cursor() as cur:
            def one(sql: str, *args: object) -> object:
                cur.execute(sql, args or None)
                return cur.fetchone()[0]

            # The server normalises text as wacdc does, and compares sets alike.
            for text, _ in MYSQL_TEXT_FORMS:
                assert one("SELECT GTID_SUBTRACT(%s, '')", text) == str(MysqlGtidSet(text))
            for small, big in [(f"{U}:T:3", f"{U}:1-2:t:1-4"), (f"{U}:3", f"{U}:t:1-4"),
                               (f"{U}:1-4:x:2", f"{U}:1-5:x:1-3,{SERVER_UUID}:1")]:
                assert bool(one("SELECT GTID_SUBSET(%s, %s)", small, big)) == \
                    MysqlGtidSet(small).issubset(big)

            uuid = one("SELECT @@server_uuid")
            cur.execute("CREATE DATABASE IF NOT EXISTS wacdc_gtid_test")
            cur.execute("CREATE TABLE IF NOT EXISTS wacdc_gtid_test.t "
                        "(id int AUTO_INCREMENT PRIMARY KEY, v int)")
            cur.execute("SHOW BINARY LOG STATUS")
            binlog_file = cur.fetchone()[0]
            cur.execute(f"SET gtid_next = 'AUTOMATIC:{tag.upper()}'")
            cur.execute("INSERT INTO wacdc_gtid_test.t (v) VALUES (1)")
            after_first = str(one("SELECT @@global.gtid_executed"))
            cur.execute(f"SET gtid_next = 'AUTOMATIC:{tag}'")
            cur.execute("INSERT INTO wacdc_gtid_test.t (v) VALUES (2)")
            cur.execute("SET gtid_next = 'AUTOMATIC'")
            cur.execute("INSERT INTO wacdc_gtid_test.t (v) VALUES (3)")
            final = str(one("SELECT @@global.gtid_executed"))
    finally:
        conn.close()

    assert str(MysqlGtidSet(final)) == final  # MySQL's own text, ",\n" and all
    untagged = dict(MysqlGtidSet(final).tsids())[(uuid, "")]
    last_untagged = f"{uuid}:{untagged[-1][1] - 1}"
    tagged = [f"{uuid}:{tag}:1", f"{uuid}:{tag}:2"]

    def gtid_events(**kwargs: object) -> list[tuple[type, str]]:
        stream = BinLogStreamReader(connection_settings=dict(settings), blocking=False,
                                    only_events=[GtidEvent], **kwargs)
        try:
            return [(type(event), event.gtid) for event in stream]
        finally:
            stream.close()

    # From the start of the binlog file: the tagged GTIDs come as TaggedGtidEvent.
    seen = gtid_events(server_id=4011, log_file=binlog_file, log_pos=4, resume_stream=True)
    assert seen[-3:] == [(TaggedGtidEvent, tagged[0]), (TaggedGtidEvent, tagged[1]),
                         (GtidEvent, last_untagged)]

    # A GTID dump from a tagged set (tagged binary encoding): only what came later.
    assert MysqlGtidSet(after_first).has_tags
    later = gtid_events(server_id=4012, auto_position=after_first)
    assert [gtid for _, gtid in later] == [tagged[1], last_untagged]

    # Folding those into the state gives the server's gtid_executed (on one line).
    state = GtidState(after_first, mariadb=False)
    for _, gtid in later:
        state.advance(gtid)
    assert str(state) == final.replace("\n", "")
