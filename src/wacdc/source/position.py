"""Binlog positions: file:pos plus the GTID set where the server has one."""

from __future__ import annotations

from dataclasses import dataclass

import pymysql


@dataclass(frozen=True)
class BinlogPosition:
    """Ordered by file:pos (binlog file names sort in sequence); the GTID rides along."""

    file: str
    pos: int
    gtid: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.file, self.pos)

    def __lt__(self, other: BinlogPosition) -> bool:
        return self.key < other.key

    def __le__(self, other: BinlogPosition) -> bool:
        return self.key <= other.key

    def __gt__(self, other: BinlogPosition) -> bool:
        return self.key > other.key

    def __ge__(self, other: BinlogPosition) -> bool:
        return self.key >= other.key

    def __str__(self) -> str:
        text = f"{self.file}:{self.pos}"
        return f"{text} (gtid {self.gtid})" if self.gtid else text


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
        gtid = row[4] if len(row) > 4 and row[4] else None
        if gtid is None:
            cur.execute("SELECT @@global.gtid_binlog_pos" if _is_mariadb(conn)
                        else "SELECT @@global.gtid_executed")
            value = cur.fetchone()[0]
            gtid = str(value).replace("\n", "") or None
    return BinlogPosition(file, pos, gtid)


def _is_mariadb(conn: pymysql.connections.Connection) -> bool:
    return "mariadb" in conn.get_server_info().lower()
