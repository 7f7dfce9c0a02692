"""The cutover (DESIGN §6): freeze, drain, verify, fence, finalize — nothing lost.

A request is a row in `wacdc.cutover` (`wacdc cutover`, `POST /cutover`, or
`WACDC_CUTOVER=1`); the streaming loop looks at it every half second. Then:

1. wait until streaming with lag <= WACDC_CUTOVER_MAX_LAG (timeout: refused, back to
   streaming); rows that break a profile foreign key refuse it under WACDC_ORPHANS=fail;
2. freeze: `LOCK TABLES <tracked> READ` on a dedicated connection: the app's writes
   wait, its reads go on. A guard thread unlocks and aborts once the freeze passes
   WACDC_CUTOVER_MAX_FREEZE, unless the cutover has passed its point of no return;
3. drain to the source head, then compare row counts of every table (mismatch:
   unlock, refused);
4. fence: unlock and `RENAME TABLE t TO t__wacdc_retired, ...` at once; the stream is
   followed until that RENAME itself is read, so a write that slipped in between the
   unlock and the rename is still applied (WACDC_FENCE=none: unlock only);
5. finalize PostgreSQL before the app's first write: identity sequences past the
   maximum, the profile's foreign keys `NOT VALID`; record the cutover, phase `done`;
   then (not blocking anyone) VALIDATE with orphans reported and, under
   WACDC_ORPHANS=apply, the relation's onDelete action applied; ANALYZE.

The write pause is lock -> rename (`wacdc_cutover_freeze_seconds`).
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
import pymysql
from psycopg import sql
from psycopg.rows import dict_row

from wacdc.config import Settings
from wacdc.errors import WacdcError
from wacdc.log import get_logger
from wacdc.observe import metrics
from wacdc.observe.http import STATUS
from wacdc.schema.extras import apply_extras
from wacdc.schema.profile import ForeignKey, load_profile
from wacdc.sink import state, writer
from wacdc.sink.pool import TargetPool
from wacdc.source.catalog import RETIRED_SUFFIX, retired_tables
from wacdc.source.connection import connect, one_value, quote_ident
from wacdc.source.position import current_position

if TYPE_CHECKING:
    from wacdc.daemon import StreamSession

log = get_logger("wacdc.cutover")
ACTIVE = ("requested", "waiting", "abort_requested")
FINAL = ("done", "refused", "aborted")
ORPHAN_KEYS_LISTED = 100


@dataclass
class Request:
    id: int
    status: str
    age_s: float  # since it was requested (PostgreSQL's clock)


# --- the control row ----------------------------------------------------------------------

def request(conn: psycopg.Connection, by: str) -> int:
    """Ask for a cutover (or join the one already asked for); returns its id."""
    state.ensure_schema(conn)
    with conn.transaction():
        conn.execute(f"LOCK TABLE {state.STATE_SCHEMA}.cutover IN EXCLUSIVE MODE")
        row = conn.execute(f"SELECT id FROM {state.STATE_SCHEMA}.cutover WHERE status = ANY(%s) "
                           "ORDER BY id DESC LIMIT 1", ([*ACTIVE, "frozen"],)).fetchone()
        if row:
            return int(row[0])
        row = conn.execute(f"INSERT INTO {state.STATE_SCHEMA}.cutover (status, requested_by) "
                           "VALUES ('requested', %s) RETURNING id", (by,)).fetchone()
    assert row is not None
    return int(row[0])


def abort(conn: psycopg.Connection) -> tuple[bool, str]:
    """Cancel a cutover that has not frozen yet."""
    state.ensure_schema(conn)
    row = conn.execute(
        f"UPDATE {state.STATE_SCHEMA}.cutover SET status = 'abort_requested', "
        "updated_at = now() WHERE id = (SELECT max(id) FROM wacdc.cutover) AND status IN "
        "('requested', 'waiting') RETURNING id").fetchone()
    if row:
        return True, f"abort requested for cutover #{row[0]}"
    last = latest(conn)
    if last is None:
        return False, "no cutover has been requested"
    return False, f"cutover #{last['id']} is {last['status']}: too late to abort"


def latest(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The newest cutover request and its outcome; None if there never was one."""
    doc = state.first_row(
        conn, "SELECT id, status, requested_at, requested_by, reason, final_file, final_pos, "
              "freeze_seconds, counts, orphans, fence, extras, finished_at "
              f"FROM {state.STATE_SCHEMA}.cutover ORDER BY id DESC LIMIT 1", dict_row)
    if doc is not None:
        for k in ("requested_at", "finished_at"):
            doc[k] = doc[k].isoformat() if doc[k] else None
    return doc


