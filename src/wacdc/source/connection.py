"""Connections to the MySQL/MariaDB source and the facts about the server we need."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.converters
import pymysql.cursors

from wacdc.config import DatabaseUrl, MySQLTls, mysql_options
from wacdc.errors import ConfigError, ConnectError
from wacdc.log import redact
from wacdc.source.sql import quote_ident

__all__ = ["quote_ident"]  # kept here too for callers outside source/ (now source/sql.py)

DEFAULT_CONNECT_TIMEOUT_S = 10.0
# PyMySQL >= 1.2 connects PREFERRED by itself when given no TLS argument: TLS when the
# server offers it (certificate not checked), plaintext when it does not.
PYMYSQL_PREFERS_TLS = tuple(pymysql.VERSION[:2]) >= (1, 2)


@dataclass(frozen=True)
class ServerInfo:
    version: str  # as reported, e.g. "10.11.19-MariaDB-0+deb12u1-log"
    is_mariadb: bool

    @property
    def flavour(self) -> str:
        return "MariaDB" if self.is_mariadb else "MySQL"

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        match = re.match(r"(\d+)\.(\d+)\.(\d+)", self.version)
        if not match:
            return (0, 0, 0)
        major, minor, patch = match.groups()
        return int(major), int(minor), int(patch)

    def __str__(self) -> str:
        return f"{self.flavour} {'.'.join(map(str, self.version_tuple))}"


def connection_kwargs(url: DatabaseUrl, database: str | None = None) -> dict[str, Any]:
    """PyMySQL keyword arguments for a URL (also what mysql-replication takes, for its
    control and binlog dump connections): TLS as the URL's ssl-mode says."""
    try:
        options = mysql_options(url)
    except ValueError as exc:
        raise ConfigError(f"source URL {url.redacted}: {exc}") from None
    kwargs: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "user": url.user,
        "password": url.password,
        "database": url.database if database is None else (database or None),
        "charset": "utf8mb4",
        **tls_kwargs(options.tls),
    }
    if options.connect_timeout is not None:
        kwargs["connect_timeout"] = options.connect_timeout
    return kwargs


class SourceConnection(pymysql.connections.Connection):
    """PyMySQL's connection, with ssl-mode=PREFERRED's TLS context built once per process.

    For PREFERRED PyMySQL builds a context at every connect with create_default_context(),
    which parses the system's whole CA bundle (0.1-0.2 s on a small machine) for a context
    that then checks no certificate; wacdc opens several connections as it starts and
    more at every reconnect. Every other mode passes its own context (`tls_kwargs`)."""

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        if isinstance(sslp, dict) and not sslp:  # PyMySQL's PREFERRED: no TLS options
            return _preferred_context()
        return super()._create_ssl_ctx(sslp)  # type: ignore[misc]


