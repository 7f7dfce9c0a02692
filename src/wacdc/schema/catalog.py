"""Which tables are replicated, and their source and target shapes."""

from __future__ import annotations

from dataclasses import dataclass

import pymysql

from wacdc.config import Settings
from wacdc.errors import SchemaError
from wacdc.schema.ddl import TargetTable, plan_table
from wacdc.schema.introspect import introspect_tables, list_base_tables
from wacdc.schema.model import Table
from wacdc.schema.profile import Profile, load_profile
from wacdc.source.connection import connect


def wanted_table_names(settings: Settings, profile: Profile,
                       conn: pymysql.connections.Connection, database: str) -> list[str]:
    """WACDC_TABLES, else the profile's table set, else every base table (plain profile)."""
    if settings.tables:
        return list(settings.tables)
    if profile.tables:
        return list(profile.tables)
    return list_base_tables(conn, database)


@dataclass
class Catalog:
    names: list[str]  # in apply order
    tables: dict[str, Table]  # the ones that exist in the source
    missing: list[str]

    def plan(self, profile: Profile, schema: str) -> list[TargetTable]:
        """Target tables in apply order. Raises SchemaError for a table without a key."""
        return [plan_table(self.tables[n], profile, schema) for n in self.names
                if n in self.tables]


def load_catalog(settings: Settings, profile: Profile,
                 conn: pymysql.connections.Connection, database: str) -> Catalog:
    names = wanted_table_names(settings, profile, conn, database)
    tables = introspect_tables(conn, database, names)
    return Catalog(names=names, tables=tables, missing=[n for n in names if n not in tables])


def plan_target(settings: Settings) -> tuple[Profile, list[TargetTable]]:
    """The profile and the target tables in apply order; names every missing or keyless table."""
    profile = load_profile(settings.profile)
    source_url = settings.source()
    with connect(source_url) as conn:
        catalog = load_catalog(settings, profile, conn, source_url.database)
    if catalog.missing:
        raise SchemaError(f"tables not found in source database {source_url.database}: "
                          f"{', '.join(catalog.missing)}; fix WACDC_TABLES or the source")
    return profile, catalog.plan(profile, settings.target_schema)
