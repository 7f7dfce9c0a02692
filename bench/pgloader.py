"""pgloader as the snapshot's peer: the same source rows migrated by pgloader, timed.

`ensure_pgloader()` finds pgloader, or takes it out of Debian's `pgloader` package
(`apt-get download` + `dpkg-deb -x`, nothing installed) into ~/.cache/wacdc/pgloader;
only if that binary cannot run here does it fall back to `apt-get install pgloader`.
`measure()` migrates one MariaDB database into a fresh PostgreSQL database with a load
command (create tables, create indexes, foreign keys; pgloader's defaults otherwise),
checks every table's row count against the source and reports how pgloader typed the
JSON, enum and boolean columns. `report_lines()` is the docs/benchmarks.md section.

Run alone: `python bench/pgloader.py [--messages N] [--mysql9]` starts private servers,
generates the WhatsApp tables, times `wacdc run --snapshot-only` and pgloader on them,
and prints both as JSON (`--mysql9` also tries pgloader against Oracle MySQL 9).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pymysql
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run on its own: `python bench/<this>.py`
    sys.path.insert(0, str(REPO))

from bench import wacdc_process  # noqa: E402

CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wacdc/pgloader"
CACHED_BINARY = CACHE_DIR / "pgloader"
PACKAGE = "pgloader"
RUN_TIMEOUT_S = 3600
# What the load command leaves to pgloader (its documented defaults for a MySQL source).
PGLOADER_DEFAULTS = {
    "workers": 4, "concurrency": 1, "batch rows": 25_000, "batch size": "20 MB",
    "prefetch rows": 100_000, "identifiers": "downcase", "index names": "uniquify",
    "include drop": True, "reset sequences": True, "truncate": False,
    "schema": "named after the MySQL database (search_path set to it)",
}
WITH_OPTIONS = "create tables, create indexes, foreign keys"
# Debian builds pgloader with a 1 GiB Lisp heap, where its default prefetch (100,000 rows
# per reader) of the message table's ~3 kB rows runs out of heap ("Heap exhausted, game
# over") from ~50k messages; upstream's build default, 4096 MiB, runs out at 300k
# messages. It gets 16 GiB (or 60% of the machine's memory, if less) so the comparison
# is not decided by its garbage collector. An SBCL runtime option: first on the command line.
HEAP_MIB = min(16384, int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.6
                          / 2**20))
RUNTIME_OPTIONS = ["--dynamic-space-size", str(HEAP_MIB)]
LOG_PROBLEM = re.compile(r"^\S+ (?:ERROR|FATAL) .*$", re.MULTILINE)
JSON_CHECK = re.compile(r"json_valid\(`(.+?)`\)", re.IGNORECASE)


class PgloaderError(RuntimeError):
    """pgloader could not be obtained, or a migration with it failed."""


# ---------------------------------------------------------------- obtaining pgloader

def _version_line(binary: Path) -> str | None:
    """`pgloader --version`'s first line, or None when the binary does not run here."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                              timeout=60, check=False)
    except OSError:
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else None


def _apt(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, check=False)


