"""How one table map's row image is read: a generated function (source, exec'd) per
table map, and the value helpers the generated code calls (source/decoder.py runs it).

Runs of fixed-width columns are unpacked with one precompiled `struct`; strings are
slices of the buffer decoded with the column's codec; temporal and decimal values are
built in place. A column type the plan does not cover raises `Unsupported`.
"""

from __future__ import annotations

import codecs
import datetime as dt
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.row_event import RowsEvent
from pymysqlreplication.table import Table

from wacdc.events import EMPTY_SET, ZERO_DATE
from wacdc.source.jsonbinary import json_text

# --- value helpers called by the generated code ---------------------------------------

_EPOCH = dt.datetime(1970, 1, 1)
_COMPRESSED_BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_datetime, _date, _timedelta = dt.datetime, dt.date, dt.timedelta


def _datetime2(packed: int, micro: int) -> Any:
    year_month = (packed >> 22) & 0x1FFFF
    try:
        return _datetime(year_month // 13, year_month % 13, (packed >> 17) & 31,
                         (packed >> 12) & 31, (packed >> 6) & 63, packed & 63, micro)
    except ValueError:  # zero or invalid date: the bad-value policy decides
        return ZERO_DATE


def _date3(packed: int) -> Any:
    try:
        return _date(packed >> 9, (packed >> 5) & 15, packed & 31)
    except ValueError:  # 0000-00-00, or an impossible date stored under a lax sql_mode
        return ZERO_DATE


def time2(raw: bytes, frac_bytes: int) -> dt.timedelta:
    # One big-endian offset-binary integer: int part and fraction together.
    value = int.from_bytes(raw, "big") - (1 << (8 * (3 + frac_bytes) - 1))
    sign = -1 if value < 0 else 1
    value = abs(value)
    hms, frac = value >> (8 * frac_bytes), value & ((1 << (8 * frac_bytes)) - 1)
    micro = frac * 10 ** (6 - 2 * frac_bytes) if frac_bytes else 0
    return sign * _timedelta(hours=(hms >> 12) & 0x3FF, minutes=(hms >> 6) & 0x3F,
                             seconds=hms & 0x3F, microseconds=micro)


def _decimal_reader(precision: int, scale: int) -> tuple[int, Callable[[bytes], Decimal]]:
    """(size, bytes -> Decimal) for NEWDECIMAL(precision, scale), the library's digits.

    The value is one big-endian integer: a sign bit (set when positive; a negative value
    has every bit inverted), then the integral digits (a head of fewer than 9, then groups
    of 9 in 4 bytes), then the fraction (groups of 9, then a tail). It is read as one int
    and split with shifts; the digits become the Decimal through its exact text form."""
    integral = precision - scale
    int_groups, int_rest = divmod(integral, 9)
    frac_groups, frac_rest = divmod(scale, 9)
    head, tail = _COMPRESSED_BYTES[int_rest], _COMPRESSED_BYTES[frac_rest]
    size = head + 4 * (int_groups + frac_groups) + tail
    sign_bit = 1 << (8 * size - 1)
    magnitude = sign_bit - 1  # a negative value: every bit but the sign inverted back
    tail_bits, tail_mask = 8 * tail, (1 << (8 * tail)) - 1
    # Taken from the low end: the fraction's last group first, the integral's after it.
    frac_weights = [10 ** (9 * k + frac_rest) for k in range(frac_groups)]
    int_weights = [10 ** (9 * k) for k in range(int_groups)]
    head_weight, int_shift, exponent = 10 ** (9 * int_groups), 10 ** scale, f"E-{scale}"

    def read(raw: bytes) -> Decimal:
        value = int.from_bytes(raw, "big")
        negative = not value & sign_bit
        value ^= magnitude if negative else sign_bit
        fraction = value & tail_mask
        value >>= tail_bits
        for weight in frac_weights:
            fraction += (value & 0xFFFFFFFF) * weight
            value >>= 32
        digits = 0
        for weight in int_weights:
            digits += (value & 0xFFFFFFFF) * weight
            value >>= 32
        digits += value * head_weight  # the head: what is left
        return Decimal(f"{'-' if negative else ''}{digits * int_shift + fraction}{exponent}")
    return size, read


