"""The compiled decoder's NEWDECIMAL reader against an encoder written from MySQL's
format description (not from the reader): every precision 1..65 and scale 0..30, signs,
zeros and the extremes, exact digits and exponent."""

from __future__ import annotations

import decimal
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from wacdc.source.imageplan import _decimal_reader

DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)  # bytes for 0..9 leftover digits


def encode(text: str, precision: int, scale: int) -> bytes:
    """MySQL's decimal2bin: integral and fraction as 9-digit groups in 4 bytes each, the
    leftover digits in the fewest bytes, big-endian; the first bit set when not negative,
    every byte inverted when negative."""
    negative = text.startswith("-")
    integral, _, fraction = text.lstrip("-").partition(".")
    integral = integral.lstrip("0").rjust(precision - scale, "0")
    fraction = fraction.ljust(scale, "0")
    lead = (precision - scale) % 9
    out = bytearray()
    if lead:
        out += int(integral[:lead]).to_bytes(DIG2BYTES[lead], "big")
    for k in range(lead, len(integral), 9):
        out += int(integral[k:k + 9]).to_bytes(4, "big")
    whole = scale // 9 * 9
    for k in range(0, whole, 9):
        out += int(fraction[k:k + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(fraction[whole:]).to_bytes(DIG2BYTES[scale % 9], "big")
    out[0] |= 0x80
    return bytes(b ^ 0xFF for b in out) if negative else bytes(out)


@st.composite
def decimals(draw: st.DrawFn) -> tuple[int, int, str]:
    precision = draw(st.integers(1, 65))
    scale = draw(st.integers(0, min(precision, 30)))
    integral = draw(st.integers(0, 10 ** (precision - scale) - 1))
    fraction = draw(st.integers(0, 10 ** scale - 1)) if scale else 0
    sign = draw(st.sampled_from(["", "-"]))
    text = f"{sign}{integral}" + (f".{str(fraction).rjust(scale, '0')}" if scale else "")
    return precision, scale, text


@settings(max_examples=3000, deadline=None)
@given(decimals())
def test_reader_gives_the_exact_value_and_exponent(case: tuple[int, int, str]) -> None:
    precision, scale, text = case
    size, read = _decimal_reader(precision, scale)
    raw = encode(text, precision, scale)
    assert len(raw) == size
    value = read(raw)
    with decimal.localcontext() as ctx:
        ctx.prec = 100
        assert value == Decimal(text)
    assert value.as_tuple().exponent == -scale


def test_extremes_and_zeros() -> None:
    for precision, scale, text, shown in [
        (65, 30, "9" * 35 + "." + "9" * 30, "9" * 35 + "." + "9" * 30),
        (65, 30, "-" + "9" * 35 + "." + "9" * 30, "-" + "9" * 35 + "." + "9" * 30),
        (10, 2, "0.00", "0.00"), (10, 2, "-0.00", "-0.00"), (5, 0, "-0", "-0"),
        (1, 1, "0.5", "0.5"), (18, 9, "-123456789.000000001", "-123456789.000000001"),
    ]:
        assert str(_decimal_reader(precision, scale)[1](encode(text, precision, scale))) == shown