def _set(conn: psycopg.Connection, cutover_id: int, status: str, **fields: Any) -> None:
    assignments: list[sql.Composable] = [sql.SQL("status = %s"), sql.SQL("updated_at = now()")]
    values: list[Any] = [status]
    for name, value in fields.items():
        assignments.append(sql.SQL("{} = %s").format(sql.Identifier(name)))
        values.append(json.dumps(value) if isinstance(value, dict | list) else value)
    if status in FINAL:
        assignments.append(sql.SQL("finished_at = now()"))
    conn.execute(sql.SQL("UPDATE {}.cutover SET {} WHERE id = %s").format(
        sql.Identifier(state.STATE_SCHEMA), sql.SQL(", ").join(assignments)),
        [*values, cutover_id])


# --- the freeze guard -----------------------------------------------------------------------

class FreezeGuard:
    """Unlocks the source and aborts once the freeze runs past its limit — unless the
    cutover already passed its point of no return (`commit`)."""

    def __init__(self, conn: pymysql.connections.Connection, limit_s: float) -> None:
        self.conn = conn
        self.mutex = threading.Lock()
        self.state = "frozen"
        self.timer = threading.Timer(limit_s, self.expire)
        self.timer.daemon = True
        self.timer.start()

    def expire(self) -> None:
        with self.mutex:
            if self.state == "frozen":
                self._unlock()
                self.state = "expired"
                log.warning("freeze limit reached: source unlocked, cutover aborted")

    def abort(self) -> None:
        with self.mutex:
            self.timer.cancel()
            if self.state == "frozen":
                self._unlock()
                self.state = "aborted"

    def commit(self) -> bool:
        with self.mutex:
            self.timer.cancel()
            if self.state != "frozen":
                return False
            self.state = "committed"
            return True

    @property
    def expired(self) -> bool:
        return self.state == "expired"

    def _unlock(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("UNLOCK TABLES")


# --- the protocol ---------------------------------------------------------------------------

class CutoverController:
    """Driven by the streaming loop: `poll` every half second, `tick` every item."""

    def __init__(self, settings: Settings, session: StreamSession) -> None:
        self.settings = settings
        self.session = session
        self.current: Request | None = None
        self.profile = load_profile(settings.profile)
        self.finishing: Request | None = None
        self.checked: int | None = None  # the request whose pre-freeze checks passed
        self.auto_request = settings.cutover  # WACDC_CUTOVER=1: ask once streaming
        self.resume_interrupted()

    def poll(self) -> None:
        if self.auto_request and STATUS.phase == "streaming":
            # Asked only now, so a long catch-up does not eat the request's timeout.
            cutover_id = request(self.session.target, "WACDC_CUTOVER=1")
            log.info("cutover requested by WACDC_CUTOVER=1", cutover=cutover_id)
            self.auto_request = False
        row = self.session.target.execute(
            "SELECT id, status, extract(epoch FROM now() - requested_at) "
            f"FROM {state.STATE_SCHEMA}.cutover WHERE status = ANY(%s) ORDER BY id DESC "
            "LIMIT 1", (list(ACTIVE),)).fetchone()
        if row is None:
            self.current = None
            return
        req = Request(int(row[0]), row[1], float(row[2]))
        if STATUS.phase == "done":  # asked again after it (WACDC_FENCE=none follows on)
            _set(self.session.target, req.id, "refused",
                 reason="the cutover is already done: PostgreSQL is the primary")
            self.current = None
            return
        if req.status == "abort_requested":
            _set(self.session.target, req.id, "aborted", reason="aborted by the operator")
            log.info("cutover aborted by the operator", cutover=req.id)
            self.current = None
            return
        if req.status == "requested":
            _set(self.session.target, req.id, "waiting")
            log.info("cutover requested: waiting for lag to reach the threshold",
                     cutover=req.id, max_lag_s=self.settings.cutover_max_lag)
            req.status = "waiting"
        self.current = req

    def tick(self) -> str | None:
        if self.finishing is not None:
            if not self.session.fence_seen:
                return None
            s = self.session
            return self._finish(self.finishing, list(s.sinks), self._fks(), None, None)
        req = self.current
        if req is None:
            return None
        lag = STATUS.lag_seconds()
        # The timeout counts from the request, so a loop that was stuck cannot reset it.
        if req.age_s > self.settings.cutover_timeout:
            return self._refuse(req, f"lag did not reach <= {self.settings.cutover_max_lag}s "
                                     f"within {self.settings.cutover_timeout:.0f}s of the "
                                     f"request (lag now {lag:.3f}s, phase {STATUS.phase})")
        if STATUS.phase != "streaming" or lag > self.settings.cutover_max_lag:
            return None
        if self.checked != req.id:
            problem = self._precheck()
            if problem:
                return self._refuse(req, problem)
            self.checked = req.id
            return None  # the checks took a while: freeze once lag is low again
        return self._execute(req)

    def _fks(self) -> list[ForeignKey]:
        s = self.session
        return [fk for fk in self.profile.foreign_keys
                if fk.table in s.sinks and fk.references in s.sinks]

    def _precheck(self) -> str | None:
        """What would make the cutover fail after the fence, found before the freeze."""
        s = self.session
        too_long = [t for t in s.sinks if len(t + RETIRED_SUFFIX) > 64]
        if self.settings.fence == "rename" and too_long:
            return (f"table name(s) {', '.join(too_long)} too long for the fence's "
                    f"{RETIRED_SUFFIX} suffix (MySQL allows 64 characters); use "
                    "WACDC_FENCE=none and stop the app yourself")
        fks = self._fks()
        try:  # rehearse the finalize DDL: a foreign key PostgreSQL rejects shows up now
            with s.target.transaction(force_rollback=True):
                add_foreign_keys(s.target, self.settings.target_schema, fks)
        except psycopg.errors.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise
            return (f"a foreign key of the profile cannot be created in PostgreSQL: "
                    f"{str(exc).strip().splitlines()[0]}; fix the profile or the target")
        if self.settings.orphans == "fail" or any(
                fk.on_delete not in ("SET NULL", "CASCADE") for fk in fks):
            orphans = find_orphans(s.target, self.settings.target_schema, fks)
            blocking = {name: o for name, o in orphans.items()
                        if self.settings.orphans == "fail" or not o["action"]}
            if blocking:
                return "orphan rows break foreign keys: " + _describe_orphans(blocking)
        return None

    def _refuse(self, req: Request, reason: str, status: str = "refused") -> str:
        _set(self.session.target, req.id, status, reason=reason)
        log.warning(f"cutover {status}", cutover=req.id, reason=reason)
        self.current = None
        if STATUS.phase == "cutover":
            STATUS.set_phase("streaming")
            state.set_phase(self.session.target, "streaming")
        return status

    def _execute(self, req: Request) -> str | None:
        s = self.session
        tables = list(s.sinks)
        fks = self._fks()
        # Only a request still waiting freezes: an abort written since the last poll wins.
        if s.target.execute(
                f"UPDATE {state.STATE_SCHEMA}.cutover SET status = 'frozen', updated_at = now() "
                "WHERE id = %s AND status = 'waiting' RETURNING id", (req.id,)).fetchone() is None:
            self.current = None
            return None
        STATUS.set_phase("cutover")
        state.set_phase(s.target, "cutover")
        # Its statements wait at most the freeze's lock_wait_timeout.
        freeze = connect(self.settings.source(),
                         read_timeout=self.settings.cutover_max_freeze + 10)
        try:
            return self._freeze(req, freeze, tables, fks)
        finally:
            freeze.close()

    def _freeze(self, req: Request, freeze: pymysql.connections.Connection,
                tables: list[str], fks: list[ForeignKey]) -> str:
        limit = self.settings.cutover_max_freeze
        with freeze.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = %s", (max(1, int(limit)),))
            started = time.monotonic()
            try:
                cur.execute("LOCK TABLES " + ", ".join(f"{quote_ident(t)} READ"
                                                        for t in tables))
            except pymysql.err.OperationalError as exc:
                return self._refuse(req, f"could not lock the source tables within {limit}s "
                                         f"({exc.args[-1]})", "aborted")
        guard = FreezeGuard(freeze, max(limit - (time.monotonic() - started), 0.01))
        try:
            return self._frozen(req, freeze, guard, started, tables, fks)
        finally:
            guard.abort()  # no-op once committed; else never leave the source locked

    def _frozen(self, req: Request, freeze: pymysql.connections.Connection,
                guard: FreezeGuard, started: float, tables: list[str],
                fks: list[ForeignKey]) -> str:
        s = self.session
        limit = self.settings.cutover_max_freeze
        head = current_position(s.control)
        log.info("frozen: draining to the source head", cutover=req.id, head=str(head))
        if not s.drain_to(head, lambda: guard.expired) or guard.expired:
            guard.abort()
            return self._refuse(req, f"the freeze reached its limit ({limit}s) before the "
                                     f"drain to {head} finished; source unlocked, nothing "
                                     "lost: retry when the load is lower", "aborted")
        counts = count_rows(s.control, s.target, self.settings.target_schema, tables)
        mismatched = {t: c for t, c in counts.items() if c["source"] != c["target"]}
        if mismatched:
            guard.abort()
            return self._refuse(req, "row counts differ after the drain: " + ", ".join(
                f"{t} source {c['source']} target {c['target']}"
                for t, c in mismatched.items()) + "; run `wacdc verify`")
        if not guard.commit():
            return self._refuse(req, f"the freeze reached its limit ({limit}s) during the "
                                     "count check; source unlocked, nothing lost", "aborted")
        # Fence the source, then finalize PostgreSQL.
        with freeze.cursor() as cur:
            left = max(1, int(limit - (time.monotonic() - started) + 0.999))
            cur.execute("SET SESSION lock_wait_timeout = %s", (left,))
            cur.execute("UNLOCK TABLES")
            if self.settings.fence == "rename":
                try:
                    cur.execute("RENAME TABLE " + ", ".join(
                        f"{quote_ident(t)} TO {quote_ident(t + RETIRED_SUFFIX)}"
                        for t in tables))
                except pymysql.err.OperationalError as exc:
                    return self._refuse(req, f"the fence could not rename the tables within "
                                             f"{left}s ({exc.args[-1]}): an app transaction "
                                             "held them; nothing lost, replication goes on; "
                                             "retry", "aborted")
        freeze_s = time.monotonic() - started
        metrics.cutover_freeze_seconds.set(freeze_s)
        _set(s.target, req.id, "frozen", freeze_seconds=freeze_s, counts=counts,
             fence=self.settings.fence)
        if self.settings.fence == "rename" and not s.drain_until_fence(RETIRED_SUFFIX, 30):
            raise WacdcError("the fence (RENAME TABLE ... __wacdc_retired) did not appear in "
                             "the binlog within 30 s; the source is fenced but the last "
                             "writes may be unapplied: run `wacdc run` again to finish, then "
                             "`wacdc verify` (docs/cutover.md)")
        return self._finish(req, tables, fks, freeze_s, counts)

    def resume_interrupted(self) -> None:
        """A daemon that died mid-cutover: finish it if the fence is in place, else record
        the abort (the source's lock died with the connection: nothing was lost)."""
        s = self.session
        last = latest(s.target)
        if last is None or last["status"] != "frozen":
            return
        if retired_tables(self.settings, list(s.sinks)):
            self.finishing = Request(int(last["id"]), "frozen", 0.0)
            s.fence_marker = RETIRED_SUFFIX
            log.warning("resuming an interrupted cutover: the source is fenced; applying up "
                        "to the fence, then finalizing", cutover=last["id"])
        else:
            _set(s.target, int(last["id"]), "aborted",
                 reason="wacdc stopped while the source was frozen; the lock ended with its "
                        "connection, nothing was lost; request the cutover again")

    def _finish(self, req: Request, tables: list[str], fks: list[ForeignKey],
                freeze_s: float | None, counts: Any) -> str:
        s = self.session
        final = s.applied
        with s.target.transaction():
            advanced = advance_identities(s.target, self.settings.target_schema, tables)
            created = add_foreign_keys(s.target, self.settings.target_schema, fks)
            _set(s.target, req.id, "done", final_file=final.file, final_pos=final.pos)
            state.set_phase(s.target, "done")
        STATUS.set_phase("done")
        log.info("cutover done: PostgreSQL is the primary now", cutover=req.id,
                 freeze_s=None if freeze_s is None else round(freeze_s, 3),
                 final_position=str(final),
                 fence=self.settings.fence, sequences=advanced, foreign_keys=created)
        self.current = None
        try:  # PostgreSQL is the primary now: problems here are reported, not retried
            orphans = validate_foreign_keys(s.target, self.settings.target_schema, fks,
                                            self.settings.orphans)
            _set(s.target, req.id, "done", orphans=orphans)
            for table in tables:
                s.target.execute(sql.SQL("ANALYZE {}.{}").format(
                    sql.Identifier(self.settings.target_schema), sql.Identifier(table)))
            extras = apply_extras(s.target, self.profile, self.settings.target_schema,
                                  set(tables))
            _set(s.target, req.id, "done", extras=extras)
        except psycopg.Error as exc:
            metrics.errors.labels(kind="CutoverFinalize").inc()
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            log.error("the cutover is done, but a step after it failed: foreign key "
                      "validation, ANALYZE or the extras may be missing; finish them by hand "
                      "(docs/cutover.md)", error=detail)
            try:
                _set(s.target, req.id, "done", reason=f"after the cutover: {detail}")
            except psycopg.Error as note:
                log.error("could not record it either", error=str(note))
        return "done"


def count_rows(source: pymysql.connections.Connection, target: psycopg.Connection,
               schema: str, tables: list[str]) -> dict[str, dict[str, int]]:
    counts = {}
    with source.cursor() as cur:
        for table in tables:
            cur.execute(f"SELECT COUNT(*) FROM {quote_ident(table)}")
            mine = target.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table))).fetchone()
            counts[table] = {"source": int(one_value(cur)),
                             "target": int(mine[0]) if mine else 0}
    return counts


