"""`wacdc verify`: finds what differs, names it by key and column, repairs exactly that."""

from __future__ import annotations

import json
import threading
import time

from tests.compare import table_differences
from tests.harness import SourceDb, TargetDb, fill_whatsapp, run_cli, wacdc_env
from tests.test_observability import daemon
from tests.workload import TABLES, Workload


def _verify(env: dict[str, str], *args: str) -> tuple[int, dict]:
    result = run_cli("verify", "--json", *args, env=env)
    assert result.code in (0, 1), result.output
    return result.code, json.loads(result.stdout)


def _differences(doc: dict) -> set[tuple[str, str, str, tuple[str, ...]]]:
    return {(t["table"], d["kind"], d["key"][0], tuple(d["columns"]))
            for t in doc["tables"] for d in t["differences"]}


def test_verify_names_changed_deleted_and_inserted_rows_and_repairs_exactly_those(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 300, "WhatsAppMessage": 500})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES),
                    WACDC_SNAPSHOT_CHUNK_ROWS="64")  # many chunks: narrowing matters
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    code, doc = _verify(env)
    assert code == 0 and doc["identical"] is True
    by_table = {t["table"]: t for t in doc["tables"]}
    assert by_table["WhatsAppMessage"]["source_rows"] == 500
    assert by_table["WhatsAppMessage"]["target_rows"] == 500
    assert by_table["WhatsAppMessage"]["chunks"] >= 8

    with target_db.connect() as pg:  # behind wacdc's back
        changed, deleted = (r[0] for r in pg.execute(
            'SELECT id FROM "WhatsAppMessage" ORDER BY id LIMIT 2 OFFSET 200').fetchall())
        pg.execute('UPDATE "WhatsAppMessage" SET status = \'tampered\' WHERE id = %s',
                   (changed,))
        pg.execute('DELETE FROM "WhatsAppMessage" WHERE id = %s', (deleted,))
        pg.execute('INSERT INTO "WhatsAppCustomer" SELECT * FROM "WhatsAppCustomer" '
                   "ORDER BY id LIMIT 1 ON CONFLICT DO NOTHING")  # (a no-op: same key)
        pg.execute("""INSERT INTO "WhatsAppCustomer" (id, "firstName", "phoneNumber",
                      "isOptedIn", "createdAt", "updatedAt")
                      VALUES ('ghost', 'G', '+0', true, now(), now())""")
    code, doc = _verify(env)
    assert code == 1 and doc["identical"] is False
    assert _differences(doc) == {
        ("WhatsAppMessage", "differs", changed, ("status",)),
        ("WhatsAppMessage", "missing", deleted, ()),
        ("WhatsAppCustomer", "extra", "ghost", ()),
    }
    text = run_cli("verify", env=env)
    assert text.code == 1
    assert f"key='{changed}': differs in status" in text.output
    assert "`wacdc verify --repair`" in text.output

    code, doc = _verify(env, "--repair")
    assert code == 0, doc
    assert {t["table"]: t["repaired"] for t in doc["tables"] if t["repaired"]} == {
        "WhatsAppMessage": 2, "WhatsAppCustomer": 1}
    assert _verify(env)[0] == 0
    assert table_differences(source_db, target_db, tables=list(TABLES)) == {}


def test_verify_one_table_and_unknown_table(source_db: SourceDb, target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    code, doc = _verify(env, "--table", "WhatsAppCampaign")
    assert code == 0 and [t["table"] for t in doc["tables"]] == ["WhatsAppCampaign"]
    bad = run_cli("verify", "--table", "Nope", env=env)
    assert bad.code == 2 and "Nope" in bad.output and "WhatsAppCampaign" in bad.output


def test_verify_while_streaming_reports_only_real_differences(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 200, "WhatsAppMessage": 200})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES),
                    WACDC_SNAPSHOT_CHUNK_ROWS="50")
    workload = Workload(source_db, seed=17)
    with daemon(env):
        stop = threading.Event()

        def write() -> None:
            with source_db.connect(autocommit=False) as conn:
                while not stop.is_set():
                    workload.step(conn)
                    time.sleep(0.005)
        writer = threading.Thread(target=write)
        writer.start()
        try:
            time.sleep(1)
            code, doc = _verify(env)  # changes land on both sides while it reads
            assert code == 0, _differences(doc)
            with target_db.connect() as pg:  # a real difference is found while it streams
                pg.execute("""INSERT INTO "WhatsAppCustomer" (id, "firstName", "phoneNumber",
                              "isOptedIn", "createdAt", "updatedAt")
                              VALUES ('ghost', 'G', '+0', true, now(), now())""")
            code, doc = _verify(env, "--table", "WhatsAppCustomer")
            assert code == 1
            assert _differences(doc) == {("WhatsAppCustomer", "extra", "ghost", ())}
        finally:
            stop.set()
            writer.join()
