"""Exceptions that carry what an operator needs: what failed, where, and the exit code."""

from __future__ import annotations

from typing import Literal

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_ERROR = 2


class WacdcError(Exception):
    """Base class: an error wacdc understands and can explain in one line."""

    exit_code = EXIT_ERROR


class ConfigError(WacdcError):
    """A setting is missing or malformed (the message names the variable)."""


class ConnectError(WacdcError):
    """A database could not be reached (the message has the redacted URL); `side` says
    which one, as data (the daemon retries by it)."""

    def __init__(self, message: str, side: Literal["source", "target"]) -> None:
        super().__init__(message)
        self.side = side

    def __reduce__(self) -> tuple[type[ConnectError], tuple[str, str]]:
        return type(self), (str(self), self.side)  # it crosses the decode-process pipe


class SchemaError(WacdcError):
    """A table cannot be replicated as it is (no key, unsupported type, ...)."""


class IdentifierError(SchemaError):
    """Names that PostgreSQL would cut to 63 bytes, or that would be one name there
    (schema/identifiers.py): a finding (exit 1) that names every object and its fix."""

    exit_code = EXIT_FINDING


class BadValueError(WacdcError):
    """A value PostgreSQL cannot store, under the strict policy.

    Names table, key, column and (for binlog events) the source position.
    """

    def __init__(self, reason: str, table: str, column: str, value_repr: str,
                 key: object = None, position: str | None = None) -> None:
        self.reason = reason
        self.table = table
        self.column = column
        self.value_repr = value_repr
        self.key = key
        self.position = position
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.table}.{self.column}"
        if self.key is not None:
            where += f" key={self.key!r}"
        if self.position:
            where += f" at {self.position}"
        return (f"bad value ({self.reason}) in {where}: {self.value_repr}; "
                f"set WACDC_BAD_VALUES=coerce to apply the documented default "
                f"(see docs/types.md), or fix the row in the source")

    def with_context(self, key: object = None, position: str | None = None) -> BadValueError:
        return BadValueError(self.reason, self.table, self.column, self.value_repr,
                             key if key is not None else self.key, position or self.position)


class RowImageError(WacdcError, ValueError):
    """A binlog row image wacdc cannot apply (MINIMAL image, partial JSON, undecodable);
    names table, column and binlog position."""


class BinlogEventError(WacdcError):
    """A binlog event wacdc cannot replicate exactly (an unknown event type, an unreadable
    compressed transaction); names the type code and binlog position."""
