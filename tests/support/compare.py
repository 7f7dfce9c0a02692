"""Row-by-row comparison of source (MySQL, converted) and target (PostgreSQL) tables."""

from __future__ import annotations

import json
from typing import Any

from tests.support.harness import SourceDb, TargetDb
from wacdc.config import load_settings
from wacdc.schema.convert import BadValuePolicy, RowConverter
from wacdc.schema.profile import load_profile
from wacdc.source.catalog import load_catalog
from wacdc.source.connection import connect
from wacdc.source.read_view import read_converted


def _normalize(value: Any, family: str) -> Any:
    if family == "json" and isinstance(value, str):
        return json.loads(value)
    return value


def table_differences(source: SourceDb, target: TargetDb, profile: str = "prisma",
                      tables: list[str] | None = None, schema: str = "public"
                      ) -> dict[str, list[str]]:
    """{table: [difference, ...]} for every table that differs (empty dict: identical)."""
    settings = load_settings(source_url=source.url, target_url=target.url, profile=profile,
                             tables=tables)
    prof = load_profile(profile)
    url = settings.source()
    found: dict[str, list[str]] = {}
    with connect(url) as conn:
        plans = load_catalog(settings, prof, conn, url.database).plan(prof, schema)
        for tt in plans:
            converter = RowConverter(tt.name, tt.columns, tt.key, BadValuePolicy())
            families = [c.family for c in tt.columns]
            key_at = converter.key_positions
            src = {}
            for row in read_converted(conn, tt.source, converter):
                src[tuple(row[i] for i in key_at)] = tuple(
                    _normalize(v, f) for v, f in zip(row, families, strict=True))
            cols = ", ".join(f'"{c.name}"' for c in tt.columns)
            with target.connect() as pg:
                pg.execute("SET TimeZone = 'UTC'")
                rows = pg.execute(f'SELECT {cols} FROM "{schema}"."{tt.name}"').fetchall()
            tgt = {tuple(r[i] for i in key_at): tuple(r) for r in rows}
            problems = []
            if len(rows) != len(tgt):
                problems.append(f"duplicate keys in target: {len(rows) - len(tgt)}")
            missing = src.keys() - tgt.keys()
            extra = tgt.keys() - src.keys()
            if missing:
                problems.append(f"{len(missing)} missing, e.g. {sorted(missing)[:3]}")
            if extra:
                problems.append(f"{len(extra)} extra, e.g. {sorted(extra)[:3]}")
            for key in src.keys() & tgt.keys():
                if src[key] != tgt[key]:
                    diff = [c.name for c, a, b in zip(tt.columns, src[key], tgt[key], strict=True)
                            if a != b]
                    problems.append(f"key {key} differs in {diff}")
                    if len(problems) > 5:
                        break
            if problems:
                found[tt.name] = problems
    return found


def row_counts(source: SourceDb, tables: list[str]) -> dict[str, int]:
    with source.connect() as conn, conn.cursor() as cur:
        counts = {}
        for table in tables:
            cur.execute(f"SELECT COUNT(*) FROM `{table}`")
            counts[table] = cur.fetchone()[0]
    return counts


def assert_same_gtid_state(cur: Any, flavour: str, stored: str | None) -> None:
    """The checkpoint's GTID state is the source's executed state, judged by the server
    itself (MySQL's GTID_SUBSET both ways: tags and interval order are its business)."""
    assert stored, "the checkpoint has no GTID state"
    if flavour == "mariadb":
        cur.execute("SELECT @@global.gtid_binlog_pos")
        assert stored == cur.fetchone()[0]
        return
    cur.execute("SELECT GTID_SUBSET(%s, @@global.gtid_executed), "
                "GTID_SUBSET(@@global.gtid_executed, %s), @@global.gtid_executed",
                (stored, stored))
    inside, covers, executed = cur.fetchone()
    assert (inside, covers) == (1, 1), f"checkpoint {stored!r} != gtid_executed {executed!r}"
