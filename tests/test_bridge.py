"""The bridge window (issue 20): `wacdc cutover --bridge` cuts over without fencing MySQL;
old app instances keep writing MySQL while new ones write PostgreSQL, both stores stay
current, conflicts go to PostgreSQL, and the window closes by itself once MySQL is quiet."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pymysql

from tests.support.cutover import NO_SUCH_TABLE
from tests.support.daemon import Daemon
from tests.support.harness import SourceDb, TargetDb, fill_whatsapp, run_cli, wacdc_env
from tests.support.independent import independent_differences
from tests.support.pgapp import PgApp

TABLES = ["WhatsAppCustomer", "WhatsAppCampaign", "WhatsAppCampaignRecipient",
          "WhatsAppTourPackage", "WhatsAppProduct", "WhatsAppCatalog", "WhatsAppMessage"]
RETIRED = "__wacdc_retired"


class OldInstance(threading.Thread):
    """The app's old generation, still on MySQL: its own customers, updates of rows the
    new generation updates too (tour packages), campaigns with recipients in one
    transaction, and their deletes (the app deletes the children: MySQL has no FKs)."""

    def __init__(self, db: SourceDb, rate: float = 40) -> None:
        super().__init__(daemon=True)
        self.db, self.rate = db, rate
        self.stop = threading.Event()
        self.customers: set[str] = set()
        self.commits = 0
        self.error: pymysql.err.MySQLError | None = None
        self.retries: list[pymysql.err.MySQLError] = []  # deadlocks and lock waits retried

    def run(self) -> None:
        with self.db.connect(autocommit=False) as conn, conn.cursor() as cur:
            n = 0
            while not self.stop.is_set():
                try:
                    self._step(cur, n)
                    conn.commit()
                except pymysql.err.MySQLError as exc:
                    if exc.args and exc.args[0] in (1205, 1213):  # as an app does: again
                        conn.rollback()
                        self.retries.append(exc)
                        continue
                    self.error = exc
                    return
                self.customers.add(f"my-{n:06d}")
                self.commits += 1
                n += 1
                self.stop.wait(1 / self.rate)

    @staticmethod
    def _step(cur: pymysql.cursors.Cursor, n: int) -> None:
        key = f"my-{n:06d}"
        cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, tags, "
                    "metadata, updatedAt) VALUES (%s, 'Old', %s, %s, %s, NOW(3))",
                    (key, f"+7{n:09d}", '["old"]', json.dumps({"n": n, "gen": "old"})))
        if n % 2 == 0:  # the rows the new generation updates too
            cur.execute("UPDATE WhatsAppTourPackage SET basePrice = %s, updatedAt = NOW(3) "
                        "ORDER BY id LIMIT 1", (f"{n}.75",))
        if n % 5 == 0:
            cur.execute("INSERT INTO WhatsAppCampaign (id, name, templateName, targetType, "
                        "updatedAt) VALUES (%s, 'Old campaign', 'welcome', 'all', NOW(3))",
                        (f"{key}-c",))
            for r in range(2):
                cur.execute("INSERT INTO WhatsAppCampaignRecipient (id, campaignId, "
                            "phoneNumber, whatsappCustomerId, updatedAt) VALUES "
                            "(%s, %s, %s, %s, NOW(3))",
                            (f"{key}-r{r}", f"{key}-c", f"+6{n:08d}{r}", key))
        if n % 10 == 5:
            old = f"my-{n - 5:06d}-c"
            cur.execute("DELETE FROM WhatsAppCampaignRecipient WHERE campaignId = %s", (old,))
            cur.execute("DELETE FROM WhatsAppCampaign WHERE id = %s", (old,))


def _no_error(old: OldInstance, new: PgApp) -> bool:
    """Raises (naming it) when a writer failed: waiting on would hide why."""
    assert old.error is None and new.error is None, (old.error, new.error, old.retries)
    return True


def _cutover_row(target_db: TargetDb) -> dict:
    with target_db.connect() as pg:
        row = pg.execute("SELECT status, reason, bridge FROM wacdc.cutover "
                         "ORDER BY id DESC LIMIT 1").fetchone()
    assert row is not None
    return {"status": row[0], "reason": row[1], "bridge": row[2] or {}}


def _stop(*writers: OldInstance | PgApp) -> None:
    for w in writers:
        w.stop.set()
    for w in writers:
        w.join(timeout=30)


def test_a_bridge_window_keeps_both_stores_current_and_closes_when_mysql_is_quiet(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=100)
    env = wacdc_env(source_db, target_db, WACDC_REVERSE="1", WACDC_BRIDGE_QUIET="4")
    d = Daemon(env)
    old, new = OldInstance(source_db), PgApp(target_db, rate=40, prefix="pg")
    try:
        d.wait_for("phase streaming", lambda: d.status()["phase"] == "streaming", 90)
        old.start()
        d.wait_for("old writes", lambda: old.commits > 40)
        opened = run_cli("cutover", "--bridge", "--wait", env=env, timeout=120)
        assert opened.code == 0, opened.output
        assert "bridge window is open" in opened.output
        assert _cutover_row(target_db)["status"] == "bridge"
        new.start()  # the new generation, deployed: both write for 30 s
        started = time.monotonic()
        d.wait_for("both generations' writes", lambda: _no_error(old, new) and
                   new.commits > 200 and old.commits > 300)
        d.kill()  # kill -9 inside the window; both generations write on
        d = Daemon(env)
        d.wait_for("the window again", lambda: d.status()["phase"] == "bridge", 90)
        d.wait_for("30 s of both", lambda: time.monotonic() - started > 30, 60)
        status = run_cli("status", env=env)
        assert "bridge       open since" in status.output, status.output
        catalog = _a_conflict_postgresql_wins(source_db, target_db, d)
        _stop(old)  # the old generation is gone: the window closes after the quiet period
        d.wait_for("the window to close", lambda: d.status()["phase"] == "reverse", 60)
        _stop(new)
        # Every change committed by now, not the daemon's last measurement, which can
        # predate the new generation's last commit: once MySQL has it, its log row goes.
        with psycopg.connect(target_db.url, autocommit=True) as pg:
            now = pg.execute("SELECT pg_current_snapshot()::text").fetchone()[0]
            d.wait_for("reverse to catch up", lambda: pg.execute(
                "SELECT count(*) FROM wacdc.reverse_log WHERE "
                "pg_visible_in_snapshot(txid, %s::pg_snapshot)", (now,)).fetchone()[0] == 0, 60)
        assert old.error is None and new.error is None, (old.error, new.error)
        done = _cutover_row(target_db)
        assert done["status"] == "done", done
        assert "no app write reached MySQL" in done["reason"], done
        assert independent_differences(source_db, target_db, TABLES,
                                       mysql_suffix=RETIRED) == {}
        with target_db.connect() as pg:
            assert pg.execute('SELECT name FROM "WhatsAppCatalog" WHERE id = %s',
                              (catalog,)).fetchone() == ("from PostgreSQL",)
        _assert_every_write_in_both(source_db, target_db, old, new)
        conflicts = done["bridge"]["conflicts"]
        assert conflicts > 0 and done["bridge"]["mysql_writes"] > 300, done
        logged = [e for e in d.events() if e.get("event", "").startswith("bridge conflict")]
        assert all(e["table"] and e["key"] for e in logged)
        with source_db.connect() as conn, conn.cursor() as cur:  # MySQL is fenced now
            try:
                cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, "
                            "updatedAt) VALUES ('late', 'L', '+1', NOW(3))")
            except pymysql.err.MySQLError as exc:
                assert exc.args[0] == NO_SUCH_TABLE
            else:
                raise AssertionError("MySQL took a write after the window closed")
    finally:
        _stop(old, new)
        d.stop()


def _a_conflict_postgresql_wins(source_db: SourceDb, target_db: TargetDb, d: Daemon) -> str:
    """One row changed on both sides, each before the other's change got there: an app
    transaction in MySQL holds the row while PostgreSQL's change of it waits to go back,
    then changes it too. MySQL ends with PostgreSQL's change (applied after its own), so
    PostgreSQL must keep its own. Returns the row's key."""
    with source_db.connect(autocommit=False) as my, my.cursor() as cur, \
            target_db.connect() as pg:
        cur.execute("SELECT id FROM WhatsAppCatalog ORDER BY id LIMIT 1 FOR UPDATE")
        (catalog,) = cur.fetchone()
        waits = sum(1 for e in d.events() if "waited on a MySQL lock" in e.get("event", ""))
        pg.execute('UPDATE "WhatsAppCatalog" SET name = %s WHERE id = %s',
                   ("from PostgreSQL", catalog))
        d.wait_for("reverse to wait on the row", lambda: sum(
            1 for e in d.events() if "waited on a MySQL lock" in e.get("event", "")) > waits)
        cur.execute("UPDATE WhatsAppCatalog SET name = 'from MySQL' WHERE id = %s", (catalog,))
        my.commit()
    return str(catalog)


