"""Unit tests of the QUERY-event statement classifier (wacdc.source.statements): no server.

The statements are the shapes the binlog carries from Prisma migrate, mysqldump, gh-ost,
pt-online-schema-change, operators typing DDL, transaction framing and XA, and statement-
format DML; then garbage, half statements and arbitrary text.
"""

from __future__ import annotations

import timeit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wacdc.events import KINDS, ParsedStatement, TableRef
from wacdc.source.statements import parse_statement, tracked, xid_text


def ref(text: str) -> TableRef:
    database, _, name = text.rpartition(".")
    return TableRef(database, name)


def refs(*texts: str) -> tuple[TableRef, ...]:
    return tuple(ref(t) for t in texts)


def check(query: str, kind: str, *tables: str, default_db: str | None = "db",
          readable: bool = True) -> ParsedStatement:
    parsed = parse_statement(query, default_db)
    assert (parsed.kind, parsed.tables, parsed.readable) == (kind, refs(*tables), readable), \
        parsed
    return parsed


# --- Prisma migrate -----------------------------------------------------------------------

PRISMA_CREATE = """-- CreateTable
CREATE TABLE `WhatsAppMessage` (
    `id` VARCHAR(191) NOT NULL,
    `chatId` VARCHAR(191) NOT NULL,
    `body` TEXT NULL,
    `createdAt` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `status` ENUM('PENDING', 'SENT', 'READ') NOT NULL DEFAULT 'PENDING',
    `meta` JSON NULL,

    UNIQUE INDEX `WhatsAppMessage_chatId_key`(`chatId`),
    INDEX `WhatsAppMessage_createdAt_idx`(`createdAt`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
"""


@pytest.mark.parametrize(("query", "kind", "table"), [
    ("-- AlterTable\nALTER TABLE `WhatsAppMessage` ADD COLUMN `x` VARCHAR(191) NULL;",
     "ddl_alter", "WhatsAppMessage"),
    ("-- AlterTable\nALTER TABLE `WhatsAppMessage` DROP COLUMN `x`,\n"
     "    ADD COLUMN `y` INTEGER NOT NULL,\n    MODIFY `status` ENUM('A', 'B') NOT NULL;",
     "ddl_alter", "WhatsAppMessage"),
    ("-- DropForeignKey\nALTER TABLE `WhatsAppMessage` DROP FOREIGN KEY "
     "`WhatsAppMessage_chatId_fkey`;", "ddl_alter", "WhatsAppMessage"),
    ("-- AddForeignKey\nALTER TABLE `WhatsAppMessage` ADD CONSTRAINT "
     "`WhatsAppMessage_chatId_fkey` FOREIGN KEY (`chatId`) REFERENCES `Chat`(`id`) "
     "ON DELETE RESTRICT ON UPDATE CASCADE;", "ddl_alter", "WhatsAppMessage"),
    ("-- RenameIndex\nALTER TABLE `WhatsAppMessage` RENAME INDEX `old_idx` TO `new_idx`;",
     "ddl_alter", "WhatsAppMessage"),
    ("-- CreateTable\n" + PRISMA_CREATE, "ddl_create", "WhatsAppMessage"),
    ("-- DropTable\nDROP TABLE `WhatsAppMessage`;", "ddl_drop", "WhatsAppMessage"),
])
def test_prisma_migrate(query: str, kind: str, table: str) -> None:
    check(query, kind, f"db.{table}")


def test_prisma_indexes_name_the_index_and_keep_the_table() -> None:
    parsed = check("-- CreateIndex\nCREATE INDEX `WhatsAppMessage_chatId_idx` ON "
                   "`WhatsAppMessage`(`chatId`);", "ddl_create", "db.WhatsAppMessage")
    assert parsed.index == "WhatsAppMessage_chatId_idx"
    parsed = check("-- CreateIndex\nCREATE UNIQUE INDEX `u` ON `T`(`a`, `b`(10));",
                   "ddl_create", "db.T")
    assert parsed.index == "u"
    parsed = check("-- DropIndex\nDROP INDEX `WhatsAppMessage_chatId_idx` ON "
                   "`WhatsAppMessage`;", "ddl_drop", "db.WhatsAppMessage")
    assert parsed.index == "WhatsAppMessage_chatId_idx"


