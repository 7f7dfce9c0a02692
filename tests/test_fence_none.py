"""WACDC_FENCE=none: after the cutover wacdc keeps following MySQL.

Nothing renames the source tables, so a write the app (or a forgotten job) still sends
to MySQL after the cutover would be lost without a trace. Each one is applied to
PostgreSQL and raised as an alarm (log line + metric) until the operator stops wacdc,
also across a restart.
"""

from __future__ import annotations

from tests.support.daemon import Daemon
from tests.support.harness import SourceDb, TargetDb, fill_whatsapp, run_cli, wacdc_env
from tests.support.independent import independent_differences

LATE = "a write landed in MySQL after the cutover"


def _late_writes(d: Daemon, table: str, op: str) -> float:
    return d.samples().get(("wacdc_writes_after_cutover_total",
                            (("op", op), ("table", table))), 0.0)


def _count(target: TargetDb, key: str) -> int:
    with target.connect() as pg:
        return pg.execute('SELECT count(*) FROM "WhatsAppCustomer" WHERE id = %s',
                          (key,)).fetchone()[0]


def test_fence_none_follows_the_binlog_after_the_cutover_and_alarms(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 50})
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer",
                    WACDC_FENCE="none", WACDC_CUTOVER="1")
    d = Daemon(env)
    try:
        d.wait_for("the cutover", lambda: d.status()["phase"] == "done", timeout=120)
        # Logged by the loop once the cutover's tick returns: a moment after /status says so.
        d.wait_for_line("following its binlog", timeout=10)
        source_db.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, "
                          "updatedAt) VALUES ('late-1', 'Late', '+4900001', NOW(3))",
                          "UPDATE WhatsAppCustomer SET firstName = 'Later' WHERE id = 'late-1'")
        d.wait_for("the late write in PostgreSQL", lambda: _count(target_db, "late-1") == 1)
        d.wait_for("the alarms", lambda: _late_writes(d, "WhatsAppCustomer", "insert") == 1
                   and _late_writes(d, "WhatsAppCustomer", "update") == 1)
        assert d.log.text.count(LATE) == 2
        assert d.samples()[("wacdc_errors_total", (("kind", "WriteAfterCutover"),))] == 2
        assert d.status()["phase"] == "done" and d.proc.poll() is None  # until stopped
    finally:
        d.stop()
    assert d.proc.returncode == 0, d.log.text[-3000:]
    # A restart still follows: the first late write after it is not lost either.
    source_db.execute("DELETE FROM WhatsAppCustomer WHERE id = 'late-1'")
    again = Daemon(env)
    try:
        again.wait_for("the late delete", lambda: _count(target_db, "late-1") == 0)
        again.wait_for("its alarm", lambda: _late_writes(again, "WhatsAppCustomer",
                                                         "delete") == 1)
        assert independent_differences(source_db, target_db, ["WhatsAppCustomer"]) == {}
        # A TRUNCATE in MySQL after the cutover is raised, never applied to the primary.
        with target_db.connect() as pg:
            rows = pg.execute('SELECT count(*) FROM "WhatsAppCustomer"').fetchone()[0]
        assert rows == 50
        source_db.execute("TRUNCATE TABLE WhatsAppCustomer")
        again.wait_for("the TRUNCATE's alarm", lambda: "NOT applied to PostgreSQL"
                       in again.log.text)
        with target_db.connect() as pg:
            assert pg.execute('SELECT count(*) FROM "WhatsAppCustomer"').fetchone()[0] == rows
        assert again.samples()[("wacdc_errors_total",
                                (("kind", "StatementAfterCutover"),))] == 1
        # Asking for the cutover again says it is done, and does not wait.
        asked = run_cli("cutover", "--wait", env=env, timeout=30)
        assert asked.code == 0 and "already done" in asked.output, asked.output
    finally:
        again.stop()
    assert again.proc.returncode == 0
    with target_db.connect() as pg:
        assert pg.execute("SELECT phase FROM wacdc.state").fetchone()[0] == "done"


def test_fence_rename_still_ends_with_the_cutover(source_db: SourceDb,
                                                  target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer", WACDC_CUTOVER="1")
    result = run_cli("run", env=env, timeout=120)
    assert result.code == 0, result.output
    assert LATE not in result.output and "following its binlog" not in result.output
