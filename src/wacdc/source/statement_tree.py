"""sqlglot's reading of one MySQL statement: its tree when it understood all of it, and
the table a node of the tree names (source/statement_ddl.py, statement_dml.py)."""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp

from wacdc.events import TableRef


class _QuietCommandFallback(logging.Filter):
    """sqlglot warns for every statement it keeps as an opaque Command: expected here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


def _quiet_command_fallbacks() -> None:
    """Filter sqlglot's Command warnings once (its logger is shared: added, never replaced)."""
    logger = logging.getLogger("sqlglot")
    if not any(isinstance(f, _QuietCommandFallback) for f in logger.filters):
        logger.addFilter(_QuietCommandFallback())


def sqlglot_tree(text: str) -> exp.Expression | None:
    """sqlglot's tree of one statement, or None when it did not understand it all."""
    _quiet_command_fallbacks()
    try:
        trees = sqlglot.parse(text, read="mysql")
    except Exception:  # noqa: BLE001 - sqlglot fails in many ways on text it does not know
        return None
    tree = trees[0] if len(trees) == 1 else None
    if not isinstance(tree, exp.Expression) or tree.find(exp.Command) is not None:
        return None
    return tree


def ref_of(table: exp.Expression | None, db: str) -> TableRef | None:
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier) or \
            table.catalog:
        return None
    return TableRef(table.db or db, table.name)
