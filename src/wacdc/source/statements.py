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

import logging
import re
from typing import NamedTuple

import sqlglot
from sqlglot import exp

from wacdc.events import ParsedStatement, TableRef
from wacdc.schema.charsets import unquote_body


def tracked(parsed: ParsedStatement, database: str, tables: set[str]) -> list[str]:
    """The tracked tables (of `database`) that the statement touches, sorted."""
    if parsed.kind == "ddl_drop_database" and parsed.database == database:
        return sorted(tables)
    return sorted({t.name for t in parsed.tables if t.database == database and t.name in tables})


def xid_text(gtrid: bytes, bqual: bytes, format_id: int) -> str:
    """An xid as `ParsedStatement.xid` has it (and MySQL writes it): X'..',X'..',n."""
    return f"X'{gtrid.hex()}',X'{bqual.hex()}',{format_id}"


def parse_statement(query: str, default_db: str | None) -> ParsedStatement:
    """Classify one QUERY event's statement; never raises."""
    try:
        if len(query) < 40:
            key = query.strip()
            if key.endswith(";"):
                key = key[:-1].rstrip()
            bare = _BARE.get(key.upper())
            if bare is not None:
                return bare
        return _parse(query, default_db or "")
    except Exception:  # noqa: BLE001 - any failure on any text: the caller decides, no raise
        return _scan_safely("other", query, default_db or "")


# --- the bare framing statements --------------------------------------------------------

_BEGIN = ParsedStatement("begin", ())
_COMMIT = ParsedStatement("commit", ())
_ROLLBACK = ParsedStatement("rollback", ())
_OTHER = ParsedStatement("other", ())
_BARE = {
    "BEGIN": _BEGIN, "BEGIN WORK": _BEGIN, "START TRANSACTION": _BEGIN,
    "COMMIT": _COMMIT, "COMMIT WORK": _COMMIT,
    "ROLLBACK": _ROLLBACK, "ROLLBACK WORK": _ROLLBACK,
}

# --- the lexer ---------------------------------------------------------------------------

_ID = "0-9A-Za-z_$\u0080-\uffff"  # what MySQL allows in an unquoted name
_SQ = r"'[^'\\]*(?:(?:\\[\s\S]|'')[^'\\]*)*'"
_DQ = r'"[^"\\]*(?:(?:\\[\s\S]|"")[^"\\]*)*"'
_BQ = r"`[^`]*(?:``[^`]*)*`"
_TOKEN = re.compile("|".join((
    r"(?P<ws>\s+)",
    r"(?P<line>(?:#|--(?=[\x00-\x20]|$))[^\n]*)",
    r"(?P<xopen>/\*M?!(?:[0-9]{5,6})?)",
    r"(?P<block>/\*[\s\S]*?\*/)",
    r"(?P<xclose>\*/)",
    f"(?P<qid>{_BQ})",
    f"(?P<str>{_SQ})",
    f"(?P<dstr>{_DQ})",
    f"(?P<hex>[xX]'[0-9a-fA-F]*'|0x[0-9a-fA-F]+(?![{_ID}]))",
    f"(?P<bit>[bB]'[01]*'|0b[01]+(?![{_ID}]))",
    f"(?P<var>@@?(?:{_BQ}|{_SQ}|{_DQ}|[{_ID}.]+))",
    f"(?P<word>[{_ID}]+)",
    r"(?P<bad>['\"`]|/\*)",
    r"(?P<op>[\s\S])",
)))
_SKIPPED = frozenset({"ws", "line", "block"})


class _Tok(NamedTuple):
    kind: str  # word, qid, str, dstr, hex, bit, var, op
    value: str  # word: as written; qid: the name; str/dstr/hex/bit: as written; op: the char
    start: int
    end: int


def _lex(text: str) -> tuple[list[_Tok], bool]:
    """The tokens of `text` (comments dropped, executable comments opened) and whether
    the text lexed cleanly (no unterminated quote or comment)."""
    toks: list[_Tok] = []
    ok = True
    inside = False  # in an executable comment
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "op"
        if kind in _SKIPPED:
            continue
        start, end = m.span()
        if kind == "xopen":
            ok = ok and not inside
            inside = True
        elif kind == "xclose":
            if inside:
                inside = False
            else:
                toks.append(_Tok("op", "*", start, start + 1))
                toks.append(_Tok("op", "/", start + 1, end))
        elif kind == "bad":
            ok = False
        elif kind == "qid":
            toks.append(_Tok(kind, m.group()[1:-1].replace("``", "`"), start, end))
        else:
            toks.append(_Tok(kind, m.group(), start, end))
    return toks, ok and not inside


