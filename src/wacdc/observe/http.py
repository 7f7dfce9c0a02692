"""The daemon's HTTP face: /metrics, /healthz, /status (DESIGN §5).

`/healthz` is Railway's health check: 200 while the loop makes progress, or is idle
and connected, or waits for another instance's replication lock (a redeploy must
become healthy while the old deployment still holds the lock); 503 once nothing has
moved for `WACDC_STALL_SECONDS` (a server down, an apply blocked) or the phase is
`failed`. `/status` is JSON for humans and scripts; it never contains a secret.
"""

from __future__ import annotations

import contextlib
import queue
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from wacdc.errors import ConfigError, WacdcError
from wacdc.log import get_logger, redact
from wacdc.observe import metrics
from wacdc.observe.wire import MAX_HEAD, body_problem, json_response, parse, response

log = get_logger("wacdc.health")


class Observed(Protocol):
    """What the server reports on: the daemon's state (wacdc.runtime.DaemonStatus)."""

    def health(self) -> tuple[bool, str]: ...

    def document(self) -> dict[str, Any]: ...


# (headers, the query string after "?") -> (status, JSON document)
PostHandler = Callable[[dict[str, str], str], tuple[int, dict[str, Any]]]

# --- the HTTP server ---------------------------------------------------------------------
#
# One thread ("wacdc-http") does all socket I/O through a selector: it accepts, reads
# request heads, writes responses and closes, and never waits on a client. An open
# connection costs a file descriptor, not a thread, and every one has a deadline, so
# clients that hold connections (a slowloris, a stuck scanner) cannot starve /healthz.
# Complete requests are answered on two small pools: GET (/metrics, /healthz, /status)
# and POST (routes that may wait on a database), so a slow POST never delays a health
# check. POST routes take no body: the route sees the headers (the admin token) and the
# query string; a body is never read, only discarded after the response.

HEAD_TIMEOUT = 5.0  # seconds from accept to the end of the request head
WRITE_TIMEOUT = 5.0  # seconds for the client to take the response
LINGER_TIMEOUT = 1.0  # after the response: what the client still sends is read and dropped
LINGER_BYTES = 64 * 1024
MAX_CONNECTIONS = 256  # open client sockets; past it the oldest unfinished one is closed
GET_WORKERS, GET_QUEUE = 2, 64  # threads, and requests waiting or running, per pool
POST_WORKERS, POST_QUEUE = 2, 8

GET_ROUTES = ("/metrics", "/healthz", "/status")
_HEAD_END = re.compile(rb"\r?\n\r?\n")

_READ, _WORK, _WRITE, _LINGER = "read", "work", "write", "linger"


def _get(observed: Observed, path: str) -> bytes:
    if path == "/metrics":
        return response(200, generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST)
    if path == "/healthz":
        healthy, reason = observed.health()
        code = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return response(code, (reason + "\n").encode(), "text/plain; charset=utf-8")
    return json_response(200, observed.document())


def _post(route: PostHandler, headers: dict[str, str], query: str) -> bytes:
    try:
        code, document = route(headers, query)
    except WacdcError as exc:
        message = redact(str(exc))
        log.error("POST request failed", error=message)
        code, document = 503, {"error": message}
    return json_response(code, document)


class _Conn:
    __slots__ = ("buf", "deadline", "drained", "out", "registered", "sock", "state")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.state = _READ
        self.deadline = deadline
        self.buf = bytearray()
        self.out = memoryview(b"")
        self.drained = 0
        self.registered = False


@dataclass
class _Pool:
    executor: ThreadPoolExecutor
    limit: int
    busy: int = 0  # submitted and not yet answered; only the I/O thread touches it


