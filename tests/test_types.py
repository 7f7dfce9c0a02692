"""Every MySQL type of DESIGN §4 arrives identical in PostgreSQL, by snapshot AND binlog."""

from __future__ import annotations

import datetime as dt
import json
import struct
from decimal import Decimal
from typing import Any

import pytest

from tests.harness import SourceDb, TargetDb
from tests.roundtrip import Roundtrip

UTC = dt.UTC

ALLTYPES = """
CREATE TABLE alltypes (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  b BOOLEAN, d DECIMAL(65,30), d2 DECIMAL(10,2), f FLOAT, db DOUBLE,
  c CHAR(10), vc VARCHAR(191), tt TINYTEXT, t TEXT, mt MEDIUMTEXT, lt LONGTEXT,
  bn BINARY(4), vb VARBINARY(300), bl BLOB, lb LONGBLOB,
  dt0 DATETIME NULL, dt3 DATETIME(3) NULL, dt6 DATETIME(6) NULL,
  ts0 TIMESTAMP NULL, ts3 TIMESTAMP(3) NULL, ts6 TIMESTAMP(6) NULL,
  dte DATE, tm TIME, tm6 TIME(6), yr YEAR, j JSON,
  e ENUM('a','b','c d'), s SET('x','y','z'), bit1 BIT(1), bit64 BIT(64)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci
"""

NINES = "9" * 35 + "." + "9" * 30
DEEP_JSON = {
    "a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": [1, [2, [3, [4, []]]]]}}}}}}},
    "big": 12345678901234567890123, "neg": -9223372036854775809, "float": 1.5e300,
    "tiny": -2.5e-300, "ключ": "значение", "🔑": "✓ 😀", "empty_obj": {}, "empty_arr": [],
    "nulls": [None, True, False], "esc": "quote\" backslash\\ tab\t nl\n é",
}
ALL_BYTES = bytes(range(256))

