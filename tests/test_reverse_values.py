"""The type map run backwards (wacdc.reverse.values): pure functions, no server."""

from __future__ import annotations

from decimal import Decimal

import pytest

from wacdc.reverse.values import (
    bits,
    lossy_json_number,
    mysql_time,
    not_a_member,
    post_for,
    too_big,
    zero_date,
)
from wacdc.schema.model import Column


def _column(data_type: str, column_type: str = "", **kw: object) -> Column:
    return Column("c", 0, data_type, column_type or data_type, kw.pop("nullable", True),
                  **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("seconds", "text"), [
    (Decimal("0"), "00:00:00.000000"),
    (Decimal("86400"), "24:00:00.000000"),  # a day is 24 hours, never "1 day"
    (Decimal("1864264.78"), "517:51:04.780000"),
    (Decimal("-3020398.999999"), "-838:59:58.999999"),
    (Decimal("-0.5"), "-00:00:00.500000"),  # the sign of a value under a second stays
    (Decimal("59.9999995"), "00:01:00.000000"),  # rounded to MySQL's microseconds
])
def test_an_interval_becomes_mysql_time_text(seconds: Decimal, text: str) -> None:
    assert mysql_time(seconds) == text
    assert mysql_time(None) is None


def test_bits_zero_dates_and_which_values_need_python() -> None:
    assert (bits("101"), bits(""), bits(None)) == (5, 0, None)
    assert zero_date("0001-01-01 00:00:00.000000") == "0000-00-00 00:00:00"
    assert zero_date("0001-01-01") == "0000-00-00"
    assert zero_date("2024-05-01") == "2024-05-01" and zero_date(None) is None
    assert post_for("interval", _column("time")) is mysql_time
    assert post_for("bit(8)", _column("bit", precision=8)) is bits
    assert post_for("timestamp", _column("datetime", nullable=False)) is zero_date
    assert post_for("timestamp", _column("datetime")) is None  # NULL stayed NULL
    assert post_for("text", _column("varchar")) is None


def test_values_mysql_cannot_hold_are_named_and_cut_to_whole_characters() -> None:
    varchar = _column("varchar", "varchar(191)", char_length=191)
    assert too_big("Ω" * 191, varchar) is None  # characters, not bytes
    reason, cut = too_big("Ω" * 250, varchar)  # type: ignore[misc]
    assert reason == "longer than varchar(191) (250 characters)" and cut == "Ω" * 191
    tiny = _column("tinytext")
    assert too_big("a" * 255, tiny) is None
    reason, cut = too_big("é" * 200, tiny)  # type: ignore[misc]
    assert "400 bytes, at most 255" in reason and cut == "é" * 127  # no half character
    binary = _column("varbinary", "varbinary(4)", char_length=4)
    assert too_big(b"12345", binary) == ("longer than varbinary(4) (5 bytes)", b"1234")
    assert too_big(None, varchar) is None


def test_enum_and_set_members() -> None:
    enum = _column("enum", "enum('a','b')", values=("a", "b"))
    assert not_a_member("a", enum) is None and not_a_member(None, enum) is None
    assert not_a_member("c", enum) == "'c' is not a member of enum('a', 'b')"
    members = _column("set", "set('x','y')", values=("x", "y"))
    assert not_a_member("x,y", members) is None and not_a_member("", members) is None
    assert "'z' is not a member of set" in not_a_member("x,z", members)  # type: ignore[operator]


@pytest.mark.parametrize(("text", "lossy"), [
    ('{"price": 1.50}', False),  # the same double as 1.5: the value is kept
    ('{"a": [0.1, 2.5e-3, -7]}', False),
    (f'[{2**63 - 1}, {-2**63}, {2**64 - 1}]', False),  # MySQL's JSON integers
    (f'[{2**64}]', True),  # past 64 bits: a double
    ('{"deep": {"x": [1, 0.1000000000000000055511151231257827]}}', True),
    ('{"n": 9007199254740993.5}', True),
    ('[true, false, null, "1.0000000000000000001"]', False),  # booleans, strings
    ("null", False),
])
def test_json_numbers_a_double_would_change(text: str, lossy: bool) -> None:
    found = lossy_json_number(text)
    assert (found is not None) == lossy, found
    if lossy:
        assert "more precision than MySQL's JSON keeps" in found  # type: ignore[operator]
    assert lossy_json_number(None) is None
