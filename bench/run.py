"""`make bench`: wacdc against raw limits and peer tools, measured in the same run.

Starts private MariaDB, Oracle MySQL and PostgreSQL servers and measures, section by
section (each one can be skipped: its block in docs/benchmarks.md is kept):
  snapshot    `wacdc run --snapshot-only` of --messages WhatsAppMessage rows plus the other
              tables (MariaDB), against raw PostgreSQL COPY of the very same rows into the
              same indexed tables, a raw MySQL read, and pgloader on the same rows
              (bench/pgloader.py);
  mixed       a burst of --mixed-changes row changes over the 19 tables on each flavour,
              the whole catch-up process against mysql-replication's bare decode of the
              same binlog range (bench/mixed.py);
  chameleon   pg_chameleon and wacdc draining the same backlog (bench/chameleon.py);
  streaming   the single-table burst with every decoder and decode mode, and apply
              latency at steady rates (--rates; bench/streaming.py);
  apply-methods, cutover (the write pause under a writer), large-transactions.
Writes bench/results/latest.json and docs/benchmarks.md (medians of the runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
import pymysql

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from bench import (  # noqa: E402
    apply_methods,
    chameleon,
    cutover,
    large_transaction,
    mixed,
    pgloader,
    streaming,
)
from bench import report as sections  # noqa: E402
from bench.generate import generate  # noqa: E402
from wacdc.devtools.embedded import MariaDBServer, MySQLServer, PostgresServer  # noqa: E402

RESULTS = REPO / "bench" / "results" / "latest.json"
REPORT = REPO / "docs" / "benchmarks.md"


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def run_snapshot(source_url: str, target_url: str) -> dict:
    env = {**os.environ, "WACDC_SOURCE_URL": source_url, "WACDC_TARGET_URL": target_url,
           "WACDC_LOG_FORMAT": "json", "WACDC_METRICS_PORT": "0"}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run", "--snapshot-only"],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    samples: list[tuple[float, int]] = []

    def sample() -> None:
        while proc.poll() is None:
            samples.append((time.monotonic() - started, rss_kib(proc.pid)))
            time.sleep(0.5)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    sampler.join()
    if status != 0:
        raise RuntimeError(f"snapshot failed: {stderr.decode()[-3000:]}")
    rss = [kib for _, kib in samples if kib]
    return {"seconds": elapsed, "peak_rss_mib": usage.ru_maxrss / 1024,
            "rss_early_mib": rss[len(rss) // 10] / 1024 if rss else None,
            "rss_late_mib": rss[len(rss) * 9 // 10] / 1024 if rss else None}


def raw_copy(target_url: str, tables: list[str], workdir: Path) -> dict:
    """COPY the snapshot's own rows out to files, then time COPY FROM + index builds."""
    total_bytes = 0
    seconds = 0.0
    with psycopg.connect(target_url, autocommit=True) as conn:
        for table in tables:
            path = workdir / f"{table}.copy"
            with open(path, "wb") as out, conn.cursor().copy(
                    f'COPY "{table}" TO STDOUT') as copy:
                for block in copy:
                    out.write(block)
            total_bytes += path.stat().st_size
            clone = f"raw_{table}"[:63]
            conn.execute(f'DROP TABLE IF EXISTS "{clone}"')
            conn.execute(f'CREATE TABLE "{clone}" (LIKE "{table}" INCLUDING DEFAULTS)')
            conn.execute(f'ALTER TABLE "{clone}" ADD PRIMARY KEY (id)')
            indexes = [r[0] for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT LIKE "
                "'%%pkey'", (table,))]
            started = time.monotonic()
            with conn.transaction(), open(path, "rb") as src, conn.cursor().copy(
                    f'COPY "{clone}" FROM STDIN') as copy:
                while block := src.read(1 << 20):
                    copy.write(block)
            for i, ddl in enumerate(indexes):
                head, _, rest = ddl.partition(" ON ")
                conn.execute(f'CREATE INDEX "raw_{i}_{clone}"'[:70] + " ON "
                             + rest.replace(f'"{table}"', f'"{clone}"', 1)
                             if "UNIQUE" not in head else
                             f'CREATE UNIQUE INDEX "raw_{i}_{clone}"'[:70] + " ON "
                             + rest.replace(f'"{table}"', f'"{clone}"', 1))
            conn.execute(f'ANALYZE "{clone}"')
            seconds += time.monotonic() - started
            conn.execute(f'DROP TABLE "{clone}"')
            path.unlink()
    return {"seconds": seconds, "bytes": total_bytes}


