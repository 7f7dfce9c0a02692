"""Transactions framed by what they are (src/wacdc/source/framing.py), on real binlogs.

Savepoints inside a transaction, XA transactions (two-phase, one-phase, rolled back, and
prepared with the decision later, across a kill -9), and a ROLLBACK of a transaction that
touched a non-transactional table. Each on both flavours where the server allows it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from pymysqlreplication.event import QueryEvent, XidEvent
from pymysqlreplication.row_event import WriteRowsEvent

from tests.support.flavours import only_on
from tests.support.harness import REPO, SourceDb, TargetDb, run_cli, wacdc_env
from tests.support.independent import independent_differences
from wacdc.config import parse_url
from wacdc.errors import BinlogEventError
from wacdc.events import BinlogPosition, GtidState, RowChange, Transaction
from wacdc.source.binlog import open_stream
from wacdc.source.connection import connect
from wacdc.source.framing import transactions
from wacdc.source.position import current_position

TABLE = "WhatsAppCustomer"


def _head(db: SourceDb) -> BinlogPosition:
    with connect(parse_url(db.url, "mysql")) as conn:
        return current_position(conn)


def _framed(db: SourceDb, start: BinlogPosition) -> list[Transaction]:
    """Every transaction since `start` as the daemon's reader frames it."""
    url = parse_url(db.url, "mysql")
    stream = open_stream(url, 4900 + start.pos % 97, start, [TABLE], transactions=True,
                         mariadb=db.server.is_mariadb)
    try:
        gtids = GtidState(start.gtid, db.server.is_mariadb)
        return [item for item in transactions(stream, db.name, {TABLE}, gtids)
                if isinstance(item, Transaction)]
    finally:
        stream.close()


def _insert(n: int) -> str:
    return (f"INSERT INTO {TABLE} (id, firstName, phoneNumber, updatedAt) "
            f"VALUES ('c{n}', 'n', '+{n}', NOW(3))")


def _ids(target: TargetDb) -> set[str]:
    with target.connect() as pg:
        return {r[0] for r in pg.execute(f'SELECT id FROM "{TABLE}"').fetchall()}


def test_a_savepoint_transaction_is_one_transaction_ending_at_its_commit(
        source_db: SourceDb) -> None:
    start = _head(source_db)
    source_db.execute("BEGIN", _insert(1), "SAVEPOINT s1", _insert(2), "SAVEPOINT `s 2`",
                      _insert(3), "ROLLBACK TO SAVEPOINT `s 2`", _insert(4),
                      "RELEASE SAVEPOINT s1", "COMMIT")
    head = _head(source_db)
    framed = [t for t in _framed(source_db, start) if t.changes]
    assert len(framed) == 1
    (txn,) = framed
    assert [c.after[0] for c in txn.changes if c.after] == ["c1", "c2", "c4"]
    assert txn.end.key == head.key  # the checkpoint is its commit, nothing inside it
    assert txn.checkpoint is None


def test_a_statement_logged_write_inside_a_transaction_does_not_end_it(
        source_db: SourceDb) -> None:
    # binlog_format=MIXED: UUID() makes the tracked inserts row-logged, the untracked
    # insert between them is logged as its statement, inside the same BEGIN..COMMIT.
    source_db.execute("CREATE TABLE IF NOT EXISTS mixed_log (id INT PRIMARY KEY, note TEXT)",
                      "DELETE FROM mixed_log")
    start = _head(source_db)
    unsafe = ("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, notes, updatedAt) "
              "VALUES ('c{n}', 'n', '+{n}', UUID(), NOW(3))")
    source_db.execute("SET SESSION binlog_format = 'MIXED'", "BEGIN", unsafe.format(n=40),
                      "INSERT INTO mixed_log VALUES (1, 'statement-logged')",
                      unsafe.format(n=41), "COMMIT")
    head = _head(source_db)
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SHOW BINLOG EVENTS IN '{start.file}' FROM {start.pos}")
        queries = [row[5] for row in cur.fetchall() if row[2] == "Query"]
    assert any("mixed_log" in q for q in queries), queries  # the shape under test
    framed = [t for t in _framed(source_db, start) if t.changes]
    assert [[c.after[0] for c in t.changes if c.after] for t in framed] == [["c40", "c41"]]
    assert framed[0].end.key == head.key  # one transaction, its checkpoint at its commit


