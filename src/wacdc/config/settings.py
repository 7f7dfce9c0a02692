"""The Settings: environment first, then an optional TOML file (`--config`), then defaults.

Every variable of DESIGN §7 is here. Errors name the variable and never echo a value.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from wacdc.config.mysql import mysql_options
from wacdc.config.urls import (
    DatabaseUrl,
    derive_server_id,
    parse_url,
    postgres_query_problem,
    url_query_secrets,
)
from wacdc.errors import ConfigError


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
    cutover_bridge: bool = Field(
        default=False,
        validation_alias=AliasChoices("WACDC_CUTOVER_BRIDGE", "cutover_bridge"),
        description="a cutover (WACDC_CUTOVER=1, or one requested without --bridge) opens a "
                    "bridge window: MySQL is not fenced until the app's instances have moved "
                    "to PostgreSQL; both stores replicate each other meanwhile "
                    "(docs/cutover.md, \"Bridge window\")")
    bridge_max: float = Field(
        default=900.0, gt=0, validation_alias=AliasChoices("WACDC_BRIDGE_MAX", "bridge_max"),
        description="a bridge window closes (MySQL fenced) after at most this many seconds")
    bridge_quiet: float = Field(
        default=60.0, gt=0,
        validation_alias=AliasChoices("WACDC_BRIDGE_QUIET", "bridge_quiet"),
        description="a bridge window closes once no app write has reached MySQL for this "
                    "many seconds")
    fence: Literal["rename", "none"] = Field(
        default="rename", validation_alias=AliasChoices("WACDC_FENCE", "fence"),
        description="after the cutover: rename the source tables <name>__wacdc_retired so a "
                    "stale app fails loudly, or none (you stopped the app yourself)")
    orphans: Literal["fail", "apply"] = Field(
        default="fail", validation_alias=AliasChoices("WACDC_ORPHANS", "orphans"),
        description="rows breaking a profile foreign key: refuse the cutover, or apply the "
                    "relation's onDelete action (SET NULL / CASCADE) and record it")
    reverse: bool = Field(
        default=True, validation_alias=AliasChoices("WACDC_REVERSE", "reverse"),
        description="after the cutover: keep the retired MySQL tables current from "
                    "PostgreSQL (capture triggers), so `wacdc rollback` loses nothing; 0: "
                    "off, and wacdc removes its triggers and tables")
    rollback: bool = Field(
        default=False, validation_alias=AliasChoices("WACDC_ROLLBACK", "rollback"),
        description="request the rollback at start (it runs once reverse lag allows)")
    reverse_skip: str = Field(
        default="", validation_alias=AliasChoices("WACDC_REVERSE_SKIP", "reverse_skip"),
        description="reverse replication: PostgreSQL transaction ids (comma list) whose "
                    "changes are "
                    "not applied to MySQL (after a stop that named one; each skipped change "
                    "is logged with its key)")
    reverse_poll: float = Field(
        default=0.2, gt=0, le=60,
        validation_alias=AliasChoices("WACDC_REVERSE_POLL", "reverse_poll"),
        description="reverse replication: seconds between looks at PostgreSQL's change log "
                    "when it was empty")
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
    apply_behind: bool = Field(
        default=True, validation_alias=AliasChoices("WACDC_APPLY_BEHIND", "apply_behind"),
        description="streaming: read and decode the next batch while PostgreSQL commits "
                    "the last one (one batch in flight at most; each commits with its "
                    "checkpoint, in order); false: wait for each commit")
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
