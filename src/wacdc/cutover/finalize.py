"""PostgreSQL's side of the cutover: row counts, identities, foreign keys, orphans."""

from __future__ import annotations

from typing import Any

import psycopg
import pymysql
from psycopg import sql

from wacdc.log import get_logger
from wacdc.schema.profile import ForeignKey
from wacdc.sink import writer
from wacdc.source.connection import one_value
from wacdc.source.sql import quote_ident

log = get_logger("wacdc.cutover")
ORPHAN_KEYS_LISTED = 100


def count_rows(source: pymysql.connections.Connection, target: psycopg.Connection,
               schema: str, tables: list[str]) -> dict[str, dict[str, int]]:
    counts = {}
    with source.cursor() as cur:
        for table in tables:
            cur.execute(f"SELECT COUNT(*) FROM {quote_ident(table)}")
            mine = target.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table))).fetchone()
            counts[table] = {"source": int(one_value(cur)),
                             "target": int(mine[0]) if mine else 0}
    return counts


def mismatches(counts: dict[str, dict[str, int]], source: str = "source",
               target: str = "target") -> str | None:
    """The tables whose row counts differ, as a refusal's reason; None when none do."""
    differ = {t: c for t, c in counts.items() if c["source"] != c["target"]}
    if not differ:
        return None
    return "row counts differ after the drain: " + ", ".join(
        f"{t} {source} {c['source']} {target} {c['target']}" for t, c in differ.items()
    ) + "; run `wacdc verify`"


def advance_identities(conn: psycopg.Connection, schema: str, tables: list[str]) -> int:
    """Identity columns' sequences past the largest replicated value."""
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = ANY(%s) AND is_identity = 'YES'",
        (schema, tables)).fetchall()
    for table, column in rows:
        conn.execute(sql.SQL(
            "SELECT setval(pg_get_serial_sequence({}, {}), "
            "GREATEST((SELECT max({}) FROM {}.{}), 1), "
            "(SELECT max({}) FROM {}.{}) IS NOT NULL)").format(
            sql.Literal(regclass_text(conn, schema, table)), sql.Literal(column),
            sql.Identifier(column), sql.Identifier(schema), sql.Identifier(table),
            sql.Identifier(column), sql.Identifier(schema), sql.Identifier(table)))
    return len(rows)


def regclass_text(conn: psycopg.Connection, schema: str, table: str) -> str:
    """`"schema"."table"` as a regclass argument takes it, quoted by psycopg."""
    return sql.Identifier(schema, table).as_string(conn)


def _fk_exists(conn: psycopg.Connection, schema: str, fk: ForeignKey) -> bool:
    return conn.execute(
        "SELECT 1 FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE c.conname = %s AND t.relname = %s AND n.nspname = %s",
        (fk.name, fk.table, schema)).fetchone() is not None


def add_foreign_keys(conn: psycopg.Connection, schema: str, fks: list[ForeignKey]) -> int:
    """The profile's foreign keys, NOT VALID: checked for new rows, old rows later."""
    created = 0
    for fk in fks:
        if _fk_exists(conn, schema, fk):
            continue
        conn.execute(sql.SQL(
            "ALTER TABLE {}.{} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {}.{} ({}) "
            "ON DELETE {} ON UPDATE {} NOT VALID").format(
            sql.Identifier(schema), sql.Identifier(fk.table), sql.Identifier(fk.name),
            sql.SQL(", ").join(map(sql.Identifier, fk.columns)), sql.Identifier(schema),
            sql.Identifier(fk.references),
            sql.SQL(", ").join(map(sql.Identifier, fk.referenced_columns)),
            sql.SQL(fk.on_delete), sql.SQL(fk.on_update)))
        created += 1
    return created


