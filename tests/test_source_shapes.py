"""What a real Oracle MySQL source writes, end to end through `wacdc run`.

JSON null vs SQL NULL and MySQL's typed JSON scalars (both flavours, both paths), tagged
GTIDs, session-level compressed transactions and partial-JSON updates (Oracle MySQL),
and the whole job on the 19 tables under every shape with repeated kill -9, then a
cutover under a writer. Compared with tests/support/independent.py, which shares no code with
wacdc. `make test` runs this file again with the library decoder and the decode process.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.compare import assert_same_gtid_state
from tests.support.cutover import cut_over_under_a_writer
from tests.support.flavours import only_on
from tests.support.harness import (
    REPO,
    LogTail,
    SourceDb,
    TargetDb,
    as_the_writer,
    fill_whatsapp,
    run_cli,
    wacdc_env,
)
from tests.support.independent import independent_differences
from tests.support.workload import ALL_TABLES, TABLES, Workload, in_background

# The tests marked `decoders` run again with each other way of decoding the binlog
# (tests/conftest.py): `library` where row images are what they check, `process` where
# the child's reading, framing and hand-over are; the rest, control-plane behaviour the
# decoders share, runs with the default compiled, in-thread decoder only.

ALL = ",".join(ALL_TABLES)


def _start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run", *args], env=env,
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _streaming(target: TargetDb, proc: subprocess.Popen, timeout: float = 120,
               phases: tuple[str, ...] = ("streaming",)) -> None:
    """Wait until the daemon is in one of `phases` (it must not die meanwhile)."""
    deadline = time.monotonic() + timeout
    with target.connect() as pg:
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            try:
                row = pg.execute("SELECT phase FROM wacdc.state").fetchone()
            except Exception:  # noqa: BLE001 - the daemon has not created its state yet
                row = None
            if row and row[0] in phases:
                return
            assert time.monotonic() < deadline, f"the daemon never reached {phases}"
            time.sleep(0.05)


def _catch_up(env: dict[str, str]) -> None:
    result = run_cli("run", "--exit-when-caught-up", env=env, timeout=300)
    assert result.code == 0, result.output[-3000:]


def _json_cells(source: SourceDb, target: TargetDb, table: str, column: str
                ) -> tuple[dict, dict]:
    """{id: text} of a JSON column on both sides: MySQL's CAST(... AS CHAR), PG's jsonb
    text normalised by PostgreSQL itself from MySQL's text (jsonb in, jsonb out)."""
    with source.connect() as my, my.cursor() as cur:
        cur.execute(f"SELECT id, CAST(`{column}` AS CHAR) FROM `{table}`")
        mysql = dict(cur.fetchall())
    with target.connect() as pg:
        have = dict(pg.execute(f'SELECT id, "{column}"::text FROM "{table}"').fetchall())
        want = {k: None if v is None else pg.execute("SELECT %s::jsonb::text", (v,))
                .fetchone()[0] for k, v in mysql.items()}
    return want, have


@pytest.mark.decoders("library")
def test_json_null_and_typed_scalars_survive_both_paths(source_db: SourceDb,
                                                       target_db: TargetDb) -> None:
    shapes = [  # (id, SQL for metadata)
        ("sql-null", "NULL"), ("json-null", "'null'"),
        ("decimal", "JSON_SET(JSON_OBJECT('a', 1), '$.price', 1.0)"),
        ("scale", "JSON_OBJECT('fee', CAST(12.50 AS DECIMAL(6,2)), 'neg', -0.5)"),
        ("datetime", "JSON_OBJECT('at', NOW(3), 'day', CURDATE(), 'tm', CAST('-12:30:01.5' "
                     "AS TIME(1)))"),
        ("nested", "JSON_ARRAY(JSON_OBJECT('x', NULL), JSON_EXTRACT('[null]', '$[0]'), "
                   "1e300, 0.1)"),
        ("scalar", "'\"just text\"'"),
    ]

    def write(prefix: str) -> None:
        for key, expr in shapes:
            source_db.execute(f"INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, "
                              f"metadata, tags, updatedAt) VALUES ('{prefix}{key}', 'n', "
                              f"'+{prefix}{key}', {expr}, 'null', NOW(3))")

    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer")
    write("s-")  # read by the snapshot
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    write("b-")  # read from the binlog: inserts, then updates to every shape
    for key, expr in shapes:
        source_db.execute(f"UPDATE WhatsAppCustomer SET metadata = {expr}, firstName = 'u' "
                          f"WHERE id = 's-{key}'")
    _catch_up(env)
    want, have = _json_cells(source_db, target_db, "WhatsAppCustomer", "metadata")
    assert have == want
    assert have["b-sql-null"] is None and have["b-json-null"] == "null"
    assert have["s-json-null"] == "null" and have["s-sql-null"] is None
    assert '"price": 1.0' in have["b-decimal"] and '"fee": 12.50' in have["b-scale"]
    assert independent_differences(source_db, target_db, ["WhatsAppCustomer"]) == {}


