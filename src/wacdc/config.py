"""Settings: environment first, then an optional TOML file (`--config`), then defaults.

Every variable of DESIGN §7 is here. Errors name the variable and never echo a
value, because the values that fail most often are URLs with passwords in them.
"""

from __future__ import annotations

import os
import tomllib
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from wacdc.errors import ConfigError

MYSQL_SCHEMES = {"mysql", "mariadb", "mysql+pymysql"}
POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg"}


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed connection URL. `str()` and `repr()` never show the password."""

    scheme: str
    host: str
    port: int
    user: str
    password: str
    database: str
    query: tuple[tuple[str, str], ...] = ()

    @property
    def redacted(self) -> str:
        auth = f"{self.user}:***@" if self.password else (f"{self.user}@" if self.user else "")
        return f"{self.scheme}://{auth}{self.host}:{self.port}/{self.database}"

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.redacted!r})"

    def with_database(self, database: str) -> DatabaseUrl:
        return DatabaseUrl(self.scheme, self.host, self.port, self.user, self.password,
                           database, self.query)

    def conninfo(self) -> str:
        """libpq keyword/value string for psycopg (PostgreSQL URLs only).

        Only libpq's own parameters pass (sslmode, sslrootcert, ...); the ones Prisma and
        poolers add (schema, connection_limit, pool_timeout, ...) stay out. Anything else
        is refused: `postgres_query_problem` names it before a connection is tried."""
        problem = postgres_query_problem(self)
        if problem:
            raise ConfigError(problem)
        parts = {"host": self.host, "port": str(self.port), "dbname": self.database,
                 "user": self.user}
        if self.password:
            parts["password"] = self.password
        known = libpq_keywords()
        parts.update({k: v for k, v in self.query if k in known})
        return " ".join(f"{k}={_libpq_quote(v)}" for k, v in parts.items() if v)

    def param(self, *names: str) -> str | None:
        """The last value of the first of these query parameters the URL has."""
        for name in names:
            values = [v for k, v in self.query if k == name]
            if values:
                return values[-1]
        return None


def _libpq_quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


# --- URL query parameters -------------------------------------------------------------
#
# MySQL URLs take the MySQL clients' TLS parameters (`ssl-mode`, `ssl-ca`, `ssl-cert`,
# `ssl-key`; also spelled with underscores, and `sslmode`), or Prisma's (`sslaccept`,
# `sslcert` = the CA, `sslidentity` = a PKCS#12 client identity, `sslpassword`).
# PostgreSQL URLs take libpq's. The pool and timeout settings an application's URL
# carries for its own driver are accepted and ignored; anything else is refused by name,
# never silently dropped.

SSL_MODES = ("DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
_SSL_MODE_SPELLINGS = {
    **{m: m for m in SSL_MODES},
    # libpq's words, for URLs copied between drivers
    "DISABLE": "DISABLED", "PREFER": "PREFERRED", "REQUIRE": "REQUIRED",
    "VERIFY_FULL": "VERIFY_IDENTITY",
}
# Pool and timeout settings of the application's driver (Prisma and friends): they say
# nothing wacdc has to honour (it opens a handful of connections of its own).
MYSQL_IGNORED_PARAMS = frozenset({
    "connection_limit", "pool_timeout", "socket_timeout", "max_connection_lifetime",
    "max_idle_connection_lifetime", "statement_cache_size", "prefer_socket",
})
POSTGRES_IGNORED_PARAMS = frozenset({
    "connection_limit", "pool_timeout", "socket_timeout", "max_connection_lifetime",
    "max_idle_connection_lifetime", "statement_cache_size", "schema", "pgbouncer",
})
_MYSQL_TLS_HELP = ("ssl-mode=DISABLED|PREFERRED|REQUIRED|VERIFY_CA|VERIFY_IDENTITY, ssl-ca, "
                   "ssl-cert, ssl-key, or Prisma's sslaccept, sslcert, sslidentity, "
                   "sslpassword")


@dataclass(frozen=True)
class MySQLTls:
    """How a source connection is encrypted (the MySQL client's ssl-mode semantics).

    DISABLED: plaintext. PREFERRED (the default): TLS when the server offers it, else
    plaintext; the certificate is not checked. REQUIRED: TLS or no connection, the
    certificate is not checked. VERIFY_CA: the certificate must chain to `ca` (or the
    system's CAs). VERIFY_IDENTITY: that, and it must name the host."""

    mode: str = "PREFERRED"
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    identity: str | None = None  # PKCS#12 file holding the client certificate and key
    password: str | None = field(default=None, repr=False)  # of `key` / `identity`
    source: str = "default"  # where the mode came from: default, ssl-mode, ssl-ca, prisma

    @property
    def verifies(self) -> bool:
        return self.mode in ("VERIFY_CA", "VERIFY_IDENTITY")

    def describe(self) -> str:
        what = {"DISABLED": "no TLS", "PREFERRED": "TLS if offered, certificate not checked",
                "REQUIRED": "TLS, certificate not checked",
                "VERIFY_CA": "TLS, certificate checked against "
                             + (self.ca or "the system's CAs"),
                "VERIFY_IDENTITY": "TLS, certificate and host name checked against "
                                   + (self.ca or "the system's CAs")}[self.mode]
        return f"ssl-mode={self.mode}: {what}"


@dataclass(frozen=True)
class MySQLOptions:
    """What a MySQL URL's query string says: TLS, the connect timeout."""

    tls: MySQLTls
    connect_timeout: float | None = None
    ignored: tuple[str, ...] = ()


def _mysql_key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def mysql_options(url: DatabaseUrl) -> MySQLOptions:
    """Read the query string of a MySQL URL; ValueError naming the parameter when wacdc
    cannot honour it (the message never holds a value but ssl-mode's)."""
    mysql_style: dict[str, str] = {}
    prisma: dict[str, str] = {}
    connect_timeout: float | None = None
    ignored: list[str] = []
    for raw_key, value in url.query:
        key = _mysql_key(raw_key)
        if key in ("ssl-mode", "sslmode"):
            mysql_style["mode"] = value
        elif key in ("ssl-ca", "ssl-cert", "ssl-key"):
            mysql_style[key[4:]] = value
        elif key in ("sslaccept", "sslcert", "sslidentity", "sslpassword"):
            prisma[key] = value
        elif key == "connect-timeout":
            try:
                seconds = float(value)
            except ValueError:
                raise ValueError(f"query parameter {raw_key} must be a number of seconds"
                                 ) from None
            connect_timeout = seconds if seconds > 0 else None
        elif key == "charset":
            if value.lower() not in ("utf8mb4", "utf8"):
                raise ValueError(f"query parameter {raw_key}={value}: wacdc always reads "
                                 "utf8mb4; drop the parameter")
            ignored.append(raw_key)
        elif key.replace("-", "_") in MYSQL_IGNORED_PARAMS:
            ignored.append(raw_key)
        elif key == "socket":
            raise ValueError(f"query parameter {raw_key}: Unix socket connections are not "
                             "supported; give the server's host and port")
        else:
            raise ValueError(f"unknown query parameter {raw_key!r}; wacdc takes "
                             f"{_MYSQL_TLS_HELP}, connect_timeout, and ignores "
                             f"{', '.join(sorted(MYSQL_IGNORED_PARAMS))}")
    if mysql_style and prisma:
        raise ValueError("mixes the MySQL client's TLS parameters (ssl-mode, ssl-ca, ...) "
                         "with Prisma's (sslaccept, sslcert, ...): use one set")
    tls = _prisma_tls(prisma) if prisma else _mysql_tls(mysql_style)
    return MySQLOptions(tls, connect_timeout, tuple(ignored))


def _mysql_tls(given: dict[str, str]) -> MySQLTls:
    ca, cert, key = given.get("ca") or None, given.get("cert") or None, given.get("key") or None
    if key and not cert:
        raise ValueError("ssl-key needs ssl-cert (the client certificate it belongs to)")
    if "mode" in given:
        spelled = given["mode"].strip().upper().replace("-", "_")
        if spelled not in _SSL_MODE_SPELLINGS:
            raise ValueError(f"ssl-mode={given['mode']} is not one of {', '.join(SSL_MODES)}")
        mode, source = _SSL_MODE_SPELLINGS[spelled], "ssl-mode"
    elif ca:
        mode, source = "VERIFY_CA", "ssl-ca"  # as the mysql client: a CA means verify
    elif cert:
        mode, source = "REQUIRED", "ssl-cert"
    else:
        mode, source = "PREFERRED", "default"
    if mode == "DISABLED" and (ca or cert):
        raise ValueError("ssl-mode=DISABLED contradicts ssl-ca/ssl-cert: drop them, or "
                         "choose a mode that uses TLS")
    if ca and mode in ("PREFERRED", "REQUIRED"):
        raise ValueError(f"ssl-ca is only used to verify the server (ssl-mode=VERIFY_CA or "
                         f"VERIFY_IDENTITY); with ssl-mode={mode} it would be ignored: "
                         "set ssl-mode=VERIFY_CA, or drop ssl-ca")
    if cert and mode == "PREFERRED":
        raise ValueError("a client certificate (ssl-cert) needs ssl-mode=REQUIRED or "
                         "stricter: PREFERRED may fall back to plaintext without it")
    return MySQLTls(mode=mode, ca=ca, cert=cert, key=key, source=source)


def _prisma_tls(given: dict[str, str]) -> MySQLTls:
    """Prisma's MySQL TLS parameters, as Prisma reads them: any of them means TLS;
    certificates are checked (chain and host name) only with sslaccept=strict, against
    sslcert (a CA file, not a client certificate) or the system's CAs."""
    accept = given.get("sslaccept", "accept_invalid_certs").strip().lower()
    if accept not in ("strict", "accept_invalid_certs"):
        raise ValueError("sslaccept must be strict or accept_invalid_certs")
    if given.get("sslpassword") and not given.get("sslidentity"):
        raise ValueError("sslpassword needs sslidentity (the PKCS#12 file it opens)")
    return MySQLTls(mode="VERIFY_IDENTITY" if accept == "strict" else "REQUIRED",
                    ca=given.get("sslcert") or None, identity=given.get("sslidentity") or None,
                    password=given.get("sslpassword") or None, source="prisma")


@lru_cache(maxsize=1)
def libpq_keywords() -> frozenset[str]:
    """Every connection parameter the installed libpq knows."""
    import psycopg.pq

    return frozenset(d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults())


def postgres_query_problem(url: DatabaseUrl) -> str | None:
    """Why a PostgreSQL URL's query string cannot be used as it is, or None."""
    keys = [k for k, _ in url.query]
    for key in keys:
        if key in ("sslaccept", "sslidentity"):
            return (f"query parameter {key} is Prisma's; libpq (and wacdc) take sslmode="
                    "verify-full with sslrootcert=<CA file> (strict), sslmode=require "
                    "(accept_invalid_certs), sslcert+sslkey (a client certificate)")
        if key not in libpq_keywords() and key not in POSTGRES_IGNORED_PARAMS:
            return (f"unknown query parameter {key!r}: not a libpq parameter (sslmode, "
                    "sslrootcert, sslcert, sslkey, connect_timeout, ...), nor one wacdc "
                    f"ignores ({', '.join(sorted(POSTGRES_IGNORED_PARAMS))})")
    if "sslcert" in keys and "sslkey" not in keys:
        return ("sslcert without sslkey: to libpq sslcert is a client certificate and needs "
                "its sslkey; the CA that signed the server's certificate is sslrootcert "
                "(Prisma's sslcert)")
    return None


def url_query_secrets(url: DatabaseUrl) -> list[str]:
    """Passwords a URL carries in its query string (key passwords, libpq's password)."""
    return [v for k, v in url.query
            if v and k.lower().replace("-", "_") in ("sslpassword", "password",
                                                      "ssl_key_password")]


def parse_url(raw: str, kind: Literal["mysql", "postgresql"]) -> DatabaseUrl:
    """Parse `mysql://user:pass@host:port/db` or `postgresql://...`; errors never show the URL."""
    schemes = MYSQL_SCHEMES if kind == "mysql" else POSTGRES_SCHEMES
    example = ("mysql://user:password@host:3306/database" if kind == "mysql"
               else "postgresql://user:password@host:5432/database")
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError as exc:
        # The message of urlsplit's ValueError does not contain the URL itself.
        raise ValueError(f"not a valid URL ({exc}); expected {example}") from None
    if parts.scheme not in schemes:
        shown = parts.scheme or "none"
        raise ValueError(f"scheme {shown!r} is not one of {sorted(schemes)}; expected {example}")
    if not parts.hostname:
        raise ValueError(f"no host in the URL; expected {example}")
    database = unquote(parts.path.lstrip("/"))
    if kind == "postgresql" and not database:
        raise ValueError(f"no database name in the URL; expected {example}")
    default_port = 3306 if kind == "mysql" else 5432
    return DatabaseUrl(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or default_port,
        user=unquote(parts.username or ("root" if kind == "mysql" else "postgres")),
        password=unquote(parts.password or ""),
        database=database,
        query=tuple(parse_qsl(parts.query)),
    )


def derive_server_id(seed: str) -> int:
    """A stable replica server_id for this deployment (away from the small ids people pick)."""
    return 1_000_000 + zlib.crc32(seed.encode()) % 1_000_000_000


class Settings(BaseSettings):
    """All of wacdc's settings. Field docs are what `--help` and the README show."""

    model_config = SettingsConfigDict(extra="forbid", populate_by_name=True,
                                      hide_input_in_errors=True)

    source_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("WACDC_SOURCE_URL", "DATABASE_URL",
                                                    "source_url"),
        description="MySQL/MariaDB source, mysql://user:pass@host:port/db")
    target_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("WACDC_TARGET_URL", "WHATSAPP_DATABASE_URL",
                                      "POSTGRES_URL_NON_POOLING", "target_url"),
        description="PostgreSQL target, postgresql://user:pass@host:port/db (a direct URL, "
                    "not a pooled one)")
    profile: str = Field(
        default="prisma", validation_alias=AliasChoices("WACDC_PROFILE", "profile"),
        description="target profile: prisma (the 19 WhatsApp tables), plain, or a TOML path")
    tables: list[str] | None = Field(
        default=None, validation_alias=AliasChoices("WACDC_TABLES", "tables"),
        description="comma list of tables (default: the profile's, or all base tables)")
    target_schema: str = Field(
        default="public", validation_alias=AliasChoices("WACDC_TARGET_SCHEMA", "target_schema"),
        description="PostgreSQL schema the tables go into")
    server_id: int | None = Field(
        default=None, validation_alias=AliasChoices("WACDC_SERVER_ID", "server_id"),
        description="replica server_id towards the source (default: derived, stable)")
    log_format: Literal["json", "console", "auto"] = Field(
        default="auto", validation_alias=AliasChoices("WACDC_LOG_FORMAT", "log_format"),
        description="json or console (auto: console on a terminal, else json)")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", validation_alias=AliasChoices("WACDC_LOG_LEVEL", "log_level"))
    pool_min: int = Field(default=1, ge=0,
                          validation_alias=AliasChoices("WHATSAPP_DB_POOL_MIN", "pool_min"))
    pool_max: int = Field(default=4, ge=1,
                          validation_alias=AliasChoices("WHATSAPP_DB_POOL_MAX", "pool_max"))
    pool_idle_timeout: float = Field(
        default=300.0, gt=0,
        validation_alias=AliasChoices("WHATSAPP_DB_POOL_IDLE_TIMEOUT", "pool_idle_timeout"))
    metrics_port: int = Field(
        default=9108, ge=0, le=65535,
        validation_alias=AliasChoices("WACDC_METRICS_PORT", "PORT", "metrics_port"))
    stall_seconds: float = Field(
        default=60.0, gt=0,
        validation_alias=AliasChoices("WACDC_STALL_SECONDS", "stall_seconds"),
        description="/healthz turns 503 after this long without progress (a server down, "
                    "an apply blocked)")
    admin_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("WACDC_ADMIN_TOKEN", "admin_token"))
    cutover: bool = Field(
        default=False, validation_alias=AliasChoices("WACDC_CUTOVER", "cutover"),
        description="request the cutover at start (it runs once streaming and lag allow)")
    cutover_max_lag: float = Field(
        default=1.0, ge=0,
        validation_alias=AliasChoices("WACDC_CUTOVER_MAX_LAG", "cutover_max_lag"),
        description="cutover: freeze only once lag is at most this many seconds")
    cutover_timeout: float = Field(
        default=120.0, gt=0,
        validation_alias=AliasChoices("WACDC_CUTOVER_TIMEOUT", "cutover_timeout"),
        description="cutover: give up (back to streaming) if lag is not low enough by then")
    cutover_max_freeze: float = Field(
        default=5.0, gt=0,
        validation_alias=AliasChoices("WACDC_CUTOVER_MAX_FREEZE", "cutover_max_freeze"),
        description="cutover: longest write pause; past it, unlock and abort (nothing lost)")
    matview_refresh: float = Field(
        default=3600.0, ge=0,
        validation_alias=AliasChoices("WACDC_MATVIEW_REFRESH", "matview_refresh"),
        description="after the cutover: refresh the profile's materialized views every so "
                    "many seconds (0: do not, and exit once the cutover is done)")
    fence: Literal["rename", "none"] = Field(
        default="rename", validation_alias=AliasChoices("WACDC_FENCE", "fence"),
        description="after the cutover: rename the source tables <name>__wacdc_retired so a "
                    "stale app fails loudly, or none (you stopped the app yourself)")
    orphans: Literal["fail", "apply"] = Field(
        default="fail", validation_alias=AliasChoices("WACDC_ORPHANS", "orphans"),
        description="rows breaking a profile foreign key: refuse the cutover, or apply the "
                    "relation's onDelete action (SET NULL / CASCADE) and record it")
    bad_value_policy: Literal["coerce", "strict"] = Field(
        default="coerce", validation_alias=AliasChoices("WACDC_BAD_VALUES", "bad_value_policy"),
        description="coerce: documented default per case, counted and logged; strict: stop")

    snapshot_chunk_rows: int = Field(
        default=20_000, ge=1,
        validation_alias=AliasChoices("WACDC_SNAPSHOT_CHUNK_ROWS", "snapshot_chunk_rows"),
        description="rows per snapshot chunk (each commits with its progress)")
    snapshot_lock: Literal["tables", "ftwrl"] = Field(
        default="tables", validation_alias=AliasChoices("WACDC_SNAPSHOT_LOCK", "snapshot_lock"),
        description="MySQL only: LOCK TABLES <tracked> READ, or FLUSH TABLES WITH READ LOCK")

    batch_max_rows: int = Field(
        default=5_000, ge=1,
        validation_alias=AliasChoices("WACDC_BATCH_MAX_ROWS", "batch_max_rows"),
        description="streaming: row changes per PostgreSQL transaction at most")
    transaction_piece_rows: int = Field(
        default=10_000, ge=100,
        validation_alias=AliasChoices("WACDC_TRANSACTION_PIECE_ROWS",
                                      "transaction_piece_rows"),
        description="streaming: a source transaction with more row changes is applied in "
                    "pieces of this many inside one PostgreSQL transaction (memory stays "
                    "bounded; the checkpoint commits with the last piece)")
    decoder: Literal["compiled", "library"] = Field(
        default="compiled", validation_alias=AliasChoices("WACDC_DECODER", "decoder"),
        description="streaming: who decodes binlog row images: compiled (wacdc's per-table "
                    "plans, about 4x faster) or library (mysql-replication as it ships)")
    decode_in: Literal["inline", "process"] = Field(
        default="inline", validation_alias=AliasChoices("WACDC_DECODE_IN", "decode_in"),
        description="streaming: read and decode the binlog inline, or in a child process "
                    "(a core of its own; docs/benchmarks.md says when it pays)")
    batch_max_seconds: float = Field(
        default=0.1, gt=0,
        validation_alias=AliasChoices("WACDC_BATCH_MAX_SECONDS", "batch_max_seconds"),
        description="streaming: the oldest pending change waits at most this long")

    resume_from: Literal["position", "gtid"] = Field(
        default="position",
        validation_alias=AliasChoices("WACDC_RESUME_FROM", "resume_from"),
        description="streaming resumes by binlog file:pos, or by GTID auto-position "
                    "(after a source failover: other file names, same GTIDs)")

    @field_validator("tables", mode="before")
    @classmethod
    def _split_tables(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()] or None
        return value

    @field_validator("source_url", "target_url", "admin_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the TOML file, which arrives as init kwargs.
        return env_settings, init_settings

    # Parsed views -----------------------------------------------------------------

    def url_variable(self, name: Literal["source_url", "target_url"]) -> str:
        """The variable a URL setting came from (the first of its names that is set), for
        errors that tell the operator which one to fix."""
        alias = type(self).model_fields[name].validation_alias
        choices = [c for c in alias.choices if isinstance(c, str)] \
            if isinstance(alias, AliasChoices) else [name]
        present = {k.lower() for k in os.environ}
        for choice in choices[:-1]:  # the last one is the TOML key
            if choice.lower() in present:
                return choice
        return f"{name} (--config)" if getattr(self, name) is not None else choices[0]

    def source(self) -> DatabaseUrl:
        if self.source_url is None:
            raise ConfigError("WACDC_SOURCE_URL (or DATABASE_URL) is not set; "
                              "set it to mysql://user:password@host:3306/database")
        variable = self.url_variable("source_url")
        try:
            url = parse_url(self.source_url.get_secret_value(), "mysql")
            mysql_options(url)
        except ValueError as exc:
            raise ConfigError(f"{variable}: {exc}") from None
        if not url.database:
            raise ConfigError(f"{variable}: no database name in the URL; "
                              "expected mysql://user:password@host:3306/database")
        return url

    def target(self) -> DatabaseUrl:
        if self.target_url is None:
            raise ConfigError("WACDC_TARGET_URL (or WHATSAPP_DATABASE_URL, or "
                              "POSTGRES_URL_NON_POOLING) is not set; set it to "
                              "postgresql://user:password@host:5432/database")
        variable = self.url_variable("target_url")
        try:
            url = parse_url(self.target_url.get_secret_value(), "postgresql")
        except ValueError as exc:
            raise ConfigError(f"{variable}: {exc}") from None
        problem = postgres_query_problem(url)
        if problem:
            raise ConfigError(f"{variable}: {problem}")
        if (url.param("pgbouncer") or "").strip().lower() in ("true", "1", "yes", "on"):
            raise ConfigError(f"{variable}: {_pooled_url_message(variable)}")
        schema = url.param("schema")
        if schema is not None and schema != self.target_schema:
            raise ConfigError(
                f"{variable} has schema={schema} (Prisma's schema: the application reads "
                f"its tables there), but WACDC_TARGET_SCHEMA is {self.target_schema}: set "
                f"WACDC_TARGET_SCHEMA={schema} so wacdc writes where the application reads")
        return url

    def effective_server_id(self) -> int:
        if self.server_id is not None:
            return self.server_id
        seed = self.target_url.get_secret_value() if self.target_url else "wacdc"
        return derive_server_id(f"{seed}/{self.target_schema}")

    def secrets(self) -> list[str]:
        """Values the log redactor must never print."""
        found: list[str] = []
        for secret in (self.source_url, self.target_url):
            if secret is None:
                continue
            try:
                kind: Literal["mysql", "postgresql"] = \
                    "mysql" if secret is self.source_url else "postgresql"
                url = parse_url(secret.get_secret_value(), kind)
            except ValueError:
                continue
            if url.password:
                found.append(url.password)
            found.extend(url_query_secrets(url))
        if self.admin_token is not None:
            found.append(self.admin_token.get_secret_value())
        return found


def _pooled_url_message(variable: str) -> str:
    direct = ("POSTGRES_URL_NON_POOLING is set here: use it (unset the pooled variable or "
              "set WACDC_TARGET_URL=$POSTGRES_URL_NON_POOLING)"
              if variable != "POSTGRES_URL_NON_POOLING" and any(
                  k.lower() == "postgres_url_non_pooling" for k in os.environ)
              else "e.g. Vercel/Neon's POSTGRES_URL_NON_POOLING, Supabase's direct "
                   "connection, Prisma's directUrl")
    return ("pgbouncer=true: this is a pooled URL (PgBouncer in transaction mode). wacdc "
            "needs a direct session to PostgreSQL (its replication lock, temporary tables "
            f"and long transactions do not survive a transaction pooler): use the direct URL, "
            f"{direct}")


_FIELD_ENV = {
    name: (field.validation_alias.choices[0] if isinstance(field.validation_alias, AliasChoices)
           else name)
    for name, field in Settings.model_fields.items()
}


def load_settings(config_file: str | os.PathLike[str] | None = None,
                  **overrides: Any) -> Settings:
    """Build the settings; raise ConfigError with the variable name on bad input."""
    file_values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            file_values = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"--config: file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config: {path} is not valid TOML: {exc}") from None
        file_values = file_values.get("wacdc", file_values)
    file_values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**file_values)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc)) from None


def _describe_validation_error(exc: ValidationError) -> str:
    messages = []
    for err in exc.errors(include_input=False, include_url=False):
        field_name = str(err["loc"][0]) if err["loc"] else "?"
        env = _FIELD_ENV.get(field_name, field_name)
        messages.append(f"{env}: {err['msg']}")
    return "; ".join(messages)
