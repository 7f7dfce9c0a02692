"""Schema changes met in the binlog: apply the additive ones, stop on the rest.

A statement that names a tracked table (the binlog reader finds them with a SQL parser:
source/statements.py) is compared with the table as the source has it now:
new columns (ADD COLUMN) and new or dropped indexes are applied to PostgreSQL, a
type that became wider is widened there too; dropped or renamed columns and
incompatible type changes stop the stream with the statement and its position.
`wacdc run --resume-after-ddl` accepts the statement that stopped it (after the
operator has made the matching change to PostgreSQL) and goes on. TRUNCATE is data:
it is applied in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from wacdc.config import Settings
from wacdc.errors import WacdcError
from wacdc.events import BinlogPosition, ParsedStatement, Statement
from wacdc.log import get_logger
from wacdc.schema.ddl import (
    TargetTable,
    column_sql,
    create_index_sql,
    existing_columns,
    normalize_pg_type,
    plan_table,
)
from wacdc.schema.profile import Profile
from wacdc.source.catalog import RETIRED_SUFFIX
from wacdc.source.connection import connect
from wacdc.source.introspect import introspect_tables, non_transactional

log = get_logger("wacdc.schema.evolve")

_WIDER = {
    ("smallint", "integer"), ("smallint", "bigint"), ("integer", "bigint"),
    ("smallint", "numeric(20,0)"), ("integer", "numeric(20,0)"), ("bigint", "numeric(20,0)"),
    ("real", "double precision"),
}


class DdlStop(WacdcError):
    """A schema change on a tracked table that wacdc does not apply by itself."""


@dataclass
class Change:
    table: str
    truncate: bool = False
    refreshed: TargetTable | None = None


def _is_wider(old: str, new: str) -> bool:
    old, new = normalize_pg_type(old), normalize_pg_type(new)
    if (old, new) in _WIDER or (new == "text" and old.startswith("character varying")):
        return True
    sizes = [re.fullmatch(r"(character varying|bit varying)\((\d+)\)", t) for t in (old, new)]
    if sizes[0] and sizes[1] and sizes[0][1] == sizes[1][1]:
        return int(sizes[1][2]) >= int(sizes[0][2])
    nums = [re.fullmatch(r"numeric\((\d+),(\d+)\)", t) for t in (old, new)]
    if nums[0] and nums[1]:
        (p0, s0), (p1, s1) = map(int, nums[0].groups()), map(int, nums[1].groups())
        return s1 >= s0 and p1 - s1 >= p0 - s0
    return False


class SchemaEvolver:
    def __init__(self, settings: Settings, profile: Profile, tables: dict[str, TargetTable],
                 accept_next: bool = False) -> None:
        self.settings = settings
        self.profile = profile
        self.tables = tables
        self.accept_next = accept_next
        self.accepted: str | None = None  # the statement --resume-after-ddl let pass

    def handle(self, statement: Statement, target: psycopg.Connection,
               skip_tables: set[str], kept_at_rollback: frozenset[str] = frozenset()
               ) -> list[Change]:
        """Act on one statement that touches tracked tables (source/framing.py names
        them from the statement itself); raise DdlStop when it must stop.
        `kept_at_rollback`: the tracked tables the stream frames as non-transactional."""
        query, position, parsed = statement.query.strip(), statement.position, \
            statement.parsed
        changes = []
        for name in (t for t in statement.tables if t not in skip_tables):
            why = _stops(parsed)
            if why:
                self._stop(name, query, position, why, parsed)
                continue
            if parsed is not None and parsed.kind == "truncate":
                changes.append(Change(name, truncate=True))
                continue
            self._check_engine(name, query, position, name in kept_at_rollback)
            changes.append(self._evolve(name, query, position, target))
        # --resume-after-ddl is for the statement that stopped the stream: the first one
        # after the checkpoint. If it no longer stops (the operator changed PostgreSQL
        # so that it fits), the flag must not let a later, different stop pass unseen.
        self.accept_next = False
        return changes

    def _check_engine(self, name: str, query: str, position: BinlogPosition,
                      framed_as_kept: bool) -> None:
        """The stream read the engines when it opened: a table that became (non-)
        transactional would have its rows kept or dropped the wrong way at a ROLLBACK
        after this statement. A new stream reads them again."""
        source_url = self.settings.source()
        with connect(source_url) as conn:
            kept_now = name in non_transactional(conn, source_url.database, [name])
        if kept_now != framed_as_kept:
            raise DdlStop(
                f"tracked table {name} became {'non-' if kept_now else ''}transactional at "
                f"{position} ({query[:300]!r}): its rows now {'stay' if kept_now else 'go'} "
                "at a ROLLBACK. Nothing after it was applied and nothing in PostgreSQL "
                "needs changing: run `wacdc run` again, which reads the engines anew")

    def _stop(self, table: str, query: str, position: BinlogPosition, why: str,
              parsed: ParsedStatement | None = None) -> None:
        # --resume-after-ddl lets one statement pass, with every tracked table it names.
        if self.accept_next or self.accepted == str(position):
            self.accept_next, self.accepted = False, str(position)
            log.warning("schema change accepted by --resume-after-ddl", table=table,
                        statement=query[:300], position=str(position), finding=why)
            return
        if parsed is not None and parsed.readable and parsed.kind == "dml":
            raise DdlStop(
                f"statement-format DML on tracked table {table} at {position}: "
                f"{query[:300]!r}. Nothing after it was applied. Its rows are not in the "
                "binlog, so they cannot be converted exactly: have the writing session log "
                f"binlog_format=ROW, repair the table (`wacdc verify --table {table} "
                "--repair`), then run `wacdc run --resume-after-ddl` to pass this statement "
                "(docs/operations.md)")
        raise DdlStop(
            f"schema change on tracked table {table} at {position} ({why}): {query[:300]!r}. "
            "Nothing after it was applied. Make the matching change in PostgreSQL, then run "
            "`wacdc run --resume-after-ddl` (docs/operations.md)")

    def _evolve(self, name: str, query: str, position: BinlogPosition,
                target: psycopg.Connection) -> Change:
        old = self.tables[name]
        source_url = self.settings.source()
        with connect(source_url) as conn:
            now = introspect_tables(conn, source_url.database, [name]).get(name)
        if now is None:
            self._stop(name, query, position, "the table is gone from the source")
            return Change(name)
        new = plan_table(now, self.profile, old.schema)
        # Compare with what PostgreSQL has (not with a model in memory): that is right also
        # when the change happened while wacdc was down.
        present = existing_columns(target, old.schema, name)
        source_names = {c.name for c in new.columns}
        pg_only = {c.name for c in new.columns if c.source is None}
        dropped = [n for n in present if n not in source_names and n not in pg_only]
        if dropped:
            self._stop(name, query, position, f"column(s) {', '.join(dropped)} dropped or "
                       "renamed")
        statements: list[sql.SQL | sql.Composed] = []
        for column in new.columns:
            have = present.get(column.name)
            want = normalize_pg_type(column.pg_type) if not column.enum_type else None
            if have is None:
                statements.append(sql.SQL("ALTER TABLE {} ADD COLUMN {}").format(
                    new.relation, column_sql(column, new.schema)))
            elif want is not None and have != want:
                if _is_wider(have, want):
                    statements.append(sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(
                        new.relation, sql.Identifier(column.name),
                        sql.SQL(column.pg_type)))
                else:
                    self._stop(name, query, position, f"column {column.name} changed from "
                               f"{have} to {column.pg_type}")
        have_indexes = {row[0] for row in target.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            (old.schema, name)).fetchall()}
        for index_name, index in new.indexes:
            if index_name not in have_indexes:
                statements.append(create_index_sql(new, index_name, index))
        # Drop only what the source dropped: indexes PostgreSQL has for its own reasons
        # (the profile's extras, a DBA's additions) stay.
        gone = {i for i, _ in old.indexes} - {i for i, _ in new.indexes}
        for index_name in sorted(gone & have_indexes):
            statements.append(sql.SQL("DROP INDEX IF EXISTS {}.{}").format(
                sql.Identifier(old.schema), sql.Identifier(index_name)))
        with target.transaction():
            for statement in statements:
                target.execute(statement)
        if statements:
            log.info("schema change applied", table=name, statement=query[:300],
                     position=str(position), applied=[s.as_string(target) for s in statements])
        self.tables[name] = new
        return Change(name, refreshed=new)


# What a statement of each kind means for a tracked table it names (source/statements.py):
# re-read the table and follow it (additive), apply it in order (TRUNCATE), or stop.
_FOLLOWED = frozenset({"ddl_alter", "ddl_create", "truncate"})


def _stops(parsed: ParsedStatement | None) -> str | None:
    """Why this statement stops the stream, or None when wacdc follows it."""
    if parsed is None or not parsed.readable:
        return "a statement wacdc cannot read names it"
    kind = parsed.kind
    if kind == "dml":
        return "statement-format DML: its rows are not in the binlog"
    if kind in ("ddl_drop", "ddl_create") and parsed.index is not None:
        return None  # an index: the table is re-read
    if kind == "ddl_drop":
        return "the table was dropped"
    if kind == "ddl_rename" and parsed.renames and all(
            old.name == new.name + RETIRED_SUFFIX for old, new in parsed.renames):
        return None  # `wacdc rollback` gave the retired tables their names back
    if kind == "ddl_rename":
        return "a table was renamed in or out (gh-ost / pt-online-schema-change cut-over?)"
    if kind == "ddl_rows":
        return "a partition or tablespace operation changed rows without row events"
    if kind == "ddl_drop_database":
        return "its database was dropped"
    if kind in _FOLLOWED:
        return None
    return f"a {kind.replace('_', ' ')} statement"


def truncate_sql(table: TargetTable) -> sql.Composed:
    return sql.SQL("TRUNCATE {}").format(table.relation)

