"""Dead and half-open connections (issue #16): found within their documented bound, then
a reconnect from the checkpoint, never a hang; the target ends identical to the source.

A TCP proxy (tests/tcpproxy.py) sits between `wacdc run` and one server. Mid-stream it
stops forwarding without closing anything: the sockets stay open and every byte is
acknowledged, as behind a NAT or proxy that lost its way. Before issue #16 the daemon
waited on such a connection for as long as the kernel let it (forever, here)."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from tests.support.daemon import Daemon
from tests.support.harness import SourceDb, TargetDb, wacdc_env
from tests.support.independent import independent_differences
from tests.support.tcpproxy import TcpProxy
from tests.support.workload import TABLES, Workload
from wacdc.sink.connection import (
    DEAD_BOUND_S,
    KEEPALIVES_COUNT,
    KEEPALIVES_IDLE_S,
    KEEPALIVES_INTERVAL_S,
    PROBE_AFTER_S,
    TCP_USER_TIMEOUT_MS,
)
from wacdc.source.binlog import stream_read_timeout
from wacdc.source.reader import child_silence_bound
from wacdc.stream import HEARTBEAT_S

SOURCE_BOUND_S = stream_read_timeout(HEARTBEAT_S)  # 5 s
CHILD_BOUND_S = child_silence_bound(HEARTBEAT_S)  # 10 s
SLACK_S = 3.0  # the log line's way to the test, a busy 2-core machine
DEAD = "dead or half-open connection"


def _dead_line(daemon: Daemon) -> dict:
    return next(e for e in daemon.events() if str(e.get("event", "")).startswith(DEAD))


def _streaming(daemon: Daemon) -> None:
    daemon.wait_for_line("caught up: streaming", timeout=90)


def _caught_up(daemon: Daemon, source: SourceDb, target: TargetDb, timeout: float = 90
               ) -> None:
    """Until the daemon's committed checkpoint reaches the source's binlog head."""
    from wacdc.config import parse_url
    from wacdc.sink import state
    from wacdc.source.connection import connect
    from wacdc.source.position import current_position

    with connect(parse_url(source.url, "mysql")) as my:
        head = current_position(my)
    deadline = time.monotonic() + timeout
    with target.connect() as pg:
        while True:
            assert daemon.proc.poll() is None, daemon.log.finish()[-4000:]
            checkpoint = state.get_checkpoint(pg)
            if checkpoint is not None and checkpoint >= head:
                return
            assert time.monotonic() < deadline, \
                f"checkpoint {checkpoint} short of {head}:\n{daemon.log.text[-4000:]}"
            time.sleep(0.05)


def _identical(source: SourceDb, target: TargetDb) -> None:
    assert independent_differences(source, target, list(TABLES)) == {}


def _blackhole(daemon: Daemon, proxy: TcpProxy, workload: Workload, side: str,
               restore_at_once: bool = False) -> float:
    """Blackhole the proxy, keep writing the source; seconds until the daemon logs the
    dead connection (for `side`), then forward again."""
    before = daemon.reconnects(side)
    proxy.blackhole()
    started = time.monotonic()
    if restore_at_once:  # only the open connections die; new ones go through
        proxy.restore()
    workload.run(30)  # the daemon has something to read and apply
    daemon.wait_for_line(DEAD, timeout=max(SOURCE_BOUND_S, DEAD_BOUND_S) * 2 + SLACK_S)
    took = time.monotonic() - started
    proxy.restore()
    line = _dead_line(daemon)
    assert line["side"] == side, line
    assert line["bound_s"] > 0, line
    workload.run(30)  # more, through the reconnected path
    # The counter moved on the reconnect that followed.
    deadline = time.monotonic() + 30
    while daemon.reconnects(side) <= before:
        assert time.monotonic() < deadline, daemon.log.text[-3000:]
        time.sleep(0.05)
    return took


def _start(source_url: str, target_url: str, **extra: str) -> Daemon:
    env = wacdc_env(source_url, target_url, WACDC_TABLES=",".join(TABLES), **extra)
    return Daemon(env)


@pytest.mark.parametrize("decode_in", ["inline", "process"])
def test_a_blackholed_source_is_found_dead_within_the_bound_and_resumed(
        source_db: SourceDb, target_db: TargetDb, decode_in: str) -> None:
    workload = Workload(source_db, seed=31)
    workload.run(40)
    with TcpProxy.for_url(source_db.url) as proxy:
        daemon = _start(proxy.url(source_db.url), target_db.url, WACDC_DECODE_IN=decode_in)
        try:
            _streaming(daemon)
            workload.run(30)
            _caught_up(daemon, source_db, target_db)
            took = _blackhole(daemon, proxy, workload, "source")
            # The stream went silent (no heartbeat) for its read timeout: found then, not
            # sooner (it is the timeout that fired), not much later.
            assert SOURCE_BOUND_S - 1 <= took <= SOURCE_BOUND_S + SLACK_S, took
            assert _dead_line(daemon)["bound_s"] == SOURCE_BOUND_S
            _caught_up(daemon, source_db, target_db)
            assert proxy.live_connections >= 2  # the new stream and control connections
            daemon.stop(expect_clean_exit=True)
        finally:
            daemon.kill()
    print(f"source ({decode_in}): dead connection found after {took:.2f}s "
          f"(bound {SOURCE_BOUND_S:g}s)")
    _identical(source_db, target_db)


@pytest.mark.parametrize("outage", ["partition", "lost_connections"])
def test_a_blackholed_target_is_found_dead_within_the_bound_and_resumed(
        source_db: SourceDb, target_db: TargetDb, outage: str) -> None:
    """partition: no way to the server until restored (the probe cannot connect either);
    lost_connections: the open connections die, new ones go through (the probe finds
    the backend idle). Either way the dead backend, which still holds the writer lock on
    the server's side of the proxy, is terminated so the new connection can take it."""
    workload = Workload(source_db, seed=37)
    workload.run(40)
    with TcpProxy.for_url(target_db.url) as proxy:
        daemon = _start(source_db.url, proxy.url(target_db.url))
        try:
            _streaming(daemon)
            workload.run(30)
            _caught_up(daemon, source_db, target_db)
            took = _blackhole(daemon, proxy, workload, "target",
                              restore_at_once=outage == "lost_connections")
            assert PROBE_AFTER_S - 0.5 <= took <= DEAD_BOUND_S + SLACK_S, took
            assert _dead_line(daemon)["bound_s"] == DEAD_BOUND_S
            _caught_up(daemon, source_db, target_db)
            daemon.wait_for_line("terminated the server side of a dead connection", timeout=5)
            daemon.stop(expect_clean_exit=True)
        finally:
            daemon.kill()
    print(f"target ({outage}): dead connection found after {took:.2f}s "
          f"(bound {DEAD_BOUND_S:g}s)")
    _identical(source_db, target_db)