def test_xa_transactions_apply_at_their_commit_and_vanish_at_their_rollback(
        source_db: SourceDb) -> None:
    start = _head(source_db)
    source_db.execute("XA START 'x1'", _insert(10), "XA END 'x1'", "XA PREPARE 'x1'",
                      "XA ROLLBACK 'x1'")
    source_db.execute("XA START 'x2', 'b', 7", _insert(20), "XA END 'x2', 'b', 7",
                      "XA PREPARE 'x2', 'b', 7", "XA COMMIT 'x2', 'b', 7")
    source_db.execute("XA START 'x3'", _insert(30), "XA END 'x3'", "XA COMMIT 'x3' ONE PHASE")
    framed = [t for t in _framed(source_db, start) if t.changes]
    assert [[c.after[0] for c in t.changes if c.after] for t in framed] == [["c20"], ["c30"]]
    assert all(t.checkpoint is None for t in framed)


def test_a_prepared_xa_transaction_waits_holds_the_checkpoint_and_survives_kill_9(
        source_db: SourceDb, target_db: TargetDb) -> None:
    env = wacdc_env(source_db, target_db, WACDC_TABLES=TABLE)
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    prepared = source_db.connect()
    with prepared.cursor() as cur:
        for sql in ("XA START 'late'", _insert(100), "XA END 'late'", "XA PREPARE 'late'"):
            cur.execute(sql)
    try:
        source_db.execute("FLUSH BINARY LOGS",  # the decision will be in a later file
                          _insert(101))  # committed after the prepare
        result = run_cli("run", "--exit-when-caught-up", env=env)
        assert result.code == 0, result.output[-3000:]
        assert _ids(target_db) == {"c101"}  # nothing of the prepared one early
        with target_db.connect() as pg:
            held = pg.execute("SELECT binlog_file, binlog_pos FROM wacdc.state").fetchone()
        assert BinlogPosition(*held) < _head(source_db)  # the checkpoint waits before it

        proc = subprocess.Popen([sys.executable, "-m", "wacdc.cli", "run"], env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)  # a kill -9 while the decision is pending
        proc.wait()
        assert _ids(target_db) == {"c101"}
    finally:
        prepared.close()  # the prepared transaction survives its session
    source_db.execute("XA COMMIT 'late'", _insert(102))
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output[-3000:]
    assert _ids(target_db) == {"c100", "c101", "c102"}
    assert independent_differences(source_db, target_db, [TABLE]) == {}
    with target_db.connect() as pg:  # decided: the checkpoint is the head again
        now = BinlogPosition(*pg.execute("SELECT binlog_file, binlog_pos FROM wacdc.state")
                             .fetchone())
    assert now.key == _head(source_db).key


def test_rows_rolled_back_to_a_savepoint_but_logged_are_dropped(
        source_db: SourceDb, target_db: TargetDb) -> None:
    only_on(source_db.server, "mariadb", "MySQL's enforce_gtid_consistency refuses "
            "non-transactional and transactional tables in one transaction")
    source_db.execute("CREATE TABLE audit_log (id INT PRIMARY KEY, note TEXT) ENGINE=MyISAM")
    env = wacdc_env(source_db, target_db, WACDC_TABLES=TABLE)
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    start = _head(source_db)
    with source_db.connect() as conn, conn.cursor() as cur:
        conn.autocommit(False)
        cur.execute("INSERT INTO audit_log VALUES (1, 'kept: MyISAM')")
        cur.execute(_insert(200))
        cur.execute("SAVEPOINT s")
        cur.execute(_insert(201))
        cur.execute("INSERT INTO audit_log VALUES (2, 'also kept')")
        cur.execute("ROLLBACK TO SAVEPOINT s")
        cur.execute(_insert(202))
        conn.commit()
        cur.execute("INSERT INTO audit_log VALUES (3, 'kept')")
        cur.execute(_insert(203))
        conn.rollback()
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SHOW BINLOG EVENTS IN '{start.file}' FROM {start.pos}")
        logged = [row[5] for row in cur.fetchall()]
    # A MyISAM row after the savepoint: MariaDB logs the InnoDB row c201 *and* the
    # ROLLBACK TO that undoes it. Applied blindly, c201 would appear in PostgreSQL.
    assert any(info.startswith("ROLLBACK TO") for info in logged), logged
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output[-3000:]
    assert _ids(target_db) == {"c200", "c202"}
    assert independent_differences(source_db, target_db, [TABLE]) == {}


