"""A bridge window: cut over, MySQL not yet fenced, both stores replicating each other.

`wacdc cutover --bridge` freezes, drains and finalizes as a cutover does, then leaves
MySQL writable while the app's instances move to PostgreSQL (a Vercel or Railway
deploy). Meanwhile the forward stream goes on applying what old instances still write
to MySQL, and reverse replication (wacdc.reverse) applies what new ones write to
PostgreSQL to MySQL's live tables, so both generations read current data.

No echo either way: PostgreSQL's capture skips wacdc's sessions, and each reverse
transaction opens with its checkpoint row, by which the forward stream knows it for an
echo (wacdc.stream). A row changed on both sides before either change reached the other
is a conflict: PostgreSQL wins (wacdc.reverse.conflicts).

The window closes (MySQL fenced as a cutover fences it; reverse replication goes on to
the retired tables) on `wacdc cutover --close-bridge`, after WACDC_BRIDGE_QUIET seconds
without an app write reaching MySQL, or at the window's limit (--bridge-max).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Protocol

import psycopg
import pymysql

from wacdc.config import Settings
from wacdc.cutover import control
from wacdc.cutover.control import CutoverStatus
from wacdc.cutover.freeze import FreezeGuard
from wacdc.errors import WacdcError
from wacdc.events import BinlogPosition, Statement, StreamItem
from wacdc.log import get_logger
from wacdc.observe import metrics
from wacdc.reverse.apply import TRANSIENT
from wacdc.reverse.capture import primary_key
from wacdc.reverse.conflicts import ConflictResolver, bridge_off, bridge_on
from wacdc.reverse.worker import ReverseSession
from wacdc.runtime import BridgeFigures, DaemonStatus, Phase
from wacdc.sink import state
from wacdc.sink.apply import Resolver
from wacdc.sink.connection import connect_target
from wacdc.source.catalog import RETIRED_SUFFIX
from wacdc.source.connection import connect
from wacdc.source.position import current_position
from wacdc.source.sql import quote_ident

log = get_logger("wacdc.cutover")
FIGURES_EVERY_S = 1.0  # the window's figures into its control row (`wacdc status`)
RETRY_CLOSE_S = 5.0  # after a close that could not freeze in time
FENCE_WAIT_S = 30


class BridgeDrainer(Protocol):
    """What the cutover and its bridge window need of the stream (wacdc.stream's
    StreamSession has it): its drains never poll the source."""

    @property
    def target(self) -> psycopg.Connection: ...  # the applying connection (the writer's)

    @property
    def control(self) -> pymysql.connections.Connection: ...  # the source, for its head

    @property
    def tables(self) -> list[str]: ...

    @property
    def applied(self) -> BinlogPosition: ...

    def drain_to(self, head: BinlogPosition, give_up: Callable[[], bool]) -> bool: ...

    def drain_until(self, seen: Callable[[StreamItem], bool],
                    timeout: float | None) -> bool: ...

    def bridge(self, resolver: Resolver | None) -> None: ...


def is_fence(item: StreamItem) -> bool:
    """The fence's `RENAME TABLE t TO t__wacdc_retired, ...` read from the binlog."""
    return isinstance(item, Statement) and RETIRED_SUFFIX in item.query