def _assert_every_write_in_both(source_db: SourceDb, target_db: TargetDb, old: OldInstance,
                                new: PgApp) -> None:
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id FROM WhatsAppCustomer{RETIRED}")
        mysql_ids = {r[0] for r in cur.fetchall()}
    with target_db.connect() as pg:
        pg_ids = {r[0] for r in pg.execute('SELECT id FROM "WhatsAppCustomer"').fetchall()}
    assert old.customers <= mysql_ids and old.customers <= pg_ids
    assert new.customers <= mysql_ids and new.customers <= pg_ids
    assert not new.deleted & (mysql_ids | pg_ids)


def _post_cutover(d: Daemon, query: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{d.port}/cutover?{query}", data=b"",
                                     method="POST",
                                     headers={"Authorization": "Bearer t0ken"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_bridge_window_asked_over_http_replicates_both_ways_until_the_operator_closes_it(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=50)
    env = wacdc_env(source_db, target_db, WACDC_REVERSE="1", WACDC_ADMIN_TOKEN="t0ken",
                    WACDC_BRIDGE_QUIET="3600")
    d = Daemon(env)
    try:
        d.wait_for("phase streaming", lambda: d.status()["phase"] == "streaming", 90)
        for bad in ("bridge=1&bridge_max=-1", "bridge=1&bridge_max=inf", "bridge=maybe"):
            assert _post_cutover(d, bad)[0] == 400, bad
        code, answer = _post_cutover(d, "bridge=1&bridge_max=600")
        assert code == 202, answer
        d.wait_for("the window", lambda: d.status()["phase"] == "bridge", 90)
        assert d.status()["bridge"]["quiet_s"] == 3600
        early = run_cli("rollback", env=env)
        assert early.code == 1 and "Close it first" in early.output, early.output
        with source_db.connect() as conn, conn.cursor() as cur:  # an old instance
            cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) "
                        "VALUES ('from-mysql', 'M', '+100', NOW(3))")
        with target_db.connect() as pg:  # a new one
            pg.execute('INSERT INTO "WhatsAppCustomer" (id, "firstName", "phoneNumber", '
                       '"updatedAt") VALUES (%s, %s, %s, now())', ("from-pg", "P", "+200"))
            d.wait_for("MySQL's write in PostgreSQL", lambda: pg.execute(
                "SELECT count(*) FROM \"WhatsAppCustomer\" WHERE id = 'from-mysql'"
            ).fetchone()[0] == 1)

        def in_mysql() -> bool:
            with source_db.connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM WhatsAppCustomer WHERE id = 'from-pg'")
                return cur.fetchone()[0] == 1

        d.wait_for("PostgreSQL's write in MySQL's live table", in_mysql)
        closed = run_cli("cutover", "--close-bridge", "--wait", env=env, timeout=120)
        assert closed.code == 0, closed.output
        done = _cutover_row(target_db)
        assert done["status"] == "done" and "the operator closed it" in done["reason"], done
        assert done["bridge"]["mysql_writes"] >= 1, done
        d.wait_for("phase reverse", lambda: d.status()["phase"] == "reverse")
        again = run_cli("cutover", "--close-bridge", env=env)
        assert again.code == 1 and "no bridge window is open" in again.output, again.output
        assert independent_differences(source_db, target_db, ["WhatsAppCustomer"],
                                       mysql_suffix=RETIRED) == {}
    finally:
        d.stop()