@functools.cache
def _preferred_context() -> ssl.SSLContext:
    """PyMySQL's PREFERRED context (no certificate or name checked) without the CA bundle
    it would never consult; an SSLContext can be shared by connections and threads."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def tls_kwargs(tls: MySQLTls) -> dict[str, Any]:
    """PyMySQL's TLS arguments for a mode: none for PREFERRED (PyMySQL's own fallback),
    ssl_disabled for DISABLED, else an SSLContext (given one, PyMySQL requires TLS)."""
    if tls.mode == "DISABLED":
        return {"ssl_disabled": True}
    if tls.mode == "PREFERRED":
        return {}
    return {"ssl": tls_context(tls)}


def tls_context(tls: MySQLTls) -> ssl.SSLContext:
    """The client context of REQUIRED, VERIFY_CA or VERIFY_IDENTITY; ConfigError naming the
    parameter when a certificate file cannot be read."""
    try:
        if tls.verifies:
            context = ssl.create_default_context(cafile=tls.ca)
            # MySQL's auto-generated certificates lack extensions Python 3.13's strict
            # X.509 checks want; the chain and (for VERIFY_IDENTITY) the name are checked.
            context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
            context.check_hostname = tls.mode == "VERIFY_IDENTITY"
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    except (OSError, ssl.SSLError) as exc:
        which = "sslcert" if tls.source == "prisma" else "ssl-ca"
        raise ConfigError(f"{which}: cannot read the CA file {tls.ca}: {_reason(exc)}"
                          ) from None
    if tls.cert:
        try:
            context.load_cert_chain(tls.cert, keyfile=tls.key, password=tls.password)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"ssl-cert/ssl-key: cannot load the client certificate "
                              f"{tls.cert}: {_reason(exc)}") from None
    elif tls.identity:
        _load_pkcs12(context, tls.identity, tls.password)
    return context


def _load_pkcs12(context: ssl.SSLContext, path: str, password: str | None) -> None:
    """Prisma's sslidentity: a PKCS#12 file. Python's ssl reads PEM only, so the key and
    certificates go through a private temporary file that is removed at once."""
    from cryptography.hazmat.primitives.serialization import (
        BestAvailableEncryption,
        Encoding,
        PrivateFormat,
        pkcs12,
    )

    secret = password.encode() if password else None
    try:
        with open(path, "rb") as fh:
            key, cert, chain = pkcs12.load_key_and_certificates(fh.read(), secret)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"sslidentity: cannot read the PKCS#12 file {path}: "
                          f"{redact(_reason(exc))} (is sslpassword right?)") from None
    if key is None or cert is None:
        raise ConfigError(f"sslidentity: {path} holds no private key and certificate")
    transient = os.urandom(16).hex().encode()  # the PEM copy is encrypted with this
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                            BestAvailableEncryption(transient))
    pem += cert.public_bytes(Encoding.PEM)
    pem += b"".join(c.public_bytes(Encoding.PEM) for c in chain or ())
    fd, name = tempfile.mkstemp(prefix="wacdc-identity-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        context.load_cert_chain(name, password=transient)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc) \
        or type(exc).__name__


# Encoders only, no decoders: every value arrives as MySQL's text (bytes for binary
# columns). Twice as fast as PyMySQL's conversions, and the text is what COPY parses.
TEXT_CONVERSIONS = {k: v for k, v in pymysql.converters.conversions.items()
                    if not isinstance(k, int)}


# A half-open connection must not hang wacdc (docs/operations.md, "Dead connections"):
# every read has a bound. Control queries answer in well under a minute; a snapshot or
# verify chunk (a keyset range, sorted by the server first) gets ten.
CONTROL_READ_TIMEOUT_S = 60.0
LONG_READ_TIMEOUT_S = 600.0


def connect(url: DatabaseUrl, *, database: str | None = None, autocommit: bool = True,
            connect_timeout: float | None = None,
            read_timeout: float = CONTROL_READ_TIMEOUT_S,
            cursorclass: type = pymysql.cursors.Cursor,
            text_values: bool = False) -> pymysql.connections.Connection:
    """Open a utf8mb4, UTC session; ConnectError (one line, no password) when it fails.

    TLS as the URL says (ssl-mode, default PREFERRED); the connect timeout is the
    caller's, else the URL's connect_timeout, else 10 s."""
    kwargs = connection_kwargs(url, database)
    if connect_timeout is not None or "connect_timeout" not in kwargs:
        kwargs["connect_timeout"] = connect_timeout or DEFAULT_CONNECT_TIMEOUT_S
    if text_values:
        kwargs["conv"] = TEXT_CONVERSIONS
    try:
        conn = SourceConnection(
            **kwargs,
            autocommit=autocommit,
            read_timeout=read_timeout,
            cursorclass=cursorclass,
            # TIMESTAMP values come back in UTC, as the binlog carries them.
            init_command="SET time_zone = '+00:00'",
        )
    except pymysql.err.MySQLError as exc:
        raise ConnectError(describe_connect_error(url, exc), "source") from None
    return conn


# Server errors that a plaintext connection gets from a server or user that wants TLS.
_ER_ACCESS_DENIED = 1045
_ER_SECURE_TRANSPORT_REQUIRED = 3159
_CR_SSL_CONNECTION_ERROR = 2026


def describe_connect_error(url: DatabaseUrl, exc: BaseException) -> str:
    """One line for a failed source connection: what happened at which host, and for TLS
    failures what to set. Never the password. (The binlog stream's connect errors can go
    through this too.)"""
    head = f"cannot connect to the source {url.redacted}"
    try:
        tls = mysql_options(url).tls
    except ValueError:
        tls = MySQLTls()
    original = getattr(exc, "original_exception", None)
    code = exc.args[0] if getattr(exc, "args", None) and isinstance(exc.args[0], int) else None
    if isinstance(original, ssl.SSLCertVerificationError):
        detail = original.verify_message or _reason(original)
        if "hostname" in detail.lower() or "ip address mismatch" in detail.lower():
            return (f"{head}: TLS certificate verify failed ({detail}): the server's "
                    f"certificate is not for host {url.host}; connect by a name the "
                    "certificate holds, or set ssl-mode=VERIFY_CA to check the chain only")
        return (f"{head}: TLS certificate verify failed ({detail}); set ssl-ca= to the CA "
                f"that signed the server certificate of {url.host} (or ssl-mode=REQUIRED "
                "to encrypt without checking it)")
    if isinstance(original, ssl.SSLError):
        return (f"{head}: the TLS handshake with {url.host} failed "
                f"({redact(_reason(original))}); check the server's TLS setup, or the "
                "certificate files given with ssl-cert/ssl-key")
    message = redact(_mysql_message(exc))
    if code == _CR_SSL_CONNECTION_ERROR and "doesn't support" in message:
        return (f"{head}: ssl-mode={tls.mode} but the server at {url.host} does not offer "
                "TLS; enable TLS on the server, or set ssl-mode=PREFERRED to connect "
                "without encryption")
    if tls.mode == "DISABLED" and code == _ER_SECURE_TRANSPORT_REQUIRED:
        return (f"{head}: {message}; the server accepts TLS connections only: drop "
                "ssl-mode=DISABLED (set ssl-mode=REQUIRED, or VERIFY_IDENTITY with ssl-ca)")
    if tls.mode == "DISABLED" and code == _ER_ACCESS_DENIED:
        return (f"{head}: {message}; if the password is right, the user may be created "
                "REQUIRE SSL (or the server require_secure_transport=ON): set "
                "ssl-mode=REQUIRED instead of DISABLED")
    return f"{head}: {message}"


def _mysql_message(exc: BaseException) -> str:
    args: tuple[Any, ...] = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[1], str):
        return f"({args[0]}) {args[1]}"
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class Encryption:
    """What a session's transport is, as the server sees it."""

    version: str  # e.g. TLSv1.3; empty: plaintext
    cipher: str

    @property
    def encrypted(self) -> bool:
        return bool(self.version)

    def __str__(self) -> str:
        return f"{self.version} {self.cipher}".strip() if self.encrypted else "plaintext"


