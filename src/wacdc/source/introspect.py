"""Read the configured tables from the source's information_schema into the table model."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import pymysql

from wacdc.schema.defaults import unquote_sql_string
from wacdc.schema.model import Column, Default, Index, Table
from wacdc.source.connection import ServerInfo, server_info
from wacdc.source.sql import qualified, quote_ident

_EPOCH = dt.datetime(1970, 1, 1)

_ENUM_MEMBER = re.compile(r"'((?:[^']|'')*)'")
_JSON_VALID = re.compile(r"json_valid\(\s*`((?:[^`]|``)+)`\s*\)", re.I)


def parse_enum_values(column_type: str) -> tuple[str, ...]:
    """Members of `enum('a','it''s')` / `set(...)`, unescaped, in definition order."""
    inner = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    return tuple(m.group(1).replace("''", "'").replace("\\\\", "\\")
                 for m in _ENUM_MEMBER.finditer(inner))


_MARIADB_NUMBER = re.compile(r"-?\d+(\.\d+)?(e[-+]?\d+)?", re.I)
_ON_UPDATE = re.compile(r"\bon update (\S+)", re.I)
_BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
_TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext",
                         "enum", "set"})


@dataclass(frozen=True)
class SourceColumn(Column):
    """A column as information_schema describes it, with its ON UPDATE clause (EXTRA)."""

    on_update: str | None = None  # e.g. current_timestamp(), CURRENT_TIMESTAMP(6)


def _parse_default(raw: str | None, extra: str, data_type: str, info: ServerInfo,
                   nullable: bool) -> Default | None:
    """COLUMN_DEFAULT as a literal value (unescaped) or an expression's SQL text."""
    if raw is None:
        return None
    if info.is_mariadb:
        # MariaDB 10.2+ quotes literal strings (escaped as SQL: '' \\ \0 \n \r), prints
        # numbers bare, an explicit NULL default as NULL and expressions as SQL.
        if raw == "NULL":
            return None
        if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
            return Default(unquote_sql_string(raw[1:-1]))
        if _MARIADB_NUMBER.fullmatch(raw):
            return Default(raw)
        if data_type == "bit" and re.fullmatch(r"b'[01]*'", raw):
            return Default(raw)
        if data_type in _BINARY_TYPES and re.fullmatch(r"0x[0-9a-f]*", raw, re.I):
            return Default(raw)
        return Default(raw, is_expression=True)
    # MySQL 8 prints literals unquoted and marks expression defaults (CURRENT_TIMESTAMP
    # too) DEFAULT_GENERATED; older servers print CURRENT_TIMESTAMP unmarked.
    if "DEFAULT_GENERATED" in extra.upper() or (
            data_type in ("datetime", "timestamp")
            and re.fullmatch(r"current_timestamp(\(\d?\))?", raw, re.I)):
        return Default(_mysql_expression(raw), is_expression=True)
    return Default(raw)


def _mysql_expression(raw: str) -> str:
    """MySQL's COLUMN_DEFAULT of an expression default, as the SQL it stands for.

    MySQL 8/9 escape the expression once more (every quote as \\', every backslash
    doubled) and show its non-ASCII text byte by byte (UTF-8 read as Latin-1)."""
    if "'" in raw and not re.search(r"(?<!\\)'", raw):
        raw = re.sub(r"\\(.)", r"\1", raw, flags=re.S)
    if not raw.isascii():
        try:
            raw = raw.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass  # not the byte-by-byte form: keep the text as it is
    return raw


