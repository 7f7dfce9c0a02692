"""`wacdc verify`: compare source and target row by row, in the converted form, and repair.

Both sides are compared as PostgreSQL values of the target's own column types: each source
chunk (keyset order) goes through the replication converter and is COPYed into a temporary
table shaped like the target table. PostgreSQL then checksums the chunk on both sides (md5
of every row's text in key order); only a chunk whose checksums differ is narrowed down to
its rows, naming the differing columns. Keys seen in the source are kept (in PostgreSQL,
not in memory), so rows only the target has are found by one anti-join at the end.

While `wacdc run` replicates, a difference may be a change not applied yet: such rows
are compared again once it has been applied (verify/settle.py), either way, so only
differences that persist are reported. --repair copies the source's rows over the
target's, so it is refused once PostgreSQL is the primary (after the cutover).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql

from wacdc.config import Settings
from wacdc.errors import ConfigError, WacdcError
from wacdc.events import BinlogPosition
from wacdc.log import get_logger
from wacdc.runtime import CUT_OVER, Phase
from wacdc.schema.convert import RowConverter
from wacdc.schema.ddl import TargetTable
from wacdc.schema.families import family
from wacdc.schema.model import Table
from wacdc.sink import sql as statements
from wacdc.sink import writer
from wacdc.sink.connection import connect_target
from wacdc.sink.state import ensure_schema, read_status
from wacdc.snapshot import Progress, coercion_policy
from wacdc.source.catalog import RETIRED_SUFFIX, plan_target, retired_tables
from wacdc.source.connection import LONG_READ_TIMEOUT_S, connect
from wacdc.source.position import current_position
from wacdc.source.read_view import ChunkReader, ReadView, select_sql, use_fast_row_parser
from wacdc.source.sql import quote_ident
from wacdc.verify.settle import settling_direction, wait_forward, wait_reverse

log = get_logger("wacdc.verify")
KEPT_PER_KIND = 1000  # differences listed per table and kind; beyond that, only counted
RECHECK_ROUNDS = 3
_STAGE = sql.Identifier("wv_src")  # a chunk of source rows, converted (temporary)


@dataclass
class RowDifference:
    key: list[str | None]  # the key columns' values as PostgreSQL text
    kind: str  # missing (only in the source), extra (only in the target), differs
    columns: list[str] = field(default_factory=list)


@dataclass
class TableReport:
    table: str
    source_rows: int = 0
    target_rows: int = 0
    chunks: int = 0
    chunks_differing: int = 0
    differences: list[RowDifference] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"missing": 0, "extra": 0,
                                                            "differs": 0})
    repaired: int = 0
    seconds: float = 0.0

    @property
    def identical(self) -> bool:
        return not any(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "identical": self.identical,
                "source_rows": self.source_rows, "target_rows": self.target_rows,
                "chunks": self.chunks, "chunks_differing": self.chunks_differing,
                "counts": self.counts, "repaired": self.repaired,
                "seconds": round(self.seconds, 3),
                "differences": [{"key": d.key, "kind": d.kind, "columns": d.columns}
                                for d in self.differences]}


class TableVerifier:
    """One table: the SQL that compares a chunk staged in `wv_src` with the target."""

    def __init__(self, table: TargetTable, settings: Settings, source: Table) -> None:
        self.table = table
        self.source = source  # where rows are read: the table, or its retired name
        self.columns = [c for c in table.columns if c.source is not None]
        self.names = [c.name for c in self.columns]
        self.key = list(table.key)
        self.converter = RowConverter(table.name, self.columns, table.key,
                                      coercion_policy(settings))
        self.target = table.relation
        self.cols = statements.names(self.names)
        self.keys = statements.names(self.key)
        self.key_types: dict[str, str] = {}
        # Rows are looked up in MySQL by PostgreSQL's text of the key: exact for some
        # families only (Family.key_round_trip). Other keys are reported from the full
        # pass alone: no re-check of in-flight changes, no repair.
        families = {c.name: family(c.family) for c in self.columns}
        self.keys_round_trip = all(getattr(families[k], "key_round_trip", False) for k in self.key)
        self.join = sql.SQL(" AND ").join(sql.SQL("s.{0} = t.{0}").format(sql.Identifier(k))
                                          for k in self.key)

    def key_text(self, alias: str) -> sql.Composed:
        """The key columns as PostgreSQL text, for ARRAY[...]."""
        return sql.SQL(", ").join(sql.SQL("{}.{}::text").format(
            sql.Identifier(alias), sql.Identifier(k)) for k in self.key)

    def _row(self, alias: str) -> sql.Composed:
        return sql.SQL("ROW({})::text").format(sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(n))
            for n in self.names))

    def _order(self, alias: str) -> sql.Composed:
        return sql.SQL(", ").join(sql.SQL('{}.{}::text COLLATE "C"').format(
            sql.Identifier(alias), sql.Identifier(k)) for k in self.key)

    def prepare(self, conn: psycopg.Connection) -> None:
        types: dict[str, str] = dict(conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (self.target.as_string(conn),)).fetchall())
        self.key_types = {k: types[k] for k in self.key}
        conn.execute("DROP TABLE IF EXISTS wv_src, wv_keys")
        conn.execute(sql.SQL("CREATE TEMP TABLE wv_src AS SELECT {} FROM {} WITH NO DATA")
                     .format(self.cols, self.target))
        conn.execute(sql.SQL("CREATE TEMP TABLE wv_keys AS SELECT {} FROM {} WITH NO DATA")
                     .format(self.keys, self.target))

    def stage(self, conn: psycopg.Connection, rows: list[tuple]) -> None:
        conn.execute("TRUNCATE wv_src")
        with conn.cursor().copy(statements.copy_in(_STAGE, self.names)) as cp:
            for row in rows:
                cp.write_row(row)

    def checksums_match(self, conn: psycopg.Connection) -> bool:
        digest = "md5(string_agg(md5({}), '' ORDER BY {}))"
        query = sql.SQL("SELECT (SELECT " + digest + " FROM wv_src s), (SELECT " + digest +
                        " FROM {} t WHERE EXISTS (SELECT 1 FROM wv_src s WHERE {}))").format(
            self._row("s"), self._order("s"), self._row("t"), self._order("t"), self.target,
            self.join)
        source, target = conn.execute(query).fetchone()  # type: ignore[misc]
        return bool(source == target)

    def staged_differences(self, conn: psycopg.Connection) -> list[RowDifference]:
        """Rows staged in wv_src that the target lacks or holds differently."""
        differs = sql.SQL("array_remove(ARRAY[{}], NULL)").format(sql.SQL(", ").join(
            sql.SQL("CASE WHEN s.{0}::text IS DISTINCT FROM t.{0}::text THEN {1} END").format(
                sql.Identifier(n), sql.Literal(n)) for n in self.names))
        query = sql.SQL("SELECT ARRAY[{}], t.{} IS NULL, {} FROM wv_src s LEFT JOIN {} t ON {} "
                        "WHERE t.{} IS NULL OR {} IS DISTINCT FROM {} ORDER BY {}").format(
            self.key_text("s"), sql.Identifier(self.key[0]), differs, self.target, self.join,
            sql.Identifier(self.key[0]), self._row("s"), self._row("t"), self._order("s"))
        return [RowDifference(list(key), "missing" if missing else "differs",
                              [] if missing else list(columns))
                for key, missing, columns in conn.execute(query)]

    def remember_keys(self, conn: psycopg.Connection) -> None:
        conn.execute(sql.SQL("INSERT INTO wv_keys SELECT {} FROM wv_src").format(self.keys))

    def extra_keys(self, conn: psycopg.Connection) -> list[RowDifference]:
        """Target rows whose key the source pass never saw."""
        conn.execute(sql.SQL("CREATE INDEX ON wv_keys ({})").format(self.keys))
        conn.execute("ANALYZE wv_keys")
        query = sql.SQL("SELECT ARRAY[{}] FROM {} t WHERE NOT EXISTS "
                        "(SELECT 1 FROM wv_keys s WHERE {}) ORDER BY {}").format(
            self.key_text("t"), self.target, self.join, self._order("t"))
        return [RowDifference(list(key), "extra") for (key,) in conn.execute(query)]

    def source_rows(self, source: Any, keys: list[list[str | None]]) -> list[tuple]:
        """The source's rows with these keys now, converted."""
        rows: list[tuple] = []
        base = select_sql(self.source, self.converter.source_names)
        key_cols = ", ".join(quote_ident(k) for k in self.key)
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            marks = ", ".join("(" + ", ".join(["%s"] * len(self.key)) + ")" for _ in part)
            with source.cursor() as cur:
                cur.execute(f"{base} WHERE ({key_cols}) IN ({marks})",
                            [v for key in part for v in key])
                use_fast_row_parser(cur)
                rows.extend(self.converter.convert(raw) for raw in cur.fetchall())
        return rows

    def _typed_keys(self) -> sql.Composed:
        """unnest(%s::text[], ...) AS u(k1, ...) joined typed: t.k1 = u.k1::<type>."""
        return sql.SQL("unnest({}) AS u({})").format(
            sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in self.key),
            sql.SQL(", ").join(map(sql.Identifier, self.key)))

    def _typed_join(self) -> sql.Composed:
        return sql.SQL(" AND ").join(sql.SQL("t.{0} = u.{0}::{1}").format(
            sql.Identifier(k), sql.SQL(self.key_types[k])) for k in self.key)

    def _key_columns(self, keys: list[list[str | None]]) -> list[list[str | None]]:
        return [[key[i] for key in keys] for i in range(len(self.key))]

    def target_has(self, conn: psycopg.Connection, keys: list[list[str | None]]
                   ) -> list[list[str | None]]:
        """Which of these keys the target holds."""
        if not keys:
            return []
        query = sql.SQL("SELECT ARRAY[{}] FROM {} t JOIN {} ON {}").format(
            self.key_text("t"), self.target, self._typed_keys(), self._typed_join())
        return [list(key) for (key,) in conn.execute(query, self._key_columns(keys))]

    def repair(self, conn: psycopg.Connection, source_rows: list[tuple],
               extra: list[list[str | None]]) -> int:
        """Upsert the source's rows, delete the target's extras; one transaction."""
        with conn.transaction():
            writer.assert_writer(conn)
            self.stage(conn, source_rows)
            conn.execute(statements.upsert(self.target, self.names, self.key, _STAGE))
            if extra:
                conn.execute(sql.SQL("DELETE FROM {} t USING {} WHERE {}").format(
                    self.target, self._typed_keys(), self._typed_join()),
                    self._key_columns(extra))
        return len(source_rows) + len(extra)