@pytest.mark.decoders("process")
def test_tagged_gtids_before_the_snapshot_and_while_streaming_resume_exactly(
        source_db: SourceDb, target_db: TargetDb) -> None:
    only_on(source_db.server, "mysql", "tagged GTIDs are Oracle MySQL 8.3+")
    with source_db.connect() as conn, conn.cursor() as cur:  # gtid_executed gets a tag
        cur.execute("SET gtid_next = 'AUTOMATIC:wacdc_before'")
        cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) "
                    "VALUES ('pre', 'n', '+1', NOW(3))")
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer",
                    WACDC_RESUME_FROM="gtid")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    proc = _start(env)
    try:
        _streaming(target_db, proc)
        with source_db.connect() as conn, conn.cursor() as cur:
            cur.execute("SET gtid_next = 'AUTOMATIC:batch_job'")
            cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) "
                        "VALUES ('gone', 'n', '+2', NOW(3))")
            cur.execute("DELETE FROM WhatsAppCustomer WHERE id = 'gone'")
            cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) "
                        "VALUES ('kept', 'n', '+3', NOW(3))")
            cur.execute("SET gtid_next = 'AUTOMATIC'")
            cur.execute("UPDATE WhatsAppCustomer SET firstName = 'plain' WHERE id = 'pre'")
            cur.execute("SELECT @@global.gtid_executed")
            head = cur.fetchone()[0]
        deadline = time.monotonic() + 60
        # Until the checkpoint holds all the source has executed, tags included (the
        # server judges; earlier tests on this server may have used the same tags).
        with target_db.connect() as pg, source_db.connect() as my, my.cursor() as judge:
            while True:
                stored = pg.execute("SELECT gtid FROM wacdc.state").fetchone()[0] or ""
                judge.execute("SELECT GTID_SUBSET(%s, %s)", (head, stored))
                if judge.fetchone()[0] == 1:
                    break
                assert time.monotonic() < deadline, f"checkpoint {stored!r}, source {head!r}"
                time.sleep(0.05)
        assert ":batch_job:" in stored.replace("\n", "") and ":wacdc_before:" in stored
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    with target_db.connect() as pg:  # a new primary: only the GTID state can resume
        as_the_writer(pg)
        pg.execute("UPDATE wacdc.state SET binlog_file = 'elsewhere-bin.000042', "
                   "binlog_pos = 4")
        before = pg.execute("SELECT gtid FROM wacdc.state").fetchone()[0]
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET gtid_next = 'AUTOMATIC:batch_job'")
        cur.execute("UPDATE WhatsAppCustomer SET firstName = 'after' WHERE id = 'kept'")
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output[-3000:]
    with target_db.connect() as pg, source_db.connect() as my, my.cursor() as cur:
        rows = dict(pg.execute('SELECT id, "firstName" FROM "WhatsAppCustomer"').fetchall())
        stored = pg.execute("SELECT gtid FROM wacdc.state").fetchone()[0]
        # The checkpoint only moves forward (the server judges: it knows tags).
        cur.execute("SELECT GTID_SUBSET(%s, %s)", (before, stored))
        assert cur.fetchone()[0] == 1, (before, stored)
        assert_same_gtid_state(cur, "mysql", stored)
    assert rows == {"pre": "plain", "kept": "after"}  # 'gone' did not come back
    assert independent_differences(source_db, target_db, ["WhatsAppCustomer"]) == {}


