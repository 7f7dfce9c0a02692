"""`wacdc status`: what wacdc is doing, read from schema `wacdc` in PostgreSQL.

Works from any machine that reaches the target, also while the daemon is down (then
it says since when). Where the source is configured and reachable, the binlog
distance from the checkpoint to the source's head right now is added.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
import pymysql

from wacdc import __version__
from wacdc.config import Settings
from wacdc.errors import EXIT_FINDING, EXIT_OK, ConfigError, ConnectError
from wacdc.events import BinlogPosition
from wacdc.log import redact
from wacdc.observe import metrics
from wacdc.observe.lag import binlog_distance
from wacdc.sink.connection import connect_target
from wacdc.sink.state import StoredStatus, read_status
from wacdc.sink.writer import lock_key
from wacdc.source.connection import connect
from wacdc.source.position import binlog_file_sizes, current_position


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def position(at: BinlogPosition | None) -> dict[str, Any] | None:
    if at is None:
        return None
    return {"file": at.file, "pos": at.pos, "gtid": at.gtid}


@dataclass
class StatusView:
    """Everything a status document holds; what a reader cannot know stays None.

    `/status` (the running daemon, from memory) and `wacdc status --json` (schema
    `wacdc`) fill it in from their side; `build` makes the one document of both."""

    phase: str | None = None
    healthy: bool | None = None  # /healthz's verdict (the running daemon only)
    health: str | None = None
    waiting_for: str | None = None
    daemon: dict[str, Any] | None = None  # running, id, last_seen, ..., stopped_since
    applied_position: dict[str, Any] | None = None  # the checkpoint the stream stands at
    source_head: dict[str, Any] | None = None  # as the daemon last polled it
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    lag_known: bool | None = None
    lag_as_of: str | None = None
    cutover_ready: bool | None = None
    last_applied_timestamp: float | None = None
    stall_seconds: float | None = None
    source_now: dict[str, Any] | None = None  # the source's head now (wacdc status)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    reverse: dict[str, Any] | None = None  # after the cutover: PostgreSQL -> MySQL
    bridge: dict[str, Any] | None = None  # a bridge window: both stores written
    last_error: str | None = None
    started_at: str | None = None
    updated_at: str | None = None


def build(view: StatusView) -> dict[str, Any]:
    """The status document (docs/operations.md): the same keys whoever reads it."""
    return {"version": __version__, **asdict(view)}


def table_entry(snapshot: str | None = None, rows_copied: int = 0,
                rows_estimated: int | None = None,
                applied: dict[str, int] | None = None) -> dict[str, Any]:
    return {"snapshot": snapshot, "rows_copied": rows_copied,
            "rows_estimated": rows_estimated, "applied": applied or {}}


def live_tables() -> dict[str, dict[str, Any]]:
    """Per table, what this process copied and applied (its counters)."""
    tables: dict[str, dict[str, Any]] = {}
    for family in (metrics.rows_applied, metrics.snapshot_rows):
        for sample in next(iter(family.collect())).samples:
            if not sample.name.endswith("_total"):
                continue
            entry = tables.setdefault(sample.labels["table"], table_entry())
            if "op" in sample.labels:
                entry["applied"][sample.labels["op"]] = int(sample.value)
            else:
                entry["rows_copied"] = int(sample.value)
    return tables


REVERSE_PHASES = ("reverse", "rollback")


def collect(settings: Settings) -> dict[str, Any] | None:
    """The status document; None if wacdc has never run against this target."""
    with connect_target(settings.target(), autocommit=True) as conn:
        stored = read_status(conn, lock_key(settings.target().database))
        now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        reverse = _reverse_backlog(conn) if stored and stored.phase in REVERSE_PHASES \
            else None
        bridge = _bridge(conn) if stored and stored.phase == "bridge" else None
    if stored is None:
        return None
    doc = document(stored, now, _source_now(settings, stored.checkpoint))
    doc["reverse"] = reverse
    doc["bridge"] = bridge
    return doc


def _bridge(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The open window as the daemon last recorded it (wacdc.cutover.bridge)."""
    row = conn.execute("SELECT bridge FROM wacdc.cutover WHERE bridge IS NOT NULL "
                       "ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else dict(row[0])


def _reverse_backlog(conn: psycopg.Connection) -> dict[str, Any] | None:
    """What the capture holds that MySQL has not got yet (wacdc.reverse_log)."""
    row = conn.execute(
        "SELECT to_regclass('wacdc.reverse_log') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    pending = conn.execute(
        "SELECT count(*), extract(epoch FROM now() - min(captured_at)), "
        "coalesce(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), min(lsn)), 0) "
        "FROM wacdc.reverse_log").fetchone()
    assert pending is not None
    return {"pending_changes": int(pending[0]),
            "lag_seconds": round(float(pending[1] or 0.0), 3),
            "lag_bytes": int(pending[2])}


def document(stored: StoredStatus, now: dt.datetime,
             source_now: dict[str, Any]) -> dict[str, Any]:
    seen = stored.seen_at or stored.updated_at
    running = stored.writer_pid is not None
    tables: dict[str, dict[str, Any]] = {}
    for name, progress in sorted(stored.snapshot.items()):
        tables[name] = table_entry(progress.status, progress.rows_copied,
                                   progress.rows_estimated)
    for name, ops in stored.applied_rows.items():
        tables.setdefault(name, table_entry())["applied"] = ops
    return build(StatusView(
        phase=stored.phase,
        daemon={"running": running, "id": stored.daemon, "last_seen": _iso(seen),
                "seconds_since_seen": round((now - seen).total_seconds(), 1),
                "stopped_since": None if running else _iso(seen)},
        applied_position=position(stored.checkpoint),
        source_head=position(stored.source_head),
        lag_seconds=stored.lag_seconds, lag_bytes=stored.lag_bytes,
        lag_as_of=_iso(stored.seen_at), source_now=source_now, tables=tables,
        last_error=redact(stored.last_error) if stored.last_error else None,
        updated_at=_iso(stored.updated_at)))


def _source_now(settings: Settings, checkpoint: BinlogPosition | None) -> dict[str, Any]:
    """The source's head now and the binlog bytes the checkpoint is behind it."""
    if settings.source_url is None:
        return {"reachable": False, "note": "WACDC_SOURCE_URL is not set"}
    try:
        with connect(settings.source()) as conn:
            head = current_position(conn)
            sizes = binlog_file_sizes(conn)
    except (ConnectError, ConfigError, pymysql.err.MySQLError) as exc:
        return {"reachable": False, "note": redact(str(exc)).splitlines()[0]}
    behind = binlog_distance(checkpoint, head, sizes) if checkpoint else None
    return {"reachable": True, "head": position(head), "bytes_behind": behind}


def exit_code(doc: dict[str, Any] | None) -> int:
    """0: status shown (running or cleanly stopped); 1: never ran here, or phase failed."""
    if doc is None or doc["phase"] == "failed":
        return EXIT_FINDING
    return EXIT_OK


def render(doc: dict[str, Any] | None) -> str:
    if doc is None:
        return ("wacdc has not run against this target yet (no schema wacdc): start "
                "`wacdc run`")
    d = doc["daemon"]
    if d["running"]:
        daemon = f"running ({d['id'] or 'id unknown'}; seen {d['seconds_since_seen']:.0f}s ago)"
    else:
        daemon = (f"NOT RUNNING since {d['stopped_since']} "
                  f"({_ago(d['seconds_since_seen'])} ago; last instance {d['id'] or '?'})")
    lines = [f"phase        {doc['phase']}", f"daemon       {daemon}",
             f"checkpoint   {_pos(doc['applied_position'])}",
             f"source head  {_pos(doc['source_head'])} (as the daemon last saw it)"]
    if doc["lag_seconds"] is not None:
        lines.append(f"lag          {doc['lag_seconds']:.3f} s, {doc['lag_bytes']:,} bytes "
                     f"(as of {doc['lag_as_of']})")
    now = doc["source_now"]
    if now.get("reachable"):
        behind = now["bytes_behind"]
        lines.append(f"source now   {_pos(now['head'])}; checkpoint behind by "
                     f"{'?' if behind is None else f'{behind:,}'} bytes")
    else:
        lines.append(f"source now   not checked: {now['note']}")
    reverse = doc.get("reverse")
    if reverse:
        lines.append(f"reverse      PostgreSQL -> MySQL: {reverse['pending_changes']:,} "
                     f"change(s) pending, lag {reverse['lag_seconds']:.3f} s, "
                     f"{reverse['lag_bytes']:,} WAL bytes")
    bridge = doc.get("bridge")
    if bridge:
        last = bridge.get("last_mysql_write") or "none since it opened"
        lines.append(f"bridge       open since {bridge['opened_at']}; closes when MySQL has "
                     f"been quiet {bridge['quiet_s']:.0f} s (last app write to MySQL: {last}), "
                     f"at {bridge['closes_by']} at the latest, or on `wacdc cutover "
                     f"--close-bridge`; {bridge['mysql_writes']:,} MySQL write(s), "
                     f"{bridge['conflicts']:,} conflict(s)")
    if doc["last_error"]:
        lines.append(f"last error   {doc['last_error']}")
    lines += ["", f"{'table':<30} {'snapshot':<9} {'copied':>10} {'inserts':>9} "
              f"{'updates':>9} {'deletes':>9}"]
    for name, t in doc["tables"].items():
        applied = t.get("applied", {})
        lines.append(f"{name:<30} {t.get('snapshot') or '-':<9} {t.get('rows_copied') or 0:>10,} "
                     f"{applied.get('insert', 0):>9,} {applied.get('update', 0):>9,} "
                     f"{applied.get('delete', 0):>9,}")
    return "\n".join(lines)


def _pos(position: dict[str, Any] | None) -> str:
    if not position:
        return "-"
    text = f"{position['file']}:{position['pos']}"
    return f"{text} (gtid {position['gtid']})" if position.get("gtid") else text


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"

