"""A private MariaDB (or a MySQL binary run the same way) from the installed binaries."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
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


class MariaDBServer(ServerProcess):
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
        run_as = service_user("mysql")
        super().__init__(base_dir=make_owned_dir("wacdc-mariadb-", run_as), port=free_port(),
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