def _set_reader(members: list[str] | None) -> Callable[[int], Any]:
    members = list(members or ())

    def read(mask: int) -> Any:
        chosen = {m for i, m in enumerate(members) if mask & (1 << i)}
        return chosen or EMPTY_SET
    return read


def _codec(column: Any) -> str | None:
    """The Python codec the library decodes this text column with; None: keep bytes."""
    name = column.character_set_name
    if name is None:
        return "utf-8"
    encoding = RowsEvent.charset_to_encoding(name)
    try:
        return codecs.lookup(encoding).name
    except LookupError:  # 'binary' and charsets Python lacks: bytes, as the library does
        return None


class PartialJson:
    """A JSON column of a partial-update after image: MySQL's diff against the before
    image (binlog_row_value_options=PARTIAL_JSON). An empty diff: the value is unchanged."""

    __slots__ = ("diff",)

    def __init__(self, diff: bytes) -> None:
        self.diff = bytes(diff)


# --- plans ----------------------------------------------------------------------------

class Unsupported(Exception):
    """The plan cannot cover this table map; the library decodes it (counted)."""


_FIXED = {  # type -> (struct code signed, unsigned, size)
    FIELD_TYPE.TINY: ("b", "B", 1), FIELD_TYPE.SHORT: ("h", "H", 2),
    FIELD_TYPE.LONG: ("i", "I", 4), FIELD_TYPE.LONGLONG: ("q", "Q", 8),
    FIELD_TYPE.FLOAT: ("f", "f", 4), FIELD_TYPE.DOUBLE: ("d", "d", 8),
    FIELD_TYPE.YEAR: ("B", "B", 1),
}
_BLOBS = frozenset({FIELD_TYPE.TINY_BLOB, FIELD_TYPE.MEDIUM_BLOB, FIELD_TYPE.LONG_BLOB,
                    FIELD_TYPE.BLOB})


