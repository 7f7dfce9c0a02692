"""A compiled row-image decoder for the tables wacdc tracks.

mysql-replication keeps doing the protocol, the connection, heartbeats, GTIDs and
the table-map events with their FULL metadata. Decoding the row images is ours:
for each table map, a plan is compiled once into a Python function (generated
source, exec'd: source/imageplan.py) that reads one row image from the event's bytes
with no per-value dispatch; this module runs it over a row event's images.

The values are exactly what the library produces after `rowimage.unambiguous`
(markers for zero dates and empty SETs), so the same converters take either, and
the differential tests compare the two directly. Where the library is wrong or
would crash, the decoder is right: TIME2 is read whole (as source/library.py patches the
library), an impossible date such as 2023-02-30 (ALLOW_INVALID_DATES) becomes the
zero-date marker for the bad-value policy instead of a crash, and TIMESTAMP is
read unsigned (MariaDB 11.5+ stores dates past 2038).

Anything a plan does not cover (old-format temporal types, GEOMETRY, partial JSON
events, tables without column names) is decoded by the library, and counted in
`wacdc_decoder_fallback_total{table,reason}`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from pymysqlreplication.constants import BINLOG
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    RowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)
from pymysqlreplication.table import Table

from wacdc.errors import RowImageError
from wacdc.log import get_logger
from wacdc.observe import metrics
from wacdc.schema.charsets import lenenc
from wacdc.source.imageplan import ImagePlan, PartialJson, Unsupported
from wacdc.source.tablemap import HEADER as _HEADER

log = get_logger(__name__)

DECODERS = ("compiled", "library")

# Event types whose images the plan reads (MySQL's PARTIAL_UPDATE_ROWS_EVENT is not one).
_PLAIN_ROW_EVENTS = frozenset({
    BINLOG.WRITE_ROWS_EVENT_V1, BINLOG.UPDATE_ROWS_EVENT_V1, BINLOG.DELETE_ROWS_EVENT_V1,
    BINLOG.WRITE_ROWS_EVENT_V2, BINLOG.UPDATE_ROWS_EVENT_V2, BINLOG.DELETE_ROWS_EVENT_V2,
    BINLOG.PARTIAL_UPDATE_ROWS_EVENT})
_PARTIAL_JSON_OPTION = 1  # binlog_row_value_options bit of a partial-update after image


# --- events ---------------------------------------------------------------------------

Image = tuple[Any, ...]


class CompiledDecoder:
    """Decodes the row events of one stream; plans are cached per table map."""

    def __init__(self) -> None:
        self._plans: dict[int, tuple[Table, ImagePlan | None, str]] = {}
        self._fallbacks: dict[tuple[str, str], int] = {}

    def _fallback(self, table: str, reason: str) -> None:
        metrics.decoder_fallback.labels(table=table, reason=reason).inc()
        key = (table, reason)
        self._fallbacks[key] = self._fallbacks.get(key, 0) + 1

    def take_fallbacks(self) -> dict[tuple[str, str], int]:
        """Fallbacks counted since the last call (a decode process reports them)."""
        taken, self._fallbacks = self._fallbacks, {}
        return taken

    def plan_for(self, event: RowsEvent) -> tuple[ImagePlan | None, str]:
        table = event.table_map[event.table_id]
        cached = self._plans.get(id(table))
        if cached is not None and cached[0] is table:
            return cached[1], cached[2]
        errors = "ignore" if event._ignore_decode_errors else "strict"
        try:
            plan: ImagePlan | None = ImagePlan(table, errors)
            reason = ""
        except Unsupported as exc:
            plan, reason = None, str(exc)
            log.info("the library decodes this table's row images", table=event.table,
                     reason=reason)
        if len(self._plans) > 1024:  # table maps churn with DDL: keep the cache bounded
            self._plans.clear()
        self._plans[id(table)] = (table, plan, reason)
        return plan, reason

    def images(self, event: RowsEvent, where: object) -> tuple[tuple[str, ...], list[Image]] | None:
        """(column names, images in event order), or None when the library must decode.
        `where`: the event's binlog position, printed only in an error."""
        if event.event_type not in _PLAIN_ROW_EVENTS:
            self._fallback(event.table, "event type")
            return None
        plan, reason = self.plan_for(event)
        if plan is None:
            self._fallback(event.table, reason)
            return None
        self._check_present(event, plan, where)
        packet = event.packet
        start = _HEADER + packet.read_bytes
        end = _HEADER + event.event_size
        buf = packet.packet.get_all_data()
        read_image = plan.read_image
        images = []
        pos = start
        partial_event = event.event_type == BINLOG.PARTIAL_UPDATE_ROWS_EVENT
        try:
            while pos < end:
                image, pos = read_image(buf, pos)
                images.append(image)
                if partial_event:  # after each before image: the after image's options
                    after, pos = self._partial_after(plan, buf, pos, image, event, where)
                    images.append(after)
        except RowImageError:
            raise
        except (ValueError, IndexError, KeyError, struct.error, UnicodeDecodeError) as exc:
            raise RowImageError(
                f"cannot decode a row image of {event.schema}.{event.table} at {where}: "
                f"{exc}; run again with WACDC_DECODER=library to compare, and report it"
            ) from exc
        if pos != end:
            raise RowImageError(
                f"row images of {event.schema}.{event.table} at {where} end at byte "
                f"{pos - start}, not {end - start}: the table map does not describe them")
        return plan.names, images

    @staticmethod
    def _partial_after(plan: ImagePlan, buf: bytes, pos: int, before: Image, event: RowsEvent,
                       where: object) -> tuple[Image, int]:
        """The after image of a PARTIAL_UPDATE_ROWS_EVENT row: its value options, the
        bitmap of JSON columns sent as diffs, the image. An empty diff means unchanged
        (the before value, exact); a real diff cannot be applied without the document
        it patches, so it stops the stream naming that column."""
        options, pos = lenenc(buf, pos)
        mask = 0
        if options & _PARTIAL_JSON_OPTION:
            size = (len(plan.json_columns) + 7) // 8
            mask = int.from_bytes(buf[pos:pos + size], "little")
            pos += size
        after, pos = plan.read_image(buf, pos, mask)
        if not mask:
            return after, pos
        values = list(after)
        for k, i in enumerate(plan.json_columns):
            if mask >> k & 1:
                value = values[i]
                if not isinstance(value, PartialJson):
                    continue  # NULL: the NULL bitmap said so
                if value.diff:
                    raise RowImageError(
                        f"column {plan.names[i]!r} of {event.schema}.{event.table} arrived "
                        f"as a partial JSON update at {where}, which cannot be applied; set "
                        "binlog_row_value_options='' on the source (wacdc check --fix) and "
                        "take a new snapshot of this table")
                values[i] = before[i]
        return tuple(values), pos

    @staticmethod
    def _check_present(event: RowsEvent, plan: ImagePlan, where: object) -> None:
        bitmaps = [event.columns_present_bitmap]
        if isinstance(event, UpdateRowsEvent):
            bitmaps.append(event.columns_present_bitmap2)
        if event.number_of_columns != plan.width:
            raise RowImageError(
                f"a row event of {event.schema}.{event.table} at {where} has "
                f"{event.number_of_columns} columns, its table map {plan.width}: the binlog "
                "is inconsistent; run again with WACDC_DECODER=library to compare")
        for bitmap in bitmaps:
            present = int.from_bytes(bitmap, "little") & plan.all_present
            if present != plan.all_present:
                missing = [n for k, n in enumerate(plan.names) if not present >> k & 1]
                raise RowImageError(
                    f"column(s) {', '.join(missing) or '?'} of {event.table} are missing "
                    f"from the row image at {where}: the source logs "
                    "binlog_row_image=MINIMAL/NOBLOB; set binlog_row_image=FULL "
                    "(wacdc check --fix)")


def pairs(event: RowsEvent, images: list[Image]) -> Iterator[tuple[Image | None, Image | None]]:
    """(before, after) per row change of the event."""
    if isinstance(event, WriteRowsEvent):
        for image in images:
            yield None, image
    elif isinstance(event, DeleteRowsEvent):
        for image in images:
            yield image, None
    else:
        for k in range(0, len(images), 2):
            yield images[k], images[k + 1]
