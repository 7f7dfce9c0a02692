"""pg_chameleon against wacdc on the same backlog (part of `make bench`).

pg_chameleon (PyPI, pinned below) goes into its own virtualenv owned by an unprivileged
system user (it refuses to run as root). Both replicators are set up on the same source
database, each with its own PostgreSQL database: pg_chameleon with `init_replica`, wacdc
with `run --exit-when-caught-up` (their own snapshots, not timed). With both stopped, one
backlog of row changes is committed on the source. Then each drains it, timed from the
start of its process until the target table matches the source:
  - pg_chameleon: `start_replica` (in the foreground), polled every 0.2 s; it reads the
    binlog into its log tables, then replays them with a plpgsql function, and only the
    replayed table counts;
  - wacdc: `run --exit-when-caught-up`, from process start to exit.
"Matches" means the same row count and number of rows with status 'read' (polled), and
then, checked once, the same order-independent checksum of every (id, status).

Standalone (as root): `python bench/chameleon.py --changes 20000` starts private servers
itself; `--install-only` just installs pg_chameleon.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

import psycopg
import pymysql

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run on its own: `python bench/<this>.py`
    sys.path.insert(0, str(REPO))

from bench import wacdc_process  # noqa: E402

CHAMELEON_VERSION = "2.0.21"
# Tested together on Python 3.11. pg_chameleon's entry point imports pkg_resources,
# which setuptools 81 dropped.
PINS = (f"pg_chameleon=={CHAMELEON_VERSION}", "mysql-replication==1.0.17", "PyMySQL==1.2.4",
        "psycopg2-binary==2.9.13", "PyYAML==6.0.4", "daemonize==2.5.0", "parsy==2.2",
        "tabulate==0.10.0", "rollbar==1.5.0", "setuptools<81")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's 3.11 (its venv module: python3-venv)
BENCH_USER = "wacdc-bench"
CONFIG = "wacdc_bench"  # ~/.pg_chameleon/configuration/wacdc_bench.yml
SOURCE = "mysql"  # the source's name in that configuration
MYSQL_USER, MYSQL_PASSWORD = "cham_replica", "cham-bench"
PG_ROLE, PG_PASSWORD = "cham_replica", "cham-bench"
CHAM_DB, CHAM_SCHEMA, WACDC_DB = "cham_t", "cham", "wacdc_cham_t"
TABLE = "WhatsAppMessage"
POLL_S = 0.2
# pg_chameleon's settings: its example configuration's, but for a shorter sleep_loop (the
# pause of its read and replay loops when idle; the example's is 1 s).
BATCH_ROWS = 10_000  # replica_batch_size and replay_max_rows
SLEEP_LOOP_S = 0.2
TIMEOUT_S = 1800.0

MATCH_RULE = (f"{TABLE}: same row count and same count of status = 'read' (polled every "
              f"{POLL_S} s), then the same order-independent checksum of every (id, status)")


def log(message: str) -> None:
    print(f"chameleon bench: {message}", flush=True)


@dataclass(frozen=True)
class Chameleon:
    """pg_chameleon installed for BENCH_USER; every command runs as that user."""

    user: pwd.struct_passwd
    venv: Path

    @property
    def home(self) -> Path:
        return Path(self.user.pw_dir)

    @property
    def output(self) -> Path:
        return self.home / ".pg_chameleon" / "logs" / "bench-output.log"

    def env(self) -> dict[str, str]:
        pip = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
        return {**pip, "HOME": str(self.home), "USER": self.user.pw_name, "LANG": "C.UTF-8",
                "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"}

    def _as_user(self) -> dict:
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": [],
                "env": self.env(), "cwd": self.home}

    def run_plain(self, args: list[str]) -> str:
        """Run a command as the user; its output, or an error carrying it."""
        result = subprocess.run(args, capture_output=True, text=True, check=False,
                                **self._as_user())
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result.stdout

    def command(self, name: str) -> list[str]:
        source = [] if name == "create_replica_schema" else ["--source", SOURCE]  # it refuses one
        return [str(self.venv / "bin" / "chameleon"), name, "--config", CONFIG, *source]

    def run(self, name: str) -> None:
        """A pg_chameleon command to its end; it may exit 0 after logging an error."""
        log(f"chameleon {name}")
        with self.output.open("a") as out:
            out.write(f"\n===== chameleon {name}\n")
            out.flush()
            code = subprocess.run(self.command(name), stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, check=False,
                                  **self._as_user()).returncode
        text = self.output.read_text().rpartition(f"===== chameleon {name}\n")[2]
        # daemonize prints one traceback at every foreground exit (atexit, SystemExit: 0);
        # pg_chameleon's own failures print another, or log one of those words.
        crashed = text.count("Traceback") > text.count("Exception ignored in atexit")
        if code != 0 or crashed or any(w in text for w in ("ERROR", "FATAL", "CRITICAL",
                                                           "Could not")):
            raise RuntimeError(f"chameleon {name} failed (exit {code}):\n{self.tail()}")

    def start(self) -> subprocess.Popen:
        """start_replica in the foreground (log_dest stdout): the process is the replica."""
        with self.output.open("a") as out:
            out.write("\n===== chameleon start_replica\n")
            out.flush()
            return subprocess.Popen(self.command("start_replica"), stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, **self._as_user())

    def tail(self, lines: int = 40) -> str:
        if not self.output.exists():
            return "(no pg_chameleon output)"
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])


def ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(BENCH_USER)
    except KeyError:
        log(f"creating the system user {BENCH_USER} (pg_chameleon refuses to run as root)")
        subprocess.run(["useradd", "--system", "--create-home", "--shell", "/usr/sbin/nologin",
                        BENCH_USER], check=True)
        return pwd.getpwnam(BENCH_USER)


def install() -> Chameleon:
    """Idempotent: PINS in ~BENCH_USER/chameleon-venv, made with the system's python3."""
    if os.geteuid() != 0:
        raise RuntimeError("the pg_chameleon benchmark runs as root: it creates the "
                           f"unprivileged user {BENCH_USER} and runs pg_chameleon as it")
    user = ensure_user()
    cham = Chameleon(user, Path(user.pw_dir) / "chameleon-venv")
    stamp = cham.venv / ".wacdc-pins"
    if stamp.exists() and stamp.read_text() == "\n".join(PINS):
        log(f"pg_chameleon {CHAMELEON_VERSION} already in {cham.venv}")
        return cham
    log(f"installing {' '.join(PINS)} into {cham.venv} (as {BENCH_USER}, {SYSTEM_PYTHON})")
    cham.run_plain([SYSTEM_PYTHON, "-m", "venv", "--clear", str(cham.venv)])
    cham.run_plain([str(cham.venv / "bin" / "pip"), "install", "--quiet", *PINS])
    out = cham.run_plain([str(cham.venv / "bin" / "chameleon"), "--version"])
    if out.split()[-1:] != [CHAMELEON_VERSION]:  # it prints "pg-chameleon 2.0.21"
        raise RuntimeError(f"chameleon --version says {out!r}, not {CHAMELEON_VERSION}")
    stamp.write_text("\n".join(PINS))
    log(f"installed: {out.strip()}")
    return cham


