"""A private PgBouncer in front of a private PostgreSQL (the pooler checks' tests)."""

from __future__ import annotations

import os
import pwd

from wacdc.devtools.servers.postgres import PostgresServer
from wacdc.devtools.servers.process import (
    EmbeddedServerError,
    ServerProcess,
    find_binary,
    free_port,
    make_owned_dir,
    service_user,
)


class PgBouncerServer(ServerProcess):
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
        run_as = service_user("postgres")  # PgBouncer refuses to run as root
        super().__init__(base_dir=make_owned_dir("wacdc-pgbouncer-", run_as),
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
