"""The type map run backwards: what each PostgreSQL value becomes in its MySQL column,
and the values MySQL cannot hold (docs/rollback.md, "Types on the way back").

PostgreSQL renders most values as text MySQL reads exactly (wacdc.reverse.plan); here
are the few that need Python, and the limits MySQL enforces that PostgreSQL did not
(`text` accepts any length; `VARCHAR(191)` does not).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from wacdc.schema.model import Column

# Bytes a value of each MySQL type may hold.
BYTE_LIMITS = {"tinytext": 255, "text": 65_535, "mediumtext": 16_777_215,
               "longtext": 4_294_967_295, "tinyblob": 255, "blob": 65_535,
               "mediumblob": 16_777_215, "longblob": 4_294_967_295}
CHAR_TYPES = ("char", "varchar")
BYTE_STRING_TYPES = ("binary", "varbinary")


def mysql_time(seconds: Decimal | None) -> str | None:
    """An interval's seconds as MySQL's TIME text: -838:59:58.999999, hours unbounded."""
    if seconds is None:
        return None
    sign = "-" if seconds < 0 else ""
    micros = int((abs(seconds) * 1_000_000).to_integral_value())
    whole, fraction = divmod(micros, 1_000_000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}:{secs:02d}.{fraction:06d}"


def bits(text: str | None) -> int | None:
    return None if text is None else int(text, 2) if text else 0


Post = Callable[[Any], Any]


# What the forward map writes for MySQL's zero dates in NOT NULL columns (docs/types.md,
# "Defaults" and "Bad input"): on the way back it is the zero date again.
ZERO_SUBSTITUTES = {"0001-01-01 00:00:00.000000": "0000-00-00 00:00:00",
                    "0001-01-01": "0000-00-00"}


def zero_date(text: str | None) -> str | None:
    return ZERO_SUBSTITUTES.get(text, text) if text is not None else None


def post_for(pg_type: str, column: Column) -> Post | None:
    """The Python step a rendered value still needs, or None."""
    if pg_type == "interval":
        return mysql_time
    if pg_type.startswith("bit") and column.data_type == "bit":
        return bits
    if column.data_type in ("datetime", "timestamp", "date") and not column.nullable:
        return zero_date
    return None


def too_big(value: Any, column: Column) -> tuple[str, Any] | None:
    """(reason, the value cut to fit) when MySQL's column cannot hold `value`."""
    if value is None:
        return None
    kind = column.data_type
    if kind in CHAR_TYPES and column.char_length is not None and \
            isinstance(value, str) and len(value) > column.char_length:
        return (f"longer than {kind}({column.char_length}) ({len(value)} characters)",
                value[:column.char_length])
    if kind in BYTE_STRING_TYPES and column.char_length is not None and \
            isinstance(value, bytes) and len(value) > column.char_length:
        return (f"longer than {kind}({column.char_length}) ({len(value)} bytes)",
                value[:column.char_length])
    limit = BYTE_LIMITS.get(kind)
    if limit is not None:
        raw = value.encode() if isinstance(value, str) else value
        if isinstance(raw, bytes) and len(raw) > limit:
            cut: Any = raw[:limit]
            if isinstance(value, str):
                cut = raw[:limit].decode("utf-8", errors="ignore")  # whole characters
            return f"longer than {kind} ({len(raw)} bytes, at most {limit})", cut
    return None


def not_a_member(value: Any, column: Column) -> str | None:
    """Why an ENUM / SET column cannot take `value`, or None."""
    if value is None or column.data_type not in ("enum", "set") or not column.values:
        return None
    members = [value] if column.data_type == "enum" else (value.split(",") if value else [])
    unknown = [m for m in members if m not in column.values]
    if unknown:
        return (f"{', '.join(map(repr, unknown))} is not a member of "
                f"{column.data_type}({', '.join(map(repr, column.values))})")
    return None


def _numbers(node: Any) -> Iterator[Decimal | int]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _numbers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _numbers(value)
    elif isinstance(node, Decimal | int) and not isinstance(node, bool):
        yield node


def lossy_json_number(text: str | None) -> str | None:
    """Oracle MySQL's JSON keeps a number with a fraction as a double (and an integer
    past 64 bits too): the first number in `text` a double would change, or None.
    MariaDB keeps JSON as text, exactly."""
    if text is None:
        return None
    for number in _numbers(json.loads(text, parse_float=Decimal)):
        if isinstance(number, int) and -2**63 <= number < 2**64:
            continue
        if Decimal(repr(float(number))) != number:
            return (f"JSON number {number} has more precision than MySQL's JSON keeps "
                    f"(a double: {float(number)!r})")
    return None