def _exact_defaults(conn: pymysql.connections.Connection, schema: str, table: str,
                    columns: list[Column]) -> list[Column]:
    """Binary and TIMESTAMP literal defaults as the server itself evaluates them.

    information_schema shows binary defaults lossily (MariaDB: bytes that are not UTF-8
    as '?'; MySQL: hex cut at the first zero byte, BINARY(n) unpadded), MariaDB's shows
    4-byte UTF-8 characters (emoji) as '?', and MySQL's a TIMESTAMP default in the time
    zone of the session that created it. DEFAULT(col) is exact: as hex for bytes, as
    epoch seconds (no time zone) for TIMESTAMP, as utf8mb4 text for text."""
    wanted = [c for c in columns if c.default is not None and not c.default.is_expression
              and (c.data_type in _BINARY_TYPES
                   or (c.data_type == "timestamp" and c.default.value[:4] != "0000")
                   or (c.data_type in _TEXT_TYPES and "?" in c.default.value))]
    if not wanted:
        return columns
    exprs = [f"UNIX_TIMESTAMP(DEFAULT(t.{quote_ident(c.name)}))" if c.data_type == "timestamp"
             else f"HEX(DEFAULT(t.{quote_ident(c.name)}))" if c.data_type in _BINARY_TYPES
             else f"CAST(DEFAULT(t.{quote_ident(c.name)}) AS CHAR)" for c in wanted]
    source = f"{qualified(schema, table)} AS t"
    try:
        with conn.cursor(pymysql.cursors.Cursor) as cur:
            # DEFAULT() needs a row of the table, any row; an empty table joins to one.
            cur.execute(f"SELECT {', '.join(exprs)} FROM {source} LIMIT 1")
            row = cur.fetchone()
            if row is None:
                cur.execute(f"SELECT {', '.join(exprs)} FROM (SELECT 1) AS d "
                            f"LEFT JOIN {source} ON FALSE")
                row = cur.fetchone()
    except pymysql.err.MySQLError:
        return columns  # keep information_schema's text; ddl notes what it cannot read
    exact: dict[str, str] = {}
    for column, value in zip(wanted, row or (), strict=False):
        if value is None:
            continue
        if column.data_type == "timestamp":
            seconds = Decimal(str(value))
            moment = _EPOCH + dt.timedelta(seconds=int(seconds),
                                           microseconds=int(seconds % 1 * 1_000_000))
            text = moment.strftime("%Y-%m-%d %H:%M:%S")
            if column.fsp:
                text += f".{moment.microsecond:06d}"[: column.fsp + 1]
            exact[column.name] = text
        elif column.data_type in _BINARY_TYPES:
            exact[column.name] = "0x" + str(value).lower()
        elif isinstance(value, str):
            exact[column.name] = value
    return [replace(c, default=Default(exact[c.name])) if c.name in exact else c
            for c in columns]


def _json_columns(conn: pymysql.connections.Connection, schema: str,
                  info: ServerInfo) -> dict[str, set[str]]:
    """MariaDB's JSON is LONGTEXT + CHECK (json_valid(col)); find those columns per table."""
    found: dict[str, set[str]] = defaultdict(set)
    if not info.is_mariadb:
        return found
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = %s", (schema,))
        for table_name, clause in cur.fetchall():
            match = _JSON_VALID.fullmatch(str(clause).strip())
            if match:
                found[table_name].add(match.group(1).replace("``", "`"))
    return found


def list_base_tables(conn: pymysql.connections.Connection, schema: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            (schema,))
        return [row[0] for row in cur.fetchall()]


def non_transactional(conn: pymysql.connections.Connection, schema: str,
                      names: list[str]) -> dict[str, str]:
    """{table: storage engine} of those of `names` whose engine has no transactions
    (MyISAM, Aria, MEMORY, ...: information_schema.ENGINES says so)."""
    if not names:
        return {}
    with conn.cursor() as cur:
        cur.execute("SELECT t.TABLE_NAME, t.ENGINE FROM information_schema.TABLES t "
                    "JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE "
                    f"WHERE t.TABLE_SCHEMA = %s AND t.TABLE_NAME IN ({_in(names)}) "
                    "AND e.TRANSACTIONS <> 'YES'", (schema, *names))
        return {str(name): str(engine) for name, engine in cur.fetchall()}


def introspect_tables(conn: pymysql.connections.Connection, schema: str,
                      names: list[str] | None = None) -> dict[str, Table]:
    """Tables of `schema` (all base tables when `names` is None), keyed by name.

    Names that do not exist are simply absent; callers report them.
    """
    info = server_info(conn)
    wanted = names if names is not None else list_base_tables(conn, schema)
    if not wanted:
        return {}
    json_columns = _json_columns(conn, schema, info)
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        columns = _columns(cur, schema, wanted, info, json_columns)
        indexes = _indexes(cur, schema, wanted)
        estimates = _estimates(cur, schema, wanted)
    tables = {}
    for name in wanted:
        if name not in columns:
            continue
        columns[name] = _exact_defaults(conn, schema, name, columns[name])
        ordered = sorted(indexes[name], key=lambda i: (not i.primary, i.name))
        tables[name] = Table(schema=schema, name=name, columns=tuple(columns[name]),
                             indexes=tuple(ordered), estimated_rows=estimates.get(name, 0))
    return tables


