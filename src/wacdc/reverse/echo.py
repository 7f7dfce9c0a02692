"""wacdc's own reverse transactions, known again when the forward stream reads them.

In a bridge window reverse replication writes MySQL's live tables, so its transactions
come back through the binlog. Each one opens with a write of its checkpoint row
(wacdc.reverse.apply), which carries the PostgreSQL snapshot it brought: the forward
stream applies nothing of such a transaction and tells PostgreSQL its changes came
back (wacdc.reverse.conflicts).
"""

from __future__ import annotations

from wacdc.errors import WacdcError
from wacdc.events import RowChange
from wacdc.reverse.apply import CHECKPOINT_TABLE as ECHO_TABLE


def echo_of(changes: list[RowChange]) -> str | None:
    """The PostgreSQL snapshot a reverse transaction carries in its checkpoint row (its
    first row change), or None: not one of wacdc's."""
    if not changes or changes[0].table != ECHO_TABLE:
        if any(c.table == ECHO_TABLE for c in changes):
            raise WacdcError(
                f"a transaction at {changes[0].position} writes {ECHO_TABLE} after other "
                "rows: only wacdc's reverse replication may write that table, and first. "
                "Find who else writes it")
        return None
    for change in reversed([c for c in changes if c.table == ECHO_TABLE]):
        if change.after is not None:
            value = change.after[change.names.index("snapshot")] \
                if "snapshot" in change.names else change.after[1]
            return value.decode() if isinstance(value, bytes) else str(value)
    raise WacdcError(f"a transaction at {changes[0].position} deletes {ECHO_TABLE}'s row "
                     "while reverse replication runs: find who does that")
