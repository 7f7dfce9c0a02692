"""MySQL identifiers in SQL text: every name wacdc puts into a statement for the source."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """A MySQL identifier, backticked (a backtick inside is doubled)."""
    return "`" + name.replace("`", "``") + "`"


def qualified(schema: str, table: str) -> str:
    """`schema`.`table`, each part quoted."""
    return f"{quote_ident(schema)}.{quote_ident(table)}"
