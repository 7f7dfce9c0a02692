"""Carry rows from MySQL to PostgreSQL through both paths and read them back.

Snapshot path: SELECT (PyMySQL) -> converters -> COPY into schema `snap`.
Binlog path: row events (mysql-replication) -> converters -> upsert into schema `binl`.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from tests.support.harness import TEST_ENV, SourceDb, TargetDb
from wacdc.config import load_settings
from wacdc.events import BinlogPosition, Transaction
from wacdc.schema.convert import BadValuePolicy, Coercion, RowConverter
from wacdc.schema.ddl import apply_steps, plan_ddl
from wacdc.schema.profile import load_profile
from wacdc.sink import state
from wacdc.sink.apply import Applier, TableSink
from wacdc.snapshot import Progress, copy_table
from wacdc.source.binlog import open_stream, row_changes
from wacdc.source.catalog import load_catalog
from wacdc.source.connection import connect
from wacdc.source.position import current_position
from wacdc.source.read_view import open_read_view


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

    def snapshot(self, table: str) -> None:
        """The daemon's snapshot code: a read view, keyset chunks, text values, COPY."""
        view = open_read_view(self.source_url, [self.plans["snap"][table].source])
        try:
            with psycopg.connect(self.target.url, autocommit=True,
                                 options="-c TimeZone=UTC") as pg:
                state.ensure_schema(pg)
                state.register_tables(pg, {table: 0})
                copy_table(view, pg, self.plans["snap"][table], self.converters[table],
                           chunk_rows=3, progress=Progress(tty=False),
                           stop=threading.Event(), on_chunk=None)
        finally:
            view.close()

    def stream(self, start: BinlogPosition) -> list[tuple[str, str]]:
        """The daemon's apply code on every row event since `start` (schema binl)."""
        stream = open_stream(self.source_url, 4000 + start.pos % 1000, start,
                             list(self.converters),
                             decoder=TEST_ENV.get("WACDC_DECODER", "compiled"))
        try:
            changes = list(row_changes(stream))
        finally:
            stream.close()
        sinks = {name: TableSink(tt, self.policy, None) for name, tt in self.plans["binl"].items()}
        with psycopg.connect(self.target.url, autocommit=True, options="-c TimeZone=UTC") as pg:
            state.ensure_schema(pg)
            state.set_phase(pg, "streaming")
            applier = Applier(pg, sinks)
            for change in changes:  # one source transaction per change keeps errors precise
                applier.apply([Transaction(change.position, 0.0, [change])])
        return [(c.table, c.op) for c in changes]

    def read_back(self, schema: str, table: str) -> list[tuple[Any, ...]]:
        tt = self.plans[schema][table]
        key = ", ".join(f'"{k}"' for k in tt.key)
        with self.target.connect() as pg:
            pg.execute("SET TimeZone = 'UTC'")
            return pg.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY {key}').fetchall()

    def column_names(self, table: str) -> list[str]:
        return [c.name for c in self.plans["snap"][table].columns]
