"""MySQL's lexical rules for one binlog statement: tokens (comments dropped, executable
comments opened), a cursor that reads a statement's head, and the token scan that names
every table an unreadable statement might touch (source/statements.py)."""

from __future__ import annotations

import re
from typing import NamedTuple

from wacdc.events import ParsedStatement, TableRef
from wacdc.schema.charsets import unquote_body

OTHER = ParsedStatement("other", ())  # a statement that changes no table

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


class Tok(NamedTuple):
    kind: str  # word, qid, str, dstr, hex, bit, var, op
    value: str  # word: as written; qid: the name; str/dstr/hex/bit: as written; op: the char
    start: int
    end: int


def lex(text: str) -> tuple[list[Tok], bool]:
    """The tokens of `text` (comments dropped, executable comments opened) and whether
    the text lexed cleanly (no unterminated quote or comment)."""
    toks: list[Tok] = []
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
                toks.append(Tok("op", "*", start, start + 1))
                toks.append(Tok("op", "/", start + 1, end))
        elif kind == "bad":
            ok = False
        elif kind == "qid":
            toks.append(Tok(kind, m.group()[1:-1].replace("``", "`"), start, end))
        else:
            toks.append(Tok(kind, m.group(), start, end))
    return toks, ok and not inside


def text_of(query: str, toks: list[Tok], skip: frozenset[int] = frozenset(),
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


def split_statements(toks: list[Tok]) -> list[list[Tok]]:
    statements: list[list[Tok]] = [[]]
    for tok in toks:
        if tok.kind == "op" and tok.value == ";":
            statements.append([])
        else:
            statements[-1].append(tok)
    return [s for s in statements if s]


class Unreadable(Exception):
    """The head does not read: `kind` is the guess, `database` (DROP DATABASE) if known."""

    def __init__(self, kind: str, database: str | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.database = database


class Cursor:
    def __init__(self, toks: list[Tok], default_db: str) -> None:
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
            raise Unreadable(kind)
        return word

    def ident(self) -> str | None:
        if self.at_end():
            return None
        tok = self.toks[self.i]
        if tok.kind == "qid" or (tok.kind == "word" and not is_number(tok.value)):
            self.i += 1
            return tok.value
        return None

    def table(self, kind: str) -> TableRef:
        first = self.ident()
        if first is None:
            raise Unreadable(kind)
        if self.peek() == ".":
            self.i += 1
            second = self.ident()
            if second is None:
                raise Unreadable(kind)
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
            raise Unreadable("other")
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

    def rest(self) -> list[Tok]:
        return self.toks[self.i:]


def end_here(cur: Cursor, kind: str) -> None:
    """The statement must end here."""
    if not cur.at_end():
        raise Unreadable(kind)


def is_number(word: str) -> bool:
    return word.isascii() and word.isdigit()


def spec_starts(toks: list[Tok]) -> list[int]:
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


def unquote(literal: str) -> str:
    """A MySQL string literal's value (backslash escapes, doubled quotes)."""
    return unquote_body(literal[1:-1], literal[0])


# Reserved words (never a bare name) that no MySQL statement ends with, and operators:
# a text ending so was cut short.
_NEVER_LAST = frozenset({
    "ADD", "DROP", "CHANGE", "ALTER", "RENAME", "TO", "AS", "ON", "BY", "LIKE", "SELECT",
    "FROM", "WHERE", "REFERENCES", "CONSTRAINT", "FOREIGN", "PRIMARY", "COLUMN", "TABLE",
    "INDEX", "SET", "AND", "OR", "VALUES", "INTO", "WITH", ",", "(", "=", ".",
})


def check_tail(tail: list[Tok], kind: str, need: bool) -> None:
    """The tail after a head must look whole (sqlglot lets some cut texts pass, and
    when it gives up the head grammar alone read the statement): brackets that close, no
    last word that always has more after it, and something at all where MySQL needs it."""
    if need and not tail:
        raise Unreadable(kind)
    depth = 0
    for tok in tail:
        if tok.kind == "op" and tok.value in "()":
            depth += 1 if tok.value == "(" else -1
            if depth < 0:
                raise Unreadable(kind)
    last = tail[-1] if tail else None
    if depth or (last is not None and last.kind in ("word", "op") and
                 last.value.upper() in _NEVER_LAST):
        raise Unreadable(kind)


def unique(refs: list[TableRef]) -> tuple[TableRef, ...]:
    return tuple(dict.fromkeys(refs))


def scan(kind: str, toks: list[Tok], db: str) -> ParsedStatement:
    """Unreadable: every name a token scan finds, for the caller to decide."""
    refs: list[TableRef] = []
    names: list[str | None] = []
    for tok in toks:
        if tok.kind == "qid" or (tok.kind == "word" and not is_number(tok.value)):
            names.append(tok.value)
        elif tok.kind == "dstr":
            names.append(unquote(tok.value))  # an identifier under ANSI_QUOTES
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
    return ParsedStatement(kind, unique(refs), readable=False)


def scan_safely(kind: str, query: str, db: str) -> ParsedStatement:
    try:
        return scan(kind, lex(query)[0], db)
    except Exception:  # noqa: BLE001 - the last resort must not raise either
        return ParsedStatement(kind, (), readable=False)
