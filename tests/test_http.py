"""The daemon's HTTP face under hostile clients (issue #16 item 7).

The server is started in this process exactly as `wacdc run` starts it
(coordinator.run: `serve(settings.metrics_port, status, {"/cutover": http_endpoint(...)})`),
on a free port. The clients are real sockets: idle ones, ones that send half a request
head and hold on, ones that trickle a head byte by byte and never finish it, and POSTs
declaring bodies they never send. Meanwhile /healthz and /metrics must answer at once.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from tests.support.harness import TargetDb
from wacdc.config import load_settings
from wacdc.cutover.http import http_endpoint
from wacdc.devtools.embedded import free_port
from wacdc.observe import http as health
from wacdc.observe.http import serve
from wacdc.runtime import DaemonStatus, bind_metrics
from wacdc.sink.pool import TargetPool

TOKEN = "tok-Zq81-http-admin"
QUICK = 2.0  # seconds: what "answers at once" means here


class Face:
    def __init__(self, server: health.HttpServer) -> None:
        self.server = server
        self.port = server.server_address[1]

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=QUICK)

    def exchange(self, raw: bytes, timeout: float = QUICK) -> tuple[int, bytes, float]:
        """Send `raw` (the write side stays open), read the answer until the server closes.

        Fails when no complete answer arrives within `timeout`: a server that waits for a
        body that never comes, or for a slot, fails here."""
        started = time.monotonic()
        with self.connect() as sock:
            sock.sendall(raw)
            data = read_until_closed(sock, started + timeout)
        elapsed = time.monotonic() - started
        if data is None:
            pytest.fail(f"no complete answer within {timeout}s to {raw[:80]!r}")
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
        return status, data, elapsed

    def get(self, path: str) -> tuple[int, bytes, float]:
        return self.exchange(f"GET {path} HTTP/1.1\r\nHost: wacdc\r\n\r\n".encode())


def read_until_closed(sock: socket.socket, deadline: float) -> bytes | None:
    """Everything the server sends until it closes; None if it is still open at deadline."""
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def still_open(sock: socket.socket) -> bool:
    """True when the server has neither closed the socket nor sent anything."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


