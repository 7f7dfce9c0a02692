"""The daemon's pool of short control-plane connections to the target.

`POST /cutover`, the scheduled materialized-view refresh and recording a failure each
need a connection for a moment; they borrow one from a psycopg-pool sized by
`WHATSAPP_DB_POOL_MIN` (kept open), `WHATSAPP_DB_POOL_MAX` (at most open; one more
borrower waits up to `BORROW_TIMEOUT_S`, then gets an error) and
`WHATSAPP_DB_POOL_IDLE_TIMEOUT` (an idle connection above the minimum is closed
after this long). The writers — apply, the snapshot's COPY, index builds — keep
dedicated connections: they carry the writer lock or its epoch (wacdc.sink.writer),
session state a pooled connection must not pass on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from wacdc.config import DatabaseUrl, Settings
from wacdc.errors import ConnectError
from wacdc.log import redact
from wacdc.sink.connection import TargetConnection, session_options

BORROW_TIMEOUT_S = 10.0
APPLICATION_NAME = "wacdc-pool"


class TargetPool:
    """Built and opened by its first borrower (a daemon without a target URL, or one that
    never borrows, opens nothing); closed with `close()`."""

    def __init__(self, settings: Settings, borrow_timeout: float = BORROW_TIMEOUT_S) -> None:
        self.settings, self.borrow_timeout = settings, borrow_timeout
        self._pool: ConnectionPool | None = None
        self._opening = threading.Lock()  # POST workers and the main loop borrow

    def _open(self) -> ConnectionPool:
        with self._opening:
            return self._pool or self._build()

    def _build(self) -> ConnectionPool:
        if self._pool is None:
            settings, url = self.settings, self.settings.target()
            self.url: DatabaseUrl = url
            timeout = {} if any(k == "connect_timeout" for k, _ in url.query) else {
                "connect_timeout": 10}
            self._pool = ConnectionPool(
                url.conninfo(), connection_class=TargetConnection,
                kwargs={"autocommit": True, **timeout,
                        **session_options(url, APPLICATION_NAME)},
                min_size=settings.pool_min,
                max_size=max(settings.pool_max, settings.pool_min),
                max_idle=settings.pool_idle_timeout, timeout=self.borrow_timeout,
                configure=self._configure, reset=self._reset, open=False,
                # an idle connection may have died (server restart, proxy idle drop)
                check=ConnectionPool.check_connection, name="wacdc-target")
            self._pool.open(wait=False)
        return self._pool

    def _configure(self, conn: psycopg.Connection) -> None:
        if isinstance(conn, TargetConnection):  # for the dead-connection watchdog: the
            # window its backend started in reaches back over the longest connect
            conn.identify(self.url, time.monotonic() - 10)

    @staticmethod
    def _reset(conn: psycopg.Connection) -> None:
        # Session settings a borrower made (a writer epoch it joined) do not pass on;
        # the startup options (TimeZone) are what RESET goes back to.
        conn.execute("RESET ALL")

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled autocommit connection; ConnectError (no password) when none comes."""
        pool = self._open()
        try:
            with pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise ConnectError(
                f"no connection to the target {self.url.redacted} within "
                f"{self.borrow_timeout:.0f}s from wacdc's pool (WHATSAPP_DB_POOL_MAX="
                f"{pool.max_size}, all busy or the server unreachable): "
                f"{redact(str(exc)).splitlines()[0]}", "target") from None

    def close(self) -> None:
        with self._opening:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
