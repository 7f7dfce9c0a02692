"""Source column defaults on the target: exact, or no default and a note (both flavours).

Every shape is created in the source, `wacdc schema --apply` builds the target, then one
row that omits every column is inserted on both sides and the two rows are compared as
text, read independently of wacdc's converters (the source with CAST(... AS CHAR), HEX,
BIN; PostgreSQL with ::text), through the small explicit normalisations below.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal

from tests.support.flavours import only_on
from tests.support.harness import CliResult, SourceDb, TargetDb, run_cli, wacdc_env

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RECENT_S = 300  # the two inserts and the clock read happen within seconds


@dataclass(frozen=True)
class Shape:
    name: str
    ddl: str  # the column definition after its name
    expect: str = "same"  # how the PostgreSQL value relates to the source's: see _mismatch
    noted: bool = False  # `schema` must print a note for this column


# Shapes both MariaDB 10.11 and MySQL 9 accept (sql_mode '' for the zero dates).
SHAPES = [
    Shape("s", "VARCHAR(60) DEFAULT 'it''s a \\\\ back\\\\slash \"q\" é ☃ 😀'"),
    Shape("lines", "VARCHAR(20) DEFAULT 'two\\nlines\\ttab'"),
    Shape("ch", "CHAR(6) DEFAULT 'ab'"),
    Shape("empty", "VARCHAR(5) DEFAULT ''"),
    Shape("null_word", "VARCHAR(5) DEFAULT 'NULL'"),
    Shape("no_default", "VARCHAR(5) DEFAULT NULL"),
    Shape("e", "ENUM('a','b''c') DEFAULT 'b''c'"),
    Shape("st", "SET('x','y','z') DEFAULT 'x,z'", "set"),
    Shape("bits", "BIT(5) DEFAULT b'101'", "bits:5"),
    Shape("bit1", "BIT(1) DEFAULT b'1'", "bool"),
    Shape("vb", "VARBINARY(4) DEFAULT 0x00ff41", "hex"),
    Shape("bn", "BINARY(3) DEFAULT 'ab'", "hex"),
    Shape("dec", "DECIMAL(10,3) DEFAULT -1.5", "number"),
    Shape("dbl", "DOUBLE DEFAULT -2.5e-3", "number"),
    Shape("flt", "FLOAT DEFAULT 1.1"),
    Shape("neg", "INT DEFAULT -7"),
    Shape("ubig", "BIGINT UNSIGNED DEFAULT 18446744073709551615"),
    Shape("flag", "TINYINT(1) DEFAULT 1", "bool"),
    Shape("flag0", "TINYINT(1) NOT NULL DEFAULT 0", "bool"),
    Shape("tm", "TIME DEFAULT '-12:00:00'"),
    Shape("tm_big", "TIME(2) DEFAULT '100:00:00.25'"),
    Shape("yr", "YEAR DEFAULT 2024"),
    Shape("d", "DATE DEFAULT '2024-02-29'"),
    Shape("dtl", "DATETIME(3) DEFAULT '2024-01-31 10:20:30.125'"),
    # Created in a +05:00 session: MySQL's information_schema then shows 10:20:30, the
    # instant is 05:20:30 UTC.
    Shape("tsl", "TIMESTAMP NULL DEFAULT '2024-01-31 10:20:30'", "utc"),
    Shape("zero_n", "DATETIME NULL DEFAULT '0000-00-00 00:00:00'", "zero_null", True),
    Shape("zero_nn", "DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00'", "zero_min", True),
    Shape("zero_date", "DATE DEFAULT '0000-00-00'", "zero_null", True),
    Shape("zero_ts", "TIMESTAMP NOT NULL DEFAULT '0000-00-00 00:00:00'", "zero_min", True),
    Shape("ct", "DATETIME DEFAULT current_timestamp()", "recent"),
    Shape("ct3", "DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3)", "recent"),
    Shape("upd", "TIMESTAMP NULL DEFAULT now() ON UPDATE now()", "recent", True),
    Shape("upd6", "TIMESTAMP(6) NULL DEFAULT CURRENT_TIMESTAMP(6) "
          "ON UPDATE CURRENT_TIMESTAMP(6)", "recent", True),
    # Expression defaults: MariaDB 10.2+, MySQL 8.0.13+.
    Shape("x_uuid", "VARCHAR(36) DEFAULT (uuid())", "uuid"),
    Shape("x_ja", "JSON DEFAULT (json_array())", "json"),
    Shape("x_jo", "JSON DEFAULT (json_object('k', 'v''q', 'n', 1.5, 'a', json_array(1, "
          "null)))", "json"),
    Shape("x_tomorrow", "DATETIME DEFAULT (now() + interval 1 day)", "tomorrow"),
    Shape("x_date", "DATE DEFAULT (curdate())", "today"),
    Shape("x_num", "INT DEFAULT (1 + 2 * 3)"),
    Shape("x_neg", "INT DEFAULT (-5)"),
    Shape("x_str", "VARCHAR(20) DEFAULT ('it''s ☃')"),
    Shape("x_concat", "VARCHAR(10) DEFAULT (concat('a', 'b'))"),
    Shape("x_text", "TEXT DEFAULT ('hello')"),
    Shape("x_blob", "BLOB DEFAULT (0x41ff)", "hex"),
    Shape("x_rand", "DOUBLE DEFAULT (rand())", "dropped", True),
    Shape("x_col", "INT DEFAULT (id * 2)", "dropped", True),
]

# MariaDB only: its unparenthesised function defaults and literal JSON defaults.
MARIADB_SHAPES = [
    Shape("m_uuid", "VARCHAR(36) DEFAULT uuid()", "uuid"),
    Shape("m_now", "DATETIME DEFAULT now()", "recent"),
    Shape("m_json", "JSON DEFAULT '[1, \"a\", {\"k\": null}]'", "json"),
    Shape("m_checked", "LONGTEXT DEFAULT '{\"k\": \"v\"}' CHECK (json_valid(m_checked))",
          "json"),
    Shape("m_text", "TEXT DEFAULT 'plain'"),
    Shape("m_blob", "BLOB DEFAULT 'b\\0y'", "hex"),
]


def _create(db: SourceDb, shapes: list[Shape]) -> None:
    columns = ", ".join(f"`{s.name}` {s.ddl}" for s in shapes)
    db.execute("SET SESSION sql_mode = ''", "SET time_zone = '+05:00'",
               f"CREATE TABLE shapes (id INT PRIMARY KEY, {columns})")


def _ok(result: CliResult) -> CliResult:
    assert result.code == 0, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    return result


def _source_row(db: SourceDb, shapes: list[Shape]) -> dict[str, str | None]:
    def read(shape: Shape) -> str:
        if shape.expect == "hex":
            return f"HEX(`{shape.name}`)"
        if shape.expect.startswith("bits") or shape.name == "bit1":
            return f"BIN(`{shape.name}`)"
        return f"CAST(`{shape.name}` AS CHAR)"

    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("INSERT INTO shapes (id) VALUES (1)")
        cur.execute(f"SELECT {', '.join(map(read, shapes))} FROM shapes WHERE id = 1")
        row = cur.fetchone()
    return {s.name: v for s, v in zip(shapes, row, strict=True)}


def _target_row(target: TargetDb, shapes: list[Shape]) -> dict[str, str | None]:
    def read(shape: Shape) -> str:
        if shape.expect == "hex":
            return f'encode("{shape.name}", \'hex\')'
        return f'"{shape.name}"::text'

    with target.connect() as pg:
        pg.execute("SET TimeZone = 'UTC'")
        pg.execute("INSERT INTO public.shapes (id) VALUES (1)")
        row = pg.execute(f"SELECT {', '.join(map(read, shapes))} FROM public.shapes "
                         "WHERE id = 1").fetchone()
    assert row is not None
    return {s.name: v for s, v in zip(shapes, row, strict=True)}


def _moment(text: str) -> dt.datetime:
    text = text.removesuffix("+00")
    return dt.datetime.fromisoformat(text if " " in text else text + " 00:00:00")


def _mismatch(shape: Shape, source: str | None, target: str | None) -> str | None:
    """Why the PostgreSQL value is not the source's, or None when it is."""
    expect = shape.expect
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if expect == "dropped":
        return None if source is not None and target is None else "expected no PG default"
    if expect == "zero_null":
        return None if source and source.startswith("0000") and target is None else "zero"
    if expect == "zero_min":
        ok = source and source.startswith("0000") and target is not None and \
            target.removesuffix("+00") in ("0001-01-01 00:00:00", "0001-01-01")
        return None if ok else "zero date in a NOT NULL column: expected 0001-01-01"
    if expect == "same":
        return None if source == target else "differs"
    if source is None or target is None:
        return "one side is NULL"
    if expect == "number":
        return None if Decimal(source) == Decimal(target) else "differs"
    if expect == "bool":
        return None if {"1": "true", "0": "false"}.get(source) == target else "differs"
    if expect.startswith("bits:"):
        return None if source.zfill(int(expect[5:])) == target else "differs"
    if expect == "hex":
        return None if source.lower() == target.lower() else "differs"
    if expect == "set":
        return None if "{" + source + "}" == target else "differs"
    if expect == "json":
        return None if json.loads(source) == json.loads(target) else "differs"
    if expect == "utc":
        return None if source == target.removesuffix("+00") else "differs"
    if expect == "uuid":
        both = UUID.fullmatch(source) and UUID.fullmatch(target)
        return None if both and source != target else "not two distinct UUIDs"
    if expect in ("recent", "tomorrow"):
        want = now + dt.timedelta(days=1 if expect == "tomorrow" else 0)
        far = [t for t in (source, target)
               if abs((_moment(t) - want).total_seconds()) > RECENT_S]
        return None if not far else f"not near {want}"
    if expect == "today":
        days = {abs((_moment(t).date() - now.date()).days) for t in (source, target)}
        return None if days <= {0, 1} else "not today"
    raise AssertionError(f"unknown expectation {expect}")


