"""Binlog positions: file:pos plus the GTID set where the server has one."""

from __future__ import annotations

import pymysql

from wacdc.events import BinlogPosition
from wacdc.source.connection import one_value


def current_position(conn: pymysql.connections.Connection) -> BinlogPosition:
    """The source's binlog head right now (SHOW MASTER STATUS / SHOW BINARY LOG STATUS)."""
    with conn.cursor() as cur:
        try:
            cur.execute("SHOW BINARY LOG STATUS")  # MySQL >= 8.2
        except pymysql.err.ProgrammingError:
            cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
        if row is None:
            raise RuntimeError("the source has binary logging off (SHOW MASTER STATUS is empty); "
                               "see wacdc check")
        file, pos = row[0], int(row[1])
        gtid = str(row[4]).replace("\n", "") if len(row) > 4 and row[4] else None
        if gtid is None:
            cur.execute("SELECT @@global.gtid_binlog_pos" if _is_mariadb(conn)
                        else "SELECT @@global.gtid_executed")
            value = one_value(cur)
            gtid = str(value).replace("\n", "") or None
    return BinlogPosition(file, pos, gtid)


def _is_mariadb(conn: pymysql.connections.Connection) -> bool:
    return "mariadb" in conn.get_server_info().lower()


def binlog_file_sizes(conn: pymysql.connections.Connection) -> dict[str, int]:
    """SHOW BINARY LOGS: every binlog file on the source and its size in bytes."""
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return {row[0]: int(row[1]) for row in cur.fetchall()}
