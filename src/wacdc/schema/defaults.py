"""Column defaults: a source default as an exact PostgreSQL default, or none and a note.

MySQL and MariaDB print defaults differently in information_schema (introspect.py reads
them exactly); here each shape becomes a PostgreSQL default: literals of every type,
CURRENT_TIMESTAMP with or without precision, expression defaults folded to a literal or
mapped to the PostgreSQL function that does the same, zero dates; what cannot be carried
(ON UPDATE CURRENT_TIMESTAMP, rand(), expressions over other columns) leaves no default
and a `Note` that `wacdc schema` prints and `wacdc check` warns about.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from wacdc.schema.charsets import unquote_body
from wacdc.schema.model import Column, Table
from wacdc.schema.profile import Profile


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# A source default becomes an exact PostgreSQL default, or no default and a Note saying
# why and what that means after cutover. Replicated rows always carry the source's
# values: a target default only matters for rows written to PostgreSQL directly.


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


class _Unsupported(Exception):
    """An expression outside the subset wacdc carries to PostgreSQL (the message says why)."""


_CALENDAR_FAMILIES = frozenset({"date", "datetime", "timestamp"})
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


def unquote_sql_string(body: str) -> str:
    """The value of a MySQL '…' string literal's body."""
    return unquote_body(body, "'")


def _show(text: str, limit: int = 80) -> str:
    """Source text as quoted in a note: one line, control characters escaped, bounded."""
    shown = text if text.isprintable() else "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _decimal(text: str) -> Decimal | None:
    return Decimal(text.strip()) if _NUMBER.fullmatch(text.strip()) else None


_INT_RANGES = {"smallint": 15, "integer": 31, "bigint": 63}
_FLOAT_MAX = {"real": Decimal("3.4028234e38"), "double precision": Decimal("1.7976931e308")}


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


@dataclass(frozen=True)
class _Val:
    """A constant-folded expression value, or the PostgreSQL SQL of a volatile one."""

    kind: str  # null bool num str bytes json | ts date time uuid (SQL) | interval
    value: Any


_NOW = frozenset({"current_timestamp", "now", "localtime", "localtimestamp", "sysdate"})
_BARE = frozenset({"current_timestamp", "localtime", "localtimestamp", "current_date",
                   "current_time", "utc_timestamp", "utc_date", "utc_time"})
