"""Which tables are replicated, and their source and target shapes."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pymysql

from wacdc.config import Settings
from wacdc.errors import IdentifierError, SchemaError
from wacdc.schema.ddl import TargetTable, plan_table
from wacdc.schema.identifiers import Problem, check_identifiers, refusal
from wacdc.schema.model import Table
from wacdc.schema.profile import Profile, load_profile
from wacdc.schema.types import unsupported_columns
from wacdc.source.connection import connect
from wacdc.source.introspect import introspect_tables, list_base_tables

RETIRED_SUFFIX = "__wacdc_retired"  # the cutover's fence renames the source tables so


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
        """Target tables in apply order. Raises SchemaError for a table without a key, and
        IdentifierError (exit 1) naming every name that does not fit PostgreSQL's 63 bytes
        or collides there: nothing is created under a name PostgreSQL would cut."""
        planned = [plan_table(self.tables[n], profile, schema, check_names=False)
                   for n in self.names if n in self.tables]
        problems = check_identifiers(planned, profile, schema)
        if problems:
            raise IdentifierError(refusal(problems))
        return planned

    def identifier_problems(self, profile: Profile, schema: str) -> list[Problem]:
        """The identifier problems of the tables that can be planned (`wacdc check`
        reports the others' keys and types by themselves)."""
        planned = []
        for name in self.names:
            table = self.tables.get(name)
            if table is None or table.replica_key is None or unsupported_columns(table):
                continue
            try:
                planned.append(plan_table(table, profile, schema, check_names=False))
            except SchemaError:
                continue  # an override the table cannot take: check reports it per column
        return check_identifiers(planned, profile, schema)


def load_catalog(settings: Settings, profile: Profile,
                 conn: pymysql.connections.Connection, database: str) -> Catalog:
    names = wanted_table_names(settings, profile, conn, database)
    # After a cutover, every base table also exists as <name>__wacdc_retired: one name.
    names = list(dict.fromkeys(n.removesuffix(RETIRED_SUFFIX) for n in names))
    tables = introspect_tables(conn, database, names)
    return Catalog(names=names, tables=tables, missing=[n for n in names if n not in tables])


def retired_tables(settings: Settings, names: list[str]) -> set[str]:
    """Which of these source tables the cutover's fence has renamed."""
    source_url = settings.source()
    with connect(source_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                    (source_url.database,))
        present = {row[0] for row in cur.fetchall()}
    return {n for n in names if n not in present and n + RETIRED_SUFFIX in present}


def plan_target(settings: Settings, allow_retired: bool = False
                ) -> tuple[Profile, list[TargetTable]]:
    """The profile and the target tables in apply order; names every missing or keyless table.

    With `allow_retired`, a table the cutover renamed to <name>__wacdc_retired stands in
    for <name> (same shape; callers that read rows use the retired name)."""
    profile = load_profile(settings.profile)
    source_url = settings.source()
    with connect(source_url) as conn:
        catalog = load_catalog(settings, profile, conn, source_url.database)
        if allow_retired and catalog.missing:
            renamed = introspect_tables(conn, source_url.database,
                                        [n + RETIRED_SUFFIX for n in catalog.missing])
            for name in list(catalog.missing):
                table = renamed.get(name + RETIRED_SUFFIX)
                if table is not None:
                    catalog.tables[name] = replace(table, name=name)
                    catalog.missing.remove(name)
    if catalog.missing:
        raise SchemaError(f"tables not found in source database {source_url.database}: "
                          f"{', '.join(catalog.missing)}; fix WACDC_TABLES or the source")
    return profile, catalog.plan(profile, settings.target_schema)
