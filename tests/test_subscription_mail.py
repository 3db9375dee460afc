"""The confirmation mail of a subscription order (hub/services/subscription_mail.py): a shop order
mails its customer through a real SMTP server (aiosmtpd on loopback) with every date, venue and seat
in local time, German and English; a phone sale mails a customer with an address (a transfer: "we
send an invoice") and nobody without one; a sale that fails or is rolled back queues nothing; hostile
names neither inject headers nor HTML. The real hub app on a copy of the sample hub, over HTTP."""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from core.base.clock import parse_iso
from core.base.storage import transaction
from hub.app import make_app
from hub.services import subscription_mail, tokens
from hub.web.clock import CLOCK
from tests.helpers import ADDRESS, async_wait_until, call, problem
from tests.test_mail import Smtp, body, free_port
from tests.test_shop import write_settings
from tests.test_shop_subscriptions import CUSTOMER, Clock
from tests.test_subscription_sale import GENERAL, house, product, sale, seat, sell, tier

BERLIN = ZoneInfo("Europe/Berlin")  # the house clock, spelled out here rather than taken from the code


@dataclass
class Bed:
    client: object
    hub: object
    smtp: Smtp
    shop_token: str

    def queued(self) -> list[dict]:
        return self.hub.db.execute("SELECT * FROM mail_queue ORDER BY created_at, id").fetchall()

    async def mails(self, n: int) -> list:
        await async_wait_until(lambda: len(self.smtp.inbox.received) >= n, 10,
                               what=lambda: f"{len(self.smtp.inbox.received)} of {n} mails arrived")
        assert len(self.smtp.inbox.received) == n
        return [self.smtp.inbox.parsed(i) for i in range(n)]

    async def shop(self, method: str, path: str, data: dict, key: str | None = None,
                   token: str | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token or self.shop_token}"} | ({"Idempotency-Key": key} if key else {})
        resp = await self.client.request(method, "/api/v1" + path, json=data, headers=headers)
        return resp.status, await resp.json(content_type=None)

    async def shop_order(self, ring: str, *, key: str, **changes) -> dict:
        """Hold a seat of *ring* in zone 1 and order it for CUSTOMER (a new customer)."""
        prod = product(self.hub, ring)
        status, hold = await self.shop("POST", "/shop/seat-holds",
                                       {"product_id": prod, "zone_id": self.hub.ids["zones"]["1"]})
        assert status == 201, hold
        order = {"product_id": prod, "hold_id": hold["id"], "customer": CUSTOMER, "delivery": "mail",
                 "payment_reference": "psp-4711", **changes}
        status, sold = await self.shop("POST", "/shop/subscription-orders", order, key=key)
        assert status == 201, sold
        return sold

    async def phone_sale(self, customer_id: str, chair: dict, *, key: str, status: int = 201, **changes) -> dict:
        sale_body = {"product_id": product(self.hub, "Abo-Ring B"), "customer_id": customer_id,
                     "seat_ids": [chair["id"]], "payment_method": "transfer", **changes}
        headers = {**self.hub.headers(), "Idempotency-Key": key}
        if status != 201:
            return await problem(self.client, "POST", "/subscriptions", sale_body, status=status, slug="conflict",
                                 headers=headers)
        return await call(self.client, "POST", "/subscriptions", sale_body, status=201, headers=headers)


@pytest.fixture
async def bed(aiohttp_client, sample_hub):
    smtp = Smtp(free_port())
    smtp.start()
    write_settings(sample_hub, smtp.port)
    secret, _ = tokens.create_token(sample_hub.db, "Webshop", "shop")
    app = make_app(sample_hub.db)
    app[CLOCK] = Clock(GENERAL)
    client = await aiohttp_client(app)
    client.hub = sample_hub
    yield Bed(client, sample_hub, smtp, secret)
    await client.close()  # the hub and its mail worker first: no send is cut off
    smtp.stop()


def dates_of(db, subscription_id: str) -> list[dict]:
    """Each date of the subscription with its local start, venue and seat, read from the tables."""
    return db.execute(
        "SELECT p.title, p.starts_at, v.name AS venue, c.name AS section, s.row_label, s.label FROM tickets t "
        "JOIN subscriptions sub ON sub.line_id = t.line_id JOIN performances p ON p.id = t.performance_id "
        "JOIN venues v ON v.id = p.venue_id JOIN seats s ON s.id = t.seat_id "
        "JOIN plan_sections c ON c.id = s.section_id WHERE sub.id = ? AND t.status = 'sold' ORDER BY p.starts_at",
        (subscription_id,)).fetchall()


