"""The DDL statements of a binlog QUERY event (ALTER, CREATE, DROP, RENAME, TRUNCATE):
the object read from the statement's head, checked against sqlglot's tree when it has
one (source/statements.py)."""

from __future__ import annotations

from sqlglot import exp

from wacdc.events import ParsedStatement, TableRef
from wacdc.source.statement_lexer import (
    OTHER,
    Cursor,
    Unreadable,
    check_tail,
    end_here,
    spec_starts,
    text_of,
    unique,
)
from wacdc.source.statement_tree import ref_of, sqlglot_tree


def alter(query: str, cur: Cursor) -> ParsedStatement:
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
    for start in spec_starts(tail):
        spec = Cursor(tail, cur.db)
        spec.i = start
        rows = _alter_clause(spec, renames, others) or rows
    if len(renames) > 1:
        raise Unreadable("ddl_rename")
    ast = sqlglot_tree(text_of(query, cur.toks))
    check_tail(tail, "ddl_alter", need=False)
    if isinstance(ast, exp.Alter):
        theirs = [ref_of(a.this, cur.db) for a in ast.args.get("actions") or []
                  if isinstance(a, exp.AlterRename)]
        if ref_of(ast.this, cur.db) != ref or (theirs and theirs != renames):
            raise Unreadable("ddl_alter")
    if rows:
        return ParsedStatement("ddl_rows", unique([ref, *others, *renames]))
    if renames:
        return ParsedStatement("ddl_rename", (ref, renames[0]), renames=((ref, renames[0]),))
    return ParsedStatement("ddl_alter", (ref,))


def _alter_clause(spec: Cursor, renames: list[TableRef], others: list[TableRef]) -> bool:
    """One top-level clause of an ALTER TABLE: a rename is added to `renames`, the other
    table of a partition exchange or conversion to `others`; True when the clause changes
    rows without row events."""
    first = spec.peek()
    second = spec.peek(1)
    if first == "RENAME" and second not in ("COLUMN", "INDEX", "KEY"):
        spec.i += 1
        spec.accept("TO", "AS")
        renames.append(spec.table("ddl_rename"))
        return False
    if (first in ("TRUNCATE", "DROP") and second == "PARTITION") or \
            first in ("DISCARD", "IMPORT"):
        return True
    if first == "EXCHANGE" and second == "PARTITION":
        spec.i += 3  # EXCHANGE PARTITION p
        spec.expect("ddl_rows", "WITH")
        spec.expect("ddl_rows", "TABLE")
        others.append(spec.table("ddl_rows"))
        return True
    if first == "CONVERT" and second in ("PARTITION", "TABLE"):  # MariaDB 10.7
        spec.i += 2
        if second == "PARTITION":
            spec.i += 1
            spec.expect("ddl_rows", "TO")
            spec.expect("ddl_rows", "TABLE")
        others.append(spec.table("ddl_rows"))
        return True
    return False


def create(query: str, cur: Cursor) -> ParsedStatement:
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
        ast = sqlglot_tree(text_of(query, cur.toks))
        check_tail(cur.rest(), "ddl_create", need=True)
        if isinstance(ast, exp.Create) and ast.kind == "TABLE":
            target = ast.this.this if isinstance(ast.this, exp.Schema) else ast.this
            if ref_of(target, cur.db) != ref:
                raise Unreadable("ddl_create")
        return OTHER if temporary else ParsedStatement("ddl_create", (ref,))
    if cur.accept("IF"):
        cur.expect("ddl_create", "NOT")
        cur.expect("ddl_create", "EXISTS")
    index = cur.ident()
    if index is None:
        raise Unreadable("ddl_create")
    if cur.accept("USING"):
        cur.i += 1
    cur.expect("ddl_create", "ON")
    ref = cur.table("ddl_create")
    ast = sqlglot_tree(text_of(query, cur.toks))
    check_tail(cur.rest(), "ddl_create", need=True)
    if isinstance(ast, exp.Create) and isinstance(ast.this, exp.Index) and \
            ref_of(ast.this.args.get("table"), cur.db) != ref:
        raise Unreadable("ddl_create")
    return ParsedStatement("ddl_create", (ref,), index=index)


def drop(query: str, cur: Cursor) -> ParsedStatement:
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
        return _drop_database(cur)
    if what == "INDEX":
        return _drop_index(query, cur)
    refs = [cur.table("ddl_drop")]
    cur.skip_wait()
    while cur.accept(","):
        refs.append(cur.table("ddl_drop"))
        cur.skip_wait()
    cur.accept("RESTRICT", "CASCADE")
    if not cur.at_end():
        raise Unreadable("ddl_drop")
    ast = sqlglot_tree(text_of(query, cur.toks))
    if isinstance(ast, exp.Drop) and ast.args.get("kind") == "TABLE":
        theirs = [ref_of(t, cur.db) for t in ast.args.get("tables") or [ast.this]]
        if theirs != refs or bool(ast.args.get("exists")) != exists:
            raise Unreadable("ddl_drop")
    return OTHER if temporary else ParsedStatement("ddl_drop", unique(refs))


def _drop_database(cur: Cursor) -> ParsedStatement:
    name = cur.ident()
    if name is None:
        raise Unreadable("ddl_drop_database")
    if not cur.at_end():
        raise Unreadable("ddl_drop_database", database=name)
    return ParsedStatement("ddl_drop_database", (), database=name)


def _drop_index(query: str, cur: Cursor) -> ParsedStatement:
    index = cur.ident()
    if index is None:
        raise Unreadable("ddl_drop")
    cur.expect("ddl_drop", "ON")
    ref = cur.table("ddl_drop")
    cur.skip_wait()
    while cur.accept("ALGORITHM", "LOCK"):
        cur.accept("=")
        cur.i += 1
    end_here(cur, "ddl_drop")
    ast = sqlglot_tree(text_of(query, cur.toks))
    on = ast.args.get("cluster") if isinstance(ast, exp.Drop) else None
    if isinstance(on, exp.OnProperty) and ref_of(on.this, cur.db) != ref:
        raise Unreadable("ddl_drop")
    return ParsedStatement("ddl_drop", (ref,), index=index)


def rename(cur: Cursor) -> ParsedStatement:
    """RENAME TABLE a TO b, c TO d (sqlglot has no grammar for it: read from the tokens)."""
    cur.i += 1
    if cur.accept("USER"):
        return OTHER
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
    end_here(cur, "ddl_rename")
    return ParsedStatement("ddl_rename", unique([t for pair in pairs for t in pair]),
                           renames=tuple(pairs))


def truncate(query: str, cur: Cursor) -> ParsedStatement:
    cur.i += 1
    cur.accept("TABLE")
    ref = cur.table("truncate")
    cur.skip_wait()
    end_here(cur, "truncate")
    ast = sqlglot_tree(text_of(query, cur.toks))
    if isinstance(ast, exp.TruncateTable) and [ref_of(t, cur.db) for t in ast.expressions] != [ref]:
        raise Unreadable("truncate")
    return ParsedStatement("truncate", (ref,))
