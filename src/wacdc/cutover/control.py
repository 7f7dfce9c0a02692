"""The `wacdc.cutover` control rows: request, abort, read and record a cutover."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from wacdc.sink import state
from wacdc.sink.state import state_sql


class CutoverStatus(StrEnum):
    """A request's status; the text is what `wacdc.cutover.status` stores."""

    REQUESTED = "requested"
    WAITING = "waiting"
    ABORT_REQUESTED = "abort_requested"
    FROZEN = "frozen"
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


def request(conn: psycopg.Connection, by: str) -> int:
    """Ask for a cutover (or join the one already asked for); returns its id."""
    state.ensure_schema(conn)
    with conn.transaction():
        conn.execute(state_sql("LOCK TABLE {state}.cutover IN EXCLUSIVE MODE"))
        row = conn.execute(state_sql("SELECT id FROM {state}.cutover WHERE status = ANY(%s) "
                                     "ORDER BY id DESC LIMIT 1"),
                           ([*map(str, ACTIVE), str(CutoverStatus.FROZEN)],)).fetchone()
        if row:
            return int(row[0])
        row = conn.execute(state_sql("INSERT INTO {state}.cutover (status, requested_by) "
                                     "VALUES ('requested', %s) RETURNING id"), (by,)).fetchone()
    assert row is not None
    return int(row[0])


def abort(conn: psycopg.Connection) -> tuple[bool, str]:
    """Cancel a cutover that has not frozen yet."""
    state.ensure_schema(conn)
    row = conn.execute(state_sql(
        "UPDATE {state}.cutover SET status = 'abort_requested', updated_at = now() "
        "WHERE id = (SELECT max(id) FROM {state}.cutover) AND status IN "
        "('requested', 'waiting') RETURNING id")).fetchone()
    if row:
        return True, f"abort requested for cutover #{row[0]}"
    last = latest(conn)
    if last is None:
        return False, "no cutover has been requested"
    return False, f"cutover #{last['id']} is {last['status']}: too late to abort"


def latest(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The newest cutover request and its outcome; None if there never was one."""
    doc = state.first_row(
        conn, state_sql("SELECT id, status, requested_at, requested_by, reason, final_file, "
                        "final_pos, freeze_seconds, counts, orphans, fence, extras, finished_at "
                        "FROM {state}.cutover ORDER BY id DESC LIMIT 1"), dict_row)
    if doc is not None:
        for k in ("requested_at", "finished_at"):
            doc[k] = doc[k].isoformat() if doc[k] else None
    return doc


def active(conn: psycopg.Connection) -> Request | None:
    """The newest request still to act on (requested, waiting, abort requested)."""
    row = conn.execute(state_sql(
        "SELECT id, status, extract(epoch FROM now() - requested_at) "
        "FROM {state}.cutover WHERE status = ANY(%s) ORDER BY id DESC "
        "LIMIT 1"), ([str(s) for s in ACTIVE],)).fetchone()
    return None if row is None else Request(int(row[0]), CutoverStatus(row[1]), float(row[2]))


def claim_for_freeze(conn: psycopg.Connection, cutover_id: int) -> bool:
    """Mark a waiting request frozen; False when it is no longer waiting (an abort
    written since the last poll wins)."""
    return conn.execute(state_sql(
        "UPDATE {state}.cutover SET status = 'frozen', updated_at = now() "
        "WHERE id = %s AND status = 'waiting' RETURNING id"), (cutover_id,)).fetchone() is not None


def set_status(conn: psycopg.Connection, cutover_id: int, status: CutoverStatus,
               **fields: Any) -> None:
    """Record a request's status and outcome fields (JSON for dicts and lists)."""
    assignments: list[sql.Composable] = [sql.SQL("status = %s"), sql.SQL("updated_at = now()")]
    values: list[Any] = [str(status)]
    for name, value in fields.items():
        assignments.append(sql.SQL("{} = %s").format(sql.Identifier(name)))
        values.append(json.dumps(value) if isinstance(value, dict | list) else value)
    if status in FINAL:
        assignments.append(sql.SQL("finished_at = now()"))
    conn.execute(sql.SQL("UPDATE {}.cutover SET {} WHERE id = %s").format(
        sql.Identifier(state.STATE_SCHEMA), sql.SQL(", ").join(assignments)),
        [*values, cutover_id])
