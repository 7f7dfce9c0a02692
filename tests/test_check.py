"""`wacdc check` against real servers: passes when ready, names every problem otherwise."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.support.harness import (
    SourceDb,
    TargetDb,
    limited_user,
    mysql_connect,
    run_cli,
    wacdc_env,
)


def _set_global(db: SourceDb, name: str, value: str) -> None:
    with mysql_connect(db.server.url(""), database="") as conn, conn.cursor() as cur:
        cur.execute(f"SET GLOBAL {name} = {value}")


@contextlib.contextmanager
def _global(db: SourceDb, name: str, value: str, restore: str) -> Iterator[None]:
    """A global setting for the block. The server is shared by the whole session: it is
    put back (and MySQL's SET PERSIST by `check --fix` forgotten) even when the test fails."""
    _set_global(db, name, value)
    try:
        yield
    finally:
        _set_global(db, name, restore)
        if db.server.flavour == "mysql":
            with mysql_connect(db.server.url(""), database="") as conn, \
                    conn.cursor() as cur:
                cur.execute(f"RESET PERSIST IF EXISTS {name}")


def test_check_passes_on_a_ready_source(source_db: SourceDb, target_db: TargetDb) -> None:
    result = run_cli("check", env=wacdc_env(source_db, target_db))
    assert result.code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln[:1] in ("o", "w", "P")]
    assert not [ln for ln in lines if ln.startswith("PROBLEM")]
    for name in ("source reachable", "binlog_row_metadata", "binlog_format", "privileges",
                 "server_id", "tables", "target reachable", "target privileges"):
        assert any(name in ln and ln.startswith("ok") for ln in lines), (name, result.stdout)
    assert "19 tables" in result.stdout
    assert "all checks passed" in result.stdout


def test_minimal_metadata_is_a_finding_and_fix_clears_it(source_db: SourceDb,
                                                         target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db)
    with _global(source_db, "binlog_row_metadata", "'MINIMAL'", "'FULL'"):
        result = run_cli("check", env=env)
        assert result.code == 1, result.output
        problem = [ln for ln in result.stdout.splitlines() if ln.startswith("PROBLEM")]
        assert len(problem) == 1 and "binlog_row_metadata" in problem[0], result.stdout
        assert "MINIMAL" in problem[0]

        fixed = run_cli("check", "--fix", env=env)
        assert fixed.code == 0, fixed.output
        # MySQL keeps it across restarts; MariaDB has no SET PERSIST (the note says my.cnf).
        verb = "SET GLOBAL" if source_db.server.is_mariadb else "SET PERSIST"
        assert f"changed {verb} binlog_row_metadata = FULL (was MINIMAL)" in fixed.stdout
        assert run_cli("check", env=env).code == 0
        if not source_db.server.is_mariadb:
            with source_db.connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT VARIABLE_VALUE FROM performance_schema.persisted_variables"
                            " WHERE VARIABLE_NAME = 'binlog_row_metadata'")
                assert cur.fetchone() == ("FULL",)


def test_row_image_and_compression_findings(source_db: SourceDb, target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db)
    # Compressed binlogs are read on both flavours: reported, never a problem.
    compression = "log_bin_compress" if source_db.server.is_mariadb \
        else "binlog_transaction_compression"
    with _global(source_db, "binlog_row_image", "'MINIMAL'", "'FULL'"), \
            _global(source_db, compression, "ON", "OFF"):
        result = run_cli("check", env=env)
        assert result.code == 1
        problems = "\n".join(ln for ln in result.stdout.splitlines()
                             if ln.startswith("PROBLEM"))
        assert "binlog_row_image" in problems and compression not in problems, result.stdout
        assert any(ln.startswith("ok") and compression in ln and "ON (compressed "
                   in ln and "decompressed and replicated" in ln
                   for ln in result.stdout.splitlines()), result.stdout
        assert run_cli("check", "--fix", env=env).code == 0


