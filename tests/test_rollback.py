"""The way back (issue 19): after the cutover, PostgreSQL's changes reach the retired MySQL
tables; `wacdc rollback` returns to MySQL with nothing lost; then forward again."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import psycopg
import pymysql
import pytest

from tests.support.cutover import NO_SUCH_TABLE, Writer
from tests.support.daemon import Daemon, daemon
from tests.support.harness import (
    REPO,
    SourceDb,
    TargetDb,
    fill_whatsapp,
    limited_user,
    run_cli,
    wacdc_env,
)
from tests.support.independent import independent_differences
from tests.support.pgapp import PgApp

TABLES = ["WhatsAppCustomer", "WhatsAppCampaign", "WhatsAppCampaignRecipient",
          "WhatsAppTourPackage", "WhatsAppProduct", "WhatsAppCatalog", "WhatsAppMessage"]


def _reverse_env(source_db: SourceDb, target_db: TargetDb, **extra: str) -> dict[str, str]:
    return wacdc_env(source_db, target_db, WACDC_REVERSE="1", **extra)


def _in_reverse(d: Daemon) -> None:
    d.wait_for("phase reverse", lambda: d.status()["phase"] == "reverse", timeout=90)


def _cut_over(source_db: SourceDb, d: Daemon, env: dict[str, str]) -> Writer:
    writer = Writer(source_db, rate=200)
    writer.start()
    try:
        d.wait_for("the writer's rows", lambda: len(writer.acked) > 100)
        result = run_cli("cutover", "--wait", env=env, timeout=120)
        assert result.code == 0, result.output
        writer.join(timeout=15)
    finally:
        writer.stop.set()
        writer.join()
    assert writer.error is not None and writer.error.args[0] == NO_SUCH_TABLE, writer.error
    return writer


def _restart_and_kill(env: dict[str, str], app: PgApp) -> None:
    d = Daemon(env)
    try:
        _in_reverse(d)
        seen = app.commits
        d.wait_for("more app commits applied", lambda: app.commits > seen + 30 and
                   d.status()["reverse"]["applied_changes"] > 0)
    finally:
        d.kill()


def _mysql_ids(source_db: SourceDb, table: str) -> set[str]:
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id FROM `{table}`")
        return {r[0] for r in cur.fetchall()}


def _rollback_row(target_db: TargetDb) -> dict:
    with target_db.connect() as pg:
        row = pg.execute("SELECT status, reason, freeze_seconds, counts, final_file, "
                         "final_pos FROM wacdc.rollback ORDER BY id DESC LIMIT 1").fetchone()
    assert row is not None
    return dict(zip(("status", "reason", "freeze_seconds", "counts", "file", "pos"), row,
                    strict=True))


def test_rollback_under_writers_loses_nothing_and_the_cutover_can_run_again(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=150)
    env = _reverse_env(source_db, target_db)
    with daemon(env) as d:
        mysql_writer = _cut_over(source_db, d, env)
        _in_reverse(d)
        app = PgApp(target_db, rate=80)
        app.start()
        d.wait_for("the app's first commits", lambda: app.commits > 40)
        d.kill()  # kill -9 during reverse replication, and twice more below
    for _ in range(2):
        _restart_and_kill(env, app)
    d = Daemon(env)
    try:
        _in_reverse(d)
        d.wait_for("reverse lag to be measured", lambda: d.status()["reverse"] is not None)
        result = run_cli("rollback", "--wait", env=env, timeout=120)
        assert result.code == 0, result.output
        app.join(timeout=15)  # it stops at its first refused write: the fence
        app.stop.set()
        app.join()
        assert app.error is not None and app.error.sqlstate == "WC002", app.error
        done = _rollback_row(target_db)
        assert done["status"] == "done", done
        assert 0 < done["freeze_seconds"] < 1.0, done
        assert all(c["source"] == c["target"] for c in done["counts"].values()), done
        # The MySQL tables are back under their names, identical to PostgreSQL.
        assert independent_differences(source_db, target_db, TABLES) == {}
        mysql_customers = _mysql_ids(source_db, "WhatsAppCustomer")
        assert app.customers <= mysql_customers and len(app.customers) > 100
        assert not app.deleted & mysql_customers
        assert set(mysql_writer.acked) <= mysql_customers
        # A stale app instance on PostgreSQL is refused.
        with psycopg.connect(target_db.url, autocommit=True) as pg, \
                pytest.raises(psycopg.Error) as refused:
            pg.execute('UPDATE "WhatsAppCustomer" SET "lastName" = %s', ("stale",))
        assert refused.value.sqlstate == "WC002"
        assert "wacdc rollback" in str(refused.value)
        # MySQL is the primary again, and its writes replicate forward.
        d.wait_for("forward streaming", lambda: d.status()["phase"] == "streaming")
        with source_db.connect() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, tags, "
                        "updatedAt) VALUES ('back-1', 'Back', '+700', '[\"x\"]', NOW(3))")
            cur.execute("UPDATE WhatsAppCustomer SET lastName = 'again' WHERE id = %s",
                        (sorted(app.customers)[0],))
        with psycopg.connect(target_db.url, autocommit=True) as pg:
            d.wait_for("the MySQL write in PostgreSQL", lambda: pg.execute(
                'SELECT count(*) FROM "WhatsAppCustomer" WHERE id = %s OR "lastName" = '
                "'again'", ("back-1",)).fetchone()[0] == 2)
        # And the cutover can be tried again.
        again = run_cli("cutover", "--wait", env=env, timeout=120)
        assert again.code == 0, again.output
        _in_reverse(d)
        assert json.loads(again.stdout[again.stdout.index("{"):])["status"] == "done"
    finally:
        d.stop()


def test_reverse_off_leaves_nothing_behind(source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=150)
    env = _reverse_env(source_db, target_db)
    with daemon(env) as d:
        _cut_over(source_db, d, env)
        _in_reverse(d)
        d.wait_for("the MySQL checkpoint table", lambda: "wacdc_reverse_checkpoint"
                   in _tables(source_db))
        _pg(target_db, 'INSERT INTO "WhatsAppCustomer" (id, "firstName", "phoneNumber", '
            'tags, "updatedAt") VALUES (%s, %s, %s, %s, now())', "pg-1", "Pg", "+42", ["a"])
        key = ("wacdc_reverse_rows_applied_total",
               (("op", "insert"), ("table", "WhatsAppCustomer")))
        d.wait_for("the insert applied to MySQL", lambda: d.samples().get(key) == 1.0)
        assert d.status()["reverse"]["pending_changes"] == 0
        assert ("wacdc_reverse_lag_seconds", ()) in d.samples()
        # `wacdc status` shows the phase and the reverse section; verify compares
        # PostgreSQL with the retired MySQL tables (the way back's direction).
        shown = run_cli("status", "--json", env=env)
        doc = json.loads(shown.stdout)
        assert doc["phase"] == "reverse" and doc["reverse"]["pending_changes"] == 0, doc
        verified = run_cli("verify", env=env, timeout=300)
        assert verified.code == 0, verified.output
    # Repair copies MySQL over PostgreSQL: refused once PostgreSQL is the primary.
    repaired = run_cli("verify", "--repair", env=env, timeout=300)
    assert repaired.code == 2 and "PostgreSQL is the primary" in repaired.output, \
        repaired.output
    off = run_cli("run", env={**env, "WACDC_REVERSE": "0"}, timeout=120)
    assert off.code == 0, off.output
    assert "reverse replication is off" in off.stderr
    with psycopg.connect(target_db.url) as pg:
        assert pg.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'wacdc_%' "
                          "AND NOT tgisinternal AND tgrelid::regclass::text NOT LIKE "
                          "'wacdc.%'").fetchone() == (0,)
        assert pg.execute("SELECT to_regclass('wacdc.reverse_log')").fetchone() == (None,)
    assert "wacdc_reverse_checkpoint" not in _tables(source_db)


def _tables(source_db: SourceDb) -> set[str]:
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        return {r[0] for r in cur.fetchall()}


def _pg(target_db: TargetDb, statement: str, *args: object) -> None:
    with psycopg.connect(target_db.url, autocommit=True) as pg:
        pg.execute(statement, args)


def test_verify_under_reverse_replication_waits_for_a_change_in_flight(
        source_db: SourceDb, target_db: TargetDb) -> None:
    """A PostgreSQL change not yet in MySQL (its reverse apply waits on a row lock) is
    compared again once it has landed, not reported as a difference."""
    fill_whatsapp(source_db, messages=150)
    env = _reverse_env(source_db, target_db)
    with daemon(env) as d:
        _cut_over(source_db, d, env)
        _in_reverse(d)
        with psycopg.connect(target_db.url, autocommit=True) as pg:
            row = pg.execute('SELECT id FROM "WhatsAppCustomer" ORDER BY id LIMIT 1').fetchone()
            assert row is not None
            key = row[0]
            with source_db.connect() as my, my.cursor() as cur:
                my.autocommit(False)
                cur.execute("SELECT id FROM WhatsAppCustomer__wacdc_retired WHERE id = %s "
                            "FOR UPDATE", (key,))  # the reverse apply of `key` waits on it
                pg.execute('UPDATE "WhatsAppCustomer" SET "lastName" = %s WHERE id = %s',
                           ("in flight", key))
                verify = subprocess.Popen(
                    [sys.executable, "-m", "wacdc.cli", "verify", "--table",
                     "WhatsAppCustomer"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT)

                def settling() -> bool:  # verify found the stale row and waits for it
                    if verify.poll() is not None:
                        raise AssertionError("verify did not wait for the change in "
                                             f"flight: {verify.communicate()[0].decode()}")
                    return pg.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                        "AND query LIKE '%%reverse_log%%' AND query LIKE "
                        "'%%pg_visible_in_snapshot%%'").fetchone()[0] > 0

                d.wait_for("verify waiting for reverse replication", settling, 60)
                my.commit()  # the change lands in MySQL
            out, _ = verify.communicate(timeout=120)
        assert verify.returncode == 0, out.decode()[-3000:]
        with source_db.connect() as my, my.cursor() as cur:
            cur.execute("SELECT lastName FROM WhatsAppCustomer__wacdc_retired WHERE id = %s",
                        (key,))
            assert cur.fetchone() == ("in flight",)


def test_a_value_mysql_cannot_hold_stops_strict_and_is_cut_and_counted_under_coerce(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=150)
    env = _reverse_env(source_db, target_db, WACDC_BAD_VALUES="strict")
    long_name = "Ω" * 250  # PostgreSQL's text takes it; MySQL's VARCHAR(191) does not
    with daemon(env) as d:
        _cut_over(source_db, d, env)
        _in_reverse(d)
        _pg(target_db, 'INSERT INTO "WhatsAppCustomer" (id, "firstName", "phoneNumber", '
            '"updatedAt") VALUES (%s, %s, %s, now())', "too-long", long_name, "+1000")
        _pg(target_db, 'INSERT INTO "WhatsAppCustomer" (id, "firstName", "phoneNumber", '
            '"updatedAt") VALUES (%s, %s, %s, now())', "after-it", "Fine", "+1001")
        assert d.proc.wait(timeout=60) == 2
        log = d.log.finish()
    assert "WhatsAppCustomer__wacdc_retired.firstName key='too-long'" in log, log[-3000:]
    assert "longer than varchar(191) (250 characters)" in log
    assert "PostgreSQL transaction" in log and "WACDC_BAD_VALUES=coerce" in log
    assert "after-it" not in _mysql_ids_retired(source_db)  # nothing past it was applied
    coerce = {**env, "WACDC_BAD_VALUES": "coerce"}
    result = run_cli("run", "--exit-when-caught-up", env=coerce, timeout=120)
    assert result.code == 0, result.output
    assert "value coerced on the way to MySQL" in result.stderr
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, firstName FROM WhatsAppCustomer__wacdc_retired "
                    "WHERE id IN ('too-long', 'after-it') ORDER BY id")
        rows = cur.fetchall()
    assert rows == (("after-it", "Fine"), ("too-long", "Ω" * 191)), rows
    # WACDC_ROLLBACK=1: the rollback at start; then forward replication catches up.
    back = run_cli("run", "--exit-when-caught-up", env={**coerce, "WACDC_ROLLBACK": "1"},
                   timeout=120)
    assert back.code == 0, back.output
    assert "rollback done" in back.stderr
    assert "too-long" in _mysql_ids(source_db, "WhatsAppCustomer")


def _mysql_ids_retired(source_db: SourceDb) -> set[str]:
    return _mysql_ids(source_db, "WhatsAppCustomer__wacdc_retired")


def test_reverse_refuses_to_start_when_the_cutover_captured_nothing(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=150)
    env = wacdc_env(source_db, target_db)  # WACDC_REVERSE=0: no capture at the cutover
    with daemon(env) as d:
        _cut_over(source_db, d, env)
        assert d.proc.wait(timeout=60) == 0
    result = run_cli("run", env={**env, "WACDC_REVERSE": "1"}, timeout=120)
    assert result.code == 2, result.output
    assert "were not captured" in result.stderr and "WACDC_REVERSE=0" in result.stderr
    asked = run_cli("rollback", env=env)
    assert asked.code == 0 and "rollback #1 requested" in asked.stdout, asked.output
    aborted = run_cli("rollback", "--abort", env=env)
    assert aborted.code == 0 and "abort requested for rollback #1" in aborted.stdout


def test_check_says_whether_the_way_back_can_run(source_db: SourceDb,
                                                target_db: TargetDb) -> None:
    ready = run_cli("check", env=_reverse_env(source_db, target_db))
    assert ready.code == 0, ready.output
    assert re.search(r"^ok\s+reverse replication: can run after the cutover", ready.stdout,
                     re.M), ready.stdout
    off = run_cli("check", env=wacdc_env(source_db, target_db))
    assert re.search(r"^warn\s+reverse replication: off \(WACDC_REVERSE=0\)", off.stdout,
                     re.M), off.stdout
    with limited_user(source_db, "norev", [
            "SELECT, LOCK TABLES ON `{db}`.*",
            "REPLICATION CLIENT, REPLICATION SLAVE ON *.*"]) as url:
        limited = run_cli("check", env=wacdc_env(url, target_db, WACDC_REVERSE="1"))
        assert limited.code == 1, limited.output
        problem = [ln for ln in limited.stdout.splitlines()
                   if ln.startswith("PROBLEM") and "reverse replication" in ln]
        assert problem and "lacks INSERT, UPDATE, DELETE, CREATE, DROP, ALTER" in problem[0]


def test_a_cutover_whose_way_back_cannot_run_is_refused_before_the_freeze(
        source_db: SourceDb, target_db: TargetDb) -> None:
    # Enough for replication and the RENAME fence, not for writing MySQL back.
    with limited_user(source_db, "nowayback", [
            "SELECT, LOCK TABLES, INSERT, CREATE, DROP, ALTER ON `{db}`.*",
            "REPLICATION CLIENT, REPLICATION SLAVE ON *.*"]) as url:
        env = wacdc_env(url, target_db, WACDC_REVERSE="1", WACDC_TABLES="WhatsAppCustomer")
        with daemon(env) as d:
            result = run_cli("cutover", "--wait", env=env, timeout=120)
            assert result.code == 1, result.output
            assert "the way back could not be set up" in result.output, result.output
            assert "lacks UPDATE, DELETE" in result.output, result.output
            assert d.status()["phase"] == "streaming"  # nothing half-done: it streams on
        with source_db.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW TABLES LIKE 'WhatsAppCustomer%'")
            assert [r[0] for r in cur.fetchall()] == ["WhatsAppCustomer"]  # not fenced


def _retired_count(source_db: SourceDb, where: str) -> int:
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM WhatsAppCustomer__wacdc_retired WHERE {where}")
        return int(cur.fetchone()[0])


def test_a_rollback_aborted_before_the_daemon_takes_it_up_is_recorded_and_changes_nothing(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=150)
    env = _reverse_env(source_db, target_db)
    d = Daemon(env)
    try:
        _cut_over(source_db, d, env)
        _in_reverse(d)
        d.stop()
        asked = run_cli("rollback", env=env)
        assert asked.code == 0 and "rollback #1 requested" in asked.stdout, asked.output
        aborted = run_cli("rollback", "--abort", env=env)
        assert aborted.code == 0 and "abort requested for rollback #1" in aborted.stdout
        d = Daemon(env)  # the daemon that comes up takes the request, and its abort
        d.wait_for("the abort", lambda: _rollback_row(target_db)["status"] == "aborted")
        row = _rollback_row(target_db)
        assert "aborted by the operator" in row["reason"] and row["freeze_seconds"] is None
        assert d.status()["phase"] == "reverse"
        # Nothing was frozen or fenced: PostgreSQL takes the app's writes, MySQL follows.
        _pg(target_db, 'UPDATE "WhatsAppCustomer" SET "lastName" = %s WHERE id = '
            '(SELECT min(id) FROM "WhatsAppCustomer")', "after the abort")
        d.wait_for("the write in MySQL", lambda: _retired_count(
            source_db, "lastName = 'after the abort'") == 1)
        assert independent_differences(source_db, target_db, TABLES,
                                       mysql_suffix="__wacdc_retired") == {}
        assert "WhatsAppCustomer" not in _tables(source_db)  # MySQL still fenced
    finally:
        d.stop()


def test_a_rollback_whose_drain_outlasts_the_freeze_limit_aborts_and_a_later_one_succeeds(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=150)
    env = _reverse_env(source_db, target_db, WACDC_CUTOVER_MAX_FREEZE="1",
                       WACDC_CUTOVER_MAX_LAG="3600")
    d = Daemon(env)
    try:
        _cut_over(source_db, d, env)
        _in_reverse(d)
        d.stop()
        # While the daemon is down the app commits a large transaction: the drain inside
        # the next rollback's freeze has all of it to apply, more than the 1 s limit.
        _pg(target_db, 'INSERT INTO "WhatsAppCustomer" (id, "firstName", "phoneNumber", '
            'tags, "updatedAt") SELECT \'bulk-\' || n, \'Bulk\', \'+9\' || n, '
            "ARRAY['b'], now() FROM generate_series(1, 40000) AS n")
        assert run_cli("rollback", env=env).code == 0
        d = Daemon(env)
        d.wait_for("the abort", lambda: _rollback_row(target_db)["status"] == "aborted", 120)
        row = _rollback_row(target_db)
        assert "the freeze reached its limit (1.0s) before the drain finished" in \
            row["reason"], (row, d.log.text[-3000:])
        assert d.status()["phase"] == "reverse"
        # PostgreSQL was unlocked and is not fenced: the app writes on.
        _pg(target_db, 'UPDATE "WhatsAppCustomer" SET "lastName" = %s WHERE id = %s',
            "after the abort", "bulk-1")
        d.wait_for("the write in MySQL", lambda: _retired_count(
            source_db, "lastName = 'after the abort'") == 1, 120)
        again = run_cli("rollback", "--wait", env=env, timeout=120)
        assert again.code == 0, again.output
        d.wait_for("forward streaming", lambda: d.status()["phase"] == "streaming")
    finally:
        d.stop()
    assert independent_differences(source_db, target_db, TABLES) == {}


def test_a_rollback_that_cannot_lock_postgresql_aborts_and_a_later_one_succeeds(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=150)
    env = _reverse_env(source_db, target_db, WACDC_CUTOVER_MAX_FREEZE="1")
    with daemon(env) as d:
        _cut_over(source_db, d, env)
        _in_reverse(d)
        with psycopg.connect(target_db.url) as stuck:  # an app transaction left open
            stuck.execute('UPDATE "WhatsAppCustomer" SET "lastName" = %s WHERE id = '
                          '(SELECT min(id) FROM "WhatsAppCustomer")', ("open",))
            result = run_cli("rollback", "--wait", env=env, timeout=120)
            assert result.code == 1, result.output
            assert "could not lock the PostgreSQL tables within 1.0s" in result.stdout
            assert _rollback_row(target_db)["status"] == "aborted"
            stuck.commit()
        # Nothing was lost: the app's write went on once unlocked, and reaches MySQL.
        again = run_cli("rollback", "--wait", env=env, timeout=120)
        assert again.code == 0, again.output
        d.wait_for("forward streaming", lambda: d.status()["phase"] == "streaming")
    assert independent_differences(source_db, target_db, TABLES) == {}
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM WhatsAppCustomer WHERE lastName = 'open'")
        assert cur.fetchone() == (1,)


TYPED = """CREATE TABLE typed (
    id INT PRIMARY KEY AUTO_INCREMENT, flag TINYINT(1) NOT NULL DEFAULT 0, bits BIT(5),
    small SMALLINT UNSIGNED, big BIGINT UNSIGNED, amount DECIMAL(12,4), ratio DOUBLE,
    happened DATETIME(6), stamped TIMESTAMP(3) NULL, day DATE, span TIME(6), yr YEAR,
    label ENUM('a','b c','ü'), flags SET('x','y','z'), doc JSON, raw VARBINARY(16),
    fixed CHAR(4), name VARCHAR(20), body TEXT, doubled INT AS (small * 2) STORED)"""
PG_ROW = ("INSERT INTO typed (id, flag, bits, small, big, amount, ratio, happened, stamped, "
          "day, span, yr, label, flags, doc, raw, fixed, name, body, doubled) VALUES (100, "
          "true, B'10101', 65535, 18446744073709551615, 12345678.1234, 1.7976931348623157e308, "
          "'9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.499+00', '1000-01-01', "
          "'-838:59:58.999999', 2155, 'ü', '{x,z}', '{\"a\": [1, 2.5, null], \"b\": \"é\"}', "
          "'\\x00ff10', 'ab', 'Zoë', 'long 😀', 1)")


@contextlib.contextmanager
def _typed_in_reverse(source_db: SourceDb, target_db: TargetDb, *setup: str
                      ) -> Iterator[tuple[Daemon, dict[str, str]]]:
    """Table `typed` (profile plain) replicated, cut over, the daemon in phase reverse."""
    source_db.execute(*setup)
    env = wacdc_env(source_db, target_db, WACDC_PROFILE="plain", WACDC_TABLES="typed",
                    WACDC_REVERSE="1")
    with daemon(env) as d:
        assert run_cli("cutover", "--wait", env=env, timeout=120).code == 0
        _in_reverse(d)
        yield d, env


def test_every_type_goes_back_exactly(empty_source_db: SourceDb, target_db: TargetDb) -> None:
    """The type map backwards on a table of every family (profile plain), read back from
    MySQL with PyMySQL's own conversions and compared with values written out here."""
    import datetime as dt
    from decimal import Decimal

    with _typed_in_reverse(empty_source_db, target_db, TYPED,
                           "INSERT INTO typed (id, small) VALUES (1, 1), (2, 2)") as (d, _):
        with psycopg.connect(target_db.url, autocommit=True) as pg:
            pg.execute(PG_ROW)
            pg.execute("INSERT INTO typed (small, flags) VALUES (7, '{}')")  # the identity
            pg.execute("UPDATE typed SET id = 20, label = 'b c' WHERE id = 2")  # a new key
            pg.execute("DELETE FROM typed WHERE id = 1")
            # JSON null and SQL NULL stay apart (Prisma's JsonNull and DbNull).
            pg.execute("INSERT INTO typed (id, doc) VALUES (200, 'null'), (201, NULL)")
        d.wait_for("the changes in MySQL", lambda: d.status()["reverse"]["applied_changes"]
                   >= 6 and d.status()["reverse"]["pending_changes"] == 0)
    with empty_source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("SELECT * FROM typed__wacdc_retired ORDER BY id")
        names = [c[0] for c in cur.description]
        rows = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    assert sorted(rows) == [3, 20, 100, 200, 201], rows  # 3: the identity, past 2
    assert rows[200]["doc"] == "null" and rows[201]["doc"] is None
    got = rows[100]
    got["doc"] = json.loads(got["doc"], parse_float=Decimal)
    got["flags"] = set(got["flags"].split(",")) if isinstance(got["flags"], str) \
        else got["flags"]
    assert got == {
        "id": 100, "flag": 1, "bits": b"\x15", "small": 65535, "big": 18446744073709551615,
        "amount": Decimal("12345678.1234"), "ratio": 1.7976931348623157e308,
        "happened": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "stamped": dt.datetime(2038, 1, 19, 3, 14, 7, 499000), "day": dt.date(1000, 1, 1),
        "span": -dt.timedelta(hours=838, minutes=59, seconds=58, microseconds=999999),
        "yr": 2155, "label": "ü", "flags": {"x", "z"},
        "doc": {"a": [1, Decimal("2.5"), None], "b": "é"}, "raw": b"\x00\xff\x10",
        "fixed": "ab", "name": "Zoë", "body": "long 😀", "doubled": 131070}
    assert rows[20]["label"] == "b c" and rows[20]["small"] == 2
    assert rows[3]["small"] == 7 and rows[3]["flags"] in ("", set())


