"""The freeze guard: the source's write lock never outlives WACDC_CUTOVER_MAX_FREEZE."""

from __future__ import annotations

import threading
from enum import Enum

import pymysql

from wacdc.log import get_logger

log = get_logger("wacdc.cutover")


class FreezeState(Enum):
    FROZEN = "frozen"  # the source tables are locked
    EXPIRED = "expired"  # the limit passed first: unlocked, the cutover aborts
    ABORTED = "aborted"  # the cutover gave up: unlocked
    COMMITTED = "committed"  # past the point of no return: the cutover unlocks itself


class FreezeGuard:
    """Unlocks the source and aborts once the freeze runs past its limit — unless the
    cutover already passed its point of no return (`commit`)."""

    def __init__(self, conn: pymysql.connections.Connection, limit_s: float) -> None:
        self.conn = conn
        self.mutex = threading.Lock()
        self.state = FreezeState.FROZEN
        self.timer = threading.Timer(limit_s, self.expire)
        self.timer.daemon = True
        self.timer.start()

    def expire(self) -> None:
        with self.mutex:
            if self.state is FreezeState.FROZEN:
                self._unlock()
                self.state = FreezeState.EXPIRED
                log.warning("freeze limit reached: source unlocked, cutover aborted")

    def abort(self) -> None:
        with self.mutex:
            self.timer.cancel()
            if self.state is FreezeState.FROZEN:
                self._unlock()
                self.state = FreezeState.ABORTED

    def commit(self) -> bool:
        with self.mutex:
            self.timer.cancel()
            if self.state is not FreezeState.FROZEN:
                return False
            self.state = FreezeState.COMMITTED
            return True

    @property
    def expired(self) -> bool:
        return self.state is FreezeState.EXPIRED

    def _unlock(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("UNLOCK TABLES")
