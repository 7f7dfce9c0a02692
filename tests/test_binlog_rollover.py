"""Binlog file index rollover: `.999999` -> `.1000000` keeps the order of positions.

Compared as text, `binlog.1000000` sorts before `binlog.999999`: every change in the new
file would look older than the snapshot and be skipped as "already copied".
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.harness import SourceDb, TargetDb, fill_whatsapp, run_cli, wacdc_env
from tests.support.independent import independent_differences
from tests.support.workload import TABLES, Workload
from wacdc.events import BinlogPosition, file_key
from wacdc.observe.lag import binlog_distance


def test_file_index_compares_as_a_number() -> None:
    before, after = BinlogPosition("binlog.999999", 9_000), BinlogPosition("binlog.1000000", 4)
    assert before < after and after > before and sorted([after, before]) == [before, after]
    assert file_key("mysql-bin.000010") > file_key("mysql-bin.000009")
    assert file_key("") < file_key("binlog.000001")  # the "no position yet" placeholder
    sizes = {"binlog.999998": 100, "binlog.999999": 1_000, "binlog.1000000": 50,
             "binlog.1000001": 70}
    assert binlog_distance(BinlogPosition("binlog.999999", 400),
                           BinlogPosition("binlog.1000001", 30), sizes) == 600 + 50 + 30


def _reset_binlog(source: SourceDb, index: int | None) -> None:
    to = f" TO {index}" if index is not None else ""
    statement = ("RESET MASTER" if source.server.is_mariadb
                 else "RESET BINARY LOGS AND GTIDS") + to
    with source.connect() as conn, conn.cursor() as cur:
        cur.execute(statement)


@pytest.fixture
def binlog_at_999999(source_db: SourceDb) -> Iterator[SourceDb]:
    """The session's source with its binlog numbered from 999999 (reset back afterwards)."""
    _reset_binlog(source_db, 999_999)
    try:
        yield source_db
    finally:
        _reset_binlog(source_db, None)


def _head_file(source: SourceDb) -> str:
    with source.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return str(cur.fetchall()[-1][0])


def test_changes_in_the_file_after_999999_are_applied(binlog_at_999999: SourceDb,
                                                      target_db: TargetDb) -> None:
    source = binlog_at_999999
    fill_whatsapp(source, counts={"WhatsAppCustomer": 50, "WhatsAppMessage": 50})
    assert _head_file(source).endswith(".999999")
    first = ["WhatsAppCustomer"]
    env = wacdc_env(source, target_db, WACDC_TABLES=",".join(first))
    assert run_cli("run", "--snapshot-only", env=env).code == 0  # its position: .999999
    source.execute("FLUSH BINARY LOGS")
    assert _head_file(source).endswith(".1000000")
    workload = Workload(source, seed=31)
    workload.run(150)  # in .1000000: "before" the first table's copy if compared as text
    # The other tables are copied now, from a view in .1000000; streaming must start at
    # the older position (.999999), not at the one that sorts first as text.
    env = wacdc_env(source, target_db, WACDC_TABLES=",".join(TABLES))
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output
    assert independent_differences(source, target_db, list(TABLES)) == {}
    with target_db.connect() as pg:
        (checkpoint,) = pg.execute("SELECT binlog_file FROM wacdc.state").fetchone()
    assert checkpoint.endswith(".1000000")
    # A resume from the checkpoint in .1000000 after another rotation.
    source.execute("FLUSH BINARY LOGS")
    workload.run(100)
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output
    assert independent_differences(source, target_db, list(TABLES)) == {}
