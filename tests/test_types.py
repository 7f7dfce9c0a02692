"""Every MySQL type of DESIGN §4 arrives identical in PostgreSQL, by snapshot AND binlog."""

from __future__ import annotations

import json
import struct
from decimal import Decimal
from typing import Any

import pytest

from tests.support.alltypes import ALLTYPES, ROWS, _insert_all
from tests.support.harness import SourceDb, TargetDb
from tests.support.roundtrip import Roundtrip

# Run again with each other way of decoding the binlog (tests/conftest.py).
pytestmark = pytest.mark.decoders("library")

# (MySQL column -> SQL literal, expected PostgreSQL value as psycopg reads it back)
JSON_NULL_ROW = 3  # row id whose `j` is JSON null (not SQL NULL)


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