def _rename_sessions(source_db: SourceDb) -> set[int]:
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s "
                    "AND INFO LIKE 'RENAME TABLE%%'", (source_db.name,))
        return {int(row[0]) for row in cur.fetchall()}


def _waiting_rename(source_db: SourceDb, d: Daemon) -> int:
    """The connection whose RENAME waits for the retired table's metadata lock."""
    d.wait_for("the RENAME waiting", lambda: _rename_sessions(source_db))
    (session,) = _rename_sessions(source_db)
    return session


def _end_connection(source_db: SourceDb, session: int) -> None:
    with source_db.connect() as conn, conn.cursor() as cur, \
            contextlib.suppress(pymysql.err.OperationalError):  # 1094: already gone
        cur.execute(f"KILL {session}")
    deadline = time.monotonic() + 30
    while session in _rename_sessions(source_db):
        assert time.monotonic() < deadline, "the killed RENAME session did not end"
        time.sleep(0.05)


def test_a_rollback_interrupted_after_fencing_postgresql_is_finished_by_the_next_start(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=150)
    env = _reverse_env(source_db, target_db)
    d = Daemon(env)
    try:
        d.wait_for("streaming", lambda: d.status()["phase"] == "streaming")
        _cut_over(source_db, d, env)
        _in_reverse(d)
        _pg(target_db, 'INSERT INTO "WhatsAppCustomer" (id, "firstName", "phoneNumber", '
            '"updatedAt") VALUES (%s, %s, %s, now())', "pg-before", "Pg", "+77")
        # A session holding a retired table makes the rollback's RENAME wait: the daemon is
        # killed there, after PostgreSQL was fenced and the rollback recorded `frozen`.
        with source_db.connect() as holder, holder.cursor() as cur:
            cur.execute("LOCK TABLES WhatsAppAnalyticsEvent__wacdc_retired READ")
            assert run_cli("rollback", env=env).code == 0
            d.wait_for("the rollback frozen", lambda: _rollback_row(target_db)["status"]
                       == "frozen")
            d.wait_for_line("PostgreSQL fenced", 30)
            rename = _waiting_rename(source_db, d)
            d.kill()
            # The server finishes a statement whose client died once the lock frees (CI saw
            # it): the connection is ended, as a server restart or a proxy reset would.
            _end_connection(source_db, rename)
            cur.execute("UNLOCK TABLES")
    finally:
        d.kill()
    assert "WhatsAppCustomer" not in _tables(source_db)  # still retired
    d = Daemon(env)
    try:
        d.wait_for("forward streaming", lambda: d.status()["phase"] == "streaming")
        assert _rollback_row(target_db)["status"] == "done"
        assert {"WhatsAppCustomer", "WhatsAppAnalyticsEvent"} <= _tables(source_db)
        assert "pg-before" in _mysql_ids(source_db, "WhatsAppCustomer")
        with psycopg.connect(target_db.url, autocommit=True) as pg, \
                pytest.raises(psycopg.Error) as refused:
            pg.execute('DELETE FROM "WhatsAppCustomer"')
        assert refused.value.sqlstate == "WC002"
        assert independent_differences(source_db, target_db, TABLES) == {}
    finally:
        d.stop()