class HttpServer:
    """/metrics, /healthz, /status and the POST routes; `serve_forever` runs the I/O loop.

    Bounded everywhere: `MAX_CONNECTIONS` open sockets (past it the oldest that has not
    finished its request is closed), `HEAD_TIMEOUT` for a whole request head however
    slowly it trickles in, `WRITE_TIMEOUT` for the response, and per pool a queue
    limit past which the answer is 503 at once."""

    def __init__(self, host: str, port: int, observed: Observed,
                 post_routes: Mapping[str, PostHandler] | None = None) -> None:
        self._observed = observed
        self._post_routes = dict(post_routes or {})
        self._listener = socket.create_server((host, port), backlog=128)
        self._listener.setblocking(False)
        self.server_address: tuple[str, int] = self._listener.getsockname()[:2]
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._conns: dict[socket.socket, _Conn] = {}  # in accept order: oldest first
        self._done: queue.SimpleQueue[tuple[_Conn, str, bytes]] = queue.SimpleQueue()
        self._pools = {
            "GET": _Pool(ThreadPoolExecutor(GET_WORKERS, "wacdc-http-get"), GET_QUEUE),
            "POST": _Pool(ThreadPoolExecutor(POST_WORKERS, "wacdc-http-post"), POST_QUEUE),
        }
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._running = False

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # --- the loop ----------------------------------------------------------------------

    def serve_forever(self) -> None:
        self._running = True
        next_expiry = 0.0
        try:
            while not self._stopping.is_set():
                timeout = 0.1 if self._conns else None
                for key, mask in self._selector.select(timeout):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._finish_work()
                    else:
                        self._io(key.data, mask)
                now = time.monotonic()
                if now >= next_expiry:
                    self._expire(now)
                    next_expiry = now + 0.1
        finally:
            self._close_all()
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop the loop and close every socket (same name as socketserver's)."""
        self._stopping.set()
        self._wake()
        if self._running:
            self._stopped.wait(10)
        else:
            self._close_all()

    server_close = shutdown

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # already awake (buffer full) or closed

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # out of descriptors: make room for the next one
                log.warning("HTTP accept failed", error=str(exc))
                self._evict()
                return
            sock.setblocking(False)
            if len(self._conns) >= MAX_CONNECTIONS and not self._evict():
                sock.close()
                continue
            conn = _Conn(sock, time.monotonic() + HEAD_TIMEOUT)
            self._conns[sock] = conn
            self._watch(conn, selectors.EVENT_READ)

    def _evict(self) -> bool:
        """Close the oldest connection that no worker holds; False when there is none."""
        for conn in self._conns.values():
            if conn.state != _WORK:
                self._close(conn)
                return True
        return False

    def _io(self, conn: _Conn, mask: int) -> None:
        if conn.state == _WRITE:
            self._send(conn)
            return
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if not data:  # the client closed (or finished, when lingering)
            self._close(conn)
            return
        if conn.state == _LINGER:
            conn.drained += len(data)
            if conn.drained > LINGER_BYTES:
                self._close(conn)
            return
        seen = max(0, len(conn.buf) - 3)
        conn.buf += data
        end = _HEAD_END.search(conn.buf, seen)
        if end is None or end.end() > MAX_HEAD:
            if len(conn.buf) > MAX_HEAD:
                self._reply(conn, json_response(
                    431, {"error": f"request head over {MAX_HEAD} bytes"}))
            return
        self._dispatch(conn, bytes(conn.buf[:end.end()]))

    def _dispatch(self, conn: _Conn, head: bytes) -> None:
        request = parse(head)
        if isinstance(request, bytes):
            self._reply(conn, request)
        elif request.method == "GET":
            if request.path in GET_ROUTES:
                path, observed = request.path, self._observed
                self._submit(conn, "GET", lambda: _get(observed, path))
            else:
                self._reply(conn, json_response(404, {"error": "not found",
                                              "routes": list(GET_ROUTES)}))
        elif request.method == "POST":
            route = self._post_routes.get(request.path)
            problem = body_problem(request)
            if route is None:
                self._reply(conn, json_response(404, {"error": "not found"}))
            elif problem is not None:
                self._reply(conn, problem)
            else:
                headers, query = request.headers, request.query
                self._submit(conn, "POST", lambda: _post(route, headers, query))
        else:
            self._reply(conn, json_response(405, {"error": f"method {request.method} not allowed"},
                                    (("Allow", "GET, POST"),)))

    def _submit(self, conn: _Conn, kind: str, work: Callable[[], bytes]) -> None:
        pool = self._pools[kind]
        if pool.busy >= pool.limit:
            self._reply(conn, json_response(503, {"error": "busy: too many requests at once"},
                                    (("Retry-After", "1"),)))
            return
        pool.busy += 1
        conn.state = _WORK
        self._unwatch(conn)
        pool.executor.submit(self._work, conn, kind, work)

    def _work(self, conn: _Conn, kind: str, work: Callable[[], bytes]) -> None:
        """On a pool thread: compute the whole response; the I/O thread sends it."""
        try:
            out = work()
        except Exception as exc:  # noqa: BLE001 - a bug in a route answers 500, not silence
            log.error("HTTP request failed", error=redact(repr(exc)))
            out = json_response(500, {"error": "internal error; see the daemon's log"})
        self._done.put((conn, kind, out))
        self._wake()

    def _finish_work(self) -> None:
        try:
            while self._wake_r.recv(4096):
                continue  # drain the wake-up bytes; the queue below is what counts
        except BlockingIOError:
            pass  # drained (the socket is non-blocking)
        while True:
            try:
                conn, kind, out = self._done.get_nowait()
            except queue.Empty:
                return
            self._pools[kind].busy -= 1
            if conn.sock in self._conns:
                self._reply(conn, out)

    def _reply(self, conn: _Conn, out: bytes) -> None:
        conn.state = _WRITE
        conn.out = memoryview(out)
        conn.deadline = time.monotonic() + WRITE_TIMEOUT
        self._watch(conn, selectors.EVENT_WRITE)
        self._send(conn)

    def _send(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if conn.out:
            return
        # Done: half-close, then drop what the client still sends (an unread body) for a
        # moment, so that closing does not reset the connection before it read the answer.
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.state = _LINGER
        conn.deadline = time.monotonic() + LINGER_TIMEOUT
        self._watch(conn, selectors.EVENT_READ)

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if c.state != _WORK and c.deadline <= now]:
            if conn.state == _READ and conn.buf:
                # One try, never waiting (it is too slow already); a client that cannot
                # take it (gone, buffer full) gets the close alone.
                with contextlib.suppress(OSError):
                    conn.sock.send(json_response(408, {"error": "request head not complete within "
                                                        f"{HEAD_TIMEOUT:.0f}s"}))
            self._close(conn)

    def _watch(self, conn: _Conn, events: int) -> None:
        if conn.registered:
            self._selector.modify(conn.sock, events, conn)
        else:
            self._selector.register(conn.sock, events, conn)
            conn.registered = True

    def _unwatch(self, conn: _Conn) -> None:
        if conn.registered:
            self._selector.unregister(conn.sock)
            conn.registered = False

    def _close(self, conn: _Conn) -> None:
        self._unwatch(conn)
        self._conns.pop(conn.sock, None)
        conn.sock.close()

    def _close_all(self) -> None:
        for conn in list(self._conns.values()):
            self._close(conn)
        for pool in self._pools.values():
            pool.executor.shutdown(wait=False, cancel_futures=True)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()


def serve(port: int, observed: Observed, post_routes: Mapping[str, PostHandler] | None = None,
          host: str = "0.0.0.0") -> HttpServer | None:
    """Start the HTTP server in a daemon thread; port 0 turns it off."""
    if port == 0:
        log.info("metrics endpoint off (WACDC_METRICS_PORT=0)")
        return None
    try:
        server = HttpServer(host, port, observed, post_routes)
    except OSError as exc:
        raise ConfigError(f"cannot listen on port {port} for /metrics ({exc.strerror}); set "
                          "WACDC_METRICS_PORT to a free port (or 0 to turn it off)") from None
    threading.Thread(target=server.serve_forever, name="wacdc-http", daemon=True).start()
    log.info("serving /metrics, /healthz and /status", port=server.server_address[1])
    return server
