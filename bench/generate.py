"""Generate the WhatsApp tables at scale: `python bench/generate.py mysql://root@host/db N`.

The other tables come from wacdc.datagen directly (profile proportions, capped at
N / 10 rows each). WhatsAppMessage gets up to 20,000 generated rows, then is doubled
server-side (INSERT ... SELECT with fresh UUID keys) until it holds N rows: the
same value distributions, millions of rows in a couple of minutes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from wacdc.config import parse_url
from wacdc.datagen import default_counts, load_data_profile, populate
from wacdc.schema.introspect import introspect_tables
from wacdc.schema.profile import config_dir, load_profile
from wacdc.source.connection import connect, quote_ident

SEED_ROWS = 20_000
BIG_TABLE = "WhatsAppMessage"


def generate(url_text: str, messages: int) -> dict[str, int]:
    """Create the database with the 19 tables and fill it; returns rows per table."""
    url = parse_url(url_text, "mysql")
    ddl = (config_dir() / "whatsapp_mysql.sql").read_text()
    with connect(url.with_database(""), database="") as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(url.database)}")
        cur.execute(f"CREATE DATABASE {quote_ident(url.database)} CHARACTER SET utf8mb4 "
                    "COLLATE utf8mb4_unicode_ci")
    profile = load_profile("prisma")
    with connect(url, autocommit=False) as conn:
        with conn.cursor() as cur:
            for statement in _statements(ddl):
                cur.execute(statement)
        tables = introspect_tables(conn, url.database, profile.tables)
        counts = {name: min(n, max(10, messages // 10))
                  for name, n in default_counts(messages, load_data_profile()).items()}
        counts[BIG_TABLE] = min(messages, SEED_ROWS)
        written = populate(conn, [tables[n] for n in profile.tables], counts, profile,
                           pool=1000, batch=500)
        written[BIG_TABLE] = _double_until(conn, tables[BIG_TABLE], messages)
    return written


def _double_until(conn, table, target: int) -> int:  # type: ignore[no-untyped-def]
    name = quote_ident(table.name)
    cols = [quote_ident(c.name) for c in table.columns]
    select = ", ".join("UUID()" if c.name == "id" else quote_ident(c.name)
                       for c in table.columns)
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {name}")
        have = cur.fetchone()[0]
        while have < target:
            batch = min(have, target - have, SEED_ROWS)  # bounded temp table per statement
            cur.execute(f"INSERT INTO {name} ({', '.join(cols)}) SELECT {select} FROM {name} "
                        f"LIMIT {batch}")
            conn.commit()
            have += batch
    return have


def _statements(ddl: str) -> list[str]:
    lines = [ln for ln in ddl.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


if __name__ == "__main__":
    print(generate(sys.argv[1], int(sys.argv[2])))
