"""The snapshot phase of `wacdc run`: identical, consistent, resumable, refuses keyless tables."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pymysql
import pytest

from tests.support.compare import table_differences
from tests.support.harness import REPO, SourceDb, TargetDb, fill_whatsapp, run_cli, wacdc_env
from tests.support.independent import independent_differences
from wacdc.config import load_settings
from wacdc.observe import metrics
from wacdc.snapshot import Progress, run_snapshot


def _metric(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_snapshot_of_the_19_tables_is_identical(source_db: SourceDb,
                                                target_db: TargetDb) -> None:
    written = fill_whatsapp(source_db, messages=300)
    assert sum(written.values()) > 1400 and min(written.values()) > 0
    before = _metric("wacdc_snapshot_rows_total", table="WhatsAppMessage")
    settings = load_settings(source_url=source_db.url, target_url=target_db.url,
                             snapshot_chunk_rows=97)  # many chunks, odd size
    result = run_snapshot(settings)
    assert not result.stopped
    assert result.tables == {name: n for name, n in written.items()}
    assert len(set(result.positions.values())) == 1  # one consistent view for all tables
    assert table_differences(source_db, target_db) == {}
    assert _metric("wacdc_snapshot_rows_total", table="WhatsAppMessage") - before == 300
    with target_db.connect() as pg:
        states = pg.execute("SELECT status, count(*) FROM wacdc.snapshot_tables "
                            "GROUP BY status").fetchall()
        indexes = pg.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' "
                             "AND indexname LIKE '%\\_idx'").fetchone()[0]
        view = pg.execute("SELECT binlog_file, binlog_pos, method FROM wacdc.snapshot_views"
                          ).fetchall()
    assert states == [("done", 19)]
    assert indexes >= 60  # secondary indexes were built after the load
    position = next(iter(result.positions.values()))
    # MariaDB reports the view's own position; MySQL needs the short table lock.
    method = "mariadb-consistent-snapshot" if source_db.server.is_mariadb \
        else "mysql-lock-tables"
    assert view == [(position.file, position.pos, method)]

    # A second run finds everything done and copies nothing.
    assert run_snapshot(settings).tables == {}


def _writer(source: SourceDb, stop: threading.Event, done: list[int]) -> None:
    """Each transaction: insert an event row, bump a counter, swap two unique phone numbers."""
    with source.connect() as conn, conn.cursor() as cur:
        conn.autocommit(False)
        n = 0
        while not stop.is_set():
            cur.execute("INSERT INTO WhatsAppAnalyticsEvent (id, eventType) VALUES (%s, 'tick')",
                        (f"tick-{n}",))
            cur.execute("UPDATE WhatsAppCampaign SET sentCount = sentCount + 1 "
                        "WHERE id = 'counter'")
            cur.execute("SELECT phoneNumber FROM WhatsAppCustomer WHERE id IN ('swap-a', "
                        "'swap-b') ORDER BY id")
            (a,), (b,) = cur.fetchall()
            cur.execute("UPDATE WhatsAppCustomer SET phoneNumber = 'tmp' WHERE id = 'swap-a'")
            cur.execute("UPDATE WhatsAppCustomer SET phoneNumber = %s WHERE id = 'swap-b'", (a,))
            cur.execute("UPDATE WhatsAppCustomer SET phoneNumber = %s WHERE id = 'swap-a'", (b,))
            conn.commit()
            n += 1
            done[0] = n


def test_snapshot_is_consistent_under_concurrent_writes(source_db: SourceDb,
                                                        target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppAnalyticsEvent": 3000, "WhatsAppCustomer": 3000,
                                     "WhatsAppCampaign": 10})
    source_db.execute(
        "INSERT INTO WhatsAppCampaign (id, name, templateName, targetType, sentCount, updatedAt)"
        " VALUES ('counter', 'c', 't', 'all', 0, NOW(3))",
        "INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) VALUES "
        "('swap-a', 'a', '+100', NOW(3)), ('swap-b', 'b', '+200', NOW(3))")
    stop, done = threading.Event(), [0]
    writer = threading.Thread(target=_writer, args=(source_db, stop, done))
    writer.start()
    try:
        while done[0] < 20:  # the writer is really running before the snapshot starts
            time.sleep(0.01)
        result = run_cli("run", "--snapshot-only", env=wacdc_env(
            source_db, target_db, WACDC_SNAPSHOT_CHUNK_ROWS="100"))
        during = done[0]
    finally:
        stop.set()
        writer.join()
    assert result.code == 0, result.output
    assert done[0] > during > 20, "the writer kept writing during the snapshot"
    with target_db.connect() as pg:
        ticks = pg.execute("SELECT count(*) FROM \"WhatsAppAnalyticsEvent\" "
                           "WHERE \"eventType\" = 'tick'").fetchone()[0]
        counter = pg.execute("SELECT \"sentCount\" FROM \"WhatsAppCampaign\" "
                             "WHERE id = 'counter'").fetchone()[0]
        phones = pg.execute("SELECT \"phoneNumber\" FROM \"WhatsAppCustomer\" "
                            "WHERE id IN ('swap-a', 'swap-b')").fetchall()
    assert ticks >= 20 and counter == ticks
    assert sorted(phones) == [("+100",), ("+200",)]


def _progress_rows(target: TargetDb) -> dict[str, tuple[str, int]]:
    with psycopg.connect(target.url, autocommit=True) as pg:
        try:
            rows = pg.execute("SELECT table_name, status, rows_copied "
                              "FROM wacdc.snapshot_tables").fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    return {name: (status, copied) for name, status, copied in rows}


def _kill_when(proc: subprocess.Popen, target: TargetDb, table: str, min_rows: int) -> str:
    """SIGKILL the daemon once `table` has at least min_rows committed; return its status."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, copied = _progress_rows(target).get(table, ("", 0))
        if copied >= min_rows or status in ("loaded", "done"):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return _progress_rows(target)[table][0]
        if proc.poll() is not None:
            pytest.fail(f"daemon exited ({proc.returncode}) before the kill point")
        time.sleep(0.005)
    pytest.fail("kill point not reached")


