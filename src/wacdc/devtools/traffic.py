"""The demo's stand-in for the app: writes like it (campaign bursts walking recipients
through sent -> delivered -> read, inbound webhook messages, analytics events, customer
edits) until stopped or fenced."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from typing import Any

import pymysql

from wacdc.config import parse_url
from wacdc.source.connection import connect
from wacdc.source.sql import quote_ident

NO_SUCH_TABLE = 1146


class AppTraffic(threading.Thread):
    """Writes like the app, at `rate` transactions per second, until stopped or fenced."""

    def __init__(self, source_url: str, rate: float, seed: int = 7) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self.url = parse_url(source_url, "mysql")
        self.rate = rate
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.writes = 0
        self.fenced_at: float | None = None  # the first write the fence refused
        self.error: str | None = None
        self.recipients: list[tuple[str, str]] = []  # (id, status) walking to "read"

    def run(self) -> None:
        try:
            with connect(self.url, autocommit=False) as conn, conn.cursor() as cur:
                customers = self._ids(cur, "WhatsAppCustomer")
                sessions = self._ids(cur, "WhatsAppSession")
                started = time.monotonic()
                while not self.stop.is_set():
                    self._one(cur, customers, sessions)
                    conn.commit()
                    self.writes += 1
                    delay = started + self.writes / self.rate - time.monotonic()
                    if delay > 0:
                        self.stop.wait(delay)
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] == NO_SUCH_TABLE:
                self.fenced_at = time.monotonic()  # the app must switch to PostgreSQL now
            else:
                self.error = f"{exc.args}"

    @staticmethod
    def _ids(cur: Any, table: str) -> list[str]:
        cur.execute(f"SELECT id FROM {quote_ident(table)} ORDER BY RAND() LIMIT 500")
        return [row[0] for row in cur.fetchall()] or [str(uuid.uuid4())]

    def _one(self, cur: Any, customers: list[str], sessions: list[str]) -> None:
        rng = self.rng
        pick = rng.random()
        if self.recipients and pick < 0.35:  # delivery receipts walk the campaign along
            rid, status = self.recipients.pop(0)
            nxt = {"pending": "sent", "sent": "delivered", "delivered": "read"}[status]
            column = {"sent": "sentAt", "delivered": "deliveredAt", "read": "readAt"}[nxt]
            cur.execute(f"UPDATE WhatsAppCampaignRecipient SET status = %s, "
                        f"{quote_ident(column)} = NOW(3), updatedAt = NOW(3) WHERE id = %s",
                        (nxt, rid))
            if nxt != "read":
                self.recipients.append((rid, nxt))
        elif pick < 0.40:  # a campaign burst: a campaign and its recipients
            cid = f"demo-camp-{uuid.uuid4().hex[:10]}"
            cur.execute("INSERT INTO WhatsAppCampaign (id, name, templateName, targetType, "
                        "status, totalRecipients, updatedAt) VALUES (%s, %s, 'goa_offer', "
                        "'segment', 'running', 20, NOW(3))",
                        (cid, f"Goa monsoon offer {cid[-4:]}"))
            rows = [(f"{cid}-r{i}", cid, f"+9198{rng.randint(10**7, 10**8 - 1)}",
                     rng.choice(customers), json.dumps({"name": "Asha", "price": 18999}))
                    for i in range(20)]
            cur.executemany("INSERT INTO WhatsAppCampaignRecipient (id, campaignId, "
                            "phoneNumber, whatsappCustomerId, variables, status, updatedAt) "
                            "VALUES (%s, %s, %s, %s, %s, 'pending', NOW(3))", rows)
            self.recipients.extend((r[0], "pending") for r in rows)
        elif pick < 0.70:  # an inbound webhook message
            mid = f"demo-msg-{uuid.uuid4().hex[:12]}"
            body = rng.choice(["Is the Kerala package available in May? 🙏",
                               "Price for 2 adults, Goa, 4 nights?", "ok thanks",
                               "मुझे मनाली पैकेज चाहिए", "Call me after 6pm please"])
            payload = {"entry": [{"changes": [{"value": {"messages": [
                {"type": "text", "text": {"body": body}}]}}]}], "object": "whatsapp"}
            session = rng.choice(sessions)
            cur.execute("INSERT INTO WhatsAppMessage (id, message, status, direction, "
                        f"{quote_ident('from')}, {quote_ident('to')}, sessionId, payload, "
                        "updatedAt) VALUES (%s, %s, 'received', 'inbound', %s, "
                        "'whatsapp:+911234', %s, %s, NOW(3))",
                        (mid, body, f"whatsapp:+9198{rng.randint(10**7, 10**8 - 1)}",
                         session, json.dumps(payload, ensure_ascii=False)))
            cur.execute("UPDATE WhatsAppSession SET lastMessageId = %s, lastInteraction = "
                        "NOW(3), updatedAt = NOW(3) WHERE id = %s", (mid, session))
        elif pick < 0.85:  # an analytics event
            cur.execute("INSERT INTO WhatsAppAnalyticsEvent (id, sessionId, eventType, "
                        "payload) VALUES (%s, %s, %s, %s)",
                        (f"demo-evt-{uuid.uuid4().hex[:12]}", rng.choice(sessions),
                         rng.choice(["flow_open", "button_click", "catalog_view"]),
                         json.dumps({"screen": rng.choice(["home", "packages", "checkout"])})))
        else:  # a customer edit
            tags = rng.sample(["vip", "goa", "kerala", "honeymoon", "family", "repeat"], 2)
            cur.execute("UPDATE WhatsAppCustomer SET tags = %s, updatedAt = NOW(3) "
                        "WHERE id = %s", (json.dumps(tags), rng.choice(customers)))
