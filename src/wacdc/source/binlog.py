"""Binlog reader on mysql-replication: row events of the tracked tables, converted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from wacdc.config import DatabaseUrl
from wacdc.source.connection import connection_kwargs
from wacdc.source.position import BinlogPosition
from wacdc.source.rowimage import unambiguous


@dataclass(frozen=True)
class RowChange:
    """One row change as the library decoded it, with markers for non-NULL Nones."""

    table: str
    op: str  # insert, update, delete
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    position: BinlogPosition


def open_stream(url: DatabaseUrl, server_id: int, start: BinlogPosition,
                tables: list[str] | None, *, blocking: bool = False,
                is_mariadb: bool = False) -> BinLogStreamReader:
    settings = connection_kwargs(url)
    settings.pop("database")
    # the library hands these to PyMySQL as is
    return BinLogStreamReader(
        connection_settings=settings,
        server_id=server_id,
        log_file=start.file,
        log_pos=start.pos,
        resume_stream=True,
        blocking=blocking,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[url.database],
        only_tables=tables,
        is_mariadb=is_mariadb,
    )


def row_changes(stream: BinLogStreamReader) -> Iterator[RowChange]:
    for event in stream:
        position = BinlogPosition(stream.log_file, stream.log_pos)
        table = event.table
        for row in event.rows:
            if isinstance(event, WriteRowsEvent):
                yield RowChange(table, "insert", None,
                                unambiguous(row["values"], row["none_sources"]), position)
            elif isinstance(event, DeleteRowsEvent):
                yield RowChange(table, "delete",
                                unambiguous(row["values"], row["none_sources"]), None, position)
            else:
                yield RowChange(table, "update",
                                unambiguous(row["before_values"], row["before_none_sources"]),
                                unambiguous(row["after_values"], row["after_none_sources"]),
                                position)
