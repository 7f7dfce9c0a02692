"""Literal source defaults as PostgreSQL defaults, one renderer per type family.

A renderer gets the column's `DefaultContext` and the source's literal text, and gives
the PostgreSQL default SQL, or None after recording a Note (`context.dropped`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext

from wacdc.schema.model import Column, Table
from wacdc.schema.notes import Note, default_fix, quote_literal, show, without_default
from wacdc.schema.profile import Profile

# What the bad-value policy (convert.py) writes for a zero date into a NOT NULL column.
_ZERO_SUBSTITUTE = {"date": "0001-01-01", "datetime": "0001-01-01 00:00:00",
                    "timestamp": "0001-01-01 00:00:00+00"}
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?", re.I)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?")
_TIME = re.compile(r"(-)?(\d{1,3}):(\d{2}):(\d{2})(\.\d{1,6})?")
_BIT_LITERAL = re.compile(r"b'([01]*)'", re.I)
_HEX_LITERAL = re.compile(r"0x([0-9a-f]*)", re.I)
_BAD_JSON_TEXT = re.compile("[\x00\ud800-\udfff]")
_INT_RANGES = {"smallint": 15, "integer": 31, "bigint": 63}
_FLOAT_MAX = {"real": Decimal("3.4028234e38"), "double precision": Decimal("1.7976931e308")}


@dataclass
class DefaultContext:
    """One source column's default being planned, and the notes it needs."""

    table: Table
    column: Column
    family: str
    pg_type: str
    profile: Profile
    labels: tuple[str, ...] | None  # the PostgreSQL enum's labels, for a pg_enum column
    notes: list[Note] = field(default_factory=list)

    def note(self, reason: str, text: str, fix: str = "") -> None:
        self.notes.append(Note(self.table.name, self.column.name, reason, text, fix))

    def dropped(self, reason: str, why: str) -> None:
        """No default in PostgreSQL: say why, and what that means after cutover."""
        self.note(reason, f"{why}; no default in PostgreSQL: {without_default(self.column)}",
                  default_fix(self.table.name, self.column.name))

    def json_literal(self, text: str) -> str | None:
        problem = _json_problem(text)
        if problem is not None:
            self.dropped("invalid", f"JSON default '{show(text)}' {problem}")
            return None
        return f"{quote_literal(text)}::jsonb"

    def bytea(self, data: bytes) -> str:
        if self.family == "binary":  # BINARY(n) pads with zero bytes, as the converter does
            data = data.ljust(self.column.char_length or 0, b"\x00")
        return f"'\\x{data.hex()}'::bytea"


def _decimal(text: str) -> Decimal | None:
    return Decimal(text.strip()) if _NUMBER.fullmatch(text.strip()) else None


def _fits(number: Decimal, pg_type: str) -> bool:
    """Whether PostgreSQL's type holds the number (after its rounding to the type)."""
    if not number.is_finite():
        return False
    bits = _INT_RANGES.get(pg_type)
    match = re.fullmatch(r"numeric\((\d+),(\d+)\)", pg_type)
    if pg_type in _FLOAT_MAX:
        return abs(number) <= _FLOAT_MAX[pg_type]
    if bits is None and match is None:
        return True
    precision, scale = map(int, match.groups()) if match else (19, 0)
    if number.adjusted() >= precision - scale + 1:
        return False  # too many integer digits, whatever the rounding
    with localcontext() as context:
        context.prec = 200
        rounded = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    if bits is not None:
        return -(2 ** bits) <= rounded < 2 ** bits
    return abs(rounded) < Decimal(10) ** (precision - scale)


def _valid_calendar(text: str, family: str) -> str | None:
    """`text` as PostgreSQL will read it, or None for a zero or impossible date."""
    try:
        if family == "date":
            match = _DATE.fullmatch(text)
            if match is None:
                return None
            dt.date(*map(int, match.groups()))
            return text
        match = _DATETIME.fullmatch(text)
        if match is None:
            date_only = _DATE.fullmatch(text)
            return _valid_calendar(f"{text} 00:00:00", family) if date_only else None
        *fields, fraction = match.groups()
        year, month, day, hour, minute, second = map(int, fields)
        dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    return f"{text[:10]} {text[11:19]}{fraction or ''}"


def _json_problem(text: str) -> str | None:
    """Why jsonb would refuse this JSON text, or None."""
    def refuse(constant: str) -> None:
        raise ValueError(constant)

    try:
        json.loads(text, parse_constant=refuse)  # NaN, Infinity: not JSON for PostgreSQL
    except (ValueError, RecursionError):
        return "is not valid JSON"
    if _BAD_JSON_TEXT.search(json.dumps(json.loads(text), ensure_ascii=False)):
        return "holds NUL or an unpaired surrogate, which jsonb cannot store"
    return None


# --- the renderers -------------------------------------------------------------------

def bool_default(ctx: DefaultContext, value: str) -> str | None:
    number = _decimal(value)
    if number is None:
        ctx.dropped("invalid", f"default '{show(value)}' is not a number")
        return None
    if number not in (0, 1):
        ctx.note("lossy", f"default '{show(value)}' on {ctx.column.column_type} becomes true "
                 "(PostgreSQL boolean), as the bad-value policy maps values other "
                 "than 0 and 1")
    return "false" if number == 0 else "true"


def _number(ctx: DefaultContext, value: str) -> Decimal | None:
    number = _decimal(value)
    if number is None:
        ctx.dropped("invalid", f"default '{show(value)}' is not a number")
        return None
    if not _fits(number, ctx.pg_type):
        ctx.dropped("invalid", f"default '{show(value)}' is out of range for {ctx.pg_type}")
        return None
    return number