def raw_read(source_url: str, database: str, tables: list[str], port: int) -> dict:
    conv = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", database=database,
                           conv=conv, charset="utf8mb4")
    started = time.monotonic()
    rows = 0
    with conn, conn.cursor(pymysql.cursors.SSCursor) as cur:
        for table in tables:
            cur.execute(f"SELECT * FROM `{table}`")
            for _ in cur:
                rows += 1
    return {"seconds": time.monotonic() - started, "rows": rows}


def machine(servers: dict, pg: PostgresServer) -> dict:
    def version(cmd: list[str]) -> str:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "mariadb": version([servers["mariadb"].binary, "--version"]),
        "mysql": version(servers["mysql"].install.run("--version"))
        if "mysql" in servers else "",
        "postgres": version([pg.postgres, "--version"]),
    }


SECTIONS = ("snapshot", "mixed", "chameleon", "streaming", "apply-methods", "cutover",
            "large-transactions")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3,
                        help="snapshot runs, streaming bursts and cutovers (medians reported)")
    parser.add_argument("--burst", type=int, default=100_000,
                        help="row changes in the single-table streaming burst")
    parser.add_argument("--mixed-changes", type=int, default=150_000,
                        help="row changes in the mixed burst over the 19 tables")
    parser.add_argument("--chameleon-changes", type=int, default=84_000,
                        help="row changes in the backlog pg_chameleon and wacdc drain")
    parser.add_argument("--rate", type=int, default=1000, help="writes/s under the cutover")
    parser.add_argument("--rates", default="1000,5000",
                        help="steady changes/s for the apply-latency figures")
    parser.add_argument("--steady-seconds", type=float, default=30)
    parser.add_argument("--flavours", default="mariadb,mysql",
                        help="sources for the mixed burst and the large transactions")
    parser.add_argument("--large-rows", type=int, default=2_000_000,
                        help="rows of the one-statement UPDATE and DELETE")
    parser.add_argument("--skip", action="append", default=[], choices=SECTIONS,
                        help="keep that section of the last report (repeatable)")
    parser.add_argument("--reuse", action="append", default=[], choices=SECTIONS,
                        help="take that section's figures from bench/results/latest.json "
                             "(a run that stopped later) and write its block (repeatable)")
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    flavours = [f for f in args.flavours.split(",") if f]
    servers = {"mariadb": MariaDBServer()}
    if "mysql" in flavours:
        servers["mysql"] = MySQLServer()
    pg = PostgresServer()
    for server in (*servers.values(), pg):
        server.start()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "machine": machine(servers, pg), "skipped": args.skip,
                    # a skipped section's figures, for the targets table only (its block in
                    # the report stays the one the earlier run wrote)
                    "earlier": {name: previous.get(name) or previous.get("earlier", {}).get(name)
                                for name in args.skip}}
    try:
        for name in args.reuse:
            if not previous.get(name):
                raise SystemExit(f"--reuse {name}: {RESULTS} has no figures for it")
            report[name] = previous[name]
        for name in SECTIONS:
            if name not in args.skip and name not in args.reuse:
                print(f"== {name}", flush=True)
                report[name] = MEASURE[name](servers, pg, args, flavours)
                # after every section: a later failure keeps what was measured
                RESULTS.parent.mkdir(parents=True, exist_ok=True)
                RESULTS.write_text(json.dumps(report, indent=2))
        write_report(report)
        print(f"wrote {RESULTS.relative_to(REPO)} and {REPORT.relative_to(REPO)}")
    finally:
        for server in (*servers.values(), pg):
            server.cleanup()
    return 0


