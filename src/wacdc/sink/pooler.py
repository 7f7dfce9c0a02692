"""Is the target a connection pooler (PgBouncer, Supavisor, pgcat, RDS Proxy, ...)?

wacdc needs one PostgreSQL session that stays its own: the replication lock is a session
advisory lock, the batched apply uses temporary tables, a snapshot chunk is one long
transaction. A transaction-mode pooler hands each transaction to whichever server
connection is free, so none of that holds (the lock is taken on one backend and the
next statement runs on another). `wacdc check` reports it; the daemon should refuse it.

The checks, cheapest first, none of which can fire on a direct session:

1. **Transaction pooling, seen.** Two client connections: the first holds a transaction
   open (pinning its server connection), the second runs one transaction, then the
   first commits and the second runs another. On a direct session
   `pg_backend_pid()` is the same in both of the second's transactions, always. Behind
   a transaction pooler the second transaction usually lands on the server connection
   the first one just released (PgBouncer reuses the most recently freed one), and the
   pid changes: proof.
2. **A proxy that speaks for the server.** The backend pid the connection announced at
   startup (BackendKeyData, `conn.info.backend_pid`) is not `pg_backend_pid()`:
   something between wacdc and PostgreSQL terminates the protocol and issues its own
   cancel keys. Every pooler does; so do some proxies that are not poolers (Neon's).
   Reported as a warning: it may be a session pooler (fine) or a transaction pooler
   that did not show itself in check 1.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from wacdc.config import DatabaseUrl, Settings
from wacdc.errors import ConfigError
from wacdc.log import get_logger
from wacdc.sink.connection import connect_target
from wacdc.sink.hints import DIRECT_URL_FIX, pooler_hint

log = get_logger("wacdc.daemon")

__all__ = ["DIRECT_URL_FIX", "PoolerVerdict", "pooler_hint", "probe_pooler"]


@dataclass(frozen=True)
class PoolerVerdict:
    """What the probe saw. `transaction_pooling`: proven; `proxied`: a middleman."""

    announced_pid: int
    backend_pid: int
    pids_of_one_session: tuple[int, ...]  # pg_backend_pid() per transaction, one client

    @property
    def transaction_pooling(self) -> bool:
        return len(set(self.pids_of_one_session)) > 1

    @property
    def proxied(self) -> bool:
        return self.announced_pid != self.backend_pid

    @property
    def direct(self) -> bool:
        return not (self.transaction_pooling or self.proxied)

    def describe(self) -> str:
        if self.transaction_pooling and -1 in self.pids_of_one_session:
            return ("a transaction-mode pooler with a single server connection: one "
                    "connection's transaction waited for another connection's")
        if self.transaction_pooling:
            pids = ", ".join(str(p) for p in self.pids_of_one_session)
            return (f"a transaction-mode pooler: one connection ran its transactions on "
                    f"different PostgreSQL backends (pg_backend_pid {pids})")
        if self.proxied:
            return (f"a pooler or proxy answers for PostgreSQL: the connection announced "
                    f"backend pid {self.announced_pid}, the server says {self.backend_pid}")
        return f"direct session (backend pid {self.backend_pid})"


def _backend_pid(conn: psycopg.Connection) -> int:
    with conn.transaction():
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def probe_pooler(conn: psycopg.Connection, url: DatabaseUrl,
                 connect: Callable[[DatabaseUrl], psycopg.Connection] | None = None,
                 wait_s: float = 5.0) -> PoolerVerdict:
    """Run the checks on `conn` (idle: no transaction open) with one more short connection
    to `url` (opened with `connect(url)`, default wacdc's connect_target, autocommit).
    Read-only, four tiny transactions: about a millisecond on a direct server.

    A pool of one server connection would make the second transaction wait for the
    pinned one forever: after `wait_s` the pinned connection is closed, which frees it;
    having waited at all proves the pooling (a direct session never waits for another)."""
    opener = connect or (lambda u: connect_target(u, autocommit=True))
    backend = _backend_pid(conn)
    announced = conn.info.backend_pid
    pinned = opener(url)
    pinned.autocommit = True
    guard = threading.Timer(wait_s, pinned.close)
    try:
        pinned.execute("BEGIN")
        pinned.execute("SELECT pg_backend_pid()").fetchone()  # holds a server connection
        guard.start()
        first = _backend_pid(conn)
        waited = not guard.is_alive() or pinned.closed
        with contextlib.suppress(psycopg.Error):
            pinned.execute("COMMIT")
        second = _backend_pid(conn)  # after the pinned one was released
    finally:
        guard.cancel()
        pinned.close()
    pids = (backend, first, second) if not waited else (backend, -1, second)
    return PoolerVerdict(announced_pid=announced, backend_pid=backend,
                         pids_of_one_session=pids)


def refuse_a_pooler(conn: psycopg.Connection, settings: Settings) -> None:
    """Through a transaction-mode pooler the advisory lock, session settings and the
    writer epoch do not hold: refuse it (exit 2) with the fix; warn about a proxy."""
    verdict = probe_pooler(conn, settings.target())
    if verdict.transaction_pooling:
        raise ConfigError(f"{settings.url_variable('target_url')}: {verdict.describe()}; "
                          f"{DIRECT_URL_FIX}")
    if verdict.proxied:
        log.warning("something between wacdc and PostgreSQL answers for it (a proxy or a "
                    "session-mode pooler); fine if it keeps one server session per "
                    "connection", detail=verdict.describe())
