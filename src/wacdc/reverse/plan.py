"""Per table: how its captured changes are read back from PostgreSQL, ready for MySQL.

The log holds the new row as its row type's text (written under fixed DateStyle,
IntervalStyle, extra_float_digits, bytea_output, TimeZone: exact for every type) and
the old key as JSON; both are read back into the table's own row type, and each
column is rendered as MySQL reads it: timestamps as `YYYY-MM-DD HH:MM:SS.ffffff`
(no time-zone shift; timestamptz in UTC, the forward map's zone), booleans as 0/1,
jsonb as its JSON text, `text[]` as a JSON array (or a SET's comma list), numerics
as their exact text.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from wacdc.reverse.capture import primary_key, relation
from wacdc.reverse.values import Post, post_for
from wacdc.schema.model import Column, Table
from wacdc.sink.state import STATE

INTEGERS = ("smallint", "integer", "bigint")
STAMP = "YYYY-MM-DD HH24:MI:SS.US"


@dataclass(frozen=True)
class TablePlan:
    table: str  # the PostgreSQL (and the app's) name
    mysql_table: str  # where it is written: the retired name while reverse runs
    columns: tuple[str, ...]  # MySQL's stored columns PostgreSQL has, in MySQL's order
    key: tuple[str, ...]  # PostgreSQL's primary key (every column when it has none)
    mysql_columns: dict[str, Column]
    posts: tuple[Post | None, ...]  # per column
    select: sql.Composed  # seq, txid, op, key values, row values


def _in_range(value: sql.Composable, first: str, form: str) -> sql.Composed:
    """`value` in MySQL's text when MySQL can have it; else marked, so MySQL refuses it
    naming the column (to_char would drop BC, and turn infinity into NULL)."""
    return sql.SQL("CASE WHEN isfinite({v}) AND {v} >= {first} THEN to_char({v}, {form}) "
                   "ELSE 'out of MySQL''s range: ' || {v}::text END").format(
        v=value, first=sql.SQL(first), form=sql.Literal(form))


def render(alias: str, name: str, pg_type: str, column: Column) -> sql.Composable:
    value = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(name))
    if pg_type == "boolean":
        return sql.SQL("{}::int").format(value)
    if pg_type.startswith("timestamp") and pg_type.endswith("with time zone"):
        return _in_range(sql.SQL("({} AT TIME ZONE 'UTC')").format(value),
                         "timestamp '0001-01-01'", STAMP)
    if pg_type.startswith("timestamp"):
        return _in_range(value, "timestamp '0001-01-01'", STAMP)
    if pg_type == "date":
        return _in_range(value, "date '0001-01-01'", "YYYY-MM-DD")
    if pg_type == "interval":
        return sql.SQL("extract(epoch FROM {})::numeric").format(value)  # float8 before 14
    if pg_type.endswith("[]"):
        if column.data_type == "set":
            return sql.SQL("array_to_string({}, ',')").format(value)
        return sql.SQL("to_jsonb({})::text").format(value)
    if pg_type == "bytea" or pg_type in INTEGERS:
        return value
    return sql.SQL("{}::text").format(value)


def pg_types(conn: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (relation(schema, table).as_string(conn),)).fetchall()
    return {str(n): str(t) for n, t in rows}


def plan_table(conn: psycopg.Connection, schema: str, table: str, mysql: Table,
               mysql_table: str) -> TablePlan:
    types = pg_types(conn, schema, table)
    by_name = {c.name: c for c in mysql.columns}
    # MySQL computes its generated columns itself (and refuses a value for one).
    columns = tuple(c.name for c in mysql.columns if c.name in types and not c.generated)
    key = tuple(primary_key(conn, schema, table)) or columns
    rel = relation(schema, table)
    keys = [render("k", k, types[k], by_name[k]) for k in key]
    values = [render("r", c, types[c], by_name[c]) for c in columns]
    select = sql.SQL(
        "SELECT l.seq, l.txid::text, l.op, {} FROM {}.reverse_log l "
        "LEFT JOIN LATERAL jsonb_populate_record(NULL::{}, l.old_key) k ON true "
        "LEFT JOIN LATERAL (SELECT (l.new_row::{}).*) r ON true "
        "WHERE l.table_name = %(table)s "
        "AND pg_visible_in_snapshot(l.txid, %(upto)s::pg_snapshot) "
        "AND NOT pg_visible_in_snapshot(l.txid, %(after)s::pg_snapshot) "
        "ORDER BY l.seq").format(sql.SQL(", ").join([*keys, *values]), STATE, rel, rel)
    return TablePlan(table, mysql_table, columns, key, by_name,
                     tuple(post_for(types[c], by_name[c]) for c in columns), select)