def test_a_whole_migration_file_is_not_one_statement() -> None:
    query = ("-- AlterTable\nALTER TABLE `A` ADD COLUMN `x` INT NULL;\n\n"
             "-- CreateIndex\nCREATE INDEX `A_x_idx` ON `A`(`x`);\n")
    parsed = parse_statement(query, "db")
    assert not parsed.readable
    assert tracked(parsed, "db", {"A", "B"}) == ["A"]


# --- mysqldump -----------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "kind", "tables"), [
    ("/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;", "other", ()),
    ("/*!50503 SET NAMES utf8mb4 */;", "other", ()),
    ("/*!40103 SET TIME_ZONE='+00:00' */;", "other", ()),
    ("/*!40101 SET @saved_cs_client     = @@character_set_client */;", "other", ()),
    ("DROP TABLE IF EXISTS `t`;", "ddl_drop", ("db.t",)),
    ("CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  `a` varchar(10) "
     "COLLATE utf8mb4_unicode_ci DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB "
     "AUTO_INCREMENT=3 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;",
     "ddl_create", ("db.t",)),
    ("LOCK TABLES `t` WRITE;", "other", ()),
    ("/*!40000 ALTER TABLE `t` DISABLE KEYS */;", "ddl_alter", ("db.t",)),
    ("INSERT INTO `t` VALUES (1,'a'),(2,'b\\'c');", "dml", ("db.t",)),
    ("/*!40000 ALTER TABLE `t` ENABLE KEYS */;", "ddl_alter", ("db.t",)),
    ("UNLOCK TABLES;", "other", ()),
    # a view: the dump writes its CREATE in three executable comments
    ("/*!50001 CREATE ALGORITHM=UNDEFINED */\n/*!50013 DEFINER=`root`@`localhost` SQL "
     "SECURITY DEFINER */\n/*!50001 VIEW `v` AS select `t`.`id` AS `id` from `t` */;",
     "other", ()),
    ("/*!50001 DROP VIEW IF EXISTS `v`*/;", "other", ()),
    ("/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER `tr` "
     "BEFORE INSERT ON `t` FOR EACH ROW SET NEW.a = UPPER(NEW.a) */;;", "other", ()),
    ("/*!40000 DROP DATABASE IF EXISTS `shop`*/;", "ddl_drop_database", ()),
    ("/*!40101 SET character_set_client = @saved_cs_client */;", "other", ()),
])
def test_mysqldump(query: str, kind: str, tables: tuple[str, ...]) -> None:
    check(query, kind, *tables)


def test_executable_comment_forms() -> None:
    check("/*M!100100 ALTER TABLE t ADD d INT */", "ddl_alter", "db.t")  # MariaDB only
    check("/*!ALTER TABLE t ADD d INT*/", "ddl_alter", "db.t")  # no version: always
    check("/*!80023 ALTER TABLE t ADD d INT */", "ddl_alter", "db.t")
    check("/*!40000 ALTER TABLE*/ t DISABLE KEYS", "ddl_alter", "db.t")
    check("ALTER TABLE t ADD c INT /*!80023 INVISIBLE */", "ddl_alter", "db.t")
    check("/* plain comment: ALTER TABLE x */ SELECT 1", "other")


# --- gh-ost and pt-online-schema-change ---------------------------------------------------

