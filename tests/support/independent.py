"""Row-by-row comparison of source and target that shares no code with wacdc.

tests/compare.py runs wacdc's own converters over the source rows; a converter bug would
then hide on both sides. This one reads MySQL with PyMySQL's stock conversions and
PostgreSQL with psycopg's, and relates them by the PostgreSQL column type alone, with
the documented conversions written out here: tinyint(1) -> boolean, JSON -> jsonb
(compared as parsed documents: JSON null is not SQL NULL; a number keeps its written
form, so 12.50 is not 12.5, except where that form is not kept: Oracle MySQL stores a
JSON number as a double or an integer and prints 12.5, and MySQL prints big doubles with
an exponent, so there the values are compared, exactly, as decimals),
a JSON array -> text[] (SQL NULL and JSON null -> '{}'), TIMESTAMP -> timestamptz (UTC),
BIT(1) -> boolean.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import psycopg
import pymysql

from tests.support.harness import SourceDb, TargetDb


class JsonNumber:
    """A JSON number as written: equal to another when the texts are equal, or, when
    either side does not keep the written form (`by_value`: read from Oracle MySQL's
    binary JSON) or writes an exponent, when the exact decimal values are."""

    __slots__ = ("by_value", "text")

    def __init__(self, text: str, by_value: bool = False) -> None:
        self.text = text
        self.by_value = by_value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JsonNumber):
            return NotImplemented
        if self.by_value or other.by_value or "e" in (self.text + other.text).lower():
            return Decimal(self.text) == Decimal(other.text)
        return self.text == other.text

    def __hash__(self) -> int:
        return hash(Decimal(self.text))

    def __repr__(self) -> str:
        return self.text


class _JsonNull:
    """JSON's null inside a document or as the whole value, never equal to SQL NULL."""

    def __repr__(self) -> str:
        return "JSON null"


JSON_NULL = _JsonNull()


def _json(text: str | bytes | None, by_value: bool = False) -> Any:
    if text is None:
        return None  # SQL NULL
    if isinstance(text, bytes):
        text = text.decode()

    def number(written: str) -> JsonNumber:
        return JsonNumber(written, by_value)

    parsed = json.loads(text, parse_float=number, parse_int=number)
    return JSON_NULL if parsed is None else parsed


def _source_value(value: Any, pg_type: str, binary_json: bool = False) -> Any:
    """A PyMySQL value in the form psycopg gives for that PostgreSQL column type.
    `binary_json`: the source is Oracle MySQL, whose JSON does not keep a number's form."""
    if pg_type == "jsonb":
        return _json(value, binary_json)
    if pg_type == "ARRAY":
        parsed = _json(value)
        return [] if parsed is None or parsed is JSON_NULL else _plain(parsed)
    if value is None:
        return None
    if pg_type == "boolean":
        if isinstance(value, bytes):  # BIT(1)
            return value != b"\x00"
        return bool(value)
    if pg_type == "timestamp with time zone":
        return value.replace(tzinfo=dt.UTC)
    if pg_type == "bytea":
        return bytes(value)
    return value


def _plain(values: list) -> list:
    """A JSON array of tags as the text[] psycopg reads: numbers as their text."""
    return [v.text if isinstance(v, JsonNumber) else v for v in values]


def _target_value(value: Any, pg_type: str) -> Any:
    if pg_type == "jsonb":
        return _json(value)  # selected as text: numbers stay exact
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    return value


def independent_differences(source: SourceDb, target: TargetDb, tables: list[str],
                            schema: str = "public", limit: int = 5,
                            mysql_suffix: str = "") -> dict[str, list[str]]:
    """{table: [difference, ...]} for each table that differs; {} when all are identical.
    `mysql_suffix`: MySQL's tables carry it (after a fence: `__wacdc_retired`)."""
    found: dict[str, list[str]] = {}
    with psycopg.connect(target.url) as pg, \
            pymysql.connect(**_mysql_args(source)) as my:
        with my.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            cur.execute("SELECT VERSION()")
            binary_json = "mariadb" not in str(cur.fetchone()[0]).lower()
        for table in tables:
            diffs = _table_differences(my, pg, schema, table, limit, mysql_suffix,
                                       binary_json)
            if diffs:
                found[table] = diffs
    return found


def _mysql_args(source: SourceDb) -> dict[str, Any]:
    from urllib.parse import unquote, urlsplit

    url = urlsplit(source.url)
    return {"host": url.hostname, "port": url.port, "user": unquote(url.username or ""),
            "password": unquote(url.password or ""), "database": url.path.lstrip("/"),
            "charset": "utf8mb4"}


def _table_differences(my: pymysql.connections.Connection, pg: psycopg.Connection,
                       schema: str, table: str, limit: int, suffix: str = "",
                       binary_json: bool = False) -> list[str]:
    with my.cursor() as cur:
        cur.execute(f"SELECT * FROM `{table}{suffix}`")
        names = [d[0] for d in cur.description]
        source_rows = cur.fetchall()
    types = dict(pg.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s", (schema, table)).fetchall())
    missing = [n for n in names if n not in types]
    if missing:
        return [f"target lacks columns {missing}"]
    key = [r[0] for r in pg.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey, a.attnum)", (f'"{schema}"."{table}"',)).fetchall()]
    select = ", ".join(f'"{n}"::text' if types[n] == "jsonb" else f'"{n}"' for n in names)
    target_rows = pg.execute(f'SELECT {select} FROM "{schema}"."{table}"').fetchall()
    positions = [names.index(k) for k in key]

    def keyed(rows: list, convert: Any) -> dict[tuple, list]:
        out = {}
        for row in rows:
            values = [convert(v, types[n]) for v, n in zip(row, names, strict=True)]
            out[tuple(values[p] for p in positions)] = values
        return out

    def source_value(value: Any, pg_type: str) -> Any:
        return _source_value(value, pg_type, binary_json)

    want, have = keyed(list(source_rows), source_value), keyed(target_rows, _target_value)
    diffs = [f"only in MySQL: {k}" for k in want.keys() - have.keys()]
    diffs += [f"only in PostgreSQL: {k}" for k in have.keys() - want.keys()]
    for k in want.keys() & have.keys():
        for name, a, b in zip(names, want[k], have[k], strict=True):
            if a != b:
                diffs.append(f"{k} {name}: MySQL {a!r} != PostgreSQL {b!r}")
    return sorted(diffs)[:limit] + ([f"... {len(diffs) - limit} more"]
                                     if len(diffs) > limit else [])
