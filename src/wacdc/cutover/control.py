"""The control rows: request, abort, read and record a cutover (`wacdc.cutover`) or a
rollback (`wacdc.rollback`, the same shape: `kind` names the table)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from wacdc.sink import state
from wacdc.sink.state import STATE

CUTOVER, ROLLBACK = "cutover", "rollback"


def _q(text: str, kind: str) -> sql.Composed:
    return sql.SQL(text).format(state=STATE, kind=sql.Identifier(kind))


class CutoverStatus(StrEnum):
    """A request's status; the text is what `wacdc.cutover.status` stores."""

    REQUESTED = "requested"
    WAITING = "waiting"
    ABORT_REQUESTED = "abort_requested"
    FROZEN = "frozen"
    BRIDGE = "bridge"  # cut over, MySQL not yet fenced (wacdc.cutover.bridge)
    DONE = "done"
    REFUSED = "refused"
    ABORTED = "aborted"


ACTIVE = (CutoverStatus.REQUESTED, CutoverStatus.WAITING, CutoverStatus.ABORT_REQUESTED)
FINAL = (CutoverStatus.DONE, CutoverStatus.REFUSED, CutoverStatus.ABORTED)


@dataclass
class Request:
    id: int
    status: CutoverStatus
    age_s: float  # since it was requested (PostgreSQL's clock)
    bridge_max: float | None = None  # `--bridge`: the window's limit in seconds


def request(conn: psycopg.Connection, by: str, kind: str = CUTOVER,
            bridge_max: float | None = None) -> int:
    """Ask for a cutover or rollback (or join the one already asked for); returns its id.
    `bridge_max`: a cutover with a bridge window of at most that many seconds."""
    state.ensure_schema(conn)
    with conn.transaction():
        conn.execute(_q("LOCK TABLE {state}.{kind} IN EXCLUSIVE MODE", kind))
        row = conn.execute(_q("SELECT id FROM {state}.{kind} WHERE status = ANY(%s) "
                              "ORDER BY id DESC LIMIT 1", kind),
                           ([*map(str, ACTIVE), str(CutoverStatus.FROZEN),
                             str(CutoverStatus.BRIDGE)],)).fetchone()
        if row:
            return int(row[0])
        if bridge_max is None:
            row = conn.execute(_q("INSERT INTO {state}.{kind} (status, requested_by) "
                                  "VALUES ('requested', %s) RETURNING id", kind),
                               (by,)).fetchone()
        else:
            row = conn.execute(_q("INSERT INTO {state}.{kind} (status, requested_by, "
                                  "bridge_max) VALUES ('requested', %s, %s) RETURNING id",
                                  kind), (by, bridge_max)).fetchone()
    assert row is not None
    return int(row[0])


def _update_latest(conn: psycopg.Connection, kind: str, assignment: str,
                   statuses: tuple[str, ...]) -> int | None:
    """Set `assignment` on the newest request if it is in one of `statuses`: its id."""
    state.ensure_schema(conn)
    row = conn.execute(_q(
        "UPDATE {state}.{kind} SET " + assignment + ", updated_at = now() "
        "WHERE id = (SELECT max(id) FROM {state}.{kind}) AND status = ANY(%s) "
        "RETURNING id", kind), (list(statuses),)).fetchone()
    return None if row is None else int(row[0])


def _why_not(conn: psycopg.Connection, kind: str, too_late: str) -> str:
    last = latest(conn, kind)
    if last is None:
        return f"no {kind} has been requested"
    return f"{kind} #{last['id']} is {last['status']}: {too_late}"


def abort(conn: psycopg.Connection, kind: str = CUTOVER) -> tuple[bool, str]:
    """Cancel a request that has not frozen yet."""
    done = _update_latest(conn, kind, "status = 'abort_requested'", ("requested", "waiting"))
    if done is not None:
        return True, f"abort requested for {kind} #{done}"
    return False, _why_not(conn, kind, "too late to abort")


def close_bridge(conn: psycopg.Connection) -> tuple[bool, str]:
    """`wacdc cutover --close-bridge`: ask the daemon to fence MySQL now."""
    done = _update_latest(conn, CUTOVER, "close_requested_at = coalesce(close_requested_at, "
                          "now())", ("bridge",))
    if done is not None:
        return True, f"close of the bridge window of cutover #{done} requested"
    return False, _why_not(conn, CUTOVER, "no bridge window is open")


def open_bridge(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The cutover whose bridge window is open: id, bridge_max, bridge (its figures),
    opened (epoch), the operator's close request (epoch or None)."""
    return state.first_row(conn, _q(
        "SELECT id, bridge_max, bridge, (bridge->>'opened_epoch')::float8 AS opened, "
        "extract(epoch FROM close_requested_at)::float8 AS close_requested "
        "FROM {state}.{kind} WHERE status = 'bridge' ORDER BY id DESC LIMIT 1", CUTOVER),
        dict_row)


def latest(conn: psycopg.Connection, kind: str = CUTOVER) -> dict[str, Any] | None:
    """The newest request and its outcome; None if there never was one."""
    doc = state.first_row(
        conn, _q("SELECT id, status, requested_at, requested_by, reason, final_file, "
                 "final_pos, freeze_seconds, counts, orphans, fence, extras, finished_at "
                 "FROM {state}.{kind} ORDER BY id DESC LIMIT 1", kind), dict_row)
    if doc is not None:
        for k in ("requested_at", "finished_at"):
            doc[k] = doc[k].isoformat() if doc[k] else None
    return doc


def active(conn: psycopg.Connection, kind: str = CUTOVER) -> Request | None:
    """The newest request still to act on (requested, waiting, abort requested)."""
    row = conn.execute(_q(
        "SELECT id, status, extract(epoch FROM now() - requested_at), "
        + ("bridge_max " if kind == CUTOVER else "NULL ")
        + "FROM {state}.{kind} WHERE status = ANY(%s) ORDER BY id DESC LIMIT 1", kind),
        ([str(s) for s in ACTIVE],)).fetchone()
    return None if row is None else Request(int(row[0]), CutoverStatus(row[1]), float(row[2]),
                                            None if row[3] is None else float(row[3]))


def claim_for_freeze(conn: psycopg.Connection, request_id: int, kind: str = CUTOVER) -> bool:
    """Mark a waiting request frozen; False when it is no longer waiting (an abort
    written since the last poll wins)."""
    return conn.execute(_q(
        "UPDATE {state}.{kind} SET status = 'frozen', updated_at = now() "
        "WHERE id = %s AND status = 'waiting' RETURNING id", kind),
        (request_id,)).fetchone() is not None


def set_status(conn: psycopg.Connection, cutover_id: int, status: CutoverStatus,
               kind: str = CUTOVER, **fields: Any) -> None:
    """Record a request's status and outcome fields (JSON for dicts and lists)."""
    assignments: list[sql.Composable] = [sql.SQL("status = %s"), sql.SQL("updated_at = now()")]
    values: list[Any] = [str(status)]
    for name, value in fields.items():
        assignments.append(sql.SQL("{} = %s").format(sql.Identifier(name)))
        values.append(json.dumps(value) if isinstance(value, dict | list) else value)
    if status in FINAL:
        assignments.append(sql.SQL("finished_at = now()"))
    conn.execute(sql.SQL("UPDATE {}.{} SET {} WHERE id = %s").format(
        STATE, sql.Identifier(kind), sql.SQL(", ").join(assignments)),
        [*values, cutover_id])