def _fresh_pg(pg: PostgresServer, database: str) -> str:
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")
    return pg.url(database)


def bench_mixed(servers: dict, pg: PostgresServer, args: argparse.Namespace,
                flavours: list[str]) -> dict:
    results = {}
    for flavour in flavours:
        source = servers[flavour]
        print(f"mixed burst on {flavour}: generating a source ...", flush=True)
        generate(source.url("mixed"), 20_000)
        one = mixed.measure(source.url("mixed"), _fresh_pg(pg, "mixed_t"), args.mixed_changes,
                            flavour == "mariadb", env={"WACDC_METRICS_PORT": "0"},
                            variant_targets={name: _fresh_pg(pg, f"mixed_{name}")
                                             for name in mixed.VARIANTS})
        print(f"{flavour}: {one['changes']:,} changes, wacdc {one['wacdc_seconds']:.1f} s "
              f"({one['wacdc_changes_per_s']:,.0f}/s), library decode "
              f"{one['library_seconds']:.1f} s: {one['ratio_to_library']:.2f}x", flush=True)
        results[flavour] = one
    return results


def bench_chameleon(servers: dict, pg: PostgresServer, args: argparse.Namespace,
                    flavours: list[str]) -> dict:
    source = servers["mariadb"]  # pg_chameleon cannot read Oracle MySQL 8.4+ (docs)
    generate(source.url("cham"), 20_000)
    result = chameleon.measure(
        source.url("cham"), pg.url("postgres"),
        lambda url: chameleon.default_backlog(url, args.chameleon_changes),
        {"WACDC_LOG_FORMAT": "json", "WACDC_METRICS_PORT": "0"})
    print(f"pg_chameleon {result['chameleon_seconds']:.1f} s, wacdc "
          f"{result['wacdc_seconds']:.1f} s: {result['ratio']:.1f}x", flush=True)
    return result


def bench_large(servers: dict, pg: PostgresServer, args: argparse.Namespace,
                flavours: list[str]) -> dict:
    return {flavour: large_transaction.measure(servers[flavour].url(""), pg.url("postgres"),
                                               args.large_rows, mariadb=flavour == "mariadb")
            for flavour in flavours}


def bench_streaming(servers: dict, pg: PostgresServer, args: argparse.Namespace,
                    flavours: list[str]) -> dict:
    mysql = servers["mariadb"]
    print("streaming: generating a source ...", flush=True)
    generate(mysql.url("stream"), 20_000)
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS stream_t")
        conn.execute("CREATE DATABASE stream_t")
    bursts = []
    for run in range(1, args.runs + 1):
        one = streaming.burst(mysql.url("stream"), pg.url("stream_t"), args.burst)
        bursts.append(one)
        print(f"burst {run}: {one['changes_per_s']:,.0f} changes/s end to end "
              f"({one['library_e2e_changes_per_s']:,.0f} with the library decoder, "
              f"{one['decode_process_e2e_changes_per_s']:,.0f} with the decode process); decode "
              f"alone: library {one['library_decode_images_per_s']:,.0f} row images/s, "
              f"compiled {one['compiled_decode_images_per_s']:,.0f} "
              f"({one['decode_speedup']:.1f}x); end to end / library decode "
              f"{one['e2e_over_library_decode']:.2f}", flush=True)
    burst = {k: statistics.median(b[k] for b in bursts) for k in bursts[0]}
    burst["runs"] = bursts
    steady = []
    for rate in (int(r) for r in args.rates.split(",")):
        one = streaming.steady(mysql.url("stream"), pg.url("stream_t"), rate,
                               args.steady_seconds)
        print(f"steady {one['rate_achieved']:,.0f} changes/s: p50 {one['p50_s'] * 1000:.0f} ms,"
              f" p99 {one['p99_s'] * 1000:.0f} ms, RSS {one['peak_rss_mib']:.0f} MiB",
              flush=True)
        steady.append(one)
    return {"burst": burst, "steady": steady}