def _payload_events(source: SourceDb, kind: str = "Transaction_payload") -> int:
    """How many events of that kind (SHOW BINLOG EVENTS' Event_type) the binlog holds."""
    with source.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        count = 0
        for name, *_ in cur.fetchall():
            cur.execute(f"SHOW BINLOG EVENTS IN '{name}'")
            count += sum(1 for row in cur.fetchall() if row[2] == kind)
    return count


@pytest.mark.decoders("process")
def test_session_compressed_transactions_are_decompressed_and_applied(
        source_db: SourceDb, target_db: TargetDb) -> None:
    only_on(source_db.server, "mysql", "binlog_transaction_compression is Oracle MySQL's")
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 50, "WhatsAppMessage": 50})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@global.binlog_transaction_compression")
        assert cur.fetchone()[0] == 0  # a batch job turns it on for itself only
        cur.execute("SET SESSION binlog_transaction_compression = ON")
        cur.execute("CREATE TABLE IF NOT EXISTS batch_log (id INT PRIMARY KEY, note TEXT)")
        conn.autocommit(False)
        for batch in range(5):  # big, mixed transactions: tracked and untracked tables
            cur.executemany("INSERT INTO WhatsAppCustomer (id, phoneNumber, firstName, "
                            "metadata, updatedAt) VALUES (%s, %s, %s, %s, NOW(3))",
                            [(f"z{batch}-{n}", f"+9{batch}{n:06d}", "Zoë 😀" * (n % 3),
                              json.dumps({"batch": batch, "n": n})) for n in range(2000)])
            cur.execute("UPDATE WhatsAppCustomer SET firstName = 'upd' WHERE id LIKE %s",
                        (f"z{batch}-1%",))
            cur.execute("DELETE FROM WhatsAppCustomer WHERE id LIKE %s", (f"z{batch}-2%",))
            cur.execute("INSERT INTO batch_log VALUES (%s, 'done')", (batch,))
            conn.commit()
        cur.execute("SET SESSION binlog_transaction_compression = OFF")
        cur.execute("UPDATE WhatsAppCustomer SET firstName = 'plain' WHERE id = 'z0-5'")
        conn.commit()
    assert _payload_events(source_db) >= 5  # the path under test really was taken
    _catch_up(env)
    assert independent_differences(source_db, target_db, list(TABLES)) == {}
    with target_db.connect() as pg, source_db.connect() as my, my.cursor() as cur:
        assert pg.execute('SELECT count(*) FROM "WhatsAppCustomer" WHERE id LIKE %s',
                          ("z%",)).fetchone()[0] == 5 * (2000 - 111)
        assert_same_gtid_state(cur, "mysql", pg.execute("SELECT gtid FROM wacdc.state")
                               .fetchone()[0])


@pytest.mark.decoders("library")
def test_partial_json_names_the_column_that_carried_the_diff(source_db: SourceDb,
                                                            target_db: TargetDb) -> None:
    only_on(source_db.server, "mysql", "binlog_row_value_options is Oracle MySQL's")
    # Documents large enough that MySQL logs a diff rather than the whole new value.
    source_db.execute("INSERT INTO WhatsAppMessage (id, message, `to`, payload, metadata, "
                      "updatedAt) VALUES ('m1', 'hi', 'x', %s, %s, NOW(3))",
                      params=(json.dumps({"big": "p" * 300}),
                              json.dumps({"k": 1, "pad": "m" * 300})))
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppMessage")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION binlog_row_value_options = 'PARTIAL_JSON'")
        # JSON columns untouched (empty diffs): replicated exactly.
        cur.execute("UPDATE WhatsAppMessage SET status = 'read' WHERE id = 'm1'")
    _catch_up(env)
    assert independent_differences(source_db, target_db, ["WhatsAppMessage"]) == {}
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION binlog_row_value_options = 'PARTIAL_JSON'")
        cur.execute("UPDATE WhatsAppMessage SET metadata = JSON_SET(metadata, '$.k', 2) "
                    "WHERE id = 'm1'")
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 2, result.output[-3000:]
    assert "column 'metadata'" in result.output and "WhatsAppMessage" in result.output
    assert "partial JSON" in result.output and "'payload'" not in result.output
    assert "binlog." in result.output and "binlog_row_value_options" in result.output


