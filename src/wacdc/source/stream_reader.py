"""The binlog stream wacdc reads: mysql-replication's reader, with the library patched
when it opens (source/library.py), a table map of its own that carries the stream's memo
of table-map parses (source/tablemap.py), and MySQL's compressed transactions
(source/payload.py) expanded in place: each inner event decoded by the library's own
packet wrapper exactly as if it had come over the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql.protocol
import zstandard
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import BINLOG
from pymysqlreplication.event import BinLogEvent
from pymysqlreplication.packet import BinLogPacketWrapper

from wacdc.errors import BinlogEventError
from wacdc.source.event_types import EventTypeError
from wacdc.source.library import install
from wacdc.source.payload import INNER_EVENT_TYPES, TransactionPayloadEvent, inner_events
from wacdc.source.tablemap import StreamTableMap, TableMapMemo


class PayloadReader(BinLogStreamReader):
    """mysql-replication's reader, patched as it opens, with its own table map (and memo
    of table-map parses), and compressed transactions expanded in place."""

    def __init__(self, *args: Any, table_map_memo: TableMapMemo | None = None,
                 **kwargs: Any) -> None:
        install()
        self._memo = table_map_memo  # before the library sets its first table map
        super().__init__(*args, **kwargs)
        self._inner: Iterator[BinLogEvent] | None = None

    @property
    def table_map(self) -> StreamTableMap:
        return self._table_map

    @table_map.setter
    def table_map(self, value: dict) -> None:
        # The library replaces the map (at every rotation): the new one keeps the memo.
        self._table_map = StreamTableMap(value, getattr(self, "_memo", None))

    def fetchone(self) -> BinLogEvent | None:
        while True:
            if self._inner is not None:
                event = next(self._inner, None)
                if event is not None:
                    return event
                self._inner = None
            try:
                event = super().fetchone()
            except EventTypeError as exc:  # raised before the library moved on: its file
                raise exc.in_file(self.log_file) from None
            if not isinstance(event, TransactionPayloadEvent):
                return event
            self._inner = self._expand(event)

    def _expand(self, payload: TransactionPayloadEvent) -> Iterator[BinLogEvent]:
        install()  # the inner events go through the library's wrapper too
        where = f"{self.log_file}:{self.log_pos}"
        try:
            raws = inner_events(payload.compression, payload.payload)
            for raw in raws:
                kind = raw[4]
                if kind not in INNER_EVENT_TYPES:
                    raise BinlogEventError(
                        f"event type {kind} inside the compressed transaction ending at "
                        f"{where} is not one wacdc knows how to replicate; nothing after "
                        "it was applied. Report it; meanwhile the writer can log that "
                        "transaction uncompressed (binlog_transaction_compression=OFF)")
                event = self._decode(raw)
                if event is not None:
                    yield event
        except (ValueError, zstandard.ZstdError) as exc:
            raise BinlogEventError(
                f"cannot read the compressed transaction ending at {where}: {exc}") from exc

    def _decode(self, raw: bytes) -> BinLogEvent | None:
        """One inner event through the library's own wrapper, as fetchone() does it."""
        private = "_BinLogStreamReader__"
        wrapper = BinLogPacketWrapper(
            pymysql.protocol.MysqlPacket(b"\x00" + raw, "utf8"),  # the OK byte of a packet
            self.table_map,
            self._ctl_connection,
            self.mysql_version,
            False,  # inner events carry no checksum
            *(getattr(self, private + name) for name in (
                "allowed_events_in_packet", "only_tables", "ignored_tables", "only_schemas",
                "ignored_schemas", "freeze_schema", "ignore_decode_errors",
                "verify_checksum", "optional_meta_data", "enable_logging",
                "use_column_name_cache", "post_header_lengths")),
        )
        event = wrapper.event
        if wrapper.event_type == BINLOG.TABLE_MAP_EVENT and event is not None:
            self.table_map[event.table_id] = event.get_table()
        if event is None or event.__class__ not in getattr(self, private + "allowed_events"):
            return None
        return event
