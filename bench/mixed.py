"""The mixed burst over the 19 tables (part of `make bench`, issue 18's streaming target).

A source filled by `bench.generate` gets a burst of N row changes committed at full speed
while wacdc is stopped: transactions of ~100 changes over four tables each (inserts of new
rows from the data generator, updates rewriting a row's ordinary columns with freshly
generated values, deletes of rows the burst inserted), WhatsAppMessage and
WhatsAppCampaignRecipient weighted as the app writes them, every table touched. Then:

  * wacdc: `wacdc run --exit-when-caught-up`, timed over the whole process (start to
    exit, as an operator sees it), then PostgreSQL compared with MySQL table by table;
  * mysql-replication's bare decode of the very same binlog range, in its own process
    without any of wacdc's patches: BinLogStreamReader over the row events of the
    database, every row's values read, timed from the first event to the last;
  * wacdc's compiled decoder alone over the same range, for the breakdown.

Run alone: `python bench/mixed.py --flavour mysql --changes 150000`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
for entry in (str(REPO / "src"), str(REPO)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from bench import wacdc_process  # noqa: E402
from wacdc.config import parse_url  # noqa: E402
from wacdc.devtools.datagen import TableGenerator, load_data_profile, row_id  # noqa: E402
from wacdc.events import BinlogPosition  # noqa: E402
from wacdc.schema.profile import load_profile  # noqa: E402
from wacdc.source.binlog import open_stream, row_changes  # noqa: E402
from wacdc.source.connection import connect  # noqa: E402
from wacdc.source.introspect import introspect_tables  # noqa: E402
from wacdc.source.position import current_position  # noqa: E402
from wacdc.source.sql import quote_ident  # noqa: E402

WEIGHTS = {"WhatsAppMessage": 6.0, "WhatsAppCampaignRecipient": 3.0,
           "WhatsAppSession": 1.5, "WhatsAppCustomer": 1.5, "WhatsAppAnalyticsEvent": 1.5}
PER_TABLE = 25  # changes per table per transaction: 10 inserts, 10 updates, 5 deletes


class _TableWork:
    """What the burst does to one table: its generator, the SQL, the rows it inserted."""

    def __init__(self, table: Any, stats: dict, profile: Any, counts: dict[str, int]) -> None:
        self.name = table.name
        self.gen = TableGenerator(table, stats, profile, counts)
        self.existing = counts.get(table.name, 0)
        self.next_n = self.existing + 1_000_000  # new keys never meet the snapshot's
        unique = {c for i in table.indexes if i.unique for c in i.columns}
        fk_cols = {c for fk in profile.foreign_keys if fk.table == table.name
                   for c in fk.columns}
        one_to_one = {c for c in fk_cols if c in unique}
        self.can_insert = not one_to_one  # a new 1:1 child would have no parent of its own
        names = [c.name for c in self.gen.columns]
        self.update_cols = [i for i, n in enumerate(names)
                            if n not in (table.replica_key or ()) and n not in unique
                            and n not in fk_cols]
        cols = ", ".join(quote_ident(names[i]) for i in self.update_cols)
        self.update_sql = (f"UPDATE {quote_ident(table.name)} SET "
                           + ", ".join(f"{quote_ident(names[i])} = %s" for i in self.update_cols)
                           + " WHERE id = %s") if cols else ""
        self.insert_sql = self.gen.insert_sql().replace("INSERT INTO", "INSERT IGNORE INTO", 1)
        self.inserted: list[str] = []

    def inserts(self, rng: random.Random, count: int) -> list[tuple]:
        rows = list(self.gen.rows(count, seed=rng.randrange(1 << 30), start=self.next_n))
        self.inserted += [row_id(self.name, n) for n in range(self.next_n, self.next_n + count)]
        self.next_n += count
        return rows

    def updates(self, rng: random.Random, count: int) -> list[tuple]:
        if not self.existing or not self.update_sql:
            return []
        fresh = self.gen.rows(count, seed=rng.randrange(1 << 30), start=self.next_n)
        keys = [row_id(self.name, rng.randrange(self.existing)) for _ in range(count)]
        return [(*(row[i] for i in self.update_cols), key)
                for row, key in zip(fresh, keys, strict=True)]

    def deletes(self, rng: random.Random, count: int) -> list[str]:
        taken = [self.inserted.pop(rng.randrange(len(self.inserted)))
                 for _ in range(min(count, len(self.inserted)))]
        return taken


def _plan(conn: Any, database: str) -> list[_TableWork]:
    profile = load_profile("prisma")
    tables = introspect_tables(conn, database, profile.tables)
    with conn.cursor() as cur:
        counts = {}
        for name in profile.tables:
            cur.execute(f"SELECT COUNT(*) FROM {quote_ident(name)}")
            counts[name] = cur.fetchone()[0]
    stats = load_data_profile()
    return [_TableWork(tables[name], stats, profile, counts) for name in profile.tables]


def write_burst(source_url: str, changes: int, seed: int = 18) -> dict[str, int]:
    """Commit about `changes` row changes (affected rows, as the server counts them)."""
    url = parse_url(source_url, "mysql")
    rng = random.Random(seed)
    done: dict[str, int] = {"insert": 0, "update": 0, "delete": 0}
    with connect(url, autocommit=False) as conn:
        work = _plan(conn, url.database)
        weights = [WEIGHTS.get(w.name, 1.0) for w in work]
        with conn.cursor() as cur:
            # Strict off for the burst: the generator's values follow the data profile, not
            # every column's length (the app's own writes are checked by its ORM).
            cur.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
            while sum(done.values()) < changes:
                for table in _pick(rng, work, weights):
                    _one_table(cur, rng, table, done)
                conn.commit()
    return done


def _pick(rng: random.Random, work: list[_TableWork], weights: list[float]
          ) -> Iterator[_TableWork]:
    chosen: dict[str, _TableWork] = {}
    while len(chosen) < 4:
        table = rng.choices(work, weights)[0]
        chosen[table.name] = table
    return iter(chosen.values())


def _one_table(cur: Any, rng: random.Random, table: _TableWork, done: dict[str, int]) -> None:
    inserts = 10 if table.can_insert else 0
    updates = PER_TABLE - inserts - 5 if table.can_insert else PER_TABLE
    if inserts:
        done["insert"] += cur.executemany(table.insert_sql, table.inserts(rng, inserts)) or 0
    rows = table.updates(rng, updates)
    if rows:
        done["update"] += cur.executemany(table.update_sql, rows) or 0
    gone = table.deletes(rng, 5)
    if gone:
        marks = ", ".join(["%s"] * len(gone))
        done["delete"] += cur.execute(
            f"DELETE FROM {quote_ident(table.name)} WHERE id IN ({marks})", gone)


BARE_DECODE = """
import json, sys, time
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent
args = json.loads(sys.argv[1])
stream = BinLogStreamReader(connection_settings=args["settings"], server_id=77002,
                            log_file=args["file"], log_pos=args["pos"], resume_stream=True,
                            blocking=False, only_schemas=[args["database"]],
                            only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent])
