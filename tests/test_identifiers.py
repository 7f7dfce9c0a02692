"""PostgreSQL's 63-byte identifier limit (MySQL allows 64 characters, up to 256 bytes).

The rule (schema/identifiers.py) on planned tables, then `wacdc check`, `schema` and `run`
on real servers refusing such names (nothing created), and names of exactly 63 bytes
replicated end to end under their full names.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.support.harness import SourceDb, TargetDb, run_cli, wacdc_env
from wacdc.cutover import advance_identities
from wacdc.schema.ddl import TargetTable, plan_table
from wacdc.schema.identifiers import (
    check_identifiers,
    identity_sequence_name,
    pg_object_name,
    pg_truncate,
    primary_key_name,
    refusal,
    utf8_len,
)
from wacdc.schema.model import Column, Index, Table
from wacdc.schema.profile import (
    ExtraColumn,
    ForeignKey,
    Profile,
    TypeRules,
    load_profile,
)

# 64 bytes in 32 characters (MySQL takes it: 64 characters is its limit), and 63 bytes.
U64 = "é" * 32
U63 = "é" * 31 + "a"


def _profile(**rules: str) -> Profile:
    plain = load_profile("plain")
    return plain.model_copy(update={"types": TypeRules(**{**plain.types.model_dump(),
                                                          **rules})})


def _table(name: str, *columns: str, indexes: tuple[Index, ...] = (), auto: bool = False,
           enum: str | None = None) -> Table:
    cols = [Column(columns[0] if columns else "id", 0, "bigint", "bigint", False,
                   auto_increment=auto)]
    cols += [Column(c, i, "varchar", "varchar(10)", True, char_length=10)
             for i, c in enumerate(columns[1:], start=1)]
    if enum:
        cols.append(Column(enum, len(cols), "enum", "enum('a','b')", True, values=("a", "b")))
    key = Index("PRIMARY", (cols[0].name,), unique=True, primary=True)
    return Table("src", name, tuple(cols), (key, *indexes))


def _plan(*tables: Table, profile: Profile | None = None) -> tuple[list[TargetTable], Profile]:
    profile = profile or _profile()
    return [plan_table(t, profile, "public", check_names=False) for t in tables], profile


def _problems(*tables: Table, profile: Profile | None = None,
              schema: str = "public") -> list[tuple[str, str | None, str, int, str | None]]:
    planned, profile = _plan(*tables, profile=profile)
    return [(p.kind, p.table, p.name, p.length,
             p.colliding_with.name if p.colliding_with else None)
            for p in check_identifiers(planned, profile, schema)]


# --- the rule ----------------------------------------------------------------------

def test_length_counts_utf8_bytes_not_characters() -> None:
    assert len(U64) == 32 and utf8_len(U64) == 64
    assert len(U63) == 32 and utf8_len(U63) == 63
    assert pg_truncate(U63) == U63
    assert pg_truncate(U64) == "é" * 31  # cut at a character boundary: 62 bytes
    assert pg_truncate("a" * 64) == "a" * 63


def test_names_longer_than_63_bytes_are_problems_with_fewer_characters() -> None:
    found = _problems(_table(U64), _table("short", "id", U64))
    assert ("table", U64, U64, 64, None) in found
    assert ("column", "short", U64, 64, None) in found
    assert len(found) == 2, found


def test_exactly_63_bytes_is_fine_and_derived_names_fit() -> None:
    planned, profile = _plan(_table(U63, U63, "a" * 63, auto=True,
                                    indexes=(Index("i" * 63, ("a" * 63,), unique=True),)))
    assert check_identifiers(planned, profile, "public") == []
    (table,) = planned
    (index_name, _), = table.indexes
    # Derived names are shortened the way PostgreSQL shortens its own: never cut by it.
    for derived in (primary_key_name(U63), index_name, identity_sequence_name(U63, U63)):
        assert utf8_len(derived) <= 63, derived
    assert primary_key_name(U63).endswith("_pkey") and primary_key_name(U63) != U63
    assert primary_key_name("orders") == "orders_pkey"
    assert index_name.endswith("_" + "i" * 31) and index_name.startswith("é")


def test_index_names_sharing_63_bytes_collide_source_and_prefixed() -> None:
    first, second = "k" * 63 + "1", "k" * 63 + "2"
    indexes = (Index(first, ("a",), unique=False), Index(second, ("a",), unique=True))
    table = _table("t", "id", "a", indexes=indexes)

    source = _problems(table, profile=_profile(index_names="source"))
    assert ("index", "t", first, 64, None) in source
    assert ("unique index", "t", second, 64, None) in source
    assert ("unique index", "t", second, 64, first) in source
    assert len(source) == 3, source

    # prefixed: "t_" + the index name, shortened: both shortened to the same 63 bytes.
    prefixed = _problems(table)
    assert len(prefixed) == 1, prefixed
    kind, owner, name, length, other = prefixed[0]
    assert (kind, owner, length) == ("unique index", "t", 63) and name == other
    planned, profile = _plan(table)
    message = refusal(check_identifiers(planned, profile, "public"))
    assert first in message and second in message  # the source names, for the fix
    assert f'[indexes] "t.{second}"' in message


def test_profile_index_rename_resolves_a_collision_and_is_checked_itself() -> None:
    first, second = "k" * 63 + "1", "k" * 63 + "2"
    table = _table("t", "id", "a", indexes=(Index(first, ("a",), unique=False),
                                            Index(second, ("a",), unique=True)))
    renamed = _profile().model_copy(update={"indexes": {f"t.{second}": "t_k_unique"}})
    assert _problems(table, profile=renamed) == []
    planned, _ = _plan(table, profile=renamed)
    assert dict(planned[0].indexes)["t_k_unique"].unique
    too_long = _profile().model_copy(update={"indexes": {f"t.{second}": U64}})
    assert ("unique index", "t", U64, 64, None) in _problems(table, profile=too_long)


def test_columns_collide_per_table_not_across_tables() -> None:
    a, b = "c" * 63 + "a", "c" * 63 + "b"
    found = _problems(_table("one", "id", a, b), _table("two", "id", a))
    collisions = [p for p in found if p[4] is not None]
    assert collisions == [("column", "one", b, 64, a)], found
    assert {(p[1], p[2]) for p in found if p[4] is None} == {("one", a), ("one", b),
                                                              ("two", a)}


def test_relations_share_one_namespace_per_schema() -> None:
    # Table "x_pkey" is the primary key index of table "x"; "t_by" is table t's index
    # "by" (prefixed); an identity sequence "s_id_seq" is PostgreSQL's for s.id.
    found = _problems(_table("x"), _table("x_pkey"),
                      _table("t", "id", "a", indexes=(Index("by", ("a",), unique=False),)),
                      _table("t_by"), _table("s", auto=True), _table("s_id_seq"))
    assert ("table", "x_pkey", "x_pkey", 6, "x_pkey") in found
    assert ("table", "t_by", "t_by", 4, "t_by") in found
    assert ("table", "s_id_seq", "s_id_seq", 8, "s_id_seq") in found
    assert len(found) == 3, found


def test_identity_sequences_of_two_tables_do_not_collide_with_each_other() -> None:
    # PostgreSQL picks the next free name for the second; the cutover finds it by column.
    one, two = "t" * 56 + "1" + "z" * 6, "t" * 56 + "2" + "z" * 6  # pkeys keep 58 bytes
    assert identity_sequence_name(one, "id") == identity_sequence_name(two, "id")
    assert _problems(_table(one, auto=True), _table(two, auto=True)) == []


def test_primary_keys_of_tables_sharing_their_first_bytes_collide() -> None:
    long = "p" * 59
    found = _problems(_table(long + "1"), _table(long + "2"))
    assert [p[0] for p in found] == ["primary key"], found
    planned, profile = _plan(_table(long + "1"), _table(long + "2"))
    assert f"or the table {long}2 in MySQL" in refusal(
        check_identifiers(planned, profile, "public"))


def test_profile_foreign_keys_and_enum_types() -> None:
    fk = ForeignKey(name="f" * 64, table="child", columns=["pid"], references="parent",
                    referenced_columns=["id"])
    profile = _profile(enum="pg_enum").model_copy(update={"foreign_keys": [fk]})
    found = _problems(_table("parent"), _table("child", "id", "pid", enum="s" * 60),
                      profile=profile)
    assert ("foreign key", "child", "f" * 64, 64, None) in found
    assert ("enum type", None, "child_" + "s" * 60, 66, None) in found
    planned, profile = _plan(_table("parent"), _table("child", "id", "pid", enum="s" * 60),
                             profile=profile)
    message = refusal(check_identifiers(planned, profile, "public"))
    assert "[[foreign_keys]]" in message and 'columns = ["child.' in message
    extra = ExtraColumn(table="child", name="note", type="text", index="n" * 64)
    with_extra = profile.model_copy(update={"extra_columns": [extra]})
    planned, _ = _plan(_table("child"), profile=with_extra)
    (problem,) = check_identifiers(planned, with_extra, "public")
    assert (problem.kind, problem.name) == ("index", "n" * 64)
    assert "[[extra_columns]] index" in problem.fix()
    # A foreign key to a table that is not replicated is not created: not checked.
    assert ("foreign key", "child", "f" * 64, 64, None) not in _problems(
        _table("child", "id", "pid"), profile=profile)


def test_schema_name_and_plan_table_check() -> None:
    assert _problems(_table("t"), schema=U64) == [("schema", None, U64, 64, None)]
    from wacdc.errors import EXIT_FINDING, IdentifierError

    with pytest.raises(IdentifierError) as raised:
        plan_table(_table("t", "id", U64), _profile(), "public")
    assert raised.value.exit_code == EXIT_FINDING
    assert f"column t.{U64} is 64 bytes" in str(raised.value)


def test_pg_object_name_follows_postgresql() -> None:
    assert pg_object_name("orders", "id", "seq") == "orders_id_seq"
    assert pg_object_name("a" * 40, "b" * 40, None) == "a" * 31 + "_" + "b" * 31
    # The longer part loses bytes first; a part is cut at a character boundary.
    assert pg_object_name("a" * 70, "bb", "seq") == "a" * 56 + "_bb_seq"
    name = pg_object_name(U63, U63, "seq")
    assert name == "é" * 14 + "_" + "é" * 14 + "_seq" and utf8_len(name) == 61


# --- real servers ---------------------------------------------------------------------

L64 = "orders_" + "x" * 57  # 64 characters: MySQL's limit, one byte over PostgreSQL's
C64 = "customer_" + "c" * 55
I64A, I64B = "by_" + "i" * 60 + "a", "by_" + "i" * 60 + "b"  # the same first 63 bytes
UCOL = "ö" * 32  # 32 characters, 64 bytes


def _create_offenders(db: SourceDb) -> None:
    db.execute(f"CREATE TABLE `{L64}` (id INT PRIMARY KEY, `{UCOL}` INT)",
               f"CREATE TABLE idx_host (id INT AUTO_INCREMENT PRIMARY KEY, `{C64}` INT, "
               f"v VARCHAR(20), KEY `{I64A}` (v), UNIQUE KEY `{I64B}` (v, id))")


def _public_relations(target: TargetDb) -> list[str]:
    with target.connect() as pg:
        return [r[0] for r in pg.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public'").fetchall()]


def test_check_schema_and_run_refuse_names_postgresql_would_cut(
        empty_source_db: SourceDb, target_db: TargetDb) -> None:
    _create_offenders(empty_source_db)
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain",
                    WACDC_TABLES=f"{L64},idx_host")

    check = run_cli("check", env=env)
    assert check.code == 1, check.output
    problems = [ln for ln in check.stdout.splitlines() if ln.startswith("PROBLEM")]
    assert all(ln.startswith("PROBLEM identifier") for ln in problems), check.stdout
    text = "\n".join(problems)
    assert f"table {L64} is 64 bytes" in text
    assert f"column {L64}.{UCOL} is 64 bytes" in text
    assert f"column idx_host.{C64} is 64 bytes" in text
    assert f"index idx_host.{I64A}" in text and f"unique index idx_host.{I64B}" in text
    assert len(problems) == 4, check.stdout

    for args in (("schema",), ("schema", "--apply"), ("run", "--snapshot-only")):
        result = run_cli(*args, env=env)
        assert result.code == 1, (args, result.output)
        for name in (L64, UCOL, C64, I64A, I64B):
            assert name in result.stderr, (args, name, result.stderr)
        assert "RENAME TABLE" in result.stderr and "[indexes]" in result.stderr
        assert "CREATE TABLE" not in result.stdout
    assert _public_relations(target_db) == []  # nothing created, not even truncated


def test_profile_index_rename_keeps_both_indexes(empty_source_db: SourceDb,
                                                 target_db: TargetDb, tmp_path: Path) -> None:
    empty_source_db.execute(f"CREATE TABLE idx_host (id INT PRIMARY KEY, v VARCHAR(20), "
                            f"KEY `{I64A}` (v), UNIQUE KEY `{I64B}` (v, id))")
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain",
                    WACDC_TABLES="idx_host")
    refused = run_cli("schema", "--apply", env=env)
    assert refused.code == 1 and I64B in refused.stderr, refused.output
    profile = tmp_path / "renamed.toml"
    profile.write_text((Path(__file__).parents[1] / "config/profiles/plain.toml").read_text()
                       + f'\n[indexes]\n"idx_host.{I64B}" = "idx_host_v_id_key"\n')
    env["WACDC_PROFILE"] = str(profile)
    applied = run_cli("schema", "--apply", env=env)
    assert applied.code == 0, applied.output
    with target_db.connect() as pg:
        indexes = dict(pg.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'idx_host'"
        ).fetchall())
    shortened = pg_object_name("idx_host", I64A, None)
    assert set(indexes) == {"idx_host_pkey", shortened, "idx_host_v_id_key"}
    assert "UNIQUE" in indexes["idx_host_v_id_key"] and "UNIQUE" not in indexes[shortened]
    assert run_cli("schema", "--apply", env=env).stdout.startswith("nothing to change")


T63 = "orders_" + "y" * 56  # 63 bytes
K63 = "é" * 31 + "k"  # 63 bytes in 32 characters: the identity primary key
V63 = "ü" * 31 + "v"
IX63A, IX63B = "by_" + "j" * 59 + "a", "by_" + "j" * 59 + "b"  # differ in byte 63


def test_names_of_exactly_63_bytes_replicate_untruncated(empty_source_db: SourceDb,
                                                         target_db: TargetDb,
                                                         tmp_path: Path) -> None:
    empty_source_db.execute(
        f"CREATE TABLE `{T63}` (`{K63}` BIGINT AUTO_INCREMENT PRIMARY KEY, "
        f"`{V63}` VARCHAR(20), KEY `{IX63A}` (`{V63}`), UNIQUE KEY `{IX63B}` (`{V63}`, `{K63}`))",
        f"INSERT INTO `{T63}` (`{V63}`) VALUES ('a'), ('b'), ('c')")
    # Source index names (63 bytes each): "<table>_<index>" could not hold them.
    profile = tmp_path / "source_names.toml"
    profile.write_text((Path(__file__).parents[1] / "config/profiles/plain.toml").read_text()
                       .replace('index_names = "prefixed"', 'index_names = "source"'))
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE=str(profile), WACDC_TABLES=T63)

    check = run_cli("check", env=env)
    assert check.code == 0 and "identifier" not in check.stdout, check.output
    first = run_cli("run", "--snapshot-only", env=env)
    assert first.code == 0, first.output
    again = run_cli("run", "--snapshot-only", env=env)  # a restart finds every object
    assert again.code == 0, again.output
    assert run_cli("schema", "--apply", env=env).stdout.startswith("nothing to change")

    with target_db.connect() as pg:
        relations = dict(pg.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public'").fetchall())
        columns = [r[0] for r in pg.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "ORDER BY attnum", (f'"{T63}"',)).fetchall()]
        unique = pg.execute("SELECT indisunique FROM pg_index WHERE indexrelid = %s::regclass",
                            (f'"{IX63B}"',)).fetchone()
        sequence = pg.execute("SELECT pg_get_serial_sequence(%s, %s)",
                              (f'public."{T63}"', K63)).fetchone()[0]
        rows = pg.execute(f'SELECT "{V63}" FROM "{T63}" ORDER BY 1').fetchall()
    assert columns == [K63, V63]
    assert relations[T63] == "r" and relations[IX63A] == "i" and relations[IX63B] == "i"
    assert relations[primary_key_name(T63)] == "i" and unique == (True,)
    # wacdc's sequence name for the plan (identifiers.py) is PostgreSQL's own.
    seq = identity_sequence_name(T63, K63)
    assert relations[seq] == "S" and sequence == f'public."{seq}"'
    assert rows == [("a",), ("b",), ("c",)]

    # The cutover finds and advances the identity sequence: the app's next insert is 4.
    with psycopg.connect(target_db.url, autocommit=True) as pg:
        assert advance_identities(pg, "public", [T63]) == 1
        new_id = pg.execute(f'INSERT INTO "{T63}" ("{V63}") VALUES (%s) RETURNING "{K63}"',
                            ("d",)).fetchone()
    assert new_id == (4,)


def test_a_column_added_while_streaming_that_does_not_fit_stops_the_stream(
        empty_source_db: SourceDb, target_db: TargetDb) -> None:
    empty_source_db.execute("CREATE TABLE grows (id INT PRIMARY KEY, v INT)",
                            "INSERT INTO grows VALUES (1, 1)")
    env = wacdc_env(empty_source_db, target_db, WACDC_PROFILE="plain", WACDC_TABLES="grows")
    assert run_cli("run", "--snapshot-only", env=env).code == 0
    empty_source_db.execute(f"ALTER TABLE grows ADD COLUMN `{C64}` INT",
                            "INSERT INTO grows VALUES (2, 2, 2)")
    result = run_cli("run", "--exit-when-caught-up", env=env)
    assert result.code == 1, result.output[-3000:]
    assert f"column grows.{C64} is 64 bytes" in result.output
    with target_db.connect() as pg:
        columns = [r[0] for r in pg.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'public.grows'::regclass "
            "AND attnum > 0 AND NOT attisdropped").fetchall()]
        rows = pg.execute("SELECT id FROM grows").fetchall()
    assert columns == ["id", "v"] and rows == [(1,)]  # nothing cut, nothing after it applied