@pytest.mark.slow
@pytest.mark.decoders("library", "process")
def test_the_19_tables_under_every_shape_and_kill_9_then_a_cutover(
        source_db: SourceDb, target_db: TargetDb) -> None:
    mysql = source_db.server.flavour == "mysql"
    if mysql:  # a tagged GTID before the snapshot
        with source_db.connect() as conn, conn.cursor() as cur:
            cur.execute("SET gtid_next = 'AUTOMATIC:before_snapshot'")
            cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) "
                        "VALUES ('pre', 'n', '+0', NOW(3))")
    payloads_before = _payload_events(source_db) if mysql else 0
    fill_whatsapp(source_db, messages=150)
    env = wacdc_env(source_db, target_db, WACDC_BATCH_MAX_ROWS="50")
    workload = Workload(source_db, seed=21, every_shape=True)
    rng = random.Random(4)
    with in_background(workload) as done:
        for restart in range(6):
            # The later restarts resume by GTID alone (tags included on MySQL).
            proc = _start({**env, "WACDC_RESUME_FROM": "gtid"} if restart >= 3 else env)
            # Past the snapshot; an unthrottled writer may keep it catching up (a slower
            # decoder): the kill lands while it applies either way.
            _streaming(target_db, proc, phases=("catchup", "streaming"))
            time.sleep(rng.uniform(0.2, 1.2))  # the random moment of the kill
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
    assert done[0] > 100
    assert len(workload.per_table) >= 15, workload.per_table  # writes beyond a few tables
    if mysql:
        assert workload.tagged > 5 and workload.compressed > 5
        assert _payload_events(source_db) - payloads_before > 5  # compressed in the binlog
    _catch_up({**env, "WACDC_RESUME_FROM": "gtid"})
    assert independent_differences(source_db, target_db, list(ALL_TABLES)) == {}
    with target_db.connect() as pg, source_db.connect() as my, my.cursor() as cur:
        assert_same_gtid_state(cur, source_db.server.flavour,
                               pg.execute("SELECT gtid FROM wacdc.state").fetchone()[0])

    # The random deletes and writes left children without parents (MySQL never enforced
    # the keys): the cutover follows each foreign key's onDelete action for them, and
    # refuses those of RESTRICT/NO ACTION keys, which the operator deletes first.
    _delete_orphans_of_restricting_keys(source_db)
    _catch_up(env)
    env["WACDC_ORPHANS"] = "apply"
    writer, done_row = cut_over_under_a_writer(source_db, target_db, env, rate=300,
                                               rows_first=100)
    assert done_row["status"] == "done" and 0 < done_row["freeze_seconds"] < 1.0
    slowest = max([seconds for _, seconds in writer.calls] + [writer.failed_after])
    assert slowest < 1.0, slowest  # the app's own longest wait, the fence's refusal included
    with target_db.connect() as pg:
        ids = {r[0] for r in pg.execute('SELECT id FROM "WhatsAppCustomer"').fetchall()}
    assert set(writer.acked) <= ids  # every acknowledged write reached PostgreSQL


def _delete_orphans_of_restricting_keys(source: SourceDb) -> None:
    from wacdc.schema.profile import load_profile

    keys = [fk for fk in load_profile("prisma").foreign_keys
            if fk.on_delete not in ("CASCADE", "SET NULL")]
    with source.connect() as conn, conn.cursor() as cur:
        deleted = 1
        while deleted:  # a deleted child may be the missing parent of another
            deleted = 0
            for fk in keys:
                joined = " AND ".join(f"c.`{a}` = p.`{b}`" for a, b in
                                      zip(fk.columns, fk.referenced_columns, strict=True))
                deleted += cur.execute(
                    f"DELETE c FROM `{fk.table}` c LEFT JOIN `{fk.references}` p ON {joined} "
                    f"WHERE c.`{fk.columns[0]}` IS NOT NULL AND p.`{fk.referenced_columns[0]}` "
                    "IS NULL")
            conn.commit()