def verify(settings: Settings, only: list[str] | None = None, repair: bool = False
           ) -> list[TableReport]:
    _, tables = plan_target(settings, allow_retired=True)
    # After the cutover the source tables carry the fence's name: read those.
    retired = retired_tables(settings, [t.name for t in tables])
    if only:
        unknown = sorted(set(only) - {t.name for t in tables})
        if unknown:
            raise ConfigError(f"--table {', '.join(unknown)}: not among the replicated tables "
                              f"({', '.join(t.name for t in tables)})")
        tables = [t for t in tables if t.name in only]
    source_url = settings.source()
    reports = []
    with connect_target(settings.target(), autocommit=True) as target, \
            connect(source_url, read_timeout=LONG_READ_TIMEOUT_S, text_values=True) as source:
        if repair:
            _become_the_writer(settings, target)
        progress = Progress(what="verify", done_event="table verified")
        for table in tables:
            reader_table = (replace(table.source, name=table.name + RETIRED_SUFFIX)
                            if table.name in retired else table.source)
            reports.append(_verify_table(TableVerifier(table, settings, reader_table),
                                         settings, target, source, progress, repair))
    return reports


def _become_the_writer(settings: Settings, target: psycopg.Connection) -> None:
    """--repair writes the target: only as its one writer (wacdc.sink.writer). The lock
    lives as long as `target`; a running daemon keeps it, and repair is refused."""
    deployment = writer.deployment_of(settings.source().database, settings.target_schema)
    writer.check_deployment(target, deployment)
    if not writer.try_lock(target, settings.target().database, settings.target_schema):
        raise WacdcError(
            "--repair: a wacdc daemon is the writer of this target (it holds the writer "
            "lock; see `wacdc status`). Stop it (SIGTERM keeps its checkpoint), run "
            "`wacdc verify --repair`, then start it again; or run verify without --repair "
            "while it streams")
    ensure_schema(target)
    status = read_status(target, writer.lock_key(settings.target().database))
    if status and status.phase in (*CUT_OVER, Phase.BRIDGE):
        raise WacdcError(
            f"--repair: the cutover is done (phase {status.phase}): PostgreSQL is the "
            "primary, and repair would copy MySQL's older rows over the app's newer ones. "
            "Compare without --repair; reverse replication keeps MySQL current "
            "(docs/rollback.md)")
    writer.take_epoch(target, "verify --repair", deployment)


