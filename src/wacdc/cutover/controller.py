"""The cutover's state machine, driven between the stream's items (see the package).

It drives the stream only through `Drainer`, which wacdc.stream.StreamSession
satisfies; the fence is a predicate over the stream (the RENAME itself read back
from the binlog), not a flag either side writes into the other.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pymysql
from psycopg import sql

from wacdc.config import Settings
from wacdc.cutover import control
from wacdc.cutover.bridge import (
    FENCE_WAIT_S,
    BridgeWindow,
    bridge_problem,
    is_fence,
    record_closed,
    resolve_conflicts,
)
from wacdc.cutover.bridge import BridgeDrainer as Drainer
from wacdc.cutover.control import CutoverStatus, Request
from wacdc.cutover.finalize import (
    add_foreign_keys,
    advance_identities,
    count_rows,
    mismatches,
    validate_foreign_keys,
)
from wacdc.cutover.freeze import FreezeGuard
from wacdc.cutover.precheck import Precheck, names_problem
from wacdc.errors import WacdcError
from wacdc.log import get_logger
from wacdc.observe import metrics
from wacdc.reverse.capture import install_capture, remove_fence
from wacdc.runtime import DaemonStatus, Phase
from wacdc.schema.extras import apply_extras
from wacdc.schema.profile import ForeignKey, load_profile
from wacdc.sink import state
from wacdc.source.catalog import RETIRED_SUFFIX, retired_tables
from wacdc.source.connection import connect
from wacdc.source.position import current_position
from wacdc.source.sql import quote_ident

log = get_logger("wacdc.cutover")


class CutoverController:
    """`poll` every half second and `tick` between items (the coordinator wires both)."""

    def __init__(self, settings: Settings, drainer: Drainer, status: DaemonStatus) -> None:
        self.settings, self.drainer, self.status = settings, drainer, status
        self.current: Request | None = None
        self.profile = load_profile(settings.profile)
        self.finishing: Request | None = None
        self.checked: int | None = None  # the request whose pre-freeze checks passed
        self.prechecking: Precheck | None = None
        self.busy_checks: tuple[int, int, str] | None = None  # request, tries, last reason
        self.window: BridgeWindow | None = None  # an open bridge window (cutover.bridge)
        self.closing: int | None = None  # a bridge window fenced, its close not recorded
        self.auto_request = settings.cutover  # WACDC_CUTOVER=1: ask once streaming
        self.resume_interrupted()

    def close(self) -> None:
        """The stream's session ends (a reconnect opens the window again)."""
        if self.window is not None:
            self.window.close()
            self.window = None

    def poll(self) -> None:
        if self.window is not None:
            if self.window.poll():
                self.window = None
            return
        target = self.drainer.target
        if self.auto_request and self.status.phase == Phase.STREAMING:
            # Asked only now, so a long catch-up does not eat the request's timeout.
            cutover_id = control.request(target, "WACDC_CUTOVER=1")
            log.info("cutover requested by WACDC_CUTOVER=1", cutover=cutover_id)
            if self.settings.cutover_bridge:
                target.execute("UPDATE wacdc.cutover SET bridge_max = %s WHERE id = %s "
                               "AND bridge_max IS NULL", (self.settings.bridge_max, cutover_id))
            self.auto_request = False
        req = control.active(target)
        self.current = None
        if req is None:
            return
        if self.status.phase == Phase.DONE:  # asked again after it (FENCE=none follows on)
            control.set_status(target, req.id, CutoverStatus.REFUSED,
                               reason="the cutover is already done: PostgreSQL is the primary")
            return
        if req.status == CutoverStatus.ABORT_REQUESTED:
            control.set_status(target, req.id, CutoverStatus.ABORTED,
                               reason="aborted by the operator")
            log.info("cutover aborted by the operator", cutover=req.id)
            return
        if req.status == CutoverStatus.REQUESTED:
            control.set_status(target, req.id, CutoverStatus.WAITING)
            log.info("cutover requested: waiting for lag to reach the threshold",
                     cutover=req.id, max_lag_s=self.settings.cutover_max_lag)
            req.status = CutoverStatus.WAITING
        self.current = req

    def tick(self) -> None:
        if self.finishing is not None:
            self._finish_interrupted(self.finishing)
            return
        if self.closing is not None:
            if self.drainer.drain_until(is_fence, None):  # a stop leaves it for next time
                record_closed(self.drainer, self.status, self.closing,
                              "its fence was in place when wacdc started again")
                self.closing = None
            return
        req = self.current
        if req is None:
            return
        lag = self.status.lag_seconds()
        # The timeout counts from the request, so a loop that was stuck cannot reset it.
        if req.age_s > self.settings.cutover_timeout:
            self._refuse(req, self._timed_out(req, lag))
        elif self.status.phase != Phase.STREAMING or lag > self.settings.cutover_max_lag:
            return
        elif self.checked != req.id:
            self._precheck(req)  # then freeze at a later tick, once lag is low again
        else:
            self._execute(req)

    def _timed_out(self, req: Request, lag: float) -> str:
        """Why a request ran out of time: the lag, or checks that never got to run."""
        within = f"within {self.settings.cutover_timeout:.0f}s of the request"
        busy = self.busy_checks
        if self.checked != req.id and busy is not None and busy[0] == req.id and \
                lag <= self.settings.cutover_max_lag:
            return (f"the pre-freeze checks could not run {within} ({busy[1]} tries; last: "
                    f"{busy[2]}); request the cutover again")
        return (f"lag did not reach <= {self.settings.cutover_max_lag}s {within} "
                f"(lag now {lag:.3f}s, phase {self.status.phase})")

    def _fks(self) -> list[ForeignKey]:
        tables = set(self.drainer.tables)
        return [fk for fk in self.profile.foreign_keys
                if fk.table in tables and fk.references in tables]

    def _precheck(self, req: Request) -> None:
        """Start the checks off the streaming thread; collect them at a later tick."""
        problem = names_problem(self.settings, self.drainer.tables) or (
            bridge_problem(self.settings, self.drainer) if req.bridge_max else None)
        if problem:
            self._refuse(req, problem)
            return
        running = self.prechecking
        if running is None or running.cutover_id != req.id:
            self.prechecking = Precheck(self.settings, self._fks(), req.id, self.drainer.tables)
            self.prechecking.start()
            return
        if running.is_alive():
            return
        self.prechecking = None
        if running.busy:  # checked again at a later tick
            self._note_busy(req, running.busy)
            return
        problem = running.outcome()
        if problem:
            self._refuse(req, problem)
        else:
            self.checked = req.id

    def _note_busy(self, req: Request, why: str) -> None:
        tries = 1 if self.busy_checks is None or self.busy_checks[0] != req.id else \
            self.busy_checks[1] + 1
        self.busy_checks = (req.id, tries, why)
        if tries == 1:
            log.warning("cutover: the pre-freeze checks could not run yet; trying again "
                        "while streaming goes on", cutover=req.id, reason=why)

    def _refuse(self, req: Request, reason: str,
                status: CutoverStatus = CutoverStatus.REFUSED) -> None:
        target = self.drainer.target
        control.set_status(target, req.id, status, reason=reason)
        log.warning(f"cutover {status}", cutover=req.id, reason=reason)
        self.current = None
        if self.status.phase == Phase.CUTOVER:
            self.status.set_phase(Phase.STREAMING, target)

    def _execute(self, req: Request) -> None:
        target = self.drainer.target
        tables, fks = self.drainer.tables, self._fks()
        if not control.claim_for_freeze(target, req.id):
            self.current = None
            return
        self.status.set_phase(Phase.CUTOVER, target)
        # Its statements wait at most the freeze's lock_wait_timeout.
        freeze = connect(self.settings.source(),
                         read_timeout=self.settings.cutover_max_freeze + 10)
        try:
            self._freeze(req, freeze, tables, fks)
        finally:
            freeze.close()

    def _freeze(self, req: Request, freeze: pymysql.connections.Connection,
                tables: list[str], fks: list[ForeignKey]) -> None:
        limit = self.settings.cutover_max_freeze
        with freeze.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = %s", (max(1, int(limit)),))
            started = time.monotonic()
            try:
                cur.execute("LOCK TABLES " + ", ".join(f"{quote_ident(t)} READ"
                                                        for t in tables))
            except pymysql.err.OperationalError as exc:
                self._refuse(req, f"could not lock the source tables within {limit}s "
                                  f"({exc.args[-1]})", CutoverStatus.ABORTED)
                return
        guard = FreezeGuard(freeze, max(limit - (time.monotonic() - started), 0.01))
        try:
            counts = self._drain_and_count(req, guard, tables)
            if counts is not None and req.bridge_max is not None:
                with freeze.cursor() as cur:
                    cur.execute("UNLOCK TABLES")  # a bridge window: not fenced yet
                self._open_bridge(req, time.monotonic() - started, counts, tables, fks)
            elif counts is not None and self._fence(req, freeze, started, tables):
                self._fenced(req, time.monotonic() - started, counts, tables, fks)
        finally:
            guard.abort()  # no-op once committed; else never leave the source locked

    def _drain_and_count(self, req: Request, guard: FreezeGuard,
                         tables: list[str]) -> dict[str, dict[str, int]] | None:
        """Frozen: apply up to the source head, then compare row counts; None: refused."""
        s, limit = self.drainer, self.settings.cutover_max_freeze
        head = current_position(s.control)
        log.info("frozen: draining to the source head", cutover=req.id, head=str(head))
        if not s.drain_to(head, lambda: guard.expired) or guard.expired:
            guard.abort()
            self._refuse(req, f"the freeze reached its limit ({limit}s) before the drain to "
                              f"{head} finished; source unlocked, nothing lost: retry when "
                              "the load is lower", CutoverStatus.ABORTED)
            return None
        counts = count_rows(s.control, s.target, self.settings.target_schema, tables)
        differ = mismatches(counts)
        if differ:
            guard.abort()
            self._refuse(req, differ)
            return None
        if not guard.commit():
            self._refuse(req, f"the freeze reached its limit ({limit}s) during the count "
                              "check; source unlocked, nothing lost", CutoverStatus.ABORTED)
            return None
        return counts

    def _fence(self, req: Request, freeze: pymysql.connections.Connection, started: float,
               tables: list[str]) -> bool:
        """Unlock and fence the source (past the point of no return); False: refused."""
        limit = self.settings.cutover_max_freeze
        with freeze.cursor() as cur:
            left = max(1, int(limit - (time.monotonic() - started) + 0.999))
            cur.execute("SET SESSION lock_wait_timeout = %s", (left,))
            cur.execute("UNLOCK TABLES")
            if self.settings.fence != "rename":
                return True
            try:
                cur.execute("RENAME TABLE " + ", ".join(
                    f"{quote_ident(t)} TO {quote_ident(t + RETIRED_SUFFIX)}" for t in tables))
            except pymysql.err.OperationalError as exc:
                self._refuse(req, f"the fence could not rename the tables within {left}s "
                                  f"({exc.args[-1]}): an app transaction held them; nothing "
                                  "lost, replication goes on; retry", CutoverStatus.ABORTED)
                return False
        return True

    def _fenced(self, req: Request, freeze_s: float, counts: dict[str, dict[str, int]],
                tables: list[str], fks: list[ForeignKey]) -> None:
        metrics.cutover_freeze_seconds.set(freeze_s)
        control.set_status(self.drainer.target, req.id, CutoverStatus.FROZEN,
                           freeze_seconds=freeze_s, counts=counts, fence=self.settings.fence)
        if self.settings.fence == "rename" and not self.drainer.drain_until(is_fence,
                                                                            FENCE_WAIT_S):
            raise WacdcError("the fence (RENAME TABLE ... __wacdc_retired) did not appear in "
                             f"the binlog within {FENCE_WAIT_S} s; the source is fenced but "
                             "the last writes may be unapplied: run `wacdc run` again to "
                             "finish, then `wacdc verify` (docs/cutover.md)")
        self._finish(req, tables, fks, freeze_s)

    def _open_bridge(self, req: Request, freeze_s: float, counts: dict[str, dict[str, int]],
                     tables: list[str], fks: list[ForeignKey]) -> None:
        """Finalize as a cutover does, capture on, MySQL left writable (cutover.bridge)."""
        target, final = self.drainer.target, self.drainer.applied
        assert req.bridge_max is not None
        metrics.cutover_freeze_seconds.set(freeze_s)
        with target.transaction():
            advanced = advance_identities(target, self.settings.target_schema, tables)
            created = add_foreign_keys(target, self.settings.target_schema, fks)
            install_capture(target, self.settings.target_schema, tables)
            control.set_status(target, req.id, CutoverStatus.BRIDGE, freeze_seconds=freeze_s,
                               counts=counts, fence=self.settings.fence,
                               final_file=final.file, final_pos=final.pos,
                               bridge={"opened_epoch": time.time()})
            state.set_phase(target, Phase.BRIDGE)
        self.current = None
        self.window = BridgeWindow(self.settings, self.drainer, self.status, req.id,
                                   req.bridge_max, time.time())
        log.info("bridge window open: PostgreSQL is the primary, MySQL still writable; move "
                 "the app's instances to PostgreSQL now", cutover=req.id,
                 freeze_s=round(freeze_s, 3), final_position=str(final),
                 sequences=advanced, foreign_keys=created, bridge_max_s=req.bridge_max,
                 quiet_s=self.settings.bridge_quiet)
        self._after(req, tables, fks, CutoverStatus.BRIDGE)

    def resume_interrupted(self) -> None:
        """A daemon that died mid-cutover: finish it if the fence is in place, else record
        the abort (the source's lock died with the connection: nothing was lost); one
        that died inside a bridge window opens it again."""
        s = self.drainer
        last = control.latest(s.target)
        opened = control.open_bridge(s.target)
        if opened is not None and retired_tables(self.settings, s.tables):
            self.closing = int(opened["id"])  # stopped between its fence and its record
            resolve_conflicts(self.settings, s, self.status)  # up to the fence, too
            log.warning("resuming the close of a bridge window: MySQL is fenced; applying "
                        "up to the fence, then recording it done", cutover=opened["id"])
            return
        if opened is not None:
            log.warning("resuming a bridge window", cutover=opened["id"])
            self.window = BridgeWindow(self.settings, s, self.status, int(opened["id"]),
                                       float(opened["bridge_max"]), float(opened["opened"]),
                                       resumed=dict(opened["bridge"] or {}))
            return
        if last is None or last["status"] != CutoverStatus.FROZEN:
            return
        if retired_tables(self.settings, s.tables):
            self.finishing = Request(int(last["id"]), CutoverStatus.FROZEN, 0.0)
            log.warning("resuming an interrupted cutover: the source is fenced; applying up "
                        "to the fence, then finalizing", cutover=last["id"])
        else:
            control.set_status(
                s.target, int(last["id"]), CutoverStatus.ABORTED,
                reason="wacdc stopped while the source was frozen; the lock ended with its "
                       "connection, nothing was lost; request the cutover again")

    def _finish_interrupted(self, req: Request) -> None:
        """Apply up to the fence (however long: the source is fenced), then finalize; a
        stop request leaves it for the next start."""
        if self.drainer.drain_until(is_fence, None):
            self.finishing = None
            self._finish(req, self.drainer.tables, self._fks(), None)

    def _finish(self, req: Request, tables: list[str], fks: list[ForeignKey],
                freeze_s: float | None) -> None:
        target, final = self.drainer.target, self.drainer.applied
        with target.transaction():
            advanced = advance_identities(target, self.settings.target_schema, tables)
            created = add_foreign_keys(target, self.settings.target_schema, fks)
            # The way back starts with the app's first write (docs/rollback.md).
            reverse = self.settings.reverse and self.settings.fence == "rename"
            if reverse:
                install_capture(target, self.settings.target_schema, tables)
            else:
                remove_fence(target, self.settings.target_schema, tables)
            control.set_status(target, req.id, CutoverStatus.DONE, final_file=final.file,
                               final_pos=final.pos)
            state.set_phase(target, Phase.DONE)  # with the control row, in one commit
        self.status.set_phase(Phase.DONE)  # and in memory once committed
        log.info("cutover done: PostgreSQL is the primary now", cutover=req.id,
                 freeze_s=None if freeze_s is None else round(freeze_s, 3),
                 final_position=str(final),
                 fence=self.settings.fence, sequences=advanced, foreign_keys=created,
                 reverse_replication=reverse)
        self.current = None
        self._after(req, tables, fks)

    def _after(self, req: Request, tables: list[str], fks: list[ForeignKey],
               status: CutoverStatus = CutoverStatus.DONE) -> None:
        """PostgreSQL is the primary now: problems here are reported, not retried."""
        target, schema = self.drainer.target, self.settings.target_schema
        try:
            orphans: Any = validate_foreign_keys(target, schema, fks, self.settings.orphans)
            control.set_status(target, req.id, status, orphans=orphans)
            for table in tables:
                target.execute(sql.SQL("ANALYZE {}.{}").format(sql.Identifier(schema),
                                                               sql.Identifier(table)))
            extras = apply_extras(target, self.profile, schema, set(tables))
            control.set_status(target, req.id, status, extras=extras)
        except psycopg.Error as exc:
            metrics.errors.labels(kind="CutoverFinalize").inc()
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            log.error("the cutover is done, but a step after it failed: foreign key "
                      "validation, ANALYZE or the extras may be missing; finish them by hand "
                      "(docs/cutover.md)", error=detail)
            try:
                control.set_status(target, req.id, status,
                                   reason=f"after the cutover: {detail}")
            except psycopg.Error as note:
                log.error("could not record it either", error=str(note))
