"""Test servers and databases: private binaries, testcontainers, or given URLs.

Every real-server test runs once per source flavour, `mariadb` and `mysql` (Oracle
MySQL 8/9), each from, in order of preference:
1. WACDC_TEST_MYSQL_URL / WACDC_TEST_PG_URL: existing servers (no stop/kill/restart);
   the given source's flavour runs, the other one is skipped.
2. Private servers from installed binaries (wacdc.devtools.embedded): mariadbd; an Oracle mysqld
   >= 8.0, or the Debian sid root with MySQL 9 that scripts/mysql-root.sh builds.
3. Docker present: testcontainers (mariadb:10.11 / mysql:9, postgres:16).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg
import pymysql
from psycopg import sql

from wacdc.config import DatabaseUrl, parse_url
from wacdc.devtools.embedded import (
    MariaDBServer,
    MySQLServer,
    PostgresServer,
    docker_available,
    find_binary,
    find_oracle_mysql,
    start_mysql_container,
    start_postgres_container,
)
from wacdc.source.sql import quote_ident

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent.parent
WHATSAPP_DDL = REPO / "config" / "whatsapp_mysql.sql"


FLAVOURS = ("mariadb", "mysql")


class ServerHandle:
    """A server the tests talk to; `controllable` ones can be stopped, killed and restarted.

    `flavour` is the source's kind: "mariadb" or "mysql" (Oracle MySQL), "postgres"."""

    controllable = False

    def __init__(self, url: str, flavour: str = "postgres") -> None:
        self.base_url = url
        self.flavour = flavour

    @property
    def is_mariadb(self) -> bool:
        return self.flavour == "mariadb"

    def url(self, database: str) -> str:
        parsed = self.base_url.rstrip("/")
        head = parsed.rsplit("/", 1)[0] if parsed.count("/") > 2 else parsed
        return f"{head}/{database}"

    def stop(self) -> None:
        raise NotImplementedError("this server is not controlled by the tests")

    kill = start = restart = stop

    def close(self) -> None:
        """Nothing to clean up for a server we did not start."""


class EmbeddedHandle(ServerHandle):
    controllable = True

    def __init__(self, server: MariaDBServer | MySQLServer | PostgresServer,
                 flavour: str) -> None:
        self.server = server
        server.start()
        super().__init__(server.url(""), flavour)

    def stop(self) -> None:
        self.server.stop()

    def kill(self) -> None:
        self.server.kill()

    def start(self) -> None:
        self.server.start()

    def restart(self) -> None:
        self.server.restart()

    def close(self) -> None:
        self.server.cleanup()


class ContainerHandle(ServerHandle):
    """testcontainers-backed server. Stop/kill/restart act on the container."""

    controllable = True

    def __init__(self, container: object, url: str, flavour: str) -> None:
        self.container = container
        super().__init__(url, flavour)

    def _docker(self):  # type: ignore[no-untyped-def]
        return self.container.get_wrapped_container()  # type: ignore[attr-defined]

    def stop(self) -> None:
        self._docker().stop()

    def kill(self) -> None:
        self._docker().kill()

    def start(self) -> None:
        self._docker().start()

    def restart(self) -> None:
        self._docker().restart()

    def close(self) -> None:
        self.container.stop()  # type: ignore[attr-defined]


class SourceUnavailable(RuntimeError):
    """This source flavour cannot be started here (the message says how to get it)."""


def source_flavour(url: str) -> str:
    with mysql_connect(url, database="") as conn:
        return "mariadb" if "mariadb" in conn.get_server_info().lower() else "mysql"