def _require_ok(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        raise PgloaderError(f"{what} failed (exit {done.returncode}): "
                            f"{(done.stdout + done.stderr)[-2000:]}")


def _ensure_package_lists() -> None:
    """`apt-cache show pgloader` must find the package; as root refresh the lists once."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise PgloaderError("pgloader not found and no apt-get/dpkg-deb here to fetch it: "
                            "install pgloader 3.6 (Debian/Ubuntu package `pgloader`)")
    show = ["apt-cache", "show", PACKAGE]
    if subprocess.run(show, capture_output=True, check=False).returncode == 0:
        return
    if os.geteuid() != 0:
        raise PgloaderError("no `pgloader` package in the apt lists; as root run apt-get update")
    _require_ok(_apt("update", "-qq"), "apt-get update")
    if subprocess.run(show, capture_output=True, check=False).returncode != 0:
        raise PgloaderError("no `pgloader` package in the apt lists even after apt-get update")


def _extract_package(workdir: Path) -> tuple[Path, str]:
    """Download the .deb into `workdir` and unpack it; returns the binary and .deb name."""
    # As root apt downloads as its sandbox user _apt, which must be able to write here.
    if os.geteuid() == 0 and "_apt" in {user.pw_name for user in pwd.getpwall()}:
        shutil.chown(workdir, user="_apt")
    _require_ok(_apt("download", "-qq", PACKAGE, cwd=workdir), "apt-get download pgloader")
    debs = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise PgloaderError(f"apt-get download left no {PACKAGE}_*.deb in {workdir}")
    tree = workdir / "tree"
    done = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(tree)], capture_output=True,
                          text=True, check=False)
    _require_ok(done, f"dpkg-deb -x {debs[0].name}")
    binary = tree / "usr/bin/pgloader"
    if not binary.is_file():
        raise PgloaderError(f"{debs[0].name} has no /usr/bin/pgloader")
    return binary, debs[0].name


def _cache(binary: Path, deb_name: str) -> Path:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    staging = CACHE_DIR / f"pgloader.tmp.{os.getpid()}"
    shutil.copy2(binary, staging)
    staging.replace(CACHED_BINARY)  # atomic: a parallel run sees the old file or the new
    (CACHE_DIR / "SOURCE").write_text(deb_name + "\n")
    return CACHED_BINARY


def _install_system_package() -> Path:
    """The fallback when the extracted binary lacks its shared libraries here."""
    if os.geteuid() != 0:
        raise PgloaderError("the packaged pgloader does not run here and only root can "
                            "apt-get install pgloader (which brings its libraries)")
    print("pgloader: the extracted binary does not run here; falling back to "
          "apt-get install --no-install-recommends pgloader", file=sys.stderr, flush=True)
    _require_ok(_apt("install", "-y", "-qq", "--no-install-recommends", PACKAGE),
                "apt-get install pgloader")
    found = shutil.which("pgloader")
    if found is None or _version_line(Path(found)) is None:
        raise PgloaderError("apt-get install pgloader succeeded but pgloader does not run")
    return Path(found)


def ensure_pgloader() -> Path:
    """The pgloader binary: cached, on PATH, or fetched once from Debian's package."""
    if _version_line(CACHED_BINARY):
        return CACHED_BINARY
    on_path = shutil.which("pgloader")
    if on_path and _version_line(Path(on_path)):
        return Path(on_path)
    _ensure_package_lists()
    with tempfile.TemporaryDirectory(prefix="wacdc-pgloader-deb-") as work:
        binary, deb_name = _extract_package(Path(work))
        if _version_line(binary) is None:
            return _install_system_package()
        print(f"pgloader: taken out of {deb_name} into {CACHE_DIR}", file=sys.stderr,
              flush=True)
        return _cache(binary, deb_name)


def pgloader_version(binary: Path) -> str:
    """What the binary says, plus the Debian package it came from when known."""
    line = _version_line(binary) or "unknown"
    reported = line.removeprefix("pgloader version ").strip('"')
    source = CACHE_DIR / "SOURCE"
    if binary == CACHED_BINARY and source.exists():
        return f"{reported} ({source.read_text().strip()})"
    return reported


# ---------------------------------------------------------------- the source side

def _mysql(port: int, database: str) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=port, user="root", password="",
                           database=database)


def _query(port: int, database: str, query: str) -> list[tuple]:
    conn = _mysql(port, database)
    try:
        with conn.cursor() as cur:
            cur.execute(query, (database,))
            return list(cur.fetchall())
    finally:
        conn.close()


