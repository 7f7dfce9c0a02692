"""What reverse replication's capture costs the app: single-row transactions against a
WhatsAppCustomer-like table in PostgreSQL, without and with wacdc's capture trigger.

    python bench/capture.py [--rows 3000] [--url postgresql://...]

Without --url it starts a private PostgreSQL. Prints the rates and the overhead; the
figures in docs/rollback.md ("Why triggers") come from it.
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


def measure(url: str, rows: int, runs: int) -> dict[str, dict[str, float]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_customer")
        conn.execute(TABLE)
    results: dict[str, list[dict[str, float]]] = {"plain": [], "captured": []}
    for run in range(runs):
        for mode in ("plain", "captured"):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("TRUNCATE bench_customer")
                with conn.transaction():
                    if mode == "captured":
                        install_capture(conn, "public", ["bench_customer"])
                    else:
                        remove_capture(conn, "public", ["bench_customer"])
            results[mode].append(one_pass(url, rows, f"{mode[0]}{run}"))
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            remove_capture(conn, "public", ["bench_customer"])
        conn.execute("DROP TABLE bench_customer")
    return {mode: {op: statistics.median(r[op] for r in rs) for op in ("insert", "update")}
            for mode, rs in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.url:
        figures = measure(args.url, args.rows, args.runs)
    else:
        from wacdc.devtools.embedded import PostgresServer
        pg = PostgresServer()
        try:
            pg.start()
            figures = measure(pg.url(), args.rows, args.runs)
        finally:
            pg.cleanup()
    for op in ("insert", "update"):
        plain, captured = figures["plain"][op], figures["captured"][op]
        print(f"{op:<7} plain {plain:,.0f}/s  captured {captured:,.0f}/s  "
              f"overhead {(plain / captured - 1) * 100:.0f}% "
              f"({(1 / captured - 1 / plain) * 1e6:.0f} us per transaction)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