def test_kill_9_during_snapshot_then_resume(source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 6000, "WhatsAppMessage": 400,
                                     "WhatsAppCampaignRecipient": 6000, "WhatsAppCampaign": 20})
    env = wacdc_env(source_db, target_db, WACDC_SNAPSHOT_CHUNK_ROWS="50")
    statuses = []
    for table, rows in (("WhatsAppCustomer", 1000), ("WhatsAppMessage", 100),
                        ("WhatsAppCampaignRecipient", 2000)):
        proc = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run", "--snapshot-only"],
                                env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        statuses.append(_kill_when(proc, target_db, table, rows))
        assert proc.stderr is not None
        proc.stderr.close()
    assert "copying" in statuses  # at least one kill landed mid-table
    resumed = run_cli("run", "--snapshot-only", env=env)
    assert resumed.code == 0, resumed.output
    assert "copying the table again from a new view" in resumed.stderr
    assert table_differences(source_db, target_db) == {}
    progress = _progress_rows(target_db)
    assert {status for status, _ in progress.values()} == {"done"}
    with target_db.connect() as pg:
        views = pg.execute("SELECT count(*) FROM wacdc.snapshot_views").fetchone()[0]
    assert views == 4  # one view per run: three killed, one that finished


def test_sigterm_stops_cleanly_mid_snapshot(source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 6000})
    env = wacdc_env(source_db, target_db, WACDC_SNAPSHOT_CHUNK_ROWS="50")
    proc = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run", "--snapshot-only"],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _progress_rows(target_db).get("WhatsAppCustomer", ("", 0))[1] < 500:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.005)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 10
    assert b"stop requested" in err
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    assert table_differences(source_db, target_db) == {}


def test_keyless_table_is_refused_by_name(empty_source_db: SourceDb,
                                          target_db: TargetDb) -> None:
    empty_source_db.execute("CREATE TABLE good (id INT PRIMARY KEY)",
                            "CREATE TABLE heap_of_rows (v INT)")
    result = run_cli("run", "--snapshot-only", env=wacdc_env(empty_source_db, target_db,
                                                             WACDC_PROFILE="plain"))
    assert result.code == 2
    assert "table heap_of_rows has no primary key" in result.stderr


def test_progress_line_and_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    clock = [100.0]
    monkeypatch.setattr(sys, "stderr", buffer)
    monkeypatch.setattr("wacdc.snapshot.time.monotonic", lambda: clock[0])
    progress = Progress(tty=True)
    progress.begin("WhatsAppMessage", 1000)
    clock[0] = 110.0
    progress.advance(250)
    assert progress.rate_eta() == (25.0, 30.0)  # 250 rows in 10 s; 750 left
    line = buffer.getvalue()
    assert "WhatsAppMessage" in line and "250/1,000" in line and "ETA 30s" in line
    assert "#######" in line  # a quarter of the 30-cell bar


def _snapshot_copying(env: dict[str, str], target: TargetDb, table: str,
                      rows: int) -> subprocess.Popen:
    """`wacdc run --snapshot-only`, once it has committed `rows` rows of `table`."""
    proc = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run", "--snapshot-only"],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _progress_rows(target).get(table, ("", 0))[1] < rows:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    return proc


