"""Private MariaDB/MySQL and PostgreSQL servers started from installed binaries.

Used by the test suite, `wacdc demo` and the benchmarks. Each server lives in its
own temp directory on a free loopback port, so it can be stopped, killed with
SIGKILL and restarted without touching anything else on the machine. When the
current user is root, the servers run as the `mysql` / `postgres` system users
(both refuse to run as root).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 60.0

_live_servers: list[_Server] = []


class EmbeddedServerError(RuntimeError):
    """A private server could not be set up or started."""


def find_binary(name: str, extra_globs: tuple[str, ...] = ()) -> str | None:
    """Locate an executable on PATH, in sbin, or in versioned install dirs."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if found:
        return found
    for pattern in extra_globs:
        # Highest version first: /usr/lib/postgresql/16/bin before 15.
        for candidate in sorted(glob.glob(pattern), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _service_user(name: str) -> str | None:
    """The system user to run a server as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError as exc:
        raise EmbeddedServerError(
            f"running as root, but system user {name!r} does not exist; "
            f"install the server package (it creates the user) or run as a normal user"
        ) from exc
    return name


def _make_owned_dir(prefix: str, owner: str | None) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        # The parent (/tmp) is world-traversable; the dir itself stays private to the owner.
    return path


def _wait_for_port(port: int, proc: subprocess.Popen, log_path: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServerError(
                f"{what} exited with code {proc.returncode} while starting; "
                f"last log lines:\n{_tail(log_path)}"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise EmbeddedServerError(f"{what} did not listen on port {port} within {START_TIMEOUT_S}s")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


# --- TLS for the private servers --------------------------------------------------------

@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a server (or client) certificate and the CA that signed it."""

    ca: Path
    cert: Path
    key: Path


class ScratchCA:
    """A throwaway certificate authority (made with `cryptography`, no openssl CLI) that
    signs server certificates for the private servers and client certificates."""

    def __init__(self, directory: Path, name: str = "wacdc test CA") -> None:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.directory = directory
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                           critical=False)
            .sign(self._key, hashes.SHA256()))
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_path = directory / f"{_slug(name)}.pem"
        self.ca_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
              client: bool = False, owner: str | tuple[int, int] | None = None) -> TlsFiles:
        """A certificate for `hosts` (DNS names and IP addresses), key unencrypted."""
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        base = self.directory / _slug(name)
        files = TlsFiles(ca=self.ca_path, cert=base.with_suffix(".crt"),
                         key=base.with_suffix(".key"))
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        os.chmod(files.key, 0o600)
        if owner is not None:
            ids = pwd.getpwnam(owner)[2:4] if isinstance(owner, str) else owner
            for path in (files.ca, files.cert, files.key):
                os.chown(path, *ids)
        return files

    def pkcs12(self, files: TlsFiles, password: str | None) -> Path:
        """The certificate and key of `files` as one PKCS#12 file (Prisma's sslidentity)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12

        key = serialization.load_pem_private_key(files.key.read_bytes(), None)
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                      else serialization.NoEncryption())
        blob = pkcs12.serialize_key_and_certificates(
            b"wacdc", key, cert, [self._cert], encryption)  # type: ignore[arg-type]
        path = files.cert.with_suffix(".p12")
        path.write_bytes(blob)
        return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "cert"


@dataclass
class _Server:
    """Common process handling: start, stop, kill -9, restart, cleanup."""

    base_dir: Path
    port: int
    run_as: str | None
    proc: subprocess.Popen | None = field(default=None, repr=False)
    removed: bool = False

    name = "server"

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        return self.base_dir / "server.log"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=self.run_as,
                # Own process group: Ctrl-C in a terminal must not kill it behind our back.
                start_new_session=True,
            )
        finally:
            log.close()
        _wait_for_port(self.port, self.proc, self.log_path, self.name)
        self.wait_ready()
        if self not in _live_servers:
            _live_servers.append(self)

    def wait_ready(self) -> None:
        """Hook: block until the server accepts real queries."""

    def stop(self, timeout: float = 30.0) -> None:
        """Clean shutdown (SIGTERM, then SIGKILL if it hangs)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9: the server gets no chance to flush or say goodbye."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def detach(self) -> None:
        """Leave the server running after this process exits (`wacdc demo --keep`)."""
        if self in _live_servers:
            _live_servers.remove(self)

    def cleanup(self) -> None:
        self.kill()
        if not self.removed:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.removed = True
        if self in _live_servers:
            _live_servers.remove(self)


