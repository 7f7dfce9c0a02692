"""The PostgreSQL data statements wacdc writes rows with: upsert, delete by key, COPY.

Every statement is a psycopg composition: names reach SQL only as `sql.Identifier`.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql


def names(columns: Sequence[str]) -> sql.Composed:
    """`"a", "b"`: a column list."""
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def upsert(relation: sql.Composable, columns: Sequence[str], key: Sequence[str],
           rows: sql.Composable | None = None) -> sql.Composed:
    """INSERT of `columns` that updates the non-key ones of a row whose key exists (does
    nothing when all are key). The rows: one of %s placeholders, or `SELECT columns
    FROM rows`."""
    non_key = [n for n in columns if n not in key]
    action = sql.SQL("DO UPDATE SET {}").format(sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in non_key)) \
        if non_key else sql.SQL("DO NOTHING")
    source = (sql.SQL("VALUES ({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
              if rows is None else sql.SQL("SELECT {} FROM {}").format(names(columns), rows))
    return sql.SQL("INSERT INTO {} ({}) {} ON CONFLICT ({}) {}").format(
        relation, names(columns), source, names(key), action)


def delete_by_key(relation: sql.Composable, key: Sequence[str]) -> sql.Composed:
    """DELETE of the row with this key (one %s per key column)."""
    return sql.SQL("DELETE FROM {} WHERE {}").format(relation, sql.SQL(" AND ").join(
        sql.SQL("{} = %s").format(sql.Identifier(k)) for k in key))


def copy_in(relation: sql.Composable, columns: Sequence[str]) -> sql.Composed:
    """COPY of these columns from the client."""
    return sql.SQL("COPY {} ({}) FROM STDIN").format(relation, names(columns))
