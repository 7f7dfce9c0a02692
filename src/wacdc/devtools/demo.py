"""`wacdc demo`: the whole job on private local servers, in one command.

Starts a private MariaDB/MySQL and PostgreSQL from the installed binaries (temp dirs,
free ports), loads the 19 WhatsApp tables with generated data, runs `wacdc run` while
a traffic generator behaves like the app (campaign bursts walking recipients through
sent -> delivered -> read, inbound webhook messages, analytics events, customer
edits), shows a live view, then cuts over under that traffic and prints the
verification report and the write pause. Everything it started is stopped and
removed on exit or Ctrl-C, unless --keep.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, TextIO

import psycopg
import pymysql

from wacdc import cutover
from wacdc.config import load_settings, parse_url
from wacdc.devtools.datagen import create_whatsapp_database
from wacdc.devtools.embedded import (
    EmbeddedServerError,
    MariaDBServer,
    MySQLServer,
    PostgresServer,
    docker_available,
    find_oracle_mysql,
    free_port,
    start_mysql_container,
    start_postgres_container,
)
from wacdc.errors import WacdcError
from wacdc.log import configure_logging, redact
from wacdc.source.connection import connect
from wacdc.verify import exit_code, render, verify

SOURCE_DB = "whatsapp"
TARGET_DB = "whatsapp"
NO_SUCH_TABLE = 1146


class AppTraffic(threading.Thread):
    """Writes like the app, at `rate` transactions per second, until stopped or fenced."""

    def __init__(self, source_url: str, rate: float, seed: int = 7) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self.url = parse_url(source_url, "mysql")
        self.rate = rate
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.writes = 0
        self.fenced_at: float | None = None  # the first write the fence refused
        self.error: str | None = None
        self.recipients: list[tuple[str, str]] = []  # (id, status) walking to "read"

    def run(self) -> None:
        try:
            with connect(self.url, autocommit=False) as conn, conn.cursor() as cur:
                customers = self._ids(cur, "WhatsAppCustomer")
                sessions = self._ids(cur, "WhatsAppSession")
                started = time.monotonic()
                while not self.stop.is_set():
                    self._one(cur, customers, sessions)
                    conn.commit()
                    self.writes += 1
                    delay = started + self.writes / self.rate - time.monotonic()
                    if delay > 0:
                        self.stop.wait(delay)
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] == NO_SUCH_TABLE:
                self.fenced_at = time.monotonic()  # the app must switch to PostgreSQL now
            else:
                self.error = f"{exc.args}"

    @staticmethod
    def _ids(cur: Any, table: str) -> list[str]:
        cur.execute(f"SELECT id FROM `{table}` ORDER BY RAND() LIMIT 500")
        return [row[0] for row in cur.fetchall()] or [str(uuid.uuid4())]

    def _one(self, cur: Any, customers: list[str], sessions: list[str]) -> None:
        rng = self.rng
        pick = rng.random()
        if self.recipients and pick < 0.35:  # delivery receipts walk the campaign along
            rid, status = self.recipients.pop(0)
            nxt = {"pending": "sent", "sent": "delivered", "delivered": "read"}[status]
            column = {"sent": "sentAt", "delivered": "deliveredAt", "read": "readAt"}[nxt]
            cur.execute(f"UPDATE WhatsAppCampaignRecipient SET status = %s, `{column}` = "
                        "NOW(3), updatedAt = NOW(3) WHERE id = %s", (nxt, rid))
            if nxt != "read":
                self.recipients.append((rid, nxt))
        elif pick < 0.40:  # a campaign burst: a campaign and its recipients
            cid = f"demo-camp-{uuid.uuid4().hex[:10]}"
            cur.execute("INSERT INTO WhatsAppCampaign (id, name, templateName, targetType, "
                        "status, totalRecipients, updatedAt) VALUES (%s, %s, 'goa_offer', "
                        "'segment', 'running', 20, NOW(3))",
                        (cid, f"Goa monsoon offer {cid[-4:]}"))
            rows = [(f"{cid}-r{i}", cid, f"+9198{rng.randint(10**7, 10**8 - 1)}",
                     rng.choice(customers), json.dumps({"name": "Asha", "price": 18999}))
                    for i in range(20)]
            cur.executemany("INSERT INTO WhatsAppCampaignRecipient (id, campaignId, "
                            "phoneNumber, whatsappCustomerId, variables, status, updatedAt) "
                            "VALUES (%s, %s, %s, %s, %s, 'pending', NOW(3))", rows)
            self.recipients.extend((r[0], "pending") for r in rows)
        elif pick < 0.70:  # an inbound webhook message
            mid = f"demo-msg-{uuid.uuid4().hex[:12]}"
            body = rng.choice(["Is the Kerala package available in May? 🙏",
                               "Price for 2 adults, Goa, 4 nights?", "ok thanks",
                               "मुझे मनाली पैकेज चाहिए", "Call me after 6pm please"])
            payload = {"entry": [{"changes": [{"value": {"messages": [
                {"type": "text", "text": {"body": body}}]}}]}], "object": "whatsapp"}
            session = rng.choice(sessions)
            cur.execute("INSERT INTO WhatsAppMessage (id, message, status, direction, `from`, "
                        "`to`, sessionId, payload, updatedAt) VALUES (%s, %s, 'received', "
                        "'inbound', %s, 'whatsapp:+911234', %s, %s, NOW(3))",
                        (mid, body, f"whatsapp:+9198{rng.randint(10**7, 10**8 - 1)}",
                         session, json.dumps(payload, ensure_ascii=False)))
            cur.execute("UPDATE WhatsAppSession SET lastMessageId = %s, lastInteraction = "
                        "NOW(3), updatedAt = NOW(3) WHERE id = %s", (mid, session))
        elif pick < 0.85:  # an analytics event
            cur.execute("INSERT INTO WhatsAppAnalyticsEvent (id, sessionId, eventType, "
                        "payload) VALUES (%s, %s, %s, %s)",
                        (f"demo-evt-{uuid.uuid4().hex[:12]}", rng.choice(sessions),
                         rng.choice(["flow_open", "button_click", "catalog_view"]),
                         json.dumps({"screen": rng.choice(["home", "packages", "checkout"])})))
        else:  # a customer edit
            tags = rng.sample(["vip", "goa", "kerala", "honeymoon", "family", "repeat"], 2)
            cur.execute("UPDATE WhatsAppCustomer SET tags = %s, updatedAt = NOW(3) "
                        "WHERE id = %s", (json.dumps(tags), rng.choice(customers)))


class DemoServers:
    """Private servers from the installed binaries; Docker containers when the binaries
    are missing and a Docker engine answers."""

    def __init__(self, source: str = "mariadb") -> None:
        self.source = source  # "mariadb" or "mysql" (Oracle MySQL)
        self.mysql: MariaDBServer | MySQLServer | None = None
        self.pg: PostgresServer | None = None
        self.containers: list[Any] = []
        self.mysql_root = self.pg_admin = ""

    def start(self, out: TextIO) -> None:
        try:
            self.mysql = MySQLServer() if self.source == "mysql" else MariaDBServer()
            self.pg = PostgresServer()
            self.mysql.start()
            self.pg.start()
            self.mysql_root, self.pg_admin = self.mysql.url(), self.pg.url("postgres")
            return
        except EmbeddedServerError as exc:
            self.cleanup()
            if not docker_available():
                raise WacdcError(f"could not start the local servers: {exc}; install MariaDB "
                                 "(or MySQL) and PostgreSQL server binaries, or Docker") from None
            print(f"  no local servers ({exc}); using Docker containers instead", file=out)
        container, self.mysql_root = start_mysql_container(self.source)
        self.containers.append(container)
        container, self.pg_admin = start_postgres_container()
        self.containers.append(container)

    def source_url(self, database: str) -> str:
        return self.mysql_root.rstrip("/") + "/" + database

    def target_url(self, database: str) -> str:
        return self.pg_admin.rsplit("/", 1)[0] + "/" + database

    @property
    def dirs(self) -> list[Path]:
        return [s.base_dir for s in (self.mysql, self.pg) if s is not None]

    @property
    def log_dir(self) -> Path:
        return self.dirs[0] if self.dirs else Path(tempfile.gettempdir())

    def keep(self, out: TextIO) -> None:
        if self.containers:
            print("--keep: containers are removed when the demo exits (testcontainers); "
                  "use the local binaries to keep servers", file=out)
            self.cleanup()
            return
        assert self.mysql is not None and self.pg is not None
        self.mysql.detach()
        self.pg.detach()
        print(f"--keep: the servers stay up\n  source  {self.source_url(SOURCE_DB)}\n"
              f"  target  {self.target_url(TARGET_DB)}\n  stop them with: kill "
              f"{self.mysql.proc.pid} {self.pg.proc.pid}; then remove "  # type: ignore[union-attr]
              f"{' '.join(str(d) for d in self.dirs)}", file=out)

    def cleanup(self) -> None:
        for server in (self.mysql, self.pg):
            if server is not None:
                server.cleanup()
        for container in self.containers:
            container.stop()
        self.containers.clear()

    @property
    def running(self) -> bool:
        if self.containers:
            return True
        return bool(self.mysql and self.pg and self.mysql.running and self.pg.running)


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _per_table(metrics_text: str, metric: str) -> dict[str, float]:
    """Sum of a labelled metric per `table` label, from the Prometheus text format."""
    per_table: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith(metric + "{"):
            labels, value = line[len(metric) + 1:].rsplit("} ", 1)
            table = dict(p.split("=", 1) for p in labels.split(","))["table"].strip('"')
            per_table[table] = per_table.get(table, 0) + float(value)
    return per_table


class LiveView:
    """One status line per second: phase, snapshot progress, lag, busiest tables."""

    def __init__(self, port: int, out: TextIO) -> None:
        self.port, self.out = port, out
        self.last: dict[str, float] = {}
        self.last_at = time.monotonic()
        self.copied = 0.0

    def show(self, traffic: AppTraffic) -> dict[str, Any] | None:
        try:
            status = json.loads(_get(self.port, "/status")[1])
            metrics_text = _get(self.port, "/metrics")[1]
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
            return None
        now = time.monotonic()
        applied = _per_table(metrics_text, "wacdc_rows_applied_total")
        span = max(now - self.last_at, 1e-6)
        rates = {t: (n - self.last.get(t, 0)) / span for t, n in applied.items()}
        self.last, self.last_at = applied, now
        busiest = sorted(((r, t) for t, r in rates.items() if r > 0), reverse=True)[:3]
        tables = ", ".join(f"{t.removeprefix('WhatsApp')} {r:.0f}/s" for r, t in busiest)
        phase = status["phase"]
        detail = ""
        if phase == "snapshot":
            copied = sum(_per_table(metrics_text, "wacdc_snapshot_rows_total").values())
            estimate = sum(_per_table(metrics_text, "wacdc_snapshot_rows_estimated").values())
            rate = (copied - self.copied) / span
            self.copied = copied
            eta = (f", ETA {(estimate - copied) / rate:.0f}s" if rate > 0 and estimate > copied
                   else "")
            share = f" of ~{estimate:,.0f} ({min(copied / estimate, 1):.0%})" if estimate else ""
            detail = f"snapshot {copied:,.0f} rows{share}{eta}  "
        line = (f"{time.strftime('%H:%M:%S')}  phase {phase:<9} lag {status['lag_seconds']:.3f}s "
                f"({status['lag_bytes']:,} B)  app writes {traffic.writes:,}  {detail}{tables}")
        print(line, file=self.out, flush=True)
        return status


SOURCES = ("auto", "mysql", "mariadb")


def demo_source(wanted: str) -> str:
    """`auto`: Oracle MySQL (what production runs) when one can be started, else MariaDB."""
    if wanted != "auto":
        return wanted
    return "mysql" if find_oracle_mysql() is not None else "mariadb"


def run_demo(rows: int = 20_000, rate: float = 50, duration: float = 20, keep: bool = False,
             out: TextIO = sys.stdout, source: str = "auto") -> int:
    configure_logging("console", "warning")  # the demo prints; the daemon logs to a file
    servers = DemoServers(demo_source(source))
    daemon: subprocess.Popen | None = None
    traffic: AppTraffic | None = None
    try:
        name = "Oracle MySQL" if servers.source == "mysql" else "MariaDB"
        print(f"wacdc demo: starting private {name} and PostgreSQL servers ...", file=out,
              flush=True)
        servers.start(out)
        source_url = servers.source_url(SOURCE_DB)
        with psycopg.connect(servers.pg_admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TARGET_DB}")
        target_url = servers.target_url(TARGET_DB)
        print(f"  source  {redact(source_url)}\n  target  {redact(target_url)}", file=out)
        started = time.monotonic()
        counts = create_whatsapp_database(source_url, rows)
        print(f"loaded {sum(counts.values()):,} rows into 19 tables "
              f"({counts.get('WhatsAppMessage', 0):,} messages) in "
              f"{time.monotonic() - started:.1f}s", file=out, flush=True)

        port = free_port()
        log_path = servers.log_dir / f"wacdc-demo-{os.getpid()}.log"
        # Only the demo's own servers, whatever this shell has configured (the environment
        # wins over arguments in wacdc's settings, so it is set for this process too).
        for name in [n for n in os.environ if n.startswith("WACDC_")]:
            del os.environ[name]
        os.environ.update({"WACDC_SOURCE_URL": source_url, "WACDC_TARGET_URL": target_url,
                           "WACDC_METRICS_PORT": str(port), "WACDC_LOG_FORMAT": "json",
                           "WACDC_MATVIEW_REFRESH": "0"})
        env = dict(os.environ)
        with open(log_path, "wb") as log_file:
            daemon = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=log_file)
        print(f"wacdc run started: metrics at http://127.0.0.1:{port}/metrics, "
              f"/healthz, /status (log {log_path})", file=out, flush=True)
        traffic = AppTraffic(source_url, rate)
        traffic.start()
        view = LiveView(port, out)
        streaming_since = None
        while True:
            if daemon.poll() is not None:
                raise WacdcError(f"wacdc run exited with {daemon.returncode}; see {log_path}")
            if traffic.error:
                raise WacdcError(f"the traffic generator failed: {traffic.error}")
            status = view.show(traffic)
            if status and status["phase"] == "streaming" and streaming_since is None:
                streaming_since = time.monotonic()
            if streaming_since is not None and time.monotonic() - streaming_since >= duration:
                break
            time.sleep(1)

        print("\nrequesting the cutover (the app keeps writing) ...", file=out, flush=True)
        settings = load_settings(None)
        with psycopg.connect(target_url, autocommit=True) as conn:
            cutover_id = cutover.request(conn, "wacdc demo")
            while True:
                doc = cutover.latest(conn)
                assert doc is not None and doc["id"] == cutover_id
                if doc["status"] in cutover.FINAL:
                    break
                if daemon.poll() is not None and daemon.returncode != 0:
                    raise WacdcError(f"wacdc run failed during the cutover; see {log_path}")
                time.sleep(0.1)
        daemon.wait(timeout=120)  # it validates, analyzes and creates the extras, then exits
        with psycopg.connect(target_url, autocommit=True) as conn:
            doc = cutover.latest(conn) or doc
        traffic.join(timeout=10)
        traffic.stop.set()
        if doc["status"] != "done":
            print(f"cutover {doc['status']}: {doc['reason']}", file=out)
            return 1
        print(f"cutover done: write pause {doc['freeze_seconds'] * 1000:.0f} ms; the app wrote "
              f"{traffic.writes:,} transactions"
              + (", then its next write was refused by the fence (tables renamed "
                 "*__wacdc_retired): time to point WHATSAPP_DATABASE_URL at PostgreSQL"
                 if traffic.fenced_at else ""), file=out, flush=True)
        print("\nverification (wacdc verify):", file=out, flush=True)
        reports = verify(settings)
        print(render(reports, repair=False), file=out)
        code = exit_code(reports)
        print(f"\ndemo {'passed' if code == 0 else 'FOUND DIFFERENCES'}: write pause "
              f"{doc['freeze_seconds'] * 1000:.0f} ms, extras {', '.join(doc['extras'] or [])}",
              file=out, flush=True)
        return code
    finally:
        if traffic is not None:
            traffic.stop.set()
        if daemon is not None and daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        if keep and servers.running:
            servers.keep(out)
        else:
            used = ", ".join(str(d) for d in servers.dirs) or "the containers"
            servers.cleanup()
            print(f"cleaned up: servers stopped, {used} removed", file=out, flush=True)