def test_gh_ost() -> None:
    check("create /* gh-ost */ table `db`.`_t_ghc` (\n id bigint auto_increment,\n"
          " last_update timestamp not null DEFAULT CURRENT_TIMESTAMP ON UPDATE "
          "CURRENT_TIMESTAMP,\n hint varchar(64) charset ascii not null,\n value "
          "varchar(4096) charset ascii not null,\n primary key(id),\n unique key hint_uidx"
          "(hint)\n) auto_increment=256 comment='gh-ost changelog'", "ddl_create",
          "db._t_ghc", default_db=None)
    check("CREATE TABLE `db`.`_t_gho` LIKE `db`.`t`", "ddl_create", "db._t_gho",
          default_db=None)
    check("create /* gh-ost */ table `db`.`_t_gho` like `db`.`t`", "ddl_create",
          "db._t_gho", default_db="other")
    check("ALTER TABLE `db`.`_t_gho` ADD COLUMN `c` INT NOT NULL DEFAULT 0", "ddl_alter",
          "db._t_gho")
    check("alter /* gh-ost */ table `db`.`_t_gho` add column c int", "ddl_alter",
          "db._t_gho")
    parsed = check("RENAME TABLE `db`.`t` TO `db`.`_t_del`, `db`.`_t_gho` TO `db`.`t`",
                   "ddl_rename", "db.t", "db._t_del", "db._t_gho", default_db=None)
    assert parsed.renames == ((ref("db.t"), ref("db._t_del")), (ref("db._t_gho"), ref("db.t")))
    assert tracked(parsed, "db", {"t"}) == ["t"]
    check("rename /* gh-ost */ table `db`.`t` to `db`.`_t_del`, `db`.`_t_gho` to `db`.`t`",
          "ddl_rename", "db.t", "db._t_del", "db._t_gho")
    check("DROP TABLE IF EXISTS `_t_ghc`", "ddl_drop", "db._t_ghc")
    check("drop /* gh-ost */ table if exists `db`.`_t_del`", "ddl_drop", "db._t_del")


def test_pt_online_schema_change() -> None:
    check("CREATE TABLE `db`.`_t_new` (\n  `id` int NOT NULL,\n  PRIMARY KEY (`id`)\n) "
          "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", "ddl_create", "db._t_new")
    check("ALTER TABLE `db`.`_t_new` ADD COLUMN c INT", "ddl_alter", "db._t_new")
    for event in ("ins", "upd", "del"):
        check(f"CREATE TRIGGER `pt_osc_db_t_{event}` AFTER INSERT ON `db`.`t` FOR EACH ROW "
              "REPLACE INTO `db`.`_t_new` (`id`, `a`) VALUES (NEW.`id`, NEW.`a`)", "other")
    check("CREATE DEFINER=`root`@`%` TRIGGER `pt_osc_db_t_del` AFTER DELETE ON `db`.`t` FOR "
          "EACH ROW BEGIN DECLARE CONTINUE HANDLER FOR 1146 begin end; DELETE IGNORE FROM "
          "`db`.`_t_new` WHERE `db`.`_t_new`.`id` <=> OLD.`id`; END", "other")
    check("INSERT LOW_PRIORITY IGNORE INTO `db`.`_t_new` (`id`, `a`) SELECT `id`, `a` FROM "
          "`db`.`t` FORCE INDEX(`PRIMARY`) WHERE ((`id` >= '1')) AND ((`id` <= '1000')) "
          "LOCK IN SHARE MODE /*pt-online-schema-change 1234 copy nibble*/",
          "dml", "db._t_new")
    parsed = check("RENAME TABLE `db`.`t` TO `db`.`_t_old`, `db`.`_t_new` TO `db`.`t`",
                   "ddl_rename", "db.t", "db._t_old", "db._t_new")
    assert parsed.renames[1] == (ref("db._t_new"), ref("db.t"))
    check("DROP TABLE IF EXISTS `db`.`_t_old`", "ddl_drop", "db._t_old")
    check("DROP TRIGGER IF EXISTS `db`.`pt_osc_db_t_del`", "other")


