"""The type families: per family, everything wacdc knows about it in one `Family`.

A family is the unit values are converted by (`TargetColumn.family`): the MySQL types
it takes and the PostgreSQL types they map to (DESIGN §4), its converter factory and
the converter's inline fast path, how a literal source default is rendered, whether a
key of it survives the round trip through PostgreSQL's text (verify), and how a prefix
index over it is cut.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wacdc.schema import converters as c
from wacdc.schema import literals as lit
from wacdc.schema.badvalues import Bad
from wacdc.schema.target import TargetColumn

Factory = Callable[[TargetColumn, Bad], c.Convert | None]
Renderer = Callable[[lit.DefaultContext, str], str | None]


@dataclass(frozen=True)
class Family:
    name: str
    # MySQL kind -> (PostgreSQL type when signed, when unsigned: "" = as signed).
    # Placeholders: {p} precision, {s} scale, {n} length/width, {fsp} fractional seconds.
    pg_types: Mapping[str, tuple[str, str]]
    converter: Factory
    default: Renderer  # a literal source default as PostgreSQL default SQL
    # PostgreSQL's text of a key value finds the row in MySQL again (a bool key prints
    # 't', a bytea '\\x..'): verify re-checks in-flight changes and repairs by it.
    key_round_trip: bool = False
    # The compiled row function's inline fast path ({v} the value, {f} the converter).
    guard: str | None = None
    sees_null: bool = False  # the converter also sees SQL NULL (it means something there)
    byte_prefix: bool = False  # a prefix index counts bytes (substring), not characters


_CALENDAR_GUARD = ("{v} if {v} is None or ({v}.__class__ is str and {v}[:4] != '0000' and "
                   "{v}[5:7] != '00' and {v}[8:10] != '00') else {f}({v})")
# The names the guards use, bound into the compiled row function.
GUARD_NAMES = {"_NUL": "\x00", "_ESC0": "\\u0000", "_ESCD": "\\ud", "_ESCDU": "\\uD"}

_ALL = (
    Family("bool", {"boolean": ("boolean", "boolean")}, c.to_bool, lit.bool_default),
    Family("int", {"tinyint": ("smallint", "smallint"), "smallint": ("smallint", "integer"),
                   "mediumint": ("integer", "integer"), "int": ("integer", "bigint"),
                   "bigint": ("bigint", "numeric(20,0)")},
           c.no_conversion, lit.number_default, key_round_trip=True),
    Family("decimal", {"decimal": ("numeric({p},{s})", "numeric({p},{s})")},
           c.no_conversion, lit.number_default, key_round_trip=True),
    Family("float", {"float": ("real", "real"),
                     "double": ("double precision", "double precision")},
           c.no_conversion, lit.number_default),
    Family("text", {"char": ("varchar({n})", "varchar({n})"),
                    "varchar": ("varchar({n})", "varchar({n})"),
                    "tinytext": ("text", "text"), "text": ("text", "text"),
                    "mediumtext": ("text", "text"), "longtext": ("text", "text")},
           c.to_text, lit.text_default, key_round_trip=True,
           guard="{v} if {v} is None or ({v}.__class__ is str and _NUL not in {v}) "
                 "else {f}({v})"),
    Family("binary", {"binary": ("bytea", "bytea")}, c.to_binary, lit.binary_default,
           byte_prefix=True),
    Family("bytes", {"varbinary": ("bytea", "bytea"), "tinyblob": ("bytea", "bytea"),
                     "blob": ("bytea", "bytea"), "mediumblob": ("bytea", "bytea"),
                     "longblob": ("bytea", "bytea")},
           c.to_bytes, lit.binary_default, byte_prefix=True),
    Family("datetime", {"datetime": ("timestamp({fsp}) without time zone", "")},
           c.calendar(dt.datetime.min), lit.calendar_default, key_round_trip=True,
           guard=_CALENDAR_GUARD),
    Family("timestamp", {"timestamp": ("timestamp({fsp}) with time zone", "")},
           c.to_timestamp, lit.calendar_default),
    Family("date", {"date": ("date", "date")}, c.calendar(dt.date.min),
           lit.calendar_default, key_round_trip=True, guard=_CALENDAR_GUARD),
    Family("time", {"time": ("interval", "interval")}, c.to_time, lit.time_default),
    Family("year", {"year": ("smallint", "smallint")}, c.to_year, lit.year_default,
           key_round_trip=True),
    Family("json", {"json": ("jsonb", "jsonb")}, c.to_json, lit.json_default,
           guard="{v} if {v} is None or ({v}.__class__ is str and _NUL not in {v} and "
                 "_ESC0 not in {v} and _ESCD not in {v} and _ESCDU not in {v}) else {f}({v})"),
    # A profile's `convert = "json_string_array"`: a JSON array of strings -> text[].
    Family("json_string_array", {}, c.to_json_string_array, lit.no_default, sees_null=True),
    Family("enum", {"enum": ("text", "text")}, c.to_enum, lit.enum_default,
           key_round_trip=True),
    Family("set", {"set": ("text[]", "text[]")}, c.to_set, lit.set_default),
    Family("bit1", {"bit1": ("boolean", "boolean")}, c.to_bit1, lit.bits_default),
    Family("bits", {"bit": ("bit varying({n})", "bit varying({n})")}, c.to_bits,
           lit.bits_default),
)

FAMILIES: dict[str, Family] = {f.name: f for f in _ALL}

# kind -> (PostgreSQL type when signed, when unsigned, family name).
TYPE_MAP: dict[str, tuple[str, str, str]] = {
    kind: (signed, unsigned, family.name)
    for family in _ALL for kind, (signed, unsigned) in family.pg_types.items()}


def family(name: str) -> Family | None:
    """The family of `TargetColumn.family`; None for PostgreSQL-only columns ("extra")."""
    return FAMILIES.get(name)