def _compare(source_db: SourceDb, target_db: TargetDb, shapes: list[Shape]) -> None:
    source = _source_row(source_db, shapes)
    target = _target_row(target_db, shapes)
    problems = []
    for shape in shapes:
        why = _mismatch(shape, source[shape.name], target[shape.name])
        if why:
            problems.append(f"{shape.name} ({shape.ddl}): source {source[shape.name]!r}, "
                            f"PostgreSQL {target[shape.name]!r}: {why}")
    assert not problems, "\n".join(problems)


def _noted(output: str, prefix: str) -> set[str]:
    return {m.group(1) for m in re.finditer(rf"^{re.escape(prefix)}shapes\.(\w+): ", output,
                                            re.M)}


def _run_all(source_db: SourceDb, target_db: TargetDb, shapes: list[Shape]) -> str:
    env = wacdc_env(source_db, target_db, WACDC_PROFILE="plain")
    expected_notes = {s.name for s in shapes if s.noted}

    # The printed DDL is valid SQL, notes included (as comments), in a scratch schema.
    printed = _ok(run_cli("schema", env={**env, "WACDC_TARGET_SCHEMA": "printed"}))
    assert _noted(printed.stdout, "-- note: ") == expected_notes, printed.stdout
    with target_db.connect() as pg:
        pg.execute(printed.stdout)  # type: ignore[arg-type]

    applied = _ok(run_cli("schema", "--apply", env=env))
    assert "created table shapes" in applied.stdout
    assert _noted(applied.stdout, "note: ") == expected_notes, applied.stdout
    again = _ok(run_cli("schema", "--apply", env=env))
    assert "nothing to change" in again.stdout
    assert _noted(again.stdout, "note: ") == expected_notes

    checked = _ok(run_cli("check", env=env))
    warned = {m.group(1) for m in re.finditer(r"^warn\s+column shapes\.(\w+): ",
                                              checked.stdout, re.M)}
    assert warned == expected_notes, checked.stdout
    assert "PROBLEM" not in checked.stdout

    _compare(source_db, target_db, shapes)
    return printed.stdout