def test_ddl_on_a_table_during_the_snapshot_copies_it_again_from_a_new_view(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 6000, "WhatsAppMessage": 300,
                                     "WhatsAppTemplate": 200})
    tables = "WhatsAppCustomer,WhatsAppMessage,WhatsAppTemplate"  # copied in this order
    env = wacdc_env(source_db, target_db, WACDC_SNAPSHOT_CHUNK_ROWS="50", WACDC_TABLES=tables)
    proc = _snapshot_copying(env, target_db, "WhatsAppCustomer", 500)
    # While the view copies the first table, the app migrates the two others.
    source_db.execute("ALTER TABLE WhatsAppMessage ADD COLUMN extra INT NOT NULL DEFAULT 7",
                      "UPDATE WhatsAppMessage SET extra = 8 WHERE id < '5'",
                      "TRUNCATE TABLE WhatsAppTemplate",
                      "INSERT INTO WhatsAppTemplate (id, name, body, updatedAt) "
                      "VALUES ('after-truncate', 'n', 'b', NOW(3))")
    assert _progress_rows(target_db)["WhatsAppMessage"][0] == "pending"  # not read yet
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    log = err.decode()
    redone = {name for line in log.splitlines() if "table changed during its snapshot" in line
              for name in ("WhatsAppCustomer", "WhatsAppMessage", "WhatsAppTemplate")
              if f'"{name}"' in line}
    # TRUNCATE always gives the table a new definition; an instant ADD COLUMN may not
    # (MariaDB), and then the view reads the old rows and streaming applies the ALTER.
    assert "WhatsAppTemplate" in redone and redone <= {"WhatsAppMessage",
                                                       "WhatsAppTemplate"}, log[-3000:]
    assert {s for s, _ in _progress_rows(target_db).values()} == {"done"}
    caught_up = run_cli("run", "--exit-when-caught-up", env=env)
    assert caught_up.code == 0, caught_up.output[-3000:]
    assert independent_differences(source_db, target_db, tables.split(",")) == {}
    with target_db.connect() as pg:
        views = pg.execute("SELECT count(*) FROM wacdc.snapshot_views").fetchone()[0]
        extra = pg.execute('SELECT count(*) FROM "WhatsAppMessage" WHERE extra = 8'
                           ).fetchone()[0]
    assert views == 2 and extra > 0  # the first view, and one for the two changed tables


def test_ddl_on_a_table_the_snapshot_is_copying_waits_for_the_view_and_then_streams(
        source_db: SourceDb, target_db: TargetDb) -> None:
    """The view's transaction holds a metadata lock on every table it has read: an ALTER
    of one waits until the snapshot ends (docs/operations.md), then lands in the binlog
    after the view's position and reaches PostgreSQL by streaming."""
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 6000, "WhatsAppTemplate": 200})
    tables = "WhatsAppCustomer,WhatsAppTemplate"  # copied in this order
    env = wacdc_env(source_db, target_db, WACDC_SNAPSHOT_CHUNK_ROWS="50", WACDC_TABLES=tables)
    proc = _snapshot_copying(env, target_db, "WhatsAppCustomer", 500)
    failed: list[pymysql.MySQLError] = []

    def migrate() -> None:
        try:
            source_db.execute("ALTER TABLE WhatsAppCustomer ADD COLUMN tier INT NULL",
                              "UPDATE WhatsAppCustomer SET tier = 3 WHERE id < '5'")
        except pymysql.MySQLError as exc:  # reported below, in the test's thread
            failed.append(exc)

    migration = threading.Thread(target=migrate)
    migration.start()
    waited = False
    with source_db.connect() as conn, conn.cursor() as cur:
        while migration.is_alive() and not waited:
            cur.execute("SELECT STATE FROM information_schema.PROCESSLIST "
                        "WHERE INFO LIKE 'ALTER TABLE WhatsAppCustomer%%'")
            waited = any("metadata lock" in (state or "") for state, in cur.fetchall())
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    migration.join(timeout=120)
    assert not failed and not migration.is_alive(), failed
    assert waited, "the ALTER never waited for the view's metadata lock"
    assert "table changed during its snapshot" not in err.decode()  # it was read already
    caught_up = run_cli("run", "--exit-when-caught-up", env=env)
    assert caught_up.code == 0, caught_up.output[-3000:]
    assert independent_differences(source_db, target_db, tables.split(",")) == {}
    with target_db.connect() as pg:
        assert pg.execute('SELECT count(*) FROM "WhatsAppCustomer" WHERE tier = 3'
                          ).fetchone()[0] > 0
