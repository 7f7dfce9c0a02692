"""One writer, enforced where it writes; one deployment per target database.

The advisory lock lives on one connection. When that connection dies mid-snapshot
(`pg_terminate_backend`, an idle timeout, a proxy), a waiting second instance takes
over while the first goes on copying on its other connections: the writer epoch
(wacdc.sink.writer) must stop the first one at its next commit.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psycopg

from tests.support.harness import (
    REPO,
    LogTail,
    SourceDb,
    TargetDb,
    fill_whatsapp,
    run_cli,
    wacdc_env,
)
from tests.support.independent import independent_differences
from tests.support.workload import TABLES

AUDIT = """
CREATE TABLE public.fence_audit (epoch text, table_name text, chunks integer,
                                 at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION public.fence_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.fence_audit (epoch, table_name, chunks)
    VALUES (current_setting('wacdc.writer_epoch', true), NEW.table_name, NEW.chunks);
    RETURN NULL;
END $$;
CREATE TRIGGER fence_audit AFTER UPDATE ON wacdc.snapshot_tables
    FOR EACH ROW EXECUTE FUNCTION public.fence_audit();
"""


def _start(env: dict[str, str], *args: str) -> tuple[subprocess.Popen, LogTail]:
    proc = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run", *args], env=env,
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    return proc, LogTail(proc.stderr)


def _wait(what: str, condition, proc: subprocess.Popen, tail: LogTail,  # type: ignore[no-untyped-def]
          timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"died waiting for {what}: {tail.text[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} in {timeout}s: {tail.text[-3000:]}"
        time.sleep(0.02)


def _one(pg: psycopg.Connection, query: str) -> object:
    try:
        row = pg.execute(query).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return row[0] if row else None


def test_a_lock_lost_mid_snapshot_stops_the_old_writer_before_its_next_commit(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 200, "WhatsAppMessage": 12_000})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES),
                    WACDC_SNAPSHOT_CHUNK_ROWS="25")
    first, first_log = _start(env, "--snapshot-only")
    second = None
    try:
        with target_db.connect() as pg:
            _wait("the first chunks", lambda: (_one(pg, "SELECT sum(chunks) FROM "
                                                    "wacdc.snapshot_tables") or 0) > 3,
                  first, first_log)
            pg.execute(AUDIT)
            first_epoch = _one(pg, "SELECT epoch FROM wacdc.writer")
            second, second_log = _start(env, "--snapshot-only")
            assert second_log.wait_for("holds the replication lock", 60), second_log.text
            copying = _one(pg, "SELECT count(*) FROM wacdc.snapshot_tables WHERE "
                               "status = 'copying'")
            assert copying == 1, "the first instance must still be copying"
            # The lock holder's own backend dies; its other connections go on.
            (pid,) = pg.execute("SELECT DISTINCT pid FROM pg_locks WHERE locktype = "
                                "'advisory' AND granted").fetchone()
            pg.execute("SELECT pg_terminate_backend(%s)", (pid,))
            _wait("the takeover", lambda: _one(pg, "SELECT epoch FROM wacdc.writer")
                  != first_epoch, second, second_log)
            # Every commit of the old epoch happened before the new epoch committed.
            old_writes = _one(pg, f"SELECT count(*) FROM fence_audit WHERE epoch = "
                                  f"'{first_epoch}'")
        first.wait(timeout=120)
        assert first.returncode == 2, first_log.finish()[-3000:]
        text = first_log.finish()
        assert "is no longer the writer of the target" in text, text[-3000:]
        second.wait(timeout=300)
        assert second.returncode == 0, second_log.finish()[-3000:]
        with target_db.connect() as pg:
            assert _one(pg, f"SELECT count(*) FROM fence_audit WHERE epoch = "
                            f"'{first_epoch}'") == old_writes
            new_writes = _one(pg, "SELECT count(*) FROM fence_audit WHERE epoch <> "
                                  f"'{first_epoch}'")
            assert isinstance(new_writes, int) and new_writes > 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    assert independent_differences(source_db, target_db, list(TABLES)) == {}


def test_a_second_deployment_in_the_same_database_is_refused(source_db: SourceDb,
                                                             target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    with target_db.connect() as pg:
        pg.execute("CREATE SCHEMA other")
        before = pg.execute("SELECT epoch, deployment FROM wacdc.writer").fetchone()
    other = dict(env, WACDC_TARGET_SCHEMA="other")
    for command in (("run", "--snapshot-only"), ("cutover",), ("verify", "--repair")):
        result = run_cli(*command, env=other)
        assert result.code == 2, (command, result.output)
        assert "already holds the wacdc state of another deployment" in result.output
        assert "target schema 'public'" in result.output and "'other'" in result.output
    with target_db.connect() as pg:
        assert pg.execute("SELECT epoch, deployment FROM wacdc.writer").fetchone() == before
        assert pg.execute("SELECT count(*) FROM wacdc.cutover").fetchone()[0] == 0
        assert pg.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'other'"
                          ).fetchone()[0] == 0
    # The deployment it belongs to carries on.
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    assert independent_differences(source_db, target_db, ["WhatsAppCustomer"]) == {}


def test_verify_repair_refuses_while_a_daemon_is_the_writer(source_db: SourceDb,
                                                            target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer")
    daemon, log = _start(env)
    try:
        assert log.wait_for("caught up: streaming", 120), log.text[-3000:]
        result = run_cli("verify", "--repair", env=env)
        assert result.code == 2, result.output
        assert "a wacdc daemon is the writer of this target" in result.output
        assert run_cli("verify", env=env).code == 0  # comparing alone is fine
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    assert daemon.returncode == 0, log.finish()[-3000:]
