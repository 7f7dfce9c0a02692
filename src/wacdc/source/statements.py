"""What one binlog QUERY event's statement is, and which tables it changes.

`parse_statement(query, default_db)` reads the statement text of a QUERY event with the
event's default database (`USE db`; may be empty) and says what it is (`kind`) and which
tables it names as its object (`tables`). An unqualified name belongs to the default
database, a qualified one to its own; case is kept as written (MySQL on Linux compares
table names case-sensitively), backticks are removed (a doubled backtick is one).

How it reads, in order:

1. The framing statements that come with every transaction (`BEGIN`, `COMMIT`,
   `ROLLBACK`, `SAVEPOINT`, `XA …`) are protocol keywords: the bare ones are looked up
   directly (well under 5 µs), the rest are read from the tokens below, never by the SQL
   parser.
2. A lexer that knows MySQL's lexical rules turns the text into tokens: comments
   (`/* */`, `-- `, `#`) are dropped, executable comments (`/*!40101 … */`,
   `/*!50001 … */`, MariaDB's `/*M!100100 … */`) are read as the statement they hold
   (whatever the version number: mysqldump's own ones all run on any server that takes
   its output), strings, backticked names and unquoted names with U+0080..U+FFFF are
   single tokens.
3. The statement is parsed by sqlglot's MySQL dialect. sqlglot falls back to an opaque
   `exp.Command` (or fails) on much of MySQL's DDL (`RENAME TABLE`, `REPLACE`,
   `LOAD DATA`, `ALTER TABLE … DISABLE KEYS / CONVERT TO / PARTITION …`,
   `CREATE INDEX … ALGORITHM=…`, `DROP INDEX … LOCK=…`, `CREATE TRIGGER`) and misreads
   some modifiers (`DELETE LOW_PRIORITY FROM t` as a delete from a table `LOW_PRIORITY`).
   So the object of every DDL statement is also read from the statement's head — the
   part of MySQL's grammar before the free-form tail (`ALTER [ONLINE] [IGNORE] TABLE
   name`, `RENAME TABLE a TO b, c TO d`, `DROP TABLE [IF EXISTS] a, b`, …) — and the
   top-level clauses of an `ALTER TABLE` are looked at for `RENAME TO` and for the
   partition operations that change rows without row events. When sqlglot understood the
   statement, its names must agree with the head's; when it did not (a Command or an
   error), the head decides: the binlog holds only statements the server executed, so a
   tail sqlglot does not know is valid MySQL, and nothing in it but the clauses looked at
   here changes which table is meant. The tail must still look whole (brackets that
   close, no last word such as `ADD` or `,` that always has more after it): sqlglot lets
   some cut texts pass too. DML modifiers (`LOW_PRIORITY`, `DELAYED`, `HIGH_PRIORITY`,
   `QUICK`, `IGNORE`) are taken out before sqlglot sees the text; `UPDATE`/`DELETE`
   are read from sqlglot's tree alone (aliases resolved; an unqualified `SET` column in
   a multi-table UPDATE counts every table of it as written).
   Statements whose first word alone says they change no table (`SET`, `GRANT`, `LOCK`,
   `SELECT`, `CREATE TRIGGER`, …, see `other` below) are not parsed further.
4. A statement that neither reads (a lexer error, several statements, an unknown head,
   an `UPDATE`/`DELETE` sqlglot cannot parse, names that disagree) comes back with
   `readable=False`, its kind guessed from its first words, and in `tables` every name a
   token scan finds (each word, backticked or double-quoted name in the default database,
   each `a.b` also as table `b` of database `a`): the caller stops if one is tracked.

`parse_statement` never raises.

Kinds and what the caller does with them (`tracked()` gives the tracked tables hit):

=========================  ================================================================
kind                       the caller
=========================  ================================================================
begin                      `BEGIN [WORK]`, `START TRANSACTION …`: a transaction starts.
commit                     `COMMIT …` (non-transactional engines; InnoDB ends with an XID
                           event): the transaction ends and is applied.
rollback                   `ROLLBACK [WORK] …`: the transaction's tracked rows are dropped.
savepoint                  `SAVEPOINT s` (`savepoint` = "s"): remember where it is.
rollback_to_savepoint      `ROLLBACK [WORK] TO [SAVEPOINT] s`: drop the rows after it.
release_savepoint          `RELEASE SAVEPOINT s`: forget it.
xa_start / xa_end          `XA START|BEGIN xid …` / `XA END xid …` (`xid` normalised).
xa_prepare                 `XA PREPARE xid`: the rows so far wait for the decision.
xa_commit                  `XA COMMIT xid [ONE PHASE]` (`one_phase`): apply that xid's rows.
xa_rollback                `XA ROLLBACK xid`: drop that xid's rows.
ddl_alter                  `ALTER TABLE t …` (any clause but a rename or a row-changing
                           partition one): re-read t's definition from the source and
                           evolve the target or stop (wacdc.schema.evolve).
ddl_create                 `CREATE [OR REPLACE] TABLE t …` (also `LIKE`, `AS SELECT`) and
                           `CREATE … INDEX i ON t` (`index` = "i"): a new table under a
                           tracked name (re-created, or `OR REPLACE`) must stop; an index on
                           a tracked table: re-read and evolve.
ddl_drop                   `DROP TABLE a, b …`: a tracked table is gone, stop.
                           `DROP INDEX i ON t` (`index` = "i"): re-read t and evolve.
ddl_rename                 `RENAME TABLE a TO b, c TO d` and `ALTER TABLE a RENAME [TO] b`
                           (`renames`; `tables` holds both sides): a tracked name renamed
                           away or replaced by another table (gh-ost and pt-osc cut-overs)
                           must be re-checked against the source or stop. An `ALTER TABLE`
                           rename may change columns in the same statement.
ddl_rows                   `ALTER TABLE t TRUNCATE|DROP|EXCHANGE|CONVERT PARTITION …`,
                           `DISCARD|IMPORT … TABLESPACE`: rows change without row events;
                           `tables` holds t and the exchanged table: stop if tracked.
ddl_drop_database          `DROP DATABASE|SCHEMA db` (`database` = "db", `tables` empty):
                           every tracked table of db is gone; tracked() returns them all.
truncate                   `TRUNCATE [TABLE] t`: empty the target table, in order.
dml                        `INSERT`, `REPLACE`, `UPDATE`, `DELETE` (multi-table too),
                           `INSERT … SELECT`, `LOAD DATA|XML`: rows written by a statement
                           (statement/mixed binlog format); `tables` holds only the written
                           tables: the rows are not in the stream, stop if tracked.
other                      nothing for the caller (`tables` empty): SET, GRANT/REVOKE, users
                           and roles, FLUSH, ANALYZE/OPTIMIZE/REPAIR/CHECK, LOCK/UNLOCK
                           TABLES, SELECT/DO/CALL/SHOW, CREATE/ALTER/DROP of views,
                           triggers, routines, events, sequences and servers (what a trigger
                           or event writes is logged as row events), CREATE/ALTER DATABASE,
                           `XA RECOVER`, temporary tables (`CREATE|DROP TEMPORARY TABLE`
                           never touch the base table of the same name).
=========================  ================================================================

A framing statement whose verb is known but whose rest is not (`XA COMMIT` with an xid
that does not read) keeps its kind, with `xid`/`savepoint` None and `readable=False`.

Not handled: the `ANSI_QUOTES` and `NO_BACKSLASH_ESCAPES` SQL modes (a statement they make
different reads as unreadable or as its plain-mode self), and `lower_case_table_names`
(names are compared as written).
"""