@pytest.mark.decoders("process")
def test_mariadb_compressed_binlog_events_are_decompressed_and_applied(
        source_db: SourceDb, target_db: TargetDb) -> None:
    only_on(source_db.server, "mariadb", "log_bin_compress is MariaDB's")
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 50, "WhatsAppMessage": 50})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    start = _head_file_pos(source_db)
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@global.log_bin_compress, @@global.log_bin_compress_min_len")
        was = cur.fetchone()
        cur.execute("SET GLOBAL log_bin_compress_min_len = 10")
        cur.execute("SET GLOBAL log_bin_compress = ON")
        try:
            with source_db.connect() as app, app.cursor() as acur:  # a new session: ON
                app.autocommit(False)
                acur.executemany("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, "
                                 "notes, updatedAt) VALUES (%s, 'Zoë', %s, %s, NOW(3))",
                                 [(f"mz-{n}", f"+7{n:06d}", "é" * (n * 37 % 3000))
                                  for n in range(500)])
                acur.execute("UPDATE WhatsAppCustomer SET notes = REPEAT('u', 700) "
                             "WHERE id LIKE 'mz-1%'")
                acur.execute("DELETE FROM WhatsAppCustomer WHERE id LIKE 'mz-2%'")
                app.commit()
                acur.execute("ALTER TABLE WhatsAppCustomer ADD COLUMN zipped VARCHAR(20) "
                             "NULL DEFAULT 'compressed query'")
                acur.execute("UPDATE WhatsAppCustomer SET zipped = 'yes' WHERE id = 'mz-5'")
                app.commit()
        finally:
            cur.execute("SET GLOBAL log_bin_compress = %s", (int(was[0]),))
            cur.execute("SET GLOBAL log_bin_compress_min_len = %s", (int(was[1]),))
        cur.execute(f"SHOW BINLOG EVENTS IN '{start[0]}' FROM {start[1]}")
        kinds = {row[2] for row in cur.fetchall()}
    assert {"Query_compressed", "Write_rows_compressed_v1", "Update_rows_compressed_v1",
            "Delete_rows_compressed_v1"} <= kinds, kinds  # the path under test was taken
    _catch_up(env)
    assert independent_differences(source_db, target_db, list(TABLES)) == {}
    with target_db.connect() as pg:
        assert pg.execute('SELECT zipped FROM "WhatsAppCustomer" WHERE id = %s',
                          ("mz-5",)).fetchone() == ("yes",)


def _head_file_pos(source: SourceDb) -> tuple[str, int]:
    with source.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS" if source.server.is_mariadb
                    else "SHOW BINARY LOG STATUS")
        file, pos = cur.fetchone()[:2]
    return file, int(pos)


def _rows(target: TargetDb, table: str) -> set[str]:
    with target.connect() as pg:
        return {r[0] for r in pg.execute(f'SELECT id FROM "{table}"').fetchall()}


