"""Replication lag as ops read it (DESIGN §5), kept by the streaming loop, read by scrapes.

`seconds()` is exactly 0 when everything the source has committed up to its current
binlog head is applied. Otherwise it is now minus the commit time of the oldest
transaction that still has to be applied: a transaction already read but not yet
committed to PostgreSQL, or, when the stream has not even read the next one yet, the
moment it was first seen behind the head (a lower bound that only lasts while events
are in flight). Transactions that touch no tracked table need no apply: they count as
applied as soon as they are read, so a busy untracked table does not hold lag up.

Binlog timestamps have whole-second resolution; a transaction's commit time is taken
as the latest moment consistent with both its timestamp and when wacdc received it,
so a live stream measures milliseconds and a backlog is off by less than a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from wacdc.events import BinlogPosition, file_key


def commit_estimate(binlog_timestamp: float, received_at: float) -> float:
    """Unix time of a commit: within [timestamp, timestamp + 1) and not after receipt."""
    return max(binlog_timestamp, min(received_at, binlog_timestamp + 0.999))


def binlog_distance(applied: BinlogPosition, head: BinlogPosition,
                    file_sizes: dict[str, int]) -> int:
    """Bytes from `applied` to `head`, across binlog files (sizes from SHOW BINARY LOGS)."""
    if applied >= head:
        return 0
    if applied.file == head.file:
        return head.pos - applied.pos
    low, high = file_key(applied.file), file_key(head.file)
    between = sum(size for name, size in file_sizes.items() if low < file_key(name) < high)
    rest = max(file_sizes.get(applied.file, applied.pos) - applied.pos, 0)
    return rest + between + head.pos


STALE_AFTER_S = 2.0  # no successful head poll for this long: the figures are not current


@dataclass
class LagTracker:
    """Written by the streaming loop, read by HTTP scrapes on another thread: readers take
    each field once into a local (attribute reads and writes are atomic in CPython)."""

    head: BinlogPosition | None = None  # the source's binlog head, as last polled
    applied: BinlogPosition | None = None  # everything up to here is in PostgreSQL
    oldest_pending: float | None = None  # commit time of the oldest read, unapplied change
    behind_since: float | None = None  # since when something unread has been waiting
    polled_at: float | None = None  # wall time of the last successful head poll
    file_sizes: dict[str, int] = field(default_factory=dict)

    def read(self, end: BinlogPosition, has_changes: bool, binlog_timestamp: float,
             received_at: float | None = None) -> None:
        """A transaction was read from the stream (and is not applied yet)."""
        if has_changes:
            if self.oldest_pending is None:
                received = time.time() if received_at is None else received_at
                self.oldest_pending = commit_estimate(binlog_timestamp, received)
        elif self.oldest_pending is None:
            self._advance(end)  # nothing to apply before it, nothing to apply in it

    def idle(self, position: BinlogPosition) -> None:
        """The stream stands at `position` with nothing new (a heartbeat)."""
        if self.oldest_pending is None:
            self._advance(position)

    def applied_up_to(self, end: BinlogPosition, last_commit: float | None = None) -> None:
        """A batch ending at `end` (last commit at `last_commit`) committed in PostgreSQL.

        Still behind the head (a backlog): the next unapplied transaction committed no
        earlier than the last applied one, and in a backlog right after it, so lag runs
        on from there instead of dropping to 0 until the next one is read."""
        head = self.head
        if last_commit is not None and head is not None and end < head:
            self.behind_since = last_commit
        self.oldest_pending = None
        self._advance(end)

    def polled(self, head: BinlogPosition, file_sizes: dict[str, int] | None = None,
               now: float | None = None) -> None:
        now = time.time() if now is None else now
        if file_sizes is not None:
            self.file_sizes = file_sizes
        applied = self.applied
        if applied is not None and applied < head and self.oldest_pending is None:
            if self.behind_since is None:
                self.behind_since = now
        elif self.oldest_pending is not None or applied is None or applied >= head:
            self.behind_since = None
        self.head = head
        self.polled_at = now

    def _advance(self, position: BinlogPosition) -> None:
        if self.applied is None or position > self.applied:
            self.applied = position
        if self.head is not None and self.applied >= self.head:
            self.behind_since = None

    def stale(self, now: float | None = None) -> bool:
        """The head has not been polled for a while: a dead source connection, a loop
        stuck applying. Lag then counts at least from the last good poll."""
        polled = self.polled_at
        now = time.time() if now is None else now
        return polled is not None and now - polled > STALE_AFTER_S

    def caught_up(self, now: float | None = None) -> bool:
        applied, head = self.applied, self.head
        return (self.oldest_pending is None and applied is not None and head is not None
                and applied >= head and not self.stale(now))

    def seconds(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        pending, behind, polled = self.oldest_pending, self.behind_since, self.polled_at
        stale = now - polled if polled is not None and now - polled > STALE_AFTER_S else 0.0
        if pending is not None:
            return max(now - pending, stale, 0.0)
        if self.caught_up(now):
            return 0.0
        return max(now - behind if behind is not None else 0.0, stale, 0.0)

    def bytes(self) -> int:
        applied, head = self.applied, self.head
        if applied is None or head is None:
            return 0
        return binlog_distance(applied, head, self.file_sizes)
