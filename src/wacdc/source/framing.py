"""Source transactions framed by what they are, not by the next query event.

A transaction ends only at its commit: an XID event, a `COMMIT` query (non-transactional
engines), or, for XA, its decision. Inside one:

- `SAVEPOINT s` marks where `ROLLBACK TO [SAVEPOINT] s` returns to. MySQL and MariaDB
  drop rolled-back InnoDB row events before they reach the binlog; when the statement
  itself is logged (a non-transactional table was touched too), the tracked rows logged
  after the savepoint are dropped here as a replica would, except rows of tracked tables
  that are not transactional (`kept_at_rollback`: MyISAM, Aria, MEMORY, as the stream
  found them when it opened): the source kept those, and so are they.
- A `ROLLBACK` query ends a transaction that touched a non-transactional table: its
  tracked (InnoDB) rows were rolled back at the source and are dropped, with a log line.
- XA: the rows between `XA START` (MariaDB: the GTID event) and the XA_PREPARE event are
  the prepared part. One-phase (`XA COMMIT … ONE PHASE`) commits right there. Otherwise
  the rows wait, in memory, for their `XA COMMIT` (applied then, as one transaction) or
  `XA ROLLBACK` (dropped); the decision may come much later, in a later binlog file.
  While any prepared transaction with tracked rows waits, every checkpoint stays just
  before the oldest one (its file:pos and the GTID state of that moment): a restart reads
  the prepared rows again, and re-applies what came after them (upserts and deletes of
  the same images converge). Nothing is applied early, nothing lost to a kill -9.

Everything else that is not a commit (DDL, TRUNCATE, other statements) is its own
implicit transaction and reaches the caller as a `Statement` first.

A transaction larger than `piece_rows` rows is handed over in `Piece`s as it is read
(bounded memory: a 5-million-row DELETE is never held whole); the applier keeps one
PostgreSQL transaction open across them and commits it with the rest and the checkpoint.
XA parts are the exception: held whole until their decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import GtidEvent as MysqlGtidEvent
from pymysqlreplication.event import (
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from wacdc.errors import BinlogEventError
from wacdc.events import (
    BinlogPosition,
    GtidState,
    Heartbeat,
    ParsedStatement,
    Piece,
    RowChange,
    Statement,
    StreamItem,
    Transaction,
)
from wacdc.log import get_logger
from wacdc.source.binlog import row_changes_of
from wacdc.source.statements import parse_statement, tracked, xid_text

log = get_logger(__name__)

Xid = str  # as statements.xid_text prints it: X'<gtrid>',X'<bqual>',<formatID>


@dataclass
class _Prepared:
    start: BinlogPosition  # just before its first event, with the GTID state of then
    changes: list[RowChange]
    gtid: str | None = None  # of the prepared part, folded in only at the decision


@dataclass
class _Framer:
    stream: BinLogStreamReader
    schema: str
    tables: set[str]
    gtids: GtidState | None
    pending: list[RowChange] = field(default_factory=list)
    savepoints: dict[str, int] = field(default_factory=dict)
    prepared: dict[Xid, _Prepared] = field(default_factory=dict)
    piece_rows: int = 0  # hand over a Piece at this many pending rows (0: never)
    flushed: int = 0  # rows of the current transaction already handed over as Pieces
    in_xa: bool = False  # XA parts are held whole: nothing of them may apply early
    next_gtid: str | None = None  # the GTID event precedes its transaction
    started_at: BinlogPosition | None = None  # where the current transaction began
    before: tuple[str, int] | None = None  # file:pos where the event being read began
    kept_at_rollback: frozenset[str] = frozenset()  # tracked tables that are not InnoDB

    def _here(self) -> BinlogPosition:
        return BinlogPosition(self.stream.log_file, self.stream.log_pos)

    def _state(self) -> str | None:
        return (str(self.gtids) or None) if self.gtids is not None else None

    def _committed(self, advance: bool = True) -> BinlogPosition:
        if advance and self.gtids is not None and self.next_gtid is not None:
            self.gtids.advance(self.next_gtid)
        self.next_gtid = None
        return BinlogPosition(self.stream.log_file, self.stream.log_pos, self._state())

    def _held(self) -> BinlogPosition | None:
        """The checkpoint while prepared XA transactions wait: before the oldest."""
        waiting = [p.start for p in self.prepared.values() if p.changes]
        return min(waiting) if waiting else None

    def _end(self, timestamp: float, changes: list[RowChange],
             advance: bool = True) -> Transaction:
        end = self._committed(advance)
        self.pending, self.savepoints, self.started_at = [], {}, None
        self.flushed, self.in_xa = 0, False
        return Transaction(end, timestamp, changes, checkpoint=self._held())

    def items(self) -> Iterator[StreamItem]:
        stream = self.stream
        for event in stream:
            yield from self._event(event)
            self.before = (stream.log_file, stream.log_pos)  # cheap: every event

    def _began(self) -> BinlogPosition | None:
        """Where the event being read began, with the GTID state of that moment (it moves
        only at commits, so it is the state after the previous transaction)."""
        return BinlogPosition(*self.before, self._state()) if self.before else None

    def _event(self, event: object) -> Iterator[StreamItem]:
        if isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
            if event.schema == self.schema and event.table in self.tables:
                self.pending.extend(row_changes_of(self.stream, event, self._here()))
                if self.piece_rows and len(self.pending) >= self.piece_rows \
                        and not self.in_xa:
                    # Bounded memory for a transaction of any size: this part is applied
                    # now, uncommitted; the commit comes with the rest (sink/apply.py).
                    yield Piece(self.pending, self._here())
                    self.flushed += len(self.pending)
                    self.pending = []
        elif isinstance(event, XidEvent):
            yield self._end(float(event.timestamp), self.pending)
        elif isinstance(event, MariadbGtidEvent | MysqlGtidEvent):
            self.next_gtid = event.gtid
            self.started_at = self._began()
            # MariaDB marks an XA transaction's prepared part in its GTID event.
            self.in_xa = bool(getattr(event, "flags", 0) & _MARIADB_PREPARED_XA)
        elif isinstance(event, XAPrepareEvent):
            yield from self._xa_prepare(event)
        elif isinstance(event, QueryEvent):
            yield from self._query(event)
        elif isinstance(event, HeartbeatLogEvent) and not (self.pending or self.flushed):
            yield Heartbeat(self._here())

    def _query(self, event: QueryEvent) -> Iterator[StreamItem]:
        query = event.query.strip()
        default_db = event.schema.decode() if isinstance(event.schema, bytes) else event.schema
        parsed = parse_statement(query, default_db or None)
        kind, timestamp = parsed.kind, float(event.timestamp)
        if kind == "begin":
            self.started_at = self.started_at or self._began()
        elif kind == "commit":  # non-transactional engines
            yield self._end(timestamp, self.pending)
        elif kind == "savepoint":
            if parsed.savepoint is None:
                raise BinlogEventError(f"unreadable savepoint {query[:200]!r} at "
                                       f"{self._here()}: report it with the binlog around it")
            self.savepoints[parsed.savepoint] = self.flushed + len(self.pending)
        elif kind == "rollback_to_savepoint":
            self._rollback_to(query, parsed.savepoint)
        elif kind == "release_savepoint":
            pass  # nothing to undo
        elif kind == "rollback":
            yield self._rollback(timestamp)
        elif kind.startswith("xa_"):
            yield from self._xa(query, parsed, timestamp)
        else:
            # The caller decides about statements that touch a tracked table of the
            # tracked database (by the statement's own names: qualified ones in theirs).
            hits = tracked(parsed, self.schema, self.tables)
            if hits:
                yield Statement(query, self._here(), parsed, tuple(hits))
            # A statement-logged write inside BEGIN..COMMIT (binlog_format MIXED or
            # STATEMENT in that session) is part of that transaction; DDL and the rest
            # commit implicitly and are a transaction of their own.
            if not (self.started_at is not None and kind in ("dml", "other")):
                yield self._end(timestamp, self.pending)

    def _rollback_to(self, query: str, name: str | None) -> None:
        if name is None or name not in self.savepoints:
            raise BinlogEventError(
                f"{query[:200]!r} at {self._here()} returns to a savepoint this transaction "
                "never set: the binlog is not what wacdc expects; nothing after it was "
                "applied. Report it with the binlog around that position")
        mark = self.savepoints[name]
        if mark < self.flushed:
            raise BinlogEventError(
                f"{query[:200]!r} at {self._here()} rolls back rows of a transaction so large "
                f"that {self.flushed} of its rows were already applied (uncommitted) in "
                "pieces; nothing of it was committed. Raise WACDC_TRANSACTION_PIECE_ROWS "
                "above the transaction's size and run again")
        after = self.pending[mark - self.flushed:]
        kept = [c for c in after if c.table in self.kept_at_rollback]
        if len(kept) < len(after):
            log.warning("rows rolled back to a savepoint dropped", savepoint=name,
                        rows=len(after) - len(kept), kept_non_transactional=len(kept),
                        position=str(self._here()))
        self.pending[mark - self.flushed:] = kept
        self.savepoints = {k: v for k, v in self.savepoints.items() if v <= mark}

    def _rollback(self, timestamp: float) -> Transaction:
        # A whole transaction rolled back that touched a non-transactional table: its
        # InnoDB rows were undone at the source (and its pieces, if any, are rolled back).
        # Rows of non-transactional tracked tables stayed at the source: they apply.
        rolled_back_pieces = self.flushed > 0
        kept = [c for c in self.pending if c.table in self.kept_at_rollback]
        if rolled_back_pieces and self.kept_at_rollback:
            raise BinlogEventError(
                f"ROLLBACK at {self._here()} of a transaction so large that {self.flushed} "
                "of its rows were already applied (uncommitted) in pieces, while tracked "
                f"tables {sorted(self.kept_at_rollback)} are not transactional (their rows "
                "stay): nothing of it was committed. Raise WACDC_TRANSACTION_PIECE_ROWS "
                "above the transaction's size and run again")
        dropped = [c for c in self.pending if c.table not in self.kept_at_rollback]
        if dropped or rolled_back_pieces:
            log.warning("rows of a rolled-back transaction dropped", rows=len(dropped),
                        tables=sorted({c.table for c in dropped}), kept=len(kept),
                        position=str(self._here()))
        txn = self._end(timestamp, kept)
        txn.discard_pieces = rolled_back_pieces
        return txn

    def _xa(self, query: str, parsed: ParsedStatement, timestamp: float
            ) -> Iterator[StreamItem]:
        kind = parsed.kind
        if kind == "xa_start":
            self.started_at = self.started_at or self._began()
            self.in_xa = True
            return
        if kind in ("xa_end", "xa_prepare"):  # the XA_PREPARE event follows and does the work
            return
        xid = parsed.xid
        if xid is None:
            raise BinlogEventError(f"unreadable xid in {query[:200]!r} at {self._here()}")
        waiting = self.prepared.pop(xid, None)
        if kind == "xa_rollback":
            if waiting is not None and waiting.changes:
                log.info("XA transaction rolled back: its prepared rows are dropped",
                         xid=xid, rows=len(waiting.changes), position=str(self._here()))
            self._fold_prepare_gtid(waiting)
            yield self._end(timestamp, [])
            return
        if parsed.one_phase:  # usually an XA_PREPARE event with one_phase set; as a query
            yield self._end(timestamp, self.pending)  # it commits what it framed
            return
        # XA COMMIT: the prepared part is applied now, as one transaction.
        if waiting is None:
            raise BinlogEventError(
                f"XA COMMIT {xid} at {self._here()} decides an XA transaction prepared "
                "before the position wacdc started from, so its rows were never read; if "
                "it changed tracked tables they are missing. Take a new snapshot when "
                "`XA RECOVER` on the source is empty (docs/operations.md)")
        self._fold_prepare_gtid(waiting)
        yield self._end(timestamp, waiting.changes)

    def _fold_prepare_gtid(self, waiting: _Prepared | None) -> None:
        if waiting is not None and waiting.gtid and self.gtids is not None:
            self.gtids.advance(waiting.gtid)

    def _xa_prepare(self, event: XAPrepareEvent) -> Iterator[StreamItem]:
        timestamp = float(event.timestamp)
        if event.one_phase:  # XA COMMIT … ONE PHASE: committed right here
            yield self._end(timestamp, self.pending)
            return
        xid: Xid = xid_text(event.xid_gtrid, event.xid_bqual, event.xid_format_id)
        start = self.started_at or self._began() or self._here()
        waiting = _Prepared(start, self.pending)
        if not waiting.changes:
            # Nothing tracked in it: its decision is a plain transaction later. The
            # prepare moves the checkpoint as any transaction does.
            self.prepared[xid] = waiting
            yield self._end(timestamp, [])
            return
        # Tracked rows: held until the decision; the GTID of the prepare is folded in
        # only then, so a GTID resume reads the prepared part again too.
        waiting.gtid = self.next_gtid
        self.prepared[xid] = waiting
        yield self._end(timestamp, [], advance=False)


_MARIADB_PREPARED_XA = 64  # FL_PREPARED_XA in a MariaDB GTID event's flags


def transactions(stream: BinLogStreamReader, schema: str, tables: set[str],
                 gtids: GtidState | None = None, piece_rows: int = 0,
                 kept_at_rollback: frozenset[str] = frozenset()) -> Iterator[StreamItem]:
    """Group the stream into source transactions (see the module docstring).

    Yields Transaction at each commit, Heartbeat when the server reports no news, and
    Statement for statements on the tracked schema that are not commits (the caller
    decides what to do with them). With `gtids`, each Transaction's end carries the GTID
    state after its commit; its `checkpoint` is where a restart must begin.
    """
    return _Framer(stream, schema, tables, gtids, piece_rows=piece_rows,
                   kept_at_rollback=kept_at_rollback).items()