# --- operators --------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "default_db", "kind", "tables"), [
    ("/* app */ ALTER TABLE t ADD c INT", "db", "ddl_alter", ("db.t",)),
    ("# deploy 42\nALTER TABLE t ADD c INT", "db", "ddl_alter", ("db.t",)),
    ("ALTER TABLE t -- why\n ADD c INT", "db", "ddl_alter", ("db.t",)),
    ("ALTER TABLE t ADD COLUMN c INT, ADD INDEX (c), ALGORITHM=INPLACE, LOCK=NONE", "db",
     "ddl_alter", ("db.t",)),
    ("ALTER TABLE db.t ADD c INT", None, "ddl_alter", ("db.t",)),
    ("ALTER TABLE other.t ADD c INT", "db", "ddl_alter", ("other.t",)),
    ("ALTER TABLE t ADD c INT", None, "ddl_alter", ("t",)),
    ("ALTER TABLE café ADD x INT", "db", "ddl_alter", ("db.café",)),
    ("ALTER TABLE `naïve table` ADD x INT", "db", "ddl_alter", ("db.naïve table",)),
    ("ALTER TABLE 日本語 ADD x INT", "db", "ddl_alter", ("db.日本語",)),
    ("ALTER TABLE `a``b` ADD c INT", "db", "ddl_alter", ("db.a`b",)),
    ("ALTER TABLE t$1 ADD c INT", "db", "ddl_alter", ("db.t$1",)),
    ("ALTER TABLE 1t ADD c INT", "db", "ddl_alter", ("db.1t",)),
    ("alter table T modify c bigint", "db", "ddl_alter", ("db.T",)),
    ("ALTER ONLINE IGNORE TABLE t ADD UNIQUE (c)", "db", "ddl_alter", ("db.t",)),
    ("ALTER TABLE IF EXISTS t ADD COLUMN IF NOT EXISTS c INT", "db", "ddl_alter", ("db.t",)),
    ("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4", "db", "ddl_alter", ("db.t",)),
    ("ALTER TABLE t ADD CHECK (a > 0)", "db", "ddl_alter", ("db.t",)),
    ("ALTER TABLE t PARTITION BY HASH(id) PARTITIONS 4", "db", "ddl_alter", ("db.t",)),
    ("ALTER TABLE t ENGINE=InnoDB", "db", "ddl_alter", ("db.t",)),
    ("ALTER TABLE t ALTER COLUMN c DROP DEFAULT", "db", "ddl_alter", ("db.t",)),
    ("ALTER TABLE t RENAME COLUMN a TO b", "db", "ddl_alter", ("db.t",)),
    ("TRUNCATE TABLE db.T2", None, "truncate", ("db.T2",)),
    ("TRUNCATE TABLE otherdb.T3", "db", "truncate", ("otherdb.T3",)),
    ("TRUNCATE t", "db", "truncate", ("db.t",)),
    ("truncate `T`;", "db", "truncate", ("db.T",)),
    ("DROP TABLE t1, t2", "db", "ddl_drop", ("db.t1", "db.t2")),
    ("DROP TABLE IF EXISTS t1, other.t2 RESTRICT", "db", "ddl_drop", ("db.t1", "other.t2")),
    ("DROP TABLES t1", "db", "ddl_drop", ("db.t1",)),
    ("DROP TABLE IF EXISTS `t` /* generated by server */", "db", "ddl_drop", ("db.t",)),
    ("CREATE TABLE IF NOT EXISTS t (a INT)", "db", "ddl_create", ("db.t",)),
    ("CREATE OR REPLACE TABLE t (a INT)", "db", "ddl_create", ("db.t",)),
    ("CREATE TABLE t2 AS SELECT * FROM t1", "db", "ddl_create", ("db.t2",)),
    ("CREATE TABLE t2 SELECT * FROM t1", "db", "ddl_create", ("db.t2",)),
    ("CREATE TABLE t2 LIKE other.t1", "db", "ddl_create", ("db.t2",)),
    ("CREATE TABLE `t` (`a` int DEFAULT NULL) START TRANSACTION", "db", "ddl_create",
     ("db.t",)),
    ("CREATE UNIQUE INDEX i ON t (c) ALGORITHM=INPLACE LOCK=NONE", "db", "ddl_create",
     ("db.t",)),
    ("CREATE FULLTEXT INDEX i ON db2.t (c)", "db", "ddl_create", ("db2.t",)),
    ("DROP INDEX `i` ON `t` ALGORITHM=INPLACE LOCK=NONE", "db", "ddl_drop", ("db.t",)),
    ("CREATE TEMPORARY TABLE t (a INT)", "db", "other", ()),
    ("DROP TEMPORARY TABLE IF EXISTS t", "db", "other", ()),
    ("CREATE DATABASE x", "db", "other", ()),
    ("ALTER DATABASE db CHARACTER SET utf8mb4", "db", "other", ()),
    ("CREATE VIEW v AS SELECT * FROM t", "db", "other", ()),
    ("CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO DELETE FROM t", "db", "other", ()),
    ("CREATE DEFINER=root@localhost PROCEDURE p() BEGIN UPDATE t SET a = 1; END", "db",
     "other", ()),
    ("CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1", "db", "other", ()),
    ("DROP PROCEDURE IF EXISTS p", "db", "other", ()),
    ("CREATE USER 'u'@'%' IDENTIFIED BY 'p'", "db", "other", ()),
    ("GRANT SELECT ON db.* TO 'u'@'%'", "db", "other", ()),
    ("RENAME USER a TO b", "db", "other", ()),
    ("FLUSH PRIVILEGES", "db", "other", ()),
    ("ANALYZE TABLE t", "db", "other", ()),
    ("OPTIMIZE TABLE t", "db", "other", ()),
    ("SET NAMES utf8mb4", "db", "other", ()),
    ("SET @a = 1", "db", "other", ()),
    ("SELECT * FROM t", "db", "other", ()),
    ("(SELECT 1) UNION (SELECT 2)", "db", "other", ()),
])
def test_operators(query: str, default_db: str | None, kind: str,
                   tables: tuple[str, ...]) -> None:
    check(query, kind, *tables, default_db=default_db)


