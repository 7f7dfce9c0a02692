"""Lag is never 0 while behind: during the snapshot, the lock wait and at start.

During the snapshot the binlog is not read yet; `wacdc_lag_bytes` is then the distance
from where streaming will start to the source head, `wacdc_lag_seconds` the age of the
oldest change waiting (counted from the read view), and `wacdc_lag_known` says when
the figures cannot be known. Labelled series of the configured tables start at 0.
"""

from __future__ import annotations

import threading

from tests.support.daemon import Daemon, _writes, daemon
from tests.support.harness import SourceDb, TargetDb, fill_whatsapp, wacdc_env
from tests.support.workload import TABLES


def test_lag_during_a_long_snapshot_is_the_backlog_not_zero(source_db: SourceDb,
                                                            target_db: TargetDb) -> None:
    fill_whatsapp(source_db, counts={"WhatsAppCustomer": 200, "WhatsAppMessage": 12_000})
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES),
                    WACDC_SNAPSHOT_CHUNK_ROWS="20")
    stop = threading.Event()
    d = Daemon(env)
    try:
        d.wait_for("the snapshot", lambda: d.status()["phase"] == "snapshot")
        writer = _writes(source_db, stop, lambda cur, n: cur.execute(
            "UPDATE WhatsAppCustomer SET firstName = %s ORDER BY id LIMIT 1", (f"w{n}",)),
            rate=50)
        try:
            seen: list[tuple[float, float, float]] = []

            def behind() -> bool:
                if d.status()["phase"] != "snapshot":
                    raise AssertionError("the snapshot ended before the lag was seen: "
                                         "make it longer")
                figures = (d.gauge("wacdc_lag_known"), d.gauge("wacdc_lag_seconds"),
                           d.gauge("wacdc_lag_bytes"))
                seen.append(figures)
                return figures[0] == 1 and figures[1] > 1.0 and figures[2] > 0

            d.wait_for("lag seconds and bytes during the snapshot", behind, timeout=120)
            # `wacdc status` (from PostgreSQL) shows it too.
            with target_db.connect() as pg:
                lag_s, lag_b = pg.execute("SELECT lag_seconds, lag_bytes FROM wacdc.state"
                                          ).fetchone()
            assert lag_s > 0 and lag_b > 0
        finally:
            stop.set()
            writer.join()
        d.wait_for("streaming with lag 0", lambda: d.status()["phase"] == "streaming"
                   and d.gauge("wacdc_lag_seconds") == 0 and d.gauge("wacdc_lag_bytes") == 0,
                   timeout=300)
        assert d.gauge("wacdc_lag_known") == 1
    finally:
        d.stop()


def test_every_series_starts_at_zero_and_lag_is_unknown_while_waiting(
        source_db: SourceDb, target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES=",".join(TABLES))
    with daemon(env) as first:
        samples = first.samples()
        for table in TABLES:
            for op in ("insert", "update", "delete"):
                key = ("wacdc_rows_applied_total", (("op", op), ("table", table)))
                assert samples.get(key) == 0, (key, samples.get(key))
            assert samples.get(("wacdc_snapshot_rows_total", (("table", table),))) is not None
        for side in ("source", "target"):
            assert samples.get(("wacdc_reconnects_total", (("side", side),))) == 0
        assert samples[("wacdc_lag_known", ())] == 1
        second = Daemon(env)
        try:
            second.wait_for("waiting", lambda: second.status()["phase"] == "waiting_for_lock")
            assert second.gauge("wacdc_lag_known") == 0  # the other instance knows
        finally:
            second.stop()
