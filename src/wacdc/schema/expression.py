"""Expression defaults as MySQL and MariaDB print them, read into a value or SQL.

A recursive-descent reader of the subset wacdc carries: constants fold to a value (the
source would store the same); now(), curdate(), uuid() become their PostgreSQL SQL;
anything else raises `Unsupported`, whose message says why.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from wacdc.schema.charsets import unquote_body


class Unsupported(Exception):
    """An expression outside the subset wacdc carries to PostgreSQL (the message says why)."""


def unquote_sql_string(body: str) -> str:
    """The value of a MySQL '…' string literal's body."""
    return unquote_body(body, "'")


@dataclass(frozen=True)
class Val:
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
            raise Unsupported(f"cannot read {text[pos:pos + 10]!r}")
        if match.lastgroup != "space":
            found.append((str(match.lastgroup), match.group()))
        pos = match.end()
    return found


def _as_number(value: Val) -> Decimal | float:
    if value.kind == "bool":
        return Decimal(int(value.value))
    if value.kind == "num":
        return value.value
    raise Unsupported(f"arithmetic on a {value.kind} value")


def _arith(left: Val, op: str, right: Val) -> Val:
    a, b = _as_number(left), _as_number(right)
    if isinstance(a, float) or isinstance(b, float):
        x, y = float(a), float(b)
        result: Decimal | float = x + y if op == "+" else x - y if op == "-" else x * y
        if not math.isfinite(result):
            raise Unsupported("the value overflows")
        return Val("num", result)
    with localcontext() as context:
        context.prec = 96  # MySQL's exact arithmetic has 65 digits
        return Val("num", a + b if op == "+" else a - b if op == "-" else a * b)


def _json_of(value: Val) -> str:
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
    raise Unsupported(f"a {value.kind} value in JSON")


