"""One source transaction of millions of rows: `wacdc run` applies it in bounded memory.

A table of N rows (2,000,000 by default) is snapshotted, then changed by one
single-statement UPDATE of every row and one single-statement DELETE of every row. For
each, `wacdc run --exit-when-caught-up` is timed and its peak RSS read from the kernel
(VmHWM of the daemon plus that of its decode child, under WACDC_DECODE_IN=process), and
PostgreSQL is checked to hold exactly the result: after the UPDATE every row's values,
computed from its key in SQL (no wacdc code), after the DELETE no row. Run alone:
`python bench/large_transaction.py [--rows N] [--source mariadb|mysql]` (updates the
section in docs/benchmarks.md); `make bench` runs it as one of its sections.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pymysql

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from wacdc.config import parse_url  # noqa: E402
from wacdc.devtools.embedded import MariaDBServer, MySQLServer, PostgresServer  # noqa: E402

TABLE = "big"
LIMIT_MIB = 300  # the bound for the daemon's peak RSS


def _marks(source: str) -> tuple[str, str]:
    """The report keeps one section per source flavour between these markers."""
    key = source.lower().replace(" ", "-")
    return f"<!-- large-transactions {key} -->", f"<!-- /large-transactions {key} -->"


def _peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def _tree(pid: int) -> list[int]:
    """The process and its descendants (the decode child, when there is one)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue  # it has exited
    return found


