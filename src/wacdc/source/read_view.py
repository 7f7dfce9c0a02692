"""Snapshot reads: one consistent read view with an exact binlog position, keyset chunks.

MariaDB: START TRANSACTION WITH CONSISTENT SNAPSHOT reports the binlog position of
its own view (binlog_snapshot_file/position) with no lock at all.
MySQL: a second connection holds LOCK TABLES <tracked> READ (or FTWRL) only while
the snapshot transaction starts and the position is read; in one session START
TRANSACTION would silently release the locks, hence two connections.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.cursors

from wacdc.config import DatabaseUrl
from wacdc.errors import WacdcError
from wacdc.events import BinlogPosition
from wacdc.log import get_logger
from wacdc.schema.convert import RowConverter
from wacdc.schema.model import Column, Table
from wacdc.source.connection import (
    LONG_READ_TIMEOUT_S,
    connect,
    one_value,
    server_info,
)
from wacdc.source.position import current_position
from wacdc.source.sql import qualified, quote_ident

log = get_logger("wacdc.source.snapshot")


def select_expression(column: Column) -> str:
    name = quote_ident(column.name)
    if column.data_type == "float":
        # The text protocol prints FLOAT with 6 digits; as DOUBLE it is the exact float32.
        return f"{name} + 0e0"
    return name


def select_sql(table: Table, columns: Sequence[str]) -> str:
    exprs = ", ".join(select_expression(table.column(c)) for c in columns)
    return f"SELECT {exprs} FROM {qualified(table.schema, table.name)}"


def read_converted(conn: pymysql.connections.Connection, table: Table,
                   converter: RowConverter) -> Iterator[tuple]:
    """All rows in key order, converted; unbuffered so memory stays flat.

    On a `text_values` connection this is exactly the snapshot's read path.
    """
    key = ", ".join(quote_ident(k) for k in (table.replica_key or ()))
    sql = select_sql(table, converter.source_names) + (f" ORDER BY {key}" if key else "")
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(sql)
        if not conn.decoders:
            use_fast_row_parser(cur)
        for row in cur:
            yield converter.convert(row)


@dataclass
class ReadView:
    """An open consistent snapshot transaction and the binlog position it corresponds to."""

    view_id: str
    conn: pymysql.connections.Connection
    position: BinlogPosition
    method: str
    write_pause_seconds: float

    def close(self) -> None:
        if self.conn.open:
            self.conn.rollback()
            self.conn.close()


def open_read_view(url: DatabaseUrl, tables: list[Table], lock: str = "tables") -> ReadView:
    """Start a consistent snapshot whose binlog position is known exactly."""
    conn = connect(url, autocommit=False, read_timeout=LONG_READ_TIMEOUT_S, text_values=True)
    view_id = uuid.uuid4().hex[:12]
    info = server_info(conn)
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    if info.is_mariadb:
        with conn.cursor() as cur:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = {name.lower(): value for name, value in cur.fetchall()}
        if not status.get("binlog_snapshot_file"):
            conn.close()
            raise WacdcError("the source has binary logging off: a snapshot without a binlog "
                             "position cannot be followed by streaming (see wacdc check)")
        file, pos = status["binlog_snapshot_file"], int(status["binlog_snapshot_position"])
        gtid = None
        try:
            with conn.cursor() as cur:
                # The GTID position that corresponds exactly to the view's file:pos.
                cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
                gtid = one_value(cur)
        except pymysql.err.MySQLError as exc:
            log.warning("no GTID for the snapshot position; file:pos is used alone",
                        position=f"{file}:{pos}", error=str(exc.args[-1]))
        position = BinlogPosition(file, pos, gtid or None)
        return ReadView(view_id, conn, position, "mariadb-consistent-snapshot", 0.0)

    # LOCK TABLES waits for the app's open transactions: bounded like a long read.
    locker = connect(url, autocommit=True, read_timeout=LONG_READ_TIMEOUT_S)
    try:
        started = time.monotonic()
        with locker.cursor() as cur:
            if lock == "ftwrl":
                cur.execute("FLUSH TABLES WITH READ LOCK")
            else:
                names = ", ".join(f"{qualified(t.schema, t.name)} READ" for t in tables)
                cur.execute(f"LOCK TABLES {names}")
            with conn.cursor() as snap:
                snap.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            position = current_position(locker)
            cur.execute("UNLOCK TABLES")
        pause = time.monotonic() - started
    finally:
        locker.close()
    return ReadView(view_id, conn, position, f"mysql-lock-{lock}", pause)


def parse_text_row(data: bytes, encodings: tuple[str | None, ...]) -> tuple:
    """One text-protocol row: length-encoded strings, NULL as 0xFB; decoded per column.

    PyMySQL does the same through a method call per value; this tight loop reads a
    row about three times faster, and the snapshot spends most of its time here.
    """
    out: list[Any] = []
    append = out.append
    pos = 0
    for encoding in encodings:
        first = data[pos]
        if first < 251:
            pos += 1
            end = pos + first
        elif first == 251:
            append(None)
            pos += 1
            continue
        elif first == 252:
            end = pos + 3 + (data[pos + 1] | data[pos + 2] << 8)
            pos += 3
        elif first == 253:
            end = pos + 4 + int.from_bytes(data[pos + 1 : pos + 4], "little")
            pos += 4
        else:
            end = pos + 9 + int.from_bytes(data[pos + 1 : pos + 9], "little")
            pos += 9
        value = data[pos:end]
        append(value if encoding is None else value.decode(encoding))
        pos = end
    return tuple(out)


def use_fast_row_parser(cursor: pymysql.cursors.SSCursor) -> None:
    """Swap PyMySQL's row reader on this unbuffered result for `parse_text_row`.

    Only valid with TEXT_CONVERSIONS (no decoders), where PyMySQL itself would just
    decode each text column with the connection encoding and leave binary ones as bytes.
    """
    result = cursor._result  # type: ignore[attr-defined]  # PyMySQL's, not in its stubs
    if result is None or not result.converters:
        return
    if any(converter is not None for _, converter in result.converters):
        raise RuntimeError("fast row parser needs a connection without value decoders")
    encodings = tuple(encoding for encoding, _ in result.converters)
    result._read_row_from_packet = lambda packet: parse_text_row(
        packet.get_all_data(), encodings)


class ChunkReader:
    """Keyset chunks of one table inside a read view: WHERE key > last ORDER BY key LIMIT n."""

    def __init__(self, view: ReadView, table: Table, converter: RowConverter,
                 chunk_rows: int) -> None:
        self.view = view
        self.converter = converter
        self.chunk_rows = chunk_rows
        key = table.replica_key or ()
        names = list(converter.source_names)
        self.key_positions = [names.index(k) for k in key]
        key_cols = ", ".join(quote_ident(k) for k in key)
        base = select_sql(table, names)
        self.first_sql = f"{base} ORDER BY {key_cols} LIMIT {chunk_rows}"
        marks = ", ".join(["%s"] * len(key))
        self.next_sql = (f"{base} WHERE ({key_cols}) > ({marks}) ORDER BY {key_cols} "
                         f"LIMIT {chunk_rows}")

    def chunk(self, after: tuple | None) -> Iterator[tuple[tuple, tuple]]:
        """(raw row, converted row) for the chunk after key `after` (None: the first)."""
        convert = self.converter.convert
        with self.view.conn.cursor(pymysql.cursors.SSCursor) as cur:
            if after is None:
                cur.execute(self.first_sql)
            else:
                cur.execute(self.next_sql, after)
            use_fast_row_parser(cur)
            while True:
                rows = cur.fetchmany(1000)
                if not rows:
                    return
                for raw in rows:
                    yield raw, convert(raw)

    def key_of(self, raw: tuple) -> tuple:
        return tuple(raw[i] for i in self.key_positions)
