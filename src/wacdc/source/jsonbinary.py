"""MySQL's binary JSON (the JSON column format in the binlog) printed as MySQL prints it.

`json_text(data)` gives the text `SELECT CAST(col AS CHAR)` returns for the value, which
is also what the snapshot reads, so both paths load the same `jsonb`, and the same text:
the one-space separators (`{"a": 1, "b": [1, 2]}`), keys in MySQL's stored order (by
length, then bytewise), and MySQL's typed scalars ("opaque" values) as MySQL prints them.

The format (MySQL's sql-common/json_binary.h): one type byte, then the value.

- objects and arrays, small (16-bit counts and offsets) or large (32-bit): element count,
  byte size, [key entries: offset, 16-bit length], value entries (type byte + offset, or
  the value itself if it fits: literals and 16-bit ints, and 32-bit ints in the large
  format), then keys and values; offsets count from the start of the object or array.
- literals null/true/false; int16/uint16/int32/uint32/int64/uint64 little endian; double
  (IEEE little endian); utf8mb4 string (length as 7-bit groups, low first, then bytes).
- opaque: a MySQL field type byte, a length as for strings, the bytes. DECIMAL holds
  precision, scale and the decimal in MySQL's binary form; DATETIME, TIMESTAMP, DATE and
  TIME hold MySQL's 8-byte packed temporal value.

Printing rules (sql-common/json_dom.cc, wrapper_to_string):

- double: my_gcvt(), i.e. the shortest digits that read back as the same double (Python's
  repr digits), positional for 1e-15 <= |x| < 1e15 (and 17-digit values below 1e16),
  otherwise exponent form without '+' or padding (1e100, 1.2345678901234568e20, 5e-324);
  ".0" is appended when there is neither '.' nor 'e' (1.0, -0.0, 100000000000000.0).
- DECIMAL: every digit of its scale (1.0, -0.50, 0.000), unquoted.
- DATETIME/TIMESTAMP "YYYY-MM-DD hh:mm:ss.ffffff", TIME "[-]hh:mm:ss.ffffff" (hours can
  have three digits), always six fraction digits; DATE "YYYY-MM-DD".
- other opaque values (BIT, BLOB, BINARY, VARBINARY: MySQL reports VARCHAR for the last
  two, type 15) as "base64:type<N>:<base64>", MySQL's base64 breaking lines every 76
  characters (the newline is escaped as \\n); opaque VAR_STRING (type 253) is printed as a
  plain string, as MySQL does.
- strings: '"' and '\\' escaped, \\b \\t \\n \\f \\r, other controls below 0x20 as \\u00xx;
  everything else (DEL, non-ASCII) as is.

An empty value is JSON null: MySQL stores '' when NULL goes into a NOT NULL JSON column
under INSERT IGNORE or a non-strict sql_mode (and for rows that existed when a NOT NULL
JSON column was added), and reads it back as null (json_binary::parse_binary); SQL NULL
is the row image's NULL bitmap, never an empty value.

Invalid or truncated input raises ValueError.

Two implementations give the same text and refuse the same inputs: `json_text_python`
here, and the C extension `_jsonbinary` (built with the package when a compiler is there;
containers, strings and integers in C, doubles and opaque values through the functions
below). `json_text` is the C one when it is built; `COMPILED` says which it is.
"""

from __future__ import annotations

import base64
import functools
import math
import re
import struct
from typing import Any

__all__ = ["COMPILED", "json_text", "json_text_python"]

_MAX_DEPTH = 100  # MySQL's JSON_DOCUMENT_MAX_DEPTH; also keeps crafted input off the C stack

_SMALL_OBJECT, _LARGE_OBJECT, _SMALL_ARRAY, _LARGE_ARRAY = 0x0, 0x1, 0x2, 0x3
_LITERAL, _INT16, _UINT16, _INT32, _UINT32 = 0x4, 0x5, 0x6, 0x7, 0x8
_INT64, _UINT64, _DOUBLE, _STRING, _OPAQUE = 0x9, 0xA, 0xB, 0xC, 0xF
_CONTAINERS = frozenset((_SMALL_OBJECT, _LARGE_OBJECT, _SMALL_ARRAY, _LARGE_ARRAY))
_INLINE_SMALL = frozenset((_LITERAL, _INT16, _UINT16))
_INLINE_LARGE = frozenset((_LITERAL, _INT16, _UINT16, _INT32, _UINT32))
_LITERALS = {0: "null", 1: "true", 2: "false"}

