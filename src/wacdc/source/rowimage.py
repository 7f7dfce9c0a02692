"""Row images from mysql-replication, made unambiguous for the converters.

The library reports several different things as None: SQL NULL, a zero date and
an empty SET. Its `none_sources` say which; we turn the non-NULL ones into
explicit markers so the converters can apply the bad-value policy (zero dates)
or the right value (an empty SET is an empty array, not NULL).
"""

from __future__ import annotations

from typing import Any

from pymysqlreplication.constants import NONE_SOURCE
from pymysqlreplication.json_binary import JsonDiff

from wacdc.errors import RowImageError
from wacdc.events import EMPTY_SET, ZERO_DATE

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