def _run(env: dict[str, str], *args: str) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one `wacdc run`, which must exit 0."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run", *args], env=env,
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks: dict[int, int] = {}

    def watch() -> None:  # VmHWM is each process's own high-water mark: sample till exit
        while proc.poll() is None:
            for pid in _tree(proc.pid):
                peaks[pid] = max(peaks.get(pid, 0), _peak_rss_kib(pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"wacdc run {' '.join(args)} exited {proc.returncode}: "
                           f"{err.decode()[-2000:]}")
    return time.monotonic() - started, sum(peaks.values()) / 1024


def _mysql(url: str) -> pymysql.connections.Connection:
    u = parse_url(url, "mysql")
    return pymysql.connect(host=u.host, port=u.port, user=u.user, password=u.password,
                           database=u.database or None, autocommit=True)


def measure(source_root: str, pg_admin: str, rows: int, mariadb: bool) -> dict:
    source_url = source_root.rstrip("/") + "/bigtx"
    target_url = pg_admin.rsplit("/", 1)[0] + "/bigtx_t"
    with _mysql(source_root) as conn, conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS bigtx")
        cur.execute("CREATE DATABASE bigtx")
        cur.execute("USE bigtx")  # the sequence engine's tables live in the current one
        cur.execute(f"CREATE TABLE bigtx.{TABLE} (id BIGINT PRIMARY KEY, a INT NOT NULL, "
                    "b VARCHAR(48) NOT NULL, c DATETIME(3) NOT NULL)")
        started = time.monotonic()
        if mariadb:  # the sequence engine
            cur.execute(f"INSERT INTO bigtx.{TABLE} SELECT seq, seq % 1000, "
                        f"LPAD(seq, 40, 'x'), NOW(3) FROM seq_1_to_{rows}")
        else:
            step = 100_000
            for low in range(0, rows, step):
                cur.execute("SET SESSION cte_max_recursion_depth = %s", (step + 1,))
                cur.execute(f"INSERT INTO bigtx.{TABLE} WITH RECURSIVE s(n) AS (SELECT %s "
                            "UNION ALL SELECT n + 1 FROM s WHERE n < %s) SELECT n, MOD(n, 1000), "
                            "LPAD(n, 40, 'x'), NOW(3) FROM s", (low + 1, min(low + step, rows)))
        loaded = time.monotonic() - started
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bigtx_t")
        conn.execute("CREATE DATABASE bigtx_t")
    env = {**os.environ, "WACDC_SOURCE_URL": source_url, "WACDC_TARGET_URL": target_url,
           "WACDC_PROFILE": "plain", "WACDC_TABLES": TABLE, "WACDC_LOG_FORMAT": "json",
           "WACDC_METRICS_PORT": "0"}
    snapshot_s, snapshot_rss = _run(env, "--snapshot-only")
    result = {"rows": rows, "source": "MariaDB" if mariadb else "Oracle MySQL",
              "load_s": loaded, "snapshot_s": snapshot_s, "snapshot_peak_rss_mib": snapshot_rss,
              "limit_mib": LIMIT_MIB}
    # (rows, rows holding exactly what the statement wrote): computed from the key in SQL
    updated = (f"SELECT count(*), count(*) FILTER (WHERE a = id % 1000 + 1 AND "
               f"b = 'u' || lpad(id::text, 40, 'x')) FROM {TABLE}")
    for name, statement, check in (
            ("update", f"UPDATE {TABLE} SET a = a + 1, b = CONCAT('u', b)", updated),
            ("delete", f"DELETE FROM {TABLE}", f"SELECT count(*), 0 FROM {TABLE}")):
        with _mysql(source_url) as conn, conn.cursor() as cur:
            started = time.monotonic()
            cur.execute(statement)  # one statement, one transaction (autocommit)
            source_s = time.monotonic() - started
        seconds, peak = _run(env, "--exit-when-caught-up")
        with psycopg.connect(target_url) as pg:
            count, right = pg.execute(check).fetchone()
        expected = rows if name == "update" else 0
        exact = count == expected and right == expected
        result[name] = {"source_s": source_s, "apply_s": seconds, "rows_per_s": rows / seconds,
                        "peak_rss_mib": peak, "exact": exact, "target_count": count,
                        "target_exact_rows": right}
        print(f"{name} of {rows:,} rows in one statement: source {source_s:.0f} s, wacdc "
              f"{seconds:.0f} s ({rows / seconds:,.0f} rows/s), peak RSS {peak:.0f} MiB, "
              f"target {'exact' if exact else f'WRONG: {count} rows, {right} exact'}",
              flush=True)
    return result


def report_lines(result: dict | None) -> list[str]:
    if not result:
        return []
    begin, end = _marks(result["source"])
    lines = [begin, "", f"## One transaction of millions of rows ({result['source']})", "",
             f"{result['source']}, one table of {result['rows']:,} rows (`id` BIGINT key, INT, "
             "VARCHAR(48), DATETIME(3)), snapshotted, then one single-statement UPDATE of "
             "every row and one single-statement DELETE of every row, each caught up by "
             "`wacdc run --exit-when-caught-up` (`WACDC_TRANSACTION_PIECE_ROWS` 10,000: the "
             "transaction is applied in pieces inside one PostgreSQL transaction). Peak RSS "
             "is the daemon's VmHWM plus its decode child's (WACDC_DECODE_IN=process); the "
             "target is checked row by row in SQL from each key; the bound is "
             f"{result['limit_mib']} MiB.", "",
             "| statement | source took | wacdc caught up in | rows/s | peak RSS | target |",
             "|---|---:|---:|---:|---:|---|"]
    for name in ("update", "delete"):
        r = result[name]
        lines.append(f"| {name.upper()} of all rows | {r['source_s']:.0f} s | "
                     f"{r['apply_s']:.0f} s | {r['rows_per_s']:,.0f} | "
                     f"{r['peak_rss_mib']:.0f} MiB | "
                     f"{'identical' if r['exact'] else 'DIFFERENT'} |")
    lines += ["", f"Snapshot of the {result['rows']:,} rows: {result['snapshot_s']:.0f} s, "
              f"peak RSS {result['snapshot_peak_rss_mib']:.0f} MiB.", "",
              "The metric to watch while such a transaction applies: "
              "`wacdc_rows_applied_total` rises (pieces), `wacdc_lag_seconds` stays at the "
              "transaction's commit time until its end commits.", "", end]
    return lines


def update_report(result: dict, report: Path) -> None:
    text = report.read_text() if report.exists() else "# Benchmarks\n"
    section = "\n".join(report_lines(result))
    begin, end = _marks(result["source"])
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    report.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--source", choices=("mariadb", "mysql"), default="mariadb")
    args = parser.parse_args()
    source = MySQLServer() if args.source == "mysql" else MariaDBServer()
    pg = PostgresServer()
    source.start()
    pg.start()
    try:
        result = measure(source.url(""), pg.url("postgres"), args.rows,
                         args.source == "mariadb")
    finally:
        source.cleanup()
        pg.cleanup()
    update_report(result, REPO / "docs" / "benchmarks.md")
    ok = result["update"]["exact"] and result["delete"]["exact"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
