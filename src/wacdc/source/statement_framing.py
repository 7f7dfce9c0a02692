"""The framing statements of a transaction (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, XA …),
read from their tokens, never by the SQL parser (source/statements.py)."""

from __future__ import annotations

from wacdc.events import ParsedStatement
from wacdc.source.statement_lexer import OTHER, Cursor, Unreadable, end_here, is_number, unquote

BEGIN = ParsedStatement("begin", ())


COMMIT = ParsedStatement("commit", ())


ROLLBACK = ParsedStatement("rollback", ())


BARE = {
    "BEGIN": BEGIN, "BEGIN WORK": BEGIN, "START TRANSACTION": BEGIN,
    "COMMIT": COMMIT, "COMMIT WORK": COMMIT,
    "ROLLBACK": ROLLBACK, "ROLLBACK WORK": ROLLBACK,
}


def xid_text(gtrid: bytes, bqual: bytes, format_id: int) -> str:
    """An xid as `ParsedStatement.xid` has it (and MySQL writes it): X'..',X'..',n."""
    return f"X'{gtrid.hex()}',X'{bqual.hex()}',{format_id}"


def read_framing(cur: Cursor) -> ParsedStatement | None:
    head = cur.peek()
    cur.i += 1
    if head == "BEGIN":
        cur.accept("WORK")
        return done(cur, BEGIN)
    if head == "START":
        if not cur.accept("TRANSACTION"):
            return None  # START REPLICA / SLAVE / GROUP_REPLICATION: other
        while cur.accept("WITH", "CONSISTENT", "SNAPSHOT", "READ", "WRITE", "ONLY", ","):
            pass
        return done(cur, BEGIN)
    if head == "COMMIT":
        cur.accept("WORK")
        _chain_release(cur, "commit")
        return done(cur, COMMIT)
    if head == "ROLLBACK":
        cur.accept("WORK")
        if cur.accept("TO"):
            cur.accept("SAVEPOINT")
            return _savepoint_named(cur, "rollback_to_savepoint")
        _chain_release(cur, "rollback")
        return done(cur, ROLLBACK)
    if head == "SAVEPOINT":
        return _savepoint_named(cur, "savepoint")
    if head == "RELEASE":
        cur.expect("release_savepoint", "SAVEPOINT")
        return _savepoint_named(cur, "release_savepoint")
    return _xa(cur)


def done(cur: Cursor, result: ParsedStatement) -> ParsedStatement:
    end_here(cur, result.kind)
    return result


def _chain_release(cur: Cursor, kind: str) -> None:
    if cur.accept("AND"):
        cur.accept("NO")
        cur.expect(kind, "CHAIN")
    cur.accept("NO")
    cur.accept("RELEASE")


def _savepoint_named(cur: Cursor, kind: str) -> ParsedStatement:
    name = cur.ident()
    if name is None:
        raise Unreadable(kind)
    return done(cur, ParsedStatement(kind, (), savepoint=name.lower()))


_XA_VERBS = {"START": "xa_start", "BEGIN": "xa_start", "END": "xa_end",
             "PREPARE": "xa_prepare", "COMMIT": "xa_commit", "ROLLBACK": "xa_rollback"}


def _xa(cur: Cursor) -> ParsedStatement:
    verb = cur.peek()
    if verb == "RECOVER":
        return OTHER
    kind = _XA_VERBS.get(verb)
    if kind is None:
        raise Unreadable("other")
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
    return done(cur, ParsedStatement(kind, (), xid=xid, one_phase=one_phase))


def _xid(cur: Cursor, kind: str) -> str:
    gtrid = _xid_part(cur, kind)
    bqual = b""
    format_id = 1
    if cur.accept(","):
        bqual = _xid_part(cur, kind)
        if cur.accept(","):
            if cur.at_end():
                raise Unreadable(kind)
            tok = cur.toks[cur.i]
            cur.i += 1
            if tok.kind == "word" and is_number(tok.value):
                format_id = int(tok.value)
            elif tok.kind == "hex" and tok.value[:2] == "0x":
                format_id = int(tok.value[2:], 16)
            else:
                raise Unreadable(kind)
    return xid_text(gtrid, bqual, format_id)


def _xid_part(cur: Cursor, kind: str) -> bytes:
    if cur.at_end():
        raise Unreadable(kind)
    tok = cur.toks[cur.i]
    cur.i += 1
    if tok.kind in ("str", "dstr"):
        return unquote(tok.value).encode("utf-8")
    if tok.kind == "hex":
        digits = tok.value[2:] if tok.value[:2] == "0x" else tok.value[2:-1]
        if tok.value[:2] != "0x" and len(digits) % 2:
            raise Unreadable(kind)
        return bytes.fromhex(digits.rjust(len(digits) + len(digits) % 2, "0"))
    if tok.kind == "bit":
        digits = tok.value[2:] if tok.value[:2] == "0b" else tok.value[2:-1]
        if not digits:
            return b""
        return int(digits, 2).to_bytes((len(digits) + 7) // 8, "big")
    raise Unreadable(kind)