def test_every_default_shape_is_exact_or_noted(empty_source_db: SourceDb,
                                               target_db: TargetDb) -> None:
    _create(empty_source_db, SHAPES)
    printed = _run_all(empty_source_db, target_db, SHAPES)

    notes = dict(re.findall(r"^-- note: shapes\.(\w+): (.*)$", printed, re.M))
    assert notes["zero_n"].startswith("zero date default dropped; PostgreSQL has no zero "
                                      "date; the bad-value policy maps such values to NULL")
    assert "NOT NULL column becomes '0001-01-01 00:00:00'" in notes["zero_nn"]
    assert "inserts after cutover that omit the column keep working" in notes["zero_nn"]
    assert notes["upd"].startswith("ON UPDATE ") and "BEFORE UPDATE trigger" in notes["upd"]
    assert notes["x_rand"].startswith("expression default rand()")
    assert "no default in PostgreSQL: inserts after cutover that omit the column get NULL" \
        in notes["x_rand"]
    assert "refers to another column" in notes["x_col"]
    # The two shapes that used to crash `schema --apply`:
    assert "CURRENT_TIMESTAMP()" not in printed
    assert '"zero_n" timestamp(0) without time zone,' in printed


def test_a_column_added_later_gets_its_default(empty_source_db: SourceDb,
                                               target_db: TargetDb) -> None:
    empty_source_db.execute("CREATE TABLE shapes (id INT PRIMARY KEY)")
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain")
    _ok(run_cli("schema", "--apply", env=env))
    empty_source_db.execute(
        "SET SESSION sql_mode = ''",
        "ALTER TABLE shapes ADD COLUMN later DATETIME DEFAULT current_timestamp(), "
        "ADD COLUMN zero DATE NOT NULL DEFAULT '0000-00-00'")
    added = _ok(run_cli("schema", "--apply", env=env))
    assert "added column shapes.later" in added.stdout
    assert "note: shapes.zero: zero date default '0000-00-00' on a NOT NULL column " \
           "becomes '0001-01-01'" in added.stdout
    _compare(empty_source_db, target_db,
             [Shape("later", "", "recent"), Shape("zero", "", "zero_min")])