def test_names_are_attributed_to_their_own_database() -> None:
    # TRUNCATE of a tracked table from a session with no default database
    parsed = parse_statement("TRUNCATE TABLE db.T2", None)
    assert tracked(parsed, "db", {"T2", "T3"}) == ["T2"]
    # USE db; TRUNCATE TABLE otherdb.T3 does not touch the tracked db.T3
    parsed = parse_statement("TRUNCATE TABLE otherdb.T3", "db")
    assert tracked(parsed, "db", {"T2", "T3"}) == []
    # case is kept: t2 is not T2
    assert tracked(parse_statement("TRUNCATE t2", "db"), "db", {"T2"}) == []
    # no default database: an unqualified name is nobody's tracked table
    assert tracked(parse_statement("ALTER TABLE T2 ADD c INT", None), "db", {"T2"}) == []


def test_renames() -> None:
    parsed = check("ALTER TABLE t RENAME TO u", "ddl_rename", "db.t", "db.u")
    assert parsed.renames == ((ref("db.t"), ref("db.u")),)
    parsed = check("ALTER TABLE t RENAME AS other.u", "ddl_rename", "db.t", "other.u")
    assert parsed.renames == ((ref("db.t"), ref("other.u")),)
    parsed = check("ALTER TABLE t ADD c INT, RENAME u", "ddl_rename", "db.t", "db.u")
    check("RENAME TABLE a TO b, c TO d", "ddl_rename", "db.a", "db.b", "db.c", "db.d")
    parsed = check("RENAME TABLES IF EXISTS a NOWAIT TO b", "ddl_rename", "db.a", "db.b")
    assert parsed.renames == ((ref("db.a"), ref("db.b")),)


def test_partition_operations_that_change_rows() -> None:
    check("ALTER TABLE t TRUNCATE PARTITION p0, p1", "ddl_rows", "db.t")
    check("ALTER TABLE t DROP PARTITION p0", "ddl_rows", "db.t")
    check("ALTER TABLE t EXCHANGE PARTITION p WITH TABLE other.t2 WITHOUT VALIDATION",
          "ddl_rows", "db.t", "other.t2")
    check("ALTER TABLE t CONVERT PARTITION p TO TABLE t2", "ddl_rows", "db.t", "db.t2")
    check("ALTER TABLE t DISCARD TABLESPACE", "ddl_rows", "db.t")
    check("ALTER TABLE t REORGANIZE PARTITION p0 INTO (PARTITION p1 VALUES LESS THAN (5))",
          "ddl_alter", "db.t")


def test_drop_database() -> None:
    parsed = check("DROP DATABASE IF EXISTS `db`", "ddl_drop_database", default_db=None)
    assert parsed.database == "db"
    assert tracked(parsed, "db", {"T1", "A"}) == ["A", "T1"]
    assert tracked(parsed, "other", {"T1"}) == []
    assert parse_statement("DROP SCHEMA db", "x").database == "db"


