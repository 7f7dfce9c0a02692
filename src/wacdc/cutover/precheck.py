"""The pre-freeze checks: what would make a cutover fail after its fence, found before
the freeze, on a thread and PostgreSQL connection of their own so that streaming (and
with it `/healthz` and the lag) goes on while they run."""

from __future__ import annotations

import threading

import psycopg
from psycopg import sql

from wacdc.config import Settings
from wacdc.cutover.finalize import add_foreign_keys, describe_orphans, find_orphans
from wacdc.errors import ConnectError
from wacdc.log import redact
from wacdc.reverse.readiness import problems as reverse_problems
from wacdc.schema.profile import ForeignKey
from wacdc.sink.connection import connect_target
from wacdc.source.catalog import RETIRED_SUFFIX

# The rehearsal locks the tables of its foreign keys while the stream applies to them.
# It takes them all at once and never waits (NOWAIT): a lock it waited for while holding
# others could make the applying connection a deadlock victim. Not free: run it again at
# the next tick. The orphan queries' own statements wait at most this long.
LOCK_TIMEOUT = "1s"


def names_problem(settings: Settings, tables: list[str]) -> str | None:
    """Table names the fence's suffix would push past MySQL's 64 characters."""
    too_long = [t for t in tables if len(t + RETIRED_SUFFIX) > 64]
    if settings.fence == "rename" and too_long:
        return (f"table name(s) {', '.join(too_long)} too long for the fence's "
                f"{RETIRED_SUFFIX} suffix (MySQL allows 64 characters); use "
                "WACDC_FENCE=none and stop the app yourself")
    return None


def check(conn: psycopg.Connection, settings: Settings, fks: list[ForeignKey],
          tables: list[str]) -> str | None:
    """The foreign keys PostgreSQL would reject, orphan rows that refuse the cutover, and
    a way back (reverse replication) that could not be set up."""
    if settings.reverse and settings.fence == "rename":
        cannot = reverse_problems(settings, conn, tables)
        if cannot:
            return ("the way back could not be set up (reverse replication): "
                    + "; ".join(cannot) + "; grant it, or set WACDC_REVERSE=0 to cut over "
                    "without it (docs/rollback.md)")
    try:  # rehearse the finalize DDL: a foreign key PostgreSQL rejects shows up now
        with conn.transaction(force_rollback=True):
            _lock_all(conn, settings.target_schema, fks)
            add_foreign_keys(conn, settings.target_schema, fks)
    except psycopg.errors.Error as exc:
        if isinstance(exc, psycopg.OperationalError):
            raise
        return (f"a foreign key of the profile cannot be created in PostgreSQL: "
                f"{str(exc).strip().splitlines()[0]}; fix the profile or the target")
    if settings.orphans == "fail" or any(
            fk.on_delete not in ("SET NULL", "CASCADE") for fk in fks):
        orphans = find_orphans(conn, settings.target_schema, fks)
        blocking = {name: o for name, o in orphans.items()
                    if settings.orphans == "fail" or not o["action"]}
        if blocking:
            return "orphan rows break foreign keys: " + describe_orphans(blocking)
    return None


def _lock_all(conn: psycopg.Connection, schema: str, fks: list[ForeignKey]) -> None:
    """Every table the rehearsal alters, in one statement that does not wait."""
    tables = sorted({fk.table for fk in fks} | {fk.references for fk in fks})
    if tables:
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE NOWAIT").format(
            sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables)))


class Precheck(threading.Thread):
    """`check` for one request on its own connection; the controller collects it."""

    def __init__(self, settings: Settings, fks: list[ForeignKey], cutover_id: int,
                 tables: list[str]) -> None:
        super().__init__(name="wacdc-cutover-precheck", daemon=True)
        self.settings, self.fks, self.cutover_id = settings, fks, cutover_id
        self.tables = tables
        self.problem: str | None = None
        # Why the checks could not run this time (a lock not free, their own connection
        # failed): the controller runs them again at a later tick; streaming goes on.
        self.busy: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with connect_target(self.settings.target(), autocommit=True) as conn:
                conn.execute("SELECT set_config('lock_timeout', %s, false)", (LOCK_TIMEOUT,))
                self.problem = check(conn, self.settings, self.fks, self.tables)
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            self.busy = "a table lock was not free"
        except (ConnectError, psycopg.OperationalError) as exc:
            self.busy = f"their connection failed: {redact(str(exc)).strip().splitlines()[0]}"
        except BaseException as exc:  # noqa: BLE001 - re-raised on the streaming thread
            self.error = exc

    def outcome(self) -> str | None:
        """The problem found (None: none); the check's own failure is raised here."""
        if self.error is not None:
            raise self.error
        return self.problem