def bench_cutover(servers: dict, pg: PostgresServer, args: argparse.Namespace,
                  flavours: list[str]) -> dict:
    mysql = servers["mariadb"]
    runs = []
    for run in range(1, args.runs + 1):
        generate(mysql.url("cut"), 20_000)
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS cut_t")
            conn.execute("CREATE DATABASE cut_t")
        one = cutover.run(mysql.url("cut"), pg.url("cut_t"), args.rate)
        runs.append(one)
        print(f"cutover {run}: freeze {one['freeze_s'] * 1000:.0f} ms at "
              f"{one['achieved_rate']:,.0f} writes/s, slowest write "
              f"{one['slowest_write_s'] * 1000:.0f} ms, lost {one['lost']}", flush=True)
    keys = ("freeze_s", "slowest_write_s", "achieved_rate", "request_to_done_s")
    return {"runs": runs, "median": {k: statistics.median(r[k] for r in runs) for k in keys},
            "lost": sum(r["lost"] for r in runs)}


APPLY_TABLES = ["WhatsAppMessage", "WhatsAppSession", "WhatsAppCustomer",
                "WhatsAppCampaignRecipient"]


def bench_apply_methods(servers: dict, pg: PostgresServer, args: argparse.Namespace,
                        flavours: list[str]) -> dict:
    mysql = servers["mariadb"]
    print("apply methods: generating a source ...", flush=True)
    generate(mysql.url("apply"), 20_000)
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS apply_t")
        conn.execute("CREATE DATABASE apply_t")
    env = {**os.environ, "WACDC_SOURCE_URL": mysql.url("apply"),
           "WACDC_TARGET_URL": pg.url("apply_t"), "WACDC_TABLES": ",".join(APPLY_TABLES),
           "WACDC_LOG_FORMAT": "json", "WACDC_METRICS_PORT": "0"}
    subprocess.run([sys.executable, "-m", "wacdc.cli", "run", "--snapshot-only"], env=env,
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"size": 5000, "tables": APPLY_TABLES,
            "rows_per_s": apply_methods.run(mysql.url("apply"), pg.url("apply_t"),
                                            APPLY_TABLES, size=5000)}


def bench_snapshot(servers: dict, pg: PostgresServer, args: argparse.Namespace,
                   flavours: list[str]) -> dict:
    mysql = servers["mariadb"]
    print(f"generating {args.messages:,} messages + the other tables ...", flush=True)
    started = time.monotonic()
    counts = generate(mysql.url("bench"), args.messages)
    rows = sum(counts.values())
    print(f"generated {rows:,} rows in {time.monotonic() - started:.0f}s", flush=True)
    tables = [t for t, n in counts.items() if n]
    runs = []
    for run in range(1, args.runs + 1):
        target_db = f"bench_{run}"
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {target_db}")
            conn.execute(f"CREATE DATABASE {target_db}")
        snap = run_snapshot(mysql.url("bench"), pg.url(target_db))
        with tempfile.TemporaryDirectory(prefix="wacdc-bench-") as tmp:
            copy = raw_copy(pg.url(target_db), tables, Path(tmp))
        read = raw_read(mysql.url("bench"), "bench", tables, mysql.port)
        result = {
            "snapshot_seconds": snap["seconds"],
            "snapshot_rows_per_s": rows / snap["seconds"],
            "snapshot_mb_per_s": copy["bytes"] / 1e6 / snap["seconds"],
            "raw_copy_seconds": copy["seconds"],
            "raw_copy_rows_per_s": rows / copy["seconds"],
            "raw_read_rows_per_s": read["rows"] / read["seconds"],
            "ratio_to_raw_copy": copy["seconds"] / snap["seconds"],
            "peak_rss_mib": snap["peak_rss_mib"],
            "rss_early_mib": snap["rss_early_mib"], "rss_late_mib": snap["rss_late_mib"],
            "copy_bytes": copy["bytes"],
        }
        runs.append(result)
        print(f"run {run}: snapshot {result['snapshot_rows_per_s']:,.0f} rows/s "
              f"({result['snapshot_mb_per_s']:.1f} MB/s), raw COPY "
              f"{result['raw_copy_rows_per_s']:,.0f} rows/s, ratio "
              f"{result['ratio_to_raw_copy']:.2f}, peak RSS {result['peak_rss_mib']:.0f} MiB",
              flush=True)
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {target_db}")
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]
               if runs[0][k] is not None}
    try:  # pgloader on the very same rows (it cannot read Oracle MySQL 9: docs)
        peer = pgloader.measure(mysql.port, "bench", pg.url("postgres"), "bench_pgloader")
        print(f"pgloader {peer['rows_per_s']:,.0f} rows/s: wacdc "
              f"{medians['snapshot_rows_per_s'] / peer['rows_per_s']:.2f}x", flush=True)
    except pgloader.PgloaderError as exc:
        print(f"pgloader failed: {exc}", flush=True)
        peer = {"error": str(exc)[-2000:]}
    return {"rows": counts, "total_rows": rows, "runs": runs, "median": medians,
            "pgloader": peer}