# (MySQL column -> SQL literal, expected PostgreSQL value as psycopg reads it back)
ROWS: list[tuple[dict[str, str], dict[str, Any]]] = [
    ({"ti": "-128", "tiu": "0", "si": "-32768", "siu": "0", "mi": "-8388608", "miu": "0",
      "i": "-2147483648", "iu": "0", "bi": "-9223372036854775808", "biu": "0", "b": "0",
      "d": f"-{NINES}", "d2": "-99999999.99", "f": "-3.40282346638529e+38",
      "db": "-1.7976931348623157e308", "c": "''", "vc": "''", "tt": "''", "t": "''",
      "mt": "''", "lt": "''", "bn": "0x00000000", "vb": "0x" + ALL_BYTES.hex(), "bl": "''",
      "lb": "0x" + (ALL_BYTES * 3).hex(),
      "dt0": "'1000-01-01 00:00:00'", "dt3": "'1000-01-01 00:00:00.001'",
      "dt6": "'1000-01-01 00:00:00.000001'", "ts0": "'1970-01-01 00:00:01'",
      "ts3": "'1970-01-01 00:00:01.001'", "ts6": "'1970-01-01 00:00:01.000001'",
      "dte": "'1000-01-01'", "tm": "'-838:59:59'", "tm6": "'-838:59:58.999999'", "yr": "1901",
      "j": "'{}'", "e": "'a'", "s": "''", "bit1": "b'0'", "bit64": "b'0'"},
     {"ti": -128, "tiu": 0, "si": -32768, "siu": 0, "mi": -8388608, "miu": 0,
      "i": -2147483648, "iu": 0, "bi": -(2**63), "biu": 0, "b": False,
      "d": Decimal(f"-{NINES}"), "d2": Decimal("-99999999.99"), "f": -3.4028234663852886e38,
      "db": -1.7976931348623157e308, "c": "", "vc": "", "tt": "", "t": "", "mt": "", "lt": "",
      "bn": b"\x00" * 4, "vb": ALL_BYTES, "bl": b"", "lb": ALL_BYTES * 3,
      "dt0": dt.datetime(1000, 1, 1), "dt3": dt.datetime(1000, 1, 1, 0, 0, 0, 1000),
      "dt6": dt.datetime(1000, 1, 1, 0, 0, 0, 1),
      "ts0": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
      "ts3": dt.datetime(1970, 1, 1, 0, 0, 1, 1000, tzinfo=UTC),
      "ts6": dt.datetime(1970, 1, 1, 0, 0, 1, 1, tzinfo=UTC),
      "dte": dt.date(1000, 1, 1), "tm": -dt.timedelta(hours=838, minutes=59, seconds=59),
      "tm6": -dt.timedelta(hours=838, minutes=59, seconds=58, microseconds=999999),
      "yr": 1901, "j": {}, "e": "a", "s": [], "bit1": False, "bit64": "0" * 64}),
    ({"ti": "127", "tiu": "255", "si": "32767", "siu": "65535", "mi": "8388607",
      "miu": "16777215", "i": "2147483647", "iu": "4294967295", "bi": "9223372036854775807",
      "biu": "18446744073709551615", "b": "1", "d": NINES, "d2": "99999999.99",
      "f": "3.40282346638529e+38", "db": "1.7976931348623157e308", "c": "'abcdefghij'",
      "vc": "'😀 emoji 𝄞 中文 ñ'", "tt": "REPEAT('x', 255)", "t": "REPEAT('🎉', 1000)",
      "mt": "REPEAT('m', 70000)", "lt": "REPEAT('é', 100000)", "bn": "0xFFFFFFFF",
      "vb": "0x" + "ff" * 300, "bl": "0x" + ALL_BYTES.hex(), "lb": "0x" + "00" * 10,
      "dt0": "'9999-12-31 23:59:59'", "dt3": "'9999-12-31 23:59:59.999'",
      "dt6": "'9999-12-31 23:59:59.999999'", "ts0": "'2038-01-19 03:14:07'",
      "ts3": "'2038-01-19 03:14:07.999'", "ts6": "'2038-01-19 03:14:07.999999'",
      "dte": "'9999-12-31'", "tm": "'838:59:59'", "tm6": "'838:59:58.999999'", "yr": "2155",
      "j": "'" + json.dumps(DEEP_JSON, ensure_ascii=False).replace("\\", "\\\\") + "'",
      "e": "'c d'", "s": "'z,x'", "bit1": "b'1'", "bit64": "0xFFFFFFFFFFFFFFFF"},
     {"ti": 127, "tiu": 255, "si": 32767, "siu": 65535, "mi": 8388607, "miu": 16777215,
      "i": 2147483647, "iu": 4294967295, "bi": 2**63 - 1, "biu": 2**64 - 1, "b": True,
      "d": Decimal(NINES), "d2": Decimal("99999999.99"), "f": 3.4028234663852886e38,
      "db": 1.7976931348623157e308, "c": "abcdefghij", "vc": "😀 emoji 𝄞 中文 ñ",
      "tt": "x" * 255, "t": "🎉" * 1000, "mt": "m" * 70000, "lt": "é" * 100000,
      "bn": b"\xff" * 4, "vb": b"\xff" * 300, "bl": ALL_BYTES, "lb": b"\x00" * 10,
      "dt0": dt.datetime(9999, 12, 31, 23, 59, 59),
      "dt3": dt.datetime(9999, 12, 31, 23, 59, 59, 999000),
      "dt6": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
      "ts0": dt.datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC),
      "ts3": dt.datetime(2038, 1, 19, 3, 14, 7, 999000, tzinfo=UTC),
      "ts6": dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
      "dte": dt.date(9999, 12, 31), "tm": dt.timedelta(hours=838, minutes=59, seconds=59),
      "tm6": dt.timedelta(hours=838, minutes=59, seconds=58, microseconds=999999),
      "yr": 2155, "j": DEEP_JSON, "e": "c d", "s": ["x", "z"], "bit1": True,
      "bit64": "1" * 64}),
    # Zero dates and an invalid ENUM need a lax sql_mode; JSON null is not SQL NULL.
    ({"dt0": "'0000-00-00 00:00:00'", "dte": "'0000-00-00'", "ts0": "'0000-00-00 00:00:00'",
      "yr": "0", "e": "'bogus'", "j": "'null'", "s": "'y'", "c": "'trail   '",
      "vc": "'trail  '", "bn": "'ab'", "vb": "0x0000"},
     {"dt0": None, "dte": None, "ts0": None, "yr": 0, "e": "", "j": None, "s": ["y"],
      "c": "trail", "vc": "trail  ", "bn": b"ab\x00\x00", "vb": b"\x00\x00"}),
    ({}, {}),  # everything NULL
    ({"f": "0.1", "db": "0.1", "d": "-0.000000000000000000000000000001", "d2": "0.00",
      "tm": "'00:00:00'", "tm6": "'-00:00:00.000001'", "j": "'\"just a string\"'",
      "b": "1", "bit64": "b'101'"},
     {"f": 0.1, "db": 0.1, "d": Decimal("-0.000000000000000000000000000001"),
      "d2": Decimal("0.00"), "tm": dt.timedelta(0), "tm6": dt.timedelta(microseconds=-1),
      "j": "just a string", "b": True, "bit64": "0" * 61 + "101"}),
    ({"j": "'[1, 2.5, -3e-7, 12345678901234567890, \"x\", {\"k\": [{}]}]'",
      "tm6": "'100:00:00.5'", "ts6": "'2024-02-29 12:34:56.789012'"},
     {"j": [1, 2.5, -3e-7, 12345678901234567890, "x", {"k": [{}]}],
      "tm6": dt.timedelta(hours=100, microseconds=500000),
      "ts6": dt.datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=UTC)}),
]
JSON_NULL_ROW = 3  # row id whose `j` is JSON null (not SQL NULL)


