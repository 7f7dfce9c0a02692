"""The independent comparator's JSON rules, which every real-server comparison relies on."""

from tests.support.independent import JSON_NULL, JsonNumber, _json


def test_a_json_number_keeps_its_written_form_where_the_source_keeps_it() -> None:
    assert _json('{"price": 12.50}') != _json('{"price": 12.5}')
    assert _json("[1, 2]") == _json("[1, 2]")


def test_binary_json_numbers_compare_by_exact_value() -> None:
    assert _json('{"price": 12.5}', by_value=True) == _json('{"price": 12.50}')
    assert _json("[1e2]") == _json("[100]")
    # a double rounding is still a difference, as is a big integer's last digit
    assert _json("[0.1]", by_value=True) != _json("[0.1000000000000000055511151231257827]")
    assert _json("[9007199254740993]", by_value=True) != _json("[9007199254740992]")
    assert hash(JsonNumber("1.5", True)) == hash(JsonNumber("1.50"))


def test_json_null_is_not_sql_null() -> None:
    assert _json("null") is JSON_NULL
    assert _json(None) is None
    assert _json('{"a": null}') != _json("{}")