LARGE_BLOCKS = {"mariadb": "large-transactions mariadb",
                "mysql": "large-transactions oracle-mysql"}


def write_report(report: dict) -> None:
    mach = report["machine"]
    old = REPORT.read_text() if REPORT.exists() else ""
    head = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`bench/run.py`); every ratio compares figures taken in the "
        "same run on the same machine. Machines here are shared and noisy: compare ratios, "
        "not absolute numbers across runs. A section a run skipped (`--skip`) keeps the "
        "figures of the run that wrote it, with that run's date in its block.",
        "",
        f"- date: {report['date']}; {mach['cpus']} CPUs, {mach['memory_gib']} GiB; "
        f"Python {mach['python']}",
        f"- {mach['mariadb']}",
        *([f"- {mach['mysql']}"] if mach.get("mysql") else []),
        f"- {mach['postgres']}",
        "",
        *_targets_lines({**{k: v for k, v in report["earlier"].items() if v}, **report},
                        report["date"], set(report["skipped"]),
                        _kept_target_rows(old, report)),
    ]
    stamp = [f"_Measured {report['date']}._", ""]
    snap = report.get("snapshot")
    blocks: list[tuple[str, list[str] | None]] = [
        ("snapshot", [*stamp, *_snapshot_lines(snap), *pgloader.report_lines(
            snap.get("pgloader") if snap and "rows" in (snap.get("pgloader") or {}) else None,
            snap["median"]["snapshot_rows_per_s"] if snap else None)] if snap else None),
        ("mixed", [*stamp, *mixed.report_lines(report["mixed"])] if report.get("mixed")
         else None),
        ("profile", None),  # written by bench/profile.py --write, kept as it is
        ("chameleon", [*stamp, *chameleon.report_lines(report["chameleon"])]
         if report.get("chameleon") else None),
        ("streaming", [*stamp, *_streaming_lines(report.get("streaming"))]
         if report.get("streaming") else None),
        ("apply-methods", [*stamp, *_apply_method_lines(report.get("apply-methods"))]
         if report.get("apply-methods") else None),
        ("cutover", [*stamp, *_cutover_lines(report.get("cutover"))]
         if report.get("cutover") else None),
    ]
    large = report.get("large-transactions") or {}
    for flavour, name in LARGE_BLOCKS.items():
        blocks.append((name, large_transaction.report_lines(large.get(flavour))))
    REPORT.write_text(sections.compose(old, head, blocks))


# The targets table's rows of each section (by how their first cell begins).
TARGET_ROWS = {"mixed": "| streaming, mixed burst", "chameleon": "| same backlog",
               "snapshot": "| snapshot:", "streaming": "| apply latency",
               "cutover": "| cutover write pause"}


