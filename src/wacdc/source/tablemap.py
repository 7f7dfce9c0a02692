"""A stream's table map, carrying that stream's memo of table-map parses.

The library parses every table-map event in full (a third of its streaming time when
transactions are short). Its result depends only on the event's bytes, so an event
identical to one already parsed reuses that parse (source/library.py hooks it into
`TableMapEvent.__init__`). The memo is per stream: the stream's table map is a
`StreamTableMap`, whose `memo` is None for the library decoder, so the benchmark's
library figure is the library as it ships.
"""

from __future__ import annotations

from typing import Any

# The wrapper reads a 20-byte header (OK byte + 19-byte event header) before the body.
HEADER = 20


class TableMapMemo:
    """Parses of table-map events by their bytes (and the optional-metadata flag)."""

    limit = 4096
    # What BinLogEvent.__init__ sets per event; everything else is the table map's parse.
    PER_EVENT = frozenset({"packet", "table_map", "event_type", "timestamp", "event_size",
                           "_post_header_lengths", "_ctl_connection", "mysql_version",
                           "_ignore_decode_errors", "_verify_checksum", "_is_event_valid",
                           "complete", "dbms"})

    def __init__(self) -> None:
        self._parsed: dict[tuple[bytes, bool], dict[str, Any]] = {}

    @staticmethod
    def key(from_packet: Any, event_size: int, kwargs: dict[str, Any]) -> tuple[bytes, bool]:
        return (from_packet.packet.get_all_data()[HEADER:HEADER + event_size],
                bool(kwargs.get("optional_meta_data")))

    def get(self, key: tuple[bytes, bool], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """The parse of an identical event that this stream's filters keep, or None."""
        parsed = self._parsed.get(key)
        return parsed if parsed is not None and _passes_filters(parsed, kwargs) else None

    def keep(self, key: tuple[bytes, bool], attributes: dict[str, Any]) -> None:
        """Remember a parse (the event's attributes, less the per-event ones); bounded."""
        if len(self._parsed) >= self.limit:
            self._parsed.clear()
        self._parsed[key] = {k: v for k, v in attributes.items() if k not in self.PER_EVENT}


class StreamTableMap(dict[int, Any]):
    """table id -> Table, as the library keeps it, plus the stream's memo (or None) and
    what source/packet_framing.py worked out for it."""

    __slots__ = ("framing", "memo")

    def __init__(self, items: Any = (), memo: TableMapMemo | None = None) -> None:
        super().__init__(items)
        self.memo = memo
        self.framing: Any = None


def _passes_filters(parsed: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    """Would this stream's table filters keep the table map?"""
    table, schema = parsed["table"], parsed["schema"]
    only_tables, ignored_tables = kwargs.get("only_tables"), kwargs.get("ignored_tables")
    only_schemas, ignored_schemas = kwargs.get("only_schemas"), kwargs.get("ignored_schemas")
    return ((only_tables is None or table in only_tables)
            and (ignored_tables is None or table not in ignored_tables)
            and (only_schemas is None or schema in only_schemas)
            and (ignored_schemas is None or schema not in ignored_schemas))
