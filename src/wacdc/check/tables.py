"""The tracked tables: present, keyed, of supported types, and carried by the target."""

from __future__ import annotations

import pymysql

from wacdc.check.findings import OK, PROBLEM, WARN, Finding
from wacdc.config import Settings
from wacdc.errors import SchemaError
from wacdc.schema.model import Table
from wacdc.schema.profile import Profile
from wacdc.schema.types import target_columns, unsupported_columns
from wacdc.source.catalog import Catalog, load_catalog
from wacdc.source.introspect import non_transactional


def table_checks(settings: Settings, profile: Profile,
                 conn: pymysql.connections.Connection, database: str
                 ) -> tuple[list[Finding], list[str]]:
    """The findings about the tables, and the names of the tables that exist."""
    catalog = load_catalog(settings, profile, conn, database)
    findings = []
    for name in catalog.missing:
        findings.append(Finding(PROBLEM, f"table {name}", f"does not exist in {database}",
                                "create it, or leave it out of WACDC_TABLES"))
    for name, table in catalog.tables.items():
        problems = []
        if table.replica_key is None:
            problems.append("has no primary key (nor a unique key on NOT NULL columns)")
        for column in unsupported_columns(table):
            problems.append(f"column {column.name} has unsupported type {column.column_type}")
        if problems:
            findings.append(Finding(PROBLEM, f"table {name}", "; ".join(problems),
                                    "add a primary key / change the type in the source, "
                                    "or leave the table out of WACDC_TABLES"))
        else:
            findings.extend(_column_findings(settings, profile, table))
    findings.extend(_engine_findings(conn, database, list(catalog.tables)))
    findings.extend(_identifier_findings(settings, profile, catalog))
    if catalog.tables and not any(f.status == PROBLEM for f in findings):
        findings.append(Finding(OK, "tables", f"{len(catalog.tables)} tables, all with keys "
                                "and supported column types"))
    return findings, list(catalog.tables)


def _engine_findings(conn: pymysql.connections.Connection, database: str,
                     names: list[str]) -> list[Finding]:
    """Tracked tables that are not InnoDB: replicated exactly (the rows a ROLLBACK leaves
    in them are applied, source/framing.py), but MySQL cannot undo their part of a
    failed write, on the way back included."""
    return [Finding(WARN, f"table {name}",
                    f"uses the {engine} engine, which is not transactional: wacdc applies "
                    "the rows a rolled-back transaction left in it, as MySQL kept them, but "
                    "on the way back (reverse replication) a batch interrupted in MySQL "
                    "leaves its part in this table until it is applied again",
                    f"ALTER TABLE `{name}` ENGINE=InnoDB (what Prisma creates)")
            for name, engine in sorted(non_transactional(conn, database, names).items())]


def _identifier_findings(settings: Settings, profile: Profile,
                         catalog: Catalog) -> list[Finding]:
    """Names PostgreSQL would cut to 63 bytes or that collide there (schema/identifiers.py):
    the same problems `wacdc schema` and `wacdc run` refuse with."""
    return [Finding(PROBLEM, "identifier", p.text(), p.fix())
            for p in catalog.identifier_problems(profile, settings.target_schema)]


def _column_findings(settings: Settings, profile: Profile, table: Table) -> list[Finding]:
    """What the target cannot carry of a table's columns (defaults, ON UPDATE), by column.

    A dropped or changed default is a warning: replicated rows carry the source's values.
    Zero-date defaults under WACDC_BAD_VALUES=strict are a problem: the first row that
    holds one stops replication."""
    try:
        columns = target_columns(table, profile)
    except SchemaError as exc:
        return [Finding(PROBLEM, f"table {table.name}", str(exc),
                        "change the type in the source or the profile's override")]
    findings = []
    for column in columns:
        for note in column.notes:
            if note.reason == "zero_date" and settings.bad_value_policy == "strict":
                findings.append(Finding(
                    PROBLEM, f"column {table.name}.{column.name}",
                    f"{note.text}; with WACDC_BAD_VALUES=strict the first row holding a zero "
                    "date stops replication",
                    "use WACDC_BAD_VALUES=coerce (zero dates become NULL, or 0001-01-01 in NOT "
                    "NULL columns), or fix the rows and the default in the source"))
            else:
                findings.append(Finding(WARN, f"column {table.name}.{column.name}", note.text,
                                        note.fix))
    return findings