class MariaDBServer(_Server):
    """A private MariaDB (or MySQL) with row-based binlog, FULL image and FULL metadata."""

    name = "mariadb"

    def __init__(self, server_id: int = 1, extra_args: tuple[str, ...] = (),
                 tls: bool = False, require_secure_transport: bool = False) -> None:
        """`tls`: serve TLS with a certificate for localhost/127.0.0.1 signed by a fresh
        test CA (`self.tls.ca`); `require_secure_transport`: refuse plaintext clients."""
        binary = find_binary("mariadbd") or find_binary("mysqld")
        if binary is None:
            raise EmbeddedServerError(
                "no MariaDB/MySQL server binary found; install one: apt-get install mariadb-server"
            )
        self.binary = binary
        self.server_id = server_id
        self.extra_args = extra_args
        run_as = _service_user("mysql")
        super().__init__(base_dir=_make_owned_dir("wacdc-mariadb-", run_as), port=free_port(),
                         run_as=run_as)
        self.datadir = self.base_dir / "data"
        self.socket_path = self.base_dir / "mysqld.sock"
        self.tls: TlsFiles | None = None
        self.require_secure_transport = require_secure_transport
        if tls or require_secure_transport:
            self.ca = ScratchCA(self.base_dir / "tls")
            self.tls = self.ca.issue("wacdc test server", owner=run_as)
            if run_as:
                os.chown(self.base_dir / "tls", *pwd.getpwnam(run_as)[2:4])
        self._initialize()

    @property
    def is_mariadb(self) -> bool:
        return "mariadb" in Path(self.binary).name or _is_mariadb_binary(self.binary)

    def _initialize(self) -> None:
        if self.is_mariadb:
            installer = find_binary("mariadb-install-db") or find_binary("mysql_install_db")
            if installer is None:
                raise EmbeddedServerError("mariadb-install-db not found (package mariadb-server)")
            cmd = [installer, "--no-defaults", f"--datadir={self.datadir}",
                   "--auth-root-authentication-method=normal", "--skip-test-db",
                   "--skip-name-resolve"]
            if self.run_as:
                cmd.append(f"--user={self.run_as}")
        else:
            cmd = [self.binary, "--no-defaults", "--initialize-insecure",
                   f"--datadir={self.datadir}"]
            if self.run_as:
                cmd.append(f"--user={self.run_as}")
        result = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                user=None if self.is_mariadb else self.run_as)
        if result.returncode != 0:
            raise EmbeddedServerError(f"initializing MariaDB/MySQL failed: {result.stderr[-2000:]}")
        # Runs at every start: a TCP root login with no password, like Railway's root user.
        init_sql = self.base_dir / "init.sql"
        init_sql.write_text(
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';\n"
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n"
        )
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(init_sql, entry.pw_uid, entry.pw_gid)

    def command(self) -> list[str]:
        cmd = [
            self.binary, "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket_path}",
            f"--pid-file={self.base_dir / 'mysqld.pid'}",
            f"--tmpdir={self.base_dir}",  # private: nothing else on the machine may clean it
            f"--init-file={self.base_dir / 'init.sql'}",
            f"--log-bin={self.base_dir / 'binlog'}",
            f"--server-id={self.server_id}",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=256M",
            "--innodb-log-file-size=256M",
            "--max-allowed-packet=256M",
            "--max-connections=300",
            "--sync-binlog=0",
            "--innodb-flush-log-at-trx-commit=2",
            "--sql-mode=STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION",
        ]
        if self.run_as:
            cmd.append(f"--user={self.run_as}")
        if self.tls is not None:
            cmd += [f"--ssl-ca={self.tls.ca}", f"--ssl-cert={self.tls.cert}",
                    f"--ssl-key={self.tls.key}"]
        if self.require_secure_transport:
            cmd.append("--require-secure-transport=ON")
        return [*cmd, *self.extra_args]

    def wait_ready(self) -> None:
        import pymysql

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="",
                                connect_timeout=2).close()
                return
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline or not self.running:
                    raise
                time.sleep(0.1)

    def url(self, database: str = "", user: str = "root", password: str = "") -> str:
        auth = f"{user}:{password}" if password else user
        return f"mysql://{auth}@127.0.0.1:{self.port}/{database}"


def _is_mariadb_binary(binary: str) -> bool:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return "mariadb" in out.stdout.lower()


# --- Oracle MySQL -----------------------------------------------------------------------

MYSQL_ROOT_SCRIPT = "scripts/mysql-root.sh"
MYSQL_TEST_PASSWORD = "wacdc-Test-pw1"  # production-like: caching_sha2_password, not empty


