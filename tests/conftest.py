"""Session-scoped private servers and per-test fresh databases (see tests/support/harness.py).

`mysql_server` is parametrized by source flavour: every test that uses a source runs on
MariaDB and on Oracle MySQL (ids `[mariadb]`, `[mysql]`). WACDC_TEST_FLAVOURS=mysql (or
mariadb) narrows a run. A flavour that cannot be started is a skip with the reason on a
developer machine, and a failure on CI (CI=true): CI must test both.

Tests marked `@pytest.mark.decoders("library", "process")` run once more per named decode
mode (ids `[...-library]`, `[...-process]`) besides the default compiled, in-thread one:
`library` has mysql-replication decode the row images (WACDC_DECODER=library), `process`
decodes in a child process (WACDC_DECODE_IN=process). WACDC_TEST_DECODERS=compiled (a
comma-separated list) narrows a run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.harness import (
    FLAVOURS,
    TEST_ENV,
    ServerHandle,
    SourceDb,
    SourceUnavailable,
    TargetDb,
    create_source_db,
    create_target_db,
    drop_source_db,
    drop_target_db,
    start_mysql,
    start_postgres,
)


def _flavours() -> list[str]:
    wanted = [f.strip() for f in os.environ.get("WACDC_TEST_FLAVOURS", ",".join(FLAVOURS))
              .split(",") if f.strip()]
    unknown = set(wanted) - set(FLAVOURS)
    if unknown:
        raise pytest.UsageError(f"WACDC_TEST_FLAVOURS: unknown {sorted(unknown)}; "
                                f"choose from {', '.join(FLAVOURS)}")
    return wanted


@pytest.fixture(scope="session", params=_flavours())
def mysql_server(request: pytest.FixtureRequest) -> Iterator[ServerHandle]:
    try:
        server = start_mysql(request.param)
    except SourceUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{request.param} source unavailable on CI: {exc}", pytrace=False)
        pytest.skip(f"{request.param} source unavailable: {exc}")
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


# --- decode modes: the streaming tests again with each way of decoding the binlog ---

DECODE_MODES: dict[str, dict[str, str]] = {
    "compiled": {},
    "library": {"WACDC_DECODER": "library"},
    "process": {"WACDC_DECODE_IN": "process"},
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("decoders")
    if marker is None:
        return
    unknown = set(marker.args) - set(DECODE_MODES)
    if unknown:
        raise pytest.UsageError(f"decoders marker: unknown {sorted(unknown)}")
    modes = ["compiled", *marker.args]
    wanted = os.environ.get("WACDC_TEST_DECODERS")
    if wanted:
        modes = [m for m in modes if m in {w.strip() for w in wanted.split(",")}]
    metafunc.fixturenames.append("decode_mode")
    metafunc.parametrize("decode_mode", modes, indirect=True)


@pytest.fixture
def decode_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The decode mode of this run of the test, in every `wacdc_env` it builds."""
    for key, value in DECODE_MODES[request.param].items():
        monkeypatch.setitem(TEST_ENV, key, value)
    return str(request.param)


# --- per-flavour counts in the summary: the MySQL run must be visible, not just summed ---

_FLAVOUR_OF: dict[str, str] = {}
_COUNTS: dict[str, dict[str, int]] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "mysql_server" in callspec.params:
            _FLAVOUR_OF[item.nodeid] = callspec.params["mysql_server"]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    flavour = _FLAVOUR_OF.get(report.nodeid)
    if flavour is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = "failed" if report.failed and report.when == "call" else \
            "error" if report.failed else report.outcome
        counts = _COUNTS.setdefault(flavour, {})
        counts[outcome] = counts.get(outcome, 0) + 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _COUNTS:
        return
    terminalreporter.section("real-server tests per source flavour")
    for flavour in FLAVOURS:
        counts = _COUNTS.get(flavour)
        if counts:
            text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
            terminalreporter.write_line(f"source flavour {flavour} ran: {text}")