from __future__ import annotations

from wacdc.events import ParsedStatement
from wacdc.source.statement_ddl import alter, create, drop, rename, truncate
from wacdc.source.statement_dml import dml_or_other, insert, load
from wacdc.source.statement_framing import BARE, read_framing, xid_text
from wacdc.source.statement_lexer import (
    OTHER,
    Cursor,
    Tok,
    Unreadable,
    lex,
    scan,
    scan_safely,
    split_statements,
)

__all__ = ["parse_statement", "tracked", "xid_text"]


def tracked(parsed: ParsedStatement, database: str, tables: set[str]) -> list[str]:
    """The tracked tables (of `database`) that the statement touches, sorted."""
    if parsed.kind == "ddl_drop_database" and parsed.database == database:
        return sorted(tables)
    return sorted({t.name for t in parsed.tables if t.database == database and t.name in tables})


def parse_statement(query: str, default_db: str | None) -> ParsedStatement:
    """Classify one QUERY event's statement; never raises."""
    try:
        if len(query) < 40:
            key = query.strip()
            if key.endswith(";"):
                key = key[:-1].rstrip()
            bare = BARE.get(key.upper())
            if bare is not None:
                return bare
        return _parse(query, default_db or "")
    except Exception:  # noqa: BLE001 - any failure on any text: the caller decides, no raise
        return scan_safely("other", query, default_db or "")


