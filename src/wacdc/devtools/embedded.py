"""Private MariaDB/MySQL, PostgreSQL and PgBouncer servers, from installed binaries or
Docker: the names the test suite, `wacdc demo` and the benchmarks import.

Each server has its module under `devtools/servers/` (process handling, the scratch
CA, one per server, the containers); this module only gathers them.
"""

from wacdc.devtools.servers.containers import (
    MYSQL_FLAGS,
    MYSQL_IMAGES,
    POSTGRES_IMAGE,
    docker_available,
    start_mysql_container,
    start_postgres_container,
)
from wacdc.devtools.servers.mariadb import MariaDBServer
from wacdc.devtools.servers.mysql import (
    MYSQL_ROOT_SCRIPT,
    MYSQL_TEST_PASSWORD,
    MySQLInstall,
    MySQLServer,
    find_oracle_mysql,
    mysql_root_dir,
)
from wacdc.devtools.servers.pgbouncer import PgBouncerServer
from wacdc.devtools.servers.postgres import PostgresServer
from wacdc.devtools.servers.process import (
    START_TIMEOUT_S,
    EmbeddedServerError,
    ServerProcess,
    find_binary,
    free_port,
)
from wacdc.devtools.servers.tls import ScratchCA, TlsFiles

__all__ = [
    "MYSQL_FLAGS", "MYSQL_IMAGES", "MYSQL_ROOT_SCRIPT", "MYSQL_TEST_PASSWORD", "POSTGRES_IMAGE",
    "START_TIMEOUT_S", "EmbeddedServerError", "MariaDBServer", "MySQLInstall", "MySQLServer",
    "PgBouncerServer", "PostgresServer", "ScratchCA", "ServerProcess", "TlsFiles",
    "docker_available", "find_binary", "find_oracle_mysql", "free_port", "mysql_root_dir",
    "start_mysql_container", "start_postgres_container",
]
