"""The daemon's HTTP face: /metrics, /healthz, /status (DESIGN §5).

`/healthz` is Railway's health check: 200 while the loop makes progress, or is idle
and connected, or waits for another instance's replication lock (a redeploy must
become healthy while the old deployment still holds the lock); 503 once nothing has
moved for `WACDC_STALL_SECONDS` (a server down, an apply blocked) or the phase is
`failed`. `/status` is JSON for humans and scripts; it never contains a secret.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from wacdc import __version__, metrics
from wacdc.lag import LagTracker
from wacdc.log import get_logger, redact

log = get_logger("wacdc.health")


@dataclass
class DaemonStatus:
    """What the running daemon knows about itself; written by its loop, read by requests."""

    phase: str = "starting"
    stall_seconds: float = 60.0
    lag: LagTracker = field(default_factory=LagTracker)
    started_at: float = field(default_factory=time.time)
    last_progress: float = field(default_factory=time.monotonic)
    waiting_for: str | None = None  # what the loop waits on, when it waits (the lock)
    last_error: str | None = None
    tables: list[str] = field(default_factory=list)

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        metrics.set_phase(phase)
        self.progressed()

    def progressed(self) -> None:
        self.last_progress = time.monotonic()

    @contextmanager
    def busy(self, what: str) -> Iterator[None]:
        """Long server-side work with no progress to report (index builds): healthy."""
        self.waiting_for = what
        try:
            yield
        finally:
            self.waiting_for = None
            self.progressed()

    def failed(self, error: str) -> None:
        self.last_error = redact(error)
        self.set_phase("failed")

    def lag_seconds(self) -> float:
        return self.lag.seconds() if self.phase in ("catchup", "streaming") else 0.0

    def cutover_ready(self) -> bool:
        return self.phase == "streaming" and self.lag.caught_up()

    def health(self) -> tuple[bool, str]:
        if self.phase == "failed":
            return False, f"failed: {self.last_error or 'see the logs'}"
        quiet = time.monotonic() - self.last_progress
        if quiet > self.stall_seconds and not self.waiting_for:
            return False, (f"stalled: no progress for {quiet:.0f}s in phase {self.phase} "
                           f"(threshold {self.stall_seconds:.0f}s); see the logs for "
                           "reconnect attempts")
        if self.waiting_for:
            return True, f"ok: waiting for {self.waiting_for}"
        return True, f"ok: {self.phase}"

    def document(self) -> dict[str, Any]:
        lag = self.lag
        healthy, reason = self.health()
        return {
            "version": __version__,
            "phase": self.phase,
            "healthy": healthy,
            "health": reason,
            "waiting_for": self.waiting_for,
            "source_head": _position(lag.head),
            "applied_position": _position(lag.applied),
            "lag_seconds": round(self.lag_seconds(), 3),
            "lag_bytes": lag.bytes(),
            "cutover_ready": self.cutover_ready(),
            "last_applied_timestamp": _sample(metrics.last_applied_timestamp) or None,
            "stall_seconds": self.stall_seconds,
            "tables": _per_table(),
            "last_error": self.last_error,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
        }


def _position(position: Any) -> dict[str, Any] | None:
    if position is None:
        return None
    return {"file": position.file, "pos": position.pos, "gtid": position.gtid}


def _sample(gauge: Any) -> float:
    return float(gauge.collect()[0].samples[0].value)


def _per_table() -> dict[str, dict[str, int]]:
    tables: dict[str, dict[str, int]] = {}
    for family in (metrics.rows_applied, metrics.snapshot_rows):
        for sample in family.collect()[0].samples:
            if not sample.name.endswith("_total"):
                continue
            entry = tables.setdefault(sample.labels["table"], {})
            key = sample.labels.get("op", "snapshot")
            entry[key] = int(sample.value)
    return tables


STATUS = DaemonStatus()

# The gauges read the live state at scrape time, so a stuck loop still shows lag growing.
metrics.lag_seconds.set_function(lambda: STATUS.lag_seconds())
metrics.lag_bytes.set_function(
    lambda: STATUS.lag.bytes() if STATUS.phase in ("catchup", "streaming") else 0)
metrics.cutover_ready.set_function(lambda: 1.0 if STATUS.cutover_ready() else 0.0)

PostHandler = Callable[[dict[str, str], bytes], tuple[int, dict[str, Any]]]


class _Handler(BaseHTTPRequestHandler):
    server_version = f"wacdc/{__version__}"
    post_routes: ClassVar[dict[str, PostHandler]] = {}

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            healthy, reason = STATUS.health()
            code = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
            self._send(code, (reason + "\n").encode(), "text/plain; charset=utf-8")
        elif path == "/status":
            self._json(200, STATUS.document())
        else:
            self._json(404, {"error": "not found", "routes": ["/metrics", "/healthz",
                                                             "/status"]})

    def do_POST(self) -> None:
        route = self.post_routes.get(self.path.split("?", 1)[0])
        if route is None:
            self._json(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        code, document = route(dict(self.headers.items()), body)
        self._json(code, document)

    def _json(self, code: int, document: dict[str, Any]) -> None:
        self._send(code, (json.dumps(document, indent=2) + "\n").encode(), "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would drown the log; errors are logged by callers


def register_post(path: str, handler: PostHandler) -> None:
    _Handler.post_routes[path] = handler


def serve(port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer | None:
    """Start the HTTP server in a daemon thread; port 0 turns it off."""
    if port == 0:
        log.info("metrics endpoint off (WACDC_METRICS_PORT=0)")
        return None
    try:
        server = ThreadingHTTPServer((host, port), _Handler)
    except OSError as exc:
        from wacdc.errors import ConfigError
        raise ConfigError(f"cannot listen on port {port} for /metrics ({exc.strerror}); set "
                          "WACDC_METRICS_PORT to a free port (or 0 to turn it off)") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="wacdc-http", daemon=True).start()
    log.info("serving /metrics, /healthz and /status", port=server.server_address[1])
    return server
