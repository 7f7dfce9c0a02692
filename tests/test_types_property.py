"""Property-based round trips (hypothesis) for the numeric, string and JSON families.

Each example writes random rows into MySQL, carries them through the snapshot
path and the binlog path, and compares what PostgreSQL holds with the value
the source held.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.harness import SourceDb, TargetDb
from tests.support.roundtrip import Roundtrip

# Run again with each other way of decoding the binlog (tests/conftest.py).
pytestmark = pytest.mark.decoders("library")

EXAMPLES = settings(max_examples=25, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


class Family:
    """A table for one type family, reset between hypothesis examples."""

    def __init__(self, source: SourceDb, target: TargetDb, ddl: str) -> None:
        source.execute(f"CREATE TABLE fam (id INT PRIMARY KEY, {ddl})")
        self.source = source
        self.target = target
        self.rt = Roundtrip(source, target, ["fam"])
        self.columns = self.rt.column_names("fam")[1:]

    def carry(self, rows: list[tuple]) -> dict[str, list[tuple]]:
        self.source.execute("DELETE FROM fam")
        with self.target.connect() as pg:
            pg.execute("TRUNCATE snap.fam, binl.fam")
        start = self.rt.position()
        marks = ", ".join(["%s"] * (len(self.columns) + 1))
        with self.source.connect() as conn, conn.cursor() as cur:
            cur.executemany(f"INSERT INTO fam VALUES ({marks})",
                            [(i, *row) for i, row in enumerate(rows)])
        self.rt.snapshot("fam")
        self.rt.stream(start)
        return {schema: self.rt.read_back(schema, "fam") for schema in ("snap", "binl")}


@pytest.fixture
def family(source_db: SourceDb, target_db: TargetDb) -> Iterator[Any]:
    """Hypothesis runs many examples in one test call: build the table once, reuse it."""
    made: dict[str, Family] = {}

    def make(ddl: str) -> Family:
        if ddl not in made:
            made[ddl] = Family(source_db, target_db, ddl)
        return made[ddl]
    yield make


def float32(value: float) -> bytes:
    return struct.pack("<f", value)


MAX_D65 = Decimal("9" * 35 + "." + "9" * 30)
INT_RANGES = [(-(2**7), 2**7 - 1), (0, 2**8 - 1), (-(2**15), 2**15 - 1), (0, 2**16 - 1),
              (-(2**23), 2**23 - 1), (0, 2**24 - 1), (-(2**31), 2**31 - 1), (0, 2**32 - 1),
              (-(2**63), 2**63 - 1), (0, 2**64 - 1)]
NUMERIC_DDL = ("ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, "
               "mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, "
               "biu BIGINT UNSIGNED, d DECIMAL(65,30), d2 DECIMAL(10,2), f FLOAT, db DOUBLE")
numeric_row = st.tuples(
    *[st.one_of(st.none(), st.integers(lo, hi)) for lo, hi in INT_RANGES],
    st.one_of(st.none(), st.decimals(min_value=-MAX_D65, max_value=MAX_D65, places=30,
                                     allow_nan=False, allow_infinity=False)
              # hypothesis may round a bound past DECIMAL(65,30) when it applies `places`
              .filter(lambda d: abs(d) <= MAX_D65)),
    st.one_of(st.none(), st.decimals(min_value=Decimal("-99999999.99"),
                                     max_value=Decimal("99999999.99"), places=2)),
    st.one_of(st.none(), st.floats(width=32, allow_nan=False, allow_infinity=False)),
    st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
)


@EXAMPLES
@given(rows=st.lists(numeric_row, min_size=1, max_size=8))
def test_numeric_family(family: Any, rows: list[tuple]) -> None:
    fam = family(NUMERIC_DDL)
    for schema, got in fam.carry(rows).items():
        for sent, back in zip(rows, got, strict=True):
            *exact, f, db = sent
            *exact_back, f_back, db_back = back[1:]
            assert exact_back == exact, schema
            # MySQL stores -0.0 as 0 in FLOAT/DOUBLE columns; compare values, not zero signs.
            assert (f is None and f_back is None) or float32(f_back + 0.0) == float32(f + 0.0)
            assert db_back == db, schema


text_chars = st.characters(blacklist_categories=("Cs",))  # MySQL utf8mb4 cannot hold surrogates
STRING_DDL = ("c CHAR(20), vc VARCHAR(191), t TEXT, lt LONGTEXT, vb VARBINARY(255), "
              "bl BLOB")
string_row = st.tuples(
    st.one_of(st.none(), st.text(text_chars, max_size=20)),
    st.one_of(st.none(), st.text(text_chars, max_size=191)),
    st.one_of(st.none(), st.text(text_chars, max_size=300)),
    st.one_of(st.none(), st.text(text_chars, max_size=2000)),
    st.one_of(st.none(), st.binary(max_size=255)),
    st.one_of(st.none(), st.binary(max_size=3000)),
)


def _expected_text(value: str | None, is_char: bool = False) -> str | None:
    if value is None:
        return None
    value = value.replace("\x00", "\ufffd")  # the documented NUL default
    return value.rstrip(" ") if is_char else value  # CHAR drops trailing spaces in MySQL


@EXAMPLES
@given(rows=st.lists(string_row, min_size=1, max_size=6))
def test_string_family(family: Any, rows: list[tuple]) -> None:
    fam = family(STRING_DDL)
    for schema, got in fam.carry(rows).items():
        for sent, back in zip(rows, got, strict=True):
            c, vc, t, lt, vb, bl = sent
            expected = (_expected_text(c, is_char=True), _expected_text(vc), _expected_text(t),
                        _expected_text(lt), vb, bl)
            assert back[1:] == expected, schema


json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(text_chars))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(text_chars, max_size=8), children, max_size=4),
    max_leaves=25,
)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


@EXAMPLES
@given(docs=st.lists(json_values, min_size=1, max_size=6))
def test_json_family(family: Any, docs: list[Any]) -> None:
    fam = family("j JSON")
    texts = [json.dumps(doc, ensure_ascii=bool(i % 2)) for i, doc in enumerate(docs)]
    results = fam.carry([(text,) for text in texts])
    with fam.target.connect() as pg:
        expected = [pg.execute("SELECT %s::jsonb", (json.dumps(_clean(doc)),)).fetchone()[0]
                    for doc in docs]
        for schema in ("snap", "binl"):
            kinds = pg.execute(f"SELECT jsonb_typeof(j) FROM {schema}.fam ORDER BY id").fetchall()
            # JSON null stays a JSON null, never SQL NULL.
            assert all(kind is not None for (kind,) in kinds)
    for schema, got in results.items():
        assert [row[1] for row in got] == expected, schema
