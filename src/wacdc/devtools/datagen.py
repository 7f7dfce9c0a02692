"""Realistic rows for the WhatsApp tables, from the data profile (config/whatsapp_profile.json).

Generic: each column's generator is planned from the source column type and the
profile's statistics for it (null rate, lengths, value distributions, JSON top-level
keys, sizes and depth, date ranges). Unique columns get a row-number suffix, and
foreign keys of the profile point at ids the parent table really has (ids are
derived from the row number, so nothing is kept in memory). Scales to millions
of rows: rows stream out in batches. Used by tests (small), the demo and `make bench`.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql

from wacdc.config import parse_url
from wacdc.schema.model import Column, Table
from wacdc.schema.profile import Profile, config_dir, load_profile
from wacdc.source.connection import connect, one_value
from wacdc.source.introspect import introspect_tables
from wacdc.source.sql import quote_ident

_NAMESPACE = uuid.UUID("6f1b7a52-3c1e-4a8e-9d7c-2b1f0e3a4c5d")
_WORDS = ("namaste", "booking", "Goa", "Kerala", "package", "confirm", "hotel", "flight",
          "itinerary", "payment", "thank you", "tour", "beach", "Manali", "visa", "sightseeing")
_EMOJI = ("😀", "🏖️", "✈️", "🙏", "👍", "🌴", "📍", "💳")
_DEFAULT_RANGE = (dt.datetime(2025, 1, 1), dt.datetime(2025, 10, 28))

Gen = Callable[[random.Random, int], Any]


def row_id(table: str, n: int) -> str:
    """The id of row n of a table: a UUID, stable, so children can point at parents."""
    return str(uuid.uuid5(_NAMESPACE, f"{table}:{n}"))


def load_data_profile(path: Path | None = None) -> dict:
    return json.loads((path or config_dir() / "whatsapp_profile.json").read_text())


@dataclass
class _Stats:
    raw: dict

    def get(self, *keys: str, default: Any = None) -> Any:
        node: Any = self.raw
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


def _length(rng: random.Random, stats: _Stats, default: tuple[int, int, int]) -> int:
    low, mid, high = (stats.get("length_chars", k, default=d)
                      for k, d in zip(("min", "median", "max"), default, strict=True))
    return max(low, min(high, int(rng.triangular(low, high, mid))))


def _text(rng: random.Random, length: int, fancy: bool) -> str:
    parts: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(_WORDS)
        if fancy and rng.random() < 0.08:
            word = rng.choice(_EMOJI) if rng.random() < 0.7 else "\n"
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts)[:length]


def _json_value(rng: random.Random, depth: int, budget: int) -> Any:
    if depth <= 0 or budget < 40:
        return rng.choice([_text(rng, rng.randint(3, 24), False), rng.randint(0, 10**6),
                           True, None, round(rng.random() * 1000, 2)])
    if rng.random() < 0.3:
        return [_json_value(rng, depth - 1, budget // 3) for _ in range(rng.randint(1, 3))]
    keys = rng.sample(("id", "type", "text", "body", "status", "timestamp", "wa_id", "name",
                       "value", "components", "parameters", "url"), rng.randint(1, 4))
    return {k: _json_value(rng, depth - 1, budget // len(keys)) for k in keys}


def _json_gen(stats: _Stats) -> Gen:
    keys = stats.get("object_top_level_keys", default={}) or {}
    total = max(keys.values(), default=1)
    depth = int(stats.get("nesting_depth", "median", default=2))
    size = int(stats.get("serialized_bytes_compact", "median", default=200))
    top = stats.get("top_level_types", default={"object": 1}) or {"object": 1}
    if stats.get("array_element_types"):  # JSON arrays of strings (Customer.tags)
        length = int(stats.get("array_length", "max", default=1))
        return lambda rng, n: json.dumps(
            [rng.choice(("vip", "goa", "lead", "kerala", "family", "honeymoon"))
             for _ in range(rng.randint(1, max(1, length)))])

    def gen(rng: random.Random, n: int) -> str:
        if "object" not in top:
            return json.dumps([_json_value(rng, depth - 1, size) for _ in range(2)])
        chosen = [k for k, c in keys.items() if rng.random() < c / total] or list(keys)[:1] \
            or ["data"]
        budget = max(40, size // max(1, len(chosen)))
        doc = {k: _json_value(rng, max(1, depth - 1), budget) for k in chosen}
        return json.dumps(doc, ensure_ascii=False)
    return gen


def _datetime_gen(stats: _Stats, fsp: int) -> Gen:
    def parse(text: str | None, fallback: dt.datetime) -> dt.datetime:
        if not text:
            return fallback
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)

    low = parse(stats.get("range", "min"), _DEFAULT_RANGE[0])
    high = parse(stats.get("range", "max"), _DEFAULT_RANGE[1])
    if high <= low:
        high = low + dt.timedelta(days=1)
    span = (high - low).total_seconds()
    quantum = 10 ** (6 - fsp)

    def gen(rng: random.Random, n: int) -> dt.datetime:
        micro = int(rng.random() * span * 1_000_000) // quantum * quantum
        return low + dt.timedelta(microseconds=micro)
    return gen


def _choice_gen(values: dict[str, int], cast: Callable[[str], Any] = str) -> Gen:
    labels = [cast(v) for v in values]
    weights = list(values.values())
    return lambda rng, n: rng.choices(labels, weights)[0]


def _string_gen(table: str, column: Column, stats: _Stats) -> Gen:
    name = column.name
    if stats.get("uuid_shaped_share", default=0) > 0.5 or name == "id" or name.endswith("Id"):
        return lambda rng, n: str(uuid.UUID(int=rng.getrandbits(128), version=4))
    shape = stats.get("shape", default={}) or {}
    if shape.get("whatsapp_prefix_share", 0) > 0.5:
        return lambda rng, n: f"whatsapp:+91{rng.randint(7_000_000_000, 9_999_999_999)}"
    if shape.get("leading_plus_share", 0) > 0.5 or "phone" in name.lower():
        return lambda rng, n: f"+91{rng.randint(7_000_000_000, 9_999_999_999)}"
    fancy = bool(stats.get("rows_with", "astral_4byte_utf8", default=0))
    limit = column.char_length or 65535
    default = (4, 16, min(60, limit))

    def gen(rng: random.Random, n: int) -> str:
        return _text(rng, min(limit, _length(rng, stats, default)), fancy)
    return gen


def _column_gen(table: Table, column: Column, stats: _Stats) -> Gen:
    values = stats.get("values")
    kind = column.kind
    if kind == "json":
        return _json_gen(stats)
    if column.values and kind == "enum":
        return _choice_gen(values) if values else (lambda rng, n: rng.choice(column.values))
    if kind == "boolean":
        if values:
            return _choice_gen(values, lambda v: 1 if v in ("true", "1", "True") else 0)
        return lambda rng, n: rng.random() < 0.7
    if kind in ("datetime", "timestamp"):
        return _datetime_gen(stats, column.fsp)
    if kind == "decimal":
        scale = column.scale or 0
        top = 10 ** min(6, (column.precision or 10) - scale) - 1
        return lambda rng, n: Decimal(rng.randint(0, top * 10**scale)).scaleb(-scale)
    if kind in ("int", "smallint", "tinyint", "mediumint", "bigint"):
        if values:
            return _choice_gen(values, int)
        return lambda rng, n: rng.randint(0, 100)
    if kind in ("char", "varchar", "text", "tinytext", "mediumtext", "longtext"):
        return _choice_gen(values) if values else _string_gen(table.name, column, stats)
    raise ValueError(f"datagen: no generator for {table.name}.{column.name} ({column.kind})")


class TableGenerator:
    """Rows for one table, planned once from its columns and the profile's statistics."""

    def __init__(self, table: Table, profile_stats: dict, profile: Profile | None = None,
                 parent_counts: dict[str, int] | None = None) -> None:
        self.table = table
        stats = profile_stats.get("tables", {}).get(table.name, {}).get("columns", {})
        unique_cols = {c for i in table.indexes if i.unique and not i.primary for c in i.columns}
        fk_parents = {}
        for fk in (profile.foreign_keys if profile else []):
            if fk.table == table.name and len(fk.columns) == 1:
                fk_parents[fk.columns[0]] = fk.references
        self.columns = [c for c in table.columns if c.generated is None]
        plan: list[tuple[Gen, float]] = []
        for column in self.columns:
            col_stats = _Stats(stats.get(column.name, {}))
            null_rate = col_stats.get("null_rate", default=0.1) if column.nullable else 0.0
            gen: Gen
            if column.name in (table.replica_key or ()) and column.data_type in ("varchar",
                                                                                 "char"):
                gen = _id_gen(table.name)
            elif column.name in fk_parents:
                gen = _fk_gen(fk_parents[column.name], (parent_counts or {}), column.name in
                              unique_cols)
            elif column.name in unique_cols:
                gen = _unique(_column_gen(table, column, col_stats), column)
            else:
                gen = _column_gen(table, column, col_stats)
            plan.append((gen, null_rate))
        self.plan = plan

    def rows(self, count: int, seed: int = 1, start: int = 0,
             pool: int = 0) -> Iterator[tuple]:
        """Rows start..start+count. With `pool`, bulky text and JSON values are drawn from
        that many pre-generated ones (same distributions; millions of rows in minutes)."""
        rng = random.Random(f"{self.table.name}:{seed}:{start}")
        plan = self.plan
        if pool:
            plan = [(_pooled(gen, rng, pool) if column.kind in _BULKY else gen, rate)
                    for (gen, rate), column in zip(self.plan, self.columns, strict=True)]
        for n in range(start, start + count):
            yield tuple(None if rate and rng.random() < rate else gen(rng, n)
                        for gen, rate in plan)

    def insert_sql(self) -> str:
        cols = ", ".join(quote_ident(c.name) for c in self.columns)
        marks = ", ".join(["%s"] * len(self.columns))
        return f"INSERT INTO {quote_ident(self.table.name)} ({cols}) VALUES ({marks})"


