"""Read the configured tables from the source's information_schema into the table model."""

from __future__ import annotations

import re
from collections import defaultdict

import pymysql

from wacdc.schema.model import Column, Default, Index, Table
from wacdc.source.connection import ServerInfo, server_info

_ENUM_MEMBER = re.compile(r"'((?:[^']|'')*)'")
_JSON_VALID = re.compile(r"json_valid\(\s*`((?:[^`]|``)+)`\s*\)", re.I)


def parse_enum_values(column_type: str) -> tuple[str, ...]:
    """Members of `enum('a','it''s')` / `set(...)`, unescaped, in definition order."""
    inner = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    return tuple(m.group(1).replace("''", "'").replace("\\\\", "\\")
                 for m in _ENUM_MEMBER.finditer(inner))


def _parse_default(raw: str | None, extra: str, data_type: str, info: ServerInfo,
                   nullable: bool) -> Default | None:
    if raw is None:
        return None
    if info.is_mariadb:
        # MariaDB quotes literal strings and reports an explicit NULL default as 'NULL'.
        if raw == "NULL":
            return None
        if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
            return Default(raw[1:-1].replace("''", "'").replace("\\\\", "\\"))
        if re.fullmatch(r"-?\d+(\.\d+)?(e[-+]?\d+)?", raw, re.I):
            return Default(raw)
        return Default(raw, is_expression=True)
    # MySQL 8 marks expression defaults in EXTRA.
    if "DEFAULT_GENERATED" in extra.upper():
        return Default(raw, is_expression=True)
    return Default(raw)


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


def introspect_tables(conn: pymysql.connections.Connection, schema: str,
                      names: list[str] | None = None) -> dict[str, Table]:
    """Tables of `schema` (all base tables when `names` is None), keyed by name.

    Names that do not exist are simply absent; callers report them.
    """
    info = server_info(conn)
    wanted = names if names is not None else list_base_tables(conn, schema)
    if not wanted:
        return {}
    placeholders = ", ".join(["%s"] * len(wanted))
    json_columns = _json_columns(conn, schema, info)
    columns: dict[str, list[Column]] = defaultdict(list)
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, "
            "DATA_TYPE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, "
            "DATETIME_PRECISION, CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, "
            "GENERATION_EXPRESSION "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
            f"AND TABLE_NAME IN ({placeholders}) ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (schema, *wanted))
        for row in cur.fetchall():
            table_name = row["TABLE_NAME"]
            data_type = str(row["DATA_TYPE"]).lower()
            column_type = str(row["COLUMN_TYPE"]).lower()
            extra = str(row["EXTRA"] or "")
            nullable = row["IS_NULLABLE"] == "YES"
            is_json = data_type == "json" or row["COLUMN_NAME"] in json_columns[table_name]
            precision = row["NUMERIC_PRECISION"]
            if data_type == "bit":
                precision = int(re.search(r"\((\d+)\)", column_type).group(1))  # type: ignore[union-attr]
            generated = row["GENERATION_EXPRESSION"] or None
            if generated is not None and "GENERATED" not in extra.upper():
                generated = None
            columns[table_name].append(Column(
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
                is_json=is_json,
            ))
        cur.execute(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, INDEX_TYPE, "
            "SUB_PART "
            "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
            f"AND TABLE_NAME IN ({placeholders}) ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
            (schema, *wanted))
        index_parts: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for row in cur.fetchall():
            index_parts[(row["TABLE_NAME"], row["INDEX_NAME"])].append(row)
        cur.execute(
            "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN ({placeholders})", (schema, *wanted))
        estimates = {r["TABLE_NAME"]: int(r["TABLE_ROWS"] or 0) for r in cur.fetchall()}

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
    tables = {}
    for name in wanted:
        if name not in columns:
            continue
        ordered = sorted(indexes[name], key=lambda i: (not i.primary, i.name))
        tables[name] = Table(schema=schema, name=name, columns=tuple(columns[name]),
                             indexes=tuple(ordered), estimated_rows=estimates.get(name, 0))
    return tables
