"""The table model: what wacdc knows about a source table, independent of the server."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Default:
    """A column default: a literal value, or an expression such as CURRENT_TIMESTAMP(3)."""

    value: str
    is_expression: bool = False


@dataclass(frozen=True)
class Column:
    name: str
    position: int  # 0-based ordinal in the source table
    data_type: str  # information_schema DATA_TYPE, lower case: int, varchar, json, enum, ...
    column_type: str  # full COLUMN_TYPE: "int(10) unsigned", "tinyint(1)", "enum('a','b')"
    nullable: bool
    default: Default | None = None
    unsigned: bool = False
    char_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    fsp: int = 0
    charset: str | None = None
    collation: str | None = None
    values: tuple[str, ...] = ()  # enum / set members, in definition order
    auto_increment: bool = False
    generated: str | None = None  # generation expression for VIRTUAL/STORED columns
    is_json: bool = False  # MySQL JSON, or MariaDB LONGTEXT with a JSON_VALID check

    @property
    def kind(self) -> str:
        """The type-map key: data_type refined where one data type has two meanings."""
        if self.is_json:
            return "json"
        if self.data_type == "tinyint" and self.column_type.startswith("tinyint(1)"):
            return "boolean"
        if self.data_type == "bit" and self.precision == 1:
            return "bit1"
        return self.data_type

    @property
    def bit_width(self) -> int:
        return self.precision or 1


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool
    primary: bool = False
    kind: str = "BTREE"  # BTREE, HASH, FULLTEXT, SPATIAL
    prefixes: tuple[int | None, ...] = ()  # SUB_PART per column: index only the first n chars


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...] = ()
    estimated_rows: int = 0
    by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_name.update({c.name: c for c in self.columns})

    def column(self, name: str) -> Column:
        return self.by_name[name]

    @property
    def primary_key(self) -> Index | None:
        return next((i for i in self.indexes if i.primary), None)

    @property
    def replica_key(self) -> tuple[str, ...] | None:
        """Row identity: the primary key, else a unique key over NOT NULL columns."""
        if self.primary_key is not None:
            return self.primary_key.columns
        for index in self.indexes:
            if index.unique and all(not self.column(c).nullable for c in index.columns):
                return index.columns
        return None

    @property
    def secondary_indexes(self) -> tuple[Index, ...]:
        return tuple(i for i in self.indexes if not i.primary)
