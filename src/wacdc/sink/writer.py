"""One writer per target, enforced where it writes (DESIGN §3).

The advisory lock says who should write; it lives on one connection and dies with it
(an idle timeout, a proxy, `pg_terminate_backend`) while this instance's other
connections go on. So each lock holder also takes a new *epoch* in `wacdc.writer`
and every connection it writes with carries that epoch (`wacdc.writer_epoch`). A
trigger on wacdc's progress rows (checkpoint, phase, snapshot progress), and an
explicit `wacdc.assert_writer()` in writes that touch no progress row, compare it
with the current epoch while holding the epoch row `FOR SHARE`: a takeover's epoch
bump waits for the commits already proved, and every later commit of the old
instance fails. Data and the progress that covers it commit together, so the old
instance's last unproved transaction rolls back whole.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import psycopg

from wacdc.errors import ConfigError, WacdcError
from wacdc.log import get_logger
from wacdc.sink.state import state_sql as _q

log = get_logger("wacdc.writer")
NOT_THE_WRITER = "WC001"  # SQLSTATE raised by wacdc.assert_writer()


class LostWriterLock(WacdcError):
    """Another instance took over as the writer: this one must not write again."""


class DeploymentClash(ConfigError):
    """The target database's wacdc state belongs to another deployment."""


@dataclass(frozen=True)
class WriterLease:
    epoch: int
    holder: str  # host:pid, for the messages of the instance that loses it


def lock_key(database: str) -> str:
    """The advisory lock (hashtext of this): one writer per target database, because
    wacdc's state lives in one `wacdc` schema per database (see docs/operations.md)."""
    return f"wacdc:writer:{database}"


def holder_name() -> str:
    """This daemon as the lock, the logs and /status name it: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def legacy_lock_key(target_schema: str) -> str:
    """The lock of wacdc versions before the writer epoch (per target schema). Held too,
    so an instance of such a version during an upgrade overlap waits instead of writing."""
    return f"wacdc:{target_schema}"


def try_lock(conn: psycopg.Connection, database: str, target_schema: str) -> bool:
    """Take the writer lock (and the legacy one) without waiting; False if held."""
    row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s)), "
                       "pg_try_advisory_lock(hashtext(%s))",
                       (lock_key(database), legacy_lock_key(target_schema))).fetchone()
    got, got_legacy = (bool(row[0]), bool(row[1])) if row else (False, False)
    if got and got_legacy:
        return True
    for key, held in ((lock_key(database), got), (legacy_lock_key(target_schema), got_legacy)):
        if held:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
    return False


def take_epoch(conn: psycopg.Connection, what: str, deployment: str) -> WriterLease:
    """Call while holding the advisory lock: a new epoch, which fences the previous holder.

    Waits for the previous holder's commits that are already proved (they hold the
    epoch row FOR SHARE); after it, none of that holder's commits succeed. The row also
    names the deployment the state belongs to: another one is refused (DeploymentClash)."""
    holder = f"{holder_name()} ({what})"
    with conn.transaction():
        row = conn.execute(
            _q("INSERT INTO {state}.writer (id, epoch, holder, deployment, taken_at) "
            "VALUES (1, 1, %s, %s, now()) ON CONFLICT (id) DO UPDATE SET "
            "epoch = writer.epoch + 1, holder = EXCLUDED.holder, taken_at = now() "
            "WHERE writer.deployment = EXCLUDED.deployment RETURNING epoch"),
            (holder, deployment)).fetchone()
        if row is None:
            check_deployment(conn, deployment)
            raise AssertionError("unreachable: the writer row names another deployment")
    lease = WriterLease(int(row[0]), holder)
    join(conn, lease)
    return lease


def stored_deployment(conn: psycopg.Connection) -> str | None:
    """The deployment whose state this database holds; None before the first writer."""
    try:
        with conn.transaction():
            row = conn.execute(_q("SELECT deployment FROM {state}.writer WHERE id = 1")
                               ).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return None if row is None else str(row[0])


def check_deployment(conn: psycopg.Connection, deployment: str) -> None:
    """Refuse a second deployment in a database that holds another one's state."""
    stored = stored_deployment(conn)
    if stored is not None and stored != deployment:
        raise DeploymentClash(
            f"this PostgreSQL database already holds the wacdc state of another deployment "
            f"({stored}); this one is {deployment}. One deployment per target database: "
            "give this one its own database (WACDC_TARGET_URL), or use the same "
            "WACDC_TARGET_SCHEMA and source database as the other (see docs/operations.md, "
            "'One deployment per target database')")


def deployment_of(source_database: str, target_schema: str) -> str:
    return f"source database {source_database!r} -> target schema {target_schema!r}"


def join(conn: psycopg.Connection, lease: WriterLease) -> None:
    """Let `conn` write under `lease` (a session setting the fence checks)."""
    conn.execute("SELECT set_config('wacdc.writer_epoch', %s, false)", (str(lease.epoch),))
    if not conn.autocommit:
        conn.commit()


def assert_writer(conn: psycopg.Connection) -> None:
    """For a transaction that writes no progress row: prove the lease inside it."""
    conn.execute(_q("SELECT {state}.assert_writer()"))


def is_lost_lease(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.Error) and getattr(exc, "sqlstate", None) == NOT_THE_WRITER


def lost(exc: BaseException, lease: WriterLease | None) -> LostWriterLock:
    """The error to stop with when a write was refused by the fence."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    epoch = f" (epoch {lease.epoch})" if lease else ""
    return LostWriterLock(
        f"this instance{epoch} is no longer the writer of the target: {detail}. Another "
        "wacdc instance took the writer lock (its connection was lost, or two deployments "
        "overlap); nothing after its last commit was written. This instance stops; the "
        "other one carries on from the checkpoint (see `wacdc status`)")
