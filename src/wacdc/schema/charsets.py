"""Small encodings of MySQL's that several readers share: the wire's length-encoded
integers and the bodies of SQL string literals."""

from __future__ import annotations

_WIDTHS = {0xFC: 2, 0xFD: 3, 0xFE: 8}
# Backslash escapes of a MySQL string literal; MySQL keeps the backslash of \% and \_.
_ESCAPES = {"0": "\x00", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a",
            "%": "\\%", "_": "\\_"}


def lenenc(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """A length-encoded integer at `pos`: (value, next position). ValueError when the
    prefix byte is not one (0xFB is NULL on the wire, 0xFF an error packet)."""
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    width = _WIDTHS.get(first)
    if width is None:
        raise ValueError(f"bad length-encoded integer prefix 0x{first:02x}")
    end = pos + 1 + width
    if end > len(data):
        raise ValueError(f"length-encoded integer runs past the end ({end} > {len(data)})")
    return int.from_bytes(data[pos + 1:end], "little"), end


def unquote_body(body: str, quote: str = "'") -> str:
    """The value of a string literal's body: doubled quotes and backslash escapes resolved."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        elif ch == quote and body[i + 1:i + 2] == quote:
            out.append(quote)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
