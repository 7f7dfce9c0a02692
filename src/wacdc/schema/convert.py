"""Row converters: source values -> PostgreSQL-ready values, compiled once per table.

The same converter accepts what PyMySQL returns on a SELECT and what
mysql-replication returns from a row event; both paths give the identical
PostgreSQL value. A table's converter is a tuple of per-column functions (each
column's family's, wacdc.schema.families) built once; the per-row loop only calls
them. Bad input (DESIGN §4) goes through one policy: `coerce` substitutes the
documented default and records the coercion, `strict` raises BadValueError naming
table, key and column.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wacdc.errors import BadValueError
from wacdc.schema.badvalues import Bad, BadValuePolicy, Coercion
from wacdc.schema.converters import identity, mysql_time_text, parse_mysql_time
from wacdc.schema.families import FAMILIES, GUARD_NAMES
from wacdc.schema.target import TargetColumn

__all__ = ["BadValuePolicy", "Coercion", "RowConverter", "mysql_time_text",
           "parse_mysql_time"]


class RowConverter:
    """Converts rows of one table; compiled once from its target columns.

    The per-column functions are bound into one generated function per table
    (`row -> tuple`), so the per-row work is a single call with no loop, lookup or
    dispatch; columns that need no conversion are passed through as they are.
    """

    def __init__(self, table: str, columns: Sequence[TargetColumn], key: Sequence[str],
                 policy: BadValuePolicy) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.policy = policy
        self._bad = Bad(table, policy)
        names = [c.name for c in self.columns]
        self.key_positions = tuple(names.index(k) for k in key)
        # Positions of the source columns in the target order (extras excluded).
        self.source_names = tuple(tc.name for tc in self.columns if tc.source is not None)
        self._source_key_positions = tuple(self.source_names.index(k) for k in key)
        self._row = self._compile()
        # Once per table instead of a generator per row: the hot path asks for keys often.
        getter = operator.itemgetter(*self.key_positions)
        self.key_of: Callable[[Sequence[Any]], tuple] = (
            (lambda row: (getter(row),)) if len(self.key_positions) == 1 else getter)

    def _compile(self) -> Callable[[Sequence[Any]], tuple]:
        namespace: dict[str, Any] = dict(GUARD_NAMES)
        params: list[str] = []
        exprs: list[str] = []
        for tc in self.columns:
            if tc.source is None:
                exprs.append("None")  # PG-only column: always NULL
                continue
            v = f"v{len(params)}"
            params.append(v)
            family = FAMILIES[tc.family]
            fn = family.converter(tc, self._bad)
            if fn is None or fn is identity:
                exprs.append(v)
                continue
            f = f"f{len(params)}"
            namespace[f] = fn
            if family.sees_null:
                exprs.append(f"{f}({v})")
            elif family.guard is not None:
                exprs.append("(" + family.guard.format(v=v, f=f) + ")")
            else:
                exprs.append(f"(None if {v} is None else {f}({v}))")
        unpack = ", ".join(params) + ("," if len(params) == 1 else "")
        source = (f"def convert_row(row):\n    {unpack} = row\n"
                  f"    return ({', '.join(exprs)},)\n")
        exec(compile(source, f"<wacdc converter {self.table}>", "exec"), namespace)
        return namespace["convert_row"]

    def convert(self, values: Sequence[Any], position: object = None) -> tuple:
        """Source values in `source_names` order -> a full target row (extras as NULL).
        `position` (a binlog position, or its text) becomes text only for a message."""
        try:
            row = self._row(values)
        except BadValueError as exc:
            self._bad.pending.clear()
            key = tuple(values[i] for i in self._source_key_positions)
            raise exc.with_context(key=key[0] if len(key) == 1 else key,
                                   position=_text(position)) from None
        if self._bad.pending:
            self._flush(row, _text(position))
        return row

    def convert_mapping(self, values: Mapping[str, Any], position: str | None = None) -> tuple:
        return self.convert([values[n] for n in self.source_names], position)

    def same_source_key(self, before: Sequence[Any], after: Sequence[Any]) -> bool:
        """Whether two source images carry the same key values (then the converted keys
        are equal too, without converting the before image)."""
        positions = self._source_key_positions
        if len(positions) == 1:
            return before[positions[0]] == after[positions[0]]
        return all(before[i] == after[i] for i in positions)

    def _flush(self, row: tuple, position: str | None) -> None:
        key = self.key_of(row)
        shown_key = key[0] if len(key) == 1 else key
        for column, reason, value_repr in self._bad.pending:
            self.policy.record(Coercion(self.table, column, reason, value_repr, shown_key,
                                        position))
        self._bad.pending.clear()


def _text(position: object) -> str | None:
    return None if position is None else str(position)
