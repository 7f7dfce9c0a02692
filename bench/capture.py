"""What reverse replication's capture costs the app: single-row transactions against a
WhatsAppCustomer-like table in PostgreSQL, plain (wal_level=replica), with wacdc's
capture trigger, and with the alternative, logical decoding (wal_level=logical, a
test_decoding slot, read with pg_logical_slot_get_changes after each pass).

    python bench/capture.py [--rows 3000] [--runs 3]

It starts a private PostgreSQL (restarted once for wal_level=logical). Prints the
rates and the overheads; the figures in docs/rollback.md ("Why triggers") come from it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO)]

import psycopg  # noqa: E402

from wacdc.devtools.embedded import PostgresServer  # noqa: E402
from wacdc.reverse.capture import install_capture, remove_capture  # noqa: E402

TABLE = """CREATE TABLE bench_customer (id text PRIMARY KEY, "firstName" text NOT NULL,
    "phoneNumber" text NOT NULL UNIQUE, tags text[] NOT NULL DEFAULT '{}', metadata jsonb,
    "updatedAt" timestamp(3) NOT NULL)"""


def one_pass(url: str, rows: int, tag: str) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        for n in range(rows):
            with conn.transaction():
                conn.execute('INSERT INTO bench_customer VALUES (%s, %s, %s, %s, %s, now())',
                             (f"{tag}-{n}", "Asha", f"+{tag}{n:09d}", ["vip"],
                              json.dumps({"n": n, "price": 1.5})))
        inserts = rows / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for n in range(rows):
            with conn.transaction():
                conn.execute('UPDATE bench_customer SET tags = tags || %s, "updatedAt" = now() '
                             "WHERE id = %s", (["u"], f"{tag}-{n}"))
        updates = rows / (time.perf_counter() - t0)
    return {"insert": inserts, "update": updates}


def prepare(url: str, mode: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_customer")
        conn.execute(TABLE)
        with conn.transaction():
            if mode == "captured":
                install_capture(conn, "public", ["bench_customer"])
            else:
                remove_capture(conn, "public", ["bench_customer"])


def decode_rate(url: str) -> float:
    """Changes per second pg_logical_slot_get_changes hands out for what the pass wrote."""
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        row = conn.execute("SELECT count(*) FROM pg_logical_slot_get_changes("
                           "'wacdc_bench', NULL, NULL) WHERE data NOT LIKE 'BEGIN%%' "
                           "AND data NOT LIKE 'COMMIT%%'").fetchone()
        return (row[0] if row else 0) / (time.perf_counter() - t0)


def measure(url: str, rows: int, runs: int, modes: tuple[str, ...]
            ) -> dict[str, dict[str, float]]:
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for run in range(runs):
        for mode in modes:
            prepare(url, mode)
            figures = one_pass(url, rows, f"{mode[0]}{run}")
            if mode == "logical":
                figures["decode"] = decode_rate(url)
            results[mode].append(figures)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            remove_capture(conn, "public", ["bench_customer"])
        conn.execute("DROP TABLE bench_customer")
    return {mode: {op: statistics.median(r[op] for r in rs) for op in rs[0]}
            for mode, rs in results.items()}


def logical(pg: PostgresServer) -> None:
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET wal_level = logical")
    pg.restart()
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot('wacdc_bench', "
                     "'test_decoding')")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    pg = PostgresServer()
    try:
        pg.start()
        figures = measure(pg.url(), args.rows, args.runs, ("plain", "captured"))
        logical(pg)
        figures.update(measure(pg.url(), args.rows, args.runs, ("logical",)))
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot('wacdc_bench')")
    finally:
        pg.cleanup()
    for op in ("insert", "update"):
        plain = figures["plain"][op]
        line = f"{op:<7} plain {plain:,.0f}/s"
        for mode in ("captured", "logical"):
            rate = figures[mode][op]
            line += (f"  {mode} {rate:,.0f}/s ({(plain / rate - 1) * 100:+.0f}%, "
                     f"{(1 / rate - 1 / plain) * 1e6:+.0f} us per transaction)")
        print(line)
    print(f"logical decoding read back {figures['logical']['decode']:,.0f} changes/s "
          "(pg_logical_slot_get_changes, test_decoding)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
