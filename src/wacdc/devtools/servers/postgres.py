"""A private PostgreSQL cluster from the installed binaries (trust auth on loopback)."""

from __future__ import annotations

import os
import pwd
import subprocess
import time

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


class PostgresServer(ServerProcess):
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
        run_as = service_user("postgres")
        super().__init__(base_dir=make_owned_dir("wacdc-pg-", run_as), port=free_port(),
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