def mysql_root_dir() -> Path:
    """Where scripts/mysql-root.sh keeps its Debian sid root with Oracle MySQL."""
    if os.environ.get("WACDC_MYSQL_ROOT"):
        return Path(os.environ["WACDC_MYSQL_ROOT"])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "wacdc" / "mysql-sid-root"


@dataclass(frozen=True)
class MySQLInstall:
    """An Oracle MySQL server binary: installed on the host, or inside a chroot root."""

    binary: str  # path as mysqld sees it (inside `root` when there is one)
    root: Path | None = None

    def run(self, *args: str) -> list[str]:
        return ["chroot", str(self.root), self.binary, *args] if self.root else \
            [self.binary, *args]


def _oracle_mysql_version(command: list[str]) -> tuple[int, ...] | None:
    out = subprocess.run([*command, "--version"], capture_output=True, text=True,
                         check=False)
    text = out.stdout.lower()
    if out.returncode != 0 or "mariadb" in text:
        return None
    match = re.search(r"ver (\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in match.groups()) if match else None


def find_oracle_mysql() -> MySQLInstall | None:
    """An installed Oracle mysqld >= 8.0, else the cached chroot root (root only)."""
    binary = find_binary("mysqld")
    if binary and (_oracle_mysql_version([binary]) or (0,)) >= (8, 0):
        return MySQLInstall(binary)
    root = mysql_root_dir()
    if os.geteuid() == 0 and (root / ".wacdc-ready").exists() \
            and os.access(root / "usr/sbin/mysqld", os.X_OK):
        return MySQLInstall("/usr/sbin/mysqld", root)
    return None


def _chroot_user(root: Path, name: str) -> tuple[int, int]:
    """uid/gid of a user in the chroot's own /etc/passwd (not the host's)."""
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise EmbeddedServerError(f"no user {name!r} in {root}/etc/passwd; rebuild the root: "
                              f"rm -rf {root} && {MYSQL_ROOT_SCRIPT}")


class MySQLServer(_Server):
    """A private Oracle MySQL 8/9 as the application's source runs it: GTID on, binlog ROW,
    FULL image and metadata, root with caching_sha2_password and a password.

    Without an installed Oracle mysqld it runs from the Debian sid root that
    scripts/mysql-root.sh builds, through `chroot` (loopback port, datadir inside the
    root); the process is mysqld itself, so stop, kill -9 and restart act on it directly.
    """

    name = "mysql"

    def __init__(self, server_id: int = 1, extra_args: tuple[str, ...] = (),
                 install: MySQLInstall | None = None, tls: bool | None = None,
                 require_secure_transport: bool = False) -> None:
        """`tls`: None leaves MySQL's own default (TLS on, with the certificates it
        generates in the datadir); True serves a certificate for localhost/127.0.0.1
        signed by a fresh test CA (`self.tls.ca`); False turns TLS off (tls_version='')."""
        found = install or find_oracle_mysql()
        if found is None:
            raise EmbeddedServerError(
                "no Oracle MySQL server found: install mysql-server 8.0+, or as root run "
                f"{MYSQL_ROOT_SCRIPT} (a Debian sid root with MySQL 9, cached in "
                f"{mysql_root_dir()})")
        self.install = found
        self.server_id = server_id
        self.extra_args = extra_args
        self.password = MYSQL_TEST_PASSWORD
        if found.root is not None:
            # mysqld starts as root inside the chroot and drops to the chroot's mysql user.
            parent = found.root / "var/lib/wacdc"
            parent.mkdir(parents=True, exist_ok=True)
            base = Path(tempfile.mkdtemp(prefix="wacdc-mysql-", dir=parent))
            os.chown(base, *_chroot_user(found.root, "mysql"))
            run_as = None
        else:
            run_as = _service_user("mysql")
            base = _make_owned_dir("wacdc-mysql-", run_as)
        super().__init__(base_dir=base, port=free_port(), run_as=run_as)
        self.datadir = self.base_dir / "data"
        self.tls_mode = tls
        self.tls: TlsFiles | None = None
        self.require_secure_transport = require_secure_transport
        if tls:
            owner = _chroot_user(found.root, "mysql") if found.root else \
                (pwd.getpwnam(run_as)[2:4] if run_as else None)
            self.ca = ScratchCA(self.base_dir / "tls")
            self.tls = self.ca.issue("wacdc test server", owner=owner)
            if owner:
                os.chown(self.base_dir / "tls", *owner)
        self._initialize()

    @property
    def auto_ca(self) -> Path:
        """The CA MySQL generated in its datadir (its default TLS, `tls=None`)."""
        return self.datadir / "ca.pem"

    def inner(self, path: Path) -> str:
        """A path as mysqld sees it (inside its chroot)."""
        if self.install.root is None:
            return str(path)
        return "/" + str(path.relative_to(self.install.root))

    def _initialize(self) -> None:
        args = ["--no-defaults", "--initialize-insecure",
                f"--datadir={self.inner(self.datadir)}"]
        if self.install.root is not None or self.run_as:
            args.append("--user=mysql")
        result = subprocess.run(self.install.run(*args), capture_output=True, text=True,
                                check=False, user=self.run_as)
        if result.returncode != 0:
            raise EmbeddedServerError(f"initializing MySQL failed: {result.stderr[-2000:]}")
        # Runs at every start: root over TCP with a password, caching_sha2 like Railway's.
        init_sql = self.base_dir / "init.sql"
        init_sql.write_text(
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED WITH "
            f"caching_sha2_password BY '{self.password}';\n"
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n")
        owner = _chroot_user(self.install.root, "mysql") if self.install.root else \
            (pwd.getpwnam(self.run_as)[2:4] if self.run_as else None)
        if owner:
            os.chown(init_sql, *owner)

    def command(self) -> list[str]:
        base = self.base_dir
        args = [
            "--no-defaults",
            f"--datadir={self.inner(self.datadir)}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.inner(base / 'mysqld.sock')}",
            f"--pid-file={self.inner(base / 'mysqld.pid')}",
            f"--tmpdir={self.inner(base)}",
            f"--init-file={self.inner(base / 'init.sql')}",
            f"--log-bin={self.inner(base / 'binlog')}",
            f"--server-id={self.server_id}",
            "--gtid-mode=ON",
            "--enforce-gtid-consistency=ON",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
            "--character-set-server=utf8mb4",
            "--skip-name-resolve",
            "--mysqlx=OFF",
            "--secure-file-priv=",
            "--innodb-buffer-pool-size=256M",
            "--innodb-redo-log-capacity=256M",
            "--max-allowed-packet=256M",
            "--max-connections=300",
            "--sync-binlog=0",
            "--innodb-flush-log-at-trx-commit=2",
            # As the private MariaDB: the tests write zero dates and other bad values.
            "--sql-mode=STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION",
        ]
        if self.install.root is not None or self.run_as:
            args.append("--user=mysql")
        if self.tls is not None:
            args += [f"--ssl-ca={self.inner(self.tls.ca)}",
                     f"--ssl-cert={self.inner(self.tls.cert)}",
                     f"--ssl-key={self.inner(self.tls.key)}"]
        elif self.tls_mode is False:
            args.append("--tls-version=")
        if self.require_secure_transport:
            args.append("--require-secure-transport=ON")
        return self.install.run(*args, *self.extra_args)

    def wait_ready(self) -> None:
        import pymysql

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                                password=self.password, connect_timeout=2).close()
                return
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline or not self.running:
                    raise
                time.sleep(0.1)

    def url(self, database: str = "", user: str = "root", password: str | None = None) -> str:
        secret = self.password if password is None else password
        auth = f"{user}:{secret}" if secret else user
        return f"mysql://{auth}@127.0.0.1:{self.port}/{database}"


class PostgresServer(_Server):
    """A private PostgreSQL cluster with trust auth on loopback."""

    name = "postgres"

    def __init__(self, tls: bool = False) -> None:
        """`tls`: ssl=on with a certificate for localhost/127.0.0.1 signed by a fresh
        test CA (`self.tls.ca`)."""
        globs = ("/usr/lib/postgresql/*/bin/{}", "/usr/local/pgsql/bin/{}")
        initdb = find_binary("initdb", tuple(g.format("initdb") for g in globs))
        postgres = find_binary("postgres", tuple(g.format("postgres") for g in globs))
        if not initdb or not postgres:
            raise EmbeddedServerError(
                "PostgreSQL binaries (initdb, postgres) not found; "
                "install them: apt-get install postgresql"
            )
        self.initdb, self.postgres = initdb, postgres
        run_as = _service_user("postgres")
        super().__init__(base_dir=_make_owned_dir("wacdc-pg-", run_as), port=free_port(),
                         run_as=run_as)
        self.datadir = self.base_dir / "data"
        result = subprocess.run(
            [self.initdb, "-D", str(self.datadir), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, check=False, user=run_as,
        )
        if result.returncode != 0:
            raise EmbeddedServerError(f"initdb failed: {result.stderr[-2000:]}")
        self.tls: TlsFiles | None = None
        if tls:
            self.ca = ScratchCA(self.base_dir / "tls")
            self.tls = self.ca.issue("wacdc test postgres", owner=run_as)
            if run_as:
                os.chown(self.base_dir / "tls", *pwd.getpwnam(run_as)[2:4])

    def command(self) -> list[str]:
        ssl = ["-c", "ssl=on", "-c", f"ssl_cert_file={self.tls.cert}",
               "-c", f"ssl_key_file={self.tls.key}"] if self.tls else []
        return [
            self.postgres, "-D", str(self.datadir),
            "-p", str(self.port),
            "-k", str(self.base_dir),
            "-c", "listen_addresses=127.0.0.1",
            # fsync off is safe against process kills (the OS keeps the page cache);
            # only a machine crash could lose data, and these are throwaway servers.
            # synchronous_commit stays on: off would lose commits to a kill -9.
            "-c", "fsync=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
            "-c", "shared_buffers=256MB",
            "-c", "max_wal_size=2GB",
            *ssl,
        ]

    def wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or not self.running:
                    raise
                time.sleep(0.1)

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"


class PgBouncerServer(_Server):
    """A private PgBouncer in front of a private PostgreSQL (tests of the pooler checks):
    trust auth, one database entry for every name, `pool_mode` transaction by default."""

    name = "pgbouncer"

    def __init__(self, postgres: PostgresServer, pool_mode: str = "transaction",
                 ignore_startup_parameters: tuple[str, ...] = ("options",),
                 pool_size: int = 5) -> None:
        binary = find_binary("pgbouncer")
        if binary is None:
            raise EmbeddedServerError("pgbouncer not found; install it: apt-get install "
                                      "pgbouncer")
        self.binary = binary
        run_as = _service_user("postgres")  # PgBouncer refuses to run as root
        super().__init__(base_dir=_make_owned_dir("wacdc-pgbouncer-", run_as),
                         port=free_port(), run_as=run_as)
        users = self.base_dir / "users.txt"
        users.write_text('"postgres" ""\n')
        ini = self.base_dir / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={postgres.port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            f"pool_mode = {pool_mode}\n"
            f"default_pool_size = {pool_size}\n"
            f"ignore_startup_parameters = {','.join(ignore_startup_parameters)}\n"
            f"logfile = {self.base_dir / 'pgbouncer.log'}\n"
            f"pidfile = {self.base_dir / 'pgbouncer.pid'}\n")
        if run_as:
            entry = pwd.getpwnam(run_as)
            for path in (users, ini):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.ini = ini

    def command(self) -> list[str]:
        return [self.binary, str(self.ini)]

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"


def cleanup_all() -> None:
    for server in list(_live_servers):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            server.cleanup()


atexit.register(cleanup_all)


# --- Docker, for machines without server binaries (tests, `wacdc demo`) ---------------------

MYSQL_IMAGES = {"mysql": "mysql:9", "mariadb": "mariadb:10.11"}
POSTGRES_IMAGE = "postgres:16"
_BINLOG_FLAGS = ("--log-bin=binlog --server-id=1 --binlog-format=ROW --binlog-row-image=FULL "
                 "--binlog-row-metadata=FULL")
MYSQL_FLAGS = {"mysql": _BINLOG_FLAGS + " --gtid-mode=ON --enforce-gtid-consistency=ON",
               "mariadb": _BINLOG_FLAGS}


def docker_available() -> bool:
    """A Docker engine answers (testcontainers installed, `docker` reachable)."""
    if os.environ.get("WACDC_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 - any failure here simply means "no usable Docker"
        return False
    return True


def start_mysql_container(flavour: str = "mysql") -> tuple[object, str]:
    """MySQL 9 or MariaDB 10.11 with the binlog settings wacdc needs;
    (container, root URL without db)."""
    from testcontainers.mysql import MySqlContainer

    container = MySqlContainer(MYSQL_IMAGES[flavour], username="root", password="test",
                               dbname="wacdc").with_command(MYSQL_FLAGS[flavour])
    container.start()
    host, port = container.get_container_host_ip(), container.get_exposed_port(3306)
    return container, f"mysql://root:test@{host}:{port}/"


def start_postgres_container() -> tuple[object, str]:
    """PostgreSQL 16; (container, URL of database postgres)."""
    from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(POSTGRES_IMAGE, username="postgres", password="test",
                                  dbname="postgres")
    container.start()
    host, port = container.get_container_host_ip(), container.get_exposed_port(5432)
    return container, f"postgresql://postgres:test@{host}:{port}/postgres"
