"""Session-scoped private servers and per-test fresh databases (see tests/harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import (
    ServerHandle,
    SourceDb,
    TargetDb,
    create_source_db,
    create_target_db,
    drop_source_db,
    drop_target_db,
    start_mysql,
    start_postgres,
)


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[ServerHandle]:
    server = start_mysql()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ServerHandle]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def source_db(mysql_server: ServerHandle) -> Iterator[SourceDb]:
    """A fresh source database with the 19 WhatsApp tables (empty)."""
    db = create_source_db(mysql_server)
    yield db
    drop_source_db(db)


@pytest.fixture
def empty_source_db(mysql_server: ServerHandle) -> Iterator[SourceDb]:
    db = create_source_db(mysql_server, ddl=None)
    yield db
    drop_source_db(db)


@pytest.fixture
def target_db(pg_server: ServerHandle) -> Iterator[TargetDb]:
    db = create_target_db(pg_server)
    yield db
    drop_target_db(db)


def require_control(server: ServerHandle) -> None:
    if not server.controllable:
        pytest.skip("needs servers started by the tests (unset WACDC_TEST_*_URL)")