def test_a_daemon_stopped_between_the_bridge_fence_and_its_record_finishes_the_close(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=50)
    env = wacdc_env(source_db, target_db, WACDC_REVERSE="1", WACDC_BRIDGE_QUIET="3600")
    d = Daemon(env)
    try:
        d.wait_for("phase streaming", lambda: d.status()["phase"] == "streaming", 90)
        assert run_cli("cutover", "--bridge", "--wait", env=env, timeout=120).code == 0
        d.kill()
        # What the close does after its freeze, done here while no daemon runs: the last
        # MySQL write, then the fence (the RENAME); PostgreSQL's app goes on meanwhile.
        with source_db.connect() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) "
                        "VALUES ('last-mysql', 'M', '+300', NOW(3))")
            cur.execute("RENAME TABLE " + ", ".join(
                f"`{t}` TO `{t}{RETIRED}`" for t in _tracked(source_db)))
        with target_db.connect() as pg:
            pg.execute('INSERT INTO "WhatsAppCustomer" (id, "firstName", "phoneNumber", '
                       '"updatedAt") VALUES (%s, %s, %s, now())', ("after-pg", "P", "+400"))
        d = Daemon(env)
        d.wait_for("phase reverse", lambda: d.status()["phase"] == "reverse", 90)
        done = _cutover_row(target_db)
        assert done["status"] == "done" and "fence was in place" in done["reason"], done
        d.wait_for("reverse to catch up",
                   lambda: d.status()["reverse"]["pending_changes"] == 0, 60)
        assert independent_differences(source_db, target_db, ["WhatsAppCustomer"],
                                       mysql_suffix=RETIRED) == {}
        with target_db.connect() as pg:
            assert pg.execute("SELECT count(*) FROM \"WhatsAppCustomer\" "
                              "WHERE id IN ('last-mysql', 'after-pg')").fetchone() == (2,)
    finally:
        d.stop()