def local(row: dict) -> dt.datetime:
    return parse_iso(row["starts_at"]).astimezone(BERLIN)


# --- the shop --------------------------------------------------------------------------------------------


async def test_a_shop_order_mails_its_dates_and_seats_in_german_and_english(bed):
    db = bed.hub.db
    pupils = tier(db, product(bed.hub, "Abo-Ring B"), "Schüler/Studierende")
    sold = await bed.shop_order("Abo-Ring B", key="basket-1", tier_id=pupils, form="single_tickets",
                                holder_name="Greta Sommer-Lind")
    [msg] = await bed.mails(1)
    order = db.execute("SELECT * FROM orders WHERE id = ?", (sold["order_id"],)).fetchone()
    assert bed.smtp.inbox.received[0][1] == ["greta@example.org"]
    assert msg["To"] == "greta@example.org" and order["number"] in msg["Subject"]
    text, page = body(msg, "plain"), body(msg, "html")
    german, english = text.split("-- English --")
    assert german.startswith("Guten Tag Greta Sommer,") and "Hello Greta Sommer," in english
    for part in (german, english, page):
        assert order["number"] in part and sold["number"] in part and "Abo-Ring B" in part
        assert "Greta Sommer-Lind" in part and "Schüler/Studierende" in part
    assert "Einzeltickets je Termin" in german and "single tickets for each date" in english
    assert "So 27.09.2026, 18:00 Uhr  Die Zauberflöte" in german  # 16:00 UTC on the house clock
    assert "Sun 27 Sep 2026, 18:00  Die Zauberflöte" in english
    dates = dates_of(db, sold["id"])
    assert len(dates) == 8
    for row in dates:  # local time, venue and seat of every date, in both languages
        at = local(row)
        assert f"{at:%d.%m.%Y}, {at:%H:%M} Uhr  {row['title']}" in german
        assert f"{row['venue']}, {row['section']}, Reihe {row['row_label']}, Platz {row['label']}" in german
        assert f"{at.day} {at:%b} {at.year}, {at:%H:%M}  {row['title']}" in english
        assert f"{row['venue']}, {row['section']}, row {row['row_label']}, seat {row['label']}" in english
    assert "Summe: 184,00 €" in german and "Total: €184.00" in english
    assert "online, bereits bezahlt" in german and "online, already paid" in english
    assert "per Post" in german and "by post" in english
    assert '<div lang="de">' in page and '<div lang="en">' in page
    [queued] = await async_wait_until(lambda: [m for m in bed.queued() if m["sent_at"]], 10,
                                      what="the mail marked sent")  # the server's answer comes first
    assert queued["to_address"] == "greta@example.org" and len(bed.queued()) == 1


async def test_a_retried_shop_order_mails_once(bed):
    body_key = "basket-again"
    prod = product(bed.hub, "Abo-Ring C")
    status, hold = await bed.shop("POST", "/shop/seat-holds",
                                  {"product_id": prod, "zone_id": bed.hub.ids["zones"]["2"]})
    assert status == 201
    order = {"product_id": prod, "hold_id": hold["id"], "customer": CUSTOMER, "delivery": "pickup",
             "payment_reference": "psp-1"}
    first = await bed.shop("POST", "/shop/subscription-orders", order, key=body_key)
    again = await bed.shop("POST", "/shop/subscription-orders", order, key=body_key)
    assert first == again and first[0] == 201
    [msg] = await bed.mails(1)
    assert "an der Theaterkasse" in body(msg, "plain") and "pickup at the box office" in body(msg, "plain")
    assert len(bed.queued()) == 1


