"""`wacdc check`: whether the way back (reverse replication, `wacdc rollback`) can run."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql

from wacdc.check.findings import OK, PROBLEM, WARN, Finding
from wacdc.config import Settings
from wacdc.reverse.readiness import source_problems, stale_slots, target_problems
from wacdc.sink.connection import connect_target

NAME = "reverse replication"


def reverse_checks(settings: Settings, source: pymysql.connections.Connection,
                   tables: list[str]) -> Iterator[Finding]:
    if not settings.reverse:
        yield Finding(WARN, NAME, "off (WACDC_REVERSE=0): after the cutover MySQL falls "
                      "behind, and a rollback would lose what the app wrote to PostgreSQL",
                      "unset WACDC_REVERSE to keep the way back (docs/rollback.md)")
        return
    if settings.fence != "rename":
        yield Finding(WARN, NAME, f"needs the rename fence; WACDC_FENCE={settings.fence} "
                      "keeps it off", "WACDC_FENCE=rename (the default)")
        return
    problems = source_problems(source, settings.source().database)
    with connect_target(settings.target(), autocommit=True) as conn:
        problems += target_problems(conn, settings.target_schema, tables)
        wal_level = conn.execute("SHOW wal_level").fetchone()
        slots = stale_slots(conn)
    if problems:
        yield Finding(PROBLEM, NAME, "; ".join(problems),
                      "grant what is named, or set WACDC_REVERSE=0 to cut over without "
                      "the way back (docs/rollback.md)")
    else:
        yield Finding(OK, NAME, "can run after the cutover: capture triggers on "
                      f"{len(tables)} table(s) (wal_level={wal_level[0] if wal_level else '?'}"
                      "; logical decoding is not needed, no replication slot is used)")
    for name, held in slots:
        yield Finding(WARN, "replication slots", f"slot {name} is inactive and holds "
                      f"{held:,} bytes of WAL back (an abandoned slot fills the disk)",
                      f"SELECT pg_drop_replication_slot('{name}');")