def source_counts(port: int, database: str) -> dict[str, int]:
    """Exact row counts of every base table of the source database."""
    tables = _query(port, database, "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = %s AND table_type = 'BASE TABLE'")
    conn = _mysql(port, database)
    try:
        with conn.cursor() as cur:
            counts = {}
            for (table,) in tables:
                cur.execute(f"SELECT COUNT(*) FROM `{table}`")
                row = cur.fetchone()
                counts[table] = int(row[0]) if row else 0
            return counts
    finally:
        conn.close()


def _timestamp_default_casts(port: int, database: str) -> list[str]:
    """MariaDB reports CURRENT_TIMESTAMP(n) defaults in lower case; pgloader 3.6 only
    recognises the upper-case spelling and otherwise emits the text as a quoted literal,
    so CREATE TABLE fails (dimitri/pgloader#1403). These rules keep its default cast of
    such columns (timestamptz, no typemod, zero-dates-to-null) but drop the default."""
    defaults = _query(port, database,
                      "SELECT DISTINCT data_type, column_default FROM information_schema.columns"
                      " WHERE table_schema = %s AND data_type IN ('datetime', 'timestamp')"
                      " AND column_default LIKE BINARY 'current_timestamp(%%'"
                      " AND column_default <> 'current_timestamp()'")
    return [f"type {kind} when default '{default}' to timestamptz drop default drop typemod"
            f" using zero-dates-to-null" for kind, default in sorted(defaults)]


def _source_kinds(port: int, database: str) -> dict[tuple[str, str], str]:
    """(table, column) -> json / enum / set / tinyint(1) / bit(1), lower-cased names."""
    kinds = {}
    rows = _query(port, database,
                  "SELECT table_name, column_name, data_type, column_type"
                  " FROM information_schema.columns WHERE table_schema = %s")
    for table, column, data_type, column_type in rows:
        kind = {"tinyint(1)": "tinyint(1)", "bit(1)": "bit(1)"}.get(column_type.split()[0],
                                                                   data_type)
        if kind in ("json", "enum", "set", "tinyint(1)", "bit(1)"):
            kinds[table.lower(), column.lower()] = kind
    # MariaDB's JSON is LONGTEXT with CHECK (json_valid(`column`)).
    checks = _query(port, database, "SELECT table_name, check_clause FROM "
                    "information_schema.check_constraints WHERE constraint_schema = %s")
    for table, clause in checks:
        for column in JSON_CHECK.findall(clause):
            kinds[table.lower(), column.lower()] = "json"
    return kinds


def _source_structure(port: int, database: str) -> dict[str, int]:
    indexes = _query(port, database, "SELECT COUNT(DISTINCT table_name, index_name) FROM "
                     "information_schema.statistics WHERE table_schema = %s")
    fks = _query(port, database, "SELECT COUNT(*) FROM information_schema"
                 ".referential_constraints WHERE constraint_schema = %s")
    return {"indexes": indexes[0][0], "foreign_keys": fks[0][0]}


# ---------------------------------------------------------------- the target side

def _database_url(pg_url: str, database: str) -> str:
    return urlsplit(pg_url)._replace(path=f"/{database}").geturl()


def _fresh_database(pg_url: str, database: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                     .format(sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


USER_SCHEMAS = "table_schema NOT IN ('pg_catalog', 'information_schema')"


def target_counts(target_url: str) -> dict[tuple[str, str], int]:
    """(schema, table) -> exact row count, for every user table of the target."""
    with psycopg.connect(target_url) as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables"
                              f" WHERE {USER_SCHEMAS} AND table_type = 'BASE TABLE'").fetchall()
        counts = {}
        for schema, table in tables:
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema),
                                                                 sql.Identifier(table))
            row = conn.execute(query).fetchone()
            counts[schema, table] = row[0] if row else 0
        return counts


