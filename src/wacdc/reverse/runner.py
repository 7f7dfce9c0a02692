"""Reverse replication as `wacdc run` runs it after the cutover: one attempt on fresh
connections (the coordinator retries), and its removal under WACDC_REVERSE=0."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg

from wacdc.config import Settings
from wacdc.errors import EXIT_OK
from wacdc.log import get_logger
from wacdc.reverse.apply import drop_checkpoint_table
from wacdc.reverse.capture import capture_installed, remove_capture_gently
from wacdc.reverse.rollback import RollbackController
from wacdc.reverse.worker import ReverseSession, run_loop
from wacdc.runtime import CUT_OVER, DaemonStatus, Phase
from wacdc.sink import state, writer
from wacdc.sink.connection import connect_target
from wacdc.source.connection import connect

log = get_logger("wacdc.reverse")
LockTaker = Callable[[psycopg.Connection, str], writer.WriterLease | None]


def run_reverse(settings: Settings, stop: threading.Event, status: DaemonStatus,
                holder: Any, take_lock: LockTaker, tables: list[str],
                exit_when_caught_up: bool, hooks: list[Callable[[], bool]]) -> int:
    """Apply PostgreSQL's captured changes to MySQL until stopped, caught up (with
    `exit_when_caught_up`) or rolled back. `holder.lease` is set to the lease taken;
    `hooks` run between steps (the views' refresh)."""
    target = connect_target(settings.target(), autocommit=True)
    mysql = connect(settings.source(), autocommit=False)
    with target, mysql:
        holder.lease = take_lock(target, "reverse")
        if holder.lease is None:
            return EXIT_OK
        if state.get_phase(target) not in CUT_OVER:  # rolled back by another instance
            status.set_phase(Phase.CATCHUP)
            return EXIT_OK
        session = ReverseSession(settings, target, mysql, tables, status)
        status.set_phase(Phase.REVERSE, target)
        rollback = RollbackController(settings, session, status, holder.lease)
        run_loop(session, stop, settings.reverse_poll, exit_when_caught_up,
                 [rollback.poll, *hooks])
        if stop.is_set():
            log.info("stopped; reverse replication resumes from its checkpoint")
    return EXIT_OK


def reverse_off(settings: Settings, target: psycopg.Connection,
                tables_of: Callable[[], list[str]]) -> None:
    """WACDC_REVERSE=0 after a cutover that installed the capture: remove it, and the
    MySQL checkpoint table, so nothing of it is left on either server."""
    log_table = target.execute("SELECT to_regclass('wacdc.reverse_log')").fetchone()
    if log_table is None or log_table[0] is None:
        return
    tables = tables_of()
    present = capture_installed(target, settings.target_schema, tables)
    if not remove_capture_gently(target, settings.target_schema, tables, "2s"):
        log.warning("WACDC_REVERSE=0: the capture triggers could not all be dropped now "
                    "(the app holds a table); the next `wacdc run` start tries again")
        return
    with connect(settings.source()) as conn:
        drop_checkpoint_table(conn)
    log.warning("WACDC_REVERSE=0: reverse replication is off; its capture triggers, change "
                "log and MySQL checkpoint table were removed. The retired MySQL tables no "
                "longer follow PostgreSQL: a rollback now would lose what the app wrote "
                "since (docs/rollback.md)", tables=len(present))
