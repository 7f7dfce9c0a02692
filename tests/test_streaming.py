"""Streaming: the binlog applied exactly once, in order, across restarts and kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from tests.support.compare import assert_same_gtid_state, table_differences
from tests.support.harness import (
    REPO,
    SourceDb,
    TargetDb,
    as_the_writer,
    fill_whatsapp,
    run_cli,
    wacdc_env,
)
from tests.support.workload import TABLES, Workload, in_background

# The tests marked `decoders` run again with each other way of decoding the binlog
# (tests/conftest.py): `library` where row images are what they check, `process` where
# the child's reading, framing and hand-over are; the rest, control-plane behaviour the
# decoders share, runs with the default compiled, in-thread decoder only.


def _phase(pg: psycopg.Connection) -> str | None:
    try:
        row = pg.execute("SELECT phase FROM wacdc.state").fetchone()
    except psycopg.errors.UndefinedTable:  # the daemon has not created its state yet
        return None
    return row[0] if row else None


STREAMING = ("catchup", "streaming")  # past the snapshot, applying the binlog


def _identical(source: SourceDb, target: TargetDb) -> None:
    assert table_differences(source, target, tables=list(TABLES)) == {}


@pytest.mark.decoders("library", "process")
def test_random_workload_is_identical_after_catch_up(source_db: SourceDb,
                                                     target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 200, "WhatsAppMessage": 200})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    workload = Workload(source_db)
    workload.run(400)
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output
    _identical(source_db, target_db)
    # More changes, and a second catch-up from the stored checkpoint.
    workload.run(200)
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    _identical(source_db, target_db)


def test_changes_during_the_snapshot_are_applied_once(source_db: SourceDb,
                                                      target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 3000, "WhatsAppMessage": 300})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES),
                    WACDC_SNAPSHOT_CHUNK_ROWS="100")
    with in_background(Workload(source_db, seed=11)) as done:
        proc = _start_daemon(env, "--exit-when-caught-up")
        with target_db.connect() as pg:  # writes go on through the whole snapshot
            while _phase(pg) not in STREAMING:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.01)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert done[0] > 0
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    _identical(source_db, target_db)


@pytest.mark.decoders("process")
def test_sigkill_at_random_moments_loses_and_doubles_nothing(source_db: SourceDb,
                                                              target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 300, "WhatsAppMessage": 300})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES),
                    WACDC_BATCH_MAX_ROWS="20")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    rng = random.Random(3)
    with in_background(Workload(source_db, seed=5)) as done:
        for _ in range(20):
            proc = _start_daemon(env)
            time.sleep(rng.uniform(0.3, 1.5))  # the random moment of the kill
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
    assert done[0] > 100
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output
    _identical(source_db, target_db)


@pytest.mark.decoders("process")
def test_sigterm_during_load_exits_0_quickly_and_resumes(source_db: SourceDb,
                                                         target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    with in_background(Workload(source_db, seed=9)) as done:
        proc = _start_daemon(env)
        with target_db.connect() as pg:  # the daemon streams, under load
            while done[0] < 200 or _phase(pg) not in STREAMING:
                assert proc.poll() is None
                time.sleep(0.01)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        took = time.monotonic() - started
    assert proc.returncode == 0, err
    assert took < 10
    assert b"checkpoint committed" in err
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    _identical(source_db, target_db)


@pytest.mark.decoders("library")
def test_add_column_mid_stream_flows_and_drop_column_stops(source_db: SourceDb,
                                                            target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    workload = Workload(source_db, seed=21)
    workload.run(50)
    source_db.execute(
        "ALTER TABLE WhatsAppCustomer ADD COLUMN loyaltyTier VARCHAR(20) NOT NULL "
        "DEFAULT 'silver', ADD INDEX WhatsAppCustomer_loyaltyTier_idx (loyaltyTier)",
        "ALTER TABLE WhatsAppCampaign MODIFY rateLimit BIGINT NOT NULL DEFAULT 10")
    workload.run(50)
    source_db.execute("UPDATE WhatsAppCustomer SET loyaltyTier = 'gold' LIMIT 3")
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output
    _identical(source_db, target_db)
    with target_db.connect() as pg:
        gold = pg.execute('SELECT count(*) FROM "WhatsAppCustomer" '
                          "WHERE \"loyaltyTier\" = 'gold'").fetchone()[0]
        widened = pg.execute("SELECT data_type FROM information_schema.columns WHERE "
                             "table_name = 'WhatsAppCampaign' AND column_name = 'rateLimit'"
                             ).fetchone()[0]
        index = pg.execute("SELECT 1 FROM pg_indexes WHERE indexname = "
                           "'WhatsAppCustomer_loyaltyTier_idx'").fetchone()
    assert gold == 3 and widened == "bigint" and index == (1,)

    source_db.execute("TRUNCATE TABLE WhatsAppTourPackage")
    source_db.execute("ALTER TABLE WhatsAppCampaign DROP COLUMN organizationId")
    workload.run(30)
    stopped = run_cli("run", "--exit-when-caught-up", env=env)
    assert stopped.code == 2
    assert "schema change on tracked table WhatsAppCampaign at binlog." in stopped.stderr
    assert "organizationId dropped or renamed" in stopped.stderr
    assert "DROP COLUMN organizationId" in stopped.stderr
    with target_db.connect() as pg:
        assert pg.execute("SELECT phase FROM wacdc.state").fetchone() == ("failed",)
        assert pg.execute('SELECT count(*) FROM "WhatsAppTourPackage"').fetchone() == (0,)
    again = run_cli("run", "--exit-when-caught-up", env=env)
    assert again.code == 2, "the stop holds until the operator acts"
    resumed = run_cli("run", "--exit-when-caught-up", "--resume-after-ddl", env=env)
    assert resumed.code == 0, resumed.output
    assert "accepted by --resume-after-ddl" in resumed.stderr
    tables = [t for t in TABLES if t != "WhatsAppCampaign"]
    assert table_differences(source_db, target_db, tables=tables) == {}


def _start_daemon(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run", *args], env=env,
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_streaming(target: TargetDb, proc: subprocess.Popen) -> None:
    with target.connect() as pg:
        while _phase(pg) not in STREAMING:
            assert proc.poll() is None
            time.sleep(0.01)


def _stop(proc: subprocess.Popen) -> bytes:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


@pytest.mark.decoders("process")
def test_source_and_target_restarts_mid_stream(mysql_server, pg_server, source_db: SourceDb,
                                               target_db: TargetDb) -> None:
    from tests.support.flavours import require_control

    require_control(mysql_server)
    require_control(pg_server)
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    workload = Workload(source_db, seed=13)
    proc = _start_daemon(env)
    try:
        _wait_streaming(target_db, proc)
        workload.run(100)
        mysql_server.restart()  # the daemon's binlog stream and control connection drop
        workload.run(100)
        pg_server.kill()  # the target vanishes mid-batch
        workload.run(100)
        pg_server.start()
        workload.run(50)
        with target_db.connect() as pg:  # the daemon recovered by itself: it applies again
            deadline = time.monotonic() + 60
            while pg.execute('SELECT count(*) FROM "WhatsAppCustomer"').fetchone()[0] < len(
                    workload.ids["WhatsAppCustomer"]):
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The source restart went through wacdc's own retry from the checkpoint (logged); the
    # PostgreSQL outage may fall inside that retry's wait (test_observability covers it).
    assert b'"side": "source"' in err, err.decode()
    assert b"checkpoint committed" in err
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    _identical(source_db, target_db)


def test_two_daemons_only_one_applies_then_takeover(source_db: SourceDb,
                                                    target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    first = _start_daemon(env)
    second = None
    lines: list[bytes] = []
    try:
        _wait_streaming(target_db, first)
        second = _start_daemon(env)
        assert second.stderr is not None
        reader = threading.Thread(target=lambda: lines.extend(iter(second.stderr.readline,
                                                                   b"")))
        reader.start()
        deadline = time.monotonic() + 60
        while not any(b"holds the replication lock" in line for line in lines):
            assert time.monotonic() < deadline and second.poll() is None
            time.sleep(0.01)
        workload = Workload(source_db, seed=17)
        workload.run(150)
        with target_db.connect() as pg:
            holders = pg.execute("SELECT count(DISTINCT pid) FROM pg_locks "
                                 "WHERE locktype = 'advisory' AND granted").fetchone()[0]
        assert holders == 1  # the second instance waits; it applies nothing
        first.send_signal(signal.SIGKILL)  # the applying one dies
        first.wait()
        workload.run(150)
        with target_db.connect() as pg:
            while pg.execute('SELECT count(*) FROM "WhatsAppCustomer"').fetchone()[0] < len(
                    workload.ids["WhatsAppCustomer"]):
                assert time.monotonic() < deadline and second.poll() is None
                time.sleep(0.05)
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
        reader.join()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert second.returncode == 0, b"".join(lines)
    assert any(b"lock acquired" in line for line in lines)
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    _identical(source_db, target_db)


def test_apply_error_stops_with_table_key_and_position(source_db: SourceDb,
                                                       target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    with target_db.connect() as pg:  # a rule PostgreSQL has and MySQL does not
        pg.execute('ALTER TABLE "WhatsAppCampaign" ADD CONSTRAINT no_spam '
                   "CHECK (name NOT LIKE 'spam%')")
    source_db.execute(
        "INSERT INTO WhatsAppCampaign (id, name, templateName, targetType, updatedAt) "
        "VALUES ('ok-1', 'fine', 't', 'all', NOW(3)), ('bad-1', 'spam now', 't', 'all', NOW(3))")
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 2
    assert "refused the insert of WhatsAppCampaign key=" in result.stderr
    assert "'bad-1'" in result.stderr and "binlog." in result.stderr
    assert "no_spam" in result.stderr
    with target_db.connect() as pg:
        assert pg.execute('SELECT count(*) FROM "WhatsAppCampaign"').fetchone() == (0,)
        phase, error = pg.execute("SELECT phase, last_error FROM wacdc.state").fetchone()
    assert phase == "failed" and "bad-1" in error


@pytest.mark.parametrize("behind", ["true", "false"])
def test_a_batch_refused_while_the_next_is_read_stops_there_with_the_prefix_applied(
        source_db: SourceDb, target_db: TargetDb, behind: str) -> None:
    """WACDC_APPLY_BEHIND: batch N commits while N+1 is read; N's refusal still stops the
    stream at N, naming its key, with exactly the batches before it applied."""
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES),
                    WACDC_BATCH_MAX_ROWS="50", WACDC_BATCH_MAX_SECONDS="60",
                    WACDC_APPLY_BEHIND=behind)
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    with target_db.connect() as pg:
        pg.execute('ALTER TABLE "WhatsAppCampaign" ADD CONSTRAINT no_spam '
                   "CHECK (name NOT LIKE 'spam%')")
    ids = [f"zz-behind-{n:04}" for n in range(1, 601)]
    with source_db.connect() as conn, conn.cursor() as cur:
        for n, key in enumerate(ids, 1):  # one transaction each: batches of 50 rows
            cur.execute("INSERT INTO WhatsAppCampaign (id, name, templateName, targetType, "
                        "updatedAt) VALUES (%s, %s, 't', 'all', NOW(3))",
                        (key, "spam" if n == 400 else f"fine {n}"))
            conn.commit()
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 2, result.output[-3000:]
    assert "refused the insert of WhatsAppCampaign key='zz-behind-0400'" in result.stderr
    with target_db.connect() as pg:
        applied = [r[0] for r in pg.execute(
            """SELECT id FROM "WhatsAppCampaign" WHERE id LIKE 'zz-behind-%' ORDER BY id""")]
    # A prefix of whole batches: 350 unless an idle moment flushed a short batch early.
    assert applied == ids[:len(applied)] and 350 <= len(applied) < 400, applied[-3:]
    with target_db.connect() as pg:
        pg.execute('ALTER TABLE "WhatsAppCampaign" DROP CONSTRAINT no_spam')
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    _identical(source_db, target_db)


@pytest.mark.decoders("library")
def test_composite_and_unique_keys_any_table_set(empty_source_db: SourceDb,
                                                 target_db: TargetDb) -> None:
    """Not special-cased to the WhatsApp tables: plain profile, composite and unique keys."""
    empty_source_db.execute(
        "CREATE TABLE `order lines` (shop INT NOT NULL, code VARCHAR(12) NOT NULL, "
        "qty INT, note TEXT, PRIMARY KEY (shop, code))",
        "CREATE TABLE tokens (token CHAR(8) NOT NULL, used BOOLEAN, UNIQUE KEY (token))",
        "CREATE TABLE ignored_heap (v INT)")
    with empty_source_db.connect() as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO `order lines` VALUES (%s, %s, %s, %s)",
                        [(s, f"c{i:03d}", i, "ñ") for s in (1, 2) for i in range(20)])
        cur.executemany("INSERT INTO tokens VALUES (%s, %s)", [(f"t{i:07d}", 0)
                                                              for i in range(15)])
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain",
                    WACDC_TABLES="order lines,tokens", WACDC_SNAPSHOT_CHUNK_ROWS="3")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    empty_source_db.execute(
        "UPDATE `order lines` SET code = 'moved' WHERE shop = 1 AND code = 'c005'",
        "UPDATE `order lines` SET qty = qty + 100 WHERE shop = 2",
        "DELETE FROM `order lines` WHERE shop = 1 AND code < 'c003'",
        "UPDATE tokens SET token = 'renamed1', used = 1 WHERE token = 't0000004'",
        "DELETE FROM tokens WHERE token = 't0000009'",
        "INSERT INTO ignored_heap VALUES (1), (2)")
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    assert table_differences(empty_source_db, target_db, profile="plain",
                             tables=["order lines", "tokens"]) == {}
    with target_db.connect() as pg:
        assert pg.execute('SELECT qty FROM "order lines" WHERE shop = 1 AND code = %s',
                          ("moved",)).fetchone() == (5,)
        assert pg.execute("SELECT count(*) FROM tokens").fetchone() == (14,)


def test_resume_by_gtid_after_the_file_positions_are_gone(source_db: SourceDb,
                                                           target_db: TargetDb) -> None:
    """WACDC_RESUME_FROM=gtid resumes from the GTID state alone (as after a failover)."""
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 100, "WhatsAppMessage": 100})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES),
                    WACDC_RESUME_FROM="gtid", WACDC_BATCH_MAX_ROWS="20")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    rng = random.Random(8)
    with in_background(Workload(source_db, seed=21)) as done:
        for _ in range(4):
            proc = _start_daemon(env)
            # Kill it at a random moment once it streams (before that, there is no
            # checkpoint of its own, so no GTID state to resume from).
            _wait_streaming(target_db, proc)
            time.sleep(rng.uniform(0.1, 1.0))
            assert proc.poll() is None, "the daemon died on its own"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
            with target_db.connect() as pg:  # a new primary: its binlog files differ
                as_the_writer(pg)
                pg.execute("UPDATE wacdc.state SET binlog_file = 'elsewhere-bin.000042', "
                           "binlog_pos = 4")
    assert done[0] > 50
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output
    assert '"resume_by": "gtid"' in result.output or "resume_by=gtid" in result.output
    _identical(source_db, target_db)
    with target_db.connect() as pg, source_db.connect() as my, my.cursor() as cur:
        stored = pg.execute("SELECT gtid FROM wacdc.state").fetchone()[0]
        assert_same_gtid_state(cur, source_db.server.flavour, stored)


def test_resume_by_gtid_without_a_gtid_state_says_what_to_do(source_db: SourceDb,
                                                              target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer",
                    WACDC_RESUME_FROM="gtid")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    with target_db.connect() as pg:
        as_the_writer(pg)
        pg.execute("UPDATE wacdc.snapshot_tables SET gtid = NULL")
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 2
    assert "WACDC_RESUME_FROM=gtid" in result.output and "no GTID state" in result.output


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_the_decode_process_follows_its_daemon(source_db: SourceDb, target_db: TargetDb
                                               ) -> None:
    """WACDC_DECODE_IN=process: the child reads, the daemon applies; kill -9 of the daemon
    ends the child too (no reader left holding the replica server_id), and a restarted
    daemon carries on exactly once."""
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES),
                    WACDC_DECODE_IN="process")
    with in_background(Workload(source_db, seed=5)) as done:
        proc = _start_daemon(env)
        _wait_streaming(target_db, proc)
        deadline = time.monotonic() + 30
        while not (decoders := [c for c in _children(proc.pid) if "spawn_main" in _cmdline(c)])\
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(decoders) == 1, decoders
        # The decode process dies (out of memory, say): the daemon starts another one and
        # carries on from its checkpoint.
        os.kill(decoders[0], signal.SIGKILL)
        while not (again := [c for c in _children(proc.pid) if "spawn_main" in _cmdline(c)
                             and c != decoders[0]]) and time.monotonic() < deadline:
            assert proc.poll() is None, "the daemon died with its decode process"
            time.sleep(0.05)
        assert again, "no new decode process"
        children = _children(proc.pid)  # the decode process (and multiprocessing's tracker)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        deadline = time.monotonic() + 30
        while any(map(_alive, children)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_alive, children)), "a child outlived its daemon"
    assert done[0] > 20
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output
    assert '"decode_in": "process"' in result.output
    _identical(source_db, target_db)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):  # gone, or exiting (a read says ESRCH)
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
