"""WHATSAPP_DB_POOL_MIN/MAX/IDLE_TIMEOUT size the daemon's control-plane connections."""

from __future__ import annotations

import time
import urllib.request
from contextlib import ExitStack

import pytest

from tests.support.daemon import daemon
from tests.support.harness import SourceDb, TargetDb, wacdc_env
from wacdc.config import load_settings
from wacdc.errors import ConnectError
from wacdc.sink.pool import APPLICATION_NAME, TargetPool


def _pooled(target: TargetDb) -> int:
    with target.connect() as pg:
        return pg.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                          "AND datname = current_database()", (APPLICATION_NAME,)).fetchone()[0]


def _wait_for(what: str, condition, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {timeout}s"
        time.sleep(0.05)


def test_the_pool_keeps_min_opens_up_to_max_and_closes_idle_ones(
        target_db: TargetDb, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("WACDC_TARGET_URL", target_db.url), ("WHATSAPP_DB_POOL_MIN", "2"),
                        ("WHATSAPP_DB_POOL_MAX", "3"),
                        ("WHATSAPP_DB_POOL_IDLE_TIMEOUT", "1")):
        monkeypatch.setenv(name, value)
    pool = TargetPool(load_settings(), borrow_timeout=1.0)
    try:
        assert _pooled(target_db) == 0  # nothing opens before the first borrower
        with ExitStack() as stack:
            held = [stack.enter_context(pool.connection()) for _ in range(3)]
            assert [c.execute("SELECT 1").fetchone() for c in held] == [(1,)] * 3
            assert _pooled(target_db) == 3
            with pytest.raises(ConnectError, match="WHATSAPP_DB_POOL_MAX=3"), pool.connection():
                raise AssertionError("a fourth connection was lent")
            held[0].execute("SELECT set_config('wacdc.writer_epoch', '42', false)")
        # Back in the pool, the session setting a borrower made is gone.
        with pool.connection() as conn:
            assert conn.execute("SELECT current_setting('wacdc.writer_epoch', true)"
                                ).fetchone()[0] in (None, "")
            assert conn.execute("SHOW TimeZone").fetchone()[0] == "UTC"
        _wait_for("the idle connection above the minimum to close",
                  lambda: _pooled(target_db) == 2)
    finally:
        pool.close()
    _wait_for("the pool to close", lambda: _pooled(target_db) == 0)


def test_post_cutover_borrows_from_the_pool(source_db: SourceDb, target_db: TargetDb) -> None:
    # WACDC_FENCE=none: after the cutover the daemon follows on (and its pool stays).
    env = wacdc_env(source_db, target_db, WACDC_TABLES="WhatsAppCustomer",
                    WACDC_ADMIN_TOKEN="pool-token-1", WHATSAPP_DB_POOL_MIN="2",
                    WACDC_FENCE="none")
    with daemon(env) as d:
        assert _pooled(target_db) == 0
        request = urllib.request.Request(f"http://127.0.0.1:{d.port}/cutover", method="POST",
                                         headers={"Authorization": "Bearer pool-token-1"})
        with urllib.request.urlopen(request, timeout=15) as answer:
            assert answer.status == 202
        d.wait_for("the cutover", lambda: d.status()["phase"] == "done", timeout=120)
        # At least the minimum stays open (a borrower that came first may have grown it,
        # never past WHATSAPP_DB_POOL_MAX, default 4).
        _wait_for("the pool's minimum", lambda: _pooled(target_db) >= 2)
        assert _pooled(target_db) <= 4