def _tracked(source_db: SourceDb) -> list[str]:
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                    "DATABASE() AND table_name LIKE 'WhatsApp%%'")
        return [r[0] for r in cur.fetchall()]


def test_bridge_max_must_be_a_positive_number_of_seconds() -> None:
    for bad in ("0", "-5", "soon", "inf"):
        result = run_cli("cutover", "--bridge-max", bad, env={})
        assert result.code == 2 and "is not a number of seconds > 0" in result.output, bad


def test_a_conflict_with_a_cascade_reaches_mysql_too(source_db: SourceDb,
                                                      target_db: TargetDb) -> None:
    """PostgreSQL deletes a campaign (its recipients cascade) while MySQL, holding the
    campaign's row, renames it and adds a recipient: PostgreSQL's delete wins, and the
    recipient it cascades to in PostgreSQL is deleted in MySQL too."""
    fill_whatsapp(source_db, messages=50)
    env = wacdc_env(source_db, target_db, WACDC_REVERSE="1", WACDC_BRIDGE_QUIET="3600")
    d = Daemon(env)
    try:
        d.wait_for("phase streaming", lambda: d.status()["phase"] == "streaming", 90)
        with source_db.connect() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO WhatsAppCampaign (id, name, templateName, targetType, "
                        "updatedAt) VALUES ('doomed', 'C', 'welcome', 'all', NOW(3))")
        assert run_cli("cutover", "--bridge", "--wait", env=env, timeout=120).code == 0
        with source_db.connect(autocommit=False) as my, my.cursor() as cur, \
                target_db.connect() as pg:
            cur.execute("SELECT id FROM WhatsAppCampaign WHERE id = 'doomed' FOR UPDATE")
            waits = sum(1 for e in d.events() if "waited on a MySQL lock" in e.get("event", ""))
            pg.execute('DELETE FROM "WhatsAppCampaign" WHERE id = %s', ("doomed",))
            d.wait_for("reverse to wait on the row", lambda: sum(
                1 for e in d.events() if "waited on a MySQL lock" in e.get("event", ""))
                > waits)
            cur.execute("UPDATE WhatsAppCampaign SET name = 'renamed' WHERE id = 'doomed'")
            cur.execute("INSERT INTO WhatsAppCampaignRecipient (id, campaignId, phoneNumber, "
                        "updatedAt) VALUES ('orphan-to-be', 'doomed', '+500', NOW(3))")
            my.commit()
        assert run_cli("cutover", "--close-bridge", "--wait", env=env, timeout=120).code == 0
        d.wait_for("reverse to catch up", lambda: d.status()["phase"] == "reverse" and
                   d.status()["reverse"]["pending_changes"] == 0, 60)
        assert independent_differences(source_db, target_db, TABLES,
                                       mysql_suffix=RETIRED) == {}
        with source_db.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM WhatsAppCampaignRecipient{RETIRED} "
                        "WHERE id = 'orphan-to-be'")
            assert cur.fetchone() == (0,)
        assert _cutover_row(target_db)["bridge"]["conflicts"] >= 1
    finally:
        d.stop()


def test_a_bridge_window_after_a_rollback_survives_a_restart(source_db: SourceDb,
                                                             target_db: TargetDb) -> None:
    """The rollback's leftover clean-up must not take the capture of a later window."""
    fill_whatsapp(source_db, messages=50)
    env = wacdc_env(source_db, target_db, WACDC_REVERSE="1", WACDC_BRIDGE_QUIET="3600")
    d = Daemon(env)
    try:
        d.wait_for("phase streaming", lambda: d.status()["phase"] == "streaming", 90)
        assert run_cli("cutover", "--wait", env=env, timeout=120).code == 0
        d.wait_for("phase reverse", lambda: d.status()["phase"] == "reverse", 90)
        assert run_cli("rollback", "--wait", env=env, timeout=120).code == 0
        d.wait_for("streaming again", lambda: d.status()["phase"] == "streaming", 90)
        assert run_cli("cutover", "--bridge", "--wait", env=env, timeout=120).code == 0
        d.kill()
        with target_db.connect() as pg:
            pg.execute('INSERT INTO "WhatsAppCustomer" (id, "firstName", "phoneNumber", '
                       '"updatedAt") VALUES (%s, %s, %s, now())', ("while-down", "P", "+600"))
        d = Daemon(env)
        d.wait_for("the window again", lambda: d.status()["phase"] == "bridge", 90)

        def in_mysql() -> bool:
            with source_db.connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM WhatsAppCustomer WHERE id = 'while-down'")
                return cur.fetchone()[0] == 1

        d.wait_for("PostgreSQL's write in MySQL", in_mysql)
    finally:
        d.stop()
