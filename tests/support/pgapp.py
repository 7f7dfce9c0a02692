"""The app after the cutover: it writes PostgreSQL (inserts, updates of JSON, tags and
enum columns, deletes that cascade, multi-table transactions) and keeps what
PostgreSQL acknowledged."""

from __future__ import annotations

import threading

import psycopg

from tests.support.harness import TargetDb

TOUR_STATUSES = ("draft", "active", "inactive", "archived")


class PgApp(threading.Thread):
    def __init__(self, db: TargetDb, rate: float = 60, prefix: str = "pg") -> None:
        super().__init__(daemon=True)
        self.db, self.rate, self.prefix = db, rate, prefix
        self.stop = threading.Event()
        self.customers: set[str] = set()  # acknowledged and not deleted
        self.deleted: set[str] = set()
        self.commits = 0
        self.error: psycopg.Error | None = None

    def run(self) -> None:
        with psycopg.connect(self.db.url, autocommit=True) as conn:
            n = 0
            while not self.stop.is_set():
                try:
                    with conn.transaction():
                        self._step(conn, n)
                except psycopg.Error as exc:
                    self.error = exc
                    return
                self._acknowledged(n)
                self.commits += 1
                n += 1
                self.stop.wait(1 / self.rate)

    def _key(self, n: int) -> str:
        return f"{self.prefix}-{n:06d}"

    def _step(self, conn: psycopg.Connection, n: int) -> None:
        key = self._key(n)
        conn.execute(
            'INSERT INTO "WhatsAppCustomer" (id, "firstName", "phoneNumber", tags, metadata, '
            '"updatedAt") VALUES (%s, %s, %s, %s, %s::jsonb, now())',
            (key, f"Zoë {n}", f"+9{len(self.prefix)}{n:08d}", ["vip", f"n{n}"],
             '{"n": ' + str(n) + ', "price": 1.50, "deep": {"a": [1, null, "x"]}, '
             '"none": null}'))
        if n % 3 == 2:
            conn.execute(
                'UPDATE "WhatsAppCustomer" SET tags = tags || ARRAY[%s], metadata = '
                "jsonb_set(metadata, '{price}', '1234.125'), \"lastName\" = 'Ünal', "
                '"isOptedIn" = NOT "isOptedIn", "updatedAt" = now() WHERE id = %s',
                (f"u{n}", self._key(n - 1)))
        if n % 4 == 0:
            conn.execute(
                'UPDATE "WhatsAppTourPackage" SET status = %s::"WhatsAppTourPackageStatus", '
                '"basePrice" = %s, "updatedAt" = now() WHERE id = (SELECT id FROM '
                '"WhatsAppTourPackage" ORDER BY id OFFSET %s LIMIT 1)',
                (TOUR_STATUSES[n // 4 % 4], f"{n}.25", n % 3))
        if n % 5 == 0:  # a campaign and its recipients, one transaction
            conn.execute(
                'INSERT INTO "WhatsAppCampaign" (id, name, "templateName", "targetType", '
                '"templateVariables", "updatedAt") VALUES (%s, %s, %s, %s, %s::jsonb, now())',
                (f"{key}-c", f"Campaign {n}", "welcome", "all", '["a", {"b": 2.50}]'))
            for r in range(3):
                conn.execute(
                    'INSERT INTO "WhatsAppCampaignRecipient" (id, "campaignId", "phoneNumber", '
                    '"whatsappCustomerId", "updatedAt") VALUES (%s, %s, %s, %s, now())',
                    (f"{key}-r{r}", f"{key}-c", f"+1{n:07d}{r}", key))
        if n % 10 == 5:  # deleting a campaign cascades to its recipients
            conn.execute('DELETE FROM "WhatsAppCampaign" WHERE id = %s', (f"{self._key(n - 5)}-c",))
        if n % 11 == 10:
            conn.execute('DELETE FROM "WhatsAppCustomer" WHERE id = %s', (self._key(n - 7),))

    def _acknowledged(self, n: int) -> None:
        self.customers.add(self._key(n))
        if n % 11 == 10:
            self.customers.discard(self._key(n - 7))
            self.deleted.add(self._key(n - 7))