# Objects of CREATE/ALTER/DROP that never change a table's shape or rows.
_OTHER_OBJECTS = frozenset({
    "VIEW", "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT", "USER", "ROLE", "SERVER",
    "DATABASE", "SCHEMA", "SEQUENCE", "TABLESPACE", "LOGFILE", "RESOURCE", "PACKAGE",
    "UNDO", "INSTANCE", "SPATIAL",
})


# Statements (by their first word) that never change a tracked table.
_OTHER_HEADS = frozenset({
    "SET", "GRANT", "REVOKE", "FLUSH", "ANALYZE", "OPTIMIZE", "REPAIR", "CHECK", "CHECKSUM",
    "LOCK", "UNLOCK", "CALL", "DO", "SELECT", "SHOW", "DESC", "DESCRIBE", "EXPLAIN",
    "HANDLER", "INSTALL", "UNINSTALL", "KILL", "RESET", "PURGE", "PREPARE", "EXECUTE",
    "DEALLOCATE", "CACHE", "SIGNAL", "RESIGNAL", "GET", "USE", "HELP", "BINLOG", "CHANGE",
    "STOP", "SHUTDOWN", "RESTART", "CLONE", "TABLE", "VALUES",
})


def _parse(query: str, db: str) -> ParsedStatement:
    toks, ok = lex(query)
    if not toks:
        return OTHER if ok else scan("other", toks, db)
    head = Cursor(toks, db).peek()
    if not ok:
        return scan(_guess(head), toks, db)
    try:
        routine = _routine_or_block(toks, db)
        if routine is not None:
            return routine
        statements = split_statements(toks)
        if not statements:
            return OTHER
        if len(statements) != 1:
            return scan(_guess(head), toks, db)
        return _statement(query, statements[0], db)
    except Unreadable as bad:
        result = scan(bad.kind, toks, db)
        if bad.database is not None:
            return ParsedStatement(result.kind, result.tables, readable=False,
                                   database=bad.database)
        return result


def _routine_or_block(toks: list[Tok], db: str) -> ParsedStatement | None:
    """CREATE/ALTER/DROP of a view, trigger, routine, event …: `other`, whatever their
    bodies hold (`;` among them). MariaDB's `BEGIN NOT ATOMIC …` block: unreadable."""
    cur = Cursor(toks, db)
    verb = cur.accept("CREATE", "ALTER", "DROP", "BEGIN")
    if verb == "BEGIN":
        return scan("other", toks, db) if cur.peek() == "NOT" else None
    if not verb:
        return None
    if verb == "CREATE" and cur.accept("OR"):
        cur.expect("other", "REPLACE")
    if verb != "DROP":
        cur.skip_object_options()
    word = cur.peek()
    if word == "SPATIAL" and cur.peek(1) in ("INDEX", "KEY"):
        return None
    if word in ("DATABASE", "SCHEMA") and verb == "DROP":
        return None
    if word in _OTHER_OBJECTS or (verb == "DROP" and word == "PREPARE"):
        return OTHER
    return None


def _guess(head: str) -> str:
    return {
        "ALTER": "ddl_alter", "CREATE": "ddl_create", "DROP": "ddl_drop",
        "RENAME": "ddl_rename", "TRUNCATE": "truncate", "INSERT": "dml", "REPLACE": "dml",
        "UPDATE": "dml", "DELETE": "dml", "LOAD": "dml", "BEGIN": "begin",
        "COMMIT": "commit", "ROLLBACK": "rollback", "SAVEPOINT": "savepoint",
        "RELEASE": "release_savepoint",
    }.get(head, "other")


def _statement(query: str, toks: list[Tok], db: str) -> ParsedStatement:
    cur = Cursor(toks, db)
    head = cur.peek()
    if head in ("BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "XA"):
        framing = read_framing(cur)
        if framing is not None:
            return framing
    if head == "ANALYZE" and cur.peek(1) in ("INSERT", "REPLACE", "UPDATE", "DELETE"):
        return _statement(query, toks[1:], db)  # MariaDB's ANALYZE runs the statement
    if head in _OTHER_HEADS or head == "START":
        return OTHER
    if head == "ALTER":
        return alter(query, cur)
    if head == "CREATE":
        return create(query, cur)
    if head == "DROP":
        return drop(query, cur)
    if head == "RENAME":
        return rename(cur)
    if head == "TRUNCATE":
        return truncate(query, cur)
    if head in ("INSERT", "REPLACE"):
        return insert(query, cur)
    if head == "LOAD":
        return load(cur)
    return dml_or_other(query, toks, db, _guess(head))