def _target_types(target_url: str) -> dict[tuple[str, str], str]:
    """(table, column) -> the PostgreSQL type's data_type, or 'enum type'."""
    query = ("SELECT c.table_name, c.column_name, c.data_type, t.typtype = 'e'"
             " FROM information_schema.columns c"
             " JOIN pg_namespace n ON n.nspname = c.udt_schema"
             " JOIN pg_type t ON t.typnamespace = n.oid AND t.typname = c.udt_name"
             f" WHERE c.{USER_SCHEMAS}")
    with psycopg.connect(target_url) as conn:
        rows = conn.execute(query).fetchall()
    return {(table, column): "enum type" if is_enum else data_type
            for table, column, data_type, is_enum in rows}


def _target_structure(target_url: str) -> dict[str, int]:
    with psycopg.connect(target_url) as conn:
        indexes = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname NOT IN "
                               "('pg_catalog', 'information_schema')").fetchone()
        fks = conn.execute("SELECT count(*) FROM information_schema.table_constraints"
                           f" WHERE constraint_type = 'FOREIGN KEY' AND {USER_SCHEMAS}"
                           ).fetchone()
    return {"indexes": indexes[0] if indexes else 0, "foreign_keys": fks[0] if fks else 0}


def compare_counts(source: dict[str, int], target: dict[tuple[str, str], int]
                   ) -> dict[str, int]:
    """Target counts by source table name; raises unless every table matches exactly."""
    by_lower = {table.lower(): count for (_, table), count in target.items()}
    per_table = {table: by_lower.get(table.lower(), -1) for table in source}
    wrong = {t: (source[t], n) for t, n in per_table.items() if n != source[t]}
    extra = set(by_lower) - {t.lower() for t in source}
    if wrong or extra or len(target) != len(source):
        raise PgloaderError(f"pgloader's target differs from the source: (source, target) "
                            f"rows {wrong} (-1: table missing), unexpected tables "
                            f"{sorted(extra)}, {len(target)} target tables for {len(source)}")
    return per_table


def type_notes(kinds: dict[tuple[str, str], str], types: dict[tuple[str, str], str]
               ) -> dict[str, dict[str, int]]:
    """Source kind -> {target type: columns}, e.g. {"json": {"text": 32}}."""
    notes: dict[str, Counter[str]] = {}
    for key, kind in kinds.items():
        notes.setdefault(kind, Counter())[types.get(key, "missing")] += 1
    return {kind: dict(counter) for kind, counter in sorted(notes.items())}


# ---------------------------------------------------------------- running pgloader

def load_command(source_url: str, target_url: str, casts: list[str]) -> str:
    cast = ("\nCAST " + ",\n     ".join(casts)) if casts else ""
    return (f"LOAD DATABASE\n  FROM {source_url}\n  INTO {target_url}\n"
            f"WITH {WITH_OPTIONS}{cast};\n")


def run_pgloader(binary: Path, command: str, workdir: Path) -> dict:
    """Run one load command; wall seconds from start to exit and peak RSS. pgloader
    exits 0 even after a FATAL error, so its log is checked for ERROR/FATAL lines too."""
    (workdir / "snapshot.load").write_text(command)
    log_path = workdir / "pgloader.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        # stdin closed: after a fatal error SBCL's debugger would otherwise wait on it.
        proc = subprocess.Popen([str(binary), *RUNTIME_OPTIONS,
                                 "--root-dir", str(workdir / "root"),
                                 str(workdir / "snapshot.load")],
                                stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=workdir)
        watchdog = threading.Timer(RUN_TIMEOUT_S, proc.kill)
        watchdog.start()
        _, status, usage = os.wait4(proc.pid, 0)  # reaps it: rusage has its peak RSS
        watchdog.cancel()
    exit_code = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    output = log_path.read_text(errors="replace")
    problems = LOG_PROBLEM.findall(output)
    if exit_code != 0 or problems:
        raise PgloaderError(f"pgloader failed (exit {exit_code}, "
                            f"{len(problems)} ERROR/FATAL lines); output tail:\n"
                            f"{output[-4000:]}")
    total = re.search(r"Total import time\s+\S+\s+\d+\s+.*?([\d.]+)s\s*$", output,
                      re.MULTILINE)
    # Its summary's "Total import time" adds up its phases: it can exceed the wall time.
    return {"seconds": seconds,
            "reported_total_s": float(total.group(1)) if total else None,
            "peak_rss_mib": usage.ru_maxrss / 1024}


