"""Target profiles: data files (TOML) that shape the PostgreSQL schema and conversions."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wacdc.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TypeRules(_Strict):
    varchar: Literal["varchar", "text"] = "varchar"
    enum: Literal["text", "pg_enum"] = "text"
    time: Literal["interval", "time"] = "interval"
    current_timestamp: str = "keep"
    index_names: Literal["source", "prefixed"] = "prefixed"


class EnumType(_Strict):
    name: str
    values: list[str]
    columns: list[str] = Field(default_factory=list)  # "Table.column"


class ColumnOverride(_Strict):
    type: str | None = None  # PostgreSQL type, e.g. "text[]"
    convert: Literal["json_string_array"] | None = None
    default: str | None = None  # SQL expression
    nullable: bool | None = None


class ExtraColumn(_Strict):
    table: str
    name: str
    type: str
    default: str | None = None
    index: str | None = None


class ForeignKey(_Strict):
    name: str
    table: str
    columns: list[str]
    references: str
    referenced_columns: list[str]
    on_delete: Literal["CASCADE", "SET NULL", "RESTRICT", "NO ACTION", "SET DEFAULT"] = (
        "NO ACTION")
    on_update: Literal["CASCADE", "SET NULL", "RESTRICT", "NO ACTION", "SET DEFAULT"] = (
        "NO ACTION")


class Extra(_Strict):
    """A PostgreSQL improvement with no MySQL counterpart, created at cutover (and by
    `wacdc schema --apply --extras`). Statements use {schema}; all are idempotent."""

    name: str
    kind: Literal["index", "materialized_view"]
    tables: list[str]  # created only when all of these are replicated
    statements: list[str]
    refresh: bool = False  # a materialized view the daemon refreshes on a schedule


class Profile(_Strict):
    name: str
    description: str = ""
    table_set: str | None = None
    tables: list[str] = Field(default_factory=list)  # filled from table_set
    types: TypeRules = Field(default_factory=TypeRules)
    enums: list[EnumType] = Field(default_factory=list)
    columns: dict[str, ColumnOverride] = Field(default_factory=dict)
    # "Table.index" -> the PostgreSQL name of that source index (e.g. one that does not
    # fit PostgreSQL's 63 bytes, or collides): schema/identifiers.py
    indexes: dict[str, str] = Field(default_factory=dict)
    extra_columns: list[ExtraColumn] = Field(default_factory=list)
    foreign_keys: list[ForeignKey] = Field(default_factory=list)
    extras: list[Extra] = Field(default_factory=list)

    def enum_for(self, table: str, column: str) -> EnumType | None:
        ref = f"{table}.{column}"
        return next((e for e in self.enums if ref in e.columns), None)

    def override_for(self, table: str, column: str) -> ColumnOverride | None:
        return self.columns.get(f"{table}.{column}")

    def extra_columns_for(self, table: str) -> list[ExtraColumn]:
        return [c for c in self.extra_columns if c.table == table]


def config_dir() -> Path:
    """Where the shipped config/ lives: $WACDC_CONFIG_DIR, the source checkout, or the install."""
    env = os.environ.get("WACDC_CONFIG_DIR")
    candidates = [Path(env)] if env else []
    candidates += [
        Path(__file__).resolve().parents[3] / "config",  # src/wacdc/schema -> repo root
        Path(sys.prefix) / "share" / "wacdc" / "config",
    ]
    for candidate in candidates:
        if (candidate / "profiles").is_dir():
            return candidate
    raise ConfigError("cannot find wacdc's config/ directory (profiles); "
                      "set WACDC_CONFIG_DIR to the folder that holds profiles/")


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"profile file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile file {path} is not valid TOML: {exc}") from None


def load_profile(name_or_path: str) -> Profile:
    """`prisma`, `plain`, or the path of a profile TOML file."""
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        path = Path(name_or_path)
        base = path.parent
    else:
        base = config_dir()
        path = base / "profiles" / f"{name_or_path}.toml"
        if not path.exists():
            known = sorted(p.stem for p in (base / "profiles").glob("*.toml"))
            raise ConfigError(f"WACDC_PROFILE: unknown profile {name_or_path!r}; "
                              f"known: {', '.join(known)}, or a path to a .toml file")
    data = _read_toml(path)
    table_set = data.get("table_set")
    if table_set and not data.get("tables"):
        set_path = _find_table_set(base, table_set)
        data["tables"] = _read_toml(set_path).get("tables", [])
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors(include_url=False, include_input=False))
        raise ConfigError(f"profile {path}: {problems}") from None


def _find_table_set(base: Path, name: str) -> Path:
    for candidate in (base / f"{name}.toml", base.parent / f"{name}.toml"):
        if candidate.exists():
            return candidate
    raise ConfigError(f"table set {name!r} not found next to the profile ({base})")
