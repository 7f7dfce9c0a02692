"""The cutover: freeze, drain, verify, fence, finalize — under a live writer, and its refusals."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.support.cutover import Writer, _latest, cut_over_under_a_writer
from tests.support.daemon import Daemon, daemon
from tests.support.harness import SourceDb, TargetDb, fill_whatsapp, run_cli, wacdc_env


def test_cutover_under_a_steady_writer_loses_nothing_and_fences_the_source(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=300)
    env = wacdc_env(source_db, target_db)  # the profile's 19 tables
    writer, done = cut_over_under_a_writer(source_db, target_db, env, rate=500,
                                           rows_first=300)
    assert done["status"] == "done"
    assert 0 < done["freeze_seconds"] < 1.0
    assert all(c["source"] == c["target"] for c in done["counts"].values())
    # Every write MySQL acknowledged is in PostgreSQL.
    with target_db.connect() as pg:
        have = {r[0] for r in pg.execute(
            "SELECT id FROM \"WhatsAppCustomer\" WHERE id LIKE 'app-%'").fetchall()}
        assert set(writer.acked) <= have and len(writer.acked) > 100
        # The profile's foreign keys exist and are validated.
        fks = pg.execute("SELECT count(*), bool_and(convalidated) FROM pg_constraint "
                         "WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
                         ).fetchone()
        assert fks == (20, True)
        assert pg.execute("SELECT phase FROM wacdc.state").fetchone()[0] == "done"
    # Writes that arrived during the freeze waited for it instead of failing at once: the
    # writer (500/s, one every 2 ms) has a statement that took a good part of the freeze.
    # After the unlock that statement either wins the table before the rename (it succeeds,
    # and is in PostgreSQL: checked above) or meets the fence (it fails): a race, both fine.
    slowest = max([seconds for _, seconds in writer.calls] + [writer.failed_after])
    assert slowest > done["freeze_seconds"] / 3, (slowest, done["freeze_seconds"])
    # The retired tables stay readable; verify compares them with PostgreSQL.
    with source_db.connect() as conn, conn.cursor() as cur, target_db.connect() as pg:
        cur.execute("SELECT COUNT(*) FROM WhatsAppCustomer__wacdc_retired")
        assert cur.fetchone()[0] == pg.execute(
            'SELECT count(*) FROM "WhatsAppCustomer"').fetchone()[0]
    verify = run_cli("verify", env=env, timeout=300)
    assert verify.code == 0, verify.output
    again = run_cli("run", env=env)
    assert again.code == 0 and "cutover is done" in again.output


def test_cutover_refused_when_lag_does_not_converge_leaves_everything_running(
        source_db: SourceDb, target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer",
                    WACDC_CUTOVER_TIMEOUT="2")
    with daemon(env) as d, target_db.connect() as blocker:
        blocker.execute("BEGIN")
        blocker.execute('LOCK TABLE "WhatsAppCustomer" IN ACCESS EXCLUSIVE MODE')
        with source_db.connect() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt)"
                        " VALUES ('stuck', 'S', '+4', NOW(3))")
        d.wait_for("lag to build up", lambda: d.status()["lag_seconds"] > 0.5)
        assert run_cli("cutover", env=env).code == 0
        with target_db.connect() as pg:
            d.wait_for("the timeout to pass", lambda: pg.execute(
                "SELECT now() - requested_at > interval '2.5 s' FROM wacdc.cutover"
            ).fetchone()[0])
        blocker.execute("ROLLBACK")  # PostgreSQL free again: the daemon applies, then refuses
        d.wait_for("the outcome", lambda: _latest(target_db)["status"] in ("refused", "done"))
        refused = _latest(target_db)
        assert refused["status"] == "refused" and "lag did not reach" in refused["reason"]
        d.wait_for("streaming", lambda: d.status()["phase"] == "streaming")
        # The source stays writable, and what was written before the refusal arrived too.
        _write_and_see(source_db, target_db, d, "later", "+5", also=("stuck",))


def _write_and_see(source: SourceDb, target: TargetDb, d: Daemon, key: str, phone: str,
                   also: tuple[str, ...] = ()) -> None:
    """Insert a customer on the source; wait until PostgreSQL has it (and the `also` keys)."""
    with source.connect() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) "
                    "VALUES (%s, 'W', %s, NOW(3))", (key, phone))
    keys = [key, *also]
    with target.connect() as pg:
        d.wait_for(f"replication of {', '.join(keys)}", lambda: pg.execute(
            'SELECT count(*) FROM "WhatsAppCustomer" WHERE id = ANY(%s)', (keys,)
        ).fetchone()[0] == len(keys))


def test_a_freeze_past_its_limit_unlocks_and_aborts_cleanly(source_db: SourceDb,
                                                          target_db: TargetDb) -> None:
    # The backlog is in a table no foreign key of the profile touches: the pre-freeze
    # rehearsal locks only the tables of foreign keys, so it runs at once instead of
    # waiting for a gap between two of the stream's batches, and the freeze meets the
    # backlog still ahead (CI of c3bd0a8 drained it all during the checks' retries).
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer,WhatsAppMediaAsset",
                    WACDC_CUTOVER_MAX_FREEZE="0.3", WACDC_CUTOVER_MAX_LAG="3600",
                    # Small batches: the request is seen between them, with the backlog
                    # still ahead, not after one long batch that drained it all.
                    WACDC_BATCH_MAX_ROWS="100")
    with daemon(env) as d:
        with target_db.connect() as pg:  # applying costs >= 3 ms a row, however fast wacdc is
            pg.execute("CREATE FUNCTION slow_apply() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN PERFORM pg_sleep(0.003); RETURN NEW; END $$")
            pg.execute('CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON "WhatsAppMediaAsset" '
                       "FOR EACH ROW EXECUTE FUNCTION slow_apply()")
        with source_db.connect(autocommit=False) as conn, conn.cursor() as cur:
            for batch in range(30):  # a backlog that takes seconds to apply
                cur.executemany("INSERT INTO WhatsAppMediaAsset (id, publicId, filename, "
                                "secureUrl, size, contentType, updatedAt) VALUES "
                                "(%s, %s, 'f.jpg', REPEAT('u', 150), 1, 'image/jpeg', NOW(3))",
                                [(f"burst-{batch}-{i}", f"pub-{batch}-{i}")
                                 for i in range(100)])
                conn.commit()
        writer = Writer(source_db, rate=50)
        writer.start()
        try:
            result = run_cli("cutover", "--wait", env=env, timeout=120)
        finally:
            writer.stop.set()
            writer.join()
        assert result.code == 1, result.output
        aborted = _latest(target_db)
        assert aborted["status"] == "aborted"
        assert "freeze reached its limit" in aborted["reason"], aborted["reason"]
        assert writer.error is None and writer.acked  # writes waited, none failed
        with target_db.connect() as pg:
            pg.execute('DROP TRIGGER slow ON "WhatsAppMediaAsset"')
        d.wait_for("streaming and caught up", lambda: d.status()["cutover_ready"], 120)
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES LIKE '%%wacdc_retired'")
        assert cur.fetchall() == ()  # not fenced
    verify = run_cli("verify", env=env, timeout=300)
    assert verify.code == 0, verify.output


def test_orphans_refuse_under_fail_and_follow_on_delete_under_apply(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=100)
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO WhatsAppMessage (id, sessionId, updatedAt) "
                    "VALUES ('orphan-msg', 'no-such-session', NOW(3))")
    env = wacdc_env(source_db, target_db)
    with daemon(env):
        result = run_cli("cutover", "--wait", env=env)
        assert result.code == 1, result.output
        refused = _latest(target_db)
        assert refused["status"] == "refused"
        assert "WhatsAppMessage" in refused["reason"] and "orphan-msg" in refused["reason"]
    token = "s3cret-admin-token"
    apply_env = {**env, "WACDC_ORPHANS": "apply", "WACDC_ADMIN_TOKEN": token}
    d = Daemon(apply_env)
    try:
        d.wait_for("streaming", lambda: d.status()["phase"] == "streaming")
        url = f"http://127.0.0.1:{d.port}/cutover"
        for headers, code in (({}, 401), ({"Authorization": "Bearer wrong"}, 403),
                              ({"Authorization": f"Bearer {token}"}, 202)):
            req = urllib.request.Request(url, method="POST", headers=headers, data=b"")
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    got = resp.status
            except urllib.error.HTTPError as exc:
                got = exc.code
            assert got == code, (headers, got)
        # The accepted POST is the request: the daemon cuts over, then exits (no refresh).
        assert d.proc.wait(timeout=120) == 0, d.log.text[-3000:]
    finally:
        d.stop()
    assert token not in d.log.finish()  # the whole log, once the daemon has exited
    done = _latest(target_db)
    orphan = done["orphans"]["WhatsAppMessage_sessionId_fkey"]
    assert "orphan-msg" in orphan["keys"] and orphan["applied"] == "SET NULL"
    with target_db.connect() as pg:
        assert pg.execute("SELECT \"sessionId\" FROM \"WhatsAppMessage\" "
                          "WHERE id = 'orphan-msg'").fetchone() == (None,)
        assert pg.execute("SELECT convalidated FROM pg_constraint WHERE conname = "
                          "'WhatsAppMessage_sessionId_fkey'").fetchone() == (True,)


def test_abort_before_the_freeze_and_cutover_requested_at_start(source_db: SourceDb,
                                                                target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    requested = run_cli("cutover", env=env)
    assert requested.code == 0 and "no wacdc daemon runs" in requested.output
    assert run_cli("cutover", "--abort", env=env).code == 0
    with daemon(env) as d:
        d.wait_for("the abort to be recorded", lambda: _latest(target_db)["status"] == "aborted")
        assert _latest(target_db)["reason"] == "aborted by the operator"
        assert d.status()["phase"] == "streaming"
    too_late = run_cli("cutover", "--abort", env=env)
    assert too_late.code == 1 and "too late" in too_late.output
    # WACDC_CUTOVER=1: the daemon cuts over by itself once streaming, then exits 0.
    result = run_cli("run", env={**env, "WACDC_CUTOVER": "1"}, timeout=120)
    assert result.code == 0, result.output
    assert _latest(target_db)["status"] == "done"
    status = json.loads(run_cli("status", "--json", env=env).stdout)
    assert status["phase"] == "done"


def _streamed_then_died_frozen(source: SourceDb, target: TargetDb) -> dict[str, str]:
    """Customers replicated; then, as if wacdc died mid-cutover, a request left frozen."""
    env = wacdc_env(source, target, WACDC_TABLES="WhatsAppCustomer")
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    with target.connect() as pg:
        pg.execute("INSERT INTO wacdc.cutover (status, fence) VALUES ('frozen', 'rename')")
    return env


def test_a_cutover_interrupted_after_its_fence_finishes_on_restart(
        source_db: SourceDb, target_db: TargetDb) -> None:
    env = _streamed_then_died_frozen(source_db, target_db)
    # It died right after the fence: a straggler written just before the rename.
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) "
                    "VALUES ('straggler', 'S', '+6', NOW(3))")
        cur.execute("RENAME TABLE WhatsAppCustomer TO WhatsAppCustomer__wacdc_retired")
    result = run_cli("run", env=env, timeout=60)
    assert result.code == 0, result.output
    assert _latest(target_db)["status"] == "done"
    with target_db.connect() as pg:
        assert pg.execute("SELECT count(*) FROM \"WhatsAppCustomer\" WHERE id = 'straggler'"
                          ).fetchone()[0] == 1
        assert pg.execute("SELECT phase FROM wacdc.state").fetchone()[0] == "done"


def test_a_cutover_interrupted_during_the_freeze_is_recorded_as_aborted(
        source_db: SourceDb, target_db: TargetDb) -> None:
    env = _streamed_then_died_frozen(source_db, target_db)  # before the fence: no rename
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    aborted = _latest(target_db)
    assert aborted["status"] == "aborted" and "nothing was lost" in aborted["reason"]


def test_pre_freeze_checks_never_wait_for_a_lock_and_say_so_when_they_cannot_run(
        source_db: SourceDb, target_db: TargetDb) -> None:
    """The foreign-key rehearsal runs beside the stream: a table lock it cannot take at
    once is no deadlock for the applier and no silent wait; the refusal names the cause."""
    env = wacdc_env(source_db, target_db, WACDC_CUTOVER_TIMEOUT="4")
    with daemon(env) as d, target_db.connect() as holder:
        holder.execute("BEGIN")
        # In the rehearsal's way (it alters WhatsAppMessage's foreign keys), not the
        # applier's: row writes take ROW EXCLUSIVE, which this lock lets through.
        holder.execute('LOCK TABLE "WhatsAppCustomer" IN SHARE UPDATE EXCLUSIVE MODE')
        assert run_cli("cutover", env=env).code == 0
        _write_and_see(source_db, target_db, d, "meanwhile", "+6")  # while the checks wait
        d.wait_for("the outcome", lambda: _latest(target_db)["status"] in ("refused", "done"))
        refused = _latest(target_db)
        assert refused["status"] == "refused", refused
        assert "pre-freeze checks could not run" in refused["reason"], refused["reason"]
        assert "a table lock was not free" in refused["reason"], refused["reason"]
        assert "the pre-freeze checks could not run yet" in d.log.text
        assert d.status()["phase"] == "streaming"
        holder.execute("ROLLBACK")
        # The lock gone, the next request cuts over (and the daemon exits: no refresh).
        assert run_cli("cutover", env=env).code == 0
        assert d.proc.wait(timeout=120) == 0, d.log.text[-3000:]
        assert _latest(target_db)["status"] == "done", _latest(target_db)