def number_default(ctx: DefaultContext, value: str) -> str | None:
    return None if _number(ctx, value) is None else value.strip()


def year_default(ctx: DefaultContext, value: str) -> str | None:
    number = _number(ctx, value)
    return None if number is None else str(int(number))


def text_default(ctx: DefaultContext, value: str) -> str | None:
    column = ctx.column
    text = value.rstrip(" ") if column.kind == "char" else value
    limit = column.char_length if column.kind in ("char", "varchar") else None
    if limit is not None and len(text) > limit:
        ctx.dropped("invalid", f"default '{show(value)}' is longer than the column's "
                    f"{limit} characters")
        return None
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
        ctx.note("lossy", "NUL in the default becomes U+FFFD, as the bad-value policy "
                 "does (PostgreSQL text cannot hold NUL)")
    return quote_literal(text)


def _holds_nul(ctx: DefaultContext, value: str) -> bool:
    if "\x00" in value:
        ctx.dropped("invalid", f"default '{show(value)}' holds NUL, which PostgreSQL text "
                    "cannot store")
        return True
    return False


def enum_default(ctx: DefaultContext, value: str) -> str | None:
    if _holds_nul(ctx, value):
        return None
    if ctx.labels is None:
        return quote_literal(value)
    if value not in ctx.labels:
        ctx.dropped("invalid", f"default '{show(value)}' is not a label of the PostgreSQL "
                    f"enum {ctx.pg_type}")
        return None
    return f"{quote_literal(value)}::{ctx.pg_type}"


def set_default(ctx: DefaultContext, value: str) -> str | None:
    if _holds_nul(ctx, value):
        return None
    order = {m: i for i, m in enumerate(ctx.column.values)}
    members = sorted((m for m in value.split(",") if m),
                     key=lambda m: order.get(m, len(order)))
    return ("ARRAY[" + ", ".join(map(quote_literal, members)) + "]::text[]"
            if members else "ARRAY[]::text[]")


def json_default(ctx: DefaultContext, value: str) -> str | None:
    return ctx.json_literal(value)


def calendar_default(ctx: DefaultContext, value: str) -> str | None:
    text, family = value.strip(), ctx.family
    valid = _valid_calendar(text, family)
    if valid is not None:
        # TIMESTAMP defaults are read as UTC (introspect): say so, whatever the session.
        return quote_literal(valid + "+00" if family == "timestamp" else valid)
    zero = text[:4] == "0000" or text[5:7] == "00" or text[8:10] == "00"
    what = "zero date" if zero else "invalid date"
    fix = ("give the column a real default in the source, or set one in PostgreSQL "
           "(ALTER TABLE ... ALTER COLUMN ... SET DEFAULT)")
    if ctx.column.nullable:
        ctx.note("zero_date", f"{what} default dropped; PostgreSQL has no zero date; the "
                 f"bad-value policy maps such values to NULL (source default '{text}')", fix)
        return None
    substitute = _ZERO_SUBSTITUTE[family]
    ctx.note("zero_date", f"{what} default '{text}' on a NOT NULL column becomes "
             f"'{substitute}': PostgreSQL has no zero date, and this is the value the "
             "bad-value policy writes for zero dates in NOT NULL columns, so inserts after "
             "cutover that omit the column keep working (they get this value, not an "
             "error)", fix)
    return quote_literal(substitute)


def time_default(ctx: DefaultContext, value: str) -> str | None:
    text = value.strip()
    match = _TIME.fullmatch(text)
    if match is None:
        ctx.dropped("invalid", f"TIME default '{show(text)}' is not a time")
        return None
    if not ctx.pg_type.startswith("time"):
        return quote_literal(text)  # interval reads MySQL's TIME text as it is
    sign, hours, minutes, seconds, fraction = match.groups()
    span = dt.timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds),
                        microseconds=int((fraction or ".")[1:].ljust(6, "0")))
    if span == dt.timedelta(days=1):
        return "'00:00:00'"  # as the converter maps 24:00:00
    if span > dt.timedelta(days=1) or (sign and span):
        ctx.dropped("invalid", f"TIME default '{text}' is outside PostgreSQL's time range "
                    "(profile time = \"time\")")
        return None
    return quote_literal(f"{int(hours):02d}:{minutes}:{seconds}{fraction or ''}")


def bits_default(ctx: DefaultContext, value: str) -> str | None:
    text = value.strip()
    match = _BIT_LITERAL.fullmatch(text)
    number = (int(match.group(1) or "0", 2) if match
              else int(text) if text.isascii() and text.isdigit() else None)
    width = ctx.column.bit_width
    if number is None or number >> width:
        ctx.dropped("invalid", f"default '{show(text)}' is not a bit({width}) value")
        return None
    if ctx.family == "bit1":
        return "true" if number else "false"
    return f"B'{number:0{width}b}'"


def binary_default(ctx: DefaultContext, value: str) -> str | None:
    match = _HEX_LITERAL.fullmatch(value.strip())
    if match is None:
        ctx.dropped("lossy", f"binary default '{show(value)}' could not be read exactly "
                    "from the source")
        return None
    digits = match.group(1)
    return ctx.bytea(bytes.fromhex(digits.rjust(len(digits) + len(digits) % 2, "0")))


def no_default(ctx: DefaultContext, value: str) -> str | None:
    ctx.dropped("invalid", f"default '{show(value)}' has no mapping to {ctx.pg_type}")
    return None