# --- framing --------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "kind", "savepoint"), [
    ("BEGIN", "begin", None),
    ("begin", "begin", None),
    ("  BEGIN ; ", "begin", None),
    ("/* app */ BEGIN", "begin", None),
    ("BEGIN WORK", "begin", None),
    ("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", "begin", None),
    ("COMMIT", "commit", None),
    ("COMMIT WORK AND NO CHAIN NO RELEASE", "commit", None),
    ("ROLLBACK", "rollback", None),
    ("ROLLBACK WORK", "rollback", None),
    ("SAVEPOINT s1", "savepoint", "s1"),
    ("SAVEPOINT `S1`", "savepoint", "s1"),
    ("ROLLBACK TO SAVEPOINT s1", "rollback_to_savepoint", "s1"),
    ("ROLLBACK TO s1", "rollback_to_savepoint", "s1"),
    ("ROLLBACK WORK TO SAVEPOINT `s1`", "rollback_to_savepoint", "s1"),
    ("RELEASE SAVEPOINT s1", "release_savepoint", "s1"),
])
def test_framing(query: str, kind: str, savepoint: str | None) -> None:
    parsed = check(query, kind)
    assert parsed.savepoint == savepoint


def test_framing_costs_nothing() -> None:
    for query in ("BEGIN", "COMMIT"):
        parse_statement(query, "db")
        seconds = min(timeit.repeat(lambda q=query: parse_statement(q, "db"), number=2000,
                                    repeat=5)) / 2000
        assert seconds < 5e-6, f"{query}: {seconds * 1e6:.2f} µs"


X = "X'78',X'',1"


@pytest.mark.parametrize(("query", "kind", "xid", "one_phase"), [
    ("XA START 'x'", "xa_start", X, False),
    ("XA BEGIN 'x'", "xa_start", X, False),
    ("xa start 'x' join", "xa_start", X, False),
    ("XA START X'78',X'',1", "xa_start", X, False),  # what MySQL writes in the binlog
    ("XA START x'78', x'', 1", "xa_start", X, False),
    ("XA START 0x78", "xa_start", X, False),
    ("XA START 'x', ''", "xa_start", X, False),
    ("XA START \"x\"", "xa_start", X, False),
    ("XA START 'g','b',1", "xa_start", "X'67',X'62',1", False),
    ("XA START X'67',X'62',1", "xa_start", "X'67',X'62',1", False),
    ("XA START 'g','b',2", "xa_start", "X'67',X'62',2", False),
    ("XA START X'6162'", "xa_start", "X'6162',X'',1", False),
    ("XA START 'ab'", "xa_start", "X'6162',X'',1", False),
    ("XA START 'it''s', 'a\\'b'", "xa_start", "X'69742773',X'612762',1", False),
    ("XA START b'01111000'", "xa_start", X, False),
    ("XA END 'x'", "xa_end", X, False),
    ("XA END X'78',X'',1 SUSPEND FOR MIGRATE", "xa_end", X, False),
    ("XA PREPARE 'x'", "xa_prepare", X, False),
    ("XA COMMIT 'x'", "xa_commit", X, False),
    ("XA COMMIT X'78',X'',1", "xa_commit", X, False),
    ("XA COMMIT 'x' ONE PHASE", "xa_commit", X, True),
    ("XA ROLLBACK 'x'", "xa_rollback", X, False),
    ("/* tm */ XA ROLLBACK X'78',X'',1;", "xa_rollback", X, False),
])
def test_xa(query: str, kind: str, xid: str, one_phase: bool) -> None:
    parsed = check(query, kind)
    assert (parsed.xid, parsed.one_phase) == (xid, one_phase)


def test_xa_from_an_xa_prepare_event_compares_equal() -> None:
    assert parse_statement("XA START 'g','b',7", "db").xid == xid_text(b"g", b"b", 7)
    assert check("XA RECOVER", "other").xid is None


