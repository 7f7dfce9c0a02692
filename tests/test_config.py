"""Settings: sources, precedence, URL parsing, and errors that never echo secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from wacdc.config import derive_server_id, load_settings, parse_url
from wacdc.errors import ConfigError

ALL_VARS = ("WACDC_SOURCE_URL", "DATABASE_URL", "WACDC_TARGET_URL", "WHATSAPP_DATABASE_URL",
            "WACDC_PROFILE", "WACDC_TABLES", "WACDC_TARGET_SCHEMA", "WACDC_SERVER_ID",
            "WACDC_LOG_FORMAT", "WHATSAPP_DB_POOL_MIN", "WHATSAPP_DB_POOL_MAX",
            "WHATSAPP_DB_POOL_IDLE_TIMEOUT", "WACDC_METRICS_PORT", "PORT", "WACDC_ADMIN_TOKEN",
            "WACDC_CUTOVER", "WACDC_BAD_VALUES")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)


def test_every_design_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "WACDC_SOURCE_URL": "mysql://root:pw@src:3307/app",
        "WACDC_TARGET_URL": "postgresql://u:pw@tgt:5433/wa",
        "WACDC_PROFILE": "plain", "WACDC_TABLES": " a, b ,c ", "WACDC_TARGET_SCHEMA": "wa",
        "WACDC_SERVER_ID": "4242", "WACDC_LOG_FORMAT": "console",
        "WHATSAPP_DB_POOL_MIN": "2", "WHATSAPP_DB_POOL_MAX": "9",
        "WHATSAPP_DB_POOL_IDLE_TIMEOUT": "30", "WACDC_METRICS_PORT": "9200",
        "WACDC_ADMIN_TOKEN": "tok", "WACDC_CUTOVER": "1", "WACDC_BAD_VALUES": "strict",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.source().host == "src" and s.source().port == 3307 and s.source().database == "app"
    assert s.target().port == 5433 and s.target().database == "wa"
    assert (s.profile, s.tables, s.target_schema) == ("plain", ["a", "b", "c"], "wa")
    assert (s.server_id, s.effective_server_id(), s.log_format) == (4242, 4242, "console")
    assert (s.pool_min, s.pool_max, s.pool_idle_timeout) == (2, 9, 30.0)
    assert (s.metrics_port, s.cutover, s.bad_value_policy) == (9200, True, "strict")
    assert s.admin_token is not None and s.admin_token.get_secret_value() == "tok"


def test_fallback_variables_and_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root@fallback/app")
    monkeypatch.setenv("WHATSAPP_DATABASE_URL", "postgresql://u@fallback/wa")
    monkeypatch.setenv("PORT", "8080")
    s = load_settings()
    assert s.source().host == "fallback" and s.target().host == "fallback"
    assert s.metrics_port == 8080
    monkeypatch.setenv("WACDC_SOURCE_URL", "mysql://root@primary/app")
    monkeypatch.setenv("WACDC_METRICS_PORT", "9999")
    s = load_settings()
    assert s.source().host == "primary" and s.metrics_port == 9999


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.profile, s.target_schema, s.metrics_port, s.tables) == ("prisma", "public", 9108,
                                                                      None)
    assert s.effective_server_id() == load_settings().effective_server_id()  # stable


def test_toml_file_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "wacdc.toml"
    path.write_text('source_url = "mysql://root@fromfile/app"\ntarget_schema = "filed"\n'
                    'tables = ["x", "y"]\n')
    s = load_settings(path)
    assert s.source().host == "fromfile" and s.tables == ["x", "y"]
    monkeypatch.setenv("WACDC_TARGET_SCHEMA", "fromenv")
    assert load_settings(path).target_schema == "fromenv"


def test_unknown_toml_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "wacdc.toml"
    path.write_text('sourse_url = "mysql://x/y"\n')
    with pytest.raises(ConfigError, match="sourse_url"):
        load_settings(path)


def test_errors_name_the_variable_and_hide_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WACDC_METRICS_PORT", "s3cret-not-a-port")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "WACDC_METRICS_PORT" in str(err.value) and "s3cret" not in str(err.value)


@pytest.mark.parametrize("raw", [
    "mysql://root:TopSecret@host:99999/db",
    "http://root:TopSecret@host/db",
    "mysql://root:TopSecret@/db",
    "mysql://root:TopSecret@host:3306/",
])
def test_bad_source_urls(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WACDC_SOURCE_URL", raw)
    with pytest.raises(ConfigError) as err:
        load_settings().source()
    assert str(err.value).startswith("WACDC_SOURCE_URL")
    assert "TopSecret" not in str(err.value)


def test_url_parsing_and_redaction() -> None:
    url = parse_url("mysql://app%40x:p%3Ass@db.example:3310/whats%20app?ssl=1", "mysql")
    assert (url.user, url.password, url.database, url.port) == ("app@x", "p:ss", "whats app",
                                                                3310)
    assert "p:ss" not in str(url) and "p:ss" not in repr(url) and "***" in str(url)
    pg = parse_url("postgresql://u:pw@h/db?sslmode=require", "postgresql")
    assert pg.port == 5432 and "sslmode='require'" in pg.conninfo()
    assert parse_url("mysql://h/db", "mysql").user == "root"


def test_secrets_are_collected_for_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WACDC_SOURCE_URL", "mysql://root:pw-one@h/db")
    monkeypatch.setenv("WACDC_TARGET_URL", "postgresql://u:pw-two@h/db")
    monkeypatch.setenv("WACDC_ADMIN_TOKEN", "tok-three")
    assert sorted(load_settings().secrets()) == ["pw-one", "pw-two", "tok-three"]


def test_derived_server_id_is_in_range() -> None:
    ids = {derive_server_id(f"seed{i}") for i in range(100)}
    assert all(1_000_000 <= i < 2**32 for i in ids) and len(ids) == 100