def test_truncate_is_attributed_by_the_statements_own_names(source_db: SourceDb,
                                                            target_db: TargetDb) -> None:
    other = f"{source_db.name}_other"
    tables = "WhatsAppTemplate,WhatsAppCampaign"
    insert = ("INSERT INTO {db}.WhatsAppTemplate (id, name, body, updatedAt) "
              "VALUES ('{id}', 'n', 'b', NOW(3))")
    source_db.execute(f"CREATE DATABASE `{other}`",
                      f"CREATE TABLE `{other}`.WhatsAppTemplate LIKE WhatsAppTemplate",
                      insert.format(db=f"`{other}`", id="o1"), insert.format(db="", id="t1")
                      .replace("INTO .", "INTO "))
    try:
        env = wacdc_env(source_db, target_db, WACDC_TABLES=tables)
        assert run_cli("run", "--snapshot-only", env=env).code == 0
        source_db.execute("INSERT INTO WhatsAppCampaign (id, name, templateName, targetType, "
                          "updatedAt) VALUES ('c1', 'n', 't', 'all', NOW(3))")
        # From the tracked database: another database's table of the same name.
        source_db.execute(f"TRUNCATE TABLE `{other}`.WhatsAppTemplate")
        _catch_up(env)
        assert _rows(target_db, "WhatsAppTemplate") == {"t1"}  # untouched
        # From a session with no default database: the tracked one, by its own name.
        with source_db.connect(database=None) as conn, conn.cursor() as cur:
            cur.execute(f"/* ops */ TRUNCATE TABLE `{source_db.name}`.WhatsAppCampaign")
        _catch_up(env)
        assert _rows(target_db, "WhatsAppCampaign") == set()
        assert independent_differences(source_db, target_db, tables.split(",")) == {}
    finally:
        source_db.execute(f"DROP DATABASE IF EXISTS `{other}`")


def test_prisma_migrate_ddl_with_its_comments_is_applied(source_db: SourceDb,
                                                          target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCampaign")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    source_db.execute("-- AlterTable\nALTER TABLE `WhatsAppCampaign` ADD COLUMN `region` "
                      "VARCHAR(191) NULL",
                      "/* app */ ALTER TABLE WhatsAppCampaign ADD COLUMN budget INT NULL",
                      "-- CreateIndex\nCREATE INDEX `WhatsAppCampaign_region_idx` ON "
                      "`WhatsAppCampaign`(`region`)",
                      "INSERT INTO WhatsAppCampaign (id, name, templateName, targetType, "
                      "region, budget, updatedAt) VALUES ('c2', 'n', 't', 'all', 'Goa', 5, "
                      "NOW(3))")
    _catch_up(env)
    assert independent_differences(source_db, target_db, ["WhatsAppCampaign"]) == {}
    with target_db.connect() as pg:
        assert pg.execute("SELECT count(*) FROM pg_indexes WHERE indexname = "
                          "'WhatsAppCampaign_region_idx'").fetchone() == (1,)


def test_statement_format_dml_on_a_tracked_table_stops_and_names_it(
        source_db: SourceDb, target_db: TargetDb) -> None:
    source_db.execute("CREATE TABLE app_counters (id INT PRIMARY KEY, n INT)")
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppTemplate")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute("INSERT INTO app_counters VALUES (1, 1)")  # untracked: passes
    _catch_up(env)
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute("INSERT INTO WhatsAppTemplate (id, name, body, updatedAt) "
                    "VALUES ('stmt', 'n', 'b', '2024-01-01 00:00:00')")
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 2, result.output[-3000:]
    out = result.output
    assert "WhatsAppTemplate" in out and "statement-format DML" in out
    assert "binlog_format=ROW" in out and "INSERT INTO WhatsAppTemplate" in out
    assert "binlog." in out and "--resume-after-ddl" in out


def _load_data(source: SourceDb, path: Path, table: str, columns: str = "") -> None:
    """LOAD DATA LOCAL from a session that logs statements (the server must allow it)."""
    with source.connect(local_infile=True) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} "
                    f"FIELDS TERMINATED BY ',' {columns}")
        conn.commit()