changes = images = 0
started = None
end = (args["end_file"], args["end_pos"])
for event in stream:
    if started is None:
        started = time.monotonic()
    for row in event.rows:
        changes += 1
        for key in ("values", "before_values", "after_values"):
            if key in row:
                images += 1
                for value in row[key].values():
                    pass
    if (stream.log_file, stream.log_pos) >= end:
        break
stream.close()
print(json.dumps({"seconds": time.monotonic() - (started or time.monotonic()),
                  "changes": changes, "images": images}))
"""


def bare_decode(source_url: str, start: BinlogPosition, end: BinlogPosition) -> dict:
    """mysql-replication as it ships, in a process of its own (none of wacdc's patches)."""
    url = parse_url(source_url, "mysql")
    settings = {"host": url.host, "port": url.port, "user": url.user,
                "passwd": url.password or ""}
    spec = {"settings": settings, "file": start.file, "pos": start.pos,
            "end_file": end.file, "end_pos": end.pos, "database": url.database}
    out = subprocess.run([sys.executable, "-c", BARE_DECODE, json.dumps(spec)],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"mysql-replication's bare decode failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def compiled_decode(source_url: str, start: BinlogPosition, end: BinlogPosition,
                    tables: list[str], mariadb: bool) -> dict:
    """wacdc's compiled decoder alone over the same range (no conversion, no apply)."""
    url = parse_url(source_url, "mysql")
    stream = open_stream(url, 77003, start, tables, blocking=False, mariadb=mariadb)
    changes = 0
    started = time.monotonic()
    try:
        for change in row_changes(stream):
            changes += 1
            if change.position >= end:
                break
    finally:
        stream.close()
    return {"seconds": time.monotonic() - started, "changes": changes}


def run_wacdc(env: dict[str, str], profile: Path | None = None) -> dict:
    return wacdc_process.run_wacdc(["run", "--exit-when-caught-up"], env, profile)


def compare(source_url: str, target_url: str, tables: list[str]) -> list[str]:
    """Tables whose key sets differ (a plain check, not wacdc's converters)."""
    url = parse_url(source_url, "mysql")
    differ = []
    with connect(url) as my, psycopg.connect(target_url) as pg, my.cursor() as cur:
        for table in tables:
            cur.execute(f"SELECT id FROM {quote_ident(table)}")
            mine = {row[0] for row in cur.fetchall()}
            theirs = {row[0] for row in pg.execute(f'SELECT id FROM "{table}"')}
            if mine != theirs:
                differ.append(f"{table}: {len(mine - theirs)} missing, "
                              f"{len(theirs - mine)} extra")
    return differ


# Other ways to run the same catch-up, each into a database of its own: name -> settings.
VARIANTS = {"process": {"WACDC_DECODE_IN": "process"},
            "serial": {"WACDC_APPLY_BEHIND": "false"}}


def measure(source_url: str, target_url: str, changes: int, mariadb: bool,
            env: dict[str, str] | None = None, profile: Path | None = None,
            variant_targets: dict[str, str] | None = None) -> dict:
    """Snapshot, burst, catch up; the ratios of one burst. `variant_targets` (a VARIANTS
    name -> a target database): the same burst also caught up into it that way."""
    env = {**os.environ, "WACDC_SOURCE_URL": source_url, "WACDC_TARGET_URL": target_url,
           "WACDC_LOG_FORMAT": "json", **(env or {})}
    both = {"default": env}
    for name, url in (variant_targets or {}).items():
        both[name] = {**env, "WACDC_TARGET_URL": url, **VARIANTS[name]}
    for one in both.values():
        run_wacdc(one)  # snapshot, caught up
    idle = run_wacdc(env)  # nothing to do: start-up, connects, catalog checks and exit
    url = parse_url(source_url, "mysql")
    with connect(url) as conn:
        start = current_position(conn)
    written = write_burst(source_url, changes)
    with connect(url) as conn:
        end = current_position(conn)
    wacdc = run_wacdc(env, profile)
    tables = load_profile("prisma").tables
    others = {name: run_wacdc(one) for name, one in both.items() if name != "default"}
    for mode, one in both.items():
        differ = compare(source_url, one["WACDC_TARGET_URL"], tables)
        if differ:
            raise RuntimeError(f"after the burst PostgreSQL ({mode}) differs from MySQL: "
                               + "; ".join(differ))
    bare = bare_decode(source_url, start, end)
    compiled = compiled_decode(source_url, start, end, tables, mariadb)
    n = bare["changes"]
    return {"changes": n, "written": written, "row_images": bare["images"],
            "wacdc_seconds": wacdc["seconds"], "wacdc_changes_per_s": n / wacdc["seconds"],
            "peak_rss_mib": wacdc["peak_rss_mib"], "wacdc_cpu_seconds": wacdc["cpu_seconds"],
            "idle_run_seconds": idle["seconds"],
            "library_seconds": bare["seconds"], "library_changes_per_s": n / bare["seconds"],
            "compiled_seconds": compiled["seconds"],
            "compiled_changes_per_s": compiled["changes"] / compiled["seconds"],
            "ratio_to_library": bare["seconds"] / wacdc["seconds"],
            **{f"{name}_{figure}": value for name, run in others.items() for figure, value in
               (("seconds", run["seconds"]), ("cpu_seconds", run["cpu_seconds"]),
                ("ratio_to_library", bare["seconds"] / run["seconds"]))}}


def _variant(name: str) -> Callable[[dict], str]:
    return lambda r: (f"{r[name + '_seconds']:.1f} s, {r[name + '_ratio_to_library']:.2f}x "
                      f"the library, CPU {r[name + '_cpu_seconds']:.1f} s"
                      if name + "_seconds" in r else "not measured")


def report_lines(results: dict[str, dict | None]) -> list[str]:
    """The section for both flavours: {flavour: measure(...) or None}."""
    measured = {k: v for k, v in results.items() if v}
    if not measured:
        return []
    lines = [
        "## Streaming a mixed burst over the 19 tables (issue 18's target)",
        "",
        "A burst committed at full speed while wacdc is stopped: transactions of ~100 row "
        "changes over four of the 19 tables each (inserts of generated rows, updates "
        "rewriting every ordinary column with freshly generated values, deletes of rows the "
        "burst inserted; WhatsAppMessage and WhatsAppCampaignRecipient weighted as the app "
        "writes them). wacdc is timed over its whole `wacdc run --exit-when-caught-up` "
        "process (start to exit, imports and connects included); mysql-replication's bare "
        "decode of the very same binlog range (BinLogStreamReader as it ships, in its own "
        "process, every value of every row read) from its first event to its last. "
        "PostgreSQL is compared with MySQL key by key after each burst.",
        "",
        "| figure | " + " | ".join(measured) + " |",
        "|---|" + "---|" * len(measured),
    ]
    rows = [
        ("row changes (inserts / updates / deletes)", lambda r: f"{r['changes']:,} ("
         + " / ".join(f"{r['written'][k]:,}" for k in ("insert", "update", "delete")) + ")"),
        ("wacdc, whole process", lambda r: f"{r['wacdc_seconds']:.1f} s, "
         f"{r['wacdc_changes_per_s']:,.0f} changes/s"),
        ("mysql-replication bare decode", lambda r: f"{r['library_seconds']:.1f} s, "
         f"{r['library_changes_per_s']:,.0f} changes/s"),
        ("the same with `WACDC_DECODE_IN=process` (decode in a child process)",
         _variant("process")),
        ("the same with `WACDC_APPLY_BEHIND=false` (each commit waited for)",
         _variant("serial")),
        ("wacdc's compiled decoder alone", lambda r: f"{r['compiled_seconds']:.1f} s, "
         f"{r['compiled_changes_per_s']:,.0f} changes/s"),
        ("**wacdc / library decode** (target ≥ 3)", lambda r: f"**{r['ratio_to_library']:.2f}** "
         f"({'met' if r['ratio_to_library'] >= 3 else 'not met'})"),
        ("CPU of the wacdc process", lambda r: f"{r['wacdc_cpu_seconds']:.1f} s"),
        ("the same command with nothing to catch up (start-up, checks, exit)",
         lambda r: f"{r['idle_run_seconds']:.2f} s"),
        ("peak RSS of the wacdc process", lambda r: f"{r['peak_rss_mib']:.0f} MiB"),
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in measured.values()) + " |")
    return [*lines, ""]


def _standalone() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flavour", choices=("mariadb", "mysql"), default="mariadb")
    parser.add_argument("--changes", type=int, default=150_000)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--profile", type=Path, help="py-spy the catch-up into this file")
    parser.add_argument("--variant", action="append", default=[], choices=sorted(VARIANTS),
                        help="also catch the burst up this way (into a database of its own)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra settings for wacdc (e.g. WACDC_DECODE_IN=process)")
    args = parser.parse_args()
    from bench.generate import generate
    with wacdc_process.private_servers(args.flavour) as (source, pg):
        generate(source.url("mixed"), args.messages)
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            for name in ("t", *args.variant):
                conn.execute(f"CREATE DATABASE mixed_{name}")
        result = measure(source.url("mixed"), pg.url("mixed_t"), args.changes,
                         args.flavour == "mariadb",
                         env=dict(kv.split("=", 1) for kv in args.env), profile=args.profile,
                         variant_targets={v: pg.url(f"mixed_{v}") for v in args.variant})
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_standalone())
