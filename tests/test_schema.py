"""`wacdc schema`: the prisma profile yields exactly what whatsapp_pg_target.md describes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import pytest

from tests.support.harness import FIXTURES, SourceDb, TargetDb, run_cli, wacdc_env


@dataclass(frozen=True)
class ExpectedColumn:
    table: str
    name: str
    pg_type: str  # as written in the md, upper case: TEXT, TIMESTAMP(3), "EnumName", TEXT[]
    nullable: bool
    default: str | None


def expected_from_markdown() -> tuple[list[ExpectedColumn], dict[str, set[str]]]:
    """Parse §6 of whatsapp_pg_target.md: per model, the column table and index lists."""
    text = (FIXTURES / "whatsapp_pg_target.md").read_text()
    section = text.split("## 6.")[1].split("## 7.")[0]
    columns: list[ExpectedColumn] = []
    indexes: dict[str, set[str]] = {}
    for block in section.split("\n### ")[1:]:
        table = block.split("\n", 1)[0].strip()
        for line in block.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 5 and cells[0].startswith("`"):
                name = cells[0].strip("`")
                target = cells[2].split(" (")[0]
                nullable = not target.endswith("NOT NULL")
                pg_type = target.removesuffix(" NOT NULL").removesuffix(" NULL").strip()
                default = cells[3].split(" / ")[-1] if " / " in cells[3] else cells[3]
                default = None if default.startswith("—") else default
                columns.append(ExpectedColumn(table, name, pg_type, nullable, default))
            if line.startswith(("- Indexes:", "- Unique indexes:")):
                indexes.setdefault(table, set()).update(re.findall(r"`(\w+)`", line))
    return columns, indexes


def _pg_type_text(data_type: str, udt: str, precision: int | None, scale: int | None,
                  dt_precision: int | None) -> str:
    if data_type == "timestamp without time zone":
        return f"TIMESTAMP({dt_precision})"
    if data_type == "numeric":
        return f"DECIMAL({precision},{scale})"
    if data_type == "ARRAY":
        return udt.lstrip("_").upper() + "[]"
    if data_type == "USER-DEFINED":
        return f'"{udt}"'
    return data_type.upper()


def _normalize_default(value: str | None) -> str | None:
    if value is None:
        return None
    text = re.sub(r"::[\w\"\[\]]+", "", value).strip("'")  # drop casts and quotes
    if text.upper() == "ARRAY[]":
        return "ARRAY[]"
    try:
        return str(Decimal(text).normalize())
    except InvalidOperation:
        return text


def test_prisma_profile_matches_the_target_document(source_db: SourceDb,
                                                    target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db)
    first = run_cli("schema", "--apply", env=env)
    assert first.code == 0, first.output
    assert "created table WhatsAppMessage" in first.stdout
    again = run_cli("schema", "--apply", env=env)
    assert again.code == 0 and "nothing to change" in again.stdout, again.output

    expected, expected_indexes = expected_from_markdown()
    assert len({c.table for c in expected}) == 19
    with target_db.connect() as pg:
        rows = pg.execute(
            "SELECT table_name, column_name, data_type, udt_name, numeric_precision, "
            "numeric_scale, datetime_precision, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "ORDER BY table_name, ordinal_position").fetchall()
        actual_indexes = {r[0] for r in pg.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'").fetchall()}
        enums = dict(pg.execute(
            "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_type t "
            "JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname").fetchall())
    actual = {(r[0], r[1]): r for r in rows}
    assert set(actual) == {(c.table, c.name) for c in expected}
    for column in expected:
        table, name, data_type, udt, prec, scale, dt_prec, nullable, default = \
            actual[(column.table, column.name)]
        where = f"{table}.{name}"
        assert _pg_type_text(data_type, udt, prec, scale, dt_prec) == column.pg_type, where
        assert (nullable == "YES") == column.nullable, where
        assert _normalize_default(default) == _normalize_default(column.default), \
            (where, default, column.default)
    for table, names in expected_indexes.items():
        assert names <= actual_indexes, (table, names - actual_indexes)
        assert f"{table}_pkey" in actual_indexes
    assert enums == {"WhatsAppTourPackageStatus": ["draft", "active", "inactive", "archived"],
                     "WhatsAppCatalogSyncStatus": ["pending", "in_progress", "synced", "failed"]}


def test_schema_prints_ddl_without_foreign_keys(source_db: SourceDb, target_db: TargetDb) -> None:
    result = run_cli("schema", env=wacdc_env(source_db, target_db))
    assert result.code == 0, result.output
    assert result.stdout.count("CREATE TABLE") == 19
    assert 'CONSTRAINT "WhatsAppMessage_pkey" PRIMARY KEY ("id")' in result.stdout
    assert "REFERENCES" not in result.stdout and "FOREIGN KEY" not in result.stdout
    no_indexes = run_cli("schema", "--no-indexes", env=wacdc_env(source_db, target_db))
    assert "CREATE INDEX" not in no_indexes.stdout and "CREATE TABLE" in no_indexes.stdout


def test_plain_profile_keeps_lengths_and_adds_missing_columns(empty_source_db: SourceDb,
                                                              target_db: TargetDb) -> None:
    empty_source_db.execute(
        "CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, big BIGINT UNSIGNED, "
        "code CHAR(8) NOT NULL DEFAULT 'x''y', kind ENUM('a','b') DEFAULT 'b', "
        "price DECIMAL(12,3) DEFAULT 1.5, at DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6), "
        "flags SET('p','q') DEFAULT 'p,q', KEY by_code (code), UNIQUE KEY uq (kind, code))")
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain")
    assert run_cli("schema", "--apply", env=env).code == 0
    with target_db.connect() as pg:
        cols = {r[0]: r[1:] for r in pg.execute(
            "SELECT column_name, format_type(atttypid, atttypmod), attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid), attidentity FROM pg_attribute a "
            "JOIN information_schema.columns c ON c.column_name = a.attname "
            "AND c.table_name = 'items' LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
            "AND d.adnum = a.attnum WHERE a.attrelid = 'public.items'::regclass "
            "AND a.attnum > 0").fetchall()}
        indexes = {r[0] for r in pg.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'items'").fetchall()}
    assert cols["id"] == ("bigint", True, None, "d")
    assert cols["big"] == ("numeric(20,0)", False, None, "")
    assert cols["code"] == ("character varying(8)", True, "'x''y'::character varying", "")
    assert cols["kind"][:3] == ("text", False, "'b'::text")
    assert cols["price"][:3] == ("numeric(12,3)", False, "1.500")
    assert cols["at"][:3] == ("timestamp(6) without time zone", False, "CURRENT_TIMESTAMP(6)")
    assert cols["flags"][:3] == ("text[]", False, "ARRAY['p'::text, 'q'::text]")
    assert indexes == {"items_pkey", "items_by_code", "items_uq"}

    # The source grows a column: a second apply adds it and says so.
    empty_source_db.execute("ALTER TABLE items ADD COLUMN note TEXT")
    again = run_cli("schema", "--apply", env=env)
    assert again.code == 0 and "added column items.note" in again.stdout


def test_conflicting_existing_table_is_an_error(empty_source_db: SourceDb,
                                                target_db: TargetDb) -> None:
    empty_source_db.execute("CREATE TABLE things (id INT PRIMARY KEY, v INT)")
    with target_db.connect() as pg:
        pg.execute("CREATE TABLE things (id integer PRIMARY KEY, v text)")
    result = run_cli("schema", "--apply", env=wacdc_env(empty_source_db, target_db,
                                                        WACDC_PROFILE="plain"))
    assert result.code == 2
    assert "things.v is text, the profile wants integer" in result.stderr


@pytest.mark.parametrize("tables", ["keyless", "ghost"])
def test_schema_refuses_keyless_or_missing_tables(tables: str, empty_source_db: SourceDb,
                                                  target_db: TargetDb) -> None:
    empty_source_db.execute("CREATE TABLE keyless (a INT)")
    result = run_cli("schema", env=wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain",
                                             WACDC_TABLES=tables))
    assert result.code == 2
    assert tables in result.stderr


def test_prefix_fulltext_and_generated_columns(empty_source_db: SourceDb,
                                               target_db: TargetDb) -> None:
    from tests.support.roundtrip import Roundtrip

    empty_source_db.execute(
        "CREATE TABLE docs (id INT PRIMARY KEY, code VARCHAR(40), body TEXT, "
        "doubled INT AS (id * 2) VIRTUAL, label VARCHAR(50) AS (CONCAT('doc-', id)) STORED, "
        "KEY by_body (body(10)), UNIQUE KEY by_code (code(4)), FULLTEXT KEY ft (body))")
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain")
    printed = run_cli("schema", env=env)
    assert "-- skipped FULLTEXT index docs.ft (body)" in printed.stdout
    assert 'CREATE INDEX "docs_by_body" ON "public"."docs" ((left("body", 10)))' in printed.stdout
    rt = Roundtrip(empty_source_db, target_db, ["docs"])
    start = rt.position()
    long_body = "x" * 9000  # a full-column btree index would refuse this row
    empty_source_db.execute(f"INSERT INTO docs (id, code, body) VALUES (1, 'abcd-1', "
                            f"'{long_body}'), (2, 'zzzz', 'short')")
    rt.snapshot("docs")
    rt.stream(start)
    expected = [(1, "abcd-1", long_body, 2, "doc-1"), (2, "zzzz", "short", 4, "doc-2")]
    assert rt.read_back("snap", "docs") == expected
    assert rt.read_back("binl", "docs") == expected
    with target_db.connect() as pg:
        unique = pg.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'snap' "
                            "AND indexname = 'docs_by_code'").fetchone()[0]
    assert "UNIQUE" in unique and '"left"((code)::text, 4)' in unique