def bridge_problem(settings: Settings, drainer: BridgeDrainer) -> str | None:
    """Why a bridge window cannot open here, or None."""
    if not settings.reverse or settings.fence != "rename":
        return ("a bridge window needs reverse replication and the rename fence "
                "(WACDC_REVERSE=1, WACDC_FENCE=rename); cut over without --bridge")
    tables = drainer.tables
    with drainer.control.cursor() as cur:
        cur.execute("SELECT table_name, column_name FROM information_schema.columns WHERE "
                    "table_schema = DATABASE() AND extra LIKE '%%auto_increment%%' AND "
                    "table_name IN (" + ", ".join(["%s"] * len(tables)) + ")", tables)
        counters = [f"{t}.{c}" for t, c in cur.fetchall()]
    if counters:
        return ("a bridge window would let MySQL and PostgreSQL hand out the same "
                f"AUTO_INCREMENT ids ({', '.join(sorted(counters))}): each side's insert "
                "would overwrite the other's. Cut over without --bridge")
    keyless = [t for t in tables if not primary_key(drainer.target, settings.target_schema, t)]
    if keyless:
        return (f"a bridge window resolves conflicts by primary key, and these tables have "
                f"none in PostgreSQL: {', '.join(keyless)}. Cut over without --bridge")
    return None