def start_mysql(flavour: str) -> ServerHandle:
    """A source server of this flavour, or SourceUnavailable saying why not."""
    given = os.environ.get("WACDC_TEST_MYSQL_URL")
    if given:
        found = source_flavour(given)
        if found != flavour:
            raise SourceUnavailable(f"WACDC_TEST_MYSQL_URL is a {found} server; the "
                                    f"{flavour} runs need a private one (unset it)")
        return ServerHandle(given, flavour)
    if flavour == "mariadb" and find_binary("mariadbd"):
        return EmbeddedHandle(MariaDBServer(), flavour)
    if flavour == "mysql" and find_oracle_mysql():
        return EmbeddedHandle(MySQLServer(), flavour)
    if docker_available():
        return ContainerHandle(*start_mysql_container(flavour), flavour)
    if flavour == "mysql":
        raise SourceUnavailable(
            "no Oracle MySQL: as root, `make servers` builds a Debian sid root with MySQL 9 "
            "(scripts/mysql-root.sh); or install mysql-server 8.0+, or start Docker")
    raise SourceUnavailable("no MariaDB: install mariadb-server (`make servers` as root), "
                            "or start Docker")


def start_postgres() -> ServerHandle:
    if os.environ.get("WACDC_TEST_PG_URL"):
        return ServerHandle(os.environ["WACDC_TEST_PG_URL"])
    if docker_available():
        return ContainerHandle(*start_postgres_container(), "postgres")
    return EmbeddedHandle(PostgresServer(), "postgres")


# --- databases ----------------------------------------------------------------------

def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def mysql_connect(url: DatabaseUrl | str, database: str | None = None,
                  **kwargs: object) -> pymysql.connections.Connection:
    parsed = parse_url(url, "mysql") if isinstance(url, str) else url
    return pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.user,
                           password=parsed.password,
                           database=parsed.database if database is None else database,
                           charset="utf8mb4", **{"autocommit": True, **kwargs})  # type: ignore[arg-type]


def split_sql(text: str) -> list[str]:
    """Statements of a DDL file (no semicolons inside literals in our fixtures)."""
    from wacdc.devtools.datagen import sql_statements

    return sql_statements(text)


@dataclass
class SourceDb:
    server: ServerHandle
    name: str

    @property
    def url(self) -> str:
        return self.server.url(self.name)

    def connect(self, **kwargs: object) -> pymysql.connections.Connection:
        return mysql_connect(self.url, **kwargs)

    def execute(self, *statements: str, params: tuple | None = None) -> None:
        with self.connect() as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement, params)


@dataclass
class TargetDb:
    server: ServerHandle
    name: str

    @property
    def url(self) -> str:
        return self.server.url(self.name)

    def connect(self, **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, **kwargs)  # type: ignore[arg-type]


def as_the_writer(pg: psycopg.Connection) -> None:
    """Let a test's connection edit wacdc's state rows, which the writer fence guards
    (wacdc.sink.writer): it joins the current writer's epoch, as a daemon's would."""
    pg.execute("SELECT set_config('wacdc.writer_epoch', "
               "(SELECT epoch::text FROM wacdc.writer WHERE id = 1), false)")


def create_source_db(server: ServerHandle, ddl: Path | None = WHATSAPP_DDL) -> SourceDb:
    db = SourceDb(server, unique_name("src"))
    with mysql_connect(server.url(""), database="") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {quote_ident(db.name)} CHARACTER SET utf8mb4 "
                    "COLLATE utf8mb4_unicode_ci")
    if ddl is not None:
        db.execute(*split_sql(ddl.read_text()))
    return db


def _is_down(server: ServerHandle) -> bool:
    # A fault test may leave a private server stopped; it is discarded at session end.
    return isinstance(server, EmbeddedHandle) and not server.server.running


def drop_source_db(db: SourceDb) -> None:
    if _is_down(db.server):
        return
    with mysql_connect(db.server.url(""), database="") as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(db.name)}")


def create_target_db(server: ServerHandle) -> TargetDb:
    db = TargetDb(server, unique_name("tgt"))
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.name)))
    return db


def drop_target_db(db: TargetDb) -> None:
    if _is_down(db.server):
        return
    with psycopg.connect(db.server.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(db.name)))


