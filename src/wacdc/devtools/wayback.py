"""The demo's way back: after the cutover the app writes PostgreSQL (reverse replication
keeps MySQL current), then `wacdc rollback` under that traffic, MySQL writes flowing
forward again, and the verification both ways."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any, TextIO

import psycopg

from wacdc.cutover import control
from wacdc.errors import WacdcError

FENCED = "WC002"  # the PostgreSQL fence's SQLSTATE after a rollback


class PgTraffic(threading.Thread):
    """The app pointed at PostgreSQL: inbound messages, customer tag edits, campaign
    progress, until stopped or fenced."""

    def __init__(self, target_url: str, rate: float, seed: int = 11) -> None:
        super().__init__(name="demo-pg-traffic", daemon=True)
        self.url, self.rate, self.rng = target_url, rate, random.Random(seed)
        self.stop = threading.Event()
        self.writes = 0
        self.fenced_at: float | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                customers = [r[0] for r in conn.execute(
                    'SELECT id FROM "WhatsAppCustomer" ORDER BY random() LIMIT 200')]
                started = time.monotonic()
                while not self.stop.is_set():
                    with conn.transaction():
                        self._one(conn, customers)
                    self.writes += 1
                    delay = started + self.writes / self.rate - time.monotonic()
                    if delay > 0:
                        self.stop.wait(delay)
        except psycopg.Error as exc:
            if getattr(exc, "sqlstate", None) == FENCED:
                self.fenced_at = time.monotonic()  # the app must switch back to MySQL now
            else:
                self.error = str(exc).strip().splitlines()[0]

    def _one(self, conn: psycopg.Connection, customers: list[str]) -> None:
        rng = self.rng
        if rng.random() < 0.6 or not customers:
            cid = f"demo-pg-{uuid.uuid4().hex[:12]}"
            conn.execute('INSERT INTO "WhatsAppCustomer" (id, "firstName", "phoneNumber", tags, '
                         'metadata, "updatedAt") VALUES (%s, %s, %s, %s, %s::jsonb, now())',
                         (cid, rng.choice(["Asha", "Ravi", "Zoë"]),
                          f"+9197{rng.randint(10**7, 10**8 - 1)}", ["new", "pg"],
                          json.dumps({"source": "postgres", "score": rng.randint(1, 99)})))
            customers.append(cid)
        else:
            conn.execute('UPDATE "WhatsAppCustomer" SET tags = tags || %s, "updatedAt" = now() '
                         "WHERE id = %s", (["repeat"], rng.choice(customers)))


def status_of(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
            return dict(json.loads(r.read()))
    except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
        return None


def wait_until(what: str, ok: Callable[[dict[str, Any]], bool], port: int,
               alive: Callable[[], bool], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise WacdcError(f"wacdc run exited while the demo waited for {what}")
        status = status_of(port)
        if status is not None and ok(status):
            return status
        time.sleep(0.2)
    raise WacdcError(f"the demo waited {timeout:.0f}s for {what}")


def reverse_under_traffic(port: int, target_url: str, rate: float, duration: float,
                          alive: Callable[[], bool], out: TextIO) -> PgTraffic:
    """The app on PostgreSQL for `duration` seconds, reverse lag shown each second."""
    wait_until("phase reverse", lambda s: s["phase"] == "reverse", port, alive)
    traffic = PgTraffic(target_url, rate)
    traffic.start()
    until = time.monotonic() + duration
    while time.monotonic() < until:
        if traffic.error:
            raise WacdcError(f"the PostgreSQL traffic failed: {traffic.error}")
        status = status_of(port) or {}
        reverse = status.get("reverse") or {}
        print(f"{time.strftime('%H:%M:%S')}  phase {status.get('phase', '?'):<9} reverse lag "
              f"{reverse.get('lag_seconds', 0):.3f}s  app writes to PostgreSQL "
              f"{traffic.writes:,}  applied to MySQL {reverse.get('applied_changes', 0):,}",
              file=out, flush=True)
        time.sleep(1)
    return traffic


def roll_back(target_url: str, alive: Callable[[], bool]) -> dict[str, Any]:
    """Request the rollback and follow it to its end; the final rollback row."""
    with psycopg.connect(target_url, autocommit=True) as conn:
        rollback_id = control.request(conn, "wacdc demo", control.ROLLBACK)
        while True:
            doc = control.latest(conn, control.ROLLBACK)
            assert doc is not None and doc["id"] == rollback_id
            if doc["status"] in control.FINAL:
                return doc
            if not alive():
                raise WacdcError("wacdc run exited during the rollback")
            time.sleep(0.1)