class BridgeWindow:
    """The open window: reverse steps and the close rules on each poll of the stream."""

    def __init__(self, settings: Settings, drainer: BridgeDrainer, status: DaemonStatus,
                 cutover_id: int, bridge_max: float, opened_at: float,
                 resumed: dict | None = None) -> None:
        self.settings, self.drainer, self.status = settings, drainer, status
        self.cutover_id = cutover_id
        status.bridge = figures = BridgeFigures(opened_at, opened_at + bridge_max,
                                                settings.bridge_quiet)
        if resumed is not None:
            # What MySQL took while no daemon ran is read only now: its quiet period
            # starts again from here.
            figures.last_mysql_write = time.time()
            figures.mysql_writes = int(resumed.get("mysql_writes", 0))
            figures.conflicts = int(resumed.get("conflicts", 0))
        self.figures_at = 0.0
        self.close_after = 0.0  # monotonic: no close attempt before (a failed freeze)
        resolve_conflicts(settings, drainer, status)
        # Reverse replication on connections of its own: the stream's may be inside a
        # transaction applied in pieces.
        self.log_conn = connect_target(settings.target(), autocommit=True)
        self.mysql = connect(settings.source(), autocommit=False)
        self.reverse = ReverseSession(settings, self.log_conn, self.mysql, drainer.tables,
                                      status, bridge=True)
        status.set_phase(Phase.BRIDGE, drainer.target)
        metrics.bridge_open.set(1)

    def poll(self) -> bool:
        """One reverse step, or the close when its time has come; True once closed."""
        why = self._close_reason()
        if why is not None and time.monotonic() >= self.close_after and self._close(why):
            return True
        try:
            self.reverse.step()
        except pymysql.err.OperationalError as exc:
            if not exc.args or exc.args[0] not in TRANSIENT:
                raise
            # An app transaction in MySQL holds a row: nothing of the batch was applied.
            log.warning("bridge: reverse batch waited on a MySQL lock; tried again at the "
                        "next poll", error=str(exc.args[-1]))
        self._record()
        return False

    def _close_reason(self) -> str | None:
        figures, now = self.status.bridge, time.time()
        if now >= figures.closes_by:
            return "its limit (--bridge-max) was reached"
        opened = control.open_bridge(self.drainer.target)
        if opened is not None and opened["close_requested"] is not None:
            return "the operator closed it (wacdc cutover --close-bridge)"
        last = figures.last_mysql_write or figures.opened_at
        if now - last >= figures.quiet_s:
            return f"no app write reached MySQL for {figures.quiet_s:.0f} s"
        return None

    def _record(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.figures_at < FIGURES_EVERY_S:
            return
        self.figures_at = now
        doc = self.status.bridge.document(self.status.reverse)
        doc["opened_epoch"] = self.status.bridge.opened_at
        self.drainer.target.execute(
            "UPDATE wacdc.cutover SET bridge = %s WHERE id = %s",
            (json.dumps(doc), self.cutover_id))

    def _close(self, why: str) -> bool:
        """Freeze MySQL, apply what it has, fence it; False: not in time (tried later)."""
        log.info("bridge window closing: freezing MySQL to fence it", cutover=self.cutover_id,
                 reason=why)
        limit = self.settings.cutover_max_freeze
        freeze = connect(self.settings.source(), read_timeout=limit + 10)
        try:
            started = time.monotonic()
            with freeze.cursor() as cur:
                cur.execute("SET SESSION lock_wait_timeout = %s", (max(1, int(limit)),))
                try:
                    cur.execute("LOCK TABLES " + ", ".join(
                        f"{quote_ident(t)} READ" for t in self.drainer.tables))
                except pymysql.err.OperationalError as exc:
                    return self._not_now(f"could not lock the MySQL tables ({exc.args[-1]})")
            guard = FreezeGuard(freeze, limit)
            head = current_position(self.drainer.control)
            if not self.drainer.drain_to(head, lambda: guard.expired) or not guard.commit():
                guard.abort()
                return self._not_now(f"the freeze reached its limit ({limit}s) before "
                                     f"MySQL's last writes were applied")
            if not self._fence(freeze, limit - (time.monotonic() - started)):
                return False
        finally:
            freeze.close()
        self._closed(why, time.monotonic() - started)
        return True

    def _not_now(self, reason: str) -> bool:
        self.close_after = time.monotonic() + RETRY_CLOSE_S
        log.warning("bridge window: not closed yet; MySQL unlocked, trying again",
                    reason=reason, retry_in_s=RETRY_CLOSE_S)
        return False

    def _fence(self, freeze: pymysql.connections.Connection, left_s: float) -> bool:
        tables = self.drainer.tables
        with freeze.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = %s", (max(1, int(left_s + 0.999)),))
            cur.execute("UNLOCK TABLES")
            try:
                cur.execute("RENAME TABLE " + ", ".join(
                    f"{quote_ident(t)} TO {quote_ident(t + RETIRED_SUFFIX)}" for t in tables))
            except pymysql.err.OperationalError as exc:
                return self._not_now(f"the fence could not rename the tables "
                                     f"({exc.args[-1]}): an app transaction held them")
        if not self.drainer.drain_until(is_fence, FENCE_WAIT_S):
            raise WacdcError("the bridge window's fence (RENAME TABLE ... __wacdc_retired) did "
                             f"not appear in the binlog within {FENCE_WAIT_S} s; run `wacdc "
                             "run` again to finish, then `wacdc verify` (docs/cutover.md)")
        return True

    def _closed(self, why: str, freeze_s: float) -> None:
        self._record(force=True)
        record_closed(self.drainer, self.status, self.cutover_id, why, freeze_s)
        self.close()

    def close(self) -> None:
        self.log_conn.close()
        self.mysql.close()


def resolve_conflicts(settings: Settings, drainer: BridgeDrainer,
                      status: DaemonStatus) -> None:
    """The forward stream's batches resolve a bridge window's conflicts from now on."""
    bridge_on(drainer.target)
    drainer.bridge(ConflictResolver(settings.target_schema, status.bridge))


def record_closed(drainer: BridgeDrainer, status: DaemonStatus, cutover_id: int, why: str,
                  freeze_s: float | None = None) -> None:
    """MySQL is fenced and everything before the fence applied: the cutover is done."""
    target, final = drainer.target, drainer.applied
    drainer.bridge(None)
    bridge_off(target)
    with target.transaction():
        control.set_status(target, cutover_id, CutoverStatus.DONE, final_file=final.file,
                           final_pos=final.pos, reason=f"bridge window closed: {why}")
        state.set_phase(target, Phase.DONE)
    status.set_phase(Phase.DONE)
    metrics.bridge_open.set(0)
    figures = status.bridge
    log.info("bridge window closed: MySQL fenced; reverse replication goes on to the "
             "retired tables", cutover=cutover_id, reason=why,
             freeze_s=None if freeze_s is None else round(freeze_s, 3),
             mysql_writes=figures.mysql_writes, conflicts=figures.conflicts,
             final_position=str(final))