_BULKY = frozenset({"json", "text", "mediumtext", "longtext"})


def _pooled(gen: Gen, rng: random.Random, size: int) -> Gen:
    values = [gen(rng, n) for n in range(size)]
    return lambda rng, n: values[rng.randrange(size)]


def _id_gen(table: str) -> Gen:
    return lambda rng, n: row_id(table, n)


def _fk_gen(parent: str, counts: dict[str, int], unique: bool) -> Gen:
    size = counts.get(parent, 0)
    if size <= 0:
        return lambda rng, n: row_id(parent, n)  # dangling but well-formed (empty parent)
    if unique:  # 1:1 relations: child n points at parent n (wraps past the parent count)
        return lambda rng, n: row_id(parent, n % size) if n < size else row_id(parent, n)
    return lambda rng, n: row_id(parent, rng.randrange(size))


def _unique(inner: Gen, column: Column) -> Gen:
    if column.kind in ("int", "bigint", "smallint", "mediumint"):
        return lambda rng, n: n
    limit = column.char_length or 191

    def gen(rng: random.Random, n: int) -> str:
        suffix = f"-{n}"
        return str(inner(rng, n))[: limit - len(suffix)] + suffix
    return gen


def default_counts(total_messages: int, profile_stats: dict) -> dict[str, int]:
    """Row counts for every table, scaled from the profile's proportions to the message count."""
    counts = {name: t.get("row_count", 0) for name, t in profile_stats["tables"].items()}
    base = max(1, counts.get("WhatsAppMessage", 1))
    scale = total_messages / base
    # Proportions of the export, but no table larger than the message table (the export's
    # 685 customers to 63 messages would otherwise dwarf the table being measured).
    scaled = {name: min(total_messages, round((count or 2) * scale))
              for name, count in counts.items()}
    scaled["WhatsAppMessage"] = total_messages
    return scaled


