"""Carry rows from MySQL to PostgreSQL through both paths and read them back.

Snapshot path: SELECT (PyMySQL) -> converters -> COPY into schema `snap`.
Binlog path: row events (mysql-replication) -> converters -> upsert into schema `binl`.
"""

from __future__ import annotations

from typing import Any

import psycopg

from tests.harness import SourceDb, TargetDb
from wacdc.config import load_settings
from wacdc.schema.catalog import load_catalog
from wacdc.schema.convert import BadValuePolicy, Coercion, RowConverter
from wacdc.schema.ddl import apply_steps, plan_ddl
from wacdc.schema.profile import load_profile
from wacdc.sink import writer
from wacdc.source.binlog import open_stream, row_changes
from wacdc.source.connection import connect
from wacdc.source.position import BinlogPosition, current_position
from wacdc.source.snapshot import read_converted


class Roundtrip:
    def __init__(self, source: SourceDb, target: TargetDb, tables: list[str],
                 profile: str = "plain", strict: bool = False) -> None:
        self.settings = load_settings(source_url=source.url, target_url=target.url,
                                      profile=profile, tables=tables)
        self.profile = load_profile(profile)
        self.source_url = self.settings.source()
        self.target = target
        self.coercions: list[Coercion] = []
        self.policy = BadValuePolicy(strict=strict, on_coercion=self.coercions.append)
        with connect(self.source_url) as conn:
            catalog = load_catalog(self.settings, self.profile, conn, self.source_url.database)
        self.plans = {schema: {t.name: t for t in catalog.plan(self.profile, schema)}
                      for schema in ("snap", "binl")}
        self.converters = {name: RowConverter(name, tt.columns, tt.key, self.policy)
                           for name, tt in self.plans["snap"].items()}
        with target.connect() as pg:
            for schema, plans in self.plans.items():
                tables_ = list(plans.values())
                apply_steps(pg, plan_ddl(tables_, self.profile, schema), tables_, schema)

    def position(self) -> BinlogPosition:
        with connect(self.source_url) as conn:
            return current_position(conn)

    def snapshot(self, table: str) -> list[tuple]:
        """The daemon's read path: MySQL text values, the fast row parser, COPY."""
        with connect(self.source_url, text_values=True) as conn:
            rows = list(read_converted(conn, self.plans["snap"][table].source,
                                       self.converters[table]))
        with psycopg.connect(self.target.url) as pg:
            writer.copy_rows(pg, self.plans["snap"][table], rows)
        return rows

    def stream(self, start: BinlogPosition) -> list[tuple[str, str, tuple]]:
        """Apply every row event since `start` to schema binl; return what was applied."""
        applied = []
        stream = open_stream(self.source_url, 4000 + start.pos % 1000, start,
                             list(self.converters))
        try:
            changes = list(row_changes(stream))
        finally:
            stream.close()
        with psycopg.connect(self.target.url) as pg:
            for change in changes:
                converter = self.converters[change.table]
                tt = self.plans["binl"][change.table]
                if change.after is not None:
                    row = converter.convert_mapping(change.after, str(change.position))
                    if change.before is not None:
                        old = converter.convert_mapping(change.before, str(change.position))
                        if converter.key_of(old) != converter.key_of(row):
                            writer.delete_keys(pg, tt, [converter.key_of(old)])
                    writer.upsert_rows(pg, tt, [row])
                    applied.append((change.table, change.op, row))
                else:
                    old = converter.convert_mapping(change.before, str(change.position))
                    writer.delete_keys(pg, tt, [converter.key_of(old)])
                    applied.append((change.table, change.op, old))
        return applied

    def read_back(self, schema: str, table: str) -> list[tuple[Any, ...]]:
        tt = self.plans[schema][table]
        key = ", ".join(f'"{k}"' for k in tt.key)
        with self.target.connect() as pg:
            pg.execute("SET TimeZone = 'UTC'")
            return pg.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY {key}').fetchall()

    def column_names(self, table: str) -> list[str]:
        return [c.name for c in self.plans["snap"][table].columns]