def _insert_all(db: SourceDb) -> None:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("SET time_zone = '+00:00'")
        for row_id, (literals, _) in enumerate(ROWS, start=1):
            cols = ", ".join(["id", *literals])
            vals = ", ".join([str(row_id), *literals.values()])
            cur.execute(f"INSERT INTO alltypes ({cols}) VALUES ({vals})")


def _same(column: str, got: Any, want: Any) -> bool:
    if column == "f" and got is not None and want is not None:
        return struct.pack("<f", got) == struct.pack("<f", want)
    if isinstance(want, float) and isinstance(got, float):
        return got == want
    return type(got) is type(want) and got == want if not isinstance(want, int | Decimal) \
        else got == want


def _as_jsonb(rt: Roundtrip, value: Any) -> Any:
    """What PostgreSQL makes of a document (jsonb keeps numbers as numeric: 1.5e300 -> int)."""
    with rt.target.connect() as pg:
        return pg.execute("SELECT %s::jsonb", (json.dumps(value),)).fetchone()[0]


def _source_json(db: SourceDb) -> dict[int, str | None]:
    """The JSON documents as the source itself prints them. Oracle MySQL stores JSON
    numbers beyond 64-bit integers as doubles: its text, not our literal, is the truth."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, CAST(j AS CHAR) FROM alltypes")
        return dict(cur.fetchall())


def _check_rows(rt: Roundtrip, schema: str, source: SourceDb) -> None:
    names = rt.column_names("alltypes")
    rows = rt.read_back(schema, "alltypes")
    assert [r[0] for r in rows] == list(range(1, len(ROWS) + 1))
    printed = _source_json(source) if source.server.flavour == "mysql" else {}
    for (_, expected), row in zip(ROWS, rows, strict=True):
        got = dict(zip(names, row, strict=True))
        for column in names[1:]:
            want = expected.get(column)
            if column == "j" and want is not None:
                want = _as_jsonb(rt, json.loads(printed[got["id"]]) if printed else want)
            assert _same(column, got[column], want), (schema, got["id"], column, got[column],
                                                      want)


def test_every_type_round_trips_by_snapshot_and_binlog(source_db: SourceDb,
                                                       target_db: TargetDb) -> None:
    source_db.execute(ALLTYPES)
    rt = Roundtrip(source_db, target_db, ["alltypes"])
    start = rt.position()
    _insert_all(source_db)

    rt.snapshot("alltypes")
    zero_dates = [(c.column, c.reason, int(c.key)) for c in rt.coercions]
    assert sorted(zero_dates) == [("dt0", "zero_date", 3), ("dte", "zero_date", 3),
                                  ("ts0", "zero_date", 3)]
    applied = rt.stream(start)
    assert [op for _, op in applied] == ["insert"] * len(ROWS)
    assert len(rt.coercions) == 6

    _check_rows(rt, "snap", source_db)
    _check_rows(rt, "binl", source_db)
    with target_db.connect() as pg:
        for schema in ("snap", "binl"):
            nulls = pg.execute(f"SELECT id, j IS NULL, jsonb_typeof(j) FROM {schema}.alltypes "
                               "ORDER BY id").fetchall()
            assert nulls[JSON_NULL_ROW - 1] == (JSON_NULL_ROW, False, "null")
            assert nulls[3] == (4, True, None)  # the all-NULL row: SQL NULL


def test_updates_and_deletes_carry_before_and_after_images(source_db: SourceDb,
                                                           target_db: TargetDb) -> None:
    source_db.execute(ALLTYPES)
    rt = Roundtrip(source_db, target_db, ["alltypes"])
    _insert_all(source_db)
    rt.snapshot("alltypes")
    start = rt.position()
    source_db.execute(
        "UPDATE alltypes SET s = '', j = '[]', bit64 = b'1' WHERE id = 2",
        "UPDATE alltypes SET id = 100 WHERE id = 5",  # key change
        "DELETE FROM alltypes WHERE id = 1",
    )
    # Bring binl to the snapshot state, then apply the changes on top of it.
    with target_db.connect() as pg:
        pg.execute("INSERT INTO binl.alltypes SELECT * FROM snap.alltypes")
    applied = rt.stream(start)
    assert [op for _, op in applied] == ["update", "update", "delete"]
    rows = {r[0]: r for r in rt.read_back("binl", "alltypes")}
    names = rt.column_names("alltypes")
    assert sorted(rows) == [2, 3, 4, 6, 100]
    row2 = dict(zip(names, rows[2], strict=True))
    assert (row2["s"], row2["j"], row2["bit64"]) == ([], [], "0" * 63 + "1")
    fresh = Roundtrip(source_db, target_db, ["alltypes"])
    with target_db.connect() as pg:
        pg.execute("TRUNCATE snap.alltypes")
    fresh.snapshot("alltypes")
    assert rt.read_back("binl", "alltypes") == rt.read_back("snap", "alltypes")


@pytest.mark.parametrize("profile", ["plain", "prisma"])
def test_fixture_tables_round_trip(profile: str, source_db: SourceDb,
                                   target_db: TargetDb) -> None:
    """Realistic WhatsApp rows (JSON payloads, enums, booleans, decimals, tags)."""
    tables = ["WhatsAppCustomer", "WhatsAppTourPackage", "WhatsAppMessage"]
    rt = Roundtrip(source_db, target_db, tables, profile=profile)
    start = rt.position()
    payload = json.dumps({"entry": [{"changes": [{"value": {"messages": [
        {"from": "919999999999", "text": {"body": "नमस्ते 👋"}, "type": "text"}]}}]}],
        "object": "whatsapp_business_account"}, ensure_ascii=False)
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, tags, isOptedIn, "
            "metadata, updatedAt) VALUES "
            "('c1', 'A', '+1', '[\"vip\", \"goa\"]', 1, 'null', NOW(3)), "
            "('c2', 'B', '+2', NULL, 0, NULL, NOW(3)), "
            "('c3', 'C', '+3', '[]', 1, '{}', NOW(3))")
        cur.execute("INSERT INTO WhatsAppTourPackage (id, productId, title, basePrice, status, "
                    "syncStatus, gallery, updatedAt) VALUES ('p1', 'prod1', 'Goa', 12345.67, "
                    "'archived', 'in_progress', '[\"a.jpg\"]', NOW(3))")
        cur.execute("INSERT INTO WhatsAppMessage (id, message, payload, `from`, `to`, "
                    "updatedAt) VALUES ('m1', 'hi 😀', %s, 'a', 'b', NOW(3))", (payload,))
    for table in tables:
        rt.snapshot(table)
    rt.stream(start)
    for table in tables:
        assert rt.read_back("snap", table) == rt.read_back("binl", table), table
    assert rt.coercions == []
    customers = {r[0]: r for r in rt.read_back("snap", "WhatsAppCustomer")}
    tags_at = rt.column_names("WhatsAppCustomer").index("tags")
    if profile == "prisma":
        assert [customers[k][tags_at] for k in ("c1", "c2", "c3")] == [["vip", "goa"], [], []]
    else:
        assert [customers[k][tags_at] for k in ("c1", "c2", "c3")] == [["vip", "goa"], None, []]
    package = rt.read_back("snap", "WhatsAppTourPackage")[0]
    names = rt.column_names("WhatsAppTourPackage")
    assert package[names.index("status")] == "archived"
    assert package[names.index("basePrice")] == Decimal("12345.67")
    message = rt.read_back("binl", "WhatsAppMessage")[0]
    assert message[rt.column_names("WhatsAppMessage").index("payload")] == json.loads(payload)


TIMES = ["-838:59:58.999999", "517:51:04.780000", "24:00:00.000000", "838:59:59.000000",
         "-00:00:00.500000", "00:00:00.000000", "-24:00:00.000000", "12:34:56.000001"]


def test_time_becomes_the_same_interval_field_by_field_on_both_paths(
        source_db: SourceDb, target_db: TargetDb) -> None:
    """Equal durations are not enough: '-35 days +01:00:01' and '-838:59:59' differ in
    extract(hour), to_char and date arithmetic. Both paths must give the source's form."""
    source_db.execute("CREATE TABLE times (id INT PRIMARY KEY, t TIME(6), t0 TIME)")
    rt = Roundtrip(source_db, target_db, ["times"])
    start = rt.position()
    for n, text in enumerate(TIMES):
        source_db.execute(f"INSERT INTO times VALUES ({n}, '{text}', '{text[:-7]}')")
    rt.snapshot("times")
    rt.stream(start)
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, CAST(t AS CHAR), CAST(t0 AS CHAR) FROM times ORDER BY id")
        source = cur.fetchall()
    with target_db.connect() as pg:
        # The source's own text, read as an interval by PostgreSQL: hours stay hours.
        want = [(i, *(pg.execute("SELECT %s::interval::text", (v,)).fetchone()[0]
                      for v in values)) for i, *values in source]
        for schema in ("snap", "binl"):
            got = pg.execute(f"SELECT id, t::text, t0::text FROM {schema}.times ORDER BY id"
                             ).fetchall()
            assert got == want, schema
            hours = pg.execute(f"SELECT extract(hour FROM t)::int FROM {schema}.times "
                               "WHERE id = 0").fetchone()[0]
            assert hours == -838, schema