class ImagePlan:
    """How to read one row image of one table map: a generated function and its names."""

    def __init__(self, table: Table, errors: str = "strict") -> None:
        columns = table.columns
        self.names: tuple[str, ...] = tuple(c.name for c in columns)
        if any(not name for name in self.names):
            raise Unsupported("no column names (binlog_row_metadata is not FULL)")
        self.width = len(columns)
        self.null_bytes = (self.width + 7) // 8
        # Bits of the columns-present bitmap that name columns. MySQL sets the padding
        # bits of the last byte too (b'\xff\xff\xff' for 20 columns), MariaDB clears
        # them: only these bits count.
        self.all_present = (1 << self.width) - 1
        self._namespace: dict[str, Any] = {
            "_from_bytes": int.from_bytes, "_datetime2": _datetime2, "_date3": _date3,
            "_time2": time2, "_EPOCH": _EPOCH, "_timedelta": _timedelta,
            "_json_binary": json_text, "_ZERO_DATE": ZERO_DATE,
            "_PartialJson": PartialJson,
            "_errors": errors}
        self.json_columns = tuple(i for i, c in enumerate(columns)
                                  if c.type == FIELD_TYPE.JSON)
        body = self._generate(columns)
        names = ", ".join(f"v{i}" for i in range(self.width))
        # `partial`: bit k set when the k-th JSON column holds a partial-update diff
        # (MySQL's PARTIAL_UPDATE_ROWS_EVENT after images), not a value.
        source = ("def read_image(buf, pos, partial=0):\n"
                  f"    nulls = _from_bytes(buf[pos:pos + {self.null_bytes}], 'little')\n"
                  f"    pos += {self.null_bytes}\n"
                  + "".join(f"    {line}\n" for line in body)
                  + f"    return ({names},), pos\n")
        self.source = source
        code = compile(source, f"<wacdc row image {table.schema}.{table.table}>", "exec")
        exec(code, self._namespace)
        # read_image(buf, pos, partial=0): partial is the JSON-diff mask of an after image
        self.read_image: Callable[..., tuple[tuple, int]] = \
            self._namespace["read_image"]

    def _generate(self, columns: list) -> list[str]:
        self._columns = columns
        lines: list[str] = []
        i = 0
        while i < len(columns):
            run = self._fixed_run(columns, i)
            if len(run) > 1:  # unpacked together when none of them is NULL
                lines += self._run(run, i)
                i += len(run)
                continue
            lines += self._one(columns[i], i)
            i += 1
        return lines

    @staticmethod
    def _fixed_run(columns: list, start: int) -> list:
        run = []
        for column in columns[start:]:
            if column.type not in _FIXED:
                break
            run.append(column)
        return run

    def _struct_code(self, column: Any) -> tuple[str, int]:
        signed, unsigned, size = _FIXED[column.type]
        return (unsigned if column.unsigned else signed), size

    def _run(self, run: list, start: int) -> list[str]:
        codes = [self._struct_code(c) for c in run]
        fmt = "<" + "".join(code for code, _ in codes)
        size = sum(n for _, n in codes)
        unpacker = f"_run{start}"
        self._namespace[unpacker] = struct.Struct(fmt).unpack_from
        mask = sum(1 << (start + k) for k in range(len(run)))
        targets = ", ".join(f"v{start + k}" for k in range(len(run)))
        lines = [f"if not nulls & {mask}:",
                 f"    {targets} = {unpacker}(buf, pos)",
                 f"    pos += {size}"]
        lines += [f"    v{start + k} += 1900" for k, c in enumerate(run)
                  if c.type == FIELD_TYPE.YEAR]
        lines.append("else:")
        for k, column in enumerate(run):
            lines += ["    " + line for line in self._one(column, start + k)]
        return lines

    def _one(self, column: Any, i: int) -> list[str]:
        """Lines that set v{i} (None when NULL) and advance pos."""
        value = self._value(column, i)
        return [f"if nulls & {1 << i}:", f"    v{i} = None", "else:"] + \
            ["    " + line for line in value]

    def _value(self, column: Any, i: int) -> list[str]:
        t = column.type
        if t in _FIXED:
            return self._fixed(column, i)
        if t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING):
            return self._text(column, i, 2 if column.max_length > 255 else 1)
        if t in _BLOBS:
            return self._text(column, i, column.length_size)
        if t == FIELD_TYPE.JSON:
            return self._json(column, i)
        if t in (FIELD_TYPE.DATETIME2, FIELD_TYPE.TIMESTAMP2, FIELD_TYPE.TIME2,
                 FIELD_TYPE.DATE):
            return self._temporal(column, i)
        return self._packed(column, i)

    def _fixed(self, column: Any, i: int) -> list[str]:
        code, size = self._struct_code(column)
        name = f"_s{i}"
        self._namespace[name] = struct.Struct("<" + code).unpack_from
        year = " + 1900" if column.type == FIELD_TYPE.YEAR else ""
        return [f"v{i} = {name}(buf, pos)[0]{year}", f"pos += {size}"]

    def _json(self, column: Any, i: int) -> list[str]:
        length = self._length(column.length_size)
        bit = 1 << sum(1 for c in self._columns[:i] if c.type == FIELD_TYPE.JSON)
        # The column's last value, bytes and text: an UPDATE's after image mostly carries
        # the JSON of its before image unchanged, and decoding it is the costly part.
        last = f"_last{i}"
        self._namespace[last] = [None, None]  # no bytes compare equal to None
        return [f"n = {length}", f"pos += {column.length_size}", "raw = buf[pos:pos + n]",
                f"if partial & {bit}:", f"    v{i} = _PartialJson(raw)",
                f"elif raw == {last}[0]:", f"    v{i} = {last}[1]",
                "else:", f"    v{i} = {last}[1] = _json_binary(raw)", f"    {last}[0] = raw",
                "pos += n"]

    def _temporal(self, column: Any, i: int) -> list[str]:
        t, v = column.type, f"v{i}"
        if t == FIELD_TYPE.DATE:
            return [f"{v} = _date3(_from_bytes(buf[pos:pos + 3], 'little'))", "pos += 3"]
        frac = (column.fsp + 1) // 2
        if t == FIELD_TYPE.DATETIME2:
            micro = self._micro(5, column.fsp)
            return [f"{v} = _datetime2(_from_bytes(buf[pos:pos + 5], 'big'), {micro})",
                    f"pos += {5 + frac}"]
        if t == FIELD_TYPE.TIMESTAMP2:
            micro = self._micro(4, column.fsp)
            return [f"{v} = _EPOCH + _timedelta(seconds=_from_bytes(buf[pos:pos + 4], 'big'),"
                    f" microseconds={micro})", f"pos += {4 + frac}"]
        return [f"{v} = _time2(buf[pos:pos + {3 + frac}], {frac})", f"pos += {3 + frac}"]

    def _packed(self, column: Any, i: int) -> list[str]:
        """INT24, DECIMAL, ENUM, SET, BIT; any other type is not covered."""
        t, v = column.type, f"v{i}"
        if t == FIELD_TYPE.INT24:
            signed = not column.unsigned
            return [f"{v} = _from_bytes(buf[pos:pos + 3], 'little', signed={signed})",
                    "pos += 3"]
        if t == FIELD_TYPE.NEWDECIMAL:
            size, reader = _decimal_reader(column.precision, column.decimals)
            self._namespace[f"_dec{i}"] = reader
            return [f"{v} = _dec{i}(buf[pos:pos + {size}])", f"pos += {size}"]
        if t == FIELD_TYPE.ENUM:
            if not column.enum_values:
                raise Unsupported("ENUM without its values in the table map")
            self._namespace[f"_enum{i}"] = tuple(column.enum_values)
            return [f"{v} = _enum{i}[_from_bytes(buf[pos:pos + {column.size}], 'little')]",
                    f"pos += {column.size}"]
        if t == FIELD_TYPE.SET:
            self._namespace[f"_set{i}"] = _set_reader(column.set_values)
            return [f"{v} = _set{i}(_from_bytes(buf[pos:pos + {column.size}], 'little'))",
                    f"pos += {column.size}"]
        if t == FIELD_TYPE.BIT:
            return [f"{v} = format(_from_bytes(buf[pos:pos + {column.bytes}], 'big') & "
                    f"{(1 << column.bits) - 1}, '0{column.bits}b')", f"pos += {column.bytes}"]
        raise Unsupported(f"column type {t}")

    @staticmethod
    def _micro(offset: int, fsp: int) -> str:
        """Expression for the fraction after `offset` bytes, in microseconds. The server
        packs fsp 1-2 in 1 byte, 3-4 in 2, 5-6 in 3; an odd fsp keeps one digit too many."""
        frac = (fsp + 1) // 2
        if not frac:
            return "0"
        raw = f"_from_bytes(buf[pos + {offset}:pos + {offset + frac}], 'big')"
        return f"({raw}{' // 10' if fsp % 2 else ''} * {10 ** (6 - fsp)})"

    @staticmethod
    def _length(size: int) -> str:
        if size == 1:
            return "buf[pos]"
        if size == 2:
            return "buf[pos] | buf[pos + 1] << 8"
        return f"_from_bytes(buf[pos:pos + {size}], 'little')"

    def _text(self, column: Any, i: int, length_size: int) -> list[str]:
        codec = _codec(column)
        value = "buf[pos:pos + n]" if codec is None else \
            f"buf[pos:pos + n].decode({codec!r}, _errors)"
        return [f"n = {self._length(length_size)}", f"pos += {length_size}",
                f"v{i} = {value}", "pos += n"]