@pytest.mark.parametrize("writes, expected", [
    # MySQL's collation compares without case: PostgreSQL's two rows are one key there.
    (["INSERT INTO typed (id, name) VALUES (300, 'abc'), (301, 'ABC')"],
     ["refused a insert of typed__wacdc_retired key=301", "unique key"]),
    # A date MySQL cannot have is refused naming its column, never turned into NULL.
    (["INSERT INTO typed (id, happened) VALUES (302, 'infinity')"],
     ["typed__wacdc_retired.happened key=302", "out of MySQL's range: infinity"]),
])
def test_what_mysql_would_merge_or_cannot_hold_stops_naming_it(
        empty_source_db: SourceDb, target_db: TargetDb, writes: list[str],
        expected: list[str]) -> None:
    with _typed_in_reverse(empty_source_db, target_db,
                           TYPED.replace("body TEXT,", "body TEXT, UNIQUE KEY (name),")
                           ) as (d, env):
        with psycopg.connect(target_db.url, autocommit=True) as pg:
            for statement in writes:
                pg.execute(statement)
        assert d.proc.wait(timeout=60) == 2
        log = d.log.finish()
    for needle in expected:
        assert needle in log, (needle, log[-3000:])
    with empty_source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM typed__wacdc_retired WHERE id >= 300")
        assert cur.fetchone() == (0,)  # nothing of that transaction was applied
    # The way out the error names: skip that transaction (each change logged), go on.
    txid = re.search(r"WACDC_REVERSE_SKIP=(\d+)", log)
    assert txid, log[-3000:]
    _pg(target_db, "INSERT INTO typed (id, name) VALUES (%s, %s)", 400, "after")
    skipped = run_cli("run", "--exit-when-caught-up",
                      env={**env, "WACDC_REVERSE_SKIP": txid.group(1)}, timeout=120)
    assert skipped.code == 0, skipped.output
    assert "skipped by WACDC_REVERSE_SKIP" in skipped.stderr
    with empty_source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM typed__wacdc_retired WHERE id >= 300 ORDER BY id")
        assert cur.fetchall() == ((400,),)



