"""Bad input (DESIGN §4): each case has a documented default and a strict mode, on both paths."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import SourceDb, TargetDb
from tests.support.roundtrip import Roundtrip
from wacdc.errors import BadValueError
from wacdc.schema.convert import BadValuePolicy, RowConverter
from wacdc.schema.model import Column
from wacdc.schema.types import TargetColumn

LAX = "SET SESSION sql_mode = ''"


@pytest.fixture
def custom_profile(tmp_path: Path) -> str:
    path = tmp_path / "custom.toml"
    path.write_text('name = "custom"\n[types]\ntime = "time"\nenum = "pg_enum"\n')
    return str(path)


# id, column DDL, value SQL (with %s params), params, expected PG value, reason, profile
CASES: list[tuple[str, str, str, tuple, Any, str, str]] = [
    ("nul_in_text", "TEXT", "%s", ("a\x00b",), "a\ufffdb", "nul_in_text", "plain"),
    ("nul_in_json", "JSON", "%s", ('{"k": "a\\u0000b"}',), {"k": "a\ufffdb"}, "nul_in_json",
     "plain"),
    ("zero_datetime", "DATETIME(3) NULL", "'0000-00-00 00:00:00'", (), None, "zero_date",
     "plain"),
    ("zero_datetime_not_null", "DATETIME NOT NULL", "'0000-00-00 00:00:00'", (),
     dt.datetime(1, 1, 1), "zero_date", "plain"),
    ("zero_date", "DATE NULL", "'0000-00-00'", (), None, "zero_date", "plain"),
    ("zero_month", "DATETIME NULL", "'2024-00-10 10:00:00'", (), None, "zero_date", "plain"),
    ("zero_date_not_null", "DATE NOT NULL", "'0000-00-00'", (), dt.date(1, 1, 1), "zero_date",
     "plain"),
    ("zero_timestamp", "TIMESTAMP NULL", "'0000-00-00 00:00:00'", (), None, "zero_date",
     "plain"),
    ("bool_not_0_1", "TINYINT(1)", "5", (), True, "bool_out_of_range", "plain"),
    ("bool_negative", "BOOLEAN", "-1", (), True, "bool_out_of_range", "plain"),
    ("time_over_24h", "TIME NULL", "'30:00:00'", (), None, "time_out_of_range", "custom"),
    ("enum_invalid", "ENUM('a','b') NULL", "'zzz'", (), None, "enum_invalid", "custom"),
]


def _setup(case: tuple, source_db: SourceDb, target_db: TargetDb, strict: bool,
           custom_profile: str) -> tuple[Roundtrip, Any]:
    _, column_ddl, value_sql, params, _, _, profile = case
    source_db.execute(f"CREATE TABLE bad (id VARCHAR(20) PRIMARY KEY, v {column_ddl})")
    rt = Roundtrip(source_db, target_db, ["bad"],
                   profile=custom_profile if profile == "custom" else profile, strict=strict)
    start = rt.position()
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute(LAX)
        cur.execute(f"INSERT INTO bad (id, v) VALUES ('row-1', {value_sql})", params or None)
    return rt, start


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_default_policy(case: tuple, source_db: SourceDb, target_db: TargetDb,
                        custom_profile: str) -> None:
    rt, start = _setup(case, source_db, target_db, False, custom_profile)
    expected, reason = case[4], case[5]
    rt.snapshot("bad")
    rt.stream(start)
    for schema in ("snap", "binl"):
        assert rt.read_back(schema, "bad") == [("row-1", expected)], schema
    seen = [(c.table, c.column, c.reason, c.key) for c in rt.coercions]
    assert seen == [("bad", "v", reason, "row-1")] * 2  # once per path, with the key
    assert rt.policy.counts == {("bad", "v", reason): 2}
    assert all(c.position is None for c in rt.coercions[:1])
    assert rt.coercions[1].position and ":" in rt.coercions[1].position  # binlog file:pos


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_strict_policy(case: tuple, source_db: SourceDb, target_db: TargetDb,
                       custom_profile: str) -> None:
    rt, start = _setup(case, source_db, target_db, True, custom_profile)
    reason = case[5]
    with pytest.raises(BadValueError) as snap_err:
        rt.snapshot("bad")
    message = str(snap_err.value)
    assert f"({reason})" in message and "bad.v" in message and "key='row-1'" in message
    with pytest.raises(BadValueError) as binlog_err:
        rt.stream(start)
    assert binlog_err.value.position and " at " in str(binlog_err.value)
    assert binlog_err.value.key == "row-1" and binlog_err.value.column == "v"
    for schema in ("snap", "binl"):
        assert rt.read_back(schema, "bad") == [], "nothing may be written after a strict stop"


def _converter(family: str, pg_type: str, nullable: bool = True, strict: bool = False,
               data_type: str = "text") -> tuple[RowConverter, BadValuePolicy]:
    id_col = Column("id", 0, "int", "int", False)
    source = Column("v", 1, data_type, data_type, nullable)
    columns = [TargetColumn("id", "integer", False, None, "int", id_col),
               TargetColumn("v", pg_type, nullable, None, family, source)]
    policy = BadValuePolicy(strict=strict, on_coercion=lambda c: None)
    return RowConverter("t", columns, ["id"], policy), policy


def test_invalid_utf8_is_replaced_or_refused() -> None:
    converter, policy = _converter("text", "text")
    assert converter.convert([1, b"ok \xc3\xa9"]) == (1, "ok é")
    assert converter.convert([2, b"bad \xc3("]) == (2, "bad \ufffd(")
    assert policy.counts == {("t", "v", "invalid_utf8"): 1}
    strict, _ = _converter("text", "text", strict=True)
    with pytest.raises(BadValueError, match=r"invalid_utf8.*t\.v key=3"):
        strict.convert([3, b"\xff"])


def test_lone_surrogate_escape_in_json() -> None:
    """MySQL and MariaDB refuse these, but a JSON text from elsewhere must not crash jsonb."""
    converter, policy = _converter("json", "jsonb", data_type="json")
    paired = '["\\ud83d\\ude00"]'  # a valid pair passes unchanged
    assert converter.convert([1, paired]) == (1, paired)
    assert converter.convert([2, '["\\ud800 x"]']) == (2, '["\ufffd x"]')
    assert policy.counts == {("t", "v", "invalid_unicode_in_json"): 1}
    strict, _ = _converter("json", "jsonb", strict=True, data_type="json")
    with pytest.raises(BadValueError, match="invalid_unicode_in_json"):
        strict.convert([3, '"\\udc00"'])


class JsonDiff:  # the library's partial-JSON diff type is recognised by name
    def __init__(self, op: str) -> None:
        self.op = op


@pytest.mark.parametrize("strict", [False, True])
def test_partial_json_is_always_refused(strict: bool) -> None:
    """No safe default exists: the full document is unknown. `wacdc check` prevents it."""
    converter, _ = _converter("json", "jsonb", strict=strict, data_type="json")
    with pytest.raises(BadValueError, match="partial_json"):
        converter.convert([1, [JsonDiff("replace")]])


def test_partial_json_none_source_is_refused() -> None:
    from pymysqlreplication.constants import NONE_SOURCE

    from wacdc.source.rowimage import unambiguous

    with pytest.raises(ValueError, match="partial JSON update"):
        unambiguous({"j": None}, {"j": NONE_SOURCE.JSON_PARTIAL_UPDATE})
    with pytest.raises(ValueError, match="binlog_row_image=FULL"):
        unambiguous({"j": None}, {"j": NONE_SOURCE.COLS_BITMAP})


TAG_CASES = [
    ('["a", 1, {"x": true}]', ["a", "1", '{"x":true}'], "tags_non_string"),
    ('{"not": "array"}', ['{"not":"array"}'], "tags_not_array"),
    ('"solo"', ['"solo"'], "tags_not_array"),
]


@pytest.mark.parametrize("strict", [False, True])
def test_prisma_tags_must_be_string_arrays(strict: bool, source_db: SourceDb,
                                           target_db: TargetDb) -> None:
    rt = Roundtrip(source_db, target_db, ["WhatsAppCustomer"], profile="prisma", strict=strict)
    start = rt.position()
    with source_db.connect() as conn, conn.cursor() as cur:
        for i, (tags, _, _) in enumerate(TAG_CASES):
            cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, tags, "
                        "updatedAt) VALUES (%s, 'n', %s, %s, NOW(3))", (f"c{i}", f"+{i}", tags))
    if strict:
        with pytest.raises(BadValueError, match=r"tags_non_string.*WhatsAppCustomer\.tags "
                                                r"key='c0'"):
            rt.snapshot("WhatsAppCustomer")
        with pytest.raises(BadValueError, match="key='c0' at "):
            rt.stream(start)
        return
    rt.snapshot("WhatsAppCustomer")
    rt.stream(start)
    tags_at = rt.column_names("WhatsAppCustomer").index("tags")
    for schema in ("snap", "binl"):
        got = [row[tags_at] for row in rt.read_back(schema, "WhatsAppCustomer")]
        assert got == [expected for _, expected, _ in TAG_CASES]
    assert sorted({(c.key, c.reason) for c in rt.coercions}) == [
        ("c0", "tags_non_string"), ("c1", "tags_not_array"), ("c2", "tags_not_array")]