def measure(mysql_port: int, source_db: str, pg_url: str, target_db: str) -> dict:
    """pgloader migrates `source_db` (root@127.0.0.1:mysql_port, empty password) into a
    fresh PostgreSQL `target_db` (created through the admin URL `pg_url`)."""
    binary = ensure_pgloader()
    expected = source_counts(mysql_port, source_db)
    casts = _timestamp_default_casts(mysql_port, source_db)
    _fresh_database(pg_url, target_db)
    target_url = _database_url(pg_url, target_db)
    command = load_command(f"mysql://root@127.0.0.1:{mysql_port}/{source_db}", target_url,
                           casts)
    with tempfile.TemporaryDirectory(prefix="wacdc-pgloader-") as work:
        run = run_pgloader(binary, command, Path(work))
    counts = target_counts(target_url)
    per_table = compare_counts(expected, counts)
    rows = sum(per_table.values())
    return {
        "seconds": run["seconds"], "rows": rows, "rows_per_s": rows / run["seconds"],
        "version": pgloader_version(binary),
        "options": {"with": WITH_OPTIONS, "cast": casts, "runtime": " ".join(RUNTIME_OPTIONS),
                    "defaults_kept": PGLOADER_DEFAULTS},
        "per_table": per_table,
        "reported_total_s": run["reported_total_s"], "peak_rss_mib": run["peak_rss_mib"],
        "notes": {
            "types": type_notes(_source_kinds(mysql_port, source_db), _target_types(target_url)),
            "schemas": sorted({schema for schema, _ in counts}),
            "source": _source_structure(mysql_port, source_db),
            "target": _target_structure(target_url),
            "defaults_dropped": "CURRENT_TIMESTAMP(n) defaults (see options.cast)" if casts
            else None,
            "exit_status": "pgloader exits 0 after FATAL errors; its log is checked instead",
        },
    }


# ---------------------------------------------------------------- the report

def _types_sentence(section: dict) -> str:
    types = section.get("notes", {}).get("types", {})
    parts = [f"{kind} as {', '.join(f'{t} ({n})' for t, n in targets.items())}"
             for kind, targets in types.items()]
    if not parts:
        return ""
    cheaper = (" Its JSON is text where wacdc writes jsonb, which PostgreSQL parses on load: "
               "the cheaper load.") if "text" in types.get("json", {}) else ""
    return f" pgloader typed the source's columns: {'; '.join(parts)}.{cheaper}"


def report_lines(section: dict | None, wacdc_rows_per_s: float | None) -> list[str]:
    """The docs/benchmarks.md section comparing wacdc's snapshot with pgloader's."""
    lines = ["## Snapshot against pgloader (same rows, same run)", ""]
    if not section:
        return [*lines, "pgloader was not measured in this run.", ""]
    ratio = wacdc_rows_per_s / section["rows_per_s"] if wacdc_rows_per_s else None
    wacdc = f"{wacdc_rows_per_s:,.0f}" if wacdc_rows_per_s else "n/a"
    source, options = section["notes"]["source"], section["options"]
    fks = f"{source['foreign_keys']} foreign keys" if source["foreign_keys"] else \
        "no foreign keys"
    lines += [
        "| | rows/s |", "| --- | ---: |",
        f"| wacdc `run --snapshot-only` | {wacdc} |",
        f"| pgloader {section['version']} | {section['rows_per_s']:,.0f} |",
        f"| wacdc / pgloader | {f'{ratio:.2f}x' if ratio else 'n/a'} |", "",
        f"Both copy the same {section['rows']:,} rows of the {len(section['per_table'])} "
        "tables from the same private MariaDB into a fresh PostgreSQL database in the same "
        f"run, and both build the tables' {source['indexes']} indexes (primary keys "
        f"included; the source has {fks}); each is timed from process start to exit and "
        "pgloader's row counts are checked against the source. pgloader runs with "
        f"`{options['with']}` and its defaults otherwise (workers "
        f"{options['defaults_kept']['workers']}, concurrency "
        f"{options['defaults_kept']['concurrency']}, batches of 25,000 rows or 20 MB, "
        f"100,000 rows prefetched) but a {HEAP_MIB:,} MiB Lisp heap (Debian's 1 GiB, and "
        "upstream's 4 GiB default, run out on these rows), peaking at "
        f"{section['peak_rss_mib']:,.0f} MiB RSS." + _types_sentence(section),
    ]
    if options["cast"]:
        lines[-1] += (" MariaDB's lower-case `current_timestamp(3)` defaults need a CAST rule "
                      "dropping them (pgloader 3.6 otherwise fails to create the tables), so "
                      "those columns have no default in its target.")
    mysql9 = section.get("mysql9")
    if mysql9:
        lines[-1] += f" Against Oracle MySQL 9 pgloader fails: `{mysql9}`"
    return [*lines, ""]


