"""GTID state folding (pure): what a checkpoint carries for auto-position resume."""

from __future__ import annotations

from wacdc.events import BinlogPosition, GtidState

UUID_A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
UUID_B = "4f22ab58-71ca-11e1-9e33-c80aa9429562"


def test_mariadb_state_keeps_one_gtid_per_domain() -> None:
    state = GtidState("0-1-100,1-2-5", mariadb=True)
    state.advance("0-1-101")
    state.advance("10-3-1")
    state.advance("1-7-6")  # another server in domain 1 (after a failover)
    assert str(state) == "0-1-101,1-7-6,10-3-1"


def test_mariadb_state_from_nothing() -> None:
    state = GtidState(None, mariadb=True)
    assert str(state) == ""
    state.advance("0-1-1")
    assert str(state) == "0-1-1"


def test_mysql_state_is_the_executed_set() -> None:
    state = GtidState(f"{UUID_A}:1-23", mariadb=False)
    state.advance(f"{UUID_A}:24")
    state.advance(f"{UUID_B}:1")
    assert str(state) == f"{UUID_A}:1-24,{UUID_B}:1"


def test_positions_order_by_file_then_offset() -> None:
    assert BinlogPosition("bin.000002", 4) > BinlogPosition("bin.000001", 9_999_999)
    assert BinlogPosition("bin.000001", 5, "0-1-9") >= BinlogPosition("bin.000001", 5)