def _in(wanted: list[str]) -> str:
    return ", ".join(["%s"] * len(wanted))


def _columns(cur: Any, schema: str, wanted: list[str], info: ServerInfo,
             json_columns: dict[str, set[str]]) -> dict[str, list[Column]]:
    columns: dict[str, list[Column]] = defaultdict(list)
    cur.execute(
        "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, "
        "DATA_TYPE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, "
        "DATETIME_PRECISION, CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, "
        "GENERATION_EXPRESSION "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
        f"AND TABLE_NAME IN ({_in(wanted)}) ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (schema, *wanted))
    for row in cur.fetchall():
        table_name = row["TABLE_NAME"]
        is_json = row["COLUMN_NAME"] in json_columns[table_name]
        columns[table_name].append(_source_column(row, info, is_json))
    return columns


def _source_column(row: dict[str, Any], info: ServerInfo, in_json_check: bool
                   ) -> SourceColumn:
    """One information_schema.COLUMNS row (`in_json_check`: MariaDB's JSON)."""
    data_type = str(row["DATA_TYPE"]).lower()
    column_type = str(row["COLUMN_TYPE"]).lower()
    extra = str(row["EXTRA"] or "")
    nullable = row["IS_NULLABLE"] == "YES"
    precision = row["NUMERIC_PRECISION"]
    if data_type == "bit":
        precision = int(re.search(r"\((\d+)\)", column_type).group(1))  # type: ignore[union-attr]
    generated = row["GENERATION_EXPRESSION"] or None
    if generated is not None and "GENERATED" not in extra.upper():
        generated = None
    on_update = _ON_UPDATE.search(extra)
    return SourceColumn(
        name=row["COLUMN_NAME"],
        position=int(row["ORDINAL_POSITION"]) - 1,
        data_type=data_type,
        column_type=column_type,
        nullable=nullable,
        default=_parse_default(row["COLUMN_DEFAULT"], extra, data_type, info, nullable),
        unsigned="unsigned" in column_type,
        char_length=row["CHARACTER_MAXIMUM_LENGTH"],
        precision=int(precision) if precision is not None else None,
        scale=int(row["NUMERIC_SCALE"]) if row["NUMERIC_SCALE"] is not None else None,
        fsp=int(row["DATETIME_PRECISION"] or 0),
        charset=row["CHARACTER_SET_NAME"],
        collation=row["COLLATION_NAME"],
        values=parse_enum_values(column_type) if data_type in ("enum", "set") else (),
        auto_increment="auto_increment" in extra.lower(),
        generated=generated,
        is_json=data_type == "json" or in_json_check,
        on_update=on_update.group(1) if on_update else None,
    )


def _indexes(cur: Any, schema: str, wanted: list[str]) -> dict[str, list[Index]]:
    cur.execute(
        "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, INDEX_TYPE, "
        "SUB_PART "
        "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
        f"AND TABLE_NAME IN ({_in(wanted)}) ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        (schema, *wanted))
    index_parts: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in cur.fetchall():
        index_parts[(row["TABLE_NAME"], row["INDEX_NAME"])].append(row)
    indexes: dict[str, list[Index]] = defaultdict(list)
    for (table_name, index_name), parts in index_parts.items():
        indexes[table_name].append(Index(
            name=index_name,
            columns=tuple(p["COLUMN_NAME"] for p in parts),
            unique=not int(parts[0]["NON_UNIQUE"]),
            primary=index_name == "PRIMARY",
            kind=str(parts[0]["INDEX_TYPE"]).upper(),
            prefixes=tuple(int(p["SUB_PART"]) if p["SUB_PART"] else None for p in parts),
        ))
    return indexes


def _estimates(cur: Any, schema: str, wanted: list[str]) -> dict[str, int]:
    cur.execute(
        "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN ({_in(wanted)})", (schema, *wanted))
    return {r["TABLE_NAME"]: int(r["TABLE_ROWS"] or 0) for r in cur.fetchall()}
