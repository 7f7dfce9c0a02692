"""Snapshot reads: SELECT expressions per column, so the text protocol loses nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pymysql.cursors

from wacdc.schema.convert import RowConverter
from wacdc.schema.model import Column, Table
from wacdc.source.connection import quote_ident


def select_expression(column: Column) -> str:
    name = quote_ident(column.name)
    if column.data_type == "float":
        # The text protocol prints FLOAT with 6 digits; as DOUBLE it is the exact float32.
        return f"{name} + 0e0"
    return name


def select_sql(table: Table, columns: tuple[str, ...]) -> str:
    exprs = ", ".join(select_expression(table.column(c)) for c in columns)
    return f"SELECT {exprs} FROM {quote_ident(table.schema)}.{quote_ident(table.name)}"


def read_converted(conn: pymysql.connections.Connection, table: Table,
                   converter: RowConverter, where: str = "", args: tuple = ()
                   ) -> Iterator[tuple]:
    """All rows (optionally filtered), converted; unbuffered so memory stays flat."""
    sql = select_sql(table, converter.source_names)
    key = ", ".join(quote_ident(k) for k in (table.replica_key or ()))
    sql += f" {where}" if where else ""
    sql += f" ORDER BY {key}" if key else ""
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(sql, args or None)
        for row in cur:
            yield converter.convert(row)