# MySQL field types inside opaque values (enum_field_types).
_TYPE_TIMESTAMP, _TYPE_DATE, _TYPE_TIME, _TYPE_DATETIME = 7, 10, 11, 12
_TYPE_NEWDECIMAL, _TYPE_VAR_STRING = 246, 253

_HEADER_SMALL = struct.Struct("<HH")
_HEADER_LARGE = struct.Struct("<II")
_KEY_SMALL = struct.Struct("<HH")    # offset, length
_KEY_LARGE = struct.Struct("<IH")
_ENTRY_SMALL = struct.Struct("<BH")  # type, offset or inline value
_ENTRY_LARGE = struct.Struct("<BI")
_SCALARS = {  # fixed-size scalar type -> (unpack_from, size)
    t: (struct.Struct(code).unpack_from, struct.calcsize(code))
    for t, code in ((_INT16, "<h"), (_UINT16, "<H"), (_INT32, "<i"), (_UINT32, "<I"),
                    (_INT64, "<q"), (_UINT64, "<Q"))
}
_DOUBLE_AT = struct.Struct("<d").unpack_from
_PACKED_AT = struct.Struct("<q").unpack_from

_ESCAPES = {**{c: f"\\u{c:04x}" for c in range(0x20)},
            0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r",
            0x22: '\\"', 0x5C: "\\\\"}
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]').search

_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)  # bytes MySQL uses for 0..9 leftover digits


def json_text_python(data: bytes | bytearray | memoryview) -> str:
    """The JSON text MySQL returns for this binary JSON value (its type byte first)."""
    if not data:
        return "null"  # MySQL's reading of an empty value (see the module docstring)
    buf = bytes(data)
    out: list[str] = []
    _value(buf, buf[0], 1, len(buf), out, 0)
    return "".join(out)


def _value(buf: bytes, t: int, pos: int, end: int, out: list[str], depth: int) -> None:
    """Append value `t` stored at buf[pos:end] (end: the enclosing value's end)."""
    if t in _CONTAINERS:
        _container(buf, t, pos, end, out, depth)
    elif t == _STRING:
        n, pos = _length(buf, pos, end)
        if pos + n > end:
            raise ValueError("binary JSON: string runs past the end of the value")
        out.append(_quote(_utf8(buf, pos, pos + n)))
    elif t in _SCALARS or t in (_DOUBLE, _LITERAL):
        out.append(_scalar(buf, t, pos, end))
    elif t == _OPAQUE:
        if pos >= end:
            raise ValueError("binary JSON: truncated opaque value")
        field_type = buf[pos]
        n, pos = _length(buf, pos + 1, end)
        if pos + n > end:
            raise ValueError("binary JSON: opaque value runs past the end of the value")
        out.append(_opaque(field_type, buf[pos:pos + n]))
    else:
        raise ValueError(f"binary JSON: unknown value type 0x{t:02x}")


def _scalar(buf: bytes, t: int, pos: int, end: int) -> str:
    """An integer, double or literal stored at buf[pos:end], as text."""
    if t in _SCALARS:
        unpack, size = _SCALARS[t]
        if pos + size > end:
            raise ValueError("binary JSON: truncated integer")
        return str(unpack(buf, pos)[0])
    if t == _DOUBLE:
        if pos + 8 > end:
            raise ValueError("binary JSON: truncated double")
        return double_text(_DOUBLE_AT(buf, pos)[0])
    if pos >= end or buf[pos] not in _LITERALS:
        raise ValueError("binary JSON: truncated or unknown literal")
    return _LITERALS[buf[pos]]


