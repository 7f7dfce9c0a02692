"""The harness itself: private servers have the binlog flags and survive kill -9."""

from __future__ import annotations

import psycopg

from tests.support.flavours import require_control
from tests.support.harness import ServerHandle, SourceDb, TargetDb, mysql_connect


def test_private_source_has_the_binlog_settings(source_db: SourceDb) -> None:
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, "
                    "@@binlog_row_metadata, @@server_id, VERSION()")
        log_bin, fmt, image, metadata, server_id, version = cur.fetchone()
        cur.execute("SHOW TABLES")
        tables = {row[0] for row in cur.fetchall()}
        if source_db.server.flavour == "mysql":
            cur.execute("SELECT @@gtid_mode, @@enforce_gtid_consistency")
            gtid = cur.fetchone()
            cur.execute("SELECT plugin FROM mysql.user WHERE user = 'root' "
                        "AND host = '127.0.0.1'")
            plugin = cur.fetchone()[0]
    assert (log_bin, fmt, image, metadata) == (1, "ROW", "FULL", "FULL")
    assert server_id > 0
    assert len(tables) == 19 and "WhatsAppMessage" in tables
    assert ("mariadb" in version.lower()) == (source_db.server.flavour == "mariadb")
    if source_db.server.flavour == "mysql":
        # As Railway's: GTIDs on, root with caching_sha2_password and a password.
        assert int(version.split(".")[0]) >= 8
        assert gtid == ("ON", "ON")
        assert plugin == "caching_sha2_password"
        assert ":" in source_db.url.split("@")[0].removeprefix("mysql://")


def test_kill_and_restart_both_servers(mysql_server: ServerHandle, pg_server: ServerHandle,
                                       source_db: SourceDb, target_db: TargetDb) -> None:
    require_control(mysql_server)
    require_control(pg_server)
    source_db.execute("INSERT INTO WhatsAppTemplate (id, name, body, updatedAt) "
                      "VALUES ('t1', 'n', 'b', NOW(3))")
    with target_db.connect() as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (7)")
    mysql_server.kill()
    pg_server.kill()
    mysql_server.start()
    pg_server.start()
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM WhatsAppTemplate WHERE id = 't1'")
        assert cur.fetchone() == ("n",)
    with target_db.connect() as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(7,)]
    with mysql_connect(mysql_server.url(""), database="") as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    with psycopg.connect(pg_server.url("postgres")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