# --- the framer on hand-made event sequences (shapes a server writes rarely) ---------------

class _Stream:
    """Just what the framer reads of a BinLogStreamReader: events, file and position."""

    def __init__(self, events: list[object]) -> None:
        self.events, self.log_file, self.log_pos = events, "binlog.000003", 4

    def __iter__(self):  # type: ignore[no-untyped-def]
        for event in self.events:
            self.log_pos += 100
            yield event


def _query(text: str, schema: str = "db") -> QueryEvent:
    event = QueryEvent.__new__(QueryEvent)
    event.query, event.schema, event.timestamp = text, schema.encode(), 1_700_000_000
    return event


def _xid() -> XidEvent:
    event = XidEvent.__new__(XidEvent)
    event.timestamp = 1_700_000_000
    return event


def _frame(events: list[object]) -> list[object]:
    return list(transactions(_Stream(events), "db", {TABLE}))  # type: ignore[arg-type]


def test_a_rollback_query_ends_the_transaction_and_keeps_no_tracked_rows() -> None:
    items = _frame([_query("BEGIN"), _query("/* app */ ROLLBACK"), _query("BEGIN"), _xid()])
    assert [type(i).__name__ for i in items] == ["Transaction", "Transaction"]
    assert [i.end.pos for i in items] == [204, 404]  # type: ignore[attr-defined]


def test_framing_statements_are_not_statements_or_commits() -> None:
    items = _frame([_query("BEGIN"), _query("SAVEPOINT `a``b`"), _query("RELEASE SAVEPOINT a"),
                    _query("ROLLBACK TO `a``b`"), _xid()])
    assert len(items) == 1 and items[0].end.pos == 504  # type: ignore[attr-defined]


def test_a_rollback_to_an_unknown_savepoint_stops_with_its_position() -> None:
    with pytest.raises(BinlogEventError, match=r"ROLLBACK TO nope.*binlog\.000003:204"):
        _frame([_query("BEGIN"), _query("ROLLBACK TO nope")])


def test_an_xa_commit_of_a_transaction_prepared_before_the_start_stops() -> None:
    with pytest.raises(BinlogEventError, match=r"XA COMMIT X'6f6c64',X'',1 at "
                       r"binlog\.000003:104.*XA RECOVER"):
        _frame([_query("XA COMMIT X'6f6c64',X'',1")])


def test_an_xa_rollback_of_an_unknown_transaction_is_a_plain_transaction() -> None:
    items = _frame([_query("XA ROLLBACK X'6f6c64',X'',1")])
    assert len(items) == 1 and not items[0].changes  # type: ignore[attr-defined]


def _rows(table: str, n: int) -> WriteRowsEvent:
    event = WriteRowsEvent.__new__(WriteRowsEvent)
    event.schema, event.table = "db", table
    event.wacdc_test_keys = [n]  # type: ignore[attr-defined]
    return event


