"""TLS to the source and the target, against real servers that serve (or refuse) it.

Each source flavour gets a private server of its own with a certificate for
localhost/127.0.0.1 signed by a throwaway CA (wacdc.devtools.embedded.ScratchCA). A user created
`REQUIRE SSL` is refused by the server on any plaintext connection, so a whole
`wacdc run` (snapshot, then streaming) as that user proves that every connection,
the binlog dump included, is encrypted.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.flavours import only_on
from tests.support.harness import (
    CliResult,
    EmbeddedHandle,
    ServerHandle,
    SourceDb,
    TargetDb,
    create_source_db,
    create_target_db,
    drop_source_db,
    drop_target_db,
    fill_whatsapp,
    mysql_connect,
    run_cli,
    wacdc_env,
)
from tests.support.independent import independent_differences
from tests.support.workload import TABLES, Workload
from wacdc.check import OK, PROBLEM, WARN, is_loopback_host, plaintext_finding
from wacdc.config import parse_url
from wacdc.devtools.embedded import MariaDBServer, MySQLServer, PostgresServer, ScratchCA
from wacdc.errors import ConnectError
from wacdc.source.connection import connect, session_encryption

TLS_USER, TLS_PASSWORD = "wacdc_tls", "Tls-user-Pw-7"
X509_USER, X509_PASSWORD = "wacdc_x509", "X509-user-Pw-7"


@dataclass
class TlsSource:
    handle: ServerHandle
    ca: Path  # signed the server's certificate
    wrong_ca: Path  # a CA that did not
    client_p12: Path  # a client identity (PKCS#12, password X509_PASSWORD) from `ca`
    port: int

    def url(self, database: str, query: str = "", user: str = "root",
            password: str | None = None) -> str:
        server = self.handle.server  # type: ignore[attr-defined]
        raw = server.url(database, user=user, password=password) if password is not None \
            else server.url(database, user=user)
        return raw + (f"?{query}" if query else "")


def _need_embedded(server: ServerHandle) -> None:
    if not isinstance(server, EmbeddedHandle):
        pytest.skip("needs private servers started by the tests (unset WACDC_TEST_*_URL, "
                    "or install the server binaries)")


@pytest.fixture(scope="module")
def tls_source(mysql_server: ServerHandle) -> Iterator[TlsSource]:
    """A private server of the flavour under test, serving TLS with a test CA."""
    _need_embedded(mysql_server)
    server = MariaDBServer(tls=True) if mysql_server.flavour == "mariadb" else \
        MySQLServer(tls=True)
    handle = EmbeddedHandle(server, mysql_server.flavour)
    try:
        assert server.tls is not None
        wrong = ScratchCA(server.base_dir / "wrong-ca", "some other CA")
        client = server.ca.issue("wacdc test client", hosts=(), client=True)
        p12 = server.ca.pkcs12(client, X509_PASSWORD)
        with mysql_connect(handle.url(""), database="") as conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER '{TLS_USER}'@'%' IDENTIFIED BY '{TLS_PASSWORD}' "
                        "REQUIRE SSL")
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{TLS_USER}'@'%'")
            cur.execute(f"CREATE USER '{X509_USER}'@'%' IDENTIFIED BY '{X509_PASSWORD}' "
                        "REQUIRE X509")
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{X509_USER}'@'%'")
        yield TlsSource(handle, server.tls.ca, wrong.ca_path, p12, server.port)
    finally:
        handle.close()


@pytest.fixture
def tls_db(tls_source: TlsSource) -> Iterator[SourceDb]:
    db = create_source_db(tls_source.handle)
    yield db
    drop_source_db(db)


@pytest.fixture(scope="module")
def tls_target() -> Iterator[PostgresServer]:
    """A private PostgreSQL with ssl=on (the session's PostgreSQL has no TLS)."""
    try:
        server = PostgresServer(tls=True)
    except Exception as exc:  # noqa: BLE001 - no binaries: say so and skip
        pytest.skip(f"no private PostgreSQL: {exc}")
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def tls_target_db(tls_target: PostgresServer) -> Iterator[TargetDb]:
    handle = ServerHandle(tls_target.url(""), "postgres")
    db = create_target_db(handle)
    yield db
    drop_target_db(db)


@contextlib.contextmanager
def _require_secure_transport(source: TlsSource) -> Iterator[None]:
    with mysql_connect(source.handle.url(""), database="") as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL require_secure_transport = ON")
    try:
        yield
    finally:
        with mysql_connect(source.handle.url(""), database="") as conn, \
                conn.cursor() as cur:
            cur.execute("SET GLOBAL require_secure_transport = OFF")


def _line(output: str, name: str) -> str:
    found = [ln for ln in output.splitlines() if f"{name}:" in ln]
    assert found, (name, output)
    return found[0]


def _one_line_error(result: CliResult, *needles: str, secret: str = "") -> str:
    """Exit 2 with one line on stderr holding every needle (and never the password)."""
    assert result.code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    if secret:
        assert secret not in result.output
    return lines[0]


# --- the source ----------------------------------------------------------------------

def test_required_encrypts_every_connection_including_the_binlog_stream(
        tls_source: TlsSource, tls_db: SourceDb, target_db: TargetDb) -> None:
    """A REQUIRE SSL user for the whole run: snapshot, then streaming (the binlog dump
    connection and mysql-replication's control connection) all went over TLS, or the
    server would have refused them."""
    fill_whatsapp(tls_db, messages=30)
    url = tls_source.url(tls_db.name, "ssl-mode=REQUIRED", TLS_USER, TLS_PASSWORD)
    # The control: the same user in plaintext is refused by the server.
    plain = run_cli("check", env=wacdc_env(url.replace("REQUIRED", "DISABLED"), target_db))
    _one_line_error(plain, "cannot connect to the source", "ssl-mode=REQUIRED",
                    secret=TLS_PASSWORD)
    env = wacdc_env(url, target_db, WACDC_TABLES=",".join(TABLES))
    snapshot = run_cli("run", "--snapshot-only", env=env)
    assert snapshot.code == 0, snapshot.output
    Workload(tls_db, seed=5).run(80)
    streaming = run_cli("run", "--exit-when-caught-up", env=env)
    assert streaming.code == 0, streaming.output
    assert TLS_PASSWORD not in snapshot.output + streaming.output
    assert independent_differences(tls_db, target_db, list(TABLES)) == {}
    check = run_cli("check", env=wacdc_env(url, target_db))
    line = _line(check.stdout, "source encryption")
    assert line.startswith("ok") and "encrypted, TLSv1." in line and "REQUIRED" in line, line


def test_verify_ca_and_identity_with_the_right_ca_connect(tls_source: TlsSource) -> None:
    for query in (f"ssl-mode=VERIFY_CA&ssl-ca={tls_source.ca}",
                  f"ssl-ca={tls_source.ca}",  # a CA alone means VERIFY_CA, as in mysql
                  f"ssl_mode=verify_identity&ssl_ca={tls_source.ca}",
                  f"sslaccept=strict&sslcert={tls_source.ca}"):  # Prisma's spelling
        url = parse_url(tls_source.url("mysql", query), "mysql")
        with connect(url) as conn:
            assert session_encryption(conn).encrypted, query


def test_verify_ca_with_the_wrong_ca_is_refused_clearly(tls_source: TlsSource,
                                                        target_db: TargetDb) -> None:
    url = tls_source.url("mysql", f"ssl-mode=VERIFY_CA&ssl-ca={tls_source.wrong_ca}",
                         TLS_USER, TLS_PASSWORD)
    result = run_cli("check", env=wacdc_env(url, target_db))
    _one_line_error(result, "cannot connect to the source", "127.0.0.1",
                    "certificate verify failed",
                    "set ssl-ca= to the CA that signed the server certificate",
                    secret=TLS_PASSWORD)


def test_verify_identity_names_a_host_the_certificate_lacks(mysql_server: ServerHandle
                                                             ) -> None:
    """MySQL's own generated certificate (its default TLS) names no host: VERIFY_CA with
    its CA passes, VERIFY_IDENTITY says the certificate is not for 127.0.0.1."""
    only_on(mysql_server, "mysql", "MariaDB 10.11 generates no certificates of its own")
    _need_embedded(mysql_server)
    ca = mysql_server.server.auto_ca  # type: ignore[attr-defined]
    base = mysql_server.url("mysql")
    with connect(parse_url(f"{base}?ssl-mode=VERIFY_CA&ssl-ca={ca}", "mysql")) as conn:
        assert session_encryption(conn).encrypted
    with pytest.raises(ConnectError) as err:
        connect(parse_url(f"{base}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}", "mysql"))
    message = str(err.value)
    assert "certificate verify failed" in message and "not for host 127.0.0.1" in message
    assert "ssl-mode=VERIFY_CA" in message


def test_disabled_against_a_server_that_requires_tls_fails_clearly(
        tls_source: TlsSource, target_db: TargetDb) -> None:
    url = tls_source.url("mysql", "ssl-mode=DISABLED")
    with _require_secure_transport(tls_source):
        result = run_cli("check", env=wacdc_env(url, target_db))
        line = _one_line_error(result, "cannot connect to the source", "ssl-mode=REQUIRED")
        if tls_source.handle.flavour == "mysql":
            assert "require_secure_transport" in line  # the server's own words
        # The same server with the default mode (PREFERRED) connects encrypted.
        with connect(parse_url(tls_source.url("mysql"), "mysql")) as conn:
            assert session_encryption(conn).encrypted


def test_required_against_a_server_without_tls_fails_clearly(mysql_server: ServerHandle,
                                                             target_db: TargetDb) -> None:
    with _plaintext_server(mysql_server) as plain:
        result = run_cli("check", env=wacdc_env(plain.url("mysql") + "?ssl-mode=REQUIRED",
                                                target_db))
        _one_line_error(result, "ssl-mode=REQUIRED but the server at 127.0.0.1 does not "
                        "offer TLS")


def test_preferred_encrypts_when_offered_and_falls_back_when_not(
        tls_source: TlsSource, mysql_server: ServerHandle, target_db: TargetDb) -> None:
    with connect(parse_url(tls_source.url("mysql"), "mysql")) as conn, \
            connect(parse_url(tls_source.url("mysql"), "mysql")) as again:
        encryption = session_encryption(conn)
        assert session_encryption(again).encrypted
        # One PREFERRED context per process (PyMySQL would parse the CA bundle each time).
        assert conn.ctx is again.ctx
        assert conn.ctx.verify_mode == ssl.CERT_NONE and not conn.ctx.check_hostname
    assert encryption.encrypted and encryption.version.startswith("TLSv1."), encryption
    with _plaintext_server(mysql_server) as plain:
        with connect(parse_url(plain.url("mysql"), "mysql")) as conn:
            assert not session_encryption(conn).encrypted
        check = run_cli("check", env=wacdc_env(plain.url("mysql"), target_db))
        line = _line(check.stdout, "source encryption")
        assert line.startswith("ok") and "plaintext, loopback: fine" in line, line
        assert "PREFERRED" in line


def test_a_client_certificate_from_a_pkcs12_identity(tls_source: TlsSource) -> None:
    """Prisma's sslidentity/sslpassword: a REQUIRE X509 user gets in with it, and not
    without it."""
    base = tls_source.url("mysql", user=X509_USER, password=X509_PASSWORD)
    with_identity = (f"{base}?sslaccept=strict&sslcert={tls_source.ca}"
                     f"&sslidentity={tls_source.client_p12}&sslpassword={X509_PASSWORD}")
    with connect(parse_url(with_identity, "mysql")) as conn:
        assert session_encryption(conn).encrypted
    with pytest.raises(ConnectError) as err:
        connect(parse_url(f"{base}?sslaccept=strict&sslcert={tls_source.ca}", "mysql"))
    assert "Access denied" in str(err.value) and X509_PASSWORD not in str(err.value)


@contextlib.contextmanager
def _plaintext_server(mysql_server: ServerHandle) -> Iterator[ServerHandle]:
    """A source of this flavour without TLS: the session's MariaDB (10.11 serves none by
    default); for MySQL, which does, a private one started with tls_version=''."""
    _need_embedded(mysql_server)
    if mysql_server.flavour == "mariadb":
        yield mysql_server
        return
    handle = EmbeddedHandle(MySQLServer(tls=False), "mysql")
    try:
        yield handle
    finally:
        handle.close()


# --- `wacdc check`: both sides, and the plaintext rule -------------------------------

def test_check_reports_the_encryption_of_both_sides(tls_source: TlsSource, tls_db: SourceDb,
                                                    tls_target: PostgresServer,
                                                    tls_target_db: TargetDb) -> None:
    assert tls_target.tls is not None
    source = tls_source.url(tls_db.name, f"ssl-mode=VERIFY_IDENTITY&ssl-ca={tls_source.ca}")
    target = f"{tls_target_db.url}?sslmode=verify-full&sslrootcert={tls_target.tls.ca}"
    result = run_cli("check", env=wacdc_env(source, target))
    assert result.code == 0, result.output
    src = _line(result.stdout, "source encryption")
    tgt = _line(result.stdout, "target encryption")
    assert src.startswith("ok") and "encrypted, TLSv1." in src and "VERIFY_IDENTITY" in src
    assert tgt.startswith("ok") and "encrypted, TLSv1." in tgt and "verify-full" in tgt, tgt
    # The same target without TLS, and libpq's prefer (its default): both plaintext-free.
    prefer = run_cli("check", env=wacdc_env(source, f"{tls_target_db.url}?sslmode=prefer"))
    assert "encrypted, TLSv1." in _line(prefer.stdout, "target encryption")
    disable = run_cli("check", env=wacdc_env(source, f"{tls_target_db.url}?sslmode=disable"))
    assert disable.code == 0, disable.output
    assert "plaintext, loopback: fine" in _line(disable.stdout, "target encryption")


def test_target_verify_full_with_the_wrong_ca_fails(source_db: SourceDb,
                                                    tls_target_db: TargetDb,
                                                    tls_source: TlsSource) -> None:
    target = f"{tls_target_db.url}?sslmode=verify-full&sslrootcert={tls_source.wrong_ca}"
    result = run_cli("check", env=wacdc_env(source_db, target))
    _one_line_error(result, "cannot connect to the target", "certificate verify failed")


def test_target_sslmode_require_against_a_server_without_ssl(source_db: SourceDb,
                                                             target_db: TargetDb) -> None:
    """The session's PostgreSQL runs without ssl: require fails and says so; disable and
    prefer connect (plaintext, loopback: fine)."""
    result = run_cli("check", env=wacdc_env(source_db, f"{target_db.url}?sslmode=require"))
    _one_line_error(result, "cannot connect to the target",
                    "server does not support SSL, but SSL was required")
    for mode in ("disable", "prefer"):
        ok = run_cli("check", env=wacdc_env(source_db, f"{target_db.url}?sslmode={mode}"))
        assert ok.code == 0, ok.output
        line = _line(ok.stdout, "target encryption")
        assert line.startswith("ok") and "plaintext, loopback: fine" in line, line


def test_check_on_loopback_plaintext_passes_with_and_without_the_flag(
        source_db: SourceDb, target_db: TargetDb) -> None:
    env = wacdc_env(source_db.url + "?ssl-mode=DISABLED", target_db)
    for args in ((), ("--allow-plaintext",)):
        result = run_cli("check", *args, env=env)
        assert result.code == 0, result.output
        line = _line(result.stdout, "source encryption")
        assert line.startswith("ok") and "plaintext, loopback: fine" in line, line


def test_plaintext_to_a_remote_host_is_a_problem_unless_allowed() -> None:
    fix = "add ssl-mode=REQUIRED"
    remote = plaintext_finding("source encryption", "db.example.com", False, fix,
                               "ssl-mode=PREFERRED")
    assert remote.status == PROBLEM and "plaintext to db.example.com" in remote.detail
    assert "--allow-plaintext" in remote.fix and fix in remote.fix
    allowed = plaintext_finding("source encryption", "db.example.com", True, fix, "x")
    assert allowed.status == WARN and "allowed by --allow-plaintext" in allowed.detail
    for host in ("127.0.0.1", "127.9.9.9", "localhost", "::1", "[::1]", "/var/run/pg"):
        assert is_loopback_host(host), host
        assert plaintext_finding("n", host, False, fix, "x").status == OK
    for host in ("10.0.0.5", "mysql.railway.internal", "roundhouse.proxy.rlwy.net",
                 "192.168.1.2", "localhost.example.com"):
        assert not is_loopback_host(host), host


def test_check_help_teaches_the_flag_and_the_tls_parameters() -> None:
    result = run_cli("check", "--help", env=dict(os.environ))
    assert result.code == 0
    text = " ".join(result.stdout.split()).replace("- ", "-")  # argparse wraps at hyphens
    assert "--allow-plaintext" in text and "ssl-mode=REQUIRED" in text
    assert "sslmode=require" in text