async def test_an_agency_order_mails_the_customer_who_pays_the_agency(bed):
    db, hub = bed.hub.db, bed.hub
    secret, agency = tokens.create_token(db, "Reisebüro Weser", "agency")
    pool = [seat(db, house(hub), "1. Rang", "2", str(n))["id"] for n in (8, 9)]
    for perf in hub.ids["rings"]["A"]:  # the agency's contingent in every date of Ring A
        await call(bed.client, "POST", f"/performances/{perf}/pools",
                   {"seat_ids": pool, "to": f"agency:{agency['id']}"}, status=200)
    prod = product(hub, "Abo-Ring A")
    status, hold = await bed.shop("POST", "/shop/seat-holds", {"product_id": prod, "seat_ids": pool[:1]}, token=secret)
    assert status == 201, hold
    status, sold = await bed.shop("POST", "/shop/subscription-orders",
                                  {"product_id": prod, "hold_id": hold["id"], "customer": CUSTOMER,
                                   "delivery": "pickup", "payment_reference": "RB-77"}, key="agency-1", token=secret)
    assert status == 201 and sold["channel"] == "agency", sold
    [msg] = await bed.mails(1)
    text = body(msg, "plain")
    assert msg["To"] == "greta@example.org" and sold["number"] in text and "1. Rang, Reihe 2, Platz 8" in text
    assert "Zahlung: bei Ihrer Vorverkaufsstelle Reisebüro Weser; sie rechnet mit uns ab." in text
    assert "Payment: to your booking agency Reisebüro Weser, which settles with us." in text
    assert "Rechnung" not in text and "invoice" not in text  # the agency's transfer to the organizer is not theirs


# --- the office's phone sale -------------------------------------------------------------------------------


async def test_a_phone_sale_mails_a_customer_with_an_address_and_nobody_without(bed):
    db, hub = bed.hub.db, bed.hub
    nobody = await call(bed.client, "POST", "/customers",
                        {"first_name": "Otto", "last_name": "Ohnemail", "address": ADDRESS}, status=201)
    assert db.execute("SELECT email FROM customers WHERE id = ?", (nobody["id"],)).fetchone()["email"] is None
    sold = await bed.phone_sale(nobody["id"], seat(db, house(hub), "Parkett", "13", "5"), key="p-1")
    assert sold["customer_id"] == nobody["id"] and bed.queued() == []  # sold, and nothing to mail
    with_mail = await call(bed.client, "POST", "/customers",
                           {"first_name": "Hanna", "last_name": "Hatmail", "address": ADDRESS,
                            "email": "hanna@example.org"}, status=201)
    sold = await bed.phone_sale(with_mail["id"], seat(db, house(hub), "Parkett", "13", "6"), key="p-2",
                                form="pass")
    [msg] = await bed.mails(1)
    text = body(msg, "plain")
    assert msg["To"] == "hanna@example.org" and sold["number"] in text
    assert "per Überweisung: Sie erhalten von uns eine Rechnung." in text and "we send you an invoice" in text
    assert "Abo-Ausweis für die ganze Spielzeit" in text and "season pass for the whole season" in text
    assert "Vollpreis" in text and "full price" in text and "Parkett, Reihe 13, Platz 6" in text
    assert "zur Abholung an der Theaterkasse" in text  # the phone sale's default delivery


async def test_a_party_order_mails_once_with_every_subscription(bed):
    """A couple side by side: one order, two subscriptions (one at full price, one a pupil's), one mail."""
    db, hub = bed.hub.db, bed.hub
    prod = product(hub, "Abo-Ring B")
    pupils = tier(db, prod, "Schüler/Studierende")
    members = [{"seat_ids": [seat(db, house(hub), "Parkett", "16", "5")["id"]], "holder_name": "Erika Paar"},
               {"seat_ids": [seat(db, house(hub), "Parkett", "16", "6")["id"]], "holder_name": "Max Paar",
                "tier_id": pupils}]
    sold = await call(bed.client, "POST", "/subscriptions",
                      {"product_id": prod, "customer_id": hub.ids["first_customer"], "members": members,
                       "payment_method": "transfer", "delivery": "mail"},
                      status=201, headers={**hub.headers(), "Idempotency-Key": "party-1"})
    first, second = sold["subscriptions"]
    [msg] = await bed.mails(1)
    german, english = body(msg, "plain").split("-- English --")
    for number, holder, seat_no in ((first["number"], "Erika Paar", "5"), (second["number"], "Max Paar", "6")):
        block = german.split(f"Abonnement {number}: Abo-Ring B")[1].split("\n\n")[0]
        assert f"Inhaber/in: {holder}" in block and block.count(f"Parkett, Reihe 16, Platz {seat_no}") == 8
    assert "Rabattstufe: Vollpreis" in german and "Rabattstufe: Schüler/Studierende" in german
    euros, cents = divmod(sold["order_total_cents"], 100)
    assert euros < 1000 and f"Summe: {euros},{cents:02d} €" in german and f"Total: €{euros}.{cents:02d}" in english
    assert sold["order_total_cents"] == first["price_cents"] + second["price_cents"]
    assert english.count("Subscription ABO-") == 2 and "Delivery: We send your tickets by post." in english
    assert len(bed.queued()) == 1