# ---------------------------------------------------------------- standalone try

def probe_source(binary: Path, source_url: str, target_url: str) -> str | None:
    """None if pgloader can migrate `source_url`, else its first ERROR/FATAL line."""
    with tempfile.TemporaryDirectory(prefix="wacdc-pgloader-probe-") as work:
        try:
            run_pgloader(binary, f"LOAD DATABASE FROM {source_url} INTO {target_url};\n",
                         Path(work))
        except PgloaderError as exc:
            problems = LOG_PROBLEM.findall(str(exc))
            return problems[0].split(" ", 2)[2] if problems else str(exc)[-500:]
    return None


def _probe_mysql9(pg_url: str) -> str | None:
    from wacdc.devtools.embedded import MySQLServer

    server = MySQLServer()
    server.start()
    try:
        conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root",
                               password=server.password, autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE probe")
            cur.execute("CREATE TABLE probe.t (id INT PRIMARY KEY, doc JSON)")
            cur.execute("INSERT INTO probe.t VALUES (1, '{\"a\": 1}')")
        conn.close()
        _fresh_database(pg_url, "pgloader_mysql9")
        return probe_source(ensure_pgloader(), server.url("probe"),
                            _database_url(pg_url, "pgloader_mysql9"))
    finally:
        server.cleanup()


def time_wacdc_snapshot(source_url: str, target_url: str) -> float:
    """Wall seconds of one `wacdc run --snapshot-only`, from start to exit."""
    # No /metrics listener: another benchmark on this machine may hold the default port.
    env = {**os.environ, "WACDC_SOURCE_URL": source_url, "WACDC_TARGET_URL": target_url,
           "WACDC_LOG_FORMAT": "json", "WACDC_METRICS_PORT": "0"}
    return float(wacdc_process.run_wacdc(["run", "--snapshot-only"], env)["seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--mysql9", action="store_true",
                        help="also try pgloader against a private Oracle MySQL 9")
    args = parser.parse_args()
    from bench.generate import generate

    ensure_pgloader()
    with wacdc_process.private_servers("mariadb") as (mysql, pg):
        rows = sum(generate(mysql.url("pgl"), args.messages).values())
        _fresh_database(pg.url("postgres"), "pgl_wacdc")
        seconds = time_wacdc_snapshot(mysql.url("pgl"), pg.url("pgl_wacdc"))
        wacdc = {"seconds": seconds, "rows": rows, "rows_per_s": rows / seconds}
        section = measure(mysql.port, "pgl", pg.url("postgres"), "pgl_pgloader")
        if args.mysql9:
            section["mysql9"] = _probe_mysql9(pg.url("postgres"))
        print(json.dumps({"wacdc": wacdc, "pgloader": section}, indent=2))
        print("\n".join(report_lines(section, wacdc["rows_per_s"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
