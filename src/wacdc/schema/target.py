"""The planned PostgreSQL shape of a table: its columns and the table, as data."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from wacdc.schema.model import Column, Index, Table
from wacdc.schema.notes import Note


@dataclass(frozen=True)
class TargetColumn:
    """One PostgreSQL column and how values reach it."""

    name: str
    pg_type: str
    nullable: bool
    default_sql: str | None
    family: str  # converter family (wacdc.schema.families): int, text, json, ...
    source: Column | None  # None for PG-only columns (always NULL)
    enum_type: str | None = None
    notes: tuple[Note, ...] = ()  # what of the source's default the target does not carry


@dataclass(frozen=True)
class TargetTable:
    """A source table and its PostgreSQL shape under a profile."""

    source: Table
    schema: str
    columns: tuple[TargetColumn, ...]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, Index], ...]  # (PG index name, source index)
    skipped: tuple[Index, ...] = ()  # FULLTEXT / SPATIAL: no plain PostgreSQL equivalent

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def relation(self) -> sql.Identifier:
        """"schema"."table", for compositions."""
        return sql.Identifier(self.schema, self.name)

    @property
    def qualified(self) -> str:
        """The relation as SQL text (messages, regclass)."""
        return self.relation.as_string(None)

    @property
    def notes(self) -> tuple[Note, ...]:
        """Source defaults and clauses the target does not carry exactly, per column."""
        return tuple(note for column in self.columns for note in column.notes)