def advance_identities(conn: psycopg.Connection, schema: str, tables: list[str]) -> int:
    """Identity columns' sequences past the largest replicated value."""
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = ANY(%s) AND is_identity = 'YES'",
        (schema, tables)).fetchall()
    for table, column in rows:
        conn.execute(sql.SQL(
            "SELECT setval(pg_get_serial_sequence({}, {}), "
            "GREATEST((SELECT max({}) FROM {}.{}), 1), "
            "(SELECT max({}) FROM {}.{}) IS NOT NULL)").format(
            sql.Literal(regclass_text(conn, schema, table)), sql.Literal(column),
            sql.Identifier(column), sql.Identifier(schema), sql.Identifier(table),
            sql.Identifier(column), sql.Identifier(schema), sql.Identifier(table)))
    return len(rows)


def regclass_text(conn: psycopg.Connection, schema: str, table: str) -> str:
    """`"schema"."table"` as a regclass argument takes it, quoted by psycopg."""
    return sql.Identifier(schema, table).as_string(conn)


def _fk_exists(conn: psycopg.Connection, schema: str, fk: ForeignKey) -> bool:
    return conn.execute(
        "SELECT 1 FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE c.conname = %s AND t.relname = %s AND n.nspname = %s",
        (fk.name, fk.table, schema)).fetchone() is not None


