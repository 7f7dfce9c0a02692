"""Encryption of both connections (TLS or plaintext, and where that is fine) and a
pooler in front of PostgreSQL."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import psycopg
import pymysql

from wacdc.check.findings import OK, PROBLEM, WARN, Finding
from wacdc.config import DatabaseUrl, Settings, mysql_options
from wacdc.log import redact
from wacdc.source.connection import session_encryption


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


def source_transport_checks(settings: Settings, conn: pymysql.connections.Connection,
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


def target_transport_checks(settings: Settings, conn: psycopg.Connection, url: DatabaseUrl,
                            allow_plaintext: bool) -> Iterator[Finding]:
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
    yield from _pooler_check(conn, url, variable)


def _pooler_check(conn: psycopg.Connection, url: DatabaseUrl,
                  variable: str) -> Iterator[Finding]:
    from wacdc.sink.pooler import DIRECT_URL_FIX, probe_pooler

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
