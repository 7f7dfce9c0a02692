"""`wacdc demo`: the whole job on private local servers, in one command.

Starts a private MariaDB/MySQL and PostgreSQL from the installed binaries (temp dirs,
free ports), loads the 19 WhatsApp tables with generated data, runs `wacdc run` while
a traffic generator behaves like the app (devtools/traffic.py), shows a live view
(devtools/liveview.py), then cuts over under that traffic and prints the
verification report and the write pause. Everything it started is stopped and
removed on exit or Ctrl-C, unless --keep.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg import sql

from wacdc import cutover
from wacdc.config import Settings, load_settings
from wacdc.devtools.bridgedemo import QUIET_S, bridge_cutover
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
from wacdc.devtools.liveview import LiveView
from wacdc.devtools.traffic import AppTraffic
from wacdc.devtools.wayback import reverse_under_traffic, roll_back, wait_until
from wacdc.errors import WacdcError
from wacdc.log import configure_logging, redact
from wacdc.verify import exit_code, render, verify

SOURCE_DB = "whatsapp"
TARGET_DB = "whatsapp"


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


SOURCES = ("auto", "mysql", "mariadb")


def demo_source(wanted: str) -> str:
    """`auto`: Oracle MySQL (what production runs) when one can be started, else MariaDB."""
    if wanted != "auto":
        return wanted
    return "mysql" if find_oracle_mysql() is not None else "mariadb"


class DemoRun:
    """One demo, phase by phase; `close` stops what it started (daemon, traffic)."""

    def __init__(self, servers: DemoServers, out: TextIO) -> None:
        self.servers, self.out = servers, out
        self.daemon: subprocess.Popen | None = None
        self.traffic: AppTraffic | None = None
        self.log_path = Path()
        self.port = 0  # the daemon's HTTP port, once started

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start_servers(self) -> tuple[str, str]:
        """The private servers and the target database; (source URL, target URL)."""
        servers = self.servers
        name = "Oracle MySQL" if servers.source == "mysql" else "MariaDB"
        self.say(f"wacdc demo: starting private {name} and PostgreSQL servers ...")
        servers.start(self.out)
        source_url = servers.source_url(SOURCE_DB)
        with psycopg.connect(servers.pg_admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TARGET_DB)))
        target_url = servers.target_url(TARGET_DB)
        print(f"  source  {redact(source_url)}\n  target  {redact(target_url)}", file=self.out)
        return source_url, target_url

    def load(self, source_url: str, rows: int) -> None:
        started = time.monotonic()
        counts = create_whatsapp_database(source_url, rows)
        self.say(f"loaded {sum(counts.values()):,} rows into 19 tables "
                 f"({counts.get('WhatsAppMessage', 0):,} messages) in "
                 f"{time.monotonic() - started:.1f}s")

    def start_daemon(self, source_url: str, target_url: str,
                     extra: dict[str, str] | None = None) -> int:
        """`wacdc run` in a child process, its log in the servers' directory; the port."""
        port = self.port = free_port()
        self.log_path = self.servers.log_dir / f"wacdc-demo-{os.getpid()}.log"
        # Only the demo's own servers, whatever this shell has configured (the environment
        # wins over arguments in wacdc's settings, so it is set for this process too).
        for name in [n for n in os.environ if n.startswith("WACDC_")]:
            del os.environ[name]
        os.environ.update({"WACDC_SOURCE_URL": source_url, "WACDC_TARGET_URL": target_url,
                           "WACDC_METRICS_PORT": str(port), "WACDC_LOG_FORMAT": "json",
                           "WACDC_MATVIEW_REFRESH": "0", **(extra or {})})
        env = dict(os.environ)
        with open(self.log_path, "wb") as log_file:
            self.daemon = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run"], env=env,
                                           stdout=subprocess.DEVNULL, stderr=log_file)
        self.say(f"wacdc run started: metrics at http://127.0.0.1:{port}/metrics, "
                 f"/healthz, /status (log {self.log_path})")
        return port

    def stream(self, daemon: subprocess.Popen, traffic: AppTraffic, view: LiveView,
               duration: float) -> None:
        """Show the live view until `duration` seconds of streaming have passed."""
        streaming_since = None
        while True:
            if daemon.poll() is not None:
                raise WacdcError(f"wacdc run exited with {daemon.returncode}; "
                                 f"see {self.log_path}")
            if traffic.error:
                raise WacdcError(f"the traffic generator failed: {traffic.error}")
            status = view.show(traffic)
            if status and status["phase"] == "streaming" and streaming_since is None:
                streaming_since = time.monotonic()
            if streaming_since is not None and time.monotonic() - streaming_since >= duration:
                return
            time.sleep(1)

    def cut_over(self, daemon: subprocess.Popen, target_url: str) -> dict[str, Any]:
        """Request the cutover, follow it to its end; the final cutover row."""
        with psycopg.connect(target_url, autocommit=True) as conn:
            cutover_id = cutover.request(conn, "wacdc demo")
            while True:
                doc = cutover.latest(conn)
                assert doc is not None and doc["id"] == cutover_id
                if doc["status"] in cutover.FINAL:
                    break
                if daemon.poll() is not None and daemon.returncode != 0:
                    raise WacdcError(f"wacdc run failed during the cutover; see {self.log_path}")
                time.sleep(0.1)
        # It validates, analyzes and creates the extras, then replicates in reverse.
        wait_until("phase reverse", lambda s: s["phase"] == "reverse", self.port,
                   lambda: daemon.poll() is None)
        with psycopg.connect(target_url, autocommit=True) as conn:
            return cutover.latest(conn) or doc

    def outcome(self, kind: str, doc: dict[str, Any], wrote: str, fence: str,
                fenced_at: float | None) -> bool:
        """Say how a cutover or rollback ended; True when it is done."""
        if doc["status"] != "done":
            print(f"{kind} {doc['status']}: {doc['reason']}", file=self.out)
            return False
        self.say(f"{kind} done: write pause {doc['freeze_seconds'] * 1000:.0f} ms; the app "
                 f"{wrote}" + (f", then its next write was refused by {fence}"
                               if fenced_at else ""))
        return True

    def report(self, doc: dict[str, Any], traffic: AppTraffic, settings: Settings) -> int:
        """The cutover's outcome and the verification; the demo's exit code."""
        if not self.outcome("cutover", doc, f"wrote {traffic.writes:,} transactions",
                            "the fence (tables renamed *__wacdc_retired): time to point "
                            "WHATSAPP_DATABASE_URL at PostgreSQL", traffic.fenced_at):
            return 1
        self.say("\nverification (wacdc verify):")
        reports = verify(settings)
        print(render(reports, repair=False), file=self.out)
        code = exit_code(reports)
        self.say(f"cutover: write pause {doc['freeze_seconds'] * 1000:.0f} ms, extras "
                 f"{', '.join(doc['extras'] or [])}")
        return code

    def way_back(self, settings: Settings, target_url: str, source_url: str, rate: float,
                 duration: float) -> int:
        """The app on PostgreSQL, then the rollback under its traffic, MySQL writes
        flowing forward again, and the verification."""
        daemon = self.daemon
        assert daemon is not None
        alive = lambda: daemon.poll() is None  # noqa: E731
        self.say("\nthe app now writes PostgreSQL; wacdc keeps MySQL current (reverse):")
        pg = reverse_under_traffic(self.port, target_url, rate, duration, alive, self.out)
        self.say("\nrequesting the rollback (the app keeps writing PostgreSQL) ...")
        doc = roll_back(target_url, alive)
        pg.join(timeout=10)
        pg.stop.set()
        if not self.outcome("rollback", doc, f"wrote {pg.writes:,} transactions to PostgreSQL",
                            "the PostgreSQL fence: time to point WHATSAPP_DATABASE_URL back "
                            "at MySQL", pg.fenced_at):
            return 1
        self.traffic = mysql = AppTraffic(source_url, rate)
        mysql.start()
        self.say("the app writes MySQL again; wacdc replicates it forward ...")
        time.sleep(min(duration, 3))
        mysql.stop.set()
        mysql.join(timeout=10)
        wait_until("forward lag 0", lambda s: s["phase"] == "streaming" and s["lag_known"]
                   and s["lag_seconds"] == 0, self.port, alive)
        self.say("\nverification after the rollback (wacdc verify):")
        reports = verify(settings)
        print(render(reports, repair=False), file=self.out)
        return exit_code(reports)

    def close(self, keep: bool) -> None:
        """Stop the traffic and the daemon; stop and remove the servers unless `keep`."""
        if self.traffic is not None:
            self.traffic.stop.set()
        daemon = self.daemon
        if daemon is not None and daemon.poll() is None:
            daemon.terminate()
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        servers = self.servers
        if keep and servers.running:
            servers.keep(self.out)
        else:
            used = ", ".join(str(d) for d in servers.dirs) or "the containers"
            servers.cleanup()
            self.say(f"cleaned up: servers stopped, {used} removed")


