"""Column converters: one factory per type family, f(value) for non-None source values.

The same function accepts what PyMySQL returns on a SELECT (text) and what
mysql-replication returns from a row event (Python objects); both give the identical
PostgreSQL value. Bad input goes through the table's `Bad` hook (wacdc.schema.badvalues).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

from wacdc.schema.badvalues import Bad
from wacdc.schema.target import TargetColumn

UTC = dt.UTC
# MySQL TIMESTAMP starts at 1970-01-01 00:00:01 UTC; the binlog gives 0 for the zero value.
_TIMESTAMP_MIN = dt.datetime(1970, 1, 1, 0, 0, 1)
_REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")

# --- column functions ---------------------------------------------------------------
# Each factory returns f(value) for non-None values; None means "pass through".

Convert = Callable[[Any], Any]


def to_bool(tc: TargetColumn, bad: Bad) -> Convert:
    name = tc.name

    def convert(v: Any) -> Any:
        if v == 1 or v == "1":
            return True
        if v == 0 or v == "0":
            return False
        return bad(name, "bool_out_of_range", v, True)
    return convert


def _fix_text(name: str, bad: Bad, v: str) -> str:
    return bad(name, "nul_in_text", v, v.replace("\x00", _REPLACEMENT))


def to_text(tc: TargetColumn, bad: Bad) -> Convert:
    name = tc.name

    def convert(v: Any) -> Any:
        if isinstance(v, bytes | bytearray):
            try:
                v = bytes(v).decode("utf-8")
            except UnicodeDecodeError:
                v = bad(name, "invalid_utf8", v, bytes(v).decode("utf-8", "replace"))
        if "\x00" in v:
            return _fix_text(name, bad, v)
        return v
    return convert


def to_binary(tc: TargetColumn, bad: Bad) -> Convert:
    # BINARY(n) is zero-padded on SELECT, but the binlog drops trailing zero bytes.
    width = tc.source.char_length or 0 if tc.source else 0

    def convert(v: Any) -> Any:
        if isinstance(v, str):
            v = v.encode("utf-8", "surrogateescape")
        return v if len(v) >= width else bytes(v).ljust(width, b"\x00")
    return convert


def to_bytes(tc: TargetColumn, bad: Bad) -> Convert:
    def convert(v: Any) -> Any:
        return v.encode("utf-8", "surrogateescape") if isinstance(v, str) else bytes(v)
    return convert


def _zero_substitute(tc: TargetColumn, minimum: Any) -> Any:
    # A nullable column gets NULL; a NOT NULL one the type's minimum (documented).
    return None if tc.nullable else minimum


def _is_zero_date_text(v: str) -> bool:
    # 'YYYY-MM-DD...': year 0000, month 00 or day 00 cannot be stored by PostgreSQL.
    return v[:4] == "0000" or v[5:7] == "00" or v[8:10] == "00"


# The snapshot reads values as MySQL's text (PostgreSQL parses the same text in COPY);
# the binlog gives Python objects. Both shapes are accepted; both reach the same value.

def calendar(minimum: dt.date) -> Callable[[TargetColumn, Bad], Convert]:
    """DATE and DATETIME: valid values pass; zero/invalid dates follow the policy."""
    kind = type(minimum)

    def factory(tc: TargetColumn, bad: Bad) -> Convert:
        name, substitute = tc.name, _zero_substitute(tc, minimum)

        def convert(v: Any) -> Any:
            if isinstance(v, kind) or (isinstance(v, str) and not _is_zero_date_text(v)):
                return v
            # Zero and invalid dates alike: the binlog reports both the same way.
            return bad(name, "zero_date", v, substitute)
        return convert
    return factory


def to_timestamp(tc: TargetColumn, bad: Bad) -> Convert:
    name, substitute = tc.name, _zero_substitute(tc, dt.datetime.min.replace(tzinfo=UTC))

    def convert(v: Any) -> Any:
        if isinstance(v, str):
            # Read in a UTC session; the target session is UTC too, so the text is exact.
            return v if not _is_zero_date_text(v) else bad(name, "zero_date", v, substitute)
        if isinstance(v, dt.datetime) and v >= _TIMESTAMP_MIN:
            return v.replace(tzinfo=UTC)
        return bad(name, "zero_date", v, substitute)
    return convert


def parse_mysql_time(text: str) -> dt.timedelta:
    """MySQL TIME text ('-838:59:59.000001') -> timedelta."""
    sign = -1 if text.startswith("-") else 1
    hours, minutes, seconds = text.lstrip("-").split(":")
    whole, _, fraction = seconds.partition(".")
    micro = int((fraction + "000000")[:6]) if fraction else 0
    return sign * dt.timedelta(hours=int(hours), minutes=int(minutes), seconds=int(whole),
                               microseconds=micro)


def mysql_time_text(value: dt.timedelta) -> str:
    """A TIME as MySQL prints it ('-838:59:58.999999', '517:51:04.780000'): hours, minutes,
    seconds. PostgreSQL keeps an interval's fields as given, so this text and the one the
    snapshot copies are the same interval field by field; psycopg's own form of a
    timedelta ('-35 days +01:00:01.000001') would be equal in length but not in
    extract(hour), to_char or date arithmetic across a DST change."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    seconds, micro = divmod(abs(micros), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    text = f"{sign}{hours:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{micro:06d}" if micro else text


def _interval(v: Any) -> Any:
    return mysql_time_text(v) if isinstance(v, dt.timedelta) else v  # text: the snapshot's


def to_time(tc: TargetColumn, bad: Bad) -> Convert:
    if not tc.pg_type.startswith("time"):
        return _interval  # interval holds every MySQL TIME, negative and > 24h included
    name = tc.name
    day = dt.timedelta(days=1)

    def convert(v: Any) -> Any:
        if isinstance(v, str):
            v = parse_mysql_time(v)
        if dt.timedelta(0) <= v < day:
            return (dt.datetime.min + v).time()
        if v == day:
            return dt.time(0)  # PG accepts 24:00:00; Python time does not: documented as 00:00
        return bad(name, "time_out_of_range", v, None, allowed=tc.nullable)
    return convert


def to_year(tc: TargetColumn, bad: Bad) -> Convert:
    def convert(v: Any) -> Any:
        # The binlog encodes YEAR as year-1900, so the zero year 0000 arrives as 1900.
        return 0 if v == 1900 else int(v)
    return convert


def _json_text(value: Any) -> str:
    return json.dumps(_decode_json_bytes(value), ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False)


def _decode_json_bytes(value: Any) -> Any:
    """MySQL 8 binary JSON decodes with bytes keys and strings; make them str."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        return {_decode_json_bytes(k): _decode_json_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_json_bytes(v) for v in value]
    return value


def _clean_json_strings(value: Any) -> Any:
    """Strings PG's jsonb refuses: NUL and lone UTF-16 surrogates become U+FFFD."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", _REPLACEMENT)
        return _SURROGATE.sub(_REPLACEMENT, value)
    if isinstance(value, dict):
        return {_clean_json_strings(k): _clean_json_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json_strings(v) for v in value]
    return value


def _needs_json_check(text: str) -> bool:
    # jsonb rejects \u0000 and unpaired surrogate escapes; a raw NUL is invalid JSON anyway.
    return "\\u0000" in text or "\x00" in text or "\\ud" in text or "\\uD" in text


def _is_partial_json(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and type(value[0]).__name__ == "JsonDiff")


def to_json(tc: TargetColumn, bad: Bad) -> Convert:
    name = tc.name

    def convert(v: Any) -> Any:
        if isinstance(v, str):
            text = v
        elif _is_partial_json(v):
            return bad(name, "partial_json", v, None, allowed=False)
        else:
            text = _json_text(v)
        if _needs_json_check(text):
            try:
                parsed = json.loads(text)
            except ValueError:
                return bad(name, "invalid_json", text, None, allowed=False)
            cleaned = _clean_json_strings(parsed)
            if cleaned != parsed:
                reason = "nul_in_json" if "\\u0000" in text or "\x00" in text \
                    else "invalid_unicode_in_json"
                return bad(name, reason, text, _json_text(cleaned))
        return text
    return convert


def to_json_string_array(tc: TargetColumn, bad: Bad) -> Convert:
    name = tc.name

    def convert(v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                return bad(name, "invalid_json", v, [v])
        v = _decode_json_bytes(v)
        if v is None:
            return []  # JSON null, like SQL NULL: the PG client types the field non-null
        if not isinstance(v, list):
            return bad(name, "tags_not_array", v, [_json_text(v)])
        if all(isinstance(item, str) for item in v):
            cleaned = _clean_json_strings(v)
            return v if cleaned == v else bad(name, "nul_in_text", v, cleaned)
        fixed = [item if isinstance(item, str) else _json_text(item) for item in v]
        return bad(name, "tags_non_string", v, fixed)
    return convert


def to_enum(tc: TargetColumn, bad: Bad) -> Convert:
    if tc.enum_type is None:
        return identity  # enum -> text: the empty "invalid" marker is just a string
    name = tc.name

    def convert(v: Any) -> Any:
        if v == "":
            # Index 0: MySQL's marker for an invalid value; no PG enum label matches it.
            return bad(name, "enum_invalid", v, None, allowed=tc.nullable)
        return v
    return convert


def to_set(tc: TargetColumn, bad: Bad) -> Convert:
    order = {member: i for i, member in enumerate(tc.source.values if tc.source else ())}

    def convert(v: Any) -> Any:
        members = [m for m in v.split(",") if m] if isinstance(v, str) else list(v)
        return sorted(members, key=lambda m: order.get(m, len(order)))
    return convert


def to_bit1(tc: TargetColumn, bad: Bad) -> Convert:
    def convert(v: Any) -> Any:
        if isinstance(v, str):
            return v.endswith("1")
        return bool(int.from_bytes(v, "big"))
    return convert


def to_bits(tc: TargetColumn, bad: Bad) -> Convert:
    width = tc.source.bit_width if tc.source else 1

    def convert(v: Any) -> Any:
        if isinstance(v, str):
            return v.zfill(width)  # the binlog gives the bit string already
        return format(int.from_bytes(v, "big"), f"0{width}b")
    return convert


def identity(v: Any) -> Any:
    return v


def no_conversion(tc: TargetColumn, bad: Bad) -> Convert | None:
    """Numbers: the driver's value is PostgreSQL's as it is."""
    return None
