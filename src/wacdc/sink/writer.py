"""Writing converted rows into PostgreSQL: COPY for bulk, upsert/delete for changes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql

from wacdc.schema.ddl import TargetTable


def _ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def _table(tt: TargetTable) -> sql.Composed:
    return sql.SQL("{}.{}").format(_ident(tt.schema), _ident(tt.name))


def copy_rows(conn: psycopg.Connection, tt: TargetTable, rows: Iterable[Sequence]) -> int:
    columns = sql.SQL(", ").join(_ident(c.name) for c in tt.columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(_table(tt), columns)
    count = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def upsert_sql(tt: TargetTable) -> sql.Composed:
    names = [c.name for c in tt.columns]
    non_key = [n for n in names if n not in tt.key]
    values = sql.SQL(", ").join(sql.Placeholder() for _ in names)
    update = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(_ident(n), _ident(n)) for n in non_key)
    action = (sql.SQL("DO UPDATE SET {}").format(update) if non_key
              else sql.SQL("DO NOTHING"))
    return sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
        _table(tt), sql.SQL(", ").join(map(_ident, names)), values,
        sql.SQL(", ").join(map(_ident, tt.key)), action)


def delete_sql(tt: TargetTable) -> sql.Composed:
    cond = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(_ident(k)) for k in tt.key)
    return sql.SQL("DELETE FROM {} WHERE {}").format(_table(tt), cond)


def upsert_rows(conn: psycopg.Connection, tt: TargetTable, rows: Sequence[Sequence]) -> None:
    if rows:
        with conn.cursor() as cur:
            cur.executemany(upsert_sql(tt), rows)


def delete_keys(conn: psycopg.Connection, tt: TargetTable, keys: Sequence[Sequence]) -> None:
    if keys:
        with conn.cursor() as cur:
            cur.executemany(delete_sql(tt), keys)