def session_encryption(conn: pymysql.connections.Connection) -> Encryption:
    """Ssl_version / Ssl_cipher of this session (SHOW SESSION STATUS)."""
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
        status = {str(name).lower(): str(value or "") for name, value in cur.fetchall()}
    return Encryption(status.get("ssl_version", ""), status.get("ssl_cipher", ""))


def server_info(conn: pymysql.connections.Connection) -> ServerInfo:
    version = query_value(conn, "SELECT VERSION()")
    return ServerInfo(version=str(version), is_mariadb="mariadb" in str(version).lower())


def one_value(cur: pymysql.cursors.Cursor) -> Any:
    """The first column of the one row an aggregate or @@variable query always returns."""
    row = cur.fetchone()
    if row is None:
        raise pymysql.err.InternalError("the server returned no row for a one-row query")
    return row[0]


def query_value(conn: pymysql.connections.Connection, sql: str, args: Any = None) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    return None if row is None else row[0]


def global_variables(conn: pymysql.connections.Connection, names: list[str]) -> dict[str, str]:
    """Global server variables by name (lower case); missing ones are absent from the dict."""
    placeholders = ", ".join(["%s"] * len(names))
    with conn.cursor() as cur:
        cur.execute(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({placeholders})", names)
        return {str(name).lower(): str(value) for name, value in cur.fetchall()}