def add_foreign_keys(conn: psycopg.Connection, schema: str, fks: list[ForeignKey]) -> int:
    """The profile's foreign keys, NOT VALID: checked for new rows, old rows later."""
    created = 0
    for fk in fks:
        if _fk_exists(conn, schema, fk):
            continue
        conn.execute(sql.SQL(
            "ALTER TABLE {}.{} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {}.{} ({}) "
            "ON DELETE {} ON UPDATE {} NOT VALID").format(
            sql.Identifier(schema), sql.Identifier(fk.table), sql.Identifier(fk.name),
            sql.SQL(", ").join(map(sql.Identifier, fk.columns)), sql.Identifier(schema),
            sql.Identifier(fk.references),
            sql.SQL(", ").join(map(sql.Identifier, fk.referenced_columns)),
            sql.SQL(fk.on_delete), sql.SQL(fk.on_update)))
        created += 1
    return created


def _orphan_where(schema: str, fk: ForeignKey) -> sql.Composed:
    present = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c))
                                    for c in fk.columns)
    match = sql.SQL(" AND ").join(sql.SQL("p.{} = c.{}").format(sql.Identifier(r),
                                                               sql.Identifier(c))
                                  for c, r in zip(fk.columns, fk.referenced_columns,
                                                  strict=True))
    return sql.SQL("{} AND NOT EXISTS (SELECT 1 FROM {}.{} p WHERE {})").format(
        present, sql.Identifier(schema), sql.Identifier(fk.references), match)