_UNITS = {"microsecond": (1, "microseconds"), "second": (1, "seconds"),
          "minute": (1, "minutes"), "hour": (1, "hours"), "day": (1, "days"),
          "week": (7, "days"), "month": (1, "months"), "quarter": (3, "months"),
          "year": (1, "years")}
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>(?:_[a-z0-9]+\s*|n)?'(?:[^'\\]|\\.|'')*')
  | (?P<hex>0x[0-9a-f]+|x'[0-9a-f]*')
  | (?P<bits>0b[01]+|b'[01]*')
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?)
  | (?P<name>[a-z_][a-z0-9_$]*)
  | (?P<quoted>`(?:[^`]|``)*`)
  | (?P<op>[(),+*/%-])
""", re.I | re.X | re.S)


def _tokens(text: str) -> list[tuple[str, str]]:
    found, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _Unsupported(f"cannot read {text[pos:pos + 10]!r}")
        if match.lastgroup != "space":
            found.append((str(match.lastgroup), match.group()))
        pos = match.end()
    return found


def _as_number(value: _Val) -> Decimal | float:
    if value.kind == "bool":
        return Decimal(int(value.value))
    if value.kind == "num":
        return value.value
    raise _Unsupported(f"arithmetic on a {value.kind} value")


def _arith(left: _Val, op: str, right: _Val) -> _Val:
    a, b = _as_number(left), _as_number(right)
    if isinstance(a, float) or isinstance(b, float):
        x, y = float(a), float(b)
        result: Decimal | float = x + y if op == "+" else x - y if op == "-" else x * y
        if not math.isfinite(result):
            raise _Unsupported("the value overflows")
        return _Val("num", result)
    with localcontext() as context:
        context.prec = 96  # MySQL's exact arithmetic has 65 digits
        return _Val("num", a + b if op == "+" else a - b if op == "-" else a * b)


def _json_of(value: _Val) -> str:
    """The JSON text MySQL's json_array()/json_object() make of an argument."""
    if value.kind == "null":
        return "null"
    if value.kind == "bool":
        return "true" if value.value else "false"
    if value.kind == "num":
        return str(value.value) if isinstance(value.value, Decimal) else repr(value.value)
    if value.kind == "str":
        return json.dumps(value.value, ensure_ascii=False)
    if value.kind == "json":
        return str(value.value)
    raise _Unsupported(f"a {value.kind} value in JSON")


class _Expression:
    """A recursive-descent reader of the default expressions MySQL and MariaDB print.

    Constants fold to a value (the source would store the same); now(), curdate(),
    uuid() become their PostgreSQL SQL. Anything else raises _Unsupported."""

    def __init__(self, text: str, plan: DefaultPlan) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.plan = plan

    def parse(self) -> _Val:
        value = self.additive()
        if self.pos < len(self.tokens):
            raise _Unsupported(f"unexpected {self.tokens[self.pos][1]!r}")
        if value.kind == "interval":
            raise _Unsupported("a bare interval")
        return value

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end":
            raise _Unsupported("it ends early")
        self.pos += 1
        return token

    def accept(self, op: str) -> bool:
        if self.peek() == ("op", op):
            self.pos += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.accept(op):
            raise _Unsupported(f"expected {op!r}")

    def additive(self) -> _Val:
        left = self.multiplicative()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            left = self.combine(left, op, self.multiplicative())
        return left

    def combine(self, left: _Val, op: str, right: _Val) -> _Val:
        if left.kind == "interval" and op == "+":
            left, right = right, left
        if right.kind == "interval":
            if left.kind not in ("ts", "date"):
                raise _Unsupported(f"interval arithmetic on a {left.kind} value")
            amount, unit = right.value
            return _Val("ts", f"({left.value} {op} interval '{amount} {unit}')")
        return _arith(left, op, right)

    def multiplicative(self) -> _Val:
        left = self.unary()
        while True:
            token = self.peek()
            if token == ("op", "*"):
                self.take()
                left = _arith(left, "*", self.unary())
            elif token in (("op", "/"), ("op", "%")) or token[1].lower() in ("div", "mod"):
                raise _Unsupported("division rounds differently in PostgreSQL")
            else:
                return left

    def unary(self) -> _Val:
        if self.accept("-"):
            value = self.unary()
            if value.kind == "interval":
                return _Val("interval", (-value.value[0], value.value[1]))
            return _Val("num", -_as_number(value))
        if self.accept("+"):
            return self.unary()
        return self.primary()

    def primary(self) -> _Val:
        kind, text = self.take()
        if (kind, text) == ("op", "("):
            value = self.additive()
            self.expect(")")
            return value
        if kind == "string":
            quote = text.index("'")
            body = unquote_sql_string(text[quote + 1 : -1])
            if text[:quote].strip().lower() == "_binary":
                return _Val("bytes", body.encode("utf-8"))
            return _Val("str", body)
        if kind == "hex":
            digits = text[2:] if text[:2].lower() == "0x" else text[2:-1]
            return _Val("bytes", bytes.fromhex(digits.rjust(len(digits) + len(digits) % 2, "0")))
        if kind == "bits":
            digits = text[2:] if text[:2].lower() == "0b" else text[2:-1]
            return _Val("num", Decimal(int(digits or "0", 2)))
        if kind == "number":
            if "e" in text.lower():
                return _Val("num", float(text))  # an approximate value: a double in MySQL
            return _Val("num", Decimal(text))
        if kind == "name":
            return self.name(text.lower())
        if kind == "quoted":
            raise _Unsupported("it refers to another column")
        raise _Unsupported(f"unexpected {text!r}")

    def name(self, name: str) -> _Val:
        if name == "null":
            return _Val("null", None)
        if name in ("true", "false"):
            return _Val("bool", name == "true")
        if name == "interval":
            return self.interval()
        if not self.accept("("):
            if name not in _BARE:
                raise _Unsupported(f"{name} is not carried")
            return self.call(name, [])
        if name == "cast":
            return self.cast()
        args: list[_Val] = []
        if not self.accept(")"):
            args.append(self.additive())
            while self.accept(","):
                args.append(self.additive())
            self.expect(")")
        return self.call(name, args)

    def interval(self) -> _Val:
        amount = self.unary()
        kind, unit = self.take()
        factor, pg_unit = _UNITS.get(unit.lower(), (0, ""))
        if kind != "name" or not factor:
            raise _Unsupported(f"interval unit {unit!r}")
        if amount.kind == "str" and re.fullmatch(r"\s*-?\d+\s*", amount.value):
            amount = _Val("num", Decimal(amount.value))
        number = _as_number(amount) if amount.kind in ("num", "bool") else None
        if number is None or number != int(number):
            raise _Unsupported("an interval amount that is not a whole number")
        return _Val("interval", (int(number) * factor, pg_unit))

    def cast(self) -> _Val:
        value = self.additive()
        if self.take()[1].lower() != "as":
            raise _Unsupported("cast without AS")
        target = self.take()[1].lower()
        params: list[int] = []
        if self.accept("("):
            while not self.accept(")"):
                token = self.take()
                if token[0] == "number":
                    params.append(int(token[1]))
        if self.peek()[1].lower() == "integer":
            self.take()
        self.expect(")")
        if value.kind == "null":
            return value
        if target == "json" and value.kind in ("str", "json"):
            return _Val("json", value.value)
        if target == "json" and value.kind in ("num", "bool"):
            return _Val("json", _json_of(value))
        if target in ("date", "datetime", "time") and value.kind == "str":
            return value  # the column's own literal rules read and check it
        if target == "char" and value.kind in ("str", "num", "bool") and not isinstance(
                value.value, float):  # MySQL's text of a double is not Python's
            return _Val("str", value.value if value.kind == "str" else str(int(value.value))
                        if value.kind == "bool" else str(value.value))
        if target in ("signed", "unsigned", "decimal") and value.kind in ("num", "bool"):
            number = _as_number(value)
            if isinstance(number, float):
                raise _Unsupported("a cast of a double")
            scale = params[1] if target == "decimal" and len(params) > 1 else 0
            rounded = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
            if target == "unsigned" and rounded < 0:
                raise _Unsupported("a negative unsigned cast")
            return _Val("num", rounded)
        raise _Unsupported(f"cast of a {value.kind} value as {target}")

    def precision(self, args: list[_Val]) -> int:
        if not args:
            return 0
        if len(args) == 1 and args[0].kind == "num" and args[0].value in range(7):
            return int(args[0].value)
        raise _Unsupported("a fractional-seconds precision that is not 0..6")

    def call(self, name: str, args: list[_Val]) -> _Val:
        if name in _NOW:
            return _Val("ts", self.plan.now_sql(self.precision(args)))
        if name in ("curdate", "current_date") and not args:
            return _Val("date", "CURRENT_DATE")
        if name in ("curtime", "current_time"):
            precision = self.precision(args)
            return _Val("time", f"LOCALTIME({precision})" if precision else "LOCALTIME")
        if name in ("utc_timestamp", "utc_date", "utc_time"):
            precision = self.precision(args)
            now = f"CURRENT_TIMESTAMP({precision})" if precision else "CURRENT_TIMESTAMP"
            utc = f"({now} AT TIME ZONE 'UTC')"
            return (_Val("ts", utc) if name == "utc_timestamp" else
                    _Val("date", f"{utc}::date") if name == "utc_date" else
                    _Val("time", f"{utc}::time({precision})"))
        if name == "uuid" and not args:
            return _Val("uuid", None)
        if name == "json_array":
            return _Val("json", "[" + ", ".join(_json_of(a) for a in args) + "]")
        if name == "json_object":
            return self.json_object(args)
        if name == "concat":
            if any(a.kind == "null" for a in args):
                return _Val("null", None)
            parts = [a.value if a.kind == "str" else str(int(a.value)) if a.kind == "bool" else
                     str(a.value) if a.kind == "num" and isinstance(a.value, Decimal) else None
                     for a in args]
            if any(p is None for p in parts):
                raise _Unsupported("concat() of a value that is not text or an exact number")
            return _Val("str", "".join(p for p in parts if p is not None))
        raise _Unsupported(f"{name}() is not carried")

    def json_object(self, args: list[_Val]) -> _Val:
        if len(args) % 2:
            raise _Unsupported("json_object() with an odd number of arguments")
        keys = [a.value if a.kind == "str" else None for a in args[::2]]
        if None in keys or len(set(keys)) != len(keys):
            raise _Unsupported("json_object() keys that are not distinct strings")
        members = [f"{json.dumps(k, ensure_ascii=False)}: {_json_of(v)}"
                   for k, v in zip(keys, args[1::2], strict=True)]
        return _Val("json", "{" + ", ".join(members) + "}")


@dataclass
class DefaultPlan:
    """The PostgreSQL default of one source column, and the notes it needs."""

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

    def sql(self) -> str | None:
        default = self.column.default
        if default is None or self.column.auto_increment:
            return None
        if default.is_expression:
            return self.expression(default.value)
        return self.literal(default.value)

    def now_sql(self, precision: int) -> str:
        rule = self.profile.types.current_timestamp
        if rule != "keep":
            return rule
        if precision == 0 and self.column.fsp == 0:
            return "CURRENT_TIMESTAMP"  # never CURRENT_TIMESTAMP(): PostgreSQL refuses it
        return f"CURRENT_TIMESTAMP({precision})"

    def expression(self, text: str) -> str | None:
        try:
            value = _Expression(text, self).parse()
        except _Unsupported as exc:
            self.dropped("expression", f"expression default {_show(text)} has no PostgreSQL "
                         f"equivalent ({exc})")
            return None
        except (ArithmeticError, ValueError, RecursionError) as exc:  # never fail `schema`
            self.dropped("expression", f"expression default {_show(text)} could not be read "
                         f"({type(exc).__name__})")
            return None
        return self.carry(value, text)

    def carry(self, value: _Val, text: str) -> str | None:
        family, kind = self.family, value.kind
        if kind == "null":
            return None
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
                pass
        if kind == "json" and family == "json":
            return self.json_literal(value.value)
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
        self.dropped("expression", f"expression default {_show(text)} makes a {kind} value, "
                     f"which the {self.pg_type} column cannot take as a default")
        return None

    def literal(self, value: str) -> str | None:
        family, shown = self.family, f"'{_show(value)}'"
        if family == "bool":
            number = _decimal(value)
            if number is None:
                self.dropped("invalid", f"default {shown} is not a number")
                return None
            if number not in (0, 1):
                self.note("lossy", f"default {shown} on {self.column.column_type} becomes true "
                          "(PostgreSQL boolean), as the bad-value policy maps values other "
                          "than 0 and 1")
            return "false" if number == 0 else "true"
        if family in ("int", "year", "decimal", "float"):
            number = _decimal(value)
            if number is None:
                self.dropped("invalid", f"default {shown} is not a number")
                return None
            if not _fits(number, self.pg_type):
                self.dropped("invalid", f"default {shown} is out of range for {self.pg_type}")
                return None
            return str(int(number)) if family == "year" else value.strip()
        if family == "text":
            text = value.rstrip(" ") if self.column.kind == "char" else value
            limit = self.column.char_length if self.column.kind in ("char", "varchar") else None
            if limit is not None and len(text) > limit:
                self.dropped("invalid", f"default {shown} is longer than the column's "
                             f"{limit} characters")
                return None
            if "\x00" in text:
                text = text.replace("\x00", "\ufffd")
                self.note("lossy", "NUL in the default becomes U+FFFD, as the bad-value policy "
                          "does (PostgreSQL text cannot hold NUL)")
            return quote_literal(text)
        if family in ("enum", "set") and "\x00" in value:
            self.dropped("invalid", f"default {shown} holds NUL, which PostgreSQL text "
                         "cannot store")
            return None
        if family == "enum":
            if self.labels is None:
                return quote_literal(value)
            if value not in self.labels:
                self.dropped("invalid", f"default {shown} is not a label of the PostgreSQL "
                             f"enum {self.pg_type}")
                return None
            return f"{quote_literal(value)}::{self.pg_type}"
        if family == "set":
            order = {m: i for i, m in enumerate(self.column.values)}
            members = sorted((m for m in value.split(",") if m),
                             key=lambda m: order.get(m, len(order)))
            return ("ARRAY[" + ", ".join(map(quote_literal, members)) + "]::text[]"
                    if members else "ARRAY[]::text[]")
        if family == "json":
            return self.json_literal(value)
        if family in _CALENDAR_FAMILIES:
            return self.calendar(value.strip())
        if family == "time":
            return self.time(value.strip())
        if family in ("bit1", "bits"):
            return self.bits(value.strip())
        if family in ("binary", "bytes"):
            match = _HEX_LITERAL.fullmatch(value.strip())
            if match is None:
                self.dropped("lossy", f"binary default {shown} could not be read exactly "
                             "from the source")
                return None
            digits = match.group(1)
            return self.bytea(bytes.fromhex(digits.rjust(len(digits) + len(digits) % 2, "0")))
        self.dropped("invalid", f"default {shown} has no mapping to {self.pg_type}")
        return None

    def json_literal(self, text: str) -> str | None:
        problem = _json_problem(text)
        if problem is not None:
            self.dropped("invalid", f"JSON default '{_show(text)}' {problem}")
            return None
        return f"{quote_literal(text)}::jsonb"

    def bytea(self, data: bytes) -> str:
        if self.family == "binary":  # BINARY(n) pads with zero bytes, as the converter does
            data = data.ljust(self.column.char_length or 0, b"\x00")
        return f"'\\x{data.hex()}'::bytea"

    def calendar(self, text: str) -> str | None:
        family = self.family
        valid = _valid_calendar(text, family)
        if valid is not None:
            # TIMESTAMP defaults are read as UTC (introspect): say so, whatever the session.
            return quote_literal(valid + "+00" if family == "timestamp" else valid)
        zero = text[:4] == "0000" or text[5:7] == "00" or text[8:10] == "00"
        what = "zero date" if zero else "invalid date"
        fix = ("give the column a real default in the source, or set one in PostgreSQL "
               "(ALTER TABLE ... ALTER COLUMN ... SET DEFAULT)")
        if self.column.nullable:
            self.note("zero_date", f"{what} default dropped; PostgreSQL has no zero date; the "
                      f"bad-value policy maps such values to NULL (source default '{text}')",
                      fix)
            return None
        substitute = _ZERO_SUBSTITUTE[family]
        self.note("zero_date", f"{what} default '{text}' on a NOT NULL column becomes "
                  f"'{substitute}': PostgreSQL has no zero date, and this is the value the "
                  "bad-value policy writes for zero dates in NOT NULL columns, so inserts after "
                  "cutover that omit the column keep working (they get this value, not an "
                  "error)", fix)
        return quote_literal(substitute)

    def time(self, text: str) -> str | None:
        match = _TIME.fullmatch(text)
        if match is None:
            self.dropped("invalid", f"TIME default '{_show(text)}' is not a time")
            return None
        if not self.pg_type.startswith("time"):
            return quote_literal(text)  # interval reads MySQL's TIME text as it is
        sign, hours, minutes, seconds, fraction = match.groups()
        span = dt.timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds),
                            microseconds=int((fraction or ".")[1:].ljust(6, "0")))
        if span == dt.timedelta(days=1):
            return "'00:00:00'"  # as the converter maps 24:00:00
        if span > dt.timedelta(days=1) or (sign and span):
            self.dropped("invalid", f"TIME default '{text}' is outside PostgreSQL's time range "
                         "(profile time = \"time\")")
            return None
        return quote_literal(f"{int(hours):02d}:{minutes}:{seconds}{fraction or ''}")

    def bits(self, text: str) -> str | None:
        match = _BIT_LITERAL.fullmatch(text)
        number = (int(match.group(1) or "0", 2) if match
                  else int(text) if text.isascii() and text.isdigit() else None)
        width = self.column.bit_width
        if number is None or number >> width:
            self.dropped("invalid", f"default '{_show(text)}' is not a bit({width}) value")
            return None
        if self.family == "bit1":
            return "true" if number else "false"
        return f"B'{number:0{width}b}'"


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
