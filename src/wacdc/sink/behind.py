"""Batches applied one behind the stream: PostgreSQL commits a batch while the next is read.

Applying a batch is mostly waiting for PostgreSQL (its upserts, its commit); the stream
meanwhile has the next batch to read and decode. `apply(batch, behind=True)` hands the
batch to a thread of its own and returns; the next apply, and everything else that needs
the applying connection (`settle()`), first waits for it and raises its error. So at most
one batch is in flight, batches commit in source order, each with its checkpoint in the
same commit (wacdc.sink.apply), and nothing counts as applied before its commit returned.
psycopg releases the GIL while it waits on the socket: that wait is what overlaps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from wacdc.events import Transaction
from wacdc.sink.apply import Applier, BatchStats

Committed = Callable[[Sequence[Transaction]], None]


class ApplyBehind:
    """`Applier` with the latest batch optionally still committing (see the module)."""

    def __init__(self, applier: Applier, committed: Committed, *, enabled: bool) -> None:
        self.applier = applier
        self.committed = committed  # called in the caller's thread once a batch committed
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="wacdc-apply") \
            if enabled else None
        self._in_flight: tuple[Future[BatchStats], Sequence[Transaction]] | None = None

    def apply(self, batch: Sequence[Transaction], *, behind: bool) -> None:
        """Apply `batch` after the one in flight; with `behind`, return before it commits."""
        self.settle()
        if batch[0].discard_pieces:  # the source rolled back what its pieces applied
            self.applier.abandon()
        # A bridge window's batches resolve conflicts with reverse replication, which runs
        # between items: they stay in step with it.
        if behind and self._thread is not None and self.applier.resolver is None:
            self._in_flight = (self._thread.submit(self.applier.apply, batch), batch)
            return
        self.applier.apply(batch)
        self.committed(batch)

    def settle(self) -> None:
        """Wait for the batch in flight to commit; its error (nothing of it applied) here."""
        if self._in_flight is None:
            return
        future, batch = self._in_flight
        error = future.exception()  # waits; interrupted (a second signal), still in flight
        self._in_flight = None
        if error is not None:
            raise error
        self.committed(batch)

    def close(self) -> None:
        """Settle, then end the thread (it is idle by then, whatever settle raised)."""
        try:
            self.settle()
        finally:
            if self._thread is not None:
                self._thread.shutdown(wait=True)
