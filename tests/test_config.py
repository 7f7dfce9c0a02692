"""Settings: sources, precedence, URL parsing, and errors that never echo secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.harness import TargetDb
from wacdc.config import derive_server_id, load_settings, mysql_options, parse_url
from wacdc.errors import ConfigError

ALL_VARS = ("WACDC_SOURCE_URL", "DATABASE_URL", "WACDC_TARGET_URL", "WHATSAPP_DATABASE_URL",
            "WACDC_PROFILE", "WACDC_TABLES", "WACDC_TARGET_SCHEMA", "WACDC_SERVER_ID",
            "WACDC_LOG_FORMAT", "WHATSAPP_DB_POOL_MIN", "WHATSAPP_DB_POOL_MAX",
            "WHATSAPP_DB_POOL_IDLE_TIMEOUT", "WACDC_METRICS_PORT", "PORT", "WACDC_ADMIN_TOKEN",
            "WACDC_CUTOVER", "WACDC_BAD_VALUES", "POSTGRES_URL_NON_POOLING",
            "ENABLE_POSTGRES_FULL_TEXT_SEARCH")


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


# --- URL query parameters: TLS, what is ignored, what is refused ---------------------

def _tls(query: str) -> tuple[str, str | None]:
    tls = mysql_options(parse_url(f"mysql://u:pw@h/db?{query}", "mysql")).tls
    return tls.mode, tls.ca


@pytest.mark.parametrize("query, mode, ca", [
    ("", "PREFERRED", None),
    ("ssl-mode=REQUIRED", "REQUIRED", None),
    ("ssl_mode=required", "REQUIRED", None),
    ("sslmode=Verify_Identity&ssl_ca=/ca.pem", "VERIFY_IDENTITY", "/ca.pem"),
    ("SSL-MODE=disabled", "DISABLED", None),
    ("sslmode=verify-full&ssl-ca=/ca.pem", "VERIFY_IDENTITY", "/ca.pem"),  # libpq's words
    ("sslmode=require", "REQUIRED", None),
    ("ssl-ca=/ca.pem", "VERIFY_CA", "/ca.pem"),  # a CA alone means verify, as in mysql
    ("ssl-mode=VERIFY_CA", "VERIFY_CA", None),  # the system's CAs
    ("ssl-cert=/c.pem&ssl-key=/k.pem", "REQUIRED", None),
    ("sslaccept=strict&sslcert=/ca.pem", "VERIFY_IDENTITY", "/ca.pem"),  # Prisma's
    ("sslaccept=accept_invalid_certs", "REQUIRED", None),
    ("sslcert=/ca.pem", "REQUIRED", "/ca.pem"),  # Prisma: TLS, unchecked unless strict
    ("connection_limit=5&pool_timeout=10&socket_timeout=3&charset=utf8mb4", "PREFERRED",
     None),
])
def test_mysql_tls_parameters_and_spellings(query: str, mode: str, ca: str | None) -> None:
    assert _tls(query) == (mode, ca)


def test_mysql_connect_timeout_and_ignored_parameters() -> None:
    options = mysql_options(parse_url(
        "mysql://u:pw@h/db?connect_timeout=7&connection_limit=3&pool_timeout=0", "mysql"))
    assert options.connect_timeout == 7.0
    assert options.ignored == ("connection_limit", "pool_timeout")


@pytest.mark.parametrize("query, named", [
    ("foo=1", "unknown query parameter 'foo'"),
    ("ssl=true", "unknown query parameter 'ssl'"),
    ("ssl-mode=sometimes", "ssl-mode=sometimes is not one of"),
    ("ssl-mode=DISABLED&ssl-ca=/ca.pem", "contradicts"),
    ("ssl-mode=REQUIRED&ssl-ca=/ca.pem", "set ssl-mode=VERIFY_CA"),
    ("ssl-mode=PREFERRED&ssl-cert=/c.pem", "needs ssl-mode=REQUIRED"),
    ("ssl-key=/k.pem", "ssl-key needs ssl-cert"),
    ("ssl-mode=REQUIRED&sslaccept=strict", "use one set"),
    ("sslaccept=maybe", "sslaccept must be strict or accept_invalid_certs"),
    ("sslpassword=Top-Secret-2", "sslpassword needs sslidentity"),
    ("socket=/tmp/mysql.sock", "Unix socket"),
    ("charset=latin1", "utf8mb4"),
    ("connect_timeout=soon", "connect_timeout must be a number"),
])
@pytest.mark.parametrize("variable", ["WACDC_SOURCE_URL", "DATABASE_URL"])
def test_mysql_url_refuses_what_it_cannot_honour(query: str, named: str, variable: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, f"mysql://app:Top-Secret-1@db.example:3306/app?{query}")
    with pytest.raises(ConfigError) as err:
        load_settings().source()
    message = str(err.value)
    assert message.startswith(f"{variable}: "), message
    assert named in message
    assert "Top-Secret" not in message


def test_postgres_url_passes_libpq_parameters_only() -> None:
    url = parse_url("postgresql://u:pw@h/db?schema=public&connection_limit=5&pool_timeout=10"
                    "&sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=7"
                    "&statement_cache_size=0&pgbouncer=false&application_name=x", "postgresql")
    info = url.conninfo()
    for kept in ("sslmode='verify-full'", "sslrootcert='/ca.pem'", "connect_timeout='7'",
                 "application_name='x'"):
        assert kept in info, info
    for dropped in ("schema", "connection_limit", "pool_timeout", "statement_cache_size",
                    "pgbouncer"):
        assert dropped not in info, info


def test_a_prisma_target_url_connects(target_db: TargetDb) -> None:
    """libpq refuses parameters it does not know ("invalid connection option"): a Prisma
    URL must reach PostgreSQL without them."""
    from wacdc.sink.connection import connect_target

    raw = (f"{target_db.url}?schema=public&connection_limit=1&pool_timeout=0"
           "&socket_timeout=5&statement_cache_size=0&sslmode=disable")
    with connect_target(parse_url(raw, "postgresql")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("query, named", [
    ("foo=1", "unknown query parameter 'foo'"),
    ("sslaccept=strict", "sslaccept is Prisma's"),
    ("sslidentity=/id.p12", "sslidentity is Prisma's"),
    ("sslcert=/ca.pem", "sslrootcert"),
])
def test_postgres_url_refuses_what_libpq_would_misread(query: str, named: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_DATABASE_URL", f"postgresql://u:Top-Secret-3@h/db?{query}")
    with pytest.raises(ConfigError) as err:
        load_settings().target()
    message = str(err.value)
    assert message.startswith("WHATSAPP_DATABASE_URL: ") and named in message, message
    assert "Top-Secret" not in message


def test_the_non_pooling_url_is_the_last_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_URL_NON_POOLING", "postgresql://u@direct:5432/wa")
    s = load_settings()
    assert s.target().host == "direct" and s.url_variable("target_url") == \
        "POSTGRES_URL_NON_POOLING"
    monkeypatch.setenv("WHATSAPP_DATABASE_URL", "postgresql://u@app:5432/wa")
    assert load_settings().target().host == "app"
    monkeypatch.setenv("WACDC_TARGET_URL", "postgresql://u@mine:5432/wa")
    assert load_settings().target().host == "mine"
    monkeypatch.delenv("WACDC_TARGET_URL")
    monkeypatch.delenv("WHATSAPP_DATABASE_URL")
    monkeypatch.setenv("POSTGRES_URL_NON_POOLING", "http://u:Top-Secret-4@direct/wa")
    with pytest.raises(ConfigError) as err:
        load_settings().target()
    assert str(err.value).startswith("POSTGRES_URL_NON_POOLING: scheme")
    assert "Top-Secret" not in str(err.value)


def test_unset_target_names_all_three_variables() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings().target()
    for name in ("WACDC_TARGET_URL", "WHATSAPP_DATABASE_URL", "POSTGRES_URL_NON_POOLING"):
        assert name in str(err.value)


def test_a_pooled_target_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHATSAPP_DATABASE_URL",
                       "postgresql://u:Top-Secret-5@pooler:6543/wa?pgbouncer=true")
    with pytest.raises(ConfigError) as err:
        load_settings().target()
    message = str(err.value)
    assert message.startswith("WHATSAPP_DATABASE_URL: pgbouncer=true"), message
    assert "direct URL" in message and "POSTGRES_URL_NON_POOLING" in message
    assert "Top-Secret" not in message
    # With the direct URL in the environment too, the message says to use it.
    monkeypatch.setenv("POSTGRES_URL_NON_POOLING", "postgresql://u:pw@direct:5432/wa")
    with pytest.raises(ConfigError, match=r"POSTGRES_URL_NON_POOLING is set here: use it"):
        load_settings().target()
    monkeypatch.setenv("WACDC_TARGET_URL", "postgresql://u@direct:5432/wa?pgbouncer=false")
    assert load_settings().target().host == "direct"


def test_prisma_schema_parameter_must_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WACDC_TARGET_URL", "postgresql://u@h/wa?schema=whatsapp")
    with pytest.raises(ConfigError) as err:
        load_settings().target()
    assert "schema=whatsapp" in str(err.value) and "WACDC_TARGET_SCHEMA=whatsapp" in \
        str(err.value)
    monkeypatch.setenv("WACDC_TARGET_SCHEMA", "whatsapp")
    assert load_settings().target().database == "wa"
    monkeypatch.setenv("WACDC_TARGET_URL", "postgresql://u@h/wa?schema=public")
    monkeypatch.delenv("WACDC_TARGET_SCHEMA")
    assert load_settings().target().database == "wa"


def test_query_string_passwords_are_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WACDC_SOURCE_URL", "mysql://root:pw-one@h/db?sslidentity=/id.p12"
                                           "&sslpassword=p12-secret")
    monkeypatch.setenv("WACDC_TARGET_URL", "postgresql://u@h/db?sslpassword=key-secret"
                                           "&sslcert=/c&sslkey=/k")
    assert sorted(load_settings().secrets()) == ["key-secret", "p12-secret", "pw-one"]


def test_full_text_extra_follows_the_seed_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    from wacdc.schema.extras import extras_for
    from wacdc.schema.profile import load_profile

    profile = load_profile("prisma")
    tables = set(profile.tables)
    every = [e.name for e in extras_for(profile, tables)]
    assert "WhatsAppMessage_message_fts_idx" in every
    monkeypatch.setenv("ENABLE_POSTGRES_FULL_TEXT_SEARCH", "false")
    without = [e.name for e in extras_for(profile, tables)]
    assert without == [n for n in every if n != "WhatsAppMessage_message_fts_idx"]
    assert "WhatsAppCustomer_tags_gin_idx" in without and "campaign_stats" in without
    monkeypatch.setenv("ENABLE_POSTGRES_FULL_TEXT_SEARCH", "true")
    assert [e.name for e in extras_for(profile, tables)] == every