def test_a_stuck_decode_process_is_killed_and_replaced(source_db: SourceDb,
                                                       target_db: TargetDb) -> None:
    """WACDC_DECODE_IN=process: a child that stops (SIGSTOP: no item, no CPU) does not hang
    its daemon: killed after its bound, replaced, and the stream resumes exactly once."""
    workload = Workload(source_db, seed=41)
    workload.run(40)
    daemon = _start(source_db.url, target_db.url, WACDC_DECODE_IN="process")
    try:
        _streaming(daemon)
        child = _decode_process(daemon.proc.pid)
        os.kill(child, signal.SIGSTOP)
        started = time.monotonic()
        workload.run(30)
        daemon.wait_for_line("the decode process sent nothing", timeout=CHILD_BOUND_S * 2 + SLACK_S)
        took = time.monotonic() - started
        # Polled once a second: found between the bound and a poll (and a log line) later.
        assert CHILD_BOUND_S <= took <= CHILD_BOUND_S + 1 + SLACK_S, took
        line = next(e for e in daemon.events() if "decode process sent nothing"
                    in str(e.get("error", "")))
        assert line["side"] == "source" and line["bound_s"] == CHILD_BOUND_S, line
        workload.run(30)
        _caught_up(daemon, source_db, target_db)
        assert not _alive(child), "the stuck decode process was left behind"
        assert _decode_process(daemon.proc.pid) != child
        assert daemon.reconnects("source") >= 1
        daemon.stop(expect_clean_exit=True)
    finally:
        daemon.kill()
    print(f"decode process: stuck child found after {took:.2f}s (bound {CHILD_BOUND_S:g}s)")
    _identical(source_db, target_db)


def test_target_sockets_carry_keepalives_and_a_user_timeout(target_db: TargetDb) -> None:
    """The TCP layer of the bounds: what libpq was asked for is on the socket."""
    from wacdc.config import parse_url
    from wacdc.sink.connection import connect_target

    with connect_target(parse_url(target_db.url, "postgresql"), autocommit=True) as conn:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == \
                KEEPALIVES_IDLE_S
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == \
                KEEPALIVES_INTERVAL_S
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPALIVES_COUNT
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == \
                TCP_USER_TIMEOUT_MS
        finally:
            sock.detach()
        # A slow statement is not a dead connection: the probe finds it working.
        started = time.monotonic()
        conn.execute("SELECT pg_sleep(%s)", (PROBE_AFTER_S * 2 + 1,))
        assert time.monotonic() - started >= PROBE_AFTER_S * 2 + 1


def _decode_process(pid: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while True:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(p) for p in f.read().split()]
        found = [c for c in children if "spawn_main" in _cmdline(c) and _alive(c)]
        if len(found) == 1:
            return found[0]
        assert time.monotonic() < deadline, children
        time.sleep(0.05)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False

