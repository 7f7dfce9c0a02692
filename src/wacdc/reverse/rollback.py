"""`wacdc rollback`: back to MySQL, nothing lost (docs/rollback.md).

The mirror of the cutover, driven between reverse replication's steps:

1. wait until reverse lag <= WACDC_CUTOVER_MAX_LAG (WACDC_CUTOVER_TIMEOUT: refused);
2. freeze: `LOCK TABLE <replicated> IN EXCLUSIVE MODE` on a PostgreSQL connection of
   its own: the app's writes wait, its reads go on; past WACDC_CUTOVER_MAX_FREEZE,
   unlock and abort (nothing lost);
3. drain the change log into MySQL, then compare row counts;
4. in the freeze's own transaction: fence PostgreSQL (a trigger refuses every session
   but wacdc's), point forward replication at MySQL's binlog position now, record
   the rollback (`frozen`); commit, which unlocks;
5. give the MySQL tables their names back (RENAME TABLE t__wacdc_retired TO t, ...),
   drop the capture and the checkpoint table, record it `done`.

A stop between 4 and 5 is finished by the next start (`finish_interrupted`). Then
`wacdc run` replicates MySQL -> PostgreSQL again, from that position.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pymysql
from psycopg import sql

from wacdc.config import Settings
from wacdc.cutover import control
from wacdc.cutover.control import ROLLBACK, CutoverStatus, Request
from wacdc.cutover.finalize import mismatches
from wacdc.errors import WacdcError
from wacdc.log import get_logger
from wacdc.observe import metrics
from wacdc.reverse.apply import drop_checkpoint_table
from wacdc.reverse.capture import install_fence, relation, remove_capture_gently
from wacdc.reverse.worker import ReverseSession
from wacdc.runtime import DaemonStatus, Phase
from wacdc.sink import state, writer
from wacdc.sink.connection import connect_target
from wacdc.source.catalog import RETIRED_SUFFIX, retired_tables
from wacdc.source.connection import connect
from wacdc.source.position import current_position
from wacdc.source.sql import quote_ident

log = get_logger("wacdc.rollback")
CLEANUP_LOCK_TIMEOUT = "2s"
RENAME_LOCK_WAIT_S = 5
LOCK_WAIT_TIMEOUT = 1205  # ER_LOCK_WAIT_TIMEOUT
FENCE = "trigger"  # recorded with `frozen` in the fencing commit


def count_both(session: ReverseSession) -> dict[str, dict[str, int]]:
    """Rows per table: the retired MySQL table ("source") and PostgreSQL ("target")."""
    counts = {}
    with session.mysql.cursor() as cur:
        for table, plan in session.plans.items():
            cur.execute(f"SELECT COUNT(*) FROM {quote_ident(plan.mysql_table)}")
            mysql_rows = cur.fetchone()
            pg_rows = session.target.execute(sql.SQL("SELECT count(*) FROM {}").format(
                relation(session.settings.target_schema, table))).fetchone()
            counts[table] = {"source": int(mysql_rows[0]) if mysql_rows else 0,
                             "target": int(pg_rows[0]) if pg_rows else 0}
    session.mysql.commit()
    return counts


def _taken(settings: Settings, tables: list[str]) -> list[str]:
    """Tables that exist under both names (one created under the name since the cutover)."""
    with connect(settings.source()) as conn, conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                    (settings.source().database,))
        present = {row[0] for row in cur.fetchall()}
    return [t for t in tables if t in present and t + RETIRED_SUFFIX in present]


def rename_back(settings: Settings, tables: list[str]) -> list[str]:
    """MySQL's retired tables under their names again, in one RENAME; the ones renamed.
    A metadata lock in the way (an app transaction on a retired table) is waited for a
    few seconds at a time, logged each time: the app writes neither database until then."""
    taken = _taken(settings, tables)
    if taken:
        raise WacdcError(
            "the rollback fenced PostgreSQL but cannot give the MySQL tables their names "
            f"back: {', '.join(taken)} exist(s) under the name as well as retired (created "
            "since the cutover?). Nothing is lost; move the new table(s) aside, then start "
            "`wacdc run` again: it finishes the rollback (docs/rollback.md)")
    retired = sorted(retired_tables(settings, tables))
    if not retired:
        return retired
    statement = "RENAME TABLE " + ", ".join(
        f"{quote_ident(t + RETIRED_SUFFIX)} TO {quote_ident(t)}" for t in retired)
    with connect(settings.source()) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = %s", (RENAME_LOCK_WAIT_S,))
        for attempt in itertools.count(1):
            try:
                cur.execute(statement)
                return retired
            except pymysql.err.MySQLError as exc:
                if not exc.args or exc.args[0] != LOCK_WAIT_TIMEOUT:
                    raise WacdcError(
                        f"the rollback fenced PostgreSQL but MySQL refused to give the tables "
                        f"their names back ({exc.args[-1] if exc.args else exc}); nothing is "
                        f"lost. Run `{statement}` by hand, or fix the cause, then start "
                        "`wacdc run` again: it finishes the rollback") from None
                log.warning("rollback: the RENAME waits for a transaction on a retired "
                            "MySQL table; trying again (the app can write neither database "
                            "until it is through)", attempt=attempt,
                            waited_s=attempt * RENAME_LOCK_WAIT_S)
    raise AssertionError("unreachable")


def clean_up(settings: Settings, target: psycopg.Connection, tables: list[str]) -> None:
    """What reverse replication kept on both sides, gone. Dropping a trigger locks its
    table out even for readers: each waits at most CLEANUP_LOCK_TIMEOUT behind the
    app's reads, else the rest is left for the next start (harmless: the fence refuses
    the app's writes before a capture trigger would see them)."""
    if not remove_capture_gently(target, settings.target_schema, tables,
                                 CLEANUP_LOCK_TIMEOUT):
        log.warning("the capture triggers could not all be dropped now (the app's reads "
                    "hold a table); the next `wacdc run` start drops them")
    with connect(settings.source()) as conn:
        drop_checkpoint_table(conn)


