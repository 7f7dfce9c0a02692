"""Every binlog event type, judged before mysql-replication can drop it (the written
list); MariaDB's compressed events are rebuilt by source/compressed.py.

The rule: every binlog event type is either handled or on the written list of ignorable
types below (`EVENT_TYPES`); anything else stops the stream with its type code and
position. mysql-replication would instead turn an unknown type into NotImplementedEvent,
and drop any event whose class the stream did not subscribe, without a word.

source/library.py wraps the library's `BinLogPacketWrapper.__init__`, through which every
event passes (the stream's own, and the inner events of a MySQL compressed transaction
decoded by source/stream_reader.py), so the check runs before the library looks the type up or
filters it. Per event it costs one frozenset lookup of the header's type byte.

A stop raises `EventTypeError` (a `BinlogEventError`) naming the type code, its name when
known, the event's end position (`log_pos` of its header) and what to do. The wrapper does
not know the binlog file name: the message says "end position N of the current binlog
file", and the exception carries `type_code` and `end_pos`. The stream knows the file
(`stream.log_file` is still that of the failed event when the wrapper raises: the library
updates it only after the wrapper returns), so the caller re-raises with it:

    try:
        event = stream.fetchone()
    except EventTypeError as exc:
        raise exc.in_file(stream.log_file) from None   # "... at mysql-bin.000007:1234: ..."
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pymysqlreplication.event import QueryEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from wacdc.errors import BinlogEventError

HANDLED, IGNORABLE, REFUSED = "handled", "ignorable", "refused"


class EventType(NamedTuple):
    name: str
    verdict: str  # HANDLED, IGNORABLE or REFUSED
    why: str  # IGNORABLE: why skipping it loses nothing; REFUSED: what it means
    todo: str = ""  # REFUSED: what the operator does next


def _h(name: str, why: str = "") -> EventType:
    return EventType(name, HANDLED, why)


def _i(name: str, why: str) -> EventType:
    return EventType(name, IGNORABLE, why)


def _r(name: str, why: str, todo: str) -> EventType:
    return EventType(name, REFUSED, why, todo)


_SNAPSHOT = "take a new snapshot (docs/operations.md, 'Binlog purged')"
_ANCIENT = ("written only by MySQL before 5.1, never by a supported source",
            "Point wacdc at MySQL 8.0-9.x or MariaDB 10.5-11.x")
_LOAD_BLOCK = ("a block of the file a LOAD DATA logged as a statement reads (binlog_format "
               "STATEMENT or MIXED in that session); its statement, EXECUTE_LOAD_QUERY_EVENT, "
               "is judged by the table it loads into: a tracked one stops the stream")
_CONTEXT = ("it only sets context for the statement-format statement that follows (its "
            "QUERY_EVENT, which the caller judges); it carries no rows")

# Log_event_type of MySQL 8.0-9.x (libs/mysql/binlog/event/binlog_event.h) and MariaDB
# 10.5-11.x (sql/log_event.h; 160+ are MariaDB's own). A code that is not here stops the
# stream. The comment says who writes it.
EVENT_TYPES: dict[int, EventType] = {
    0: _r("UNKNOWN_EVENT", "never written by a server", "Report it"),  # none
    1: _r("START_EVENT_V3", *_ANCIENT),  # MySQL 3.23-4.x binlog start
    2: _h("QUERY_EVENT"),  # both: BEGIN, COMMIT, DDL, XA, SAVEPOINT, statements
    3: _i("STOP_EVENT", "the source shut down; the binlog goes on in its next file"),  # both
    4: _h("ROTATE_EVENT"),  # both: next binlog file
    5: _i("INTVAR_EVENT", "AUTO_INCREMENT/LAST_INSERT_ID of a statement: " + _CONTEXT),  # both
    6: _r("LOAD_EVENT", *_ANCIENT),  # MySQL < 5.0 LOAD DATA
    7: _r("SLAVE_EVENT", *_ANCIENT),  # reserved, never used
    8: _r("CREATE_FILE_EVENT", *_ANCIENT),  # MySQL 4.x LOAD DATA
    9: _i("APPEND_BLOCK_EVENT", _LOAD_BLOCK),  # both: a block of LOAD DATA's file
    10: _r("EXEC_LOAD_EVENT", *_ANCIENT),  # MySQL 4.x LOAD DATA
    11: _i("DELETE_FILE_EVENT", _LOAD_BLOCK),  # both: a failed LOAD DATA's file dropped
    12: _r("NEW_LOAD_EVENT", *_ANCIENT),  # MySQL 4.x LOAD DATA
    13: _i("RAND_EVENT", "the RAND() seeds of a statement: " + _CONTEXT),  # both
    14: _i("USER_VAR_EVENT", "a @variable of a statement: " + _CONTEXT + " (MariaDB also "
           "sends one as a dummy for an event an older replica could not take)"),  # both
    15: _h("FORMAT_DESCRIPTION_EVENT"),  # both: starts every binlog file
    16: _h("XID_EVENT"),  # both: commit of a transactional engine
    17: _i("BEGIN_LOAD_QUERY_EVENT", _LOAD_BLOCK),  # both: LOAD DATA's first file block
    18: _h("EXECUTE_LOAD_QUERY_EVENT"),  # both: the LOAD DATA statement (load_query.py)
    19: _h("TABLE_MAP_EVENT"),  # both: the table of the rows events that follow
    20: _r("PRE_GA_WRITE_ROWS_EVENT", *_ANCIENT),  # MySQL 5.1.0-5.1.15 betas
    21: _r("PRE_GA_UPDATE_ROWS_EVENT", *_ANCIENT),  # MySQL 5.1.0-5.1.15 betas
    22: _r("PRE_GA_DELETE_ROWS_EVENT", *_ANCIENT),  # MySQL 5.1.0-5.1.15 betas
    23: _h("WRITE_ROWS_EVENT_V1"),  # MariaDB's rows events; MySQL's OBSOLETE_*_V1
    24: _h("UPDATE_ROWS_EVENT_V1"),  # MariaDB's rows events; MySQL's OBSOLETE_*_V1
    25: _h("DELETE_ROWS_EVENT_V1"),  # MariaDB's rows events; MySQL's OBSOLETE_*_V1
    26: _r("INCIDENT_EVENT", "the source logged an incident: its binlog has a gap here "
          "(changes it could not log); its own replicas stop at it too",
          f"Check the source's error log, then {_SNAPSHOT}"),  # both
    27: _h("HEARTBEAT_LOG_EVENT"),  # both: sent (never logged) while the source is idle
    28: _i("IGNORABLE_LOG_EVENT", "ignorable by definition: a replica that does not know "
           "it may skip it"),  # MySQL (a base type, not written itself)
    29: _i("ROWS_QUERY_LOG_EVENT", "the statement text of the rows events that follow "
           "(binlog_rows_query_log_events); the rows themselves come as rows"),  # MySQL
    30: _h("WRITE_ROWS_EVENT"),  # MySQL's rows events (v2)
    31: _h("UPDATE_ROWS_EVENT"),  # MySQL's rows events (v2)
    32: _h("DELETE_ROWS_EVENT"),  # MySQL's rows events (v2)
    33: _h("GTID_LOG_EVENT"),  # MySQL: the GTID of the transaction that follows
    34: _i("ANONYMOUS_GTID_LOG_EVENT", "starts a transaction that has no GTID (gtid_mode "
           "OFF); the transaction itself follows and is read"),  # MySQL
    35: _i("PREVIOUS_GTIDS_LOG_EVENT", "the GTIDs of earlier binlog files, informational; "
           "wacdc keeps its own GTID state from the transactions"),  # MySQL
    36: _i("TRANSACTION_CONTEXT_EVENT", "group replication's certification data of a "
           "transaction; the transaction itself is read"),  # MySQL group replication
    37: _i("VIEW_CHANGE_EVENT", "group replication's membership change; no rows"),  # MySQL GR
    38: _h("XA_PREPARE_LOG_EVENT"),  # both: XA PREPARE (source/framing.py)
    39: _h("PARTIAL_UPDATE_ROWS_EVENT"),  # MySQL: binlog_row_value_options=PARTIAL_JSON
    40: _h("TRANSACTION_PAYLOAD_EVENT"),  # MySQL: compressed transaction (source/payload.py)
    41: _i("HEARTBEAT_LOG_EVENT_V2", "a heartbeat, sent (never logged) only to replicas that "
           "ask for it in their dump request, which the library does not"),  # MySQL 8.0.26+
    42: _h("GTID_TAGGED_LOG_EVENT"),  # MySQL 8.3+: tagged GTID (source/gtid.py)
    160: _i("ANNOTATE_ROWS_EVENT", "the statement text of the rows events that follow "
            "(binlog_annotate_row_events); the rows themselves come as rows"),  # MariaDB
    161: _i("BINLOG_CHECKPOINT_EVENT", "the source's own crash-recovery bookkeeping; no "
            "data"),  # MariaDB
    162: _h("GTID_EVENT"),  # MariaDB: GTID, starts a transaction (source/position.py)
    163: _i("GTID_LIST_EVENT", "the GTID state at the start of a binlog file, "
            "informational"),  # MariaDB
    # The dump thread decrypts the events it reads (Log_event::read_log_event) and sends
    # this one flagged LOG_EVENT_IGNORABLE_F (older servers do not send it at all).
    164: _i("START_ENCRYPTION_EVENT", "the binlog file is encrypted on the source's disk; "
            "the dump thread sends its events decrypted"),  # MariaDB encrypt_binlog=ON
    165: _h("QUERY_COMPRESSED_EVENT"),  # MariaDB log_bin_compress: as QUERY_EVENT
    166: _h("WRITE_ROWS_COMPRESSED_EVENT_V1"),  # MariaDB log_bin_compress: as 23
    167: _h("UPDATE_ROWS_COMPRESSED_EVENT_V1"),  # MariaDB log_bin_compress: as 24
    168: _h("DELETE_ROWS_COMPRESSED_EVENT_V1"),  # MariaDB log_bin_compress: as 25
    169: _h("WRITE_ROWS_COMPRESSED_EVENT"),  # MariaDB log_bin_compress: as 30
    170: _h("UPDATE_ROWS_COMPRESSED_EVENT"),  # MariaDB log_bin_compress: as 31
    171: _h("DELETE_ROWS_COMPRESSED_EVENT"),  # MariaDB log_bin_compress: as 32
    172: _r("PARTIAL_ROW_DATA_EVENT", "a fragment of a rows event the source split "
            "(binlog_row_event_fragment_threshold), which wacdc cannot reassemble",
            f"Raise that threshold on the source, then {_SNAPSHOT}"),  # MariaDB 12.3+
}

HANDLED_TYPES = frozenset(k for k, t in EVENT_TYPES.items() if t.verdict == HANDLED)
IGNORABLE_TYPES = frozenset(k for k, t in EVENT_TYPES.items() if t.verdict == IGNORABLE)
REFUSED_TYPES = frozenset(k for k, t in EVENT_TYPES.items() if t.verdict == REFUSED)

QUERY_COMPRESSED_EVENT = 165
# Compressed type -> the plain type it stands for (MariaDB: type - 166 + 23, type - 169 + 30).
PLAIN_TYPE = {165: 2, 166: 23, 167: 24, 168: 25, 169: 30, 170: 31, 171: 32}
COMPRESSED_TYPES = frozenset(PLAIN_TYPE)
# What passes the wrapper untouched: one lookup per event.
PASS_TYPES = (HANDLED_TYPES | IGNORABLE_TYPES) - COMPRESSED_TYPES

# The library classes compressed events are decoded as. Every wacdc stream subscribes the
# rows classes (and, for transactions, QueryEvent) already: nothing new to subscribe.
SUBSCRIBE: frozenset[type] = frozenset({QueryEvent, WriteRowsEvent, UpdateRowsEvent,
                                        DeleteRowsEvent})

LOG_EVENT_IGNORABLE_F = 0x80


def type_name(code: int) -> str | None:
    known = EVENT_TYPES.get(code)
    return known.name if known else None


class EventTypeError(BinlogEventError):
    """A binlog event wacdc stops on: an unknown or refused type, or a compressed event
    that does not decompress. `file` is None until the caller adds it (`in_file`)."""

    def __init__(self, type_code: int, end_pos: int, detail: str,
                 file: str | None = None) -> None:
        self.type_code = type_code
        self.end_pos = end_pos
        self.detail = detail
        self.file = file
        name = type_name(type_code)
        where = (f"{file}:{end_pos}" if file
                 else f"end position {end_pos} of the current binlog file")
        super().__init__(f"binlog event type {type_code}{f' ({name})' if name else ''} at "
                         f"{where}: {detail}")

    def in_file(self, file: str | None) -> EventTypeError:
        """The same error, naming the binlog file (`stream.log_file`)."""
        return type(self)(self.type_code, self.end_pos, self.detail, file or self.file)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: the decode process sends it
        return type(self), (self.type_code, self.end_pos, self.detail, self.file)


STOPPED = "wacdc stopped there; nothing after it was applied"


def refusal(code: int, end_pos: int, flags: int = 0) -> EventTypeError:
    """The error for an event type that is neither handled nor ignorable."""
    known = EVENT_TYPES.get(code)
    if known is not None and known.verdict == REFUSED:
        return EventTypeError(code, end_pos, f"{known.why}. {STOPPED}. {known.todo}")
    hint = (" The source flags it LOG_EVENT_IGNORABLE_F (a MySQL replica would skip it); "
            "wacdc skips only the types on its written list."
            if flags & LOG_EVENT_IGNORABLE_F else "")
    return EventTypeError(
        code, end_pos,
        f"not a type wacdc knows (it reads the binlogs of MySQL 8.0-9.x and MariaDB "
        f"10.5-11.x). {STOPPED}, and a restart stops at it again. If the source is newer, "
        f"upgrade wacdc, or report the type code with the source's version.{hint}")