def find_orphans(conn: psycopg.Connection, schema: str, fks: list[ForeignKey]
                 ) -> dict[str, dict[str, Any]]:
    """Per foreign key: child rows whose parent does not exist (keys listed, counted)."""
    found: dict[str, dict[str, Any]] = {}
    for fk in fks:
        key = _primary_key(conn, schema, fk.table)
        key_text = sql.SQL(", ").join(sql.SQL("c.{}::text").format(sql.Identifier(k))
                                      for k in key)
        where = _orphan_where(schema, fk)
        count = conn.execute(sql.SQL("SELECT count(*) FROM {}.{} c WHERE {}").format(
            sql.Identifier(schema), sql.Identifier(fk.table), where)).fetchone()
        if not count or not count[0]:
            continue
        keys = conn.execute(sql.SQL("SELECT ARRAY[{}] FROM {}.{} c WHERE {} ORDER BY 1 "
                                    "LIMIT {}").format(
            key_text, sql.Identifier(schema), sql.Identifier(fk.table), where,
            sql.Literal(ORPHAN_KEYS_LISTED))).fetchall()
        found[fk.name] = {
            "table": fk.table, "columns": fk.columns, "references": fk.references,
            "count": int(count[0]),
            "keys": [k[0][0] if len(k[0]) == 1 else k[0] for k in keys],
            "action": fk.on_delete if fk.on_delete in ("SET NULL", "CASCADE") else None}
    return found