def _container(buf: bytes, t: int, pos: int, end: int, out: list[str], depth: int) -> None:
    depth += 1
    if depth > _MAX_DEPTH:
        raise ValueError(f"binary JSON: nested deeper than {_MAX_DEPTH} levels")
    large = t in (_LARGE_OBJECT, _LARGE_ARRAY)
    is_object = t in (_SMALL_OBJECT, _LARGE_OBJECT)
    header, key_entry, entry = (_HEADER_LARGE, _KEY_LARGE, _ENTRY_LARGE) if large \
        else (_HEADER_SMALL, _KEY_SMALL, _ENTRY_SMALL)
    if pos + header.size > end:
        raise ValueError("binary JSON: truncated object or array header")
    count, size = header.unpack_from(buf, pos)
    if size > end - pos:
        raise ValueError("binary JSON: object or array is larger than the data holding it")
    keys_at = pos + header.size
    values_at = keys_at + (count * key_entry.size if is_object else 0)
    first_free = values_at + count * entry.size - pos  # relative to the container
    if first_free > size:
        raise ValueError("binary JSON: object or array header is larger than the value")
    keys = _keys(buf, pos, key_entry.iter_unpack(buf[keys_at:values_at]), first_free, size) \
        if is_object else []
    inline = _INLINE_LARGE if large else _INLINE_SMALL
    append = out.append
    append("{" if is_object else "[")
    after = values_at - pos  # relative end of the current value entry
    step, stop = entry.size, pos + size
    for i, (vt, v) in enumerate(entry.iter_unpack(buf[values_at:pos + first_free])):
        after += step
        if i:
            append(", ")
        if is_object:
            append(keys[i])  # quoted, with its ": "
        if vt in inline:
            append(_inline(vt, v))
            continue
        if v < after or v > size:  # a value lies after its own entry, inside the container
            raise ValueError("binary JSON: value offset outside the object or array")
        at = pos + v
        if vt == _STRING and at < stop and buf[at] < 0x80 and at + 1 + buf[at] <= stop:
            # The common case inline: a string shorter than 128 bytes (a one-byte length).
            text = _short_utf8(buf, at + 1, at + 1 + buf[at])
            if text is not None:
                append(f'"{text.translate(_ESCAPES)}"' if _NEEDS_ESCAPE(text) else f'"{text}"')
                continue
        _value(buf, vt, at, stop, out, depth)
    append("}" if is_object else "]")


def _short_utf8(buf: bytes, start: int, stop: int) -> str | None:
    """The string, or None when it is not UTF-8 (the general path then says why)."""
    try:
        return buf[start:stop].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _keys(buf: bytes, pos: int, entries: Any, first_free: int, size: int) -> list[str]:
    """An object's keys, quoted and followed by ": " (their offsets are relative to the
    object at `pos`)."""
    keys = []
    for key_offset, key_length in entries:
        if key_offset < first_free or key_offset + key_length > size:
            raise ValueError("binary JSON: object key outside the object")
        keys.append(_quote(_utf8(buf, pos + key_offset, pos + key_offset + key_length))
                    + ": ")
    return keys


def _inline(vt: int, v: int) -> str:
    """A value stored in its entry (a literal or a small integer), as text."""
    if vt == _LITERAL:
        literal = _LITERALS.get(v & 0xFF)
        if literal is None:
            raise ValueError("binary JSON: unknown literal")
        return literal
    if vt == _INT16:
        v &= 0xFFFF
        return str(v - 0x10000 if v & 0x8000 else v)
    if vt == _UINT16:
        return str(v & 0xFFFF)
    if vt == _INT32:
        return str(v - 0x100000000 if v & 0x80000000 else v)
    return str(v)


def _length(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """MySQL's variable-length length: 7 bits a byte, low bits first, at most 5 bytes."""
    n = shift = 0
    for i in range(pos, min(end, pos + 5)):
        b = buf[i]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            if n > 0xFFFFFFFF:
                break
            return n, i + 1
        shift += 7
    raise ValueError("binary JSON: truncated or invalid length")


def _utf8(buf: bytes, start: int, stop: int) -> str:
    try:
        return buf[start:stop].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"binary JSON: string is not valid UTF-8: {exc}") from None


def _quote(s: str) -> str:
    if _NEEDS_ESCAPE(s):
        s = s.translate(_ESCAPES)
    return f'"{s}"'


def double_text(d: float) -> str:
    """A double as MySQL prints it in JSON (my_gcvt with MySQL's widest field, + '.0')."""
    if not math.isfinite(d):
        raise ValueError(f"binary JSON: {d} is not a JSON number")
    if d == 0.0:
        return "-0.0" if math.copysign(1.0, d) < 0 else "0.0"
    r = repr(d)  # the shortest round-trip digits: what MySQL's dtoa gives at this width
    sign = ""
    if r[0] == "-":
        sign, r = "-", r[1:]
    mantissa, _, exponent = r.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    significant = digits.lstrip("0")
    # The decimal point sits after `point` digits of `digits` (negative: zeros before).
    point = len(whole) + (int(exponent) if exponent else 0) - (len(digits) - len(significant))
    digits = significant.rstrip("0")
    n = len(digits)
    if point >= -14 and (point <= 15 or n > point):
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point < n:
            return f"{sign}{digits[:point]}.{digits[point:]}"
        return f"{sign}{digits}{'0' * (point - n)}.0"
    head = f"{digits[0]}.{digits[1:]}" if n > 1 else digits
    return f"{sign}{head}e{point - 1}"


