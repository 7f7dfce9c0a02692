"""A source table's PostgreSQL columns: the families' type map (DESIGN §4), profile overrides."""

from __future__ import annotations

from psycopg import sql

from wacdc.errors import SchemaError
from wacdc.schema.defaults import DefaultPlan
from wacdc.schema.families import TYPE_MAP
from wacdc.schema.model import Column, Table
from wacdc.schema.notes import Note, default_fix, on_update_note, without_default
from wacdc.schema.profile import Profile
from wacdc.schema.target import TargetColumn

SUPPORTED_KINDS = frozenset(TYPE_MAP)

__all__ = ["SUPPORTED_KINDS", "TYPE_MAP", "TargetColumn", "target_columns",
           "unsupported_columns"]


def _unsupported(table: Table, column: Column) -> SchemaError:
    return SchemaError(
        f"{table.name}.{column.name}: MySQL type {column.column_type!r} is not supported; "
        f"exclude the table (WACDC_TABLES) or add a column override to the profile")


def unsupported_columns(table: Table) -> list[Column]:
    return [c for c in table.columns if c.kind not in SUPPORTED_KINDS]


def _pg_type(column: Column, profile: Profile, table: Table) -> tuple[str, str, str | None]:
    kind = column.kind
    if kind not in TYPE_MAP:
        raise _unsupported(table, column)
    signed, unsigned, family = TYPE_MAP[kind]
    enum_type = None
    template = unsigned if column.unsigned and unsigned else signed
    if kind in ("char", "varchar") and profile.types.varchar == "text":
        template = "text"
    if kind == "time" and profile.types.time == "time":
        template = "time({fsp})"
    if kind == "enum" and profile.types.enum == "pg_enum":
        enum = profile.enum_for(table.name, column.name)
        enum_type = enum.name if enum else f"{table.name}_{column.name}"
        template = sql.Identifier(enum_type).as_string(None)
    pg_type = template.format(p=column.precision, s=column.scale, n=column.char_length
                              if kind in ("char", "varchar") else column.bit_width,
                              fsp=column.fsp)
    return pg_type, family, enum_type


def _enum_labels(table: Table, column: Column, profile: Profile,
                 enum_type: str | None) -> tuple[str, ...] | None:
    if enum_type is None:
        return None
    declared = next((e for e in profile.enums if e.name == enum_type), None)  # as ddl does
    return tuple(declared.values) if declared else column.values


def target_columns(table: Table, profile: Profile) -> list[TargetColumn]:
    """The PostgreSQL columns of a table: source columns in order, then PG-only ones."""
    result = []
    for column in table.columns:
        pg_type, family, enum_type = _pg_type(column, profile, table)
        nullable = column.nullable
        plan = DefaultPlan(table, column, family, pg_type, profile,
                            _enum_labels(table, column, profile, enum_type))
        default_sql = plan.sql()
        notes = plan.notes
        override = profile.override_for(table.name, column.name)
        if override is not None:
            nullable = override.nullable if override.nullable is not None else nullable
            if override.default is not None:
                default_sql, notes = override.default, []  # the profile decides
            elif column.default is not None and (override.type not in (None, pg_type)
                                                 or override.convert not in (None, family)):
                # The source default was planned for the source's type, not this one.
                default_sql = None
                notes = [Note(table.name, column.name, "override",
                              f"the profile changes the column to {override.type or pg_type}; "
                              "the source default is not carried; no default in PostgreSQL: "
                              f"{without_default(column, nullable)}",
                              default_fix(table.name, column.name))]
            pg_type = override.type or pg_type
            family = override.convert or family
        on_update = on_update_note(table, column)
        if on_update is not None:
            notes = [*notes, on_update]
        result.append(TargetColumn(column.name, pg_type, nullable, default_sql, family,
                                   column, enum_type, tuple(notes)))
    for extra in profile.extra_columns_for(table.name):
        result.append(TargetColumn(extra.name, extra.type, True, extra.default, "extra", None))
    return result
