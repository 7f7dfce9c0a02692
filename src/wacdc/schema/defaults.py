"""Column defaults: a source default as an exact PostgreSQL default, or none and a note.

MySQL and MariaDB print defaults differently in information_schema (introspect.py reads
them exactly); here each shape becomes a PostgreSQL default: literals of every type (the
family's renderer, wacdc.schema.literals), CURRENT_TIMESTAMP with or without precision,
expression defaults (wacdc.schema.expression) folded to a literal or mapped to the
PostgreSQL function that does the same, zero dates; what cannot be carried (ON UPDATE
CURRENT_TIMESTAMP, rand(), expressions over other columns) leaves no default and a
`Note` that `wacdc schema` prints and `wacdc check` warns about.

Replicated rows always carry the source's values: a target default only matters for
rows written to PostgreSQL directly.
"""

from __future__ import annotations

from decimal import Decimal

from wacdc.schema.expression import Expression, Unsupported, Val, unquote_sql_string
from wacdc.schema.families import family as family_of
from wacdc.schema.literals import DefaultContext, no_default
from wacdc.schema.notes import (
    Note,
    default_fix,
    on_update_note,
    quote_literal,
    show,
    without_default,
)

__all__ = ["DefaultPlan", "Note", "default_fix", "on_update_note", "quote_literal",
           "unquote_sql_string", "without_default"]


_CANNOT = object()  # the column cannot take the expression's value (not: no default)


class DefaultPlan(DefaultContext):
    """The PostgreSQL default of one source column, and the notes it needs."""

    def sql(self) -> str | None:
        default = self.column.default
        if default is None or self.column.auto_increment:
            return None
        if default.is_expression:
            return self.expression(default.value)
        return self.literal(default.value)

    def literal(self, value: str) -> str | None:
        """A literal source default, rendered by the column's family."""
        family = family_of(self.family)
        return (family.default if family is not None else no_default)(self, value)

    def now_sql(self, precision: int) -> str:
        rule = self.profile.types.current_timestamp
        if rule != "keep":
            return rule
        if precision == 0 and self.column.fsp == 0:
            return "CURRENT_TIMESTAMP"  # never CURRENT_TIMESTAMP(): PostgreSQL refuses it
        return f"CURRENT_TIMESTAMP({precision})"

    def expression(self, text: str) -> str | None:
        try:
            value = Expression(text, self.now_sql).parse()
        except Unsupported as exc:
            self.dropped("expression", f"expression default {show(text)} has no PostgreSQL "
                         f"equivalent ({exc})")
            return None
        except (ArithmeticError, ValueError, RecursionError) as exc:  # never fail `schema`
            self.dropped("expression", f"expression default {show(text)} could not be read "
                         f"({type(exc).__name__})")
            return None
        return self.carry(value, text)

    def carry(self, value: Val, text: str) -> str | None:
        """An expression's value as the column's default, if the column can take it."""
        if value.kind == "null":
            return None
        carried = (self._carry_constant(value) if value.kind in ("bool", "num", "str",
                                                                 "bytes", "json")
                   else self._carry_volatile(value))
        if carried is not _CANNOT:
            return carried  # type: ignore[return-value]
        self.dropped("expression", f"expression default {show(text)} makes a {value.kind} "
                     f"value, which the {self.pg_type} column cannot take as a default")
        return None

    def _carry_constant(self, value: Val) -> str | object | None:
        family, kind = self.family, value.kind
        if kind == "bool":
            return self.literal("1" if value.value else "0")
        if kind == "num" and (isinstance(value.value, Decimal) or family in ("float", "int",
                                                                            "decimal")):
            return self.literal(str(value.value) if isinstance(value.value, Decimal)
                                else repr(value.value))
        if kind == "str":
            return self.literal(value.value)
        if kind == "bytes" and family in ("binary", "bytes"):
            return self.bytea(value.value)
        if kind == "bytes" and family == "text":
            try:
                return self.literal(value.value.decode("utf-8"))
            except UnicodeDecodeError:
                return _CANNOT
        if kind == "json" and family == "json":
            return self.json_literal(value.value)
        return _CANNOT

    def _carry_volatile(self, value: Val) -> str | object | None:
        family, kind = self.family, value.kind
        if kind in ("ts", "date") and family in ("datetime", "timestamp"):
            return str(value.value)
        if kind in ("ts", "date") and family == "date":
            sql = str(value.value)
            return sql if kind == "date" else (f"{sql}::date" if sql.startswith("(")
                                               else f"({sql})::date")
        if kind == "time" and family == "time":
            return (str(value.value) if self.pg_type.startswith("time")
                    else f"({value.value} - TIME '00:00')")
        if kind == "uuid" and family == "text" and not (
                self.column.kind in ("char", "varchar") and (self.column.char_length or 0) < 36):
            return "gen_random_uuid()::text"  # PostgreSQL 13+
        return _CANNOT

