"""Connections to the PostgreSQL target, and how a dead one is found in seconds.

Two layers, because neither alone covers every half-open connection:

- TCP (libpq parameters): keepalives after `KEEPALIVES_IDLE_S` idle, every
  `KEEPALIVES_INTERVAL_S`, `KEEPALIVES_COUNT` unanswered ones end the connection
  (11 s); `tcp_user_timeout` ends it when sent data stays unacknowledged for
  `TCP_USER_TIMEOUT_MS` (10 s). They need the peer's kernel to go silent: a partition,
  a NAT that dropped its mapping, a host gone.
- The reply (`TargetConnection.wait`): a middlebox that lost its way but keeps its
  sockets (a hung TCP proxy) answers keepalives and acknowledges every byte, and a
  query sent into it waits forever. So a wait that lasts `FIRST_WAIT_S` (psycopg's own
  wait, in C, until then: no cost on the fast path) is watched from then on, and after
  `SILENT_PROBE_S` without socket activity it asks the server, over a second
  connection, what our backend is doing. Still working on our request (running,
  waiting for a lock: any state but idle or waiting for the client): a slow statement,
  and the wait goes on. A backend idle, waiting for us, or gone (twice, `CONFIRM_S`
  apart, still without a byte), or a server that cannot be reached within
  `PROBE_TIMEOUT_S`: the connection is dead; it is closed and `TargetDead` raised (a
  psycopg OperationalError: the daemon reconnects from its checkpoint). Worst case
  from the start of a wait on a dead connection to the error: `DEAD_BOUND_S` (10 s).

The dead connection's backend may live on in the server (the server's side of a hung
proxy looks healthy), holding what it held: the writer lock, row locks of a
transaction. It is terminated, identified by pid and start time: over the probe
connection when that works, else at the next successful `connect_target` to the same
target in this process.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.waiting import Ready

from wacdc.config import DatabaseUrl
from wacdc.errors import ConnectError
from wacdc.log import get_logger, redact
from wacdc.sink.hints import pooler_hint

log = get_logger(__name__)

KEEPALIVES_IDLE_S = 5
KEEPALIVES_INTERVAL_S = 2
KEEPALIVES_COUNT = 3
TCP_USER_TIMEOUT_MS = 10_000
FIRST_WAIT_S = 2.0  # a wait longer than this is watched from then on
SILENT_PROBE_S = 3.0  # ... and asks the server after this long without socket activity
PROBE_AFTER_S = FIRST_WAIT_S + SILENT_PROBE_S  # 5 s: the first probe of a wait on nothing
PROBE_TIMEOUT_S = 5.0  # the probe's connect and query, together
CONFIRM_S = 1.0  # a backend seen not working on our request is looked at again after this
DEAD_BOUND_S = PROBE_AFTER_S + max(PROBE_TIMEOUT_S, CONFIRM_S + 1.0)  # 10 s
_WAIT_INTERVAL_S = 0.1  # psycopg's: how often a wait wakes up to look around
# psycopg >= 3.3 bounds a wait (`timeout`, raising _WaitTimeout); 3.2 is watched throughout.
_WAIT_TIMEOUT = getattr(psycopg.errors, "_WaitTimeout", None) \
    if "timeout" in inspect.signature(psycopg.Connection.wait).parameters else None


class TargetDead(psycopg.OperationalError):
    """A dead or half-open connection to the target, found by the reply watchdog."""

    bound_s = DEAD_BOUND_S


@dataclass(frozen=True)
class _Backend:
    """Our server process, identified across connections: pid, and the window (in this
    process's monotonic clock) in which it started."""

    pid: int
    started_after: float
    started_before: float

    def where(self) -> tuple[sql.SQL, dict[str, float]]:
        """SQL condition on pg_stat_activity selecting exactly this backend (clock-skew
        free: the window is expressed as ages, with 2 s of margin)."""
        now = time.monotonic()
        return (sql.SQL("pid = %(pid)s AND backend_start BETWEEN "
                        "clock_timestamp() - make_interval(secs => %(oldest)s) AND "
                        "clock_timestamp() - make_interval(secs => %(youngest)s)"),
                {"pid": self.pid, "oldest": now - self.started_after + 2.0,
                 "youngest": now - self.started_before - 2.0})


class _Orphans:
    """The backends of this process's dead connections that are still to be terminated,
    per target (the next `connect_target` to it ends them). Process state on purpose: a
    dead connection's backend holds its locks until it is ended, whoever connects next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_target: dict[str, list[_Backend]] = {}

    def add(self, target: str, backends: list[_Backend]) -> None:
        with self._lock:
            self._by_target.setdefault(target, []).extend(backends)

    def take(self, target: str) -> list[_Backend]:
        with self._lock:
            return self._by_target.pop(target, [])


_ORPHANS = _Orphans()


def connect_target(url: DatabaseUrl, *, autocommit: bool = False,
                   connect_timeout: int | None = None) -> psycopg.Connection:
    """Open a UTC session on the target; ConnectError (one line, no password) when it fails.

    The connection has TCP keepalives, a TCP user timeout and the reply watchdog (see
    the module's docstring)."""
    started = time.monotonic()
    try:
        # The URL's own connect_timeout wins over the default (not over the caller's).
        timeout: dict[str, Any] = {} if connect_timeout is None and any(
            k == "connect_timeout" for k, _ in url.query) else {
            "connect_timeout": connect_timeout or 10}
        conn = TargetConnection.connect(
            url.conninfo(), autocommit=True, **timeout, **session_options(url))
        try:
            conn.identify(url, started)
            conn.autocommit = autocommit
        except BaseException:
            conn.close()
            raise
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = pooler_hint(first_line)
        raise ConnectError(f"cannot connect to the target {url.redacted}: "
                           f"{redact(first_line)}" + (f"; {hint}" if hint else ""),
                           "target") from None
    _end_orphans(url)
    return conn


def session_options(url: DatabaseUrl, application_name: str = "wacdc") -> dict[str, Any]:
    """libpq keyword arguments every wacdc connection to the target gets (besides the
    URL's): a UTC session, its name in pg_stat_activity, the TCP settings."""
    return {"options": "-c TimeZone=UTC", "application_name": application_name,
            **_tcp_settings(url)}


def _tcp_settings(url: DatabaseUrl) -> dict[str, Any]:
    """libpq's TCP settings, unless the URL sets them itself."""
    given = {k for k, _ in url.query}
    wanted = {"keepalives": 1, "keepalives_idle": KEEPALIVES_IDLE_S,
              "keepalives_interval": KEEPALIVES_INTERVAL_S,
              "keepalives_count": KEEPALIVES_COUNT, "tcp_user_timeout": TCP_USER_TIMEOUT_MS}
    return {k: v for k, v in wanted.items() if k not in given}


class TargetConnection(psycopg.Connection):
    """A psycopg connection whose every wait on the server is watched (module docstring)."""

    _wacdc_url: DatabaseUrl | None = None
    _wacdc_backend: _Backend | None = None  # None: not identifiable (a pooler in between)

    def identify(self, url: DatabaseUrl, started: float) -> None:
        """Learn which server process serves us. Behind a pooler the pid the protocol
        reports is not a server's: then only an unreachable server counts as dead."""
        self._wacdc_url = url
        row = self.execute("SELECT pg_backend_pid()").fetchone()
        if row and row[0] == self.info.backend_pid:
            self._wacdc_backend = _Backend(int(row[0]), started, time.monotonic())

    def wait(self, gen: Any, interval: float = _WAIT_INTERVAL_S,
             timeout: float | None = None) -> Any:
        if timeout is not None:  # the caller bounds it itself
            return super().wait(gen, interval, timeout)
        if self._wacdc_url is None:  # still identifying itself
            return super().wait(gen, interval)
        began = time.monotonic()
        if _WAIT_TIMEOUT is None:
            return super().wait(self._watched(gen, began, resumed=False), interval)
        try:
            return super().wait(gen, interval, FIRST_WAIT_S)
        except _WAIT_TIMEOUT:
            pass  # a long wait: `gen` waits where it was, watched from here on
        return super().wait(self._watched(gen, began, resumed=True), interval)

    def _watched(self, gen: Generator[Any, Any, Any], began: float, resumed: bool
                 ) -> Generator[Any, Any, Any]:
        """`gen` as it is, but a long silence on the socket is looked into."""
        try:
            waiting = gen.send(Ready.NONE) if resumed else next(gen)
        except StopIteration as done:
            return done.value
        quiet = SILENT_PROBE_S if resumed else PROBE_AFTER_S
        next_probe = time.monotonic() + quiet
        suspect_since: float | None = None  # a probe found the backend not working for us
        while True:
            ready = yield waiting
            if ready:
                suspect_since = None
                next_probe = 0.0  # set at the next quiet wake-up
            else:
                now = time.monotonic()
                if not next_probe:
                    next_probe = now + SILENT_PROBE_S
                elif now >= next_probe:
                    verdict = self._probe()
                    now = time.monotonic()
                    if verdict == "working":
                        suspect_since, next_probe = None, now + SILENT_PROBE_S
                    elif verdict == "unreachable" or (suspect_since is not None
                                                      and now - suspect_since >= CONFIRM_S):
                        self._dead(now - began, verdict)
                    else:  # not working for us: once more, to rule out a reply in flight
                        suspect_since = suspect_since or now
                        next_probe = now + CONFIRM_S
            try:
                waiting = gen.send(ready)
            except StopIteration as done:
                return done.value

    def _probe(self) -> str:
        """'working', 'idle' (not on our request: idle, waiting for us, or gone), or
        'unreachable'; 'working' too when the answer says nothing either way."""
        assert self._wacdc_url is not None
        try:
            with _probe_connection(self._wacdc_url) as probe:
                if self._wacdc_backend is None:
                    return "working"  # reachable, and nothing more can be known
                where, params = self._wacdc_backend.where()
                row = probe.execute(
                    sql.SQL("SELECT state, wait_event_type FROM pg_stat_activity WHERE {}")
                    .format(where), params).fetchone()
        except psycopg.Error as exc:
            # The server said no (too many connections, ...): it is there. No answer at
            # all (timeout, refused, reset): it, or the path to it, is not.
            return "working" if _server_said(exc) else "unreachable"
        if row is None:
            return "idle"
        state, wait_type = row
        if state is None:
            return "working"
        if state.startswith("idle") or wait_type == "Client":
            return "idle"
        return "working"

    def _dead(self, waited_s: float, verdict: str) -> None:
        why = ("the server could not be reached on a new connection either"
               if verdict == "unreachable" else
               "the server is not working on the request (its backend is idle, waits for "
               "us, or is gone)")
        backend = self._wacdc_backend
        if backend is not None and self._wacdc_url is not None and (
                verdict == "unreachable" or not _end_backends(self._wacdc_url, [backend])):
            _ORPHANS.add(_key(self._wacdc_url), [backend])
        self.pgconn.finish()  # closed: whatever uses it next fails at once
        raise TargetDead(
            f"dead or half-open connection to the target: no reply after {waited_s:.1f}s "
            f"and {why} (bound {DEAD_BOUND_S:.0f}s)")


class _ProbeConnection(psycopg.Connection):
    """A short-lived side connection whose waits all end by one deadline."""

    deadline = 0.0

    def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = max(self.deadline - time.monotonic(), 0.1)
        return super().wait(gen, *args, **kwargs)


def _probe_connection(url: DatabaseUrl) -> _ProbeConnection:
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    conn = _ProbeConnection.connect(
        url.conninfo(), autocommit=True, connect_timeout=max(2, int(PROBE_TIMEOUT_S)),
        application_name="wacdc-probe", **_tcp_settings(url))
    conn.deadline = deadline
    return conn


def _server_said(exc: psycopg.Error) -> bool:
    """Whether a failure to connect was the server's own answer (an error message)."""
    if exc.sqlstate:
        return True
    text = str(exc)
    return "FATAL:" in text or "ERROR:" in text


def _key(url: DatabaseUrl) -> str:
    return f"{url.host}:{url.port}/{url.database}/{url.user}"


def _end_backends(url: DatabaseUrl, backends: list[_Backend]) -> bool:
    """Terminate dead connections' backends (those still there); False if unreachable."""
    try:
        with _probe_connection(url) as conn:
            for backend in backends:
                where, params = backend.where()
                row = conn.execute(
                    sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {}")
                    .format(where), params).fetchone()
                if row is not None:
                    log.warning("terminated the server side of a dead connection to the "
                                "target (it would hold its locks until the server noticed)",
                                pid=backend.pid, terminated=bool(row[0]))
    except psycopg.Error as exc:
        if _server_said(exc):  # reachable but refused (privileges): nothing more to do
            log.warning("could not terminate the server side of a dead connection",
                        error=redact(str(exc)).splitlines()[0])
            return True
        return False
    return True


def _end_orphans(url: DatabaseUrl) -> None:
    pending = _ORPHANS.take(_key(url))
    if pending and not _end_backends(url, pending):
        _ORPHANS.add(_key(url), pending)