@pytest.mark.parametrize(("query", "kind"), [
    ("XA COMMIT", "xa_commit"),
    ("XA COMMIT 'x' TWO PHASE", "xa_commit"),
    ("XA START X'7'", "xa_start"),
    ("XA START 'x', 'y', z", "xa_start"),
    ("SAVEPOINT", "savepoint"),
    ("ROLLBACK TO", "rollback_to_savepoint"),
    ("COMMIT NOW", "commit"),
])
def test_framing_whose_rest_does_not_read(query: str, kind: str) -> None:
    parsed = parse_statement(query, "db")
    assert (parsed.kind, parsed.readable, parsed.xid, parsed.savepoint) == \
        (kind, False, None, None)


# --- statement-format DML ---------------------------------------------------------------------

@pytest.mark.parametrize(("query", "tables"), [
    ("INSERT INTO t VALUES (1)", ("db.t",)),
    ("INSERT t (a) VALUES (1)", ("db.t",)),
    ("INSERT INTO t SET a = 1", ("db.t",)),
    ("INSERT IGNORE INTO other.t VALUES (1)", ("other.t",)),
    ("INSERT DELAYED INTO t VALUES (1)", ("db.t",)),
    ("INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a)", ("db.t",)),
    ("INSERT INTO a SELECT * FROM b", ("db.a",)),
    ("INSERT INTO a (x) SELECT y FROM b WHERE y IN (SELECT z FROM c)", ("db.a",)),
    ("REPLACE INTO t VALUES (1)", ("db.t",)),
    ("REPLACE LOW_PRIORITY t SET a = 1", ("db.t",)),
    ("UPDATE db.t SET a = 1 WHERE b = 2", ("db.t",)),
    ("UPDATE t SET a = (SELECT MAX(b) FROM u)", ("db.t",)),
    ("UPDATE LOW_PRIORITY IGNORE t SET a = 1 ORDER BY b LIMIT 1", ("db.t",)),
    ("UPDATE t1 JOIN t2 ON t1.a = t2.a SET t1.b = t2.b", ("db.t1",)),
    ("UPDATE t1 AS x JOIN other.t2 AS y ON x.a = y.a SET y.b = 1", ("other.t2",)),
    ("UPDATE t1, t2 SET t1.a = t2.a, t2.c = 1", ("db.t1", "db.t2")),
    ("UPDATE t1, t2 SET c = 1", ("db.t1", "db.t2")),  # which one has c: not known here
    ("WITH x AS (SELECT 1 AS a) UPDATE t SET a = 1", ("db.t",)),
    ("DELETE FROM t WHERE a IN (SELECT b FROM u)", ("db.t",)),
    ("DELETE LOW_PRIORITY QUICK IGNORE FROM t", ("db.t",)),
    ("DELETE t1 FROM t1 JOIN t2 ON t1.a = t2.a", ("db.t1",)),
    ("DELETE a1 FROM t1 AS a1 JOIN t2 AS a2 ON a1.x = a2.x", ("db.t1",)),
    ("DELETE t1.*, t2.* FROM t1 JOIN t2 ON t1.a = t2.a", ("db.t1", "db.t2")),
    ("DELETE FROM a1, a2 USING t1 AS a1 JOIN other.t2 AS a2", ("db.t1", "other.t2")),
    ("LOAD DATA LOCAL INFILE '/tmp/x.csv' REPLACE INTO TABLE t FIELDS TERMINATED BY ','",
     ("db.t",)),
    ("LOAD XML INFILE 'x.xml' INTO TABLE other.t", ("other.t",)),
])
def test_dml(query: str, tables: tuple[str, ...]) -> None:
    check(query, "dml", *tables)


def test_a_long_insert_is_read_from_its_head() -> None:
    query = "INSERT INTO t VALUES " + ",".join(f"({i},'v{i}')" for i in range(30000))
    check(query, "dml", "db.t")