def configure(cham: Chameleon, source_url: str, pg_url: str) -> None:
    """The source user and target database pg_chameleon's docs ask for, and its YAML;
    an empty database for wacdc."""
    source_db = urlsplit(source_url).path.lstrip("/")
    with _mysql(source_url) as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS '{MYSQL_USER}'@'%'")
        cur.execute(f"CREATE USER '{MYSQL_USER}'@'%' IDENTIFIED BY '{MYSQL_PASSWORD}'")
        cur.execute(f"GRANT ALL ON `{source_db}`.* TO '{MYSQL_USER}'@'%'")
        cur.execute(f"GRANT RELOAD, REPLICATION CLIENT, REPLICATION SLAVE ON *.* "
                    f"TO '{MYSQL_USER}'@'%'")
    with psycopg.connect(pg_url, autocommit=True) as pg:
        for db in (CHAM_DB, WACDC_DB):
            pg.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        pg.execute(f"DROP ROLE IF EXISTS {PG_ROLE}")
        pg.execute(f"CREATE ROLE {PG_ROLE} LOGIN PASSWORD '{PG_PASSWORD}'")
        pg.execute(f"CREATE DATABASE {CHAM_DB} OWNER {PG_ROLE}")
        pg.execute(f"CREATE DATABASE {WACDC_DB}")
    write_config(cham, chameleon_config(cham, urlsplit(source_url), urlsplit(pg_url)))


