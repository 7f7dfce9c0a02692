"""The bad-value policy (DESIGN §4): substitute and record, or refuse, a value PostgreSQL
cannot store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wacdc.errors import BadValueError
from wacdc.log import get_logger

log = get_logger("wacdc.schema.convert")


@dataclass
class Coercion:
    table: str
    column: str
    reason: str
    value_repr: str
    key: Any = None
    position: str | None = None


@dataclass
class BadValuePolicy:
    """What happens to a value PostgreSQL cannot store. One per run; shared by all tables."""

    strict: bool = False
    # Called once per coercion with full context (metrics, logs). Default: log it.
    on_coercion: Callable[[Coercion], None] | None = None
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def record(self, coercion: Coercion) -> None:
        key = (coercion.table, coercion.column, coercion.reason)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.on_coercion is not None:
            self.on_coercion(coercion)
        else:
            log.warning("value coerced", table=coercion.table, column=coercion.column,
                        reason=coercion.reason, key=coercion.key, position=coercion.position,
                        value=coercion.value_repr)


class Bad:
    """Per-table bad-value hook handed to the column functions."""

    def __init__(self, table: str, policy: BadValuePolicy) -> None:
        self.table = table
        self.policy = policy
        self.pending: list[tuple[str, str, str]] = []

    def __call__(self, column: str, reason: str, raw: Any, substitute: Any,
                 allowed: bool = True) -> Any:
        value_repr = _short_repr(raw)
        if self.policy.strict or not allowed:
            raise BadValueError(reason, self.table, column, value_repr)
        self.pending.append((column, reason, value_repr))
        return substitute


def _short_repr(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