# --- garbage and half statements ---------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "garbage here", "SELEC 1", ")))", "'unterminated", "/* unterminated", "`", "\x00",
    "ALTER TABLE", "ALTER TABLE t ADD", "ALTER TABLE t ADD c INT,", "ALTER TABLE t ADD (c INT",
    "RENAME TABLE a TO", "RENAME TABLE a", "DROP TABLE t1,", "DROP TABLE", "TRUNCATE",
    "TRUNCATE TABLE t garbage", "UPDATE t SET", "UPDATE t", "DELETE FROM", "DELETE t",
    "DELETE FROM t1, t2", "INSERT INTO t", "INSERT INTO t VALUES", "INSERT INTO t (a",
    "CREATE TABLE t", "CREATE TABLE t (a INT", "CREATE INDEX i ON", "LOAD DATA INFILE",
    "ALTER TABLE t ADD c INT; DROP TABLE u", "/*!40000 ALTER TABLE t ADD c INT",
    "ALTER TABLE \"t\" ADD c INT", "BEGIN NOT ATOMIC UPDATE t SET a = 1; END",
    "IMPORT TABLE FROM '/x/t.sdi'",
])
def test_unreadable(query: str) -> None:
    parsed = parse_statement(query, "db")
    assert not parsed.readable, parsed
    assert parsed.kind in KINDS


def test_unreadable_statements_name_every_candidate() -> None:
    parsed = parse_statement("ALTER TABLE t ADD c INT; DROP TABLE `u`", "db")
    assert tracked(parsed, "db", {"t", "u", "v"}) == ["t", "u"]
    parsed = parse_statement("ALTER TABLE \"T1\" ADD c INT", "db")  # ANSI_QUOTES
    assert tracked(parsed, "db", {"T1"}) == ["T1"]
    parsed = parse_statement("UPDATE other.t1, `db`.`t2` SET", "x")
    assert tracked(parsed, "db", {"t1", "t2"}) == ["t2"]
    assert tracked(parsed, "other", {"t1", "t2"}) == ["t1"]
    parsed = parse_statement("ALTER TABLE 'oops", "db")  # an open quote hides nothing
    assert tracked(parsed, "db", {"oops"}) == ["oops"]


def test_empty_and_comments_only() -> None:
    check("", "other")
    check("  ;", "other")
    check("/* nothing */ -- at all\n", "other")


def test_never_raises_on_odd_input() -> None:
    for query in ("XA START 0x", "XA START X''", "DROP INDEX", "ALTER TABLE t RENAME",
                  "\ud800", "ALTER TABLE `t", "/*!", "*/", "--", "#", "@@", "@'",
                  "CREATE DEFINER=", "DELETE .* FROM t", "((((" * 500 + "SELECT 1"):
        assert parse_statement(query, "db").kind in KINDS
    assert parse_statement(b"BEGIN", "db").kind in KINDS  # type: ignore[arg-type]


SQL_WORDS = st.sampled_from([
    "ALTER", "TABLE", "CREATE", "DROP", "RENAME", "TO", "TRUNCATE", "INSERT", "INTO",
    "UPDATE", "DELETE", "FROM", "SET", "XA", "START", "COMMIT", "ROLLBACK", "SAVEPOINT",
    "BEGIN", "IF", "EXISTS", "NOT", "INDEX", "ON", "`t`", "`a``b`", "db", ".", ",", "(",
    ")", ";", "'x'", "X'78'", "1", "/*", "*/", "/*!40000", "--", "\n", "#", "café", "=",
    "@x", "PARTITION", "LIKE", "SELECT", "*", "WITH", "VALUES", "DATABASE",
])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=10)))
def test_any_text_never_raises(query: str, default_db: str | None) -> None:
    parsed = parse_statement(query, default_db)
    assert parsed.kind in KINDS
    assert all(isinstance(t, TableRef) for t in parsed.tables)


@settings(max_examples=300, deadline=None)
@given(st.lists(SQL_WORDS, max_size=25), st.one_of(st.none(), st.just("db")))
def test_any_sql_like_text_never_raises(words: list[str], default_db: str | None) -> None:
    parsed = parse_statement(" ".join(words), default_db)
    assert parsed.kind in KINDS
    assert all(isinstance(t, TableRef) for t in parsed.tables)
    if parsed.readable and parsed.kind not in ("ddl_drop_database", "other"):
        assert parsed.kind.startswith(("xa_", "begin", "commit", "rollback", "savepoint",
                                       "release")) or parsed.tables