def test_mariadb_unparenthesised_and_json_literal_defaults(empty_source_db: SourceDb,
                                                          target_db: TargetDb) -> None:
    only_on(empty_source_db.server, "mariadb",
            "MySQL needs parentheses around function defaults and has no literal JSON default")
    _create(empty_source_db, MARIADB_SHAPES)
    _run_all(empty_source_db, target_db, MARIADB_SHAPES)


def test_zero_date_default_is_a_problem_under_strict_bad_values(empty_source_db: SourceDb,
                                                                target_db: TargetDb) -> None:
    empty_source_db.execute(
        "SET SESSION sql_mode = ''",
        "CREATE TABLE shapes (id INT PRIMARY KEY, at DATETIME DEFAULT '0000-00-00 00:00:00', "
        "n INT DEFAULT (rand()))")
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain")
    coerce = _ok(run_cli("check", env=env))
    assert re.search(r"^warn\s+column shapes\.at: zero date default dropped", coerce.stdout,
                     re.M), coerce.stdout
    strict = run_cli("check", env={**env, "WACDC_BAD_VALUES": "strict"})
    assert strict.code == 1, strict.output
    assert re.search(r"^PROBLEM column shapes\.at: .*WACDC_BAD_VALUES=strict", strict.stdout,
                     re.M), strict.stdout
    assert re.search(r"^warn\s+column shapes\.n: expression default", strict.stdout, re.M)
