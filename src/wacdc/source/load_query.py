"""The statement of a LOAD DATA logged as a statement: EXECUTE_LOAD_QUERY_EVENT (type 18).

A session with binlog_format STATEMENT or MIXED logs `LOAD DATA [LOCAL] INFILE` as the
file's blocks (BEGIN_LOAD_QUERY_EVENT 17, APPEND_BLOCK_EVENT 9) and then this event: a
QUERY_EVENT with 13 more post-header bytes (file id, the file name's offsets in the
statement, duplicate handling) that carries the statement and its default database.
mysql-replication 1.0.17 reads only the post-header of it, not the statement, so the
stream could not tell which table the rows went to. This class reads it as a QueryEvent,
so the framing judges it like any statement-logged write: on a tracked table it stops
the stream (its rows are not in the binlog, only in the loaded file); on any other table
it passes. source/library.py plugs it into the library's event map.
"""

from __future__ import annotations

from typing import Any

from pymysqlreplication.event import BinLogEvent, QueryEvent
from pymysqlreplication.exceptions import MalformedBinLogEvent

EXECUTE_LOAD_QUERY_EVENT = 18
_QUERY_HEADER = 13  # thread id, execution time, db length, error code, status length
_LOAD_HEADER = 13  # file id, file name start, file name end, duplicate handling


class LoadQueryEvent(QueryEvent):
    """An EXECUTE_LOAD_QUERY_EVENT with `schema` (bytes) and `query` as a QueryEvent has."""

    def __init__(self, from_packet: Any, event_size: int, table_map: Any,
                 ctl_connection: Any, **kwargs: Any) -> None:
        BinLogEvent.__init__(self, from_packet, event_size, table_map, ctl_connection,
                             **kwargs)
        self.slave_proxy_id = self.packet.read_uint32()
        self.execution_time = self.packet.read_uint32()
        self.schema_length = self.packet.read_uint8()
        self.error_code = self.packet.read_uint16()
        self.status_vars_length = self.packet.read_uint16()
        self.file_id = self.packet.read_uint32()
        self.file_name_start = self.packet.read_uint32()
        self.file_name_end = self.packet.read_uint32()
        self.dup_handling = self.packet.read_uint8()
        post_header = BinLogEvent._advance_to_payload(self, _QUERY_HEADER + _LOAD_HEADER)
        # wacdc reads none of the status variables; their block's length is known.
        self.packet.advance(self.status_vars_length)
        self.schema = self.packet.read(self.schema_length)
        self.packet.advance(1)
        length = event_size - post_header - self.status_vars_length - self.schema_length - 1
        if length < 0:
            raise MalformedBinLogEvent(f"EXECUTE_LOAD_QUERY_EVENT of {event_size} bytes is "
                                       f"shorter than its declared parts")
        self.query = self.packet.read(length).decode("utf-8", errors="backslashreplace")
