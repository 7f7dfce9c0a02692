"""The change-event contract between the source side and the sink side.

Positions in the binlog (`BinlogPosition`, `GtidState`), what the stream hands on
(`RowChange`, `Transaction`, `Piece`, `Statement`, `Heartbeat`), a parsed statement's shape
(`ParsedStatement`, `TableRef`) and the markers for values that are not NULL although the
binlog library reports None (`ZERO_DATE`, `EMPTY_SET`). It belongs to neither side: source/
produces these, schema/ and sink/ consume them, and this module imports no wacdc module but
the pure GTID-set algebra.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from wacdc.gtidset import MysqlGtidSet

# ---- positions ----

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

    def __reduce__(self) -> tuple[type[BinlogPosition], tuple]:
        return BinlogPosition, (self.file, self.pos, self.gtid)  # cheaper than its __dict__

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


class GtidState:
    """The source's GTID state after each applied transaction, for auto-position resume.

    MariaDB's state is one `domain-server-seq` per replication domain; MySQL's is the
    executed GTID set (`uuid:1-100:tag:1-5,...`, tags since MySQL 8.3; see
    wacdc.gtidset). `str()` is one line (uuids joined by `,` without MySQL's
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


# ---- markers: non-NULL values the binlog library reports as None ----

class _ZeroDate:
    """Marks a zero or invalid date/datetime from the binlog (the library reports None)."""

    def __repr__(self) -> str:
        return "ZERO_DATE"


ZERO_DATE = _ZeroDate()


EMPTY_SET: frozenset[str] = frozenset()


# ---- statements as the parser reads them ----

KINDS = frozenset({
    "begin", "commit", "rollback", "savepoint", "rollback_to_savepoint", "release_savepoint",
    "xa_start", "xa_end", "xa_prepare", "xa_commit", "xa_rollback",
    "ddl_alter", "ddl_create", "ddl_drop", "ddl_rename", "ddl_rows", "ddl_drop_database",
    "truncate", "dml", "other",
})


@dataclass(frozen=True)
class TableRef:
    database: str  # the default database for an unqualified name; "" when there is none
    name: str

    def __str__(self) -> str:
        return f"{self.database}.{self.name}" if self.database else self.name


@dataclass(frozen=True)
class ParsedStatement:
    kind: str
    tables: tuple[TableRef, ...]
    renames: tuple[tuple[TableRef, TableRef], ...] = ()
    xid: str | None = None  # XA: X'<gtrid hex>',X'<bqual hex>',<formatID>, as MySQL logs it
    one_phase: bool = False  # XA COMMIT … ONE PHASE
    readable: bool = True  # False: `tables` are the names a token scan found
    savepoint: str | None = None  # lower-cased: MySQL compares savepoint names so
    index: str | None = None  # CREATE INDEX / DROP INDEX: the index (the table stays)
    database: str | None = None  # ddl_drop_database: the dropped database


# ---- what the stream hands on ----

@dataclass(frozen=True, slots=True)
class RowChange:
    """One row change: images as tuples in the order of `names` (the binlog's columns),
    with markers for non-NULL Nones (zero dates, empty SETs)."""

    table: str
    op: str  # insert, update, delete
    names: tuple[str, ...]
    before: tuple[Any, ...] | None
    after: tuple[Any, ...] | None
    position: BinlogPosition

    def __reduce__(self) -> tuple[type[RowChange], tuple]:
        # Pickled by the decode process for every change: the dataclass default for
        # frozen slots classes walks fields() on both ends, several times slower.
        return RowChange, (self.table, self.op, self.names, self.before, self.after,
                           self.position)


@dataclass
class Transaction:
    """A whole source transaction: its changes to tracked tables and where it ends."""

    end: BinlogPosition  # position right after the commit
    commit_time: float  # source commit timestamp (unix seconds, whole seconds in the binlog)
    changes: list[RowChange] = field(default_factory=list)
    received_at: float = field(default_factory=time.time)  # when wacdc read its commit
    # Where a restart must begin once this is applied, when not `end`: before the oldest
    # prepared XA transaction still waiting for its decision (source/framing.py).
    checkpoint: BinlogPosition | None = None
    # The source rolled back a transaction whose Pieces were applied: undo them.
    discard_pieces: bool = False
    # wacdc's own reverse transaction read back (a bridge window): no changes of its own
    # are applied; it carries the PostgreSQL snapshot it brought to MySQL.
    echo_of: str | None = None

    @property
    def resume_at(self) -> BinlogPosition:
        return self.checkpoint or self.end


@dataclass
class Piece:
    """Part of a source transaction too large to hold whole (WACDC_TRANSACTION_PIECE_ROWS):
    applied inside the PostgreSQL transaction that its Transaction (the rest) commits."""

    changes: list[RowChange]
    position: BinlogPosition  # inside the transaction: after its last row event here


@dataclass(frozen=True)
class Statement:
    """A statement that is not a commit and touches tracked tables of the tracked database
    (DDL, TRUNCATE, statement-format DML, or one the parser could not read that names
    them); `position` is just after it in the binlog."""

    query: str
    position: BinlogPosition
    parsed: ParsedStatement | None = None
    tables: tuple[str, ...] = ()  # the tracked tables it touches


@dataclass(frozen=True)
class Heartbeat:
    """Nothing new at the source for a while; `position` is where the stream stands."""

    position: BinlogPosition


StreamItem = Transaction | Piece | Heartbeat | Statement