async def test_a_sale_that_fails_queues_nothing(bed):
    db, hub = bed.hub.db, bed.hub
    chair = seat(db, house(hub), "Parkett", "12", "7")
    await bed.phone_sale(hub.ids["first_customer"], chair, key="first")
    await bed.mails(1)
    await bed.phone_sale(hub.ids["first_customer"], chair, key="second", status=409)  # the seat is sold
    assert len(bed.queued()) == 1
    # queued inside the sale's transaction: a sale rolled back after its mail was queued leaves neither
    orders_before = db.execute("SELECT count(*) AS n FROM orders").fetchone()["n"]
    other = seat(db, house(hub), "Parkett", "12", "8")
    with pytest.raises(RuntimeError, match="after the mail"), transaction(db):
        sub = sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"], seat_ids=[other["id"]]))
        assert subscription_mail.queue_confirmation(db, sub["order_id"], GENERAL) is not None
        assert subscription_mail.queue_confirmation(db, sub["order_id"], GENERAL) is None  # an order mails once
        assert len(bed.queued()) == 2
        raise RuntimeError("the sale fails after the mail was queued")
    assert len(bed.queued()) == 1 and db.execute("SELECT count(*) AS n FROM orders").fetchone()["n"] == orders_before
    with pytest.raises(RuntimeError, match="inside the sale's transaction"):  # never on its own
        subscription_mail.queue_confirmation(db, sub["order_id"], GENERAL)
    assert len(bed.queued()) == 1


# --- hostile names -------------------------------------------------------------------------------------


async def test_hostile_names_inject_no_header_and_no_html(bed):
    eve = {**CUSTOMER, "first_name": "Eve\r\nBcc: mallory@evil.example", "last_name": "<script>alert(1)</script>"}
    await bed.shop_order("Abo-Ring B", key="hostile", customer=eve,
                         holder_name='Eve <b onclick="x()">Boss</b>\r\nX-Injected: yes')
    [msg] = await bed.mails(1)
    assert bed.smtp.inbox.received[0][1] == ["greta@example.org"]  # nobody else got it
    assert set(msg.keys()) == {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    page = body(msg, "html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert "Eve &lt;b onclick=&quot;x()&quot;&gt;Boss&lt;/b&gt;" in page and "<b " not in page
    text = body(msg, "plain")  # plain text shows the names as typed; they are not markup there
    assert "<script>alert(1)</script>" in text and "Bcc: mallory@evil.example" in text


def test_the_once_per_order_check_asks_an_index_not_every_mail_ever_sent(empty_hub):
    """Mail rows are never deleted; the question "is this order's confirmation queued already",
    asked at every sale, is answered from an index on the subject (migration 0033)."""
    db = empty_hub.db
    if not isinstance(db, sqlite3.Connection):
        db.execute("SET enable_seqscan = off")  # an empty table: only whether the index can answer
        plan = " ".join(r["QUERY PLAN"] for r in db.execute(
            "EXPLAIN SELECT 1 FROM mail_queue WHERE subject = 'x' LIMIT 1").fetchall())
        db.execute("RESET enable_seqscan")
    else:
        plan = " ".join(r["detail"] for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM mail_queue WHERE subject = 'x' LIMIT 1").fetchall())
    assert "mail_queue_subject" in plan


def test_an_orders_subscriptions_are_found_by_an_index_not_by_reading_them_all(empty_hub):
    """The mail (and the office's order pages) read an order's subscriptions by the order's id,
    at every sale: answered from an index (migration 0034), not by reading every subscription."""
    db = empty_hub.db
    question = "SELECT id, line_id FROM subscriptions WHERE order_id = 'x' ORDER BY number, id"
    if not isinstance(db, sqlite3.Connection):
        db.execute("SET enable_seqscan = off")  # an empty table: only whether the index can answer
        plan = " ".join(r["QUERY PLAN"] for r in db.execute(f"EXPLAIN {question}").fetchall())
        db.execute("RESET enable_seqscan")
    else:
        plan = " ".join(r["detail"] for r in db.execute(f"EXPLAIN QUERY PLAN {question}").fetchall())
    assert "subscriptions_order" in plan