def _verify_table(v: TableVerifier, settings: Settings, target: psycopg.Connection,
                  source: Any, progress: Progress, repair: bool) -> TableReport:
    started = time.monotonic()
    report = TableReport(v.table.name)
    v.prepare(target)
    view = ReadView("verify", source, BinlogPosition("", 0), "live", 0.0)
    reader = ChunkReader(view, v.source, v.converter, settings.snapshot_chunk_rows)
    progress.begin(v.table.name, v.table.source.estimated_rows)
    suspects: list[RowDifference] = []
    after: tuple | None = None
    while True:
        raws_and_rows = list(reader.chunk(after))
        if not raws_and_rows:
            break
        after = reader.key_of(raws_and_rows[-1][0])
        with target.transaction():
            v.stage(target, [row for _, row in raws_and_rows])
            v.remember_keys(target)
            if not v.checksums_match(target):
                report.chunks_differing += 1
                suspects.extend(v.staged_differences(target))
        report.chunks += 1
        report.source_rows += len(raws_and_rows)
        progress.advance(len(raws_and_rows))
        if len(raws_and_rows) < settings.snapshot_chunk_rows:
            break
    suspects.extend(v.extra_keys(target))
    progress.finish()
    head = current_position(source)
    remaining = suspects
    if v.keys_round_trip:
        remaining = _settle(v, settings, target, source, suspects, head)
        if repair and remaining:
            remaining = _repair(v, target, source, remaining, report)
    elif suspects:
        log.warning("differences found; this table's key type rules out re-checking "
                    "in-flight changes and --repair (compare it with the daemon stopped)",
                    table=v.table.name, key=v.key)
    for difference in remaining:
        report.counts[difference.kind] += 1
        if sum(1 for d in report.differences if d.kind == difference.kind) < KEPT_PER_KIND:
            report.differences.append(difference)
    report.target_rows = target.execute(
        sql.SQL("SELECT count(*) FROM {}").format(v.target)).fetchone()[0]  # type: ignore[index]
    report.seconds = time.monotonic() - started
    target.execute("DROP TABLE IF EXISTS wv_src, wv_keys")
    return report


