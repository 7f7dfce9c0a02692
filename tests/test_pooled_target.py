"""Pooled target URLs: a real PgBouncer in front of the private PostgreSQL.

`pgbouncer=true` URLs are refused by the settings (tests/test_config.py); here a server
that answers as a pooler is found by `wacdc check` (wacdc.sink.pooler), and the seed's
ENABLE_POSTGRES_FULL_TEXT_SEARCH=false leaves the full-text index out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.support.harness import (
    EmbeddedHandle,
    ServerHandle,
    SourceDb,
    TargetDb,
    run_cli,
    wacdc_env,
)
from wacdc.config import parse_url
from wacdc.devtools.embedded import PgBouncerServer, PostgresServer, find_binary
from wacdc.sink.connection import connect_target
from wacdc.sink.pooler import probe_pooler

BouncerFactory = Callable[..., PgBouncerServer]


@pytest.fixture
def bouncer(pg_server: ServerHandle) -> Iterator[BouncerFactory]:
    """Start PgBouncers (any pool_mode) in front of the session's private PostgreSQL."""
    if not isinstance(pg_server, EmbeddedHandle) or \
            not isinstance(pg_server.server, PostgresServer):
        pytest.skip("needs the private PostgreSQL the tests start (unset WACDC_TEST_PG_URL)")
    if find_binary("pgbouncer") is None:
        why = "pgbouncer not installed (apt-get install pgbouncer)"
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    started: list[PgBouncerServer] = []

    def start(**options: object) -> PgBouncerServer:
        server = PgBouncerServer(pg_server.server, **options)  # type: ignore[arg-type]
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.cleanup()


def _line(output: str, name: str) -> str:
    found = [ln for ln in output.splitlines() if f"{name}:" in ln]
    assert found, (name, output)
    return found[0]


def test_a_direct_session_is_not_taken_for_a_pooler(target_db: TargetDb) -> None:
    url = parse_url(target_db.url, "postgresql")
    with connect_target(url, autocommit=True) as conn:
        verdict = probe_pooler(conn, url)
    assert verdict.direct and not verdict.transaction_pooling, verdict


def test_check_refuses_a_transaction_pooler(source_db: SourceDb, target_db: TargetDb,
                                            bouncer: BouncerFactory) -> None:
    pooled = bouncer(pool_mode="transaction").url(target_db.name)
    result = run_cli("check", env=wacdc_env(source_db, pooled))
    assert result.code == 1, result.output
    line = _line(result.stdout, "target pooler")
    assert line.startswith("PROBLEM") and "transaction-mode pooler" in line, line
    assert "POSTGRES_URL_NON_POOLING" in result.stdout
    # The direct URL of the same database passes.
    direct = run_cli("check", env=wacdc_env(source_db, target_db))
    assert direct.code == 0, direct.output
    assert "none: direct session" in _line(direct.stdout, "target pooler")


def test_run_refuses_a_transaction_pooler_before_it_writes(source_db: SourceDb,
                                                           target_db: TargetDb,
                                                           bouncer: BouncerFactory) -> None:
    pooled = bouncer(pool_mode="transaction").url(target_db.name)
    result = run_cli("run", "--snapshot-only", env=wacdc_env(source_db, pooled))
    assert result.code == 2, result.output
    assert "WACDC_TARGET_URL" in result.output and "transaction-mode pooler" in result.output
    with target_db.connect() as pg:  # refused before the writer lock: nothing written
        assert pg.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'wacdc'"
                          ).fetchone()[0] == 0


def test_a_pool_of_one_server_connection_is_found_too(target_db: TargetDb,
                                                      bouncer: BouncerFactory) -> None:
    """The probe's second transaction waits for the pinned one: it gives up after
    wait_s, and having waited proves the pooling."""
    url = parse_url(bouncer(pool_mode="transaction", pool_size=1).url(target_db.name),
                    "postgresql")
    with connect_target(url, autocommit=True) as conn:
        verdict = probe_pooler(conn, url, wait_s=1.0)
    assert verdict.transaction_pooling, verdict
    assert "single server connection" in verdict.describe()


def test_a_session_pooler_is_a_warning(source_db: SourceDb, target_db: TargetDb,
                                       bouncer: BouncerFactory) -> None:
    pooled = bouncer(pool_mode="session").url(target_db.name)
    result = run_cli("check", env=wacdc_env(source_db, pooled))
    assert result.code == 0, result.output
    line = _line(result.stdout, "target pooler")
    assert line.startswith("warn") and "pooler or proxy answers for PostgreSQL" in line, line


def test_pgbouncer_refusing_wacdc_startup_options_is_named(source_db: SourceDb,
                                                           target_db: TargetDb,
                                                           bouncer: BouncerFactory) -> None:
    pooled = bouncer(ignore_startup_parameters=("extra_float_digits",)).url(target_db.name)
    result = run_cli("check", env=wacdc_env(source_db, pooled))
    assert result.code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "unsupported startup parameter" in lines[0] and "looks like PgBouncer" in lines[0]


def test_pgbouncer_true_in_the_url_is_refused_before_connecting(source_db: SourceDb,
                                                                target_db: TargetDb) -> None:
    env = wacdc_env(source_db, None,
                    WHATSAPP_DATABASE_URL=f"{target_db.url}?pgbouncer=true&connection_limit=1")
    result = run_cli("check", env=env)
    assert result.code == 2, result.output
    assert "error: WHATSAPP_DATABASE_URL: pgbouncer=true" in result.stderr, result.stderr
    assert "use the direct URL" in result.stderr


def test_full_text_search_off_leaves_the_full_text_index_out(source_db: SourceDb,
                                                             target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, ENABLE_POSTGRES_FULL_TEXT_SEARCH="false")
    result = run_cli("schema", "--apply", "--extras", env=env)
    assert result.code == 0, result.output
    assert "extra WhatsAppCustomer_tags_gin_idx in place" in result.output
    assert "WhatsAppMessage_message_fts_idx" not in result.stdout
    with target_db.connect() as pg:
        names = {r[0] for r in pg.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'").fetchall()}
    assert "WhatsAppCustomer_tags_gin_idx" in names
    assert "WhatsAppMessage_message_fts_idx" not in names