def _describe_orphans(orphans: dict[str, dict[str, Any]]) -> str:
    return "; ".join(
        f"{o['table']}.{','.join(o['columns'])} -> {o['references']} ({name}): {o['count']} "
        f"row(s), keys {', '.join(map(str, o['keys'][:10]))}"
        f"{' ...' if o['count'] > 10 else ''}" for name, o in orphans.items())


def _primary_key(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey, a.attnum)",
        (regclass_text(conn, schema, table),)).fetchall()
    return [r[0] for r in rows] or ["ctid"]


def validate_foreign_keys(conn: psycopg.Connection, schema: str, fks: list[ForeignKey],
                          policy: str) -> dict[str, dict[str, Any]]:
    """VALIDATE each foreign key; orphans reported, and handled under policy `apply`."""
    orphans = find_orphans(conn, schema, fks)
    for fk in fks:
        found = orphans.get(fk.name)
        if found and policy == "apply" and found["action"]:
            where = _orphan_where(schema, fk)
            if found["action"] == "SET NULL":
                statement = sql.SQL("UPDATE {}.{} c SET {} WHERE {}").format(
                    sql.Identifier(schema), sql.Identifier(fk.table), sql.SQL(", ").join(
                        sql.SQL("{} = NULL").format(sql.Identifier(col)) for col in fk.columns),
                    where)
            else:
                statement = sql.SQL("DELETE FROM {}.{} c WHERE {}").format(
                    sql.Identifier(schema), sql.Identifier(fk.table), where)
            with conn.transaction():
                writer.assert_writer(conn)
                conn.execute(statement)
            found["applied"] = found["action"]
            log.warning("orphan rows handled by the relation's onDelete action",
                        foreign_key=fk.name, table=fk.table, rows=found["count"],
                        action=found["action"], keys=found["keys"][:20])
        elif found:
            found["applied"] = None
            log.warning("orphan rows: foreign key left NOT VALID", foreign_key=fk.name,
                        table=fk.table, rows=found["count"], keys=found["keys"][:20])
            continue
        conn.execute(sql.SQL("ALTER TABLE {}.{} VALIDATE CONSTRAINT {}").format(
            sql.Identifier(schema), sql.Identifier(fk.table), sql.Identifier(fk.name)))
    return orphans


def http_endpoint(settings: Settings, pool: TargetPool):
    """POST /cutover: Authorization: Bearer $WACDC_ADMIN_TOKEN (401 without, 403 wrong)."""

    def handle(headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization")
        if not auth:
            return 401, {"error": "Authorization: Bearer <WACDC_ADMIN_TOKEN> is required"}
        if settings.admin_token is None:
            return 403, {"error": "POST /cutover is off: WACDC_ADMIN_TOKEN is not set"}
        scheme, _, given = auth.strip().partition(" ")
        expected = settings.admin_token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                  expected):
            return 403, {"error": "wrong token"}
        with pool.connection() as conn:
            cutover_id = request(conn, "POST /cutover")
        log.info("cutover requested over HTTP", cutover=cutover_id)
        return 202, {"cutover": cutover_id, "status": "requested",
                     "follow": "GET /status, or `wacdc cutover --wait`"}
    return handle