@contextmanager
def http_face(monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[Face]:
    for name in list(os.environ):
        if name.startswith(("WACDC_", "DATABASE_URL", "WHATSAPP_")) or name == "PORT":
            monkeypatch.delenv(name)
    monkeypatch.setenv("WACDC_METRICS_PORT", str(free_port()))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    pool = TargetPool(settings)
    status = DaemonStatus()  # fresh: /healthz says 200 (this process has no loop)
    bind_metrics(status)
    server = serve(settings.metrics_port, status,  # as `wacdc run` does
                   {"/cutover": http_endpoint(settings, pool)})
    assert server is not None
    try:
        yield Face(server)
    finally:
        server.shutdown()
        pool.close()


def assert_health_answers(face: Face, rounds: int = 5) -> None:
    for _ in range(rounds):
        for path, marker in (("/healthz", b"ok: "), ("/metrics", b"wacdc_lag_seconds")):
            status, data, elapsed = face.get(path)
            assert status == 200 and marker in data, data[:300]
            assert elapsed < QUICK, f"{path} took {elapsed:.2f}s"


class Trickler(threading.Thread):
    """Sends a request head one byte every 0.1 s, forever; notes when the server hung up."""

    def __init__(self, face: Face) -> None:
        super().__init__(daemon=True)
        self.sock = face.connect()
        self.started = time.monotonic()
        self.closed_after: float | None = None
        self.sent = 0

    def run(self) -> None:
        head = b"GET /healthz HTTP/1.1\r\nHost: wacdc\r\nX-Pad: " + b"a" * 10_000
        deadline = self.started + 30
        try:
            while time.monotonic() < deadline:
                readable, _, _ = select.select([self.sock], [], [], 0.1)  # the pace
                if readable and read_until_closed(self.sock, deadline) is not None:
                    break
                try:
                    self.sock.send(head[self.sent:self.sent + 1])
                    self.sent += 1
                except OSError:
                    break  # reset by the server
            self.closed_after = time.monotonic() - self.started
        finally:
            self.sock.close()


def test_many_slow_clients_cannot_starve_health_checks_and_are_cut_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with http_face(monkeypatch, WACDC_ADMIN_TOKEN=TOKEN) as face, ExitStack() as stack:
        threads_before = threading.active_count()
        opened = time.monotonic()
        idle = [stack.enter_context(face.connect()) for _ in range(60)]
        partial = []
        for n in range(100):  # half a request head each, then silence
            sock = stack.enter_context(face.connect())
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: wacdc\r\nX-Client: {n}\r\n".encode())
            partial.append(sock)
        posts = []
        for length in ("1000000", "-1") * 10:  # unauthenticated, bodies never sent
            sock = stack.enter_context(face.connect())
            sock.sendall(f"POST /cutover HTTP/1.1\r\nHost: wacdc\r\n"
                         f"Content-Length: {length}\r\n\r\n".encode())
            posts.append(sock)
        tricklers = [Trickler(face) for _ in range(20)]
        for trickler in tricklers:
            trickler.start()

        assert_health_answers(face)
        # No thread per connection: 200 held connections cost the server no thread.
        extra = threading.active_count() - threads_before - len(tricklers)
        assert extra <= health.GET_WORKERS + health.POST_WORKERS, \
            f"{extra} new threads for 200 held connections"
        for sock in posts:  # refused at once, the body never read
            answer = read_until_closed(sock, time.monotonic() + QUICK)
            assert answer is not None and answer.split(b" ", 2)[1] in (b"400", b"413"), answer

        # Every slow client is cut off a few seconds after it connected: the idle and
        # the half-sent ones, and those still sending a byte every 0.1 s.
        deadline = opened + health.HEAD_TIMEOUT + 2.5
        for sock in idle:
            assert read_until_closed(sock, deadline) == b"", "an idle socket is still open"
        for sock in partial:  # they had sent something: told why
            answer = read_until_closed(sock, deadline)
            assert answer is not None, "a half-sent request's socket is still open"
            assert answer.startswith(b"HTTP/1.0 408"), answer
        assert time.monotonic() - opened >= health.HEAD_TIMEOUT - 0.5  # not before time
        for trickler in tricklers:
            trickler.join(timeout=health.HEAD_TIMEOUT + 5)
            assert trickler.closed_after is not None
            assert health.HEAD_TIMEOUT - 0.5 <= trickler.closed_after \
                <= health.HEAD_TIMEOUT + 2.5, trickler.closed_after
            assert trickler.sent >= 20  # it kept sending while it was cut off
        assert_health_answers(face, rounds=2)
        end = time.monotonic() + QUICK
        while face.server.open_connections and time.monotonic() < end:
            select.select([], [], [], 0.05)
        assert face.server.open_connections == 0


def test_past_the_connection_limit_the_oldest_unfinished_connection_is_closed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with http_face(monkeypatch) as face, ExitStack() as stack:
        surplus = 40
        socks = [stack.enter_context(face.connect())
                 for _ in range(health.MAX_CONNECTIONS + surplus)]
        started = time.monotonic()
        for sock in socks[:surplus]:
            assert read_until_closed(sock, started + QUICK) is not None, \
                "the oldest idle connection was not closed past the limit"
        assert all(still_open(sock) for sock in socks[surplus:])
        assert time.monotonic() - started < health.HEAD_TIMEOUT - 1  # evicted, not expired
        assert_health_answers(face)


@pytest.mark.parametrize(("headers", "status"), [
    ("Content-Length: 1000", 401),  # no token: refused before any body is read
    (f"Authorization: Bearer {TOKEN}x\r\nContent-Length: 1000", 403),  # wrong token
    ("Authorization: bearer\r\nContent-Length: 1000", 403),
    ("Content-Length: 1000000", 413),
    (f"Authorization: Bearer {TOKEN}\r\nContent-Length: 1000000", 413),
    ("Content-Length: 99999999999999999999999999999999999999999999", 413),
    ("Content-Length: -1", 400),
    ("Content-Length: 12abc", 400),
    ("Content-Length: 0x10", 400),
    ("Content-Length: 5\r\nContent-Length: 6", 400),
    ("Transfer-Encoding: chunked", 411),
], ids=["no-token", "wrong-token", "no-token-value", "huge", "huge-with-token",
        "huge-digits", "negative", "not-a-number", "hex", "two-lengths", "chunked"])
def test_post_cutover_answers_at_once_without_reading_a_body(
        monkeypatch: pytest.MonkeyPatch, headers: str, status: int) -> None:
    # No target configured: an accepted request would fail on it; none gets that far.
    with http_face(monkeypatch, WACDC_ADMIN_TOKEN=TOKEN) as face:
        got, data, elapsed = face.exchange(
            f"POST /cutover HTTP/1.1\r\nHost: wacdc\r\n{headers}\r\n\r\n".encode())
        assert got == status, data
        assert elapsed < 1.0
        assert TOKEN.encode() not in data
        assert_health_answers(face, rounds=1)


def test_post_cutover_with_the_token_requests_the_cutover(
        monkeypatch: pytest.MonkeyPatch, target_db: TargetDb) -> None:
    with http_face(monkeypatch, WACDC_ADMIN_TOKEN=TOKEN, WACDC_TARGET_URL=target_db.url) as face:
        auth = f"Authorization: Bearer {TOKEN}\r\n"
        status, data, _ = face.exchange(
            f"POST /cutover HTTP/1.1\r\nHost: wacdc\r\n{auth}Content-Length: 0\r\n\r\n".encode(),
            timeout=15)
        assert status == 202, data
        # A declared small body is not waited for: the answer comes without it.
        status, data, _ = face.exchange(
            f"POST /cutover HTTP/1.1\r\nHost: wacdc\r\n{auth}Content-Length: 20\r\n\r\n"
            .encode(), timeout=15)
        assert status == 202, data
        assert TOKEN.encode() not in data
    with target_db.connect() as pg:
        rows = pg.execute("SELECT status, requested_by FROM wacdc.cutover").fetchall()
    assert rows == [("requested", "POST /cutover")]  # the second joined the first


def test_posts_stuck_on_the_database_do_not_delay_health_checks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A target that accepts TCP and never answers holds the POST workers; GETs go on."""
    password = "pw-Blackhole-93"
    blackhole = socket.create_server(("127.0.0.1", 0), backlog=64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(blackhole.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    url = f"postgresql://wacdc:{password}@127.0.0.1:{blackhole.getsockname()[1]}/db"
    with http_face(monkeypatch, WACDC_ADMIN_TOKEN=TOKEN, WACDC_TARGET_URL=url) as face, \
            ExitStack() as stack:
        request = (f"POST /cutover HTTP/1.1\r\nHost: wacdc\r\nAuthorization: Bearer {TOKEN}"
                   "\r\nContent-Length: 0\r\n\r\n").encode()
        waiting = []
        for _ in range(health.POST_QUEUE):
            sock = stack.enter_context(face.connect())
            sock.sendall(request)
            waiting.append(sock)
        deadline = time.monotonic() + 5
        while len(held) < health.POST_WORKERS:  # both POST workers wait on the target
            assert time.monotonic() < deadline, "the POST workers never reached the target"
            select.select([], [], [], 0.05)
        status, data, _ = face.exchange(request, timeout=1.0)
        assert status == 503 and b"busy" in data, data  # the queue is full: said at once
        assert_health_answers(face)
        assert all(still_open(sock) for sock in waiting)
        # The target goes away: every waiting POST gets its answer, without the password.
        blackhole.close()
        for sock in held:
            sock.close()
        for sock in waiting:
            answer = read_until_closed(sock, time.monotonic() + 15)
            assert answer is not None and answer.startswith(b"HTTP/1.0 503"), answer
            assert b"no connection to the target" in answer  # from wacdc's pool
            assert password.encode() not in answer


def test_standard_clients_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import urllib.error
    import urllib.request

    with http_face(monkeypatch) as face:
        base = f"http://127.0.0.1:{face.port}"
        with urllib.request.urlopen(f"{base}/status", timeout=QUICK) as resp:
            assert resp.status == 200 and json.loads(resp.read())["phase"]
        with urllib.request.urlopen(f"{base}/healthz?verbose=1", timeout=QUICK) as resp:
            assert resp.read().startswith(b"ok: ")
        for method, path, code in (("GET", "/nope", 404), ("POST", "/cutover", 401),
                                   ("PUT", "/cutover", 405)):
            req = urllib.request.Request(f"{base}{path}", method=method, data=b"{}")
            with pytest.raises(urllib.error.HTTPError) as raised:
                urllib.request.urlopen(req, timeout=QUICK)
            assert raised.value.code == code
        assert face.exchange(b"garbage\r\n\r\n")[0] == 400
        assert face.exchange(b"GET / HTTP/2.0\r\n\r\n")[0] == 505
        big = b"GET /healthz HTTP/1.1\r\n" + b"X-Big: " + b"b" * (health.MAX_HEAD + 10)
        assert face.exchange(big)[0] == 431
