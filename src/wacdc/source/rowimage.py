"""Row images from mysql-replication, made unambiguous for the converters.

The library reports several different things as None: SQL NULL, a zero date and
an empty SET. Its `none_sources` say which; we turn the non-NULL ones into
explicit markers so the converters can apply the bad-value policy (zero dates)
or the right value (an empty SET is an empty array, not NULL).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymysqlreplication.constants import NONE_SOURCE
from pymysqlreplication.json_binary import JsonDiff
from pymysqlreplication.row_event import RowsEvent
from pymysqlreplication.table import Table

from wacdc.errors import RowImageError
from wacdc.events import EMPTY_SET, ZERO_DATE
from wacdc.source.decoder import time2
from wacdc.source.jsonbinary import install as _install_json_text

_MARKERS = {
    NONE_SOURCE.OUT_OF_DATE_RANGE: ZERO_DATE,
    NONE_SOURCE.OUT_OF_DATETIME_RANGE: ZERO_DATE,
    NONE_SOURCE.OUT_OF_DATETIME2_RANGE: ZERO_DATE,
    NONE_SOURCE.EMPTY_SET: EMPTY_SET,
}


def unambiguous(values: dict[str, Any], none_sources: dict[str, str],
                before: dict[str, Any] | None = None) -> dict[str, Any]:
    """Replace library Nones that are not SQL NULL with explicit markers (in place).

    `before`: for the after image of an update, the before image. In MySQL's partial-JSON
    updates a JSON column with an empty diff is unchanged (its before value, exact); one
    with a real diff cannot be applied and is refused by its own name."""
    for name, value in values.items():
        if isinstance(value, JsonDiff):
            raise RowImageError(_partial_json_message(name))
    for name, source in none_sources.items():
        marker = _MARKERS.get(source)
        if marker is not None:
            values[name] = marker
        elif source == NONE_SOURCE.JSON_PARTIAL_UPDATE:
            if before is None:
                raise RowImageError(_partial_json_message(name))
            values[name] = before[name]
        elif source == NONE_SOURCE.COLS_BITMAP:
            raise RowImageError(
                f"column {name!r} is missing from the row image: the source logs "
                f"binlog_row_image=MINIMAL/NOBLOB; set binlog_row_image=FULL (wacdc check --fix)")
    return values


def _partial_json_message(name: str) -> str:
    return (f"column {name!r} arrived as a partial JSON update, which cannot be applied; "
            f"set binlog_row_value_options='' on the source (wacdc check --fix) "
            f"and take a new snapshot of this table")


def _read_time2(self: RowsEvent, column: Any) -> dt.timedelta:
    """TIME(fsp) as MySQL packs it: one big-endian offset-binary integer, int part + fraction.

    mysql-replication 1.0.17 negates the int part and the fraction separately, which
    turns -838:59:58.999999 into -838:59:58.000001; this reads the whole value at once,
    as the compiled decoder does.
    """
    frac_bytes = (column.fsp + 1) // 2
    return time2(self.packet.read(3 + frac_bytes), frac_bytes)


# Name-mangled private method of the library: fixed for WACDC_DECODER=library and for the
# events the compiled decoder leaves to the library (source/decoder.py reads TIME2 itself).
RowsEvent._RowsEvent__read_time2 = _read_time2
_install_json_text()  # binary JSON -> MySQL's text, as the compiled decoder gives


def _table_init(self: Table, table_id: int, schema: str, table: str, columns: list,
                primary_key: Any = None, column_name_flag: bool = False) -> None:
    """mysql-replication's Table.__init__ without building a dict per column twice.

    Same result; the original spends ~25% of the streaming loop's CPU here, once per
    table-map event, i.e. once per source transaction (measured with py-spy at 1,000
    one-row transactions/s).
    """
    if primary_key is None:
        keys = [c.name for c in columns if getattr(c, "is_primary", False)]
        primary_key = "" if not keys else keys[0] if len(keys) == 1 else tuple(keys)
    self.__dict__.update({"table_id": table_id, "schema": schema, "table": table,
                          "columns": columns, "primary_key": primary_key,
                          "column_name_flag": column_name_flag})


Table.__init__ = _table_init