def finish_interrupted(settings: Settings, target: psycopg.Connection,
                       tables_of: Callable[[], list[str]]) -> None:
    """A rollback recorded `frozen` with the fence (PostgreSQL fenced, forward position
    set, in one commit) whose MySQL side did not finish: rename, clean up, record it done.
    One `frozen` without the fence stopped before that commit: nothing happened."""
    last = control.latest(target, ROLLBACK)
    if last is not None and last["status"] == CutoverStatus.DONE and \
            state.get_phase(target) != Phase.BRIDGE and \
            target.execute("SELECT to_regclass('wacdc.reverse_log')").fetchone() != (None,):
        # (A bridge window opened since has its own capture: that one stays.)
        clean_up(settings, target, tables_of())  # left by a rollback (reads held a table)
    if last is None or last["status"] != CutoverStatus.FROZEN:
        return
    if last["fence"] != FENCE:
        abort_unfenced(target, int(last["id"]))
        return
    tables = tables_of()
    renamed = rename_back(settings, tables)
    clean_up(settings, target, tables)
    control.set_status(target, int(last["id"]), CutoverStatus.DONE, ROLLBACK)
    log.warning("finished an interrupted rollback: the MySQL tables have their names back",
                rollback=last["id"], renamed=len(renamed))


def abort_unfenced(target: psycopg.Connection, rollback_id: int,
                   why: str = "wacdc stopped during the rollback's freeze") -> None:
    """Record the abort of a rollback that froze PostgreSQL but never fenced it (its
    fencing commit records the fence: a row that has it is past the point of no return)."""
    last = control.latest(target, ROLLBACK)
    if last is None or int(last["id"]) != rollback_id or last["fence"] == FENCE:
        return
    control.set_status(target, rollback_id, CutoverStatus.ABORTED, ROLLBACK,
                       reason=f"{why}, before PostgreSQL was fenced; the lock ended with "
                              "its transaction, nothing was lost: request the rollback again")


