"""structlog setup: JSON in production, readable on a terminal, secrets always redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

# user:password@ inside any URL-looking string.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)(?=@)", re.I)
_SECRET_KEYS = ("password", "passwd", "secret", "token", "authorization")
REDACTED = "***"


class Redactor:
    """structlog processor: masks URL passwords, secret-named keys and known secret values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = [s for s in secrets if s]

    def redact_text(self, text: str) -> str:
        text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _redact(self, key: str, value: Any) -> Any:
        if any(marker in key.lower() for marker in _SECRET_KEYS):
            return REDACTED
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {k: self._redact(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._redact(key, v) for v in value]
        return value

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            event_dict[key] = self._redact(key, value)
        return event_dict


def _active_redactor() -> Redactor:
    """The redactor `configure_logging` installed (it lives in structlog's processor
    chain, so the known secrets have one home), else one for URL passwords only."""
    for processor in structlog.get_config()["processors"]:
        if isinstance(processor, Redactor):
            return processor
    return Redactor()


def redact(text: str) -> str:
    """Redact a free-form string (error messages) the same way log lines are."""
    return _active_redactor().redact_text(text)


def configure_logging(fmt: str = "auto", level: str = "info",
                      secrets: Iterable[str] = ()) -> None:
    """Route structlog to stderr; `auto` means console on a terminal, JSON otherwise."""
    redactor = Redactor(secrets)
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name) if name else structlog.get_logger()