# --- running the CLI ----------------------------------------------------------------

@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


# Settings for a whole test run, e.g. WACDC_TEST_ENV="WACDC_DECODER=library": `make test`
# runs the streaming tests again with the library decoder and with the decode process.
TEST_ENV = dict(pair.split("=", 1) for pair in os.environ.get("WACDC_TEST_ENV", "").split(",")
                if pair)


def wacdc_env(source: SourceDb | str | None, target: TargetDb | str | None,
              **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WACDC_", "DATABASE_URL", "WHATSAPP_"))}
    if source is not None:
        env["WACDC_SOURCE_URL"] = source if isinstance(source, str) else source.url
    if target is not None:
        env["WACDC_TARGET_URL"] = target if isinstance(target, str) else target.url
    env["WACDC_LOG_FORMAT"] = "json"
    env["WACDC_METRICS_PORT"] = "0"  # tests that scrape pick a free port themselves
    env["WACDC_MATVIEW_REFRESH"] = "0"  # after a cutover: exit (tests of the schedule set it)
    env["WACDC_REVERSE"] = "0"  # ... and no way back (the rollback tests turn it on)
    env.update(TEST_ENV)
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> CliResult:
    proc = subprocess.run([sys.executable, "-m", "wacdc.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False,
                          cwd=REPO)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def fill_whatsapp(db: SourceDb, counts: dict[str, int] | None = None, messages: int = 200,
                  seed: int = 1) -> dict[str, int]:
    """Generated rows for the 19 tables (datagen), parents first; returns rows per table."""
    from wacdc.devtools.datagen import default_counts, load_data_profile, populate
    from wacdc.schema.profile import load_profile
    from wacdc.source.introspect import introspect_tables

    profile = load_profile("prisma")
    url = parse_url(db.url, "mysql")
    with mysql_connect(url) as conn:
        conn.autocommit(False)
        tables = introspect_tables(conn, db.name, profile.tables)
        wanted = counts or default_counts(messages, load_data_profile())
        return populate(conn, [tables[n] for n in profile.tables if n in tables], wanted,
                        profile, seed=seed)


class LogTail:
    """Reads a child's stderr on a thread so a test can wait for one of its log lines."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines: list[str] = []
        self._new = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            with self._new:
                self._lines.append(raw.decode(errors="replace"))
                self._new.notify_all()
        with self._new:
            self._lines.append("")  # end of stream: the child closed stderr (exited)
            self._new.notify_all()

    @property
    def text(self) -> str:
        with self._new:
            return "".join(self._lines)

    def wait_for(self, needle: str, timeout: float) -> bool:
        """True once a line holding `needle` was read; False on timeout or end of stream."""
        deadline = time.monotonic() + timeout
        with self._new:
            while True:
                if any(needle in line for line in self._lines):
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or (self._lines and self._lines[-1] == ""):
                    return False
                self._new.wait(left)

    def finish(self, timeout: float = 30) -> str:
        """The whole log once the child has exited and its stderr is drained."""
        self._thread.join(timeout)
        return self.text


@contextlib.contextmanager
def limited_user(db: SourceDb, prefix: str, grants: list[str]) -> Iterator[str]:
    """A source user with only `grants` ("SELECT ON `{db}`.*" with {db} the database);
    yields its URL, drops it afterwards."""
    user = f"{prefix}_{db.name[-6:]}"
    with mysql_connect(db.server.url(""), database="") as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'Sekr3t-pw'")
        for grant in grants:
            cur.execute(f"GRANT {grant.format(db=db.name)} TO '{user}'@'%'")
    try:
        base = db.server.url(db.name)
        url = re.sub(r"//root(:[^@]*)?@", f"//{user}:Sekr3t-pw@", base, count=1)
        assert url != base
        yield url
    finally:
        with mysql_connect(db.server.url(""), database="") as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")