def chameleon_config(cham: Chameleon, source: SplitResult, target: SplitResult) -> dict:
    """pg_chameleon's example configuration, but for stdout logging (start_replica then
    stays in the foreground), exit on errors and a shorter sleep_loop."""
    settings = {
        "db_conn": {"host": source.hostname, "port": str(source.port or 3306),
                    "user": MYSQL_USER, "password": MYSQL_PASSWORD, "charset": "utf8",
                    "connect_timeout": 10},
        "schema_mappings": {source.path.lstrip("/"): CHAM_SCHEMA},
        "limit_tables": [], "skip_tables": [], "grant_select_to": [], "lock_timeout": "120s",
        "my_server_id": 100, "replica_batch_size": BATCH_ROWS, "replay_max_rows": BATCH_ROWS,
        "batch_retention": "1 day", "copy_max_memory": "300M", "copy_mode": "file",
        "out_dir": str(cham.home / "out"), "sleep_loop": SLEEP_LOOP_S,
        "on_error_replay": "exit", "on_error_read": "exit", "auto_maintenance": "disabled",
        "gtid_enable": False, "type": "mysql",
        "skip_events": {"insert": [], "delete": [], "update": []},
        "keep_existing_schema": False, "net_read_timeout": 600,
    }
    return {
        "pid_dir": "~/.pg_chameleon/pid/", "log_dir": "~/.pg_chameleon/logs/",
        "log_dest": "stdout", "log_level": "info", "log_days_keep": 1,
        "rollbar_key": "", "rollbar_env": "",
        "type_override": {"tinyint(1)": {"override_to": "boolean", "override_tables": ["*"]}},
        "pg_conn": {"host": target.hostname, "port": str(target.port or 5432),
                    "user": PG_ROLE, "password": PG_PASSWORD, "database": CHAM_DB,
                    "charset": "utf8"},
        "sources": {SOURCE: settings}, "fillfactor": {},
    }


def write_config(cham: Chameleon, config: dict) -> None:
    """~/.pg_chameleon/configuration/CONFIG.yml (as JSON, which YAML reads), owned by the
    user, with the directories pg_chameleon writes to."""
    base = cham.home / ".pg_chameleon"
    dirs = [base, base / "configuration", base / "logs", base / "pid", cham.home / "out"]
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
    path = base / "configuration" / f"{CONFIG}.yml"
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    cham.output.write_text("")
    for item in (*dirs, path, cham.output):
        os.chown(item, cham.user.pw_uid, cham.user.pw_gid)


# --- the source and the targets ------------------------------------------------------

def _mysql(url: str, autocommit: bool = True) -> pymysql.connections.Connection:
    parts = urlsplit(url)
    return pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                           user=unquote(parts.username or "root"),
                           password=unquote(parts.password or ""),
                           database=parts.path.lstrip("/") or None, charset="utf8mb4",
                           autocommit=autocommit)


