"""Lag arithmetic (pure): what wacdc_lag_seconds and wacdc_lag_bytes report."""

from __future__ import annotations

from wacdc.events import BinlogPosition as P
from wacdc.observe.lag import LagTracker, binlog_distance, commit_estimate


def test_commit_time_is_bounded_by_timestamp_and_receipt() -> None:
    assert commit_estimate(100.0, 100.004) == 100.004  # live: received moments after commit
    assert commit_estimate(100.0, 250.0) == 100.999  # backlog: within its binlog second
    assert commit_estimate(100.0, 99.5) == 100.0  # clocks apart: never before the timestamp


def test_distance_across_binlog_files() -> None:
    sizes = {"bin.000001": 1000, "bin.000002": 5000, "bin.000003": 700}
    assert binlog_distance(P("bin.000001", 400), P("bin.000001", 900), sizes) == 500
    assert binlog_distance(P("bin.000001", 400), P("bin.000003", 300), sizes) == 600 + 5000 + 300
    assert binlog_distance(P("bin.000003", 300), P("bin.000001", 400), sizes) == 0


def test_zero_exactly_at_the_head_and_oldest_unapplied_otherwise() -> None:
    lag = LagTracker()
    lag.applied_up_to(P("b.1", 100))
    lag.polled(P("b.1", 100), now=1000.0)
    assert lag.caught_up(now=1000.0) and lag.seconds(now=1000.0) == 0.0
    lag.read(P("b.1", 200), True, 990.0, received_at=990.5)  # read, not yet applied
    lag.read(P("b.1", 300), True, 995.0, received_at=995.2)
    assert lag.seconds(now=1000.0) == 9.5  # the oldest unapplied, not the newest
    lag.applied_up_to(P("b.1", 300))
    lag.polled(P("b.1", 300), now=1000.0)
    assert lag.seconds(now=1001.0) == 0.0 and lag.bytes() == 0


def test_untracked_transactions_count_as_applied_when_read() -> None:
    lag = LagTracker()
    lag.applied_up_to(P("b.1", 100))
    lag.polled(P("b.1", 500), now=10.0)  # behind: the source wrote something
    assert lag.seconds(now=10.5) == 0.5 and lag.bytes() == 400
    lag.read(P("b.1", 500), False, 10.0, received_at=10.6)  # only untracked tables
    assert lag.caught_up(now=11.0) and lag.seconds(now=11.0) == 0.0


def test_untracked_after_a_pending_change_does_not_hide_it() -> None:
    lag = LagTracker()
    lag.applied_up_to(P("b.1", 100))
    lag.read(P("b.1", 200), True, 50.0, received_at=50.1)
    lag.read(P("b.1", 300), False, 51.0, received_at=51.1)
    lag.polled(P("b.1", 300), now=52.0)
    assert not lag.caught_up(now=53.0) and abs(lag.seconds(now=53.0) - 2.9) < 1e-9
    assert lag.bytes() == 200  # from the last applied position


def test_heartbeat_at_the_head_means_caught_up() -> None:
    lag = LagTracker()
    lag.polled(P("b.2", 40), now=0.0)
    lag.idle(P("b.2", 40))
    assert lag.caught_up(now=1.0) and lag.seconds(now=1.0) == 0.0
    # No successful poll for a while (source connection down): not current any more.
    assert not lag.caught_up(now=100.0) and lag.seconds(now=100.0) == 100.0


def test_lag_keeps_running_between_batches_of_a_backlog() -> None:
    lag = LagTracker()
    lag.applied_up_to(P("b.1", 100))
    lag.polled(P("b.1", 9000), now=50.0)  # far behind
    lag.read(P("b.1", 200), True, 20.0, received_at=50.1)
    lag.applied_up_to(P("b.1", 200), last_commit=20.0)  # one batch of the backlog done
    assert abs(lag.seconds(now=50.2) - 30.2) < 1e-9  # not 0 until the next transaction is read