def run_demo(rows: int = 20_000, rate: float = 50, duration: float = 20, keep: bool = False,
             out: TextIO = sys.stdout, source: str = "auto", bridge: bool = False) -> int:
    configure_logging("console", "warning")  # the demo prints; the daemon logs to a file
    demo = DemoRun(DemoServers(demo_source(source)), out)
    try:
        source_url, target_url = demo.start_servers()
        demo.load(source_url, rows)
        port = demo.start_daemon(source_url, target_url, {"WACDC_BRIDGE_QUIET": str(QUIET_S)}
                                 if bridge else None)
        daemon = demo.daemon
        assert daemon is not None
        demo.traffic = traffic = AppTraffic(source_url, rate)
        traffic.start()
        demo.stream(daemon, traffic, LiveView(port, out), duration)
        demo.say("\nrequesting the cutover (the app keeps writing) ...")
        settings = load_settings(None)
        if bridge:
            doc = bridge_cutover(port, target_url, traffic, rate, duration,
                                 lambda: daemon.poll() is None, out)
        else:
            doc = demo.cut_over(daemon, target_url)
        traffic.join(timeout=10)
        traffic.stop.set()
        code = demo.report(doc, traffic, settings)
        if code == 0:
            code = demo.way_back(settings, target_url, source_url, rate, duration)
        demo.say(f"\ndemo {'passed' if code == 0 else 'FOUND DIFFERENCES'}: cutover and "
                 "rollback under traffic, both verified")
        return code
    finally:
        demo.close(keep)
