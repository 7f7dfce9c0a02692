"""Lag, metrics, health and status, scraped from the live daemon (DESIGN §5)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.support.daemon import Daemon, _writes, daemon
from tests.support.harness import REPO, SourceDb, TargetDb, fill_whatsapp, run_cli, wacdc_env
from tests.support.monitoring import referenced_metric_names, unknown_metric_names
from tests.support.workload import TABLES, Workload
from wacdc.devtools.embedded import free_port


def test_lag_rises_under_load_then_is_exactly_zero_and_stays_zero_when_idle(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 50, "WhatsAppMessage": 50})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    workload = Workload(source_db, seed=4)
    with daemon(env) as d:
        assert d.gauge("wacdc_lag_seconds") == 0 and d.gauge("wacdc_cutover_ready") == 1
        stop = threading.Event()
        writer = _writes(source_db, stop, lambda cur, n: workload.step(cur.connection),
                         rate=300)
        lags = []
        try:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                one = d.samples()  # one scrape: both figures from the same moment
                lags.append((one[("wacdc_lag_seconds", ())], one[("wacdc_cutover_ready", ())]))
                time.sleep(0.02)
        finally:
            stop.set()
            writer.join()
        stopped = time.monotonic()
        assert max(lag for lag, _ in lags) > 0, "lag never rose above 0 under load"
        assert all(ready == 0 for lag, ready in lags if lag > 0)
        d.wait_for("lag 0", lambda: d.gauge("wacdc_lag_seconds") == 0
                   and d.gauge("wacdc_lag_bytes") == 0 and d.gauge("wacdc_cutover_ready") == 1,
                   timeout=10)
        assert time.monotonic() - stopped < 2.0
        d.wait_for("the polled head to match", lambda: (
            (s := d.status())["source_head"] == s["applied_position"]), timeout=2)
        # An idle source: lag stays exactly 0 (heartbeats keep the loop observing).
        idle_until = time.monotonic() + 30
        while time.monotonic() < idle_until:
            assert d.gauge("wacdc_lag_seconds") == 0
            assert d.gauge("wacdc_cutover_ready") == 1
            time.sleep(0.5)
        code, body = d.get("/healthz")
        assert code == 200 and body.startswith("ok")


def test_busy_untracked_table_does_not_hold_lag_up(source_db: SourceDb,
                                                    target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    Workload(source_db)  # creates the untracked app_sessions table
    with daemon(env) as d:
        stop = threading.Event()
        writer = _writes(source_db, stop, lambda cur, n: cur.execute(
            "INSERT INTO app_sessions (token, seen) VALUES (%s, NOW(3))", (f"t{n}",)))
        lags = []
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                lags.append(d.gauge("wacdc_lag_seconds"))
                time.sleep(0.02)
        finally:
            stop.set()
            writer.join()
        with source_db.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM app_sessions")
            assert cur.fetchone()[0] > 1000  # it was busy
        assert max(lags) < 1.0
        assert sum(1 for lag in lags if lag == 0) > len(lags) / 2, lags
        d.wait_for("lag 0", lambda: d.gauge("wacdc_lag_seconds") == 0, timeout=2)


def test_rows_applied_counts_every_change_per_table_and_op(source_db: SourceDb,
                                                           target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 40, "WhatsAppMessage": 40})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    expected: dict[tuple[str, str], int] = {}
    with daemon(env) as d:
        with source_db.connect(autocommit=False) as conn, conn.cursor() as cur:
            def do(table: str, op: str, sql: str, args: tuple = ()) -> None:
                expected[(table, op)] = expected.get((table, op), 0) + cur.execute(sql, args)
                conn.commit()
            for n in range(23):
                do("WhatsAppCustomer", "insert",
                   "INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) "
                   "VALUES (%s, 'Asha', %s, NOW(3))", (f"obs-{n}", f"+1555{n:07d}"))
            do("WhatsAppCustomer", "update",  # one statement, many rows
               "UPDATE WhatsAppCustomer SET firstName = CONCAT(firstName, 'x') "
               "WHERE id LIKE 'obs-%%'")
            do("WhatsAppCustomer", "update", "UPDATE WhatsAppCustomer SET id = 'obs-moved' "
               "WHERE id = 'obs-3'")  # a key change counts as one update
            do("WhatsAppCustomer", "delete", "DELETE FROM WhatsAppCustomer WHERE id IN "
               "('obs-1', 'obs-2', 'obs-moved')")
            do("WhatsAppMessage", "update", "UPDATE WhatsAppMessage SET status = "
               "CONCAT(status, 'y') ORDER BY id LIMIT 17")
            do("WhatsAppMessage", "delete", "DELETE FROM WhatsAppMessage ORDER BY id LIMIT 5")
            cur.execute("INSERT INTO WhatsAppMessage (id, updatedAt) VALUES ('rolled', NOW(3))")
            conn.rollback()  # not in the binlog, not counted
        assert all(n > 0 for n in expected.values()), expected
        d.wait_for("caught up", lambda: d.gauge("wacdc_lag_bytes") == 0
                   and d.gauge("wacdc_cutover_ready") == 1, timeout=30)
        samples = d.samples()
        applied = {(dict(labels)["table"], dict(labels)["op"]): value
                   for (name, labels), value in samples.items()
                   if name == "wacdc_rows_applied_total"}
        # Every configured table and operation has its series, at 0 unless changed.
        assert applied == {(t, op): float(expected.get((t, op), 0))
                           for t in TABLES for op in ("insert", "update", "delete")}
        assert d.status()["tables"]["WhatsAppCustomer"]["applied"]["insert"] == expected[
            ("WhatsAppCustomer", "insert")]
        # Every metric the alert rules and the dashboard use is served live.
        assert unknown_metric_names(referenced_metric_names(), d.get("/metrics")[1]) == set()
    # The same counts, committed with the data, are what `wacdc status` shows.
    result = run_cli("status", "--json", env=env)
    assert result.code == 0, result.output
    doc = json.loads(result.stdout)
    stored = {(t, op): n for t, v in doc["tables"].items() for op, n in v["applied"].items()}
    assert stored == expected


def test_healthz_turns_503_while_postgres_is_down_and_back_to_200(
        pg_server, source_db: SourceDb, target_db: TargetDb) -> None:
    from tests.support.flavours import require_control

    require_control(pg_server)
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES),
                    WACDC_STALL_SECONDS="2")
    with daemon(env) as d:
        assert d.get("/healthz")[0] == 200
        pg_server.stop()
        stopped = time.monotonic()
        try:
            d.wait_for("503", lambda: d.get("/healthz")[0] == 503, timeout=30)
            assert time.monotonic() - stopped > 1.5  # not before the threshold
            code, body = d.get("/healthz")
            assert code == 503 and "stalled" in body
            assert d.status()["healthy"] is False
        finally:
            pg_server.start()
        d.wait_for("200 again", lambda: d.get("/healthz")[0] == 200, timeout=90)
        with source_db.connect() as conn, conn.cursor() as cur:  # and it applies again
            cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) "
                        "VALUES ('after-outage', 'Ravi', '+19999', NOW(3))")
            conn.commit()
        with target_db.connect() as pg:
            d.wait_for("the row", lambda: pg.execute(
                "SELECT count(*) FROM \"WhatsAppCustomer\" WHERE id = 'after-outage'"
            ).fetchone()[0] == 1)
    assert "reconnecting" in d.log.text and '"side": "target"' in d.log.text


def test_second_instance_waits_healthy_and_says_so(source_db: SourceDb,
                                                   target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    with daemon(env):
        second = Daemon(env)
        try:
            second.wait_for("waiting", lambda: second.status()["phase"] == "waiting_for_lock")
            code, body = second.get("/healthz")
            assert code == 200 and "waiting for the replication lock" in body
            assert second.gauge("wacdc_cutover_ready") == 0
        finally:
            second.stop()


def test_status_works_with_the_daemon_stopped(source_db: SourceDb,
                                              target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    never = run_cli("status", env=env)
    assert never.code == 1 and "has not run against this target" in never.output
    with daemon(env) as d:
        running = json.loads(run_cli("status", "--json", env=env).stdout)
        assert running["daemon"]["running"] is True
        assert running["phase"] == "streaming"
        live = d.status()
        head = live["applied_position"]
        assert set(live) == set(running)  # one schema: /status and `wacdc status --json`
        assert env["WACDC_TARGET_URL"] not in d.get("/status")[1]
    result = run_cli("status", "--json", env=env)
    assert result.code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["daemon"]["running"] is False and doc["daemon"]["stopped_since"]
    assert doc["applied_position"]["file"] == head["file"]
    assert doc["applied_position"]["pos"] >= head["pos"]
    assert doc["source_now"]["reachable"] is True and doc["source_now"]["bytes_behind"] == 0
    assert set(doc["tables"]) == set(TABLES)
    text = run_cli("status", env=env)
    assert text.code == 0 and "NOT RUNNING since" in text.output
    for url in (env["WACDC_SOURCE_URL"], env["WACDC_TARGET_URL"]):  # never a connection URL
        assert url not in result.stdout and url not in text.output


@pytest.mark.parametrize("port_variable", ["WACDC_METRICS_PORT", "PORT"])
def test_metrics_port_comes_from_wacdc_metrics_port_else_port(
        port_variable: str, source_db: SourceDb, target_db: TargetDb) -> None:
    port = free_port()
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer")
    env.pop("WACDC_METRICS_PORT")
    env[port_variable] = str(port)
    proc = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_bytes_behind_count_across_binlog_files(source_db: SourceDb,
                                                target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    with target_db.connect() as pg:
        file, pos = pg.execute("SELECT binlog_file, binlog_pos FROM wacdc.state").fetchone()
    with source_db.connect() as conn, conn.cursor() as cur:  # wacdc is down meanwhile
        for n in range(3):
            cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) "
                        "VALUES (%s, 'B', %s, NOW(3))", (f"bytes-{n}", f"+8{n}"))
            cur.execute("FLUSH BINARY LOGS")  # the next file
        cur.execute("SHOW BINARY LOGS")
        sizes = {name: int(size) for name, size, *_ in cur.fetchall()}
        # MySQL 8.4+ knows only the new name, MariaDB only the old one.
        cur.execute("SHOW MASTER STATUS" if source_db.server.is_mariadb
                    else "SHOW BINARY LOG STATUS")
        head_file, head_pos = cur.fetchone()[:2]
    assert head_file != file
    doc = json.loads(run_cli("status", "--json", env=env).stdout)
    # MariaDB may still append a checkpoint event to the newest file: take the head that
    # status saw; the files before it are complete.
    head = doc["source_now"]["head"]
    assert head["file"] == head_file and head["pos"] >= head_pos
    expected = (sizes[file] - pos + sum(size for name, size in sizes.items()
                                        if file < name < head_file) + head["pos"])
    assert doc["source_now"]["bytes_behind"] == expected
    # The daemon's own figure, live: it starts behind by those bytes, then catches up.
    with daemon(env) as d:
        assert d.gauge("wacdc_lag_bytes") == 0
