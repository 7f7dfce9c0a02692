"""MySQL binary JSON -> MySQL's JSON text (src/wacdc/source/jsonbinary.py).

Unit tests build binary values by hand (an encoder below, written from the format
description in jsonbinary's docstring). The differential tests insert values into a real
Oracle MySQL, read their binary form from the binlog and compare `json_text` (and the
compiled and library decoders) with `SELECT CAST(j AS CHAR)`, on the test session's
Oracle MySQL (the `mysql` flavour of the harness; MariaDB stores JSON as text). Everything
that talks to the server is in `_server_roundtrip`.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import random
import struct
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wacdc.source import jsonbinary
from wacdc.source.jsonbinary import decimal_text, double_text, json_text_python
from wacdc.source.library import install

# --- a hand-made encoder ----------------------------------------------------------------


class Opaque(NamedTuple):
    field_type: int
    data: bytes


class Typed(NamedTuple):
    """A scalar with an explicit binary type (int16 0x05 ... uint64 0x0A)."""
    jtype: int
    value: int


_INT_FORMATS = {0x05: "<h", 0x06: "<H", 0x07: "<i", 0x08: "<I", 0x09: "<q", 0x0A: "<Q"}


def _varlen(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode()
    return len(raw), raw


def _encode(value: Any, large: bool = False) -> tuple[int, bytes]:
    """(type byte, body) of a value."""
    if value is None or isinstance(value, bool):
        return 0x04, bytes([{None: 0, True: 1, False: 2}[value]])
    if isinstance(value, Typed):
        return value.jtype, struct.pack(_INT_FORMATS[value.jtype], value.value)
    if isinstance(value, int):
        for t in (0x05, 0x07, 0x09, 0x0A):
            try:
                return t, struct.pack(_INT_FORMATS[t], value)
            except struct.error:
                pass
        raise ValueError(value)
    if isinstance(value, float):
        return 0x0B, struct.pack("<d", value)
    if isinstance(value, str):
        return 0x0C, _varlen(len(value.encode())) + value.encode()
    if isinstance(value, Opaque):
        return 0x0F, bytes([value.field_type]) + _varlen(len(value.data)) + value.data
    is_object = isinstance(value, dict)
    items = sorted(value.items(), key=lambda kv: _key_order(kv[0])) if is_object \
        else [(None, v) for v in value]
    off = "<I" if large else "<H"
    osz = struct.calcsize(off)
    inline = {0x04, 0x05, 0x06} | ({0x07, 0x08} if large else set())
    n = len(items)
    header = 2 * osz + n * ((osz + 2) if is_object else 0) + n * (1 + osz)
    keys = b"".join(k.encode() for k, _ in items) if is_object else b""
    key_entries, pos = b"", header
    for k, _ in items:
        if k is not None:
            key_entries += struct.pack(off, pos) + struct.pack("<H", len(k.encode()))
            pos += len(k.encode())
    entries, bodies = b"", b""
    for _, v in items:
        t, body = _encode(v, large)
        if t in inline:
            entries += bytes([t]) + body.ljust(osz, b"\0")[:osz]
        else:
            entries += bytes([t]) + struct.pack(off, header + len(keys) + len(bodies))
            bodies += body
    total = header + len(keys) + len(bodies)
    t = (0x01 if large else 0x00) if is_object else (0x03 if large else 0x02)
    return t, struct.pack(off, n) + struct.pack(off, total) + key_entries + entries \
        + keys + bodies


def binary(value: Any, large: bool = False) -> bytes:
    t, body = _encode(value, large)
    return bytes([t]) + body


def mysql_dumps(value: Any) -> str:
    """MySQL's text for float-free documents: its separators and its key order."""
    def order(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: order(v[k]) for k in sorted(v, key=_key_order)}
        if isinstance(v, list):
            return [order(x) for x in v]
        return v
    return json.dumps(order(value), ensure_ascii=False, separators=(", ", ": "))