def _kept_target_rows(old: str, report: dict) -> list[str]:
    """The earlier report's target rows of the sections this run skipped and has no stored
    figures for (bench/results/latest.json is not kept in git), marked with the date of
    the block they came from, so a partial run does not drop a target from the table."""
    rows = []
    for name in report["skipped"]:
        prefix = TARGET_ROWS.get(name)
        if prefix is None or report["earlier"].get(name):
            continue
        measured = next((line.strip("_ .").removeprefix("Measured ")
                         for line in sections.block(old, name) or []
                         if line.startswith("_Measured ")), "earlier")
        for line in old.splitlines():
            if line.startswith(prefix):
                if "section skipped" not in line:
                    cells = line.split(" | ", 1)
                    line = f"{cells[0]} ({measured} run, section skipped) | {cells[1]}"
                rows.append(line)
    return rows


def _targets_lines(report: dict, date: str, earlier: set[str],
                   kept: Sequence[str] = ()) -> list[str]:
    """Issue 18's targets, from the sections this run measured (and an earlier run's
    figures for the sections it skipped, marked)."""
    rows: list[tuple[str, str, bool]] = []
    for flavour, r in (report.get("mixed") or {}).items():
        if r:
            rows.append((f"streaming, mixed burst on {flavour}: wacdc / library decode ≥ 3",
                         f"{r['ratio_to_library']:.2f}", r["ratio_to_library"] >= 3))
    if report.get("chameleon"):
        c = report["chameleon"]
        rows.append(("same backlog: wacdc / pg_chameleon ≥ 10", f"{c['ratio']:.1f}",
                     c["ratio"] >= 10))
    snap = report.get("snapshot")
    if snap:
        m = snap["median"]
        peer = snap.get("pgloader") or {}
        if "rows_per_s" in peer:
            x = m["snapshot_rows_per_s"] / peer["rows_per_s"]
            rows.append(("snapshot: wacdc / pgloader ≥ 1.5", f"{x:.2f}", x >= 1.5))
        rows.append(("snapshot: wacdc / raw COPY ≥ 0.9", f"{m['ratio_to_raw_copy']:.2f}",
                     m["ratio_to_raw_copy"] >= 0.9))
    for st in (report.get("streaming") or {}).get("steady", []):
        bound = 0.25 if st["rate_target"] <= 1000 else 1.0
        rows.append((f"apply latency p99 at {st['rate_target']:,} changes/s < "
                     f"{bound * 1000:.0f} ms", f"{st['p99_s'] * 1000:.0f} ms "
                     f"(at {st['rate_achieved']:,.0f}/s)", st["p99_s"] < bound))
    rss = _peak_rss(report)
    if rss:
        rows.append(("peak RSS of the daemon < 250 MB", f"{rss:.0f} MiB", rss * 1.048576 < 250))
    if report.get("cutover"):
        pause = report["cutover"]["median"]["freeze_s"]
        rows.append(("cutover write pause p50 < 100 ms under 1,000 writes/s",
                     f"{pause * 1000:.0f} ms", pause < 0.1))
    if not rows and not kept:
        return []
    note = f" (sections {', '.join(sorted(earlier))} from an earlier run)" if earlier else ""
    return [f"## Targets (issue 18), measured {date}{note}", "", "| target | measured | |",
            "|---|---|---|",
            *(f"| {t} | {v} | {'met' if ok else '**not met**'} |" for t, v, ok in rows),
            *kept, ""]


def _peak_rss(report: dict) -> float:
    seen = [r["peak_rss_mib"] for r in (report.get("mixed") or {}).values() if r]
    streaming_section = report.get("streaming") or {}
    if streaming_section:
        seen.append(streaming_section["burst"]["peak_rss_mib"])
        seen += [st["peak_rss_mib"] for st in streaming_section["steady"]]
    if report.get("snapshot"):
        seen.append(report["snapshot"]["median"]["peak_rss_mib"])
    return max(seen, default=0.0)


