"""wacdc.sink.behind: one batch in flight at most, committed in order, errors at settle.

The applier here stands in for PostgreSQL's timing only (it blocks until released); what
PostgreSQL does with the batches is tested through the daemon in test_streaming."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, cast

import pytest

from wacdc.events import BinlogPosition, Transaction
from wacdc.sink.apply import Applier
from wacdc.sink.behind import ApplyBehind


class SlowApplier:
    """Applies a batch once the test releases it; records the order and the threads."""

    def __init__(self) -> None:
        self.release = threading.Semaphore(0)
        self.started = threading.Semaphore(0)
        self.applied: list[int] = []
        self.threads: set[str] = set()
        self.resolver: Any = None
        self.fail_at: int | None = None
        self.events: list[str] = []
        self.in_flight = 0
        self.overlapped = False

    def apply(self, batch: Sequence[Transaction]) -> None:
        self.in_flight += 1
        self.overlapped |= self.in_flight > 1
        self.threads.add(threading.current_thread().name)
        self.started.release()
        try:
            assert self.release.acquire(timeout=10), "never released"
            if batch[-1].end.pos == self.fail_at:
                raise RuntimeError(f"refused the batch ending at {batch[-1].end}")
            self.applied.append(batch[-1].end.pos)
            self.events.append(f"apply {batch[-1].end.pos}")
        finally:
            self.in_flight -= 1

    def abandon(self) -> None:
        self.events.append("abandon")


def _batch(pos: int, discard_pieces: bool = False) -> list[Transaction]:
    return [Transaction(BinlogPosition("binlog.000001", pos), 0.0, [],
                        discard_pieces=discard_pieces)]


def _behind(applier: SlowApplier, committed: list[int], enabled: bool = True) -> ApplyBehind:
    return ApplyBehind(cast(Applier, applier), lambda b: committed.append(b[-1].end.pos),
                       enabled=enabled)


def test_a_batch_behind_returns_before_its_commit_and_counts_only_once_settled() -> None:
    applier, committed = SlowApplier(), []
    behind = _behind(applier, committed)
    behind.apply(_batch(100), behind=True)  # returns while the applier is blocked
    assert applier.started.acquire(timeout=10)
    assert committed == [] and applier.applied == []
    applier.release.release()
    behind.settle()
    assert applier.applied == [100] and committed == [100]
    assert applier.threads == {"wacdc-apply_0"}
    behind.close()


def test_the_next_batch_waits_for_the_one_in_flight_and_they_commit_in_order() -> None:
    applier, committed = SlowApplier(), []
    behind = _behind(applier, committed)
    for _ in range(5):
        applier.release.release()
    for pos in (100, 200, 300, 400):
        behind.apply(_batch(pos), behind=True)
    behind.apply(_batch(500), behind=False)  # the caller's thread, after the rest
    assert applier.applied == [100, 200, 300, 400, 500]
    assert committed == [100, 200, 300, 400, 500]
    assert not applier.overlapped
    assert "MainThread" in applier.threads
    behind.close()


def test_an_error_in_flight_is_raised_by_the_next_use_and_nothing_after_it_applies() -> None:
    applier, committed = SlowApplier(), []
    applier.fail_at = 200
    behind = _behind(applier, committed)
    for _ in range(3):
        applier.release.release()
    behind.apply(_batch(100), behind=True)
    behind.apply(_batch(200), behind=True)
    with pytest.raises(RuntimeError, match=r"ending at binlog\.000001:200"):
        behind.apply(_batch(300), behind=True)
    assert applier.applied == [100] and committed == [100]
    behind.close()  # nothing left in flight: closes quietly
    assert applier.applied == [100]


def test_close_raises_the_error_of_the_batch_in_flight() -> None:
    applier, committed = SlowApplier(), []
    applier.fail_at = 100
    behind = _behind(applier, committed)
    applier.release.release()
    behind.apply(_batch(100), behind=True)
    with pytest.raises(RuntimeError, match=r"ending at binlog\.000001:100"):
        behind.close()
    assert committed == []


def test_off_or_in_a_bridge_window_every_batch_commits_before_apply_returns() -> None:
    for enabled, resolver in ((False, None), (True, object())):
        applier, committed = SlowApplier(), []
        applier.resolver = resolver
        behind = _behind(applier, committed, enabled=enabled)
        applier.release.release()
        behind.apply(_batch(100), behind=True)
        assert committed == [100] and applier.threads == {"MainThread"}
        behind.close()


def test_a_batch_the_source_rolled_back_abandons_the_pieces_after_the_one_in_flight() -> None:
    applier, committed = SlowApplier(), []
    behind = _behind(applier, committed)
    behind.apply(_batch(100), behind=True)
    assert applier.started.acquire(timeout=10)  # in flight, blocked
    applier.release.release()
    applier.release.release()
    behind.apply(_batch(200, discard_pieces=True), behind=False)
    assert applier.events == ["apply 100", "abandon", "apply 200"]
    behind.close()
