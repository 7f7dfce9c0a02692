"""Streaming: the binlog applied exactly once, in order, across restarts and kill -9."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time

from tests.compare import table_differences
from tests.harness import REPO, SourceDb, TargetDb, fill_whatsapp, run_cli, wacdc_env
from tests.workload import TABLES, Workload


def _identical(source: SourceDb, target: TargetDb) -> None:
    assert table_differences(source, target, tables=list(TABLES)) == {}


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
    stop, done = threading.Event(), [0]
    workload = Workload(source_db, seed=11)
    writer = threading.Thread(target=workload.run_until, args=(stop, done))
    writer.start()
    try:
        result = run_cli("run", "--exit-when-caught-up", env=env)
    finally:
        stop.set()
        writer.join()
    assert result.code == 0, result.output
    assert done[0] > 0
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    _identical(source_db, target_db)


def test_sigkill_at_random_moments_loses_and_doubles_nothing(source_db: SourceDb,
                                                              target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 300, "WhatsAppMessage": 300})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES),
                    WACDC_BATCH_MAX_ROWS="20")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    stop, done = threading.Event(), [0]
    writer = threading.Thread(target=Workload(source_db, seed=5).run_until, args=(stop, done))
    writer.start()
    rng = random.Random(3)
    try:
        for _ in range(20):
            proc = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run"], env=env,
                                    cwd=REPO, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.3, 1.5))  # the random moment of the kill
            assert proc.poll() is None, "the daemon died on its own"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    finally:
        stop.set()
        writer.join()
    assert done[0] > 100
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output
    _identical(source_db, target_db)


def test_sigterm_during_load_exits_0_quickly_and_resumes(source_db: SourceDb,
                                                         target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    stop, done = threading.Event(), [0]
    writer = threading.Thread(target=Workload(source_db, seed=9).run_until, args=(stop, done))
    writer.start()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run"], env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with target_db.connect() as pg:  # the daemon streams, under load
            while done[0] < 200 or pg.execute(
                    "SELECT phase FROM wacdc.state").fetchone() != ("streaming",):
                assert proc.poll() is None
                time.sleep(0.01)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        took = time.monotonic() - started
    finally:
        stop.set()
        writer.join()
    assert proc.returncode == 0, err
    assert took < 10
    assert b"checkpoint committed" in err
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    _identical(source_db, target_db)


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
