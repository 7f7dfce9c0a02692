"""Binlog positions: file:pos plus the GTID set where the server has one."""

from __future__ import annotations

from dataclasses import dataclass

import pymysql

from wacdc.source.connection import one_value
from wacdc.source.gtid import MysqlGtidSet


def file_key(name: str) -> tuple[str, int, str]:
    """Sort key of a binlog file name: base name, then the index as a number.

    The server numbers files `<base>.000001` on and widens the index past `.999999`
    (`.1000000`), where comparing the names as text would put the new file first."""
    base, dot, index = name.rpartition(".")
    if dot and index.isdigit():
        return (base, int(index), "")
    return (name, -1, "")  # no numeric index (the empty placeholder): before any file


@dataclass(frozen=True)
class BinlogPosition:
    """Ordered by binlog file (index as a number, see file_key), then pos; the GTID rides
    along."""

    file: str
    pos: int
    gtid: str | None = None

    @property
    def key(self) -> tuple[tuple[str, int, str], int]:
        return (file_key(self.file), self.pos)

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
        gtid = str(row[4]).replace("\n", "") if len(row) > 4 and row[4] else None
        if gtid is None:
            cur.execute("SELECT @@global.gtid_binlog_pos" if _is_mariadb(conn)
                        else "SELECT @@global.gtid_executed")
            value = one_value(cur)
            gtid = str(value).replace("\n", "") or None
    return BinlogPosition(file, pos, gtid)


def _is_mariadb(conn: pymysql.connections.Connection) -> bool:
    return "mariadb" in conn.get_server_info().lower()


class GtidState:
    """The source's GTID state after each applied transaction, for auto-position resume.

    MariaDB's state is one `domain-server-seq` per replication domain; MySQL's is the
    executed GTID set (`uuid:1-100:tag:1-5,...`, tags since MySQL 8.3; see
    wacdc.source.gtid). `str()` is one line (uuids joined by `,` without MySQL's
    newline). Starting from the snapshot's state, each
    transaction's GTID is folded in at its commit, so the checkpoint carries a state a
    new primary (after a failover, other binlog file names) can resume from.
    """

    def __init__(self, start: str | None, mariadb: bool) -> None:
        self.mariadb = mariadb
        self._domains: dict[str, str] = {}
        self._mysql_set: MysqlGtidSet | None = None
        if mariadb:
            for item in (start or "").split(","):
                if item.strip():
                    self._domains[item.strip().split("-", 1)[0]] = item.strip()
        else:
            self._mysql_set = MysqlGtidSet(start or "")

    def advance(self, gtid: str) -> None:
        if self.mariadb:
            self._domains[gtid.split("-", 1)[0]] = gtid
        else:
            assert self._mysql_set is not None
            self._mysql_set.add(gtid)  # uuid:N or uuid:tag:N; a repeat is a no-op

    def __str__(self) -> str:
        if self.mariadb:
            return ",".join(self._domains[d] for d in sorted(self._domains, key=int))
        assert self._mysql_set is not None
        return self._mysql_set.to_string(",")


def binlog_file_sizes(conn: pymysql.connections.Connection) -> dict[str, int]:
    """SHOW BINARY LOGS: every binlog file on the source and its size in bytes."""
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return {row[0]: int(row[1]) for row in cur.fetchall()}