def _opaque(field_type: int, data: bytes) -> str:
    if field_type == _TYPE_NEWDECIMAL:
        return decimal_text(data)
    if field_type in (_TYPE_DATETIME, _TYPE_TIMESTAMP, _TYPE_DATE, _TYPE_TIME):
        if len(data) != 8:
            raise ValueError(f"binary JSON: temporal value of {len(data)} bytes, not 8")
        return f'"{_temporal(field_type, _PACKED_AT(data)[0])}"'
    if field_type == _TYPE_VAR_STRING:
        return _quote(_utf8(data, 0, len(data)))  # MySQL prints these as plain strings
    encoded = base64.b64encode(data).decode("ascii")
    if len(encoded) > 76:  # MySQL's base64_encode breaks lines every 76 characters
        encoded = "\\n".join(encoded[k:k + 76] for k in range(0, len(encoded), 76))
    return f'"base64:type{field_type}:{encoded}"'


def _temporal(field_type: int, packed: int) -> str:
    """MySQL's packed temporal value (my_time.cc) as my_TIME_to_str(..., 6) prints it."""
    negative = packed < 0
    packed = -packed if negative else packed
    micro = packed & 0xFFFFFF
    if micro > 999_999:
        raise ValueError("binary JSON: temporal value with more than 999999 microseconds")
    whole = packed >> 24
    if field_type == _TYPE_TIME:
        hour = (whole >> 12) % 1024
        return (f"{'-' if negative else ''}{hour:02d}:{(whole >> 6) & 63:02d}:"
                f"{whole & 63:02d}.{micro:06d}")
    ymd = whole >> 17
    ym = ymd >> 5
    year = ym // 13
    century = year // 100 if year < 10000 else 0  # MySQL prints "00" for >= 100
    date = f"{century:02d}{year % 100:02d}-{ym % 13:02d}-{ymd & 31:02d}"
    if field_type == _TYPE_DATE:
        return date
    hms = whole & 0x1FFFF
    return f"{date} {hms >> 12:02d}:{(hms >> 6) & 63:02d}:{hms & 63:02d}.{micro:06d}"


def decimal_text(data: bytes) -> str:
    """MySQL's JSON DECIMAL (precision, scale, decimal2bin bytes) as decimal2string prints it."""
    if len(data) < 2:
        raise ValueError("binary JSON: truncated DECIMAL")
    precision, scale = data[0], data[1]
    # No 65/30 limits here: MySQL stores what its arithmetic produced (DECIMAL(66,30) from
    # a DECIMAL(65,30) cast), and reads back any precision >= scale that fits the bytes.
    if not 0 < precision < 128 or scale > precision:
        raise ValueError(f"binary JSON: invalid DECIMAL({precision},{scale})")
    intg = precision - scale
    whole_groups, whole_rest = divmod(intg, 9)
    frac_groups, frac_rest = divmod(scale, 9)
    sizes = ([(_DIG2BYTES[whole_rest], whole_rest)] if whole_rest else []) \
        + [(4, 9)] * (whole_groups + frac_groups) \
        + ([(_DIG2BYTES[frac_rest], frac_rest)] if frac_rest else [])
    if sum(size for size, _ in sizes) != len(data) - 2:
        raise ValueError(f"binary JSON: DECIMAL({precision},{scale}) of the wrong size")
    raw = bytearray(data[2:])
    negative = not raw[0] & 0x80
    raw[0] ^= 0x80
    if negative:
        raw = bytearray(b ^ 0xFF for b in raw)
    parts, pos = [], 0
    for size, digits in sizes:
        value = int.from_bytes(raw[pos:pos + size], "big")
        if value >= 10 ** digits:
            raise ValueError("binary JSON: invalid DECIMAL digits")
        parts.append(f"{value:0{digits}d}")
        pos += size
    text = "".join(parts)
    whole = text[:intg].lstrip("0") or "0"
    fraction = text[intg:]
    return f"{'-' if negative else ''}{whole}{'.' + fraction if scale else ''}"


try:  # the compiled twin (src/wacdc/source/_jsonbinary.c), when the build made it
    import wacdc.source._jsonbinary as _jsonbinary
except ImportError:  # no compiler where the package was built: the same text, slower
    COMPILED = False
    json_text = json_text_python
else:
    COMPILED = True
    json_text = functools.partial(_jsonbinary.json_text, double_text, _opaque)