def _snapshot_lines(snap: dict) -> list[str]:
    m = snap["median"]
    lines = [
        "## Snapshot (`wacdc run --snapshot-only`)",
        "",
        f"{snap['total_rows']:,} rows over {len(snap['rows'])} tables "
        f"({snap['rows'].get('WhatsAppMessage', 0):,} WhatsAppMessage rows), "
        f"{m['copy_bytes'] / 1e6:,.0f} MB as COPY text, from MariaDB; medians of "
        f"{len(snap['runs'])} runs.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| snapshot throughput | {m['snapshot_rows_per_s']:,.0f} rows/s, "
        f"{m['snapshot_mb_per_s']:.1f} MB/s ({m['snapshot_seconds']:.0f} s in all, "
        "index builds included) |",
        f"| raw PostgreSQL COPY of the same rows (+ the same index builds) | "
        f"{m['raw_copy_rows_per_s']:,.0f} rows/s |",
        f"| **ratio to raw COPY** | **{m['ratio_to_raw_copy']:.2f}** (target ≥ 0.9) |",
        f"| raw MySQL read (unbuffered SELECT, no conversions) | "
        f"{m['raw_read_rows_per_s']:,.0f} rows/s |",
        f"| peak RSS of the wacdc process | {m['peak_rss_mib']:.0f} MiB |",
        f"| RSS at 10% / 90% of the run | {m.get('rss_early_mib', 0):.0f} / "
        f"{m.get('rss_late_mib', 0):.0f} MiB (flat: memory does not grow with table size) |",
        "",
        "Per run:",
        "",
        "| run | rows/s | MB/s | raw COPY rows/s | ratio | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(snap["runs"], 1):
        lines.append(f"| {i} | {r['snapshot_rows_per_s']:,.0f} | {r['snapshot_mb_per_s']:.1f} | "
                     f"{r['raw_copy_rows_per_s']:,.0f} | {r['ratio_to_raw_copy']:.2f} | "
                     f"{r['peak_rss_mib']:.0f} |")
    error = (snap.get("pgloader") or {}).get("error")
    if error:
        lines += ["", f"pgloader failed in this run: `{error.splitlines()[-1][:300]}`"]
    return [*lines, ""]


def _streaming_lines(section: dict | None) -> list[str]:
    if not section:
        return []
    b, steady = section["burst"], section["steady"]
    steady = steady if isinstance(steady, list) else [steady]
    runs = b.get("runs", [b])
    return [
        "## Streaming (`wacdc run`)",
        "",
        "| figure | value |",
        "|---|---|",
        f"| burst: {b['changes']:,} row changes committed at full speed while wacdc is "
        f"stopped, then applied by `wacdc run --exit-when-caught-up` | "
        f"{b['changes_per_s']:,.0f} changes/s while streaming (log line `streaming` to "
        f"`caught up`); {b.get('process_changes_per_s', b['changes_per_s']):,.0f}/s over "
        "the whole process, start-up included |",
        f"| the same burst with `WACDC_DECODER=library` (mysql-replication decodes) | "
        f"{b['library_e2e_changes_per_s']:,.0f} changes/s |",
        f"| the same burst with `WACDC_DECODE_IN=process` (read + decode in a child process, "
        f"convert + apply in the daemon; on {len(runs)} bursts: "
        + ", ".join(f"{r.get('decode_process_e2e_changes_per_s', 0):,.0f}" for r in runs)
        + f") | {b.get('decode_process_e2e_changes_per_s', 0):,.0f} changes/s |",
        f"| decoding the same binlog range alone ({b['row_images']:,} row images): "
        f"mysql-replication as it ships / wacdc's compiled decoder | "
        f"{b['library_decode_images_per_s']:,.0f} / {b['compiled_decode_images_per_s']:,.0f} "
        f"row images/s ({b['library_decode_changes_per_s']:,.0f} / "
        f"{b['raw_decode_changes_per_s']:,.0f} changes/s) |",
        "| **compiled decode / library decode** (each burst: "
        + ", ".join(f"{r['decode_speedup']:.1f}" for r in runs)
        + f") | **{b['decode_speedup']:.1f}x** (target ≥ 4x) |",
        "| **end to end / library decode** (each: "
        + ", ".join(f"{r['e2e_over_library_decode']:.2f}" for r in runs)
        + f") | **{b['e2e_over_library_decode']:.2f}** (target ≥ 1.5) |",
        f"| end to end / compiled decode alone (median of {len(runs)} bursts; each: "
        + ", ".join(f"{r['ratio_to_raw_decode']:.2f}" for r in runs)
        + f") | {b['ratio_to_raw_decode']:.2f} |",
        *(f"| steady {st['rate_achieved']:,.0f} changes/s ("
          f"{st.get('rows_per_transaction', 1)} row(s) per transaction, asked "
          f"{st['rate_target']:,}/s): apply latency p50 / p99 / max | {st['p50_s'] * 1000:.0f}"
          f" / {st['p99_s'] * 1000:.0f} / {st['max_s'] * 1000:.0f} ms (target p99 < "
          f"{'250 ms' if st['rate_target'] <= 1000 else '1 s'}); rows not seen in "
          f"PostgreSQL at the end: {st['missing']}; peak RSS {st['peak_rss_mib']:.0f} MiB |"
          for st in steady),
        f"| peak RSS of the daemon in the burst | {b['peak_rss_mib']:.0f} MiB "
        "(target < 250 MB) |",
        "",
    ]


def _cutover_lines(section: dict | None) -> list[str]:
    if not section:
        return []
    m = section["median"]
    return [
        "## Cutover under load (`bench/cutover.py`)",
        "",
        f"A writer commits one-row inserts at ~{m['achieved_rate']:,.0f}/s into a streamed "
        "source; `wacdc cutover --wait` runs (19 tables, fence by rename). Medians of "
        f"{len(section['runs'])} cutovers.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| **write pause** (lock -> fence, `wacdc_cutover_freeze_seconds`) | "
        f"**{m['freeze_s'] * 1000:.0f} ms** (each: " + ", ".join(
            f"{r['freeze_s'] * 1000:.0f}" for r in section["runs"]) + " ms; target < 1 s) |",
        f"| slowest single write the app saw | {m['slowest_write_s'] * 1000:.0f} ms |",
        f"| request -> done (lag wait, freeze, finalize, validation) | "
        f"{m['request_to_done_s']:.1f} s |",
        f"| acknowledged writes missing in PostgreSQL | {section['lost']} |",
        "",
    ]


def _apply_method_lines(section: dict | None) -> list[str]:
    if not section:
        return []
    results = section["rows_per_s"]
    methods = list(next(iter(results.values())))
    lines = [
        "## How a batch is sent (`bench/apply_methods.py`)",
        "",
        f"{section['size']:,} converted rows of {', '.join(section['tables'])} upserted (half "
        "updates, half new keys) in one rolled-back transaction; rows/s, median of 5.",
        "",
        "| batch shape | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for shape, by_method in results.items():
        best = max(by_method.values())
        cells = [f"**{v:,.0f}**" if v == best else f"{v:,.0f}" for v in by_method.values()]
        lines.append(f"| {shape} | " + " | ".join(cells) + " |")
    lines += ["", "`wacdc run` sends batches with executemany in pipeline mode: the app's "
              "transactions touch several tables each, so runs are short, where it is "
              "several times faster; COPY + merge wins only on long single-table runs, by "
              "much less. With the compiled decoder (issue 9) decoding is no longer the "
              "ceiling: a profile of the burst shows the daemon waiting for PostgreSQL about "
              "a quarter of the time, and the rest split between the binlog framing, "
              "decoding, conversion and psycopg's parameter adaptation."]
    return [*lines, ""]


MEASURE = {"snapshot": bench_snapshot, "mixed": bench_mixed, "chameleon": bench_chameleon,
           "streaming": bench_streaming, "apply-methods": bench_apply_methods,
           "cutover": bench_cutover, "large-transactions": bench_large}


if __name__ == "__main__":
    sys.exit(main())