def _orphan_where(schema: str, fk: ForeignKey) -> sql.Composed:
    present = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c))
                                    for c in fk.columns)
    match = sql.SQL(" AND ").join(sql.SQL("p.{} = c.{}").format(sql.Identifier(r),
                                                               sql.Identifier(c))
                                  for c, r in zip(fk.columns, fk.referenced_columns,
                                                  strict=True))
    return sql.SQL("{} AND NOT EXISTS (SELECT 1 FROM {}.{} p WHERE {})").format(
        present, sql.Identifier(schema), sql.Identifier(fk.references), match)


def find_orphans(conn: psycopg.Connection, schema: str, fks: list[ForeignKey]
                 ) -> dict[str, dict[str, Any]]:
    """Per foreign key: child rows whose parent does not exist (keys listed, counted)."""
    found: dict[str, dict[str, Any]] = {}
    for fk in fks:
        key = _primary_key(conn, schema, fk.table)
        key_text = sql.SQL(", ").join(sql.SQL("c.{}::text").format(sql.Identifier(k))
                                      for k in key)
        where = _orphan_where(schema, fk)
        count = conn.execute(sql.SQL("SELECT count(*) FROM {}.{} c WHERE {}").format(
            sql.Identifier(schema), sql.Identifier(fk.table), where)).fetchone()
        if not count or not count[0]:
            continue
        keys = conn.execute(sql.SQL("SELECT ARRAY[{}] FROM {}.{} c WHERE {} ORDER BY 1 "
                                    "LIMIT {}").format(
            key_text, sql.Identifier(schema), sql.Identifier(fk.table), where,
            sql.Literal(ORPHAN_KEYS_LISTED))).fetchall()
        found[fk.name] = {
            "table": fk.table, "columns": fk.columns, "references": fk.references,
            "count": int(count[0]),
            "keys": [k[0][0] if len(k[0]) == 1 else k[0] for k in keys],
            "action": fk.on_delete if fk.on_delete in ("SET NULL", "CASCADE") else None}
    return found


def describe_orphans(orphans: dict[str, dict[str, Any]]) -> str:
    return "; ".join(
        f"{o['table']}.{','.join(o['columns'])} -> {o['references']} ({name}): {o['count']} "
        f"row(s), keys {', '.join(map(str, o['keys'][:10]))}"
        f"{' ...' if o['count'] > 10 else ''}" for name, o in orphans.items())


def _primary_key(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey, a.attnum)",
        (regclass_text(conn, schema, table),)).fetchall()
    return [r[0] for r in rows] or ["ctid"]


def validate_foreign_keys(conn: psycopg.Connection, schema: str, fks: list[ForeignKey],
                          policy: str) -> dict[str, dict[str, Any]]:
    """VALIDATE each foreign key; orphans reported, and handled under policy `apply`."""
    orphans = find_orphans(conn, schema, fks)
    for fk in fks:
        found = orphans.get(fk.name)
        if found and policy == "apply" and found["action"]:
            where = _orphan_where(schema, fk)
            if found["action"] == "SET NULL":
                statement = sql.SQL("UPDATE {}.{} c SET {} WHERE {}").format(
                    sql.Identifier(schema), sql.Identifier(fk.table), sql.SQL(", ").join(
                        sql.SQL("{} = NULL").format(sql.Identifier(col)) for col in fk.columns),
                    where)
            else:
                statement = sql.SQL("DELETE FROM {}.{} c WHERE {}").format(
                    sql.Identifier(schema), sql.Identifier(fk.table), where)
            with conn.transaction():
                writer.assert_writer(conn)
                conn.execute(statement)
            found["applied"] = found["action"]
            log.warning("orphan rows handled by the relation's onDelete action",
                        foreign_key=fk.name, table=fk.table, rows=found["count"],
                        action=found["action"], keys=found["keys"][:20])
        elif found:
            found["applied"] = None
            log.warning("orphan rows: foreign key left NOT VALID", foreign_key=fk.name,
                        table=fk.table, rows=found["count"], keys=found["keys"][:20])
            continue
        conn.execute(sql.SQL("ALTER TABLE {}.{} VALIDATE CONSTRAINT {}").format(
            sql.Identifier(schema), sql.Identifier(fk.table), sql.Identifier(fk.name)))
    return orphans