def decimal_binary(value: str, precision: int, scale: int) -> bytes:
    """MySQL's JSON DECIMAL: precision, scale, then decimal2bin."""
    d = Decimal(value)
    negative = d.is_signed()
    with decimal.localcontext() as ctx:
        ctx.prec = 100
        digits = f"{abs(d):.{scale}f}".replace(".", "")
    digits = digits.rjust(precision, "0")
    whole, frac = digits[:precision - scale], digits[precision - scale:]
    size = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
    groups = []
    if len(whole) % 9:
        groups.append((whole[:len(whole) % 9], size[len(whole) % 9]))
    groups += [(whole[k:k + 9], 4) for k in range(len(whole) % 9, len(whole), 9)]
    groups += [(frac[k:k + 9], 4) for k in range(0, len(frac) // 9 * 9, 9)]
    if len(frac) % 9:
        groups.append((frac[len(frac) // 9 * 9:], size[len(frac) % 9]))
    raw = bytearray(b"".join(int(g).to_bytes(n, "big") for g, n in groups))
    if negative:
        raw = bytearray(b ^ 0xFF for b in raw)
    raw[0] ^= 0x80
    return bytes([precision, scale]) + bytes(raw)


def datetime_packed(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0,
                    us: int = 0) -> bytes:
    ymd = ((y * 13 + mo) << 5) | d
    return struct.pack("<q", ((((ymd << 17) | (h << 12) | (mi << 6) | s)) << 24) + us)


def time_packed(h: int, mi: int, s: int, us: int = 0, negative: bool = False) -> bytes:
    packed = (((h << 12) | (mi << 6) | s) << 24) + us
    return struct.pack("<q", -packed if negative else packed)


# --- unit tests -------------------------------------------------------------------------

# Both printers, the Python one and the C extension (the one the decoders use), take every
# unit test; the differential tests below compare them on generated and corrupted input.
both = pytest.mark.parametrize("json_text", [json_text_python, jsonbinary.json_text],
                               ids=["python", "compiled"])


def test_the_compiled_printer_is_built() -> None:
    # `make test` builds the package with a compiler, so a C extension that failed to
    # compile (setuptools builds it as optional) fails here instead of slowing MySQL.
    assert jsonbinary.COMPILED, "src/wacdc/source/_jsonbinary.c was not built: install " \
        "gcc and the Python headers, then `make clean test`"
    assert jsonbinary.json_text is not json_text_python


@both
def test_literals_and_empty(json_text: Any) -> None:
    assert json_text(b"\x04\x00") == "null"
    assert json_text(b"\x04\x01") == "true"
    assert json_text(b"\x04\x02") == "false"
    assert json_text(b"") == "null"  # MySQL's reading of '' (INSERT IGNORE NULL)
    assert json_text(memoryview(b"\x04\x01")) == "true"
    assert json_text(b"") == "null"
    assert json_text(binary({"a": None})) == '{"a": null}'


@pytest.mark.parametrize(("jtype", "value"), [
    (0x05, -32768), (0x05, 32767), (0x06, 65535), (0x07, -2**31), (0x08, 2**32 - 1),
    (0x09, -2**63), (0x09, 2**63 - 1), (0x0A, 2**64 - 1), (0x0A, 0)])
@both
def test_integers_top_level_and_in_both_formats(jtype: int, value: int, json_text: Any) -> None:
    assert json_text(binary(Typed(jtype, value))) == str(value)
    for large in (False, True):  # inline (16-bit; 32-bit in large) or at an offset
        assert json_text(binary([Typed(jtype, value), 1], large)) == f"[{value}, 1]"
        assert json_text(binary({"k": Typed(jtype, value)}, large)) == f'{{"k": {value}}}'


@both
def test_inline_values_in_the_large_format_use_the_entry_bytes(json_text: Any) -> None:
    # int16 -1 and a literal inlined in 4-byte entries; int32 inline only when large.
    doc = [Typed(0x05, -1), None, True, Typed(0x07, -70000), Typed(0x08, 4000000000)]
    assert json_text(binary(doc, large=True)) == "[-1, null, true, -70000, 4000000000]"
    assert json_text(binary(doc)) == "[-1, null, true, -70000, 4000000000]"
    assert binary(doc, large=True)[0] == 0x03


@pytest.mark.parametrize(("value", "text"), [
    (0.1, "0.1"), (1e100, "1e100"), (-0.0, "-0.0"), (0.0, "0.0"), (1.5e-7, "0.00000015"),
    (123456789012345680000.0, "1.2345678901234568e20"), (1e15, "1e15"),
    (1e14, "100000000000000.0"), (123.0, "123.0"), (-2.5, "-2.5"), (1e-15,
     "0.000000000000001"), (1.234e-15, "0.000000000000001234"), (1e-16, "1e-16"),
    (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e308"),
    (1234567890123456.7, "1234567890123456.8"), (-1.8446744073709552e19,
     "-1.8446744073709552e19"), (1e21, "1e21"), (1.5e300, "1.5e300"), (-1e-100, "-1e-100"),
    (999999999999999.0, "999999999999999.0"), (0.000123, "0.000123")])
@both
def test_doubles_print_as_mysql_prints_them(value: float, text: str, json_text: Any) -> None:
    # Expected texts are MySQL 9.7's (SELECT CAST(CAST('[...]' AS JSON) AS CHAR)).
    assert double_text(value) == text
    assert json_text(binary(value)) == text
    assert json_text(binary([value])) == f"[{text}]"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_doubles_read_back_exactly(value: float) -> None:
    text = double_text(value)
    assert float(text) == value and math.copysign(1, float(text)) == math.copysign(1, value)
    assert "." in text or "e" in text


@both
def test_strings_escape_like_mysql(json_text: Any) -> None:
    s = 'a"b\\c/\b\f\n\r\t\x00\x01\x1f\x7f é 🙏'
    assert json_text(binary(s)) == '"a\\"b\\\\c/\\b\\f\\n\\r\\t\\u0000\\u0001\\u001f\x7f é 🙏"'
    assert json_text(binary({s: s})) == f"{{{json_text(binary(s))}: {json_text(binary(s))}}}"
    long = "x" * 300  # a two-byte length
    assert json_text(binary(long)) == f'"{long}"'


@both
def test_decimals_keep_their_scale(json_text: Any) -> None:
    cases = [("1.50", 5, 2, "1.50"), ("-0.50", 10, 2, "-0.50"), ("0", 5, 3, "0.000"),
             ("1.0", 2, 1, "1.0"), ("0", 1, 0, "0"), ("-7", 10, 0, "-7"),
             ("0.5", 5, 5, "0.50000"), ("123456789012.000000001", 30, 9,
                                        "123456789012.000000001"),
             ("-99999999999999999999999999999999999.999999999999999999999999999999", 65, 30,
              "-99999999999999999999999999999999999.999999999999999999999999999999")]
    for value, precision, scale, text in cases:
        data = decimal_binary(value, precision, scale)
        assert decimal_text(data) == text
        assert json_text(binary(Opaque(246, data))) == text
        assert json_text(binary({"p": Opaque(246, data)})) == f'{{"p": {text}}}'


@both
def test_temporal_values(json_text: Any) -> None:
    cases = [
        (12, datetime_packed(2024, 1, 2, 3, 4, 5, 123000), '"2024-01-02 03:04:05.123000"'),
        (7, datetime_packed(1970, 1, 1, 0, 0, 1), '"1970-01-01 00:00:01.000000"'),
        (12, datetime_packed(9999, 12, 31, 23, 59, 59, 999999), '"9999-12-31 23:59:59.999999"'),
        (12, datetime_packed(0, 0, 0), '"0000-00-00 00:00:00.000000"'),
        (10, datetime_packed(2024, 2, 29), '"2024-02-29"'),
        (11, time_packed(838, 59, 59, negative=True), '"-838:59:59.000000"'),
        (11, time_packed(100, 0, 0, 1), '"100:00:00.000001"'),
        (11, time_packed(0, 0, 0, 500000, negative=True), '"-00:00:00.500000"'),
        (11, time_packed(12, 34, 56, 700000), '"12:34:56.700000"'),
    ]
    for field_type, data, text in cases:
        assert json_text(binary(Opaque(field_type, data))) == text
        assert json_text(binary([Opaque(field_type, data)])) == f"[{text}]"


@both
def test_other_opaque_values_print_as_base64(json_text: Any) -> None:
    assert json_text(binary(Opaque(16, b"\x05"))) == '"base64:type16:BQ=="'
    assert json_text(binary(Opaque(15, b""))) == '"base64:type15:"'
    assert json_text(binary(Opaque(252, b"ab\0"))) == '"base64:type252:YWIA"'
    data = bytes(100)
    encoded = base64.b64encode(data).decode()
    assert json_text(binary(Opaque(15, data))) == \
        f'"base64:type15:{encoded[:76]}\\n{encoded[76:]}"'
    data = bytes(range(256)) * 3
    encoded = base64.encodebytes(data).decode().rstrip("\n").replace("\n", "\\n")
    assert json_text(binary(Opaque(255, data))) == f'"base64:type255:{encoded}"'
    # VAR_STRING opaque values print as strings, as MySQL's wrapper_to_string does.
    assert json_text(binary(Opaque(253, 'a"é'.encode()))) == '"a\\"é"'


@both
def test_containers_nested_empty_and_key_order(json_text: Any) -> None:
    assert json_text(binary({})) == "{}"
    assert json_text(binary([])) == "[]"
    assert json_text(binary({}, large=True)) == "{}"
    doc = {"bb": [1, {"c": []}], "a": "x", "é": None, "ab": [[[]]]}
    # Keys come out as stored: shorter first, then bytewise.
    assert json_text(binary(doc)) == '{"a": "x", "ab": [[[]]], "bb": [1, {"c": []}], "é": null}'
    assert json_text(binary(doc, large=True)) == json_text(binary(doc))


@both
def test_trailing_bytes_and_gaps_are_ignored(json_text: Any) -> None:
    # MySQL's in-place partial updates leave unused space inside and after values.
    assert json_text(binary([1, "x"]) + b"garbage") == '[1, "x"]'
    t, body = _encode(["abc", "de"])
    # Point the second string at a copy placed after a gap of junk bytes.
    count = struct.unpack_from("<H", body)[0]
    gap = b"\xee\xee"
    moved = bytearray(body[:4 + 3 * count]) + body[4 + 3 * count:] + gap + b"\x02xy"
    struct.pack_into("<H", moved, 2, len(moved))
    struct.pack_into("<H", moved, 4 + 3 + 1, len(body) + len(gap))
    assert json_text(bytes([t]) + bytes(moved)) == '["abc", "xy"]'


_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_plain = st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | _text
_doc = st.recursive(_plain, lambda kids: st.lists(kids, max_size=5)
                    | st.dictionaries(_text, kids, max_size=5), max_leaves=25)


@both
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_doc, st.booleans())
def test_float_free_documents_match_mysql_dumps(json_text: Any, doc: Any, large: bool) -> None:
    assert json_text(binary(doc, large)) == mysql_dumps(doc)


_any_doc = st.recursive(_plain | st.floats(allow_nan=False, allow_infinity=False),
                        lambda kids: st.lists(kids, max_size=5)
                        | st.dictionaries(_text, kids, max_size=5), max_leaves=25)


@both
@given(_any_doc)
def test_documents_parse_back_to_themselves(json_text: Any, doc: Any) -> None:
    assert json.loads(json_text(binary(doc))) == doc


@both
def test_a_large_document(json_text: Any) -> None:
    doc = {"big": ["x" * 1000] * 80, "n": list(range(-40000, 40000, 7))}
    data = binary(doc, large=True)
    assert len(data) > 65536
    assert json_text(data) == mysql_dumps(doc)


@pytest.mark.parametrize(("data", "message"), [
    (b"\x0e", "unknown value type 0x0e"),
    (b"\x04", "literal"), (b"\x04\x03", "literal"),
    (b"\x05\x01", "truncated integer"), (b"\x09" + bytes(7), "truncated integer"),
    (b"\x0b" + bytes(7), "truncated double"),
    (b"\x0c\x05abc", "string runs past"), (b"\x0c\x80", "length"),
    (b"\x0c\xff\xff\xff\xff\x7f", "length"), (b"\x0c\x02\xff\xfe", "not valid UTF-8"),
    (b"\x0f", "truncated opaque"), (b"\x0f\xf6\x05ab", "opaque value runs past"),
    (b"\x0f\xf6\x02\x05\x02", "wrong size"), (b"\x0f\xf6\x02\x02\x05", "invalid DECIMAL"),
    (b"\x0f\x0c\x04\x00\x00\x00\x00", "not 8"),
    (b"\x0f\x0c\x08" + struct.pack("<q", 0xFFFFFF), "microseconds"),
    (b"\x02\x01\x00", "truncated object or array header"),
    (b"\x02\x01\x00\x09\x00", "larger than the data"),
    (b"\x02\x05\x00\x07\x00\x05\x00\x00", "header is larger"),
    (b"\x02\x01\x00\x07\x00\x0c\x09\x00", "value offset outside"),
    (b"\x02\x01\x00\x07\x00\x0c\x02\x00", "value offset outside"),
    (b"\x02\x01\x00\x07\x00\x04\x07\x00", "unknown literal"),
    (b"\x00\x01\x00\x0b\x00\x02\x00\x01\x00\x04\x00\x00a", "object key outside"),
    (b"\x00\x01\x00\x0b\x00\x0b\x00\x01\x00\x04\x00\x00a", "object key outside"),
])
@both
def test_invalid_binary_is_a_value_error(data: bytes, message: str, json_text: Any) -> None:
    with pytest.raises(ValueError, match=message):
        json_text(data)


def test_decimal_digits_out_of_range_are_invalid() -> None:
    # DECIMAL(3,1): one byte for the two whole digits, one for the fraction digit.
    assert decimal_text(bytes([3, 1, 0x80 | 12, 3])) == "12.3"
    with pytest.raises(ValueError, match="DECIMAL digits"):
        decimal_text(bytes([3, 1, 0x80 | 12, 10]))  # a fraction "digit" of 10
    with pytest.raises(ValueError, match="DECIMAL digits"):
        decimal_text(bytes([3, 1, 0x80 | 100, 3]))


@both
def test_too_deep_is_a_value_error(json_text: Any) -> None:
    doc: Any = []
    for _ in range(100):  # 101 levels; MySQL prints at most 100
        doc = [doc]
    with pytest.raises(ValueError, match="deeper than 100"):
        json_text(binary(doc))
    assert json_text(binary(doc[0])).startswith("[[[")


def test_the_library_returns_text_for_whole_values_and_diffs_for_partial_ones() -> None:
    from pymysqlreplication.json_binary import JsonDiff
    from pymysqlreplication.packet import BinLogPacketWrapper

    install()  # idempotent
    patched = BinLogPacketWrapper.read_binary_json
    install()
    assert BinLogPacketWrapper.read_binary_json is patched

    class Packet:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, n: int) -> bytes:
            out, self.data = self.data[:n], self.data[n:]
            return out

        def read_uint_by_size(self, size: int) -> int:
            return int.from_bytes(self.read(size), "little")

    value = binary({"d": Opaque(246, decimal_binary("1.0", 2, 1)), "n": None})
    packet = Packet(len(value).to_bytes(4, "little") + value + b"rest")
    assert patched(packet, 4, False) == '{"d": 1.0, "n": null}'
    assert packet.data == b"rest"
    assert patched(Packet(b"\0\0\0\0"), 4, False) == "null"
    # A partial update: operation REPLACE (0), path '$.a', then a value.
    diff_value = binary("x")
    diff = bytes([0, 3]) + b"$.a" + bytes([len(diff_value)]) + diff_value
    result = patched(Packet(len(diff).to_bytes(4, "little") + diff), 4, True)
    assert isinstance(result, JsonDiff)


# --- the two printers against each other ------------------------------------------------

_typed_leaf = st.builds(Typed, st.sampled_from([0x05, 0x06, 0x07, 0x08, 0x09, 0x0A]),
                        st.just(0)).flatmap(
    lambda t: st.integers(*_TYPED_RANGES[t.jtype]).map(lambda v: Typed(t.jtype, v)))
_TYPED_RANGES = {0x05: (-2**15, 2**15 - 1), 0x06: (0, 2**16 - 1), 0x07: (-2**31, 2**31 - 1),
                 0x08: (0, 2**32 - 1), 0x09: (-2**63, 2**63 - 1), 0x0A: (0, 2**64 - 1)}
_opaque_leaf = st.one_of(
    st.builds(lambda v: Opaque(246, decimal_binary(str(v), 20, 5)),
              st.decimals(-10**14, 10**14, places=5)),
    st.builds(lambda b: Opaque(12, datetime_packed(2000 + b % 100, 1 + b % 12, 1 + b % 28)),
              st.integers(0, 10**6)),
    st.builds(Opaque, st.sampled_from([15, 16, 252, 253]), st.binary(max_size=90)
              .filter(lambda b: True)).filter(
        lambda o: o.field_type != 253 or _is_utf8(o.data)))
_mixed_doc = st.recursive(
    _plain | st.floats(allow_nan=False, allow_infinity=False) | _typed_leaf | _opaque_leaf
    | st.text(max_size=300),
    lambda kids: st.lists(kids, max_size=6) | st.dictionaries(_text, kids, max_size=6),
    max_leaves=30)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _outcome(printer: Any, data: bytes) -> tuple[str, str]:
    try:
        return "text", printer(data)
    except ValueError as exc:
        return "error", type(exc).__name__


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_mixed_doc, st.booleans())
def test_both_printers_print_every_document_alike(doc: Any, large: bool) -> None:
    data = binary(doc, large)
    assert jsonbinary.json_text(data) == json_text_python(data)


@settings(max_examples=700, suppress_health_check=[HealthCheck.too_slow])
@given(_mixed_doc, st.booleans(), st.data())
def test_both_printers_refuse_the_same_corrupted_documents(doc: Any, large: bool,
                                                           data: Any) -> None:
    # Bytes flipped, cut off or appended: either both print the same text or both raise
    # ValueError (never a crash, a different text, or another exception).
    raw = bytearray(binary(doc, large))
    for _ in range(data.draw(st.integers(1, 4))):
        how = data.draw(st.sampled_from(["flip", "cut", "grow"]))
        if how == "flip" and raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        elif how == "cut" and raw:
            del raw[data.draw(st.integers(0, len(raw) - 1)):]
        else:
            raw += data.draw(st.binary(min_size=1, max_size=8))
    corrupted = bytes(raw)
    assert _outcome(jsonbinary.json_text, corrupted) == _outcome(json_text_python, corrupted)


def test_random_bytes_are_refused_or_printed_alike() -> None:
    rng = random.Random(20261202)
    for _ in range(20000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        data = bytes([rng.choice([0, 1, 2, 3, 0x0C, 0x0F, rng.randrange(16)])]) + data[1:]
        assert _outcome(jsonbinary.json_text, data) == _outcome(json_text_python, data), data


# --- against a real MySQL ---------------------------------------------------------------

@pytest.fixture
def live(mysql_server: Any) -> dict[str, Any]:
    """Connection settings of the session's Oracle MySQL (skipped on MariaDB)."""
    from tests.support.flavours import only_on
    from wacdc.config import parse_url

    only_on(mysql_server, "mysql", "MariaDB has no binary JSON")
    url = parse_url(mysql_server.url("mysql"), "mysql")
    return {"host": url.host, "port": url.port, "user": url.user, "passwd": url.password}


class Row(NamedTuple):
    id: int
    raw: bytes        # the binary JSON in the binlog row image
    compiled: str     # wacdc's compiled decoder
    library: str      # mysql-replication, patched by source/library.py
    mysql: str        # SELECT CAST(j AS CHAR) right after the statement


def _server_roundtrip(live: dict[str, Any], values: Sequence[tuple[str, tuple]],
                      updates: Sequence[str] = ()) -> list[Row]:
    """Insert each (SQL expression, parameters) as a row of a NOT NULL JSON column (NULL
    with INSERT IGNORE: MySQL stores ''), then run `updates` (each touching other ids, SQL
    with {t}); return one Row per binlog row image (inserts, then update after-images).

    Table `aux` has one row of typed columns for subqueries (TIMESTAMP, BLOB, BIT, ...).
    """
    import pymysql
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.packet import BinLogPacketWrapper
    from pymysqlreplication.row_event import UpdateRowsEvent, WriteRowsEvent

    from wacdc.source.decoder import CompiledDecoder

    settings_ = dict(live)
    schema = f"wacdc_jsonbinary_{random.randrange(1 << 30)}"
    conn = pymysql.connect(host=settings_["host"], port=settings_["port"],
                           user=settings_["user"], password=settings_["passwd"],
                           charset="utf8mb4", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {schema}")
            cur.execute(f"USE {schema}")
            cur.execute("SET time_zone = '+00:00'")
            cur.execute("CREATE TABLE aux (ts TIMESTAMP(6), y YEAR, bl BLOB, bt BIT(10), "
                        "g GEOMETRY, f FLOAT, e ENUM('a','b'), s SET('a','b'), "
                        "vb VARBINARY(300), bn BINARY(3), c CHAR(3) CHARACTER SET latin1, "
                        "dt DATETIME(2), d DATE, tm TIME(4))")
            cur.execute("INSERT INTO aux VALUES ('2024-01-02 03:04:05.678901', 2024, "
                        "'ab\\0', b'1010', ST_GeomFromText('POINT(1 1)'), 1.1, 'b', 'a,b', "
                        "REPEAT(x'ab', 120), 'z', 'é', '2024-01-02 03:04:05.67', "
                        "'2024-02-29', '-12:34:56.7891')")
            cur.execute("CREATE TABLE j (id INT PRIMARY KEY, j JSON NOT NULL)")
            try:
                cur.execute("SHOW BINARY LOG STATUS")  # MySQL 8.4+
            except pymysql.err.ProgrammingError:
                cur.execute("SHOW MASTER STATUS")
            log_file, log_pos = cur.fetchone()[:2]
            cur.execute("BEGIN")
            for k, (expr, params) in enumerate(values):
                verb = "INSERT IGNORE" if expr == "NULL" else "INSERT"
                cur.execute(f"{verb} INTO j (id, j) VALUES ({k}, {expr})", params or None)
            cur.execute("COMMIT")
            cur.execute("SELECT id, CAST(j AS CHAR) FROM j ORDER BY id")
            before = dict(cur.fetchall())
            for sql in updates:
                cur.execute(sql.format(t="j"))
            cur.execute("SELECT id, CAST(j AS CHAR) FROM j ORDER BY id")
            after = dict(cur.fetchall())

        captured: list[bytes] = []
        install()  # what a wacdc stream does as it opens
        installed = BinLogPacketWrapper.read_binary_json

        def capture(self: Any, size: int, is_partial: bool) -> Any:
            length = self.read_uint_by_size(size)
            raw = self.read(length)
            captured.append(bytes(raw))
            self.unread(length.to_bytes(size, "little") + raw)
            return installed(self, size, is_partial)

        stream = BinLogStreamReader(
            connection_settings=settings_, server_id=random.randrange(10_000, 1 << 31),
            log_file=log_file, log_pos=log_pos, resume_stream=True, blocking=False,
            only_events=[WriteRowsEvent, UpdateRowsEvent], only_schemas=[schema],
            only_tables=["j"])
        decoder = CompiledDecoder()
        rows: list[Row] = []
        BinLogPacketWrapper.read_binary_json = capture  # type: ignore[method-assign]
        try:
            for event in stream:
                decoded = decoder.images(event, "test")
                assert decoded is not None, "the compiled decoder should take these events"
                names, images = decoded
                assert names == ("id", "j")
                update = isinstance(event, UpdateRowsEvent)
                captured.clear()
                library = [(r["after_values"] if update else r["values"]) for r in event.rows]
                raws = captured[1::2] if update else list(captured)
                for image, lib, raw in zip(images[1::2] if update else images, library,
                                           raws, strict=True):
                    mysql = (after if update else before)[image[0]]
                    rows.append(Row(image[0], raw, image[1], lib["j"], mysql))
        finally:
            BinLogPacketWrapper.read_binary_json = installed  # type: ignore[method-assign]
            stream.close()
        return rows
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {schema}")
        conn.close()


def _check(rows: list[Row], expected_count: int) -> None:
    assert len(rows) == expected_count
    for row in rows:
        assert json_text_python(row.raw) == row.mysql, (row.id, row.raw)
        assert jsonbinary.json_text(row.raw) == row.mysql, (row.id, row.raw)
        assert row.compiled == row.mysql
        assert row.library == row.mysql
        json.loads(row.mysql)


_TYPED = [
    "JSON_OBJECT('d', CAST(1.50 AS DECIMAL(5,2)), 't', NOW(6), 'dt', CURDATE(), "
    "'tm', CAST('-838:59:59' AS TIME), 'b', b'101', 'bin', CAST('x' AS BINARY))",
    "JSON_SET('{}', '$.p', 1.0)", "JSON_SET('{\"a\": [1]}', '$.a[1]', -0.50)",
    "JSON_OBJECT('t0', NOW(), 't3', NOW(3), 'u', UTC_TIMESTAMP(6), 'ct', CURTIME(6))",
    "CAST(CAST(1.5 AS DECIMAL(4,1)) AS JSON)", "CAST(CAST(0 AS DECIMAL(65,30)) AS JSON)",
    "CAST(CAST(-0.0 AS DECIMAL(3,1)) AS JSON)",
    "JSON_ARRAY(CAST('12345678901234567890123456789012345.123456789012345678901234567891'"
    " AS DECIMAL(65,30)), CAST(-99999.99999 AS DECIMAL(10,5)), CAST(7 AS DECIMAL(9,0)),"
    " CAST(0.000000001 AS DECIMAL(18,9)), CAST(-1 AS DECIMAL(1,0)), 1.0e0, 2.50)",
    "JSON_ARRAY(CAST('2024-01-02 03:04:05.123' AS DATETIME(3)), "
    "CAST('1000-01-01 00:00:00' AS DATETIME), CAST('9999-12-31 23:59:59.999999' AS "
    "DATETIME(6)), CAST('2024-02-29' AS DATE), CAST('1000-01-01' AS DATE))",
    "JSON_ARRAY(CAST('-838:59:59' AS TIME), CAST('838:59:59' AS TIME), "
    "CAST('-00:00:00.5' AS TIME(1)), CAST('100:00:00.000001' AS TIME(6)), "
    "CAST('12:34:56.7' AS TIME(1)), CAST('-1:02:03' AS TIME), CAST('34 10:00:00' AS TIME))",
    "CAST(CAST('2024-01-02 03:04:05' AS DATETIME) AS JSON)", "CAST(CURDATE() AS JSON)",
    "CAST(CAST('-01:00:00' AS TIME) AS JSON)",
    "JSON_ARRAY(b'101', x'00ff', REPEAT(x'ab', 100), CAST('x' AS BINARY), UNHEX(''), "
    "CAST('' AS BINARY(2)), REPEAT(x'00', 57), REPEAT(x'00', 58))",
    "(SELECT JSON_OBJECT('ts', ts, 'y', y, 'bl', bl, 'bt', bt, 'g', g, 'f', f, 'e', e, "
    "'s', s, 'vb', vb, 'bn', bn, 'c', c, 'dt', dt, 'd', d, 'tm', tm) FROM aux)",
    "(SELECT CAST(ts AS JSON) FROM aux)", "(SELECT CAST(bl AS JSON) FROM aux)",
    "(SELECT CAST(bt AS JSON) FROM aux)", "(SELECT CAST(vb AS JSON) FROM aux)",
    "(SELECT JSON_ARRAY(tm, d, dt, y, f) FROM aux)",
    "CAST('null' AS JSON)", "CAST('true' AS JSON)", "CAST('false' AS JSON)",
    "CAST('\"str\\\\n\"' AS JSON)", "CAST('1' AS JSON)", "CAST('-1' AS JSON)",
    "CAST('70000' AS JSON)", "CAST('-70000' AS JSON)", "CAST('4294967296' AS JSON)",
    "CAST('18446744073709551615' AS JSON)", "CAST('-9223372036854775808' AS JSON)",
    "CAST('18446744073709551616' AS JSON)", "CAST('1.5' AS JSON)", "CAST('-0.0' AS JSON)",
    "CAST('[]' AS JSON)", "CAST('{}' AS JSON)", "NULL",
    "CAST('[0.1, 1e100, -0.0, 1.5e-7, 123456789012345680000, 1e15, 1e14, 123.0, 1e-15, "
    "1.234e-15, 1e-16, 5e-324, 1.7976931348623157e308, 1234567890123456.7, 1e-400]' AS JSON)",
    "JSON_ARRAY(PI(), -PI(), 1/3, 2e0/3, 1e-5 * 3, 0.1e0 + 0.2e0, 1e22, 1e23, 4.35e-9)",
]


def test_typed_scalars_and_top_level_values_match_mysql(live: dict[str, Any]) -> None:
    rows = _server_roundtrip(live, [(expr, ()) for expr in _TYPED])
    _check(rows, len(_TYPED))
    texts = {row.id: row.mysql for row in rows}
    assert texts[_TYPED.index("NULL")] == "null"  # '' is JSON null, not SQL NULL
    assert [row.raw for row in rows if row.id == _TYPED.index("NULL")] == [b""]
    assert texts[1] == '{"p": 1.0}'


_server_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=15)
_server_doc = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.integers(-300, 70000)
    | st.floats(allow_nan=False, allow_infinity=False) | _server_text,
    lambda kids: st.lists(kids, max_size=6) | st.dictionaries(_server_text, kids, max_size=6),
    max_leaves=40)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_server_doc, min_size=20, max_size=80), st.booleans())
def test_generated_documents_match_mysql(live: dict[str, Any], docs: list[Any],
                                         ascii_only: bool) -> None:
    values = [("CAST(%s AS JSON)", (json.dumps(doc, ensure_ascii=ascii_only),))
              for doc in docs]
    _check(_server_roundtrip(live, values), len(values))


def test_large_documents_and_in_place_updates_match_mysql(live: dict[str, Any]) -> None:
    docs = [
        {"big": "x" * 70000, "n": 1},
        [*range(-20000, 20000), 100000, -100000, 2**40, 1.5, None, "é"],
        {f"k{k:05d}": [k, str(k), {"v": k / 7}] for k in range(3000)},
        {"a": "a long string that will be replaced in place", "b": 12345678, "c": [1, 2, 3]},
        {"a": "another long string, replaced by a shorter one", "b": {"x": 1.25}},
        {"a": [1, 2, 3, 4, 5, 6], "b": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"},
    ]
    values = [("CAST(%s AS JSON)", (json.dumps(doc),)) for doc in docs]
    updates = [
        "UPDATE {t} SET j = JSON_REPLACE(j, '$.a', 'x', '$.b', 7) WHERE id = 3",
        "UPDATE {t} SET j = JSON_SET(j, '$.a', 1.5, '$.b.x', CAST(2.25 AS DECIMAL(4,2))) "
        "WHERE id = 4",
        "UPDATE {t} SET j = JSON_REMOVE(j, '$.a[0]', '$.a[2]') WHERE id = 5",
        "UPDATE {t} SET j = JSON_SET(j, '$.n', NOW(6)) WHERE id = 0",
    ]
    rows = _server_roundtrip(live, values, updates)
    _check(rows, len(docs) + len(updates))
    assert max(len(row.raw) for row in rows) > 65536
    assert {row.raw[0] for row in rows} >= {0x00, 0x01, 0x03}


def test_datetime_fixtures_agree_with_python() -> None:
    """The hand-made packed datetimes decode to what Python's datetime says."""
    moment = dt.datetime(2023, 7, 8, 9, 10, 11, 654321)
    data = datetime_packed(moment.year, moment.month, moment.day, moment.hour,
                           moment.minute, moment.second, moment.microsecond)
    assert json_text_python(binary(Opaque(12, data))) == \
        f'"{moment.isoformat(sep=" ", timespec="microseconds")}"'