def test_a_load_data_logged_as_a_statement_passes_untracked_and_stops_on_a_tracked_table(
        source_db: SourceDb, target_db: TargetDb, tmp_path: Path) -> None:
    source_db.execute("CREATE TABLE app_imports (id INT PRIMARY KEY, n INT)")
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppTemplate")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    (tmp_path / "imports.csv").write_text("1,10\n2,20\n")
    (tmp_path / "templates.csv").write_text("loaded,n,b,2024-01-01 00:00:00\n")
    loads_before = _payload_events(source_db, "Execute_load_query")
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.local_infile")
        was = cur.fetchone()[0]
        cur.execute("SET GLOBAL local_infile = 1")  # MySQL 8+ ships it OFF
        try:
            _load_data(source_db, tmp_path / "imports.csv", "app_imports")
            source_db.execute("INSERT INTO WhatsAppTemplate (id, name, body, updatedAt) "
                              "VALUES ('after', 'n', 'b', '2024-01-01 00:00:00')")
            _catch_up(env)  # the untracked LOAD passed, and the row after it arrived
            with target_db.connect() as pg:
                assert pg.execute('SELECT id FROM "WhatsAppTemplate" WHERE id = %s',
                                  ("after",)).fetchall() == [("after",)]
            _load_data(source_db, tmp_path / "templates.csv", "WhatsAppTemplate",
                       "(id, name, body, updatedAt)")
        finally:
            cur.execute("SET GLOBAL local_infile = %s", (int(was),))
    # both loads are in the binlog as statements (the path under test was taken)
    assert _payload_events(source_db, "Execute_load_query") - loads_before == 2
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 2, result.output[-3000:]
    out = result.output
    assert "statement-format DML on tracked table WhatsAppTemplate at binlog." in out, out
    assert "LOAD DATA LOCAL INFILE" in out and "binlog_format=ROW" in out
    assert "--resume-after-ddl" in out
    with target_db.connect() as pg:
        assert pg.execute('SELECT count(*) FROM "WhatsAppTemplate" WHERE id = %s',
                          ("loaded",)).fetchone() == (0,)


@pytest.mark.parametrize(("statements", "why", "verb"), [
    (["CREATE TABLE `_WhatsAppTemplate_gho` LIKE `WhatsAppTemplate`",  # gh-ost's cut-over
      "RENAME TABLE `WhatsAppTemplate` TO `_WhatsAppTemplate_del`, "
      "`_WhatsAppTemplate_gho` TO `WhatsAppTemplate`"], "renamed in or out", "RENAME TABLE"),
    # (the server logs a DROP in its own words: the test looks for the verb)
    (["/* operator */ DROP TABLE IF EXISTS app_scratch, `WhatsAppTemplate`"], "was dropped",
     "DROP TABLE"),
    # ANSI_QUOTES makes "name" an identifier, which the parser reads as a string: the
    # statement is unreadable, and the token scan still finds the tracked name in it
    (["SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')",
      'ALTER TABLE "WhatsAppTemplate" ADD COLUMN "extra" INT NULL'],
     "a statement wacdc cannot read names it", "ALTER TABLE"),
], ids=["gh-ost-rename", "drop", "unreadable"])
@pytest.mark.decoders("process")
def test_a_rename_drop_or_unreadable_statement_on_a_tracked_table_stops_naming_it(
        source_db: SourceDb, target_db: TargetDb, statements: list[str], why: str,
        verb: str) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppTemplate")
    proc = _start(env)
    _streaming(target_db, proc)  # while it streams (a start would refuse a missing table)
    source_db.execute(*statements)
    assert proc.wait(timeout=120) == 2
    assert proc.stderr is not None
    out = proc.stderr.read().decode()
    proc.stderr.close()
    assert why in out and "WhatsAppTemplate" in out, out[-3000:]
    assert f"'{verb}" in out and "at binlog." in out, out[-3000:]


