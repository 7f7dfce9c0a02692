"""A cutover run under a steady writer, and the latest cutover row."""


from __future__ import annotations

import threading
import time

import pymysql

from tests.support.daemon import daemon
from tests.support.harness import SourceDb, TargetDb, run_cli

NO_SUCH_TABLE = 1146


class Writer(threading.Thread):
    """The app: inserts customers at a steady rate; keeps what MySQL acknowledged."""

    def __init__(self, db: SourceDb, rate: float = 100) -> None:
        super().__init__()
        self.db, self.rate = db, rate
        self.stop = threading.Event()
        self.acked: list[str] = []
        self.calls: list[tuple[float, float]] = []  # (started, seconds) per statement
        self.error: pymysql.err.MySQLError | None = None
        self.failed_after = 0.0  # how long the statement that failed (the fence) waited

    def run(self) -> None:
        with self.db.connect() as conn, conn.cursor() as cur:
            n, started = 0, time.monotonic()
            while not self.stop.is_set():
                key = f"app-{n:06d}"
                t0 = time.monotonic()
                try:
                    cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, "
                                "updatedAt) VALUES (%s, 'App', %s, NOW(3))",
                                (key, f"+3{n:09d}"))
                except pymysql.err.MySQLError as exc:
                    self.error, self.failed_after = exc, time.monotonic() - t0
                    return
                self.calls.append((t0, time.monotonic() - t0))
                self.acked.append(key)
                n += 1
                ahead = started + n / self.rate - time.monotonic()
                if ahead > 0:
                    self.stop.wait(ahead)


def _latest(target: TargetDb) -> dict:
    with target.connect() as pg:
        row = pg.execute("SELECT status, reason, freeze_seconds, orphans, counts "
                         "FROM wacdc.cutover ORDER BY id DESC LIMIT 1").fetchone()
    assert row is not None
    return dict(zip(("status", "reason", "freeze_seconds", "orphans", "counts"), row,
                    strict=True))


def cut_over_under_a_writer(source_db: SourceDb, target_db: TargetDb, env: dict[str, str],
                            rate: float, rows_first: int) -> tuple[Writer, dict]:
    """`wacdc run` streaming while the app writes; `wacdc cutover --wait` once `rows_first`
    writes flowed; the writer stops at its first refused write (the fence). Returns the
    writer and the cutover's row."""
    with daemon(env) as d:
        writer = Writer(source_db, rate=rate)
        writer.start()
        try:
            d.wait_for("the writer's rows to flow", lambda: len(writer.acked) > rows_first)
            result = run_cli("cutover", "--wait", env=env, timeout=120)
            assert result.code == 0, result.output
            writer.join(timeout=15)  # it stops at its first failed write: the fence
        finally:
            writer.stop.set()
            writer.join()
        d.proc.wait(timeout=30)
        assert d.proc.returncode == 0, d.log.text[-3000:]
    assert writer.error is not None and writer.error.args[0] == NO_SUCH_TABLE, writer.error
    return writer, _latest(target_db)
