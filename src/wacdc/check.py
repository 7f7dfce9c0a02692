"""`wacdc check`: a preflight of source, binlog settings, privileges, tables and target."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pymysql

from wacdc.config import DatabaseUrl, Settings, mysql_options
from wacdc.errors import EXIT_FINDING, EXIT_OK, SchemaError, WacdcError
from wacdc.log import redact
from wacdc.schema.model import Table
from wacdc.schema.profile import Profile
from wacdc.schema.types import target_columns, unsupported_columns
from wacdc.sink.connection import connect_target
from wacdc.source.catalog import Catalog, load_catalog
from wacdc.source.connection import (
    ServerInfo,
    connect,
    global_variables,
    server_info,
    session_encryption,
)

OK, WARN, PROBLEM = "ok", "warn", "PROBLEM"
MIN_RETENTION_S = 24 * 3600
MIN_PG_VERSION = 120000

_BINLOG_VARIABLES = [
    "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata",
    "binlog_row_value_options", "binlog_transaction_compression", "log_bin_compress",
    "binlog_expire_logs_seconds", "expire_logs_days", "gtid_mode", "server_id",
    "gtid_binlog_pos", "enforce_gtid_consistency",
]


@dataclass
class Finding:
    status: str  # ok, warn, PROBLEM
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<8}{self.name}: {self.detail}"
        if self.fix and self.status != OK:
            text += f"\n{'':<8}-> {self.fix}"
        return text


@dataclass
class FixResult:
    changed: list[str]
    notes: list[str]


def _variable_checks(info: ServerInfo, v: dict[str, str]) -> Iterator[Finding]:
    set_cmd = "SET GLOBAL" if info.is_mariadb else "SET PERSIST"
    if v.get("log_bin", "OFF").upper() not in ("ON", "1"):
        yield Finding(PROBLEM, "log_bin", "binary logging is off",
                      "start the server with log-bin (on Railway MySQL it is on by default); "
                      "this needs a restart")
    else:
        yield Finding(OK, "log_bin", "on")
    for name, want in (("binlog_format", "ROW"), ("binlog_row_image", "FULL")):
        have = v.get(name, "")
        if have.upper() == want:
            yield Finding(OK, name, have)
        else:
            yield Finding(PROBLEM, name, f"is {have or 'unset'}, must be {want}",
                          f"wacdc check --fix ({set_cmd} {name} = {want})")
    metadata = v.get("binlog_row_metadata")
    if metadata is None:
        yield Finding(PROBLEM, "binlog_row_metadata",
                      f"{info} has no binlog_row_metadata; column names cannot come from the "
                      "binlog", "upgrade the source to MySQL >= 8.0.1 or MariaDB >= 10.5")
    elif metadata.upper() != "FULL":
        yield Finding(PROBLEM, "binlog_row_metadata", f"is {metadata}, must be FULL "
                      "(column names and enum labels come from the binlog)",
                      f"wacdc check --fix ({set_cmd} binlog_row_metadata = FULL)")
    else:
        yield Finding(OK, "binlog_row_metadata", "FULL")
    options = v.get("binlog_row_value_options")
    if options is not None and "PARTIAL_JSON" in options.upper():
        yield Finding(PROBLEM, "binlog_row_value_options",
                      "is PARTIAL_JSON: JSON updates would be logged as diffs wacdc cannot apply",
                      f"wacdc check --fix ({set_cmd} binlog_row_value_options = '')")
    elif options is not None:
        yield Finding(OK, "binlog_row_value_options", options or "(empty)")
    if "binlog_transaction_compression" in v:
        # MySQL's compressed transactions (a session can turn them on for itself) are
        # decompressed and replicated (source/payload.py): reported, never a problem.
        state = v["binlog_transaction_compression"] or "OFF"
        yield Finding(OK, "binlog_transaction_compression",
                      f"{state} (compressed transactions are decompressed and replicated)")
    if "log_bin_compress" in v:
        # MariaDB's compressed events are decompressed and replicated (source/events.py).
        state = "ON" if (v["log_bin_compress"] or "").upper() in ("ON", "1") else "OFF"
        yield Finding(OK, "log_bin_compress",
                      f"{state} (compressed events are decompressed and replicated)")
    yield _retention(v)
    if info.is_mariadb:
        yield Finding(OK, "gtid", f"MariaDB GTID position {v.get('gtid_binlog_pos') or '(empty)'}"
                      "; positions are tracked as file:pos and GTID")
    elif v.get("gtid_mode", "OFF").upper() == "ON":
        yield Finding(OK, "gtid_mode", "ON: GTID auto-position is used on reconnect")
    else:
        yield Finding(OK, "gtid_mode", f"{v.get('gtid_mode', 'OFF')}: positions are file:pos "
                      "(fine; a failover to another source would then need a new snapshot)")


def _retention(v: dict[str, str]) -> Finding:
    seconds = int(float(v.get("binlog_expire_logs_seconds", "0") or 0))
    if not seconds:
        seconds = int(float(v.get("expire_logs_days", "0") or 0) * 86400)
    if seconds == 0:
        return Finding(OK, "binlog retention", "binlogs are never purged automatically")
    hours = seconds / 3600
    if seconds < MIN_RETENTION_S:
        return Finding(PROBLEM, "binlog retention", f"binlogs are purged after {hours:.1f} h; "
                       "an outage of wacdc longer than that needs a new snapshot",
                       "raise binlog_expire_logs_seconds to at least 86400 (3+ days is better)")
    return Finding(OK, "binlog retention", f"{hours:.0f} h")


_GRANT = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<obj>\S+) TO ", re.I)


def parse_grants(lines: list[str]) -> dict[str, set[str]]:
    """SHOW GRANTS lines -> {object: {privileges}}; objects like *.* , `db`.* , `db`.`t`."""
    grants: dict[str, set[str]] = {}
    for line in lines:
        match = _GRANT.match(line)
        if not match:
            continue  # role grants ("GRANT `role` TO ...") carry no object
        privs = {p.strip().upper() for p in re.sub(r"\([^)]*\)", "", match["privs"]).split(",")}
        obj = match["obj"].replace("`", "")
        grants.setdefault(obj, set()).update(privs)
    return grants


def _has(grants: dict[str, set[str]], privilege: str, database: str,
         tables: list[str] | None = None) -> bool:
    def covers(obj: str) -> bool:
        privs = grants.get(obj, set())
        return privilege in privs or "ALL PRIVILEGES" in privs or "ALL" in privs

    if covers("*.*") or covers(f"{database}.*"):
        return True
    return bool(tables) and all(covers(f"{database}.{t}") for t in tables or [])


def _privilege_checks(conn: pymysql.connections.Connection, info: ServerInfo, database: str,
                      tables: list[str]) -> Iterator[Finding]:
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        grants = parse_grants([row[0] for row in cur.fetchall()])
    missing = []
    if not (_has(grants, "REPLICATION SLAVE", database)
            or _has(grants, "REPLICATION REPLICA", database)):
        missing.append("REPLICATION SLAVE (read the binlog)")
    client_ok = any(_has(grants, p, database) for p in
                    ("REPLICATION CLIENT", "BINLOG MONITOR", "SUPER"))
    if not client_ok:
        missing.append("REPLICATION CLIENT (read binlog positions)")
    if not _has(grants, "SELECT", database, tables):
        missing.append(f"SELECT on {database}")
    if not (_has(grants, "LOCK TABLES", database) or _has(grants, "RELOAD", database)):
        missing.append(f"LOCK TABLES on {database} or RELOAD (snapshot position, cutover freeze)")
    if missing:
        user = conn.user.decode() if isinstance(conn.user, bytes) else conn.user
        yield Finding(PROBLEM, "privileges", "missing " + "; ".join(missing),
                      f"GRANT {', '.join(m.split(' (')[0].split(' on ')[0] for m in missing)} "
                      f"ON *.* TO '{user}'@'%' (run as an admin)")
    else:
        yield Finding(OK, "privileges", "REPLICATION SLAVE, REPLICATION CLIENT, SELECT, "
                      "LOCK TABLES/RELOAD present")


def _server_id_check(conn: pymysql.connections.Connection, v: dict[str, str],
                     ours: int) -> Iterator[Finding]:
    source_id = int(v.get("server_id", "0") or 0)
    if source_id == ours:
        yield Finding(PROBLEM, "server_id", f"WACDC_SERVER_ID {ours} equals the source's "
                      "server_id", "set WACDC_SERVER_ID to a value no server or replica uses")
        return
    try:
        replica_ids = _replica_server_ids(conn)
    except pymysql.err.MySQLError as exc:
        yield Finding(WARN, "server_id", f"{ours} differs from the source's {source_id}; could "
                      f"not list other replicas ({redact(str(exc.args[-1]))})")
        return
    if ours in replica_ids:
        yield Finding(WARN, "server_id", f"a replica with server_id {ours} is connected: a "
                      "running wacdc of this deployment (fine), or a clash",
                      "if no wacdc is running, set a distinct WACDC_SERVER_ID")
    else:
        yield Finding(OK, "server_id", f"{ours} (source is {source_id})")


def _replica_server_ids(conn: pymysql.connections.Connection) -> set[int]:
    with conn.cursor() as cur:
        try:
            cur.execute("SHOW REPLICAS")  # MySQL >= 8.0.22
        except pymysql.err.ProgrammingError:
            cur.execute("SHOW SLAVE HOSTS")  # MariaDB, older MySQL
        return {int(row[0]) for row in cur.fetchall()}


def _table_checks(settings: Settings, profile: Profile,
                  conn: pymysql.connections.Connection, database: str
                  ) -> tuple[list[Finding], list[str]]:
    catalog = load_catalog(settings, profile, conn, database)
    findings = []
    for name in catalog.missing:
        findings.append(Finding(PROBLEM, f"table {name}", f"does not exist in {database}",
                                "create it, or leave it out of WACDC_TABLES"))
    for name, table in catalog.tables.items():
        problems = []
        if table.replica_key is None:
            problems.append("has no primary key (nor a unique key on NOT NULL columns)")
        for column in unsupported_columns(table):
            problems.append(f"column {column.name} has unsupported type {column.column_type}")
        if problems:
            findings.append(Finding(PROBLEM, f"table {name}", "; ".join(problems),
                                    "add a primary key / change the type in the source, "
                                    "or leave the table out of WACDC_TABLES"))
        else:
            findings.extend(_column_findings(settings, profile, table))
    findings.extend(_identifier_findings(settings, profile, catalog))
    if catalog.tables and not any(f.status == PROBLEM for f in findings):
        findings.append(Finding(OK, "tables", f"{len(catalog.tables)} tables, all with keys "
                                "and supported column types"))
    return findings, list(catalog.tables)


def _identifier_findings(settings: Settings, profile: Profile,
                         catalog: Catalog) -> list[Finding]:
    """Names PostgreSQL would cut to 63 bytes or that collide there (schema/identifiers.py):
    the same problems `wacdc schema` and `wacdc run` refuse with."""
    return [Finding(PROBLEM, "identifier", p.text(), p.fix())
            for p in catalog.identifier_problems(profile, settings.target_schema)]


def _column_findings(settings: Settings, profile: Profile, table: Table) -> list[Finding]:
    """What the target cannot carry of a table's columns (defaults, ON UPDATE), by column.

    A dropped or changed default is a warning: replicated rows carry the source's values.
    Zero-date defaults under WACDC_BAD_VALUES=strict are a problem: the first row that
    holds one stops replication."""
    try:
        columns = target_columns(table, profile)
    except SchemaError as exc:
        return [Finding(PROBLEM, f"table {table.name}", str(exc),
                        "change the type in the source or the profile's override")]
    findings = []
    for column in columns:
        for note in column.notes:
            if note.reason == "zero_date" and settings.bad_value_policy == "strict":
                findings.append(Finding(
                    PROBLEM, f"column {table.name}.{column.name}",
                    f"{note.text}; with WACDC_BAD_VALUES=strict the first row holding a zero "
                    "date stops replication",
                    "use WACDC_BAD_VALUES=coerce (zero dates become NULL, or 0001-01-01 in NOT "
                    "NULL columns), or fix the rows and the default in the source"))
            else:
                findings.append(Finding(WARN, f"column {table.name}.{column.name}", note.text,
                                        note.fix))
    return findings


def _target_checks(settings: Settings, allow_plaintext: bool = False) -> Iterator[Finding]:
    url = settings.target()
    conn = connect_target(url, autocommit=True)  # unreachable: ConnectError, exit 2
    with conn:
        version = conn.info.server_version
        pretty = f"PostgreSQL {version // 10000}.{version % 10000}"
        if version < MIN_PG_VERSION:
            yield Finding(PROBLEM, "target reachable", f"{pretty} at {url.redacted} is too old",
                          "use PostgreSQL 12 or newer (Railway offers 15/16)")
        else:
            yield Finding(OK, "target reachable", f"{pretty} at {url.redacted}")
        yield from _target_transport_checks(settings, conn, url, allow_plaintext)
        schema = settings.target_schema
        row = conn.execute(
            "SELECT has_database_privilege(current_database(), 'CREATE'), "
            "(SELECT has_schema_privilege(n.oid, 'CREATE') FROM pg_namespace n "
            " WHERE n.nspname = %s), "
            "has_database_privilege(current_database(), 'TEMP')", (schema,)).fetchone()
        can_create_db, can_create_in_schema, can_temp = row  # type: ignore[misc]
        if can_create_in_schema or (can_create_in_schema is None and can_create_db):
            yield Finding(OK, "target privileges", f"can create tables in schema {schema} and "
                          "the wacdc state schema" if can_create_db else
                          f"can create tables in schema {schema}")
        else:
            yield Finding(PROBLEM, "target privileges",
                          f"user {url.user} cannot create objects in schema {schema}",
                          f"GRANT CREATE ON DATABASE {url.database} TO {url.user}; "
                          f"GRANT CREATE ON SCHEMA {schema} TO {url.user}")
        if not can_temp:
            yield Finding(WARN, "target privileges",
                          "no TEMP privilege; batched apply uses temporary tables",
                          f"GRANT TEMP ON DATABASE {url.database} TO {url.user}")


# --- transport: encryption of both sides, poolers ------------------------------------

def is_loopback_host(host: str) -> bool:
    """Whether traffic to `host` stays on this machine (no DNS lookup: by name and
    address only). Unix socket directories count as local."""
    name = host.strip().strip("[]").lower()
    if name.startswith("/") or name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plaintext_finding(name: str, host: str, allow_plaintext: bool, fix: str,
                      mode: str) -> Finding:
    """The finding for an unencrypted connection: fine on loopback, allowed with
    --allow-plaintext, else a problem."""
    if is_loopback_host(host):
        return Finding(OK, name, f"plaintext, loopback: fine ({mode})")
    if allow_plaintext:
        return Finding(WARN, name, f"plaintext to {host} ({mode}); allowed by "
                       "--allow-plaintext", fix)
    return Finding(PROBLEM, name, f"plaintext to {host} ({mode}): rows, binlog events and "
                   "credentials cross the network readable", fix
                   + "; or pass --allow-plaintext if the network is private and trusted")


def _source_transport_checks(settings: Settings, conn: pymysql.connections.Connection,
                             url: DatabaseUrl, allow_plaintext: bool) -> Iterator[Finding]:
    tls = mysql_options(url).tls
    encryption = session_encryption(conn)
    variable = settings.url_variable("source_url")
    if encryption.encrypted:
        detail = f"encrypted, {encryption} ({tls.describe()})"
        if not tls.verifies and not is_loopback_host(url.host):
            detail += ("; the server's certificate is not checked (ssl-mode=VERIFY_IDENTITY "
                       "with ssl-ca= checks it)")
        yield Finding(OK, "source encryption", detail)
        return
    yield plaintext_finding(
        "source encryption", url.host, allow_plaintext,
        f"enable TLS on the server if it is off, and add ssl-mode=REQUIRED (or "
        f"VERIFY_IDENTITY with ssl-ca=<CA file>) to {variable}", tls.describe())


def _target_transport_checks(settings: Settings, conn: psycopg.Connection, url: DatabaseUrl,
                             allow_plaintext: bool) -> Iterator[Finding]:
    from wacdc.sink.pooler import DIRECT_URL_FIX, probe_pooler

    variable = settings.url_variable("target_url")
    sslmode = url.param("sslmode") or "prefer"
    if conn.pgconn.ssl_in_use:
        detail = f"encrypted, {_pg_tls_of_session(conn)} (sslmode={sslmode})"
        if sslmode != "verify-full" and not is_loopback_host(url.host):
            detail += ("; the server's certificate is not fully checked (sslmode=verify-full "
                       "with sslrootcert= checks it)")
        yield Finding(OK, "target encryption", detail)
    else:
        yield plaintext_finding(
            "target encryption", url.host, allow_plaintext,
            f"enable ssl on the server if it is off, and add sslmode=require (or "
            f"verify-full with sslrootcert=<CA file>) to {variable}", f"sslmode={sslmode}")
    try:
        verdict = probe_pooler(conn, url)
    except psycopg.Error as exc:
        yield Finding(WARN, "target pooler", "could not probe for a pooler "
                      f"({redact(str(exc).strip().splitlines()[0] if str(exc).strip() else '')})")
        return
    if verdict.transaction_pooling:
        yield Finding(PROBLEM, "target pooler", f"{verdict.describe()}: wacdc's replication "
                      "lock, temporary tables and long transactions need a session of their "
                      f"own", f"{DIRECT_URL_FIX} (now {variable})")
    elif verdict.proxied:
        yield Finding(WARN, "target pooler", f"{verdict.describe()}; if it pools by "
                      "transaction (PgBouncer pool_mode=transaction, Supavisor port 6543), "
                      "wacdc cannot work through it", DIRECT_URL_FIX)
    else:
        yield Finding(OK, "target pooler", "none: " + verdict.describe())


def _pg_tls_of_session(conn: psycopg.Connection) -> str:
    """TLS version and cipher of this session as the server sees it (pg_stat_ssl); the
    client knows it is encrypted (libpq's PQsslInUse), the server says with what."""
    try:
        row = conn.execute("SELECT ssl, version, cipher FROM pg_stat_ssl "
                           "WHERE pid = pg_backend_pid()").fetchone()
    except psycopg.Error:
        return "TLS"
    if row is None or not row[0]:
        # Encrypted to us, but not between the server and whoever connected it: a
        # pooler or proxy ends the TLS.
        return "TLS to a pooler or proxy in front of PostgreSQL"
    return f"{row[1]} {row[2]}"


def run_checks(settings: Settings, profile: Profile, *,
               allow_plaintext: bool = False) -> list[Finding]:
    """All checks. An unreachable source or target raises ConnectError (exit 2).

    `allow_plaintext`: an unencrypted connection to a host that is not loopback is a
    warning instead of a problem (`wacdc check --allow-plaintext`)."""
    url = settings.source()
    settings.target()  # a malformed target URL is an error before anything connects
    conn = connect(url)
    with conn:
        info = server_info(conn)
        findings = [Finding(OK, "source reachable", f"{info} ({info.version}) at {url.redacted}")]
        findings.extend(_source_transport_checks(settings, conn, url, allow_plaintext))
        variables = global_variables(conn, _BINLOG_VARIABLES)
        findings.extend(_variable_checks(info, variables))
        table_findings, table_names = _table_checks(settings, profile, conn, url.database)
        findings.extend(_privilege_checks(conn, info, url.database, table_names))
        findings.extend(_server_id_check(conn, variables, settings.effective_server_id()))
        findings.extend(table_findings)
    findings.extend(_target_checks(settings, allow_plaintext))
    return findings


# Settings `--fix` may change online: variable -> wanted value.
_FIXABLE = {
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
    "binlog_row_value_options": "",
}


def fix_settings(settings: Settings) -> FixResult:
    """Set the binlog variables that can be changed online; say what changed."""
    url = settings.source()
    changed, notes = [], []
    conn = connect(url)
    with conn:
        info = server_info(conn)
        current = global_variables(conn, list(_FIXABLE))
        verb = "SET GLOBAL" if info.is_mariadb else "SET PERSIST"
        for name, want in _FIXABLE.items():
            have = current.get(name)
            if have is None or have.upper() == want.upper():
                continue
            literal = f"'{want}'" if want == "" else want
            try:
                with conn.cursor() as cur:
                    cur.execute(f"{verb} {name} = {literal}")
            except pymysql.err.MySQLError as exc:
                raise WacdcError(f"could not run {verb} {name} = {literal}: "
                                 f"{redact(str(exc.args[-1]))}; run it as an admin "
                                 "(needs SUPER or SYSTEM_VARIABLES_ADMIN)") from None
            changed.append(f"{verb} {name} = {literal} (was {have or 'empty'})")
        if changed:
            notes.append("global settings apply to new sessions: the application's open "
                         "connections keep the old values until they reconnect")
            if info.is_mariadb:
                notes.append("MariaDB has no SET PERSIST: add the same settings to the server's "
                             "my.cnf so they survive a restart")
    return FixResult(changed, notes)


def exit_code(findings: list[Finding]) -> int:
    return EXIT_FINDING if any(f.status == PROBLEM for f in findings) else EXIT_OK
