"""Structured logs: JSON lines, console mode, and secrets never printed."""

from __future__ import annotations

import json

import pytest

from wacdc.log import configure_logging, get_logger, redact


def test_json_logs_redact_urls_keys_and_known_secrets(capsys: pytest.CaptureFixture) -> None:
    configure_logging("json", "info", secrets=["tok-123"])
    get_logger("t").info("connecting", url="mysql://root:hunter2@db:3306/app",
                         password="plain", header="Bearer tok-123", nested={"token": "x"})
    line = capsys.readouterr().err.strip()
    event = json.loads(line)
    assert event["event"] == "connecting" and event["level"] == "info"
    assert event["url"] == "mysql://root:***@db:3306/app"
    assert event["password"] == "***" and event["nested"] == {"token": "***"}
    assert event["header"] == "Bearer ***"
    assert "hunter2" not in line and "tok-123" not in line and "plain" not in line


def test_console_format_and_level_filter(capsys: pytest.CaptureFixture) -> None:
    configure_logging("console", "warning")
    log = get_logger("t")
    log.info("hidden")
    log.warning("shown", table="T")
    err = capsys.readouterr().err
    assert "hidden" not in err and "shown" in err and "table" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.strip())


def test_redact_free_text() -> None:
    assert redact("failed postgresql://u:pw@h/db and mysql://a:b@c/d") == \
        "failed postgresql://u:***@h/db and mysql://a:***@c/d"