def _text(query: str, toks: list[_Tok], skip: frozenset[int] = frozenset(),
          first: str | None = None) -> str:
    """The statement again without its comments (for sqlglot): tokens that touched still
    touch, others are one space apart; `skip` leaves tokens out, `first` replaces the
    first token."""
    out: list[str] = []
    prev_end = -1
    prev_last = ""
    for i, tok in enumerate(toks):
        if i in skip:
            continue
        piece = first if i == 0 and first is not None else query[tok.start:tok.end]
        if out and (tok.start != prev_end or (prev_last == "-" and piece.startswith("-"))):
            out.append(" ")  # "a - -1" must not become a "--1" comment to sqlglot
        out.append(piece)
        prev_end, prev_last = tok.end, piece[-1:]
    return "".join(out)


# --- the reading of a head ----------------------------------------------------------------

class _Unreadable(Exception):
    """The head does not read: `kind` is the guess, `database` (DROP DATABASE) if known."""

    def __init__(self, kind: str, database: str | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.database = database


class _Cur:
    def __init__(self, toks: list[_Tok], default_db: str) -> None:
        self.toks = toks
        self.i = 0
        self.db = default_db

    def peek(self, k: int = 0) -> str:
        """The word (upper case) or operator at i+k; "" for anything else or the end."""
        j = self.i + k
        if j >= len(self.toks):
            return ""
        tok = self.toks[j]
        if tok.kind == "word":
            return tok.value.upper()
        return tok.value if tok.kind == "op" else ""

    def at_end(self) -> bool:
        return self.i >= len(self.toks)

    def accept(self, *words: str) -> str:
        word = self.peek()
        if word and word in words:
            self.i += 1
            return word
        return ""

    def expect(self, kind: str, *words: str) -> str:
        word = self.accept(*words)
        if not word:
            raise _Unreadable(kind)
        return word

    def ident(self) -> str | None:
        if self.at_end():
            return None
        tok = self.toks[self.i]
        if tok.kind == "qid" or (tok.kind == "word" and not _is_number(tok.value)):
            self.i += 1
            return tok.value
        return None

    def table(self, kind: str) -> TableRef:
        first = self.ident()
        if first is None:
            raise _Unreadable(kind)
        if self.peek() == ".":
            self.i += 1
            second = self.ident()
            if second is None:
                raise _Unreadable(kind)
            return TableRef(first, second)
        return TableRef(self.db, first)

    def skip_wait(self) -> None:
        """MariaDB's `WAIT n` / `NOWAIT`."""
        if self.accept("NOWAIT"):
            return
        if self.peek() == "WAIT" and self.i + 1 < len(self.toks):
            self.i += 2

    def skip_user(self) -> None:
        """A user after DEFINER =: 'u'@'h', `u`@`h`, u@h, CURRENT_USER[()]."""
        if self.accept("CURRENT_USER"):
            if self.peek() == "(" and self.peek(1) == ")":
                self.i += 2
            return
        if self.at_end() or self.toks[self.i].kind not in ("str", "dstr", "qid", "word"):
            raise _Unreadable("other")
        self.i += 1
        if self.peek() == "@":
            self.i += 2
        elif not self.at_end() and self.toks[self.i].kind == "var" and \
                not self.toks[self.i].value.startswith("@@"):
            self.i += 1

    def skip_object_options(self) -> None:
        """CREATE/ALTER options before the object word: DEFINER, ALGORITHM, SQL SECURITY,
        AGGREGATE."""
        while True:
            if self.accept("DEFINER"):
                self.accept("=")
                self.skip_user()
            elif self.accept("ALGORITHM"):
                self.accept("=")
                self.i += 1
            elif self.peek() == "SQL" and self.peek(1) == "SECURITY":
                self.i += 3
            elif not self.accept("AGGREGATE"):
                return

    def rest(self) -> list[_Tok]:
        return self.toks[self.i:]


def _is_number(word: str) -> bool:
    return word.isascii() and word.isdigit()


def _spec_starts(toks: list[_Tok]) -> list[int]:
    """Where each top-level comma-separated clause of `toks` starts."""
    starts = [0] if toks else []
    depth = 0
    for i, tok in enumerate(toks):
        if tok.kind != "op":
            continue
        if tok.value == "(":
            depth += 1
        elif tok.value == ")":
            depth -= 1
        elif tok.value == "," and depth == 0 and i + 1 < len(toks):
            starts.append(i + 1)
    return starts


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
_DML_MODIFIERS = frozenset({"LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "QUICK", "IGNORE"})
_MAX_CHECKED = 100_000  # longer INSERT/REPLACE texts are read from their head alone


def _parse(query: str, db: str) -> ParsedStatement:
    toks, ok = _lex(query)
    if not toks:
        return _OTHER if ok else _scan("other", toks, db)
    head = _Cur(toks, db).peek()
    if not ok:
        return _scan(_guess(head), toks, db)
    try:
        routine = _routine_or_block(toks, db)
        if routine is not None:
            return routine
        statements = _split(toks)
        if not statements:
            return _OTHER
        if len(statements) != 1:
            return _scan(_guess(head), toks, db)
        return _statement(query, statements[0], db)
    except _Unreadable as bad:
        result = _scan(bad.kind, toks, db)
        if bad.database is not None:
            return ParsedStatement(result.kind, result.tables, readable=False,
                                   database=bad.database)
        return result


def _split(toks: list[_Tok]) -> list[list[_Tok]]:
    statements: list[list[_Tok]] = [[]]
    for tok in toks:
        if tok.kind == "op" and tok.value == ";":
            statements.append([])
        else:
            statements[-1].append(tok)
    return [s for s in statements if s]


def _routine_or_block(toks: list[_Tok], db: str) -> ParsedStatement | None:
    """CREATE/ALTER/DROP of a view, trigger, routine, event …: `other`, whatever their
    bodies hold (`;` among them). MariaDB's `BEGIN NOT ATOMIC …` block: unreadable."""
    cur = _Cur(toks, db)
    verb = cur.accept("CREATE", "ALTER", "DROP", "BEGIN")
    if verb == "BEGIN":
        return _scan("other", toks, db) if cur.peek() == "NOT" else None
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
        return _OTHER
    return None


def _guess(head: str) -> str:
    return {
        "ALTER": "ddl_alter", "CREATE": "ddl_create", "DROP": "ddl_drop",
        "RENAME": "ddl_rename", "TRUNCATE": "truncate", "INSERT": "dml", "REPLACE": "dml",
        "UPDATE": "dml", "DELETE": "dml", "LOAD": "dml", "BEGIN": "begin",
        "COMMIT": "commit", "ROLLBACK": "rollback", "SAVEPOINT": "savepoint",
        "RELEASE": "release_savepoint",
    }.get(head, "other")


def _statement(query: str, toks: list[_Tok], db: str) -> ParsedStatement:
    cur = _Cur(toks, db)
    head = cur.peek()
    if head in ("BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "XA"):
        framing = _framing(cur)
        if framing is not None:
            return framing
    if head == "ANALYZE" and cur.peek(1) in ("INSERT", "REPLACE", "UPDATE", "DELETE"):
        return _statement(query, toks[1:], db)  # MariaDB's ANALYZE runs the statement
    if head in _OTHER_HEADS or head == "START":
        return _OTHER
    if head == "ALTER":
        return _alter(query, cur)
    if head == "CREATE":
        return _create(query, cur)
    if head == "DROP":
        return _drop(query, cur)
    if head == "RENAME":
        return _rename(cur)
    if head == "TRUNCATE":
        return _truncate(query, cur)
    if head in ("INSERT", "REPLACE"):
        return _insert(query, cur)
    if head == "LOAD":
        return _load(cur)
    return _dml_or_other(query, toks, db, _guess(head))


# --- framing ------------------------------------------------------------------------------

def _framing(cur: _Cur) -> ParsedStatement | None:
    head = cur.peek()
    cur.i += 1
    if head == "BEGIN":
        cur.accept("WORK")
        return _done(cur, _BEGIN)
    if head == "START":
        if not cur.accept("TRANSACTION"):
            return None  # START REPLICA / SLAVE / GROUP_REPLICATION: other
        while cur.accept("WITH", "CONSISTENT", "SNAPSHOT", "READ", "WRITE", "ONLY", ","):
            pass
        return _done(cur, _BEGIN)
    if head == "COMMIT":
        cur.accept("WORK")
        _chain_release(cur, "commit")
        return _done(cur, _COMMIT)
    if head == "ROLLBACK":
        cur.accept("WORK")
        if cur.accept("TO"):
            cur.accept("SAVEPOINT")
            return _savepoint_named(cur, "rollback_to_savepoint")
        _chain_release(cur, "rollback")
        return _done(cur, _ROLLBACK)
    if head == "SAVEPOINT":
        return _savepoint_named(cur, "savepoint")
    if head == "RELEASE":
        cur.expect("release_savepoint", "SAVEPOINT")
        return _savepoint_named(cur, "release_savepoint")
    return _xa(cur)


def _done(cur: _Cur, result: ParsedStatement) -> ParsedStatement:
    _end(cur, result.kind)
    return result


def _end(cur: _Cur, kind: str) -> None:
    """The statement must end here."""
    if not cur.at_end():
        raise _Unreadable(kind)


def _chain_release(cur: _Cur, kind: str) -> None:
    if cur.accept("AND"):
        cur.accept("NO")
        cur.expect(kind, "CHAIN")
    cur.accept("NO")
    cur.accept("RELEASE")


def _savepoint_named(cur: _Cur, kind: str) -> ParsedStatement:
    name = cur.ident()
    if name is None:
        raise _Unreadable(kind)
    return _done(cur, ParsedStatement(kind, (), savepoint=name.lower()))


_XA_VERBS = {"START": "xa_start", "BEGIN": "xa_start", "END": "xa_end",
             "PREPARE": "xa_prepare", "COMMIT": "xa_commit", "ROLLBACK": "xa_rollback"}


def _xa(cur: _Cur) -> ParsedStatement:
    verb = cur.peek()
    if verb == "RECOVER":
        return _OTHER
    kind = _XA_VERBS.get(verb)
    if kind is None:
        raise _Unreadable("other")
    cur.i += 1
    xid = _xid(cur, kind)
    one_phase = False
    if kind == "xa_start":
        cur.accept("JOIN", "RESUME")
    elif kind == "xa_end" and cur.accept("SUSPEND") and cur.accept("FOR"):
        cur.expect(kind, "MIGRATE")
    elif kind == "xa_commit" and cur.accept("ONE"):
        cur.expect(kind, "PHASE")
        one_phase = True
    return _done(cur, ParsedStatement(kind, (), xid=xid, one_phase=one_phase))


def _xid(cur: _Cur, kind: str) -> str:
    gtrid = _xid_part(cur, kind)
    bqual = b""
    format_id = 1
    if cur.accept(","):
        bqual = _xid_part(cur, kind)
        if cur.accept(","):
            if cur.at_end():
                raise _Unreadable(kind)
            tok = cur.toks[cur.i]
            cur.i += 1
            if tok.kind == "word" and _is_number(tok.value):
                format_id = int(tok.value)
            elif tok.kind == "hex" and tok.value[:2] == "0x":
                format_id = int(tok.value[2:], 16)
            else:
                raise _Unreadable(kind)
    return xid_text(gtrid, bqual, format_id)


def _xid_part(cur: _Cur, kind: str) -> bytes:
    if cur.at_end():
        raise _Unreadable(kind)
    tok = cur.toks[cur.i]
    cur.i += 1
    if tok.kind in ("str", "dstr"):
        return _unquote(tok.value).encode("utf-8")
    if tok.kind == "hex":
        digits = tok.value[2:] if tok.value[:2] == "0x" else tok.value[2:-1]
        if tok.value[:2] != "0x" and len(digits) % 2:
            raise _Unreadable(kind)
        return bytes.fromhex(digits.rjust(len(digits) + len(digits) % 2, "0"))
    if tok.kind == "bit":
        digits = tok.value[2:] if tok.value[:2] == "0b" else tok.value[2:-1]
        if not digits:
            return b""
        return int(digits, 2).to_bytes((len(digits) + 7) // 8, "big")
    raise _Unreadable(kind)


def _unquote(literal: str) -> str:
    """A MySQL string literal's value (backslash escapes, doubled quotes)."""
    return unquote_body(literal[1:-1], literal[0])


# --- DDL ----------------------------------------------------------------------------------

def _alter(query: str, cur: _Cur) -> ParsedStatement:
    cur.i += 1
    while cur.accept("ONLINE", "OFFLINE", "IGNORE"):
        pass
    cur.expect("ddl_alter", "TABLE")
    if cur.accept("IF"):
        cur.expect("ddl_alter", "EXISTS")
    ref = cur.table("ddl_alter")
    cur.skip_wait()
    renames: list[TableRef] = []
    others: list[TableRef] = []
    rows = False
    tail = cur.rest()
    for start in _spec_starts(tail):
        spec = _Cur(tail, cur.db)
        spec.i = start
        first = spec.peek()
        second = spec.peek(1)
        if first == "RENAME" and second not in ("COLUMN", "INDEX", "KEY"):
            spec.i += 1
            spec.accept("TO", "AS")
            renames.append(spec.table("ddl_rename"))
        elif (first in ("TRUNCATE", "DROP") and second == "PARTITION") or \
                first in ("DISCARD", "IMPORT"):
            rows = True
        elif first == "EXCHANGE" and second == "PARTITION":
            rows = True
            spec.i += 3  # EXCHANGE PARTITION p
            spec.expect("ddl_rows", "WITH")
            spec.expect("ddl_rows", "TABLE")
            others.append(spec.table("ddl_rows"))
        elif first == "CONVERT" and second in ("PARTITION", "TABLE"):  # MariaDB 10.7
            rows = True
            spec.i += 2
            if second == "PARTITION":
                spec.i += 1
                spec.expect("ddl_rows", "TO")
                spec.expect("ddl_rows", "TABLE")
            others.append(spec.table("ddl_rows"))
    if len(renames) > 1:
        raise _Unreadable("ddl_rename")
    ast = _sqlglot(_text(query, cur.toks))
    _check_tail(tail, "ddl_alter", need=False)
    if isinstance(ast, exp.Alter):
        theirs = [_ref(a.this, cur.db) for a in ast.args.get("actions") or []
                  if isinstance(a, exp.AlterRename)]
        if _ref(ast.this, cur.db) != ref or (theirs and theirs != renames):
            raise _Unreadable("ddl_alter")
    if rows:
        return ParsedStatement("ddl_rows", _unique([ref, *others, *renames]))
    if renames:
        return ParsedStatement("ddl_rename", (ref, renames[0]), renames=((ref, renames[0]),))
    return ParsedStatement("ddl_alter", (ref,))


def _create(query: str, cur: _Cur) -> ParsedStatement:
    cur.i += 1
    if cur.accept("OR"):
        cur.expect("ddl_create", "REPLACE")
    temporary = False
    while word := cur.accept("TEMPORARY", "ONLINE", "OFFLINE", "UNIQUE", "FULLTEXT", "SPATIAL"):
        temporary = temporary or word == "TEMPORARY"
    what = cur.expect("ddl_create", "TABLE", "INDEX")
    if what == "TABLE":
        if cur.accept("IF"):
            cur.expect("ddl_create", "NOT")
            cur.expect("ddl_create", "EXISTS")
        ref = cur.table("ddl_create")
        ast = _sqlglot(_text(query, cur.toks))
        _check_tail(cur.rest(), "ddl_create", need=True)
        if isinstance(ast, exp.Create) and ast.kind == "TABLE":
            target = ast.this.this if isinstance(ast.this, exp.Schema) else ast.this
            if _ref(target, cur.db) != ref:
                raise _Unreadable("ddl_create")
        return _OTHER if temporary else ParsedStatement("ddl_create", (ref,))
    if cur.accept("IF"):
        cur.expect("ddl_create", "NOT")
        cur.expect("ddl_create", "EXISTS")
    index = cur.ident()
    if index is None:
        raise _Unreadable("ddl_create")
    if cur.accept("USING"):
        cur.i += 1
    cur.expect("ddl_create", "ON")
    ref = cur.table("ddl_create")
    ast = _sqlglot(_text(query, cur.toks))
    _check_tail(cur.rest(), "ddl_create", need=True)
    if isinstance(ast, exp.Create) and isinstance(ast.this, exp.Index) and \
            _ref(ast.this.args.get("table"), cur.db) != ref:
        raise _Unreadable("ddl_create")
    return ParsedStatement("ddl_create", (ref,), index=index)


def _drop(query: str, cur: _Cur) -> ParsedStatement:
    cur.i += 1
    temporary = False
    while word := cur.accept("TEMPORARY", "ONLINE", "OFFLINE"):
        temporary = temporary or word == "TEMPORARY"
    what = cur.expect("ddl_drop", "TABLE", "TABLES", "INDEX", "DATABASE", "SCHEMA")
    exists = False
    if cur.accept("IF"):
        cur.expect("ddl_drop", "EXISTS")
        exists = True
    if what in ("DATABASE", "SCHEMA"):
        name = cur.ident()
        if name is None:
            raise _Unreadable("ddl_drop_database")
        if not cur.at_end():
            raise _Unreadable("ddl_drop_database", database=name)
        return ParsedStatement("ddl_drop_database", (), database=name)
    if what == "INDEX":
        index = cur.ident()
        if index is None:
            raise _Unreadable("ddl_drop")
        cur.expect("ddl_drop", "ON")
        ref = cur.table("ddl_drop")
        cur.skip_wait()
        while cur.accept("ALGORITHM", "LOCK"):
            cur.accept("=")
            cur.i += 1
        _end(cur, "ddl_drop")
        ast = _sqlglot(_text(query, cur.toks))
        on = ast.args.get("cluster") if isinstance(ast, exp.Drop) else None
        if isinstance(on, exp.OnProperty) and _ref(on.this, cur.db) != ref:
            raise _Unreadable("ddl_drop")
        return ParsedStatement("ddl_drop", (ref,), index=index)
    refs = [cur.table("ddl_drop")]
    cur.skip_wait()
    while cur.accept(","):
        refs.append(cur.table("ddl_drop"))
        cur.skip_wait()
    cur.accept("RESTRICT", "CASCADE")
    if not cur.at_end():
        raise _Unreadable("ddl_drop")
    ast = _sqlglot(_text(query, cur.toks))
    if isinstance(ast, exp.Drop) and ast.args.get("kind") == "TABLE":
        theirs = [_ref(t, cur.db) for t in ast.args.get("tables") or [ast.this]]
        if theirs != refs or bool(ast.args.get("exists")) != exists:
            raise _Unreadable("ddl_drop")
    return _OTHER if temporary else ParsedStatement("ddl_drop", _unique(refs))


def _rename(cur: _Cur) -> ParsedStatement:
    """RENAME TABLE a TO b, c TO d (sqlglot has no grammar for it: read from the tokens)."""
    cur.i += 1
    if cur.accept("USER"):
        return _OTHER
    cur.expect("ddl_rename", "TABLE", "TABLES")
    if cur.accept("IF"):
        cur.expect("ddl_rename", "EXISTS")
    pairs: list[tuple[TableRef, TableRef]] = []
    while True:
        old = cur.table("ddl_rename")
        cur.skip_wait()
        cur.expect("ddl_rename", "TO")
        pairs.append((old, cur.table("ddl_rename")))
        if not cur.accept(","):
            break
    _end(cur, "ddl_rename")
    return ParsedStatement("ddl_rename", _unique([t for pair in pairs for t in pair]),
                           renames=tuple(pairs))


def _truncate(query: str, cur: _Cur) -> ParsedStatement:
    cur.i += 1
    cur.accept("TABLE")
    ref = cur.table("truncate")
    cur.skip_wait()
    _end(cur, "truncate")
    ast = _sqlglot(_text(query, cur.toks))
    if isinstance(ast, exp.TruncateTable) and [_ref(t, cur.db) for t in ast.expressions] != [ref]:
        raise _Unreadable("truncate")
    return ParsedStatement("truncate", (ref,))


# --- DML ----------------------------------------------------------------------------------

def _insert(query: str, cur: _Cur) -> ParsedStatement:
    """INSERT/REPLACE [modifiers] [INTO] t …: the written table is the one after INTO.
    sqlglot checks it (REPLACE read as INSERT: the same grammar but ON DUPLICATE KEY)."""
    cur.i += 1
    skip = set()
    while cur.peek() in _DML_MODIFIERS:
        skip.add(cur.i)
        cur.i += 1
    cur.accept("INTO")
    ref = cur.table("dml")
    if len(query) <= _MAX_CHECKED:
        ast = _sqlglot(_text(query, cur.toks, frozenset(skip), first="INSERT"))
        _check_tail(cur.rest(), "dml", need=True)
        if isinstance(ast, exp.Insert):
            target = ast.this.this if isinstance(ast.this, exp.Schema) else ast.this
            if _ref(target, cur.db) != ref:
                raise _Unreadable("dml")
    return ParsedStatement("dml", (ref,))


def _load(cur: _Cur) -> ParsedStatement:
    """LOAD DATA|XML [LOW_PRIORITY|CONCURRENT] [LOCAL] INFILE 'f' [REPLACE|IGNORE]
    INTO TABLE t (sqlglot has no grammar for it)."""
    cur.i += 1
    if cur.accept("INDEX"):
        return _OTHER
    cur.expect("dml", "DATA", "XML")
    cur.accept("LOW_PRIORITY", "CONCURRENT")
    cur.accept("LOCAL")
    cur.expect("dml", "INFILE")
    if cur.at_end() or cur.toks[cur.i].kind not in ("str", "dstr"):
        raise _Unreadable("dml")
    cur.i += 1
    cur.accept("REPLACE", "IGNORE")
    cur.expect("dml", "INTO")
    cur.expect("dml", "TABLE")
    ref = cur.table("dml")
    _check_tail(cur.rest(), "dml", need=False)
    return ParsedStatement("dml", (ref,))


def _dml_or_other(query: str, toks: list[_Tok], db: str, guess: str) -> ParsedStatement:
    """UPDATE, DELETE, WITH …, ( …: what sqlglot makes of it."""
    skip: set[int] = set()
    head = toks[0].value.upper() if toks[0].kind == "word" else ""
    i = 1
    while head in ("UPDATE", "DELETE") and i < len(toks) and toks[i].kind == "word" and \
            toks[i].value.upper() in _DML_MODIFIERS:
        skip.add(i)
        i += 1
    for j in range(len(toks) - 1):  # DELETE t1.*, t2.* FROM …: the .* say nothing
        if head == "DELETE" and toks[j].value == "." and toks[j + 1].value == "*" and \
                toks[j].kind == toks[j + 1].kind == "op":
            skip.update((j, j + 1))
    if head == "DELETE" and not any(t.kind == "word" and t.value.upper() == "FROM"
                                    for t in toks):
        return _scan(guess, toks, db)  # MySQL's DELETE always has a FROM; sqlglot's not
    ast = _sqlglot(_text(query, toks, frozenset(skip)))
    if isinstance(ast, (exp.Select, exp.SetOperation, exp.Subquery, exp.Set, exp.Show)):
        return _OTHER if head not in ("UPDATE", "DELETE") else _scan(guess, toks, db)
    if isinstance(ast, (exp.Update, exp.Delete, exp.Insert)):
        written = _written(ast, db)
        if written:
            return ParsedStatement("dml", written)
    return _scan(guess, toks, db)


def _written(ast: exp.Expression, db: str) -> tuple[TableRef, ...]:
    """The tables an UPDATE/DELETE/INSERT tree writes; () when the tree does not say."""
    if isinstance(ast, exp.Insert):
        target = ast.this.this if isinstance(ast.this, exp.Schema) else ast.this
        ref = _ref(target, db)
        return (ref,) if ref else ()
    if isinstance(ast, exp.Update):
        sources = _sources(ast.this, db)
        if not sources:
            return ()
        named = dict(sources)
        out: list[TableRef] = []
        for assignment in ast.expressions:
            column = assignment.this if isinstance(assignment, exp.EQ) else None
            if not isinstance(column, exp.Column):
                return ()
            if column.table:
                ref = TableRef(column.db, column.table) if column.db else \
                    named.get(column.table, TableRef(db, column.table))
                out.append(ref)
            else:  # unqualified: the only table, or (not known which) all of them
                out.extend(ref for _, ref in sources)
        return _unique(out)
    if isinstance(ast, exp.Delete):
        targets = ast.args.get("tables")
        using = ast.args.get("using")
        if targets:
            named = dict(_sources(ast.this, db))
        elif using:
            named = {}
            for item in using:
                named.update(_sources(item, db))
            targets = _tables_of(ast.this)
        elif len(_tables_of(ast.this)) == 1:
            ref = _ref(ast.this, db)
            return (ref,) if ref else ()
        else:  # DELETE FROM t1, t2 without USING: not MySQL
            return ()
        out = []
        for target in targets:
            if not isinstance(target, exp.Table) or not target.name:
                return ()
            ref = TableRef(target.db, target.name) if target.db else \
                named.get(target.name, TableRef(db, target.name))
            out.append(ref)
        return _unique(out)
    return ()


def _tables_of(node: object) -> list[exp.Expression]:
    """A FROM-like node and the tables joined to it."""
    if not isinstance(node, exp.Expression):
        return []
    return [node, *(j.this for j in node.args.get("joins") or [] if isinstance(j, exp.Join))]


def _sources(node: object, db: str) -> list[tuple[str, TableRef]]:
    """(alias or name, table) of each table of a FROM-like list; subqueries left out."""
    out = []
    for item in _tables_of(node):
        if isinstance(item, exp.Table):
            ref = _ref(item, db)
            if ref is not None:
                out.append((item.alias or item.name, ref))
    return out


# --- helpers --------------------------------------------------------------------------------

# Reserved words (never a bare name) that no MySQL statement ends with, and operators:
# a text ending so was cut short.
_NEVER_LAST = frozenset({
    "ADD", "DROP", "CHANGE", "ALTER", "RENAME", "TO", "AS", "ON", "BY", "LIKE", "SELECT",
    "FROM", "WHERE", "REFERENCES", "CONSTRAINT", "FOREIGN", "PRIMARY", "COLUMN", "TABLE",
    "INDEX", "SET", "AND", "OR", "VALUES", "INTO", "WITH", ",", "(", "=", ".",
})


def _check_tail(tail: list[_Tok], kind: str, need: bool) -> None:
    """The tail after a head must look whole (sqlglot lets some cut texts pass, and
    when it gives up the head grammar alone read the statement): brackets that close, no
    last word that always has more after it, and something at all where MySQL needs it."""
    if need and not tail:
        raise _Unreadable(kind)
    depth = 0
    for tok in tail:
        if tok.kind == "op" and tok.value in "()":
            depth += 1 if tok.value == "(" else -1
            if depth < 0:
                raise _Unreadable(kind)
    last = tail[-1] if tail else None
    if depth or (last is not None and last.kind in ("word", "op") and
                 last.value.upper() in _NEVER_LAST):
        raise _Unreadable(kind)

class _QuietCommandFallback(logging.Filter):
    """sqlglot warns for every statement it keeps as an opaque Command: expected here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_QuietCommandFallback())


def _sqlglot(text: str) -> exp.Expression | None:
    """sqlglot's tree of one statement, or None when it did not understand it all."""
    try:
        trees = sqlglot.parse(text, read="mysql")
    except Exception:  # noqa: BLE001 - sqlglot fails in many ways on text it does not know
        return None
    tree = trees[0] if len(trees) == 1 else None
    if not isinstance(tree, exp.Expression) or tree.find(exp.Command) is not None:
        return None
    return tree


def _ref(table: exp.Expression | None, db: str) -> TableRef | None:
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier) or \
            table.catalog:
        return None
    return TableRef(table.db or db, table.name)


def _unique(refs: list[TableRef]) -> tuple[TableRef, ...]:
    return tuple(dict.fromkeys(refs))


def _scan(kind: str, toks: list[_Tok], db: str) -> ParsedStatement:
    """Unreadable: every name a token scan finds, for the caller to decide."""
    refs: list[TableRef] = []
    names: list[str | None] = []
    for tok in toks:
        if tok.kind == "qid" or (tok.kind == "word" and not _is_number(tok.value)):
            names.append(tok.value)
        elif tok.kind == "dstr":
            names.append(_unquote(tok.value))  # an identifier under ANSI_QUOTES
        elif tok.kind == "op" and tok.value == ".":
            names.append(".")
        else:
            names.append(None)
    for i, name in enumerate(names):
        if name is None or name == ".":
            continue
        refs.append(TableRef(db, name))
        if i >= 2 and names[i - 1] == "." and names[i - 2] not in (None, "."):
            refs.append(TableRef(str(names[i - 2]), name))
    return ParsedStatement(kind, _unique(refs), readable=False)


def _scan_safely(kind: str, query: str, db: str) -> ParsedStatement:
    try:
        return _scan(kind, _lex(query)[0], db)
    except Exception:  # noqa: BLE001 - the last resort must not raise either
        return ParsedStatement(kind, (), readable=False)
