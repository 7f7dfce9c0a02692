"""Docker containers for machines without server binaries (tests, `wacdc demo`).

The only place that imports docker and testcontainers (dev-only dependencies), lazily.
"""

from __future__ import annotations

import os

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