@pytest.mark.decoders("process")
def test_a_large_transaction_is_applied_in_pieces_atomically_and_survives_kill_9(
        source_db: SourceDb, target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer",
                    WACDC_TRANSACTION_PIECE_ROWS="500")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    rows = 20_000
    with source_db.connect() as conn, conn.cursor() as cur:
        conn.autocommit(False)
        cur.executemany("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, updatedAt) "
                        "VALUES (%s, 'Big', %s, NOW(3))",
                        [(f"big-{n:06d}", f"+5{n:08d}") for n in range(rows)])
        conn.commit()
        cur.execute("UPDATE WhatsAppCustomer SET firstName = 'Bigger'")  # one statement
        conn.commit()

    def seen() -> tuple[int, int]:
        with target_db.connect() as pg:
            return pg.execute("SELECT count(*), count(*) FILTER (WHERE \"firstName\" = "
                              "'Bigger') FROM \"WhatsAppCustomer\"").fetchone()

    # A kill -9 while the pieces of the first transaction are being applied: nothing of
    # it is visible before its end commits, nothing of it stays after the kill.
    proc = _start(env)
    assert proc.stderr is not None
    tail = LogTail(proc.stderr)
    states = set()
    deadline = time.monotonic() + 300
    # Sample the target until the daemon says it is applying pieces, then kill it.
    while not tail.wait_for("applying it in pieces", timeout=0.05):
        assert proc.poll() is None, tail.text[-3000:]
        assert time.monotonic() < deadline, "no piece in 300 s: " + tail.text[-3000:]
        states.add(seen())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log = tail.finish()
    assert "applying it in pieces" in log, log[-3000:]
    states.add(seen())
    assert states <= {(0, 0), (rows, 0), (rows, rows)}, states  # whole transactions only
    _catch_up(env)
    assert seen() == (rows, rows)
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM WhatsAppCustomer WHERE id LIKE 'big-%'")  # one statement
    _catch_up(env)
    assert seen() == (0, 0)
    assert independent_differences(source_db, target_db, ["WhatsAppCustomer"]) == {}


def test_resume_after_ddl_passes_one_statement_with_every_tracked_table_it_names(
        empty_source_db: SourceDb, target_db: TargetDb) -> None:
    empty_source_db.execute("CREATE TABLE a (id INT PRIMARY KEY, n INT)",
                            "CREATE TABLE b (id INT PRIMARY KEY, n INT)",
                            "INSERT INTO a VALUES (1, 1), (2, 2)",
                            "INSERT INTO b VALUES (1, 1), (2, 2)")
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain", WACDC_TABLES="a,b")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    with empty_source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute("DELETE a, b FROM a JOIN b ON a.id = b.id WHERE a.id = 1")
    stopped = run_cli("run", "--exit-when-caught-up", env=env)
    assert stopped.code == 2 and "statement-format DML on tracked table" in stopped.output
    empty_source_db.execute("INSERT INTO a VALUES (3, 3)")  # row format: replicated
    resumed = run_cli("run", "--exit-when-caught-up", "--resume-after-ddl", env=env)
    assert resumed.code == 0, resumed.output[-3000:]
    assert resumed.stderr.count("accepted by --resume-after-ddl") == 2, resumed.stderr
    with target_db.connect() as pg:
        assert pg.execute("SELECT id FROM a ORDER BY id").fetchall() == [(1,), (2,), (3,)]
    again = run_cli("run", "--exit-when-caught-up", env=env)  # it stays passed
    assert again.code == 0, again.output[-3000:]
    # The flag is for the first statement after the checkpoint only: one that passes
    # anyway disarms it, and a later stop still stops.
    empty_source_db.execute("ALTER TABLE a ADD COLUMN extra INT NULL")
    with empty_source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute("UPDATE b SET n = 20 WHERE id = 2")
    late = run_cli("run", "--exit-when-caught-up", "--resume-after-ddl", env=env)
    assert late.code == 2 and "statement-format DML on tracked table b" in late.output, \
        late.output[-3000:]


def test_a_tracked_table_changing_engine_while_streaming_stops_and_a_restart_reads_it(
        empty_source_db: SourceDb, target_db: TargetDb) -> None:
    empty_source_db.execute("CREATE TABLE ledger (id INT PRIMARY KEY, n INT) ENGINE=InnoDB")
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain", WACDC_TABLES="ledger")
    proc = _start(env)
    _streaming(target_db, proc)
    empty_source_db.execute("ALTER TABLE ledger ENGINE=MyISAM")
    assert proc.wait(timeout=120) == 2
    assert proc.stderr is not None
    out = proc.stderr.read().decode()
    proc.stderr.close()
    assert "tracked table ledger became non-transactional at binlog." in out, out[-3000:]
    empty_source_db.execute("INSERT INTO ledger VALUES (1, 1)")
    _catch_up(env)  # a new stream reads the engine: the ALTER passes
    with target_db.connect() as pg:
        assert pg.execute("SELECT id, n FROM ledger").fetchall() == [(1, 1)]