def populate(conn: pymysql.connections.Connection, tables: list[Table], counts: dict[str, int],
             profile: Profile | None = None, seed: int = 1, batch: int = 1000,
             progress: Callable[[str, int], None] | None = None,
             pool: int = 0) -> dict[str, int]:
    """Insert generated rows, parents first; returns rows written per table."""
    stats = load_data_profile()
    written: dict[str, int] = {}
    for table in tables:
        count = counts.get(table.name, 0)
        gen = TableGenerator(table, stats, profile, counts)
        sql = gen.insert_sql()
        done = 0
        with conn.cursor() as cur:
            buffer: list[tuple] = []
            for row in gen.rows(count, seed, pool=pool):
                buffer.append(row)
                if len(buffer) >= batch:
                    cur.executemany(sql, buffer)
                    conn.commit()
                    done += len(buffer)
                    buffer.clear()
                    if progress:
                        progress(table.name, done)
            if buffer:
                cur.executemany(sql, buffer)
                conn.commit()
                done += len(buffer)
        written[table.name] = done
    return written


SEED_ROWS = 20_000
BIG_TABLE = "WhatsAppMessage"


def create_whatsapp_database(url_text: str, messages: int) -> dict[str, int]:
    """(Re)create the source database with the 19 WhatsApp tables and fill it.

    The other tables follow the data profile's proportions (capped at messages / 10
    rows each). WhatsAppMessage gets up to 20,000 generated rows, then is doubled
    server-side (INSERT ... SELECT with fresh UUID keys) up to `messages`: the same
    value distributions, millions of rows in minutes. Returns rows per table.
    """
    url = parse_url(url_text, "mysql")
    ddl = (config_dir() / "whatsapp_mysql.sql").read_text()
    with connect(url.with_database(""), database="") as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(url.database)}")
        cur.execute(f"CREATE DATABASE {quote_ident(url.database)} CHARACTER SET utf8mb4 "
                    "COLLATE utf8mb4_unicode_ci")
    profile = load_profile("prisma")
    with connect(url, autocommit=False) as conn:
        with conn.cursor() as cur:
            for statement in sql_statements(ddl):
                cur.execute(statement)
        tables = introspect_tables(conn, url.database, profile.tables)
        counts = {name: min(n, max(10, messages // 10))
                  for name, n in default_counts(messages, load_data_profile()).items()}
        counts[BIG_TABLE] = min(messages, SEED_ROWS)
        written = populate(conn, [tables[n] for n in profile.tables], counts, profile,
                           pool=1000, batch=500)
        written[BIG_TABLE] = _double_until(conn, tables[BIG_TABLE], messages)
    return written


def _double_until(conn: pymysql.connections.Connection, table: Table, target: int) -> int:
    name = quote_ident(table.name)
    cols = [quote_ident(c.name) for c in table.columns]
    select = ", ".join("UUID()" if c.name == "id" else quote_ident(c.name)
                       for c in table.columns)
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {name}")
        have = one_value(cur)
        while have < target:
            batch = min(have, target - have, SEED_ROWS)  # bounded temp table per statement
            cur.execute(f"INSERT INTO {name} ({', '.join(cols)}) SELECT {select} FROM {name} "
                        f"LIMIT {batch}")
            conn.commit()
            have += batch
    return have


def sql_statements(ddl: str) -> list[str]:
    """A DDL script split into statements (no `;` inside strings in our files)."""
    lines = [ln for ln in ddl.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