class Expression:
    """A recursive-descent reader of the default expressions MySQL and MariaDB print.

    Constants fold to a value (the source would store the same); now(), curdate(),
    uuid() become their PostgreSQL SQL. Anything else raises Unsupported."""

    def __init__(self, text: str, now_sql: Callable[[int], str]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.now_sql = now_sql  # CURRENT_TIMESTAMP(precision) as the column wants it

    def parse(self) -> Val:
        value = self.additive()
        if self.pos < len(self.tokens):
            raise Unsupported(f"unexpected {self.tokens[self.pos][1]!r}")
        if value.kind == "interval":
            raise Unsupported("a bare interval")
        return value

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end":
            raise Unsupported("it ends early")
        self.pos += 1
        return token

    def accept(self, op: str) -> bool:
        if self.peek() == ("op", op):
            self.pos += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.accept(op):
            raise Unsupported(f"expected {op!r}")

    def additive(self) -> Val:
        left = self.multiplicative()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            left = self.combine(left, op, self.multiplicative())
        return left

    def combine(self, left: Val, op: str, right: Val) -> Val:
        if left.kind == "interval" and op == "+":
            left, right = right, left
        if right.kind == "interval":
            if left.kind not in ("ts", "date"):
                raise Unsupported(f"interval arithmetic on a {left.kind} value")
            amount, unit = right.value
            return Val("ts", f"({left.value} {op} interval '{amount} {unit}')")
        return _arith(left, op, right)

    def multiplicative(self) -> Val:
        left = self.unary()
        while True:
            token = self.peek()
            if token == ("op", "*"):
                self.take()
                left = _arith(left, "*", self.unary())
            elif token in (("op", "/"), ("op", "%")) or token[1].lower() in ("div", "mod"):
                raise Unsupported("division rounds differently in PostgreSQL")
            else:
                return left

    def unary(self) -> Val:
        if self.accept("-"):
            value = self.unary()
            if value.kind == "interval":
                return Val("interval", (-value.value[0], value.value[1]))
            return Val("num", -_as_number(value))
        if self.accept("+"):
            return self.unary()
        return self.primary()

    def primary(self) -> Val:
        kind, text = self.take()
        if (kind, text) == ("op", "("):
            value = self.additive()
            self.expect(")")
            return value
        if kind == "string":
            quote = text.index("'")
            body = unquote_sql_string(text[quote + 1 : -1])
            if text[:quote].strip().lower() == "_binary":
                return Val("bytes", body.encode("utf-8"))
            return Val("str", body)
        if kind == "hex":
            digits = text[2:] if text[:2].lower() == "0x" else text[2:-1]
            return Val("bytes", bytes.fromhex(digits.rjust(len(digits) + len(digits) % 2, "0")))
        if kind == "bits":
            digits = text[2:] if text[:2].lower() == "0b" else text[2:-1]
            return Val("num", Decimal(int(digits or "0", 2)))
        if kind == "number":
            if "e" in text.lower():
                return Val("num", float(text))  # an approximate value: a double in MySQL
            return Val("num", Decimal(text))
        if kind == "name":
            return self.name(text.lower())
        if kind == "quoted":
            raise Unsupported("it refers to another column")
        raise Unsupported(f"unexpected {text!r}")

    def name(self, name: str) -> Val:
        if name == "null":
            return Val("null", None)
        if name in ("true", "false"):
            return Val("bool", name == "true")
        if name == "interval":
            return self.interval()
        if not self.accept("("):
            if name not in _BARE:
                raise Unsupported(f"{name} is not carried")
            return self.call(name, [])
        if name == "cast":
            return self.cast()
        args: list[Val] = []
        if not self.accept(")"):
            args.append(self.additive())
            while self.accept(","):
                args.append(self.additive())
            self.expect(")")
        return self.call(name, args)

    def interval(self) -> Val:
        amount = self.unary()
        kind, unit = self.take()
        factor, pg_unit = _UNITS.get(unit.lower(), (0, ""))
        if kind != "name" or not factor:
            raise Unsupported(f"interval unit {unit!r}")
        if amount.kind == "str" and re.fullmatch(r"\s*-?\d+\s*", amount.value):
            amount = Val("num", Decimal(amount.value))
        number = _as_number(amount) if amount.kind in ("num", "bool") else None
        if number is None or number != int(number):
            raise Unsupported("an interval amount that is not a whole number")
        return Val("interval", (int(number) * factor, pg_unit))

    def cast(self) -> Val:
        value = self.additive()
        if self.take()[1].lower() != "as":
            raise Unsupported("cast without AS")
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
        return _cast(value, target, params)

    def precision(self, args: list[Val]) -> int:
        if not args:
            return 0
        if len(args) == 1 and args[0].kind == "num" and args[0].value in range(7):
            return int(args[0].value)
        raise Unsupported("a fractional-seconds precision that is not 0..6")

    def call(self, name: str, args: list[Val]) -> Val:
        if name in _NOW:
            return Val("ts", self.now_sql(self.precision(args)))
        if name in ("curdate", "current_date") and not args:
            return Val("date", "CURRENT_DATE")
        if name in ("curtime", "current_time"):
            precision = self.precision(args)
            return Val("time", f"LOCALTIME({precision})" if precision else "LOCALTIME")
        if name in ("utc_timestamp", "utc_date", "utc_time"):
            precision = self.precision(args)
            now = f"CURRENT_TIMESTAMP({precision})" if precision else "CURRENT_TIMESTAMP"
            utc = f"({now} AT TIME ZONE 'UTC')"
            return (Val("ts", utc) if name == "utc_timestamp" else
                    Val("date", f"{utc}::date") if name == "utc_date" else
                    Val("time", f"{utc}::time({precision})"))
        if name == "uuid" and not args:
            return Val("uuid", None)
        if name == "json_array":
            return Val("json", "[" + ", ".join(_json_of(a) for a in args) + "]")
        if name == "json_object":
            return self.json_object(args)
        if name == "concat":
            if any(a.kind == "null" for a in args):
                return Val("null", None)
            parts = [a.value if a.kind == "str" else str(int(a.value)) if a.kind == "bool" else
                     str(a.value) if a.kind == "num" and isinstance(a.value, Decimal) else None
                     for a in args]
            if any(p is None for p in parts):
                raise Unsupported("concat() of a value that is not text or an exact number")
            return Val("str", "".join(p for p in parts if p is not None))
        raise Unsupported(f"{name}() is not carried")

    def json_object(self, args: list[Val]) -> Val:
        if len(args) % 2:
            raise Unsupported("json_object() with an odd number of arguments")
        keys = [a.value if a.kind == "str" else None for a in args[::2]]
        if None in keys or len(set(keys)) != len(keys):
            raise Unsupported("json_object() keys that are not distinct strings")
        members = [f"{json.dumps(k, ensure_ascii=False)}: {_json_of(v)}"
                   for k, v in zip(keys, args[1::2], strict=True)]
        return Val("json", "{" + ", ".join(members) + "}")


def _cast(value: Val, target: str, params: list[int]) -> Val:
    """CAST(value AS target(params)), folded."""
    if value.kind == "null":
        return value
    if target == "json" and value.kind in ("str", "json"):
        return Val("json", value.value)
    if target == "json" and value.kind in ("num", "bool"):
        return Val("json", _json_of(value))
    if target in ("date", "datetime", "time") and value.kind == "str":
        return value  # the column's own literal rules read and check it
    if target == "char" and value.kind in ("str", "num", "bool") and not isinstance(
            value.value, float):  # MySQL's text of a double is not Python's
        return Val("str", value.value if value.kind == "str" else str(int(value.value))
                   if value.kind == "bool" else str(value.value))
    if target in ("signed", "unsigned", "decimal") and value.kind in ("num", "bool"):
        return _cast_number(value, target, params)
    raise Unsupported(f"cast of a {value.kind} value as {target}")


def _cast_number(value: Val, target: str, params: list[int]) -> Val:
    number = _as_number(value)
    if isinstance(number, float):
        raise Unsupported("a cast of a double")
    scale = params[1] if target == "decimal" and len(params) > 1 else 0
    rounded = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    if target == "unsigned" and rounded < 0:
        raise Unsupported("a negative unsigned cast")
    return Val("num", rounded)