def test_table_without_primary_key_is_named(empty_source_db: SourceDb,
                                            target_db: TargetDb) -> None:
    empty_source_db.execute(
        "CREATE TABLE keyed (id INT PRIMARY KEY, v TEXT)",
        "CREATE TABLE loose_rows (a INT, b TEXT)",
        "CREATE TABLE unique_keyed (code VARCHAR(10) NOT NULL, UNIQUE KEY (code))",
    )
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain")
    result = run_cli("check", env=env)
    assert result.code == 1, result.output
    problems = [ln for ln in result.stdout.splitlines() if ln.startswith("PROBLEM")]
    assert len(problems) == 1, result.stdout
    assert "table loose_rows" in problems[0] and "no primary key" in problems[0]
    # The same tables without the keyless one pass: a NOT NULL unique key is enough.
    env["WACDC_TABLES"] = "keyed,unique_keyed"
    assert run_cli("check", env=env).code == 0


def test_a_non_transactional_table_is_named_with_a_warning(empty_source_db: SourceDb,
                                            target_db: TargetDb) -> None:
    empty_source_db.execute("CREATE TABLE ledger (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB",
                            "CREATE TABLE hits (id INT PRIMARY KEY, n INT) ENGINE=MyISAM")
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain")
    result = run_cli("check", env=env)
    assert result.code == 0, result.output  # replicated exactly: a warning, not a problem
    warned = [ln for ln in result.stdout.splitlines() if ln.startswith("warn")
              and "table " in ln]
    assert len(warned) == 1, result.stdout
    assert "table hits" in warned[0] and "MyISAM engine" in warned[0]
    assert "ALTER TABLE `hits` ENGINE=InnoDB" in result.stdout
    env["WACDC_TABLES"] = "ledger"
    assert "MyISAM" not in run_cli("check", env=env).stdout


def test_missing_table_is_named(empty_source_db: SourceDb, target_db: TargetDb) -> None:
    env = wacdc_env(empty_source_db, target_db, WACDC_TABLES="WhatsAppMessage,Nope")
    result = run_cli("check", env=env)
    assert result.code == 1
    assert "table WhatsAppMessage: does not exist" in result.stdout
    assert "table Nope: does not exist" in result.stdout


def test_missing_privilege_is_reported(source_db: SourceDb, target_db: TargetDb) -> None:
    with limited_user(source_db, "lim", ["SELECT, LOCK TABLES ON `{db}`.*",
                                         "REPLICATION CLIENT ON *.*"]) as url:
        result = run_cli("check", env=wacdc_env(url, target_db))
        assert result.code == 1, result.output
        problem = [ln for ln in result.stdout.splitlines()
                   if ln.startswith("PROBLEM") and "privileges" in ln]
        assert problem and "REPLICATION SLAVE" in problem[0], result.stdout
        assert "SELECT" not in problem[0].split("missing", 1)[1]
        assert "Sekr3t-pw" not in result.output


@pytest.mark.parametrize("source_url, expected", [
    ("mysql://app:Hunter2-secret@127.0.0.1:notaport/db", "WACDC_SOURCE_URL"),
    ("postgres://app:Hunter2-secret@127.0.0.1:3306/db", "WACDC_SOURCE_URL: scheme"),
    ("mysql://app:Hunter2-secret@127.0.0.1:1/db", "cannot connect to the source"),
])
def test_bad_or_unreachable_source_is_one_line_exit_2(source_url: str, expected: str,
                                                       target_db: TargetDb) -> None:
    result = run_cli("check", env=wacdc_env(source_url, target_db))
    assert result.code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr
    assert "Hunter2-secret" not in result.output


def test_unreachable_target_is_one_line_exit_2(source_db: SourceDb) -> None:
    result = run_cli("check", env=wacdc_env(
        source_db, "postgresql://app:Hunter2-secret@127.0.0.1:1/db"))
    assert result.code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cannot connect to the target postgresql://app:***@127.0.0.1:1/db" in result.stderr
    assert "Hunter2-secret" not in result.output


def test_missing_source_url_names_the_variable(target_db: TargetDb) -> None:
    result = run_cli("check", env=wacdc_env(None, target_db))
    assert result.code == 2
    assert "WACDC_SOURCE_URL (or DATABASE_URL) is not set" in result.stderr


def test_unsupported_column_type_is_named(empty_source_db: SourceDb,
                                          target_db: TargetDb) -> None:
    empty_source_db.execute("CREATE TABLE places (id INT PRIMARY KEY, spot POINT)")
    result = run_cli("check", env=wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain"))
    assert result.code == 1
    assert "column spot has unsupported type point" in result.stdout
    schema = run_cli("schema", env=wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain"))
    assert schema.code == 2 and "places.spot" in schema.stderr
