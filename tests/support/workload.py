"""A random application-like workload on the WhatsApp tables (and an untracked table)."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql

from tests.support.harness import SourceDb
from wacdc.source.sql import quote_ident

TABLES = ("WhatsAppCustomer", "WhatsAppMessage", "WhatsAppCampaign", "WhatsAppTourPackage")


# Every table of the prisma profile (the `every_table` shapes delete from any of them).
ALL_TABLES = (
    "WhatsAppMessage", "WhatsAppSession", "WhatsAppAutomation", "WhatsAppAnalyticsEvent",
    "WhatsAppTemplate", "WhatsAppFlowVersion", "WhatsAppCampaign", "WhatsAppCampaignRecipient",
    "WhatsAppCustomer", "WhatsAppCatalog", "WhatsAppMediaAsset", "WhatsAppProduct",
    "WhatsAppProductVariant", "WhatsAppTourPackage", "WhatsAppTourPackageVariant",
    "WhatsAppCart", "WhatsAppCartItem", "WhatsAppOrder", "WhatsAppOrderItem")


class Workload:
    """Inserts, updates, deletes, key changes, multi-table and rolled-back transactions,
    unique values swapped inside one transaction, and traffic on an untracked table.

    `every_shape` adds what a real source also writes: JSON null next to SQL NULL,
    MySQL's typed scalars inside JSON (DECIMAL, DATETIME, DATE via JSON_SET/JSON_OBJECT),
    generated inserts, updates and multi-row deletes on any of the 19 tables (datagen's
    rows: every column type of the profile), and on Oracle MySQL tagged GTID
    transactions (`SET gtid_next = 'AUTOMATIC:tag'`) and session-level compressed
    transactions (`binlog_transaction_compression = ON`)."""

    def __init__(self, db: SourceDb, seed: int = 7, every_shape: bool = False) -> None:
        self.db = db
        self.rng = random.Random(seed)
        self.ids: dict[str, list[str]] = {t: [] for t in TABLES}
        self.changes = 0
        self.every_shape = every_shape
        self.mysql = db.server.flavour == "mysql"
        self.tagged = self.compressed = 0  # transactions written that way (MySQL)
        self.generators: dict[str, Any] = {}  # table -> datagen TableGenerator (lazily)
        self.generated = 0  # rows numbered past any fill's, so ids and unique values are new
        self.per_table: dict[str, int] = {}  # rows inserted or updated by the any-table shape
        db.execute("CREATE TABLE IF NOT EXISTS app_sessions (id INT AUTO_INCREMENT PRIMARY KEY,"
                   " token VARCHAR(64), seen DATETIME(3))")

    def _customer(self, cur: Any) -> None:
        cid = str(uuid.UUID(int=self.rng.getrandbits(128)))
        cur.execute("INSERT INTO WhatsAppCustomer (id, firstName, phoneNumber, tags, isOptedIn,"
                    " metadata, updatedAt) VALUES (%s, %s, %s, %s, %s, %s, NOW(3))",
                    (cid, self.rng.choice(["Asha", "Ravi", "Zoë 😀"]), f"+91{cid[:10]}",
                     json.dumps(self.rng.sample(["vip", "goa", "lead"], self.rng.randint(0, 2))),
                     self.rng.randint(0, 1), self.rng.choice([None, "null", '{"src": "csv"}'])))
        self.ids["WhatsAppCustomer"].append(cid)

    def _message(self, cur: Any) -> None:
        mid = str(uuid.uuid4())
        cur.execute("INSERT INTO WhatsAppMessage (id, message, status, payload, `to`, updatedAt,"
                    " whatsappCustomerId) VALUES (%s, %s, %s, %s, %s, NOW(3), %s)",
                    (mid, "hello\n" + "🙏" * self.rng.randint(0, 3),
                     self.rng.choice(["sent", "delivered", "read"]),
                     json.dumps({"entry": [{"id": mid, "n": self.rng.random()}]}), "whatsapp:+1",
                     self.rng.choice(self.ids["WhatsAppCustomer"] or [None])))
        self.ids["WhatsAppMessage"].append(mid)

    def step(self, conn: pymysql.connections.Connection) -> None:
        if not self.every_shape:
            self._step(conn)
            return
        tag = self.mysql and self.rng.random() < 0.2
        compress = self.mysql and self.rng.random() < 0.3
        with conn.cursor() as cur:  # session settings, between transactions
            if self.mysql:
                cur.execute("SET gtid_next = %s", ("AUTOMATIC:app_batch" if tag
                                                   else "AUTOMATIC",))
                cur.execute("SET SESSION binlog_transaction_compression = %s",
                            ("ON" if compress else "OFF",))
        before = self.changes
        roll = self.rng.random()
        if roll < 0.2:
            self._shape(conn)
        elif roll < 0.45:
            self._any_table(conn)
        else:
            self._step(conn)
        if self.changes > before:
            self.tagged += tag
            self.compressed += compress

    def _shape(self, conn: pymysql.connections.Connection) -> None:
        rng = self.rng
        with conn.cursor() as cur:
            kind = rng.random()
            if kind < 0.4 and self.ids["WhatsAppCustomer"]:
                cur.execute("UPDATE WhatsAppCustomer SET metadata = JSON_SET(COALESCE("
                            "metadata, JSON_OBJECT()), '$.price', 1.0, '$.at', NOW(3), "
                            "'$.day', CURDATE(), '$.fee', CAST(%s AS DECIMAL(8,2))) "
                            "WHERE id = %s", (rng.randint(0, 10**6) / 100,
                                              rng.choice(self.ids["WhatsAppCustomer"])))
            elif kind < 0.6 and self.ids["WhatsAppMessage"]:
                cur.execute("UPDATE WhatsAppMessage SET payload = JSON_OBJECT('at', NOW(6), "
                            "'n', %s, 'none', JSON_EXTRACT('[null]', '$[0]')), metadata = %s "
                            "WHERE id = %s", (rng.random(), rng.choice([None, "null"]),
                                              rng.choice(self.ids["WhatsAppMessage"])))
            else:
                table = rng.choice(ALL_TABLES)  # a multi-row delete anywhere
                cur.execute(f"DELETE FROM {quote_ident(table)} ORDER BY id LIMIT %s",
                            (rng.randint(1, 3),))
        conn.commit()
        self.changes += 1

    def _generator(self, conn: pymysql.connections.Connection, table: str) -> Any:
        if not self.generators:
            from wacdc.devtools.datagen import TableGenerator, load_data_profile
            from wacdc.schema.profile import load_profile
            from wacdc.source.introspect import introspect_tables

            profile = load_profile("prisma")
            found = introspect_tables(conn, self.db.name, list(ALL_TABLES))
            with conn.cursor() as cur:  # foreign keys point at the rows a fill made
                counts = {}
                for name in found:
                    cur.execute(f"SELECT COUNT(*) FROM {quote_ident(name)}")
                    counts[name] = cur.fetchone()[0]
            stats = load_data_profile()
            self.generators = {name: TableGenerator(t, stats, profile, counts)
                               for name, t in found.items()}
        return self.generators[table]

    def _any_table(self, conn: pymysql.connections.Connection) -> None:
        """One generated row inserted into, or written over an existing row of, any of the
        19 tables (all its columns but the key and unique ones)."""
        table = self.rng.choice(ALL_TABLES)
        gen = self._generator(conn, table)
        self.generated += 1
        row = next(gen.rows(1, seed=self.rng.getrandbits(32), start=10**6 + self.generated))
        key = set(gen.table.replica_key or ())
        unique = {c for i in gen.table.indexes if i.unique for c in i.columns}
        with conn.cursor() as cur:
            if self.rng.random() < 0.5:
                cur.execute(gen.insert_sql(), row)
            else:
                cur.execute(f"SELECT {', '.join(quote_ident(k) for k in sorted(key))} FROM "
                            f"{quote_ident(table)} ORDER BY RAND() LIMIT 1")
                found = cur.fetchone()
                if found is None:  # end the read's transaction: the next step sets gtid_next
                    conn.rollback()
                    return
                sets = [(c.name, v) for c, v in zip(gen.columns, row, strict=True)
                        if c.name not in key and c.name not in unique]
                cur.execute(f"UPDATE {quote_ident(table)} SET "
                            + ", ".join(f"{quote_ident(n)} = %s" for n, _ in sets)
                            + " WHERE " + " AND ".join(f"{quote_ident(k)} = %s"
                                                       for k in sorted(key)),
                            [v for _, v in sets] + list(found))
        conn.commit()
        self.changes += 1
        self.per_table[table] = self.per_table.get(table, 0) + 1

    def _step(self, conn: pymysql.connections.Connection) -> None:
        rng = self.rng
        with conn.cursor() as cur:
            kind = rng.random()
            if kind < 0.35 or not self.ids["WhatsAppCustomer"]:
                self._customer(cur)
                self._message(cur)  # multi-table transaction
            elif kind < 0.55:
                cur.execute("UPDATE WhatsAppMessage SET status = %s, deliveredAt = NOW(3) "
                            "WHERE id = %s", (rng.choice(["read", "failed"]),
                                              rng.choice(self.ids["WhatsAppMessage"] or ["x"])))
            elif kind < 0.65 and len(self.ids["WhatsAppCustomer"]) > 1:
                a, b = rng.sample(self.ids["WhatsAppCustomer"], 2)  # swap unique phone numbers
                cur.execute("SELECT id, phoneNumber FROM WhatsAppCustomer WHERE id IN (%s, %s)",
                            (a, b))
                phones = dict(cur.fetchall())
                if len(phones) == 2:
                    cur.execute("UPDATE WhatsAppCustomer SET phoneNumber = %s WHERE id = %s",
                                (f"tmp-{a}", a))
                    cur.execute("UPDATE WhatsAppCustomer SET phoneNumber = %s WHERE id = %s",
                                (phones[a], b))
                    cur.execute("UPDATE WhatsAppCustomer SET phoneNumber = %s WHERE id = %s",
                                (phones[b], a))
            elif kind < 0.72 and self.ids["WhatsAppMessage"]:
                old = self.ids["WhatsAppMessage"].pop(rng.randrange(len(self.ids[
                    "WhatsAppMessage"])))
                new = str(uuid.uuid4())  # primary key change
                cur.execute("UPDATE WhatsAppMessage SET id = %s WHERE id = %s", (new, old))
                self.ids["WhatsAppMessage"].append(new)
            elif kind < 0.8 and self.ids["WhatsAppMessage"]:
                victim = self.ids["WhatsAppMessage"].pop(rng.randrange(len(self.ids[
                    "WhatsAppMessage"])))
                cur.execute("DELETE FROM WhatsAppMessage WHERE id = %s", (victim,))
            elif kind < 0.85:
                cur.execute("INSERT INTO WhatsAppCampaign (id, name, templateName, targetType, "
                            "updatedAt) VALUES (%s, %s, 't', 'all', NOW(3))",
                            (str(uuid.uuid4()), f"c-{rng.getrandbits(40)}"))
                conn.rollback()  # a rolled-back transaction never reaches the binlog
                self.changes -= 1
                return
            elif kind < 0.92:
                for _ in range(rng.randint(1, 20)):  # untracked table traffic
                    cur.execute("INSERT INTO app_sessions (token, seen) VALUES (%s, NOW(3))",
                                (uuid.uuid4().hex,))
            else:
                cur.execute("INSERT INTO WhatsAppTourPackage (id, productId, title, status, "
                            "syncStatus, basePrice, updatedAt) VALUES (%s, %s, 'Goa', %s, %s, "
                            "%s, NOW(3)) ON DUPLICATE KEY UPDATE title = 'Goa again'",
                            (f"tp-{rng.randint(0, 30)}", f"prod-{rng.randint(0, 10**9)}",
                             rng.choice(["draft", "active"]), rng.choice(["pending", "synced"]),
                             rng.randint(0, 10**6) / 100))
        conn.commit()
        self.changes += 1

    def run(self, steps: int) -> None:
        with self.db.connect() as conn:
            conn.autocommit(False)
            for _ in range(steps):
                self.step(conn)

    def run_until(self, stop: threading.Event, counter: list[int]) -> None:
        with self.db.connect() as conn:
            conn.autocommit(False)
            while not stop.is_set():
                self.step(conn)
                counter[0] += 1


@contextlib.contextmanager
def in_background(workload: Workload) -> Iterator[list[int]]:
    """Run the workload in a thread for the duration of the block; yields [steps done]."""
    stop, done = threading.Event(), [0]
    thread = threading.Thread(target=workload.run_until, args=(stop, done))
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join()
