"""A private Oracle MySQL 8/9: an installed mysqld, or the chroot root
scripts/mysql-root.sh builds."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from wacdc.devtools.servers.process import (
    START_TIMEOUT_S,
    EmbeddedServerError,
    ServerProcess,
    find_binary,
    free_port,
    make_owned_dir,
    service_user,
)
from wacdc.devtools.servers.tls import ScratchCA, TlsFiles

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


class MySQLServer(ServerProcess):
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
            run_as = service_user("mysql")
            base = make_owned_dir("wacdc-mysql-", run_as)
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
