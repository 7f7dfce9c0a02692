"""Which way to send a streaming batch to PostgreSQL: measured, not guessed.

The same converted rows of the real tables are upserted three ways, each inside a
transaction that is rolled back (so every repetition starts from the same table):

  executemany   one INSERT ... ON CONFLICT per row, all sent in pipeline mode
                (what `wacdc run` does);
  unnest        one INSERT ... SELECT FROM unnest(array per column) ON CONFLICT per run;
  copy-merge    COPY into a temporary table, then one INSERT ... SELECT ... ON CONFLICT.

Two batch shapes, because streaming sees both: long runs (a campaign burst: thousands
of consecutive changes to one table) and short runs (app transactions touching a
message, then a session, then a customer...: consecutive changes alternate tables).
The set-based methods must also fold repeated keys inside a run (ON CONFLICT cannot
touch a row twice in one statement); that cost is included.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from wacdc.config import load_settings
from wacdc.schema.convert import BadValuePolicy
from wacdc.sink.apply import ImagePlan, TableSink
from wacdc.source.catalog import plan_target
from wacdc.source.connection import connect
from wacdc.source.read_view import read_converted

Run = tuple[str, list[tuple]]  # (table, rows) of consecutive upserts to one table
Method = Callable[[psycopg.Connection, list[Run]], None]


class Tables:
    """Per table: the production upsert plan and what the set-based methods need."""

    def __init__(self, conn: psycopg.Connection, sinks: dict[str, TableSink]) -> None:
        self.plans: dict[str, ImagePlan] = {}
        self.names: dict[str, list[str]] = {}
        self.types: dict[str, list[str]] = {}
        self.keys: dict[str, tuple[int, ...]] = {}
        self.unique: dict[str, tuple[int, ...]] = {}  # key and unique-index columns
        self.qualified: dict[str, sql.Composed] = {}
        for name, sink in sinks.items():
            columns = [c.name for c in sink.table.columns if c.source is not None]
            plan = sink.plan(tuple(columns))
            self.plans[name] = plan
            self.names[name] = columns
            self.keys[name] = plan.converter.key_positions
            unique = {c for i in sink.table.source.indexes if i.unique for c in i.columns}
            self.unique[name] = tuple(i for i, c in enumerate(columns) if c in unique)
            self.qualified[name] = sql.SQL("{}.{}").format(sql.Identifier(sink.table.schema),
                                                          sql.Identifier(name))
            types = dict(conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (f'{sink.table.schema}."{name}"',)).fetchall())
            self.types[name] = [types[c] for c in columns]

    def on_conflict(self, table: str) -> sql.Composed:
        key = [self.names[table][i] for i in self.keys[table]]
        rest = [c for c in self.names[table] if c not in key]
        return sql.SQL("ON CONFLICT ({}) DO UPDATE SET {}").format(
            sql.SQL(", ").join(map(sql.Identifier, key)),
            sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                               for c in rest))


def last_per_key(rows: list[tuple], key: tuple[int, ...]) -> list[tuple]:
    folded: dict[tuple, tuple] = {}
    for row in rows:
        folded[tuple(row[i] for i in key)] = row
    return list(folded.values())


def executemany(tables: Tables) -> Method:
    def apply(conn: psycopg.Connection, runs: list[Run]) -> None:
        with conn.pipeline(), conn.cursor() as cur:
            for table, rows in runs:
                cur.executemany(tables.plans[table].upsert, rows)
    return apply


def unnest(tables: Tables) -> Method:
    statements = {}
    for t in tables.names:
        # Arrays of arrays do not unnest row by row: such columns travel as text.
        params = [sql.SQL("%s::text[]" if ty.endswith("[]") else "%s::{}[]").format(
            sql.SQL(ty)) for ty in tables.types[t]]
        picks = [sql.SQL("{}::{}").format(sql.Identifier(f"c{i}"), sql.SQL(ty))
                 if ty.endswith("[]") else sql.Identifier(f"c{i}")
                 for i, ty in enumerate(tables.types[t])]
        statements[t] = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS u({}) {}").format(
            tables.qualified[t], sql.SQL(", ").join(map(sql.Identifier, tables.names[t])),
            sql.SQL(", ").join(picks), sql.SQL(", ").join(params),
            sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(len(params))),
            tables.on_conflict(t))

    def apply(conn: psycopg.Connection, runs: list[Run]) -> None:
        with conn.pipeline(), conn.cursor() as cur:
            for table, rows in runs:
                rows = last_per_key(rows, tables.keys[table])
                columns = [list(col) for col in zip(*rows, strict=True)]
                for i, ty in enumerate(tables.types[table]):
                    if ty.endswith("[]"):
                        columns[i] = [_array_text(v) for v in columns[i]]
                cur.execute(statements[table], columns)
    return apply


def _array_text(value: Any) -> str | None:
    if value is None:
        return None
    inner = ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                     for v in value)
    return "{" + inner + "}"


def copy_merge(tables: Tables) -> Method:
    def apply(conn: psycopg.Connection, runs: list[Run]) -> None:
        with conn.cursor() as cur:
            for table, rows in runs:
                stage = sql.Identifier(f"stage_{table}")
                cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) "
                                    "ON COMMIT DELETE ROWS").format(stage,
                                                                    tables.qualified[table]))
                columns = sql.SQL(", ").join(map(sql.Identifier, tables.names[table]))
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, columns)) as cp:
                    for row in last_per_key(rows, tables.keys[table]):
                        cp.write_row(row)
                cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} {}").format(
                    tables.qualified[table], columns, columns, stage,
                    tables.on_conflict(table)))
                cur.execute(sql.SQL("TRUNCATE {}").format(stage))
    return apply


def shapes(rows: dict[str, list[tuple]], tables: Tables, size: int, rng: random.Random
           ) -> dict[str, list[Run]]:
    """Half updates of existing rows, half inserts of new keys, in both run shapes."""
    def changed(table: str, row: tuple, n: int) -> tuple:
        if n % 2:  # an insert: a new key
            values = list(row)
            for i in tables.unique[table]:
                old = values[i]
                if old is None:
                    continue
                values[i] = old + 10**12 + n if isinstance(old, int) else f"bench-{n}-{old}"
            return tuple(values)
        return row  # an update: the same key, all columns rewritten
    big = max(rows, key=lambda t: len(rows[t]))
    long = [(big, [changed(big, rng.choice(rows[big]), n) for n in range(size)])]
    names = sorted(rows)
    short: list[Run] = []
    for n in range(size // 2):
        table = names[n % len(names)]
        short.append((table, [changed(table, rng.choice(rows[table]), 2 * n + k)
                              for k in range(2)]))
    return {"long runs (one table)": long, "short runs (2 rows, tables alternate)": short}


def measure(conn: psycopg.Connection, method: Method, runs: list[Run], reps: int) -> float:
    rows = sum(len(r) for _, r in runs)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        with conn.transaction(force_rollback=True):
            method(conn, runs)
        times.append(time.perf_counter() - started)
    return rows / statistics.median(times)


def run(source_url: str, target_url: str, tables: Sequence[str], size: int = 5000,
        reps: int = 5) -> dict[str, dict[str, float]]:
    """rows/s per batch shape and method, medians of `reps`."""
    settings = load_settings(None, source_url=source_url, target_url=target_url,
                             tables=list(tables))
    _, targets = plan_target(settings)
    policy = BadValuePolicy(strict=True)
    sinks = {t.name: TableSink(t, policy, None) for t in targets}
    rng = random.Random(7)
    with psycopg.connect(target_url, autocommit=True) as conn:
        meta = Tables(conn, sinks)
        rows: dict[str, list[tuple]] = {}
        with connect(settings.source(), text_values=True) as my:
            for name, sink in sinks.items():
                reader = read_converted(my, sink.table.source, meta.plans[name].converter)
                rows[name] = [row for row, _ in zip(reader, range(size), strict=False)]
        methods = {"executemany (pipeline)": executemany(meta), "unnest": unnest(meta),
                   "COPY + merge": copy_merge(meta)}
        results: dict[str, dict[str, float]] = {}
        for shape, runs in shapes(rows, meta, size, rng).items():
            results[shape] = {}
            for name, method in methods.items():
                measure(conn, method, runs, 1)  # warm up: plans, temp tables, caches
                results[shape][name] = measure(conn, method, runs, reps)
                print(f"apply {shape}: {name} {results[shape][name]:,.0f} rows/s", flush=True)
    return results
