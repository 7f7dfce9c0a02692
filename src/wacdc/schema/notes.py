"""Notes: what of a source default or clause the PostgreSQL target does not carry exactly."""

from __future__ import annotations

from dataclasses import dataclass

from wacdc.schema.model import Column, Table


def quote_literal(value: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings): the text of defaults."""
    return "'" + value.replace("'", "''") + "'"


def show(text: str, limit: int = 80) -> str:
    """Source text as quoted in a note: one line, control characters escaped, bounded."""
    shown = text if text.isprintable() else "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


@dataclass(frozen=True)
class Note:
    """A source default or clause the target does not carry exactly (`schema`, `check`)."""

    table: str
    column: str
    reason: str  # zero_date, on_update, expression, invalid, lossy, override
    text: str
    fix: str = ""

    @property
    def comment(self) -> str:
        """The note as an SQL comment line: printed DDL stays valid SQL."""
        return f"-- note: {self.table}.{self.column}: {self.text}"


def without_default(column: Column, nullable: bool | None = None) -> str:
    nullable = column.nullable if nullable is None else nullable
    return ("inserts after cutover that omit the column get NULL" if nullable else
            "inserts after cutover that omit the column fail (NOT NULL without a default)")


def default_fix(table: str, column: str) -> str:
    return (f'set one in the profile ([columns."{table}.{column}"] default = "<SQL>"), or have '
            "the application always set the column")


def on_update_note(table: Table, column: Column) -> Note | None:
    on_update = getattr(column, "on_update", None)  # introspect's SourceColumn has it
    if not on_update:
        return None
    return Note(table.name, column.name, "on_update",
                f"ON UPDATE {on_update} not carried: PostgreSQL has no such clause; replicated "
                "rows carry the source's values, but after cutover an UPDATE that does not set "
                "the column leaves it unchanged unless a BEFORE UPDATE trigger sets it (wacdc "
                "creates none)",
                "after cutover, add a BEFORE UPDATE trigger that sets the column to "
                "CURRENT_TIMESTAMP, or have the application set it (Prisma: @updatedAt)")