def _recheck(v: TableVerifier, target: psycopg.Connection, source: Any,
             suspects: list[RowDifference]) -> list[RowDifference]:
    """Compare just these keys again, both sides as they are now."""
    keys = [d.key for d in suspects]
    rows = v.source_rows(source, keys)
    with target.transaction():
        v.stage(target, rows)
        found = v.staged_differences(target)
        in_source = {tuple(k) for (k,) in target.execute(
            sql.SQL("SELECT ARRAY[{}] FROM wv_src s").format(v.key_text("s")))}
    gone = [k for k in keys if tuple(k) not in in_source]
    found += [RowDifference(k, "extra") for k in v.target_has(target, gone)]
    return found


def _settle(v: TableVerifier, settings: Settings, target: psycopg.Connection, source: Any,
            suspects: list[RowDifference], head: BinlogPosition) -> list[RowDifference]:
    """Drop differences that were only changes in flight: re-compare once applied."""
    for _ in range(RECHECK_ROUNDS):
        direction = settling_direction(settings, target) if suspects else None
        if direction is None:
            return suspects
        if direction == "forward":
            wait_forward(target, head)
        else:
            wait_reverse(target)
        suspects = _recheck(v, target, source, suspects)
        head = current_position(source)
    return suspects


def _repair(v: TableVerifier, target: psycopg.Connection, source: Any,
            differences: list[RowDifference], report: TableReport) -> list[RowDifference]:
    keys = [d.key for d in differences]
    rows = v.source_rows(source, keys)
    present = {tuple(v.converter.key_of(row)) for row in rows}
    extra = [d.key for d in differences if d.kind == "extra"]
    report.repaired = v.repair(target, rows, extra)
    log.info("repaired", table=v.table.name, upserted=len(rows), deleted=len(extra),
             keys_gone_meanwhile=len(keys) - len(present) - len(extra))
    return _recheck(v, target, source, differences)


def exit_code(reports: list[TableReport]) -> int:
    return 0 if all(r.identical for r in reports) else 1


def render(reports: list[TableReport], repair: bool) -> str:
    lines = [f"{'table':<30} {'source':>10} {'target':>10} {'chunks':>7}  result"]
    for r in reports:
        if r.identical:
            result = "identical" + (f" (repaired {r.repaired} rows)" if r.repaired else "")
        else:
            result = ", ".join(f"{n} {kind}" for kind, n in r.counts.items() if n)
        lines.append(f"{r.table:<30} {r.source_rows:>10,} {r.target_rows:>10,} "
                     f"{r.chunks:>7}  {result}")
    for r in reports:
        for d in r.differences[:20]:
            key = d.key[0] if len(d.key) == 1 else tuple(d.key)
            what = {"missing": "missing in PostgreSQL", "extra": "only in PostgreSQL",
                    "differs": f"differs in {', '.join(d.columns)}"}[d.kind]
            lines.append(f"  {r.table} key={key!r}: {what}")
        if len(r.differences) > 20:
            lines.append(f"  {r.table}: ... {sum(r.counts.values()) - 20} more (--json lists "
                         f"up to {KEPT_PER_KIND} per kind)")
    bad = sum(1 for r in reports if not r.identical)
    lines.append("")
    if bad:
        lines.append(f"{bad} table(s) differ" + ("" if repair else
                                                  "; `wacdc verify --repair` re-copies "
                                                  "exactly those rows from the source"))
    else:
        lines.append(f"all {len(reports)} table(s) identical")
    return "\n".join(lines)
