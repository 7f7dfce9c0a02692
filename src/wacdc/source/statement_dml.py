"""The DML statements of a binlog QUERY event (INSERT, REPLACE, UPDATE, DELETE, LOAD):
which tables they write, from sqlglot's tree and the statement's head
(source/statements.py)."""

from __future__ import annotations

from sqlglot import exp

from wacdc.events import ParsedStatement, TableRef
from wacdc.source.statement_lexer import (
    OTHER,
    Cursor,
    Tok,
    Unreadable,
    check_tail,
    scan,
    text_of,
    unique,
)
from wacdc.source.statement_tree import ref_of, sqlglot_tree

_DML_MODIFIERS = frozenset({"LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "QUICK", "IGNORE"})


_MAX_CHECKED = 100_000  # longer INSERT/REPLACE texts are read from their head alone


def insert(query: str, cur: Cursor) -> ParsedStatement:
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
        ast = sqlglot_tree(text_of(query, cur.toks, frozenset(skip), first="INSERT"))
        check_tail(cur.rest(), "dml", need=True)
        if isinstance(ast, exp.Insert):
            target = ast.this.this if isinstance(ast.this, exp.Schema) else ast.this
            if ref_of(target, cur.db) != ref:
                raise Unreadable("dml")
    return ParsedStatement("dml", (ref,))


def load(cur: Cursor) -> ParsedStatement:
    """LOAD DATA|XML [LOW_PRIORITY|CONCURRENT] [LOCAL] INFILE 'f' [REPLACE|IGNORE]
    INTO TABLE t (sqlglot has no grammar for it)."""
    cur.i += 1
    if cur.accept("INDEX"):
        return OTHER
    cur.expect("dml", "DATA", "XML")
    cur.accept("LOW_PRIORITY", "CONCURRENT")
    cur.accept("LOCAL")
    cur.expect("dml", "INFILE")
    if cur.at_end() or cur.toks[cur.i].kind not in ("str", "dstr"):
        raise Unreadable("dml")
    cur.i += 1
    cur.accept("REPLACE", "IGNORE")
    cur.expect("dml", "INTO")
    cur.expect("dml", "TABLE")
    ref = cur.table("dml")
    check_tail(cur.rest(), "dml", need=False)
    return ParsedStatement("dml", (ref,))


def dml_or_other(query: str, toks: list[Tok], db: str, guess: str) -> ParsedStatement:
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
        return scan(guess, toks, db)  # MySQL's DELETE always has a FROM; sqlglot's not
    ast = sqlglot_tree(text_of(query, toks, frozenset(skip)))
    if isinstance(ast, (exp.Select, exp.SetOperation, exp.Subquery, exp.Set, exp.Show)):
        return OTHER if head not in ("UPDATE", "DELETE") else scan(guess, toks, db)
    if isinstance(ast, (exp.Update, exp.Delete, exp.Insert)):
        written = _written(ast, db)
        if written:
            return ParsedStatement("dml", written)
    return scan(guess, toks, db)


def _written(ast: exp.Expression, db: str) -> tuple[TableRef, ...]:
    """The tables an UPDATE/DELETE/INSERT tree writes; () when the tree does not say."""
    if isinstance(ast, exp.Insert):
        target = ast.this.this if isinstance(ast.this, exp.Schema) else ast.this
        ref = ref_of(target, db)
        return (ref,) if ref else ()
    if isinstance(ast, exp.Update):
        return _updated(ast, db)
    if isinstance(ast, exp.Delete):
        return _deleted(ast, db)
    return ()


def _updated(ast: exp.Update, db: str) -> tuple[TableRef, ...]:
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
    return unique(out)


def _deleted(ast: exp.Delete, db: str) -> tuple[TableRef, ...]:
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
        ref = ref_of(ast.this, db)
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
    return unique(out)


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
            ref = ref_of(item, db)
            if ref is not None:
                out.append((item.alias or item.name, ref))
    return out