def _post(port: int, path: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST",
                                 headers=headers, data=b"")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_post_rollback_needs_the_token_and_a_cutover_then_rolls_back(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=150)
    token = "s3cret-admin-token"
    env = _reverse_env(source_db, target_db, WACDC_ADMIN_TOKEN=token)
    with daemon(env) as d:
        assert _post(d.port, "/rollback", None) == 401
        assert _post(d.port, "/rollback", token) == 409  # MySQL is the primary: nothing to do
        _cut_over(source_db, d, env)
        _in_reverse(d)
        assert _post(d.port, "/rollback", token) == 202
        d.wait_for("the rollback", lambda: _rollback_row(target_db)["status"] == "done")
        d.wait_for("forward streaming", lambda: d.status()["phase"] == "streaming")
    assert independent_differences(source_db, target_db, TABLES) == {}


def test_check_names_the_postgresql_privilege_the_capture_needs(
        source_db: SourceDb, target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db)
    assert run_cli("schema", "--apply", env=env, timeout=120).code == 0
    role = f"notrig_{target_db.name[-6:]}"
    url = target_db.url.replace("://postgres@", f"://{role}@", 1)
    if url == target_db.url:
        pytest.skip("the target URL is not the private server's postgres user")
    with psycopg.connect(target_db.url, autocommit=True) as pg:
        pg.execute(f'CREATE ROLE "{role}" LOGIN')
        pg.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public '
                   f'TO "{role}"')
    try:
        result = run_cli("check", env={**env, "WACDC_TARGET_URL": url, "WACDC_REVERSE": "1"})
        problem = [ln for ln in result.stdout.splitlines()
                   if ln.startswith("PROBLEM") and "reverse replication" in ln]
        assert problem and "may not create triggers" in problem[0], result.stdout
        assert f"GRANT TRIGGER ON ALL TABLES IN SCHEMA public TO {role}" in problem[0]
        assert result.code == 1
    finally:
        with psycopg.connect(target_db.url, autocommit=True) as pg:
            pg.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"')
            pg.execute(f'DROP ROLE "{role}"')


def test_check_warns_about_a_stale_wacdc_replication_slot(source_db: SourceDb,
                                                          target_db: TargetDb) -> None:
    slot = f"wacdc_stale_{target_db.name[-6:]}"
    with psycopg.connect(target_db.url, autocommit=True) as pg:
        pg.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
    try:
        result = run_cli("check", env=_reverse_env(source_db, target_db))
        warned = [ln for ln in result.stdout.splitlines()
                  if ln.startswith("warn") and slot in ln]
        assert warned and "inactive" in warned[0], result.stdout
        assert f"pg_drop_replication_slot('{slot}')" in result.stdout
    finally:
        with psycopg.connect(target_db.url, autocommit=True) as pg:
            pg.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
