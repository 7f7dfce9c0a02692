"""`wacdc cutover` and `wacdc rollback` as a client: write the control row, then
(--wait) follow it to its outcome."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable

import psycopg

from wacdc.config import Settings
from wacdc.cutover import control
from wacdc.errors import EXIT_ERROR, EXIT_FINDING, EXIT_OK
from wacdc.sink.connection import connect_target
from wacdc.sink.state import read_status
from wacdc.sink.writer import check_deployment, deployment_of, lock_key


def ask(settings: Settings, kind: str, already: Callable[[str | None], tuple[str, int] | None],
        *, wait: bool, abort: bool, bridge_max: float | None = None,
        close_bridge: bool = False) -> int:
    """`wacdc cutover` / `wacdc rollback`: a control row, then (--wait) its outcome.
    `bridge_max`: a cutover with a bridge window; `close_bridge`: close the open one."""
    with connect_target(settings.target(), autocommit=True) as conn:
        # The control row is the deployment's whose state this database holds: not ours?
        if settings.source_url is not None:
            check_deployment(conn, deployment_of(settings.source().database,
                                                 settings.target_schema))
        if abort:
            ok, message = control.abort(conn, kind)
            print(message)
            return EXIT_OK if ok else EXIT_FINDING
        if close_bridge:
            ok, message = control.close_bridge(conn)
            print(message)
            if not ok:
                return EXIT_FINDING
            return follow(conn, settings, kind) if wait else EXIT_OK
        before = read_status(conn, lock_key(settings.target().database))
        answer = already(before.phase if before is not None else None)
        if answer is not None:
            print(answer[0])
            return answer[1]
        request_id = control.request(conn, f"wacdc {kind} on {socket.gethostname()}", kind,
                                     bridge_max)
        status = read_status(conn, lock_key(settings.target().database))
        running = status is not None and status.writer_pid is not None
        print(f"{kind} #{request_id} requested" + ("" if running else
              " -- no wacdc daemon runs against this target now; it starts when one does"))
        if not wait:
            print(f"follow it with `wacdc {kind} --wait` or `wacdc status`")
            return EXIT_OK
        return follow(conn, settings, kind, bridge_max is not None)


def follow(conn: psycopg.Connection, settings: Settings, kind: str,
           until_bridge: bool = False) -> int:
    """Print each status change until the outcome (or, `until_bridge`, an open window)."""

    seen = None
    idle_since = time.monotonic()
    while True:
        doc = control.latest(conn, kind)
        assert doc is not None
        if doc["status"] != seen:
            seen = doc["status"]
            print(f"  {time.strftime('%H:%M:%S')} {seen}"
                  + (f": {doc['reason']}" if doc["reason"] else ""), flush=True)
        if until_bridge and doc["status"] == control.CutoverStatus.BRIDGE:
            print("the bridge window is open: move the app's instances to PostgreSQL now; "
                  "it closes by itself once MySQL is quiet, or on `wacdc cutover "
                  "--close-bridge` (docs/cutover.md)")
            return EXIT_OK
        if doc["status"] in control.FINAL:
            print(json.dumps(doc, indent=2, default=str))
            return EXIT_OK if doc["status"] == "done" else EXIT_FINDING
        status = read_status(conn, lock_key(settings.target().database))
        if status is not None and status.writer_pid is not None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > 30:
            print("no wacdc daemon has run against this target for 30 s; the request "
                  "stays and runs when `wacdc run` starts", file=sys.stderr)
            return EXIT_ERROR
        time.sleep(0.2)