def source_state(source_url: str) -> tuple[int, int, int]:
    """(rows, rows with status 'read', checksum of every (id, status)) of the source."""
    with _mysql(source_url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*), COALESCE(SUM(status = 'read'), 0), COALESCE(SUM(CAST("
                    f"CONV(SUBSTR(MD5(CONCAT(id, ':', status)), 1, 15), 16, 10) AS UNSIGNED)),"
                    f" 0) FROM `{TABLE}`")
        row = cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def target_counts(conn: psycopg.Connection, schema: str) -> tuple[int, int]:
    row = conn.execute(f'SELECT count(*), count(*) FILTER (WHERE status::text = %s) '
                       f'FROM "{schema}"."{TABLE}"', ("read",)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def target_checksum(conn: psycopg.Connection, schema: str) -> int:
    row = conn.execute(
        f"SELECT coalesce(sum(('x' || substr(md5(id::text || ':' || status::text), 1, 15))"
        f'::bit(60)::bigint), 0) FROM "{schema}"."{TABLE}"').fetchone()
    assert row is not None
    return int(row[0])


def verify(target_url: str, schema: str, want: tuple[int, int, int], who: str) -> None:
    with psycopg.connect(target_url, autocommit=True) as conn:
        got = (*target_counts(conn, schema), target_checksum(conn, schema))
    if got != want:
        raise RuntimeError(f"{who}: PostgreSQL {schema}.{TABLE} (rows, read, checksum) {got}"
                           f" != the source's {want}")


def message_mismatches(source_url: str, target_url: str, schema: str) -> int:
    """Not timed: rows whose message text differs from the source's (or is missing)."""
    with _mysql(source_url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, MD5(message) FROM `{TABLE}`")
        source = dict(cur.fetchall())
    with psycopg.connect(target_url) as pg:
        rows = pg.execute(f'SELECT id, md5(message) FROM "{schema}"."{TABLE}"')
        target: dict[str, str | None] = {row[0]: row[1] for row in rows}
    return sum(target.get(key) != digest for key, digest in source.items())


def database_url(pg_url: str, database: str) -> str:
    parts = urlsplit(pg_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


# --- the runs ---------------------------------------------------------------------------

def stop(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGINT (pg_chameleon's graceful stop), then SIGKILL for anything left in its group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log(f"start_replica (pid {proc.pid}) ignored SIGINT for {grace_s:.0f} s: killing")
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its read and replay children, if still there
    except ProcessLookupError:
        return  # the group is gone: nothing left running
    proc.wait()


def time_chameleon(cham: Chameleon, pg_url: str, want: tuple[int, int, int]) -> float:
    """start_replica until the replayed table matches `want`; then stop it."""
    target = database_url(pg_url, CHAM_DB)
    with psycopg.connect(target, autocommit=True) as conn:
        started = time.monotonic()
        proc = cham.start()
        try:
            while target_counts(conn, CHAM_SCHEMA) != want[:2]:
                if proc.poll() is not None:
                    raise RuntimeError(f"chameleon start_replica exited ({proc.returncode}) "
                                       f"before the target matched:\n{cham.tail()}")
                if time.monotonic() - started > TIMEOUT_S:
                    raise RuntimeError(f"pg_chameleon did not match the source in "
                                       f"{TIMEOUT_S:.0f} s:\n{cham.tail()}")
                time.sleep(POLL_S)
            seconds = time.monotonic() - started
        finally:
            stop(proc)
    verify(target, CHAM_SCHEMA, want, "pg_chameleon")
    return seconds


def _wacdc_environment(source_url: str, pg_url: str,
                       extra: Mapping[str, str]) -> dict[str, str]:
    env = {**os.environ, "WACDC_METRICS_PORT": "0", **extra, "WACDC_SOURCE_URL": source_url,
           "WACDC_TARGET_URL": database_url(pg_url, WACDC_DB)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"),
                                                      os.environ.get("PYTHONPATH")]))
    return env


def run_wacdc(env: dict[str, str]) -> float:
    """`wacdc run --exit-when-caught-up`: seconds from process start to exit."""
    return float(wacdc_process.run_wacdc(["run", "--exit-when-caught-up"], env)["seconds"])


def measure(source_url: str, pg_url: str, backlog: Callable[[str], int],
            wacdc_env: Mapping[str, str] | None = None) -> dict:
    """Both replicators drain one backlog; figures for docs/benchmarks.md.

    `source_url`: mysql://root@host:port/db, a user that may create users and grant;
    `pg_url`: a superuser's URL to any database of the target server;
    `backlog(source_url)` commits row changes on the source and returns how many;
    `wacdc_env`: extra environment for `wacdc run` (WACDC_METRICS_PORT is 0 unless set)."""
    cham = install()
    env = _wacdc_environment(source_url, pg_url, wacdc_env or {})
    wacdc_schema = env.get("WACDC_TARGET_SCHEMA", "public")
    try:
        set_up(cham, source_url, pg_url, env)
        log("committing the backlog with both replicators stopped")
        changes = backlog(source_url)
        want = source_state(source_url)
        log(f"{changes:,} changes; timing pg_chameleon start_replica")
        cham_s = time_chameleon(cham, pg_url, want)
        log(f"pg_chameleon matched in {cham_s:.1f} s; timing wacdc")
        wacdc_s = run_wacdc(env)
        verify(env["WACDC_TARGET_URL"], wacdc_schema, want, "wacdc")
        log(f"wacdc done in {wacdc_s:.1f} s")
        texts = {"chameleon": message_mismatches(source_url, database_url(pg_url, CHAM_DB),
                                                 CHAM_SCHEMA),
                 "wacdc": message_mismatches(source_url, env["WACDC_TARGET_URL"], wacdc_schema)}
    finally:
        clean_up(source_url, pg_url)
    return {"changes": changes, "chameleon_seconds": cham_s,
            "chameleon_changes_per_s": changes / cham_s, "wacdc_seconds": wacdc_s,
            "wacdc_changes_per_s": changes / wacdc_s, "ratio": cham_s / wacdc_s,
            "chameleon_version": CHAMELEON_VERSION, "pins": list(PINS),
            "rows_after": want[0], "match": MATCH_RULE,
            "chameleon_message_mismatches": texts["chameleon"],
            "wacdc_message_mismatches": texts["wacdc"],
            "chameleon_settings": {"replica_batch_size": BATCH_ROWS,
                                   "replay_max_rows": BATCH_ROWS, "sleep_loop_s": SLEEP_LOOP_S}}


def set_up(cham: Chameleon, source_url: str, pg_url: str, env: dict[str, str]) -> None:
    """Not timed: each replicator's own snapshot, checked against the source."""
    configure(cham, source_url, pg_url)
    for step in ("create_replica_schema", "add_source", "init_replica"):
        cham.run(step)
    log("wacdc snapshot (run --exit-when-caught-up)")
    run_wacdc(env)
    before = source_state(source_url)
    verify(database_url(pg_url, CHAM_DB), CHAM_SCHEMA, before, "pg_chameleon init_replica")
    verify(env["WACDC_TARGET_URL"], env.get("WACDC_TARGET_SCHEMA", "public"), before,
           "wacdc snapshot")


def clean_up(source_url: str, pg_url: str) -> None:
    """Drop both target databases, pg_chameleon's role and its source user."""
    with psycopg.connect(pg_url, autocommit=True) as pg:
        for db in (CHAM_DB, WACDC_DB):
            pg.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        pg.execute(f"DROP ROLE IF EXISTS {PG_ROLE}")
    with _mysql(source_url) as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS '{MYSQL_USER}'@'%'")


# --- the backlog and the report --------------------------------------------------------

def default_backlog(mysql_url: str, changes: int = 84_000) -> int:
    """100-row transactions of 40 inserts, 40 updates (to status 'read'), 20 deletes of
    WhatsAppMessage, committed at full speed (bench/streaming.py's burst); the count."""
    done = 0
    with _mysql(mysql_url, autocommit=False) as conn, conn.cursor() as cur:
        while done < changes:
            ids = [str(uuid.uuid4()) for _ in range(40)]
            cur.executemany(f"INSERT INTO `{TABLE}` (id, message, status, payload, `to`, "
                            "updatedAt) VALUES (%s, %s, 'sent', %s, 'whatsapp:+91', NOW(3))",
                            [(i, "hello 🙏 " * 20, '{"object": "x", "entry": []}')
                             for i in ids])
            marks = ", ".join(["%s"] * 40)
            cur.execute(f"UPDATE `{TABLE}` SET status = 'read', deliveredAt = NOW(3) "
                        f"WHERE id IN ({marks})", ids)
            cur.execute(f"DELETE FROM `{TABLE}` WHERE id IN ({', '.join(['%s'] * 20)})",
                        ids[:20])
            conn.commit()
            done += 100
    return done


def report_lines(section: dict | None) -> list[str]:
    if not section:
        return []
    s, cfg = section, section["chameleon_settings"]
    return [
        "## Against pg_chameleon (same backlog, same run)",
        "",
        f"Both replicators are set up on the same source (pg_chameleon {s['chameleon_version']}"
        " with `init_replica`, wacdc with its snapshot), each into its own PostgreSQL "
        f"database; then, with both stopped, {s['changes']:,} row changes are committed "
        "(100-row transactions of inserts, updates and deletes). Each is timed from the start "
        "of its process (`chameleon start_replica`, `wacdc run --exit-when-caught-up`) until "
        "its PostgreSQL copy matches the source: same row count and count of status 'read', "
        f"polled every {POLL_S} s, then the same checksum of every (id, status). pg_chameleon "
        "runs with its example configuration (replica_batch_size and replay_max_rows "
        f"{cfg['replica_batch_size']:,}) but a sleep_loop of {cfg['sleep_loop_s']} s instead "
        "of 1 s; it reads the binlog into its log tables, then replays them with a plpgsql "
        "function, and its time ends when the replayed table matches.",
        "",
        "| replicator | seconds | changes/s |",
        "|---|---|---|",
        f"| pg_chameleon {s['chameleon_version']} | {s['chameleon_seconds']:.1f} | "
        f"{s['chameleon_changes_per_s']:,.0f} |",
        f"| wacdc | {s['wacdc_seconds']:.1f} | {s['wacdc_changes_per_s']:,.0f} |",
        f"| **wacdc speed / pg_chameleon speed** | | **{s['ratio']:.1f}x** |",
        "",
        *_text_note(s),
    ]


def _text_note(s: dict) -> list[str]:
    note = (f"Not timed: rows of {TABLE} (of {s['rows_after']:,}) whose message text differs "
            f"from the source's: pg_chameleon {s['chameleon_message_mismatches']:,}, wacdc "
            f"{s['wacdc_message_mismatches']:,}.")
    if s["chameleon_message_mismatches"]:
        note += (" pg_chameleon's snapshot reads text cast to its `charset`, which must also "
                 "be a Python codec name: `utf8` is MariaDB's utf8mb3, which turns emoji into "
                 "'?' (`utf8mb4` fails in its CSV writer); the rows it streams keep them.")
    return [note, ""]


def main() -> int:
    from bench.generate import generate

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument("--install-only", action="store_true",
                        help="only install pg_chameleon (idempotent) and exit")
    args = parser.parse_args()
    if args.install_only:
        install()
        return 0
    with wacdc_process.private_servers("mariadb") as (mysql, pg):
        log(f"generating {args.messages:,} messages + the other tables")
        generate(mysql.url("cham"), args.messages)
        result = measure(mysql.url("cham"), pg.url("postgres"),
                         lambda url: default_backlog(url, args.changes),
                         {"WACDC_LOG_FORMAT": "json"})
        print(json.dumps(result, indent=2))
        print("\n".join(report_lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