def test_a_rollback_keeps_the_rows_of_non_transactional_tables_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def changes(_stream: object, event: WriteRowsEvent, at: BinlogPosition
                ) -> list[RowChange]:
        return [RowChange(event.table, "insert", ("id",), None, (n,), at)
                for n in event.wacdc_test_keys]  # type: ignore[attr-defined]

    monkeypatch.setattr("wacdc.source.framing.row_changes_of", changes)
    events = [_query("BEGIN"), _rows("ledger", 1), _rows("heap", 1), _query("SAVEPOINT s"),
              _rows("ledger", 2), _rows("heap", 2), _query("ROLLBACK TO s"),
              _rows("ledger", 3), _query("ROLLBACK")]

    def framed(kept: frozenset[str]) -> list[tuple[str, int]]:
        [txn] = transactions(_Stream(events), "db", {"ledger", "heap"},  # type: ignore[arg-type]
                             kept_at_rollback=kept)
        return [(c.table, c.after[0]) for c in txn.changes]  # type: ignore[union-attr]

    # MyISAM kept its rows through both rollbacks; InnoDB undid every one of its own
    assert framed(frozenset({"heap"})) == [("heap", 1), ("heap", 2)]
    assert framed(frozenset()) == []  # all tracked tables InnoDB: nothing of it stays


def test_statements_reach_the_caller_by_their_own_names() -> None:
    items = _frame([
        _query(f"-- AlterTable\nALTER TABLE `{TABLE}` ADD COLUMN `c` INT NULL"),
        _query("CREATE TABLE x (i INT)", "other"),  # untracked
        _query(f"TRUNCATE TABLE db.{TABLE}", ""),  # no default database: its own name
        _query(f"TRUNCATE TABLE otherdb.{TABLE}", "db"),  # same name, another database
        _query(f"/* app */ INSERT INTO {TABLE} (id) VALUES ('stmt')"),  # statement format
    ])
    statements = [(i.parsed.kind, i.tables) for i in items  # type: ignore[attr-defined]
                  if type(i).__name__ == "Statement"]
    assert statements == [("ddl_alter", (TABLE,)), ("truncate", (TABLE,)),
                          ("dml", (TABLE,))]
    assert sum(type(i).__name__ == "Transaction" for i in items) == 5


def test_a_non_transactional_tracked_table_under_savepoints_and_rollbacks_ends_identical(
        source_db: SourceDb, target_db: TargetDb) -> None:
    only_on(source_db.server, "mariadb", "MySQL's enforce_gtid_consistency refuses "
            "non-transactional and transactional tables in one transaction")
    source_db.execute("CREATE TABLE ledger (id INT PRIMARY KEY, note TEXT) ENGINE=InnoDB",
                      "CREATE TABLE heap (id INT PRIMARY KEY, note TEXT) ENGINE=MyISAM")
    env = wacdc_env(source_db, target_db, WACDC_PROFILE="plain", WACDC_TABLES="ledger,heap")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    start = _head(source_db)
    with source_db.connect() as conn, conn.cursor() as cur:
        conn.autocommit(False)
        cur.execute("INSERT INTO ledger VALUES (1, 'committed')")
        cur.execute("INSERT INTO heap VALUES (1, 'before the savepoint')")
        cur.execute("SAVEPOINT s")
        cur.execute("INSERT INTO ledger VALUES (2, 'rolled back to s')")
        cur.execute("INSERT INTO heap VALUES (2, 'kept: MyISAM has no savepoints')")
        cur.execute("ROLLBACK TO SAVEPOINT s")
        cur.execute("INSERT INTO ledger VALUES (3, 'committed')")
        conn.commit()
        cur.execute("INSERT INTO ledger VALUES (4, 'rolled back')")
        cur.execute("INSERT INTO heap VALUES (3, 'kept: MyISAM has no rollback')")
        cur.execute("UPDATE heap SET note = 'updated, kept' WHERE id = 1")
        conn.rollback()
    with source_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM heap ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [1, 2, 3]  # what the source kept
        cur.execute("SELECT id FROM ledger ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [1, 3]
        cur.execute(f"SHOW BINLOG EVENTS IN '{start.file}' FROM {start.pos}")
        logged = [row[5] for row in cur.fetchall()]
    # MariaDB logs the MyISAM rows (ROW format) as transactions of their own, and the
    # InnoDB rows rolled back to the savepoint with the ROLLBACK TO that undoes them
    assert any(info.startswith("ROLLBACK TO") for info in logged), logged
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 0, result.output[-3000:]
    assert independent_differences(source_db, target_db, ["ledger", "heap"]) == {}
