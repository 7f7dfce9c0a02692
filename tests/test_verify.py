"""`wacdc verify`: finds what differs, names it by key and column, repairs exactly that."""

from __future__ import annotations

import json
import threading
import time

from tests.support.compare import table_differences
from tests.support.daemon import daemon
from tests.support.harness import SourceDb, TargetDb, fill_whatsapp, run_cli, wacdc_env
from tests.support.independent import independent_differences
from tests.support.workload import ALL_TABLES, TABLES, Workload
from wacdc.config import load_settings
from wacdc.schema.types import TYPE_MAP
from wacdc.source.catalog import plan_target


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


# One column of every converter family, each tampered in its own row of the target (only
# that column changes): verify must name each one by table, key and column, and repair
# them all. A verify that skipped any family's columns fails here. The WhatsApp tables
# carry datetime, json, text, bool, text[] (json_string_array), int, decimal and a
# PostgreSQL enum; `families` adds what they lack.
FAMILIES_DDL = """
CREATE TABLE families (
  id INT NOT NULL PRIMARY KEY, dte DATE NOT NULL, ts3 TIMESTAMP(3) NOT NULL,
  bn BINARY(4) NOT NULL, vb VARBINARY(16) NOT NULL, db DOUBLE NOT NULL, tm TIME(3) NOT NULL,
  yr YEAR NOT NULL, st SET('x','y','z') NOT NULL, b1 BIT(1) NOT NULL, bits BIT(12) NOT NULL,
  e ENUM('a','b') NOT NULL
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci
"""
FAMILIES_ROW = ("'2024-02-29', '2024-02-29 12:34:56.789', 0x0a0b0c0d, 0x00ff10, 2.5, "
                "'-12:34:56.789', 2024, 'x,z', b'1', b'101010101010', 'a'")

# (family, table, column, PostgreSQL expression of a clearly different value)
TAMPERS = [
    ("datetime", "WhatsAppMessage", "createdAt", "\"createdAt\" + interval '1 day'"),
    ("json", "WhatsAppMessage", "metadata", "'{\"tampered\": true}'::jsonb"),
    ("text", "WhatsAppMessage", "message", "coalesce(message, '') || ' (tampered)'"),
    ("bool", "WhatsAppCustomer", "isOptedIn", "NOT \"isOptedIn\""),
    ("json_string_array", "WhatsAppCustomer", "tags", "array_append(tags, 'tampered')"),
    ("int", "WhatsAppCampaign", "rateLimit", "\"rateLimit\" + 1"),
    ("decimal", "WhatsAppProduct", "price", "price + 0.01"),
    ("enum", "WhatsAppTourPackage", "status",
     "(CASE WHEN status::text = 'archived' THEN 'draft' ELSE 'archived' END)"
     "::\"WhatsAppTourPackageStatus\""),
    ("date", "families", "dte", "dte + 1"),
    ("timestamp", "families", "ts3", "ts3 + interval '1 hour'"),
    ("binary", "families", "bn", "'\\xdeadbeef'::bytea"),
    ("bytes", "families", "vb", "vb || '\\x00'::bytea"),
    ("float", "families", "db", "db + 1"),
    ("time", "families", "tm", "tm + interval '1 second'"),
    ("year", "families", "yr", "yr + 1"),
    ("set", "families", "st", "ARRAY['y']"),
    ("bit1", "families", "b1", "NOT b1"),
    ("bits", "families", "bits", "~bits"),
    ("enum", "families", "e", "'b'"),  # a source ENUM the profile does not list
]


def test_verify_names_a_tampered_column_of_every_converter_family_and_repairs_them(
        source_db: SourceDb, target_db: TargetDb) -> None:
    fill_whatsapp(source_db, messages=100)
    source_db.execute(FAMILIES_DDL, *(f"INSERT INTO families VALUES ({n}, {FAMILIES_ROW})"
                                      for n in range(1, 13)))
    tables = [*ALL_TABLES, "families"]
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(tables))
    assert run_cli("run", "--exit-when-caught-up", env=env).code == 0
    assert _verify(env)[0] == 0

    # Each tamper is in the family it claims, and no family is left out.
    _, plans = plan_target(load_settings(source_url=source_db.url, target_url=target_db.url,
                                         tables=tables))
    family_of = {(t.name, c.name): c.family for t in plans for c in t.columns}
    assert [family_of[(t, c)] for _, t, c, _ in TAMPERS] == [f for f, _, _, _ in TAMPERS]
    every_family = {family for _, _, family in TYPE_MAP.values()} | {"json_string_array"}
    assert every_family <= {f for f, _, _, _ in TAMPERS}

    tampered = sorted({t for _, t, _, _ in TAMPERS})
    expected: list[tuple[str, str, str, str]] = []  # (family, table, key, column)
    with target_db.connect() as pg:
        pristine = {t: pg.execute(f'SELECT x::text FROM "{t}" x ORDER BY id').fetchall()
                    for t in tampered}
        used: dict[str, int] = {}
        for family, table, column, value in TAMPERS:
            offset = used.get(table, 0)  # each tamper in a row of its own
            used[table] = offset + 1
            (key,) = pg.execute(f'SELECT id::text FROM "{table}" ORDER BY id LIMIT 1 '
                                f"OFFSET {offset}").fetchone()
            changed = pg.execute(
                f'UPDATE "{table}" SET "{column}" = {value} WHERE id::text = %s '
                f'AND "{column}"::text IS DISTINCT FROM ({value})::text', (key,)).rowcount
            assert changed == 1, (family, table, column)
            expected.append((family, table, key, column))

    code, doc = _verify(env)
    assert code == 1 and doc["identical"] is False
    found = _differences(doc)
    for family, table, key, column in expected:
        assert (table, "differs", key, (column,)) in found, \
            f"verify missed the {family} column {table}.{column} (key {key})"
    assert len(found) == len(expected), found  # nothing else, and no other column named
    text = run_cli("verify", env=env)
    assert text.code == 1
    for _, table, key, column in expected:
        assert f"{table} key={key!r}: differs in {column}\n" in text.output, text.output

    code, doc = _verify(env, "--repair")
    assert code == 0, doc
    assert sum(t["repaired"] for t in doc["tables"]) == len(TAMPERS)
    assert _verify(env)[0] == 0
    with target_db.connect() as pg:
        for t in tampered:
            assert pg.execute(f'SELECT x::text FROM "{t}" x ORDER BY id').fetchall() \
                == pristine[t], t
    assert independent_differences(source_db, target_db, [*ALL_TABLES]) == {}