def _release(freeze: psycopg.Connection) -> None:
    """Never leave PostgreSQL locked: roll back (a no-op once committed) and close. A
    connection the server already ended (the idle bound) has no lock left to release."""
    try:
        if not freeze.closed:
            freeze.rollback()
    except (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout) as exc:
        # (the idle bound's error, SQLSTATE 25P03, is not an OperationalError)
        log.info("the freeze's connection was already gone; its lock with it",
                 error=str(exc).strip().splitlines()[0] if str(exc).strip() else "")
    finally:
        freeze.close()


class RollbackController:
    """`poll` before each reverse step; True from it ends reverse replication (done)."""

    def __init__(self, settings: Settings, session: ReverseSession, status: DaemonStatus,
                 lease: writer.WriterLease) -> None:
        self.settings, self.session, self.status, self.lease = settings, session, status, lease
        self.auto_request = settings.rollback
        self.done = False
        last = control.latest(session.target, ROLLBACK)
        if last is not None and last["status"] == CutoverStatus.FROZEN:
            abort_unfenced(session.target, int(last["id"]))  # still in reverse: not fenced

    def poll(self) -> bool:
        target = self.session.target
        if self.auto_request:
            log.info("rollback requested by WACDC_ROLLBACK=1",
                     rollback=control.request(target, "WACDC_ROLLBACK=1", ROLLBACK))
            self.auto_request = False
        req = control.active(target, ROLLBACK)
        if req is None:
            return False
        if req.status == CutoverStatus.ABORT_REQUESTED:
            control.set_status(target, req.id, CutoverStatus.ABORTED, ROLLBACK,
                               reason="aborted by the operator")
            log.info("rollback aborted by the operator", rollback=req.id)
            return False
        if req.status == CutoverStatus.REQUESTED:
            control.set_status(target, req.id, CutoverStatus.WAITING, ROLLBACK)
            log.info("rollback requested: waiting for reverse lag to reach the threshold",
                     rollback=req.id, max_lag_s=self.settings.cutover_max_lag)
        self.session.measure()
        lag = self.status.reverse.lag_seconds
        if req.age_s > self.settings.cutover_timeout:
            self._refuse(req, f"reverse lag did not reach <= {self.settings.cutover_max_lag}s "
                              f"within {self.settings.cutover_timeout:.0f}s of the request "
                              f"(lag now {lag:.3f}s)")
        elif lag <= self.settings.cutover_max_lag and control.claim_for_freeze(
                target, req.id, ROLLBACK):
            self._execute(req)
        return self.done

    def _refuse(self, req: Request, reason: str,
                status: CutoverStatus = CutoverStatus.REFUSED) -> None:
        control.set_status(self.session.target, req.id, status, ROLLBACK, reason=reason)
        log.warning(f"rollback {status}", rollback=req.id, reason=reason)
        self.status.set_phase(Phase.REVERSE)

    def _execute(self, req: Request) -> None:
        self.status.set_phase(Phase.ROLLBACK)
        limit = self.settings.cutover_max_freeze
        freeze = connect_target(self.settings.target(), autocommit=False)
        try:
            writer.join(freeze, self.lease)
            bound = sql.Literal(f"{max(1, int(limit * 1000))}ms")
            # Each statement of the freeze, the lock included, ends within the limit.
            freeze.execute(sql.SQL("SET lock_timeout = {}").format(bound))
            freeze.execute(sql.SQL("SET statement_timeout = {}").format(bound))
            # While the drain runs on other connections the freeze sits idle in its
            # transaction: the server ends it (and the lock) if that lasts too long.
            freeze.execute(sql.SQL("SET idle_in_transaction_session_timeout = {}").format(
                bound))
            freeze.commit()
            started = time.monotonic()
            try:
                freeze.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
                    sql.SQL(", ").join(relation(self.settings.target_schema, t)
                                       for t in self.session.tables)))
            except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled,
                    psycopg.errors.DeadlockDetected) as exc:
                freeze.rollback()
                self._refuse(req, f"could not lock the PostgreSQL tables within {limit}s "
                                  f"({str(exc).strip().splitlines()[0]}: an app transaction "
                                  "holds one); nothing lost: retry", CutoverStatus.ABORTED)
                return
            try:
                committed = self._frozen(req, freeze, started, started + limit)
            except BaseException as exc:
                self._failed_frozen(req, exc)
                raise
        finally:
            _release(freeze)
        if committed:
            self._unfence_mysql(req)

    def _frozen(self, req: Request, freeze: psycopg.Connection, started: float,
                deadline: float) -> bool:
        """Drain, count, fence and record inside the freeze; False: aborted or refused."""
        s, limit = self.session, self.settings.cutover_max_freeze
        if not s.drain(deadline) or time.monotonic() > deadline:
            self._abort_frozen(req, freeze, f"the freeze reached its limit ({limit}s) "
                               "before the drain finished")
            return False
        counts = count_both(s)
        if time.monotonic() > deadline:  # the idle bound may have ended the freeze's session
            self._abort_frozen(req, freeze, f"the freeze reached its limit ({limit}s) "
                               "before the row counts were taken")
            return False
        differ = mismatches(counts, "MySQL", "PostgreSQL")
        if differ:
            _release(freeze)
            self._refuse(req, differ)
            return False
        position = current_position(s.mysql)
        s.mysql.commit()
        install_fence(freeze, self.settings.target_schema, s.tables)
        state.set_checkpoint(freeze, position)
        state.set_phase(freeze, Phase.CATCHUP)
        freeze_s = time.monotonic() - started
        control.set_status(freeze, req.id, CutoverStatus.FROZEN, ROLLBACK, counts=counts,
                           final_file=position.file, final_pos=position.pos,
                           freeze_seconds=freeze_s, fence=FENCE)
        if time.monotonic() > deadline:
            self._abort_frozen(req, freeze, f"the freeze reached its limit ({limit}s) "
                               "while fencing")
            return False
        freeze.commit()  # PostgreSQL fenced and unlocked: past the point of no return
        freeze_s = time.monotonic() - started
        metrics.rollback_freeze_seconds.set(freeze_s)
        log.info("rollback: PostgreSQL fenced; forward replication resumes from MySQL's "
                 "binlog here", rollback=req.id, position=str(position),
                 freeze_s=round(freeze_s, 3))
        return True

    def _failed_frozen(self, req: Request, exc: BaseException) -> None:
        """An error inside the freeze, before its commit: nothing was fenced; say so in the
        request (on the applying connection, which may be the one that failed)."""
        try:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            abort_unfenced(self.session.target, req.id, f"an error in the freeze ({first})")
        except psycopg.Error as note:
            log.error("could not record the rollback's abort; the next start does",
                      error=str(note).strip().splitlines()[0] if str(note).strip() else "")

    def _abort_frozen(self, req: Request, freeze: psycopg.Connection, why: str) -> None:
        # A drain longer than the limit leaves the freeze idle that long: the server has
        # ended its session (idle_in_transaction_session_timeout), and the lock with it.
        _release(freeze)
        self._refuse(req, f"{why}; PostgreSQL unlocked, nothing lost: retry when the load "
                          "is lower", CutoverStatus.ABORTED)

    def _unfence_mysql(self, req: Request) -> None:
        target, tables = self.session.target, self.session.tables
        renamed = rename_back(self.settings, tables)
        clean_up(self.settings, target, tables)
        extras: Any = {"renamed": renamed}
        control.set_status(target, req.id, CutoverStatus.DONE, ROLLBACK, extras=extras)
        self.status.set_phase(Phase.CATCHUP)
        log.info("rollback done: MySQL is the primary again; replicating MySQL -> "
                 "PostgreSQL from the rollback position", rollback=req.id,
                 tables=len(renamed))
        self.done = True
