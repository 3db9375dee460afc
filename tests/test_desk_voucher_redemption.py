"""Choice vouchers redeemed at a cash desk (issue 15, S10): a real hub (a copy of the sample) served on
loopback, real enrolled cash desks with their own SQLite files, the real sync client and the desk's
HTTP API. The hub sells "Wahlgutschein 6er" (six vouchers of 25,00 EUR at the disabled tier); seats of
ring C performances (in the vouchers' offer) move into a desk's pool.

- Offline, over the desk's API: both rules, a dearer ticket (two vouchers, the rest cash with change),
  a cheaper one (the difference lapses), the payment rule paid by card; the receipt and the ticket
  slip with its QR printed as one job; every order's payments add up to its total.
- Refusals at the desk, in English and German, nothing stored: outside the offer, expired, used, named
  twice, forged, a seat not in the desk's pool.
- Sync: the hub holds the same order, ticket, payments and redemptions, re-derived, and the ticket card.
- Hostile ops: a changed price, a seat not in the pool, a voucher of another offer, a forged code, a
  card for a line that is not a redemption: conflicts that store nothing.
- Two desks on one LAN, the hub down: a choice voucher redeemed at the first is refused at the second
  within a second (the LAN claim), naming the first in English and German; the second stores nothing.
- Two isolated desks redeem one voucher: after both sync exactly one ticket is valid; the other's card
  is revoked at the hub and, after its pull, at the desk; one open conflict names the customer, the
  voucher, the first desk and the lost ticket's seat in words; the card's own conflict names that
  redemption and is resolved at once, pointing to it. A gate, synced, admits the winner's ticket and
  refuses the loser's (REVOKED).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import aiohttp
import msgspec
import pytest

from core.base.clock import iso, parse_iso, utcnow
from core.base.storage import transaction
from core.cards import cards
from core.cards.access import Access, GateRules
from core.cards.trusted_time import TrustedClock
from core.sales import contingents
from core.subscriptions import desk_redemption
from core.subscriptions.voucher_redemption import DeskRedemptionIn, seat_words
from core.sync import conflicts as conflicts_
from edge.sync.client import SyncClient
from tests.helpers import table_counts
from tests.test_choice_vouchers import DISABLED, PRICE, VOUCHER, forged, free_seats
from tests.test_clocks import enrolled
from tests.test_desk_api import enrolled_edge, expect, login
from tests.test_desk_claims import know_each_other, serve_desk
from tests.test_desk_subscriptions_api import IMAGE_QR_PRINTER, escpos_qr_codes, receipts
from tests.test_subscription_sale import product, tier
from tests.test_trust_no_device import conflicts, tamper

LEDGER = ("orders", "order_lines", "tickets", "payments", "choice_vouchers", "choice_voucher_redemptions", "cards",
          "print_jobs", "outbox")
HUB_LEDGER = ("orders", "order_lines", "tickets", "payments", "choice_voucher_redemptions")


# --- the hub's side: vouchers sold, seats for the desks -------------------------------------------------


def first_customer(db) -> dict:
    return db.execute("SELECT id, first_name, last_name FROM customers ORDER BY number LIMIT 1").fetchone()


async def sell_vouchers(hub) -> list[dict]:
    """A "Wahlgutschein 6er" sold on the phone at the hub at the disabled tier: its six vouchers (with codes)."""
    db = hub.db
    body = {"product_id": product(hub, VOUCHER), "customer_id": first_customer(db)["id"],
            "tier_id": tier(db, product(hub, VOUCHER), DISABLED), "payment_method": "transfer"}
    async with aiohttp.ClientSession() as http:
        headers = {**hub.headers(), "Idempotency-Key": str(uuid.uuid4())}
        async with http.post(f"{hub.url}/api/v1/subscriptions", json=body, headers=headers) as resp:
            sold = await resp.json()
            assert resp.status == 201, sold
        async with http.get(f"{hub.url}/api/v1/subscriptions/{sold['id']}/choice-vouchers",
                            headers=hub.headers()) as resp:
            return (await resp.json())["items"]


def ahead(hub) -> list[str]:
    """The vouchers' offer in the house (ring C) that has not begun, by date."""
    rows = hub.db.execute(
        "SELECT p.id FROM subscription_performances sp JOIN performances p ON p.id = sp.performance_id "
        "WHERE sp.product_id = ? AND p.starts_at > ? AND p.venue_id = (SELECT venue_id FROM seating_plans "
        "WHERE id = ?) ORDER BY p.starts_at", (product(hub, VOUCHER), iso(utcnow()), hub.ids["plans"]["Großes Haus"]))
    return [r["id"] for r in rows]


def outside_offer(hub) -> str:
    """A performance ahead that is not in the vouchers' offer."""
    return hub.db.execute(
        "SELECT id FROM performances WHERE starts_at > ? AND id NOT IN (SELECT performance_id FROM "
        "subscription_performances WHERE product_id = ?) ORDER BY starts_at LIMIT 1",
        (iso(utcnow()), product(hub, VOUCHER))).fetchone()["id"]


def give_seats(hub, edge, perf: str, zones: str) -> list[str]:
    """One free seat per zone code in *zones* (e.g. "142") moved into the desk's pool; their ids."""
    seats = []
    for code in zones:
        taken = set(seats)
        seats.append(next(s for s in free_seats(hub.db, perf, hub.ids["zones"][code], 5) if s not in taken))
    contingents.move_seats(hub.db, perf, seats, contingents.node_pool(edge.node["id"]), utcnow())
    return seats


async def desk_edge(hub, tmp_path, name: str):
    (tmp_path / "receipt-printer.toml").write_text(IMAGE_QR_PRINTER)
    return await enrolled_edge(hub, tmp_path, name=name,
                               desk_toml=f'[printers]\nreceipt = "{tmp_path / "receipt-printer.toml"}"\n')


def counts(db, tables=LEDGER) -> dict[str, int]:
    found = table_counts(db)
    return {t: found[t] for t in tables}


def payments_of(db, order_id: str) -> list[tuple[str, int]]:
    return [(r["method"], r["amount_cents"]) for r in db.execute(
        "SELECT method, amount_cents FROM payments WHERE order_id = ? ORDER BY method = 'voucher' DESC, reference",
        (order_id,))]


def redeem_here(edge, vouchers: list[dict], perf: str, seat: str, **kw) -> dict:
    """What the desk's API does, without HTTP: the redemption, its op and the ticket's card."""
    body = msgspec.convert({"vouchers": vouchers, "performance_id": perf, "seat_id": seat, "operator": "Anna", **kw},
                           DeskRedemptionIn)
    return desk_redemption.redeem_at_desk(edge.db, edge.node, cards.load_signer(edge.db, edge.data_dir), body,
                                          edge.clock.now())


# --- offline at the desk ----------------------------------------------------------------------------------


@pytest.fixture
async def offline(hub, tmp_path, aiohttp_client):
    """A logged-in cash desk holding the vouchers and three seats of a ring C date (zones 1, 4, 2), the hub
    stopped."""
    vouchers = await sell_vouchers(hub)
    edge = await desk_edge(hub, tmp_path, "Kasse 1")
    perf = ahead(hub)[0]
    seats = give_seats(hub, edge, perf, "142")
    await edge.client.round()
    await hub.server.close()
    client = await aiohttp_client(edge.app())
    client.edge, client.vouchers, client.perf, client.seats = edge, vouchers, perf, seats
    await login(client)
    yield client
    await edge.close()


async def test_offline_both_rules_pay_dearer_and_cheaper_tickets_and_every_order_balances(offline):
    desk, v, perf = offline, offline.vouchers, offline.perf
    dear, cheap, middle = offline.seats
    db = desk.edge.db
    read = await expect(await desk.get("/api/choice-vouchers", params={"number": v[0]["number"]}), 200)
    assert (read["value_cents"], read["tier_name"], read["state"], read["product"]) == (2500, DISABLED, "open", VOUCHER)
    assert perf in [p["id"] for p in read["offer"]] and all(p["title"] and p["starts_at"] for p in read["offer"])
    seats = await expect(await desk.get("/api/voucher-redemptions/seats", params={"performance_id": perf}), 200)
    assert {s["seat_id"]: s["price_cents"] for s in seats["seats"]} == {dear: PRICE["1"], cheap: PRICE["4"],
                                                                       middle: PRICE["2"]}
    before = counts(db)
    body = {"vouchers": [{"code": v[0]["code"]}, {"number": v[1]["number"]}], "performance_id": perf, "seat_id": dear}
    quote = await expect(await desk.post("/api/voucher-redemptions/quote", json=body), 200)
    assert (quote["total_cents"], quote["used_cents"], quote["rest_cents"]) == (5800, 5000, 800)
    assert counts(db) == before  # a quote stores nothing

    done = await expect(await desk.post("/api/voucher-redemptions", json={**body, "payment_method": "cash",
                                                                          "given_cents": 1000}), 201)
    assert (done["paid_cents"], done["change_cents"], done["payment_method"]) == (800, 200, "cash")
    assert done["ticket"]["discount_label"] == f"{DISABLED} – {VOUCHER}" and "Reihe" in done["ticket"]["seat"]
    assert payments_of(db, done["order"]["id"]) == [("voucher", 2500), ("voucher", 2500), ("cash", 800)]
    assert done["receipt"]["state"] == "printed" and len(done["printing"]) == 2  # receipt + ticket slip, one job
    claimed = db.execute("SELECT voucher_id FROM redemption_claims WHERE kind = 'choice_voucher' AND live = 1 "
                         "ORDER BY voucher_id").fetchall()
    assert [c["voucher_id"] for c in claimed] == sorted([v[0]["id"], v[1]["id"]])  # claimed on the LAN first
    card = db.execute("SELECT * FROM cards WHERE id = ?", (done["ticket"]["card"]["id"],)).fetchone()
    assert (card["kind"], card["product_id"], card["order_item_id"]) == ("single", perf, done["ticket"]["id"])
    printed = receipts(desk.edge)[-1].read_bytes()
    assert escpos_qr_codes(printed) == [card["code"]]
    for text in (f"Wahlgutschein {v[0]['number']}", f"Wahlgutschein {v[1]['number']}", "-25,00", "Bar",
                 "Gegeben", "10,00", "Rückgeld", "2,00"):
        assert text.encode("cp858") in printed, text  # the vouchers as credits, the rest paid cash

    cheaper = await expect(await desk.post("/api/voucher-redemptions", json={
        "vouchers": [{"code": v[2]["code"]}], "performance_id": perf, "seat_id": cheap}), 201)
    assert (cheaper["paid_cents"], cheaper["lapsed_cents"], cheaper["change_cents"]) == (0, 300, None)
    assert payments_of(db, cheaper["order"]["id"]) == [("voucher", 2200)]

    as_payment = await expect(await desk.post("/api/voucher-redemptions", json={
        "vouchers": [{"number": v[3]["number"]}], "performance_id": perf, "seat_id": middle, "rule": "payment",
        "payment_method": "card", "payment_reference": "TID 0815"}), 201)
    assert as_payment["ticket"]["discount_label"] is None and as_payment["paid_cents"] == 2100
    assert payments_of(db, as_payment["order"]["id"]) == [("voucher", 2500), ("card", 2100)]

    for order in db.execute("SELECT id, total_cents, channel FROM orders").fetchall():
        paid = db.execute("SELECT sum(amount_cents) AS s FROM payments WHERE order_id = ?", (order["id"],)).fetchone()
        assert paid["s"] == order["total_cents"] and order["channel"] == "cashdesk"
    for r in db.execute("SELECT * FROM choice_voucher_redemptions").fetchall():
        assert r["used_cents"] + r["lapsed_cents"] == r["value_cents"] == 2500
    kinds = [r["kind"] for r in db.execute("SELECT kind FROM outbox ORDER BY node_seq")]
    assert kinds.count("voucher.choice_redeemed") == 3 and kinds.count("card.issued") == 3
    again = await expect(await desk.get("/api/choice-vouchers", params={"code": v[0]["code"]}), 200)
    assert again["state"] == "redeemed"


async def test_refusals_at_the_desk_in_both_languages_change_nothing(offline, hub):
    desk, v, perf = offline, offline.vouchers, offline.perf
    db = desk.edge.db
    seat = offline.seats[0]
    await expect(await desk.post("/api/voucher-redemptions", json={
        "vouchers": [{"number": v[5]["number"]}], "performance_id": perf, "seat_id": offline.seats[1]}), 201)
    with transaction(db):  # the season of voucher 5 is over (as the desk's replica has it)
        db.execute("UPDATE choice_vouchers SET valid_until = ? WHERE id = ?",
                   (iso(utcnow() - dt.timedelta(minutes=1)), v[4]["id"]))
    hub_seat = free_seats(hub.db, perf, hub.ids["zones"]["3"])[0]
    cases = {
        "outside the offer": ({"vouchers": [{"number": v[0]["number"]}], "performance_id": outside_offer(hub)},
                              422, "nicht für diese Vorstellung"),
        "expired": ({"vouchers": [{"number": v[4]["number"]}]}, 409, "abgelaufen"),
        "used": ({"vouchers": [{"code": v[5]["code"]}]}, 409, "bereits am"),
        "named twice": ({"vouchers": [{"number": v[0]["number"]}, {"code": v[0]["code"]}]}, 422, "doppelt"),
        "forged": ({"vouchers": [{"code": forged(v[0]["code"])}]}, 422, "Gefälschter"),
        "not this desk's seat": ({"vouchers": [{"number": v[0]["number"]}], "seat_id": hub_seat}, 409,
                                 "nicht im Kontingent dieser Kasse"),
        "rest without payment": ({"vouchers": [{"number": v[0]["number"]}]}, 422, "Zahlungsart"),
        "a counter's payment": ({"vouchers": [{"number": v[0]["number"]}], "payment_method": "transfer"}, 422,
                                "Bargeld oder Karte"),
    }
    before = counts(db)
    for case, (change, status, german) in cases.items():
        body = {"performance_id": perf, "seat_id": seat, **change}
        problem = await expect(await desk.post("/api/voucher-redemptions", json=body), status)
        assert german in problem["detail_de"], (case, problem)
        assert problem["detail"] and problem["detail"] != problem["detail_de"], case
        assert counts(db) == before, case
    await expect(await desk.post("/api/logout", json={}), 200)
    assert (await desk.get("/api/choice-vouchers", params={"number": v[0]["number"]})).status == 401
    assert (await desk.post("/api/voucher-redemptions", json={})).status == 401


async def test_a_counter_may_not_redeem_choice_vouchers_and_stores_nothing(hub, tmp_path, aiohttp_client):
    """A personalization counter holds no seats: its operator, logged in, gets 403 from every voucher
    redemption endpoint, and nothing is stored."""
    vouchers = await sell_vouchers(hub)
    counter = await enrolled_edge(hub, tmp_path, role="counter", name="Theke 1")
    try:
        client = await aiohttp_client(counter.app())
        client.edge = counter
        await login(client)
        before = counts(counter.db)
        body = {"vouchers": [{"number": vouchers[0]["number"]}], "performance_id": ahead(hub)[0],
                "seat_id": str(uuid.uuid4()), "payment_method": "cash", "given_cents": 10_000}
        assert (await client.get("/api/choice-vouchers", params={"number": vouchers[0]["number"]})).status == 403
        assert (await client.post("/api/voucher-redemptions/quote", json=body)).status == 403
        assert (await client.post("/api/voucher-redemptions", json=body)).status == 403
        assert counts(counter.db) == before
    finally:
        await counter.close()


# --- sync: the hub re-derives -----------------------------------------------------------------------------


def ledger_of(db, order_id: str) -> dict:
    order = db.execute("SELECT id, number, node_id, channel, delivery, operator, total_cents, created_at FROM orders "
                       "WHERE id = ?", (order_id,)).fetchone()
    return {"order": order,
            "lines": db.execute("SELECT id, kind, product_id, price_cents FROM order_lines WHERE order_id = ?",
                                (order_id,)).fetchall(),
            "tickets": db.execute("SELECT id, performance_id, seat_id, zone_id, price_cents, status FROM tickets "
                                  "WHERE order_id = ?", (order_id,)).fetchall(),
            "payments": sorted((p["method"], p["amount_cents"], p["reference"], p["given_cents"]) for p in db.execute(
                "SELECT * FROM payments WHERE order_id = ?", (order_id,))),
            "redemptions": db.execute("SELECT voucher_id, rule, ticket_id, discount_label, used_cents, lapsed_cents, "
                                      "node_id FROM choice_voucher_redemptions WHERE order_id = ? ORDER BY voucher_id",
                                      (order_id,)).fetchall()}


async def test_synced_the_hub_holds_the_same_redemption_re_derived_and_admits_its_card(hub, tmp_path):
    v = await sell_vouchers(hub)
    edge = await desk_edge(hub, tmp_path, "Kasse 1")
    try:
        perf = ahead(hub)[1]
        dear, cheap = give_seats(hub, edge, perf, "14")
        await edge.client.round()
        done = [redeem_here(edge, [{"code": v[0]["code"]}, {"number": v[1]["number"]}], perf, dear,
                            payment_method="cash", given_cents=1000),
                redeem_here(edge, [{"number": v[2]["number"]}], perf, cheap, rule="payment")]
        result = await edge.client.round()
        assert result.rejected == 0, conflicts(hub)
        for d in done:
            assert ledger_of(hub.db, d["order_id"]) == ledger_of(edge.db, d["order_id"])
            card = hub.db.execute("SELECT * FROM cards WHERE id = ?", (d["card"]["id"],)).fetchone()
            assert (card["revoked_at"], card["order_item_id"], card["kind"]) == (None, d["ticket"]["id"], "single")
            assert (card["valid_from"], card["valid_until"]) == (d["card"]["valid_from"], d["card"]["valid_until"])
        customer = hub.db.execute("SELECT customer_id FROM orders WHERE id = ?", (done[0]["order_id"],)).fetchone()
        assert customer["customer_id"] == first_customer(hub.db)["id"]  # the hub knows whose vouchers they were
        assert {r["state"] for r in hub.db.execute("SELECT state FROM choice_vouchers WHERE id IN (?, ?, ?)",
                                                    (v[0]["id"], v[1]["id"], v[2]["id"]))} == {"redeemed"}
    finally:
        await edge.close()


def _cheaper(b: dict, x: dict) -> None:
    b["price_cents"] -= 100


def _hub_seat(b: dict, x: dict) -> None:
    b["seat_id"] = x["hub_seat"]


def _other_offer(b: dict, x: dict) -> None:
    b["performance_id"] = x["other_perf"]


def _forged(b: dict, x: dict) -> None:
    b["vouchers"][0]["code"] = forged(b["vouchers"][0]["code"])


def _foreign_line(b: dict, x: dict) -> None:
    b["order_item_id"] = x["line"]


HOSTILE = {  # case: (op kind tampered, the change, what the conflict says)
    "price changed": ("voucher.choice_redeemed", _cheaper, "costs 4600 cents"),
    "seat not in the pool": ("voucher.choice_redeemed", _hub_seat, "not in this desk's contingent"),
    "voucher of another offer": ("voucher.choice_redeemed", _other_offer, "not in its offer"),
    "forged code": ("voucher.choice_redeemed", _forged, "forged"),
    "card for a line that is not a redemption": ("card.issued", _foreign_line, "not a subscription this node sold"),
}


async def test_hostile_redemption_ops_are_conflicts_that_store_nothing(hub, tmp_path):
    v = await sell_vouchers(hub)
    edge = await desk_edge(hub, tmp_path, "Kasse 1")
    try:
        perf = ahead(hub)[0]
        (seat,) = give_seats(hub, edge, perf, "2")
        await edge.client.round()
        x = {"hub_seat": free_seats(hub.db, perf, hub.ids["zones"]["3"])[0], "other_perf": outside_offer(hub),
             "line": hub.db.execute("SELECT id FROM order_lines LIMIT 1").fetchone()["id"]}  # the voucher sale's
        for n, (case, (kind, change, reason)) in enumerate(HOSTILE.items()):
            done = redeem_here(edge, [{"code": v[n]["code"]}], perf, seat, payment_method="cash")
            before = counts(hub.db, HUB_LEDGER)
            tamper(edge.db, kind, lambda b, change=change: change(b, x))
            await edge.client.round()
            redemption_refused = kind == "voucher.choice_redeemed"
            last = conflicts(hub)[-2 if redemption_refused else -1]
            assert last["kind"] == kind and reason in last["reason"], (case, conflicts(hub))
            card_conflict = hub.db.execute("SELECT * FROM conflicts WHERE kind = 'card.issued' ORDER BY created_at "
                                           "DESC, node_seq DESC LIMIT 1").fetchone()
            # the card of a refused redemption follows its conflict; a card on a foreign line stays a case
            assert bool(card_conflict["resolved_at"]) == redemption_refused, case
            assert (done["number"] in card_conflict["reason"]) == redemption_refused, case
            card = hub.db.execute("SELECT revoked_at FROM cards WHERE id = ?", (done["card"]["id"],)).fetchone()
            assert card is not None and card["revoked_at"], case  # its genuine code is kept revoked at the hub
            stored = hub.db.execute("SELECT 1 FROM orders WHERE id = ?", (done["order_id"],)).fetchone()
            ticket = edge.db.execute("SELECT status FROM tickets WHERE id = ?", (done["ticket"]["id"],)).fetchone()
            if redemption_refused:  # nothing stored; the desk withdrew its ticket, the seat is free there again
                assert counts(hub.db, HUB_LEDGER) == before and stored is None, case
                assert ticket["status"] == "cancelled", case
            else:  # the redemption was sound and is stored; only the card is refused
                assert stored is not None and ticket["status"] == "sold", case
    finally:
        await edge.close()


# --- two desks on one LAN, the hub down: the second refuses at once ------------------------------------------


async def test_on_one_lan_with_the_hub_down_a_second_desk_refuses_a_choice_voucher_naming_the_first(
        hub, tmp_path, aiohttp_client):
    """Both desks hold the voucher (sold at the hub) and a seat of their own pool; the hub goes away.
    Desk 1 redeems it through its API; desk 2, asked a moment later, refuses from desk 1's LAN claim
    (the time between desk 1's answer and desk 2's refusal is printed) and stores nothing."""
    v = await sell_vouchers(hub)
    desk1 = await serve_desk(hub, tmp_path, aiohttp_client, "Kasse 1", announce=False)
    desk2 = await serve_desk(hub, tmp_path, aiohttp_client, "Kasse 2", announce=False)
    try:
        perf = ahead(hub)[0]
        seats = {desk: give_seats(hub, desk.edge, perf, "4")[0] for desk in (desk1, desk2)}
        for desk in (desk1, desk2):
            await desk.edge.client.round()
        know_each_other(desk1, desk2, tmp_path)
        await hub.server.close()

        body = {"vouchers": [{"code": v[0]["code"]}], "performance_id": perf}
        made = await expect(await desk1.post("/api/voucher-redemptions", json={**body, "seat_id": seats[desk1]}), 201)
        answered = time.monotonic()
        before = counts(desk2.edge.db)
        refused = await expect(await desk2.post("/api/voucher-redemptions", json={**body, "seat_id": seats[desk2]}),
                               409)
        took = time.monotonic() - answered
        print(f"\nchoice voucher: desk 1 answered, desk 2 refused {took * 1000:.1f} ms later")
        assert took < 1.0
        assert "Kasse 1" in refused["detail"] and "only once" in refused["detail"]
        assert "Kasse 1" in refused["detail_de"] and refused["detail_de"].startswith("Gutschein wurde bereits an")
        assert (refused["claimed_by"], refused["voucher_id"]) == ("Kasse 1", v[0]["id"])
        assert counts(desk2.edge.db) == before  # no order, ticket, card, redemption or print job at desk 2
        free = await expect(await desk2.get("/api/voucher-redemptions/seats", params={"performance_id": perf}), 200)
        assert seats[desk2] in [s["seat_id"] for s in free["seats"]]
        assert made["ticket"]["seat_id"] == seats[desk1] and made["vouchers"][0]["id"] == v[0]["id"]
        typed = await expect(await desk2.post("/api/voucher-redemptions", json={  # typed in: refused all the same
            **body, "vouchers": [{"number": v[0]["number"]}], "seat_id": seats[desk2]}), 409)
        assert typed["claimed_by"] == "Kasse 1" and counts(desk2.edge.db) == before
    finally:
        await desk1.edge.close()
        await desk2.edge.close()


# --- two isolated desks, one voucher: first to reach the hub wins -------------------------------------------


async def test_two_isolated_desks_redeem_one_voucher_the_first_at_the_hub_wins(hub, tmp_path):
    v = await sell_vouchers(hub)
    first, second = await desk_edge(hub, tmp_path, "Kasse 1"), await desk_edge(hub, tmp_path, "Kasse 2")
    try:
        perf = ahead(hub)[0]
        seat_1, seat_2 = give_seats(hub, first, perf, "2")[0], give_seats(hub, second, perf, "2")[0]
        await first.client.round()
        await second.client.round()
        # no LAN, no hub: each desk redeems voucher 0 (plus a fresh one at the second desk)
        won = redeem_here(first, [{"code": v[0]["code"]}], perf, seat_1, payment_method="cash")
        lost = redeem_here(second, [{"number": v[0]["number"]}, {"code": v[1]["code"]}], perf, seat_2)
        assert (await first.client.round()).rejected == 0
        await second.client.round()
        await second.client.round()  # pulls what the hub decided

        db = hub.db
        assert db.execute("SELECT order_id FROM choice_voucher_redemptions WHERE voucher_id = ?",
                          (v[0]["id"],)).fetchone()["order_id"] == won["order_id"]
        assert db.execute("SELECT 1 FROM orders WHERE id = ?", (lost["order_id"],)).fetchone() is None
        assert db.execute("SELECT 1 FROM tickets WHERE performance_id = ? AND seat_id = ? AND status = 'sold'",
                          (perf, seat_2)).fetchone() is None  # the loser's seat is free at the hub
        valid = db.execute("SELECT id FROM cards WHERE id IN (?, ?) AND revoked_at IS NULL",
                           (won["card"]["id"], lost["card"]["id"])).fetchall()
        assert [c["id"] for c in valid] == [won["card"]["id"]]  # exactly one ticket valid
        open_ = db.execute("SELECT * FROM conflicts WHERE resolved_at IS NULL").fetchall()
        assert [c["kind"] for c in open_] == ["voucher.choice_redeemed"]  # one case for the office
        customer, reason = first_customer(db), open_[0]["reason"]
        assert f"{customer['first_name']} {customer['last_name']}" in reason
        assert v[0]["number"] in reason and "Kasse 1" in reason and lost["number"] in reason
        seat = contingents.some_seats(db, perf, [seat_2])[seat_2]
        assert seat_words(seat) in reason and seat_2 not in reason  # the seat in words, not its id
        card_conflict = db.execute("SELECT * FROM conflicts WHERE kind = 'card.issued'").fetchone()
        assert lost["number"] in card_conflict["reason"] and v[0]["number"] in card_conflict["reason"]
        assert "not a subscription" not in card_conflict["reason"] and open_[0]["id"] in card_conflict["reason"]
        assert card_conflict["resolved_at"] and open_[0]["id"] in card_conflict["resolution"]
        lost_card = msgspec.json.decode(second.db.execute("SELECT body FROM outbox WHERE kind = 'card.issued'")
                                        .fetchone()["body"], type=cards.CardOp)  # the card as the desk pushed it
        desk_redemption.refuse_card_of_lost(db, first.node["id"], lost_card)  # another desk's loss: no cover
        with pytest.raises(conflicts_.Follows):
            desk_redemption.refuse_card_of_lost(db, second.node["id"], lost_card)
        assert db.execute("SELECT state FROM choice_vouchers WHERE id = ?", (v[1]["id"],)).fetchone()["state"] == "open"

        at_desk = second.db
        card = at_desk.execute("SELECT revoked_at FROM cards WHERE id = ?", (lost["card"]["id"],)).fetchone()
        assert card["revoked_at"]  # revoked at the losing desk too
        assert at_desk.execute("SELECT status FROM tickets WHERE id = ?",
                               (lost["ticket"]["id"],)).fetchone()["status"] == "cancelled"
        assert at_desk.execute("SELECT count(*) AS n FROM print_jobs WHERE ref_id = ? AND state <> 'printed'",
                               (lost["card"]["id"],)).fetchone()["n"] == 0
        mine = {r["voucher_id"]: r["order_id"] for r in at_desk.execute("SELECT * FROM choice_voucher_redemptions")}
        assert mine == {v[0]["id"]: won["order_id"]}  # the hub's redemption; voucher 1 is free again
        assert at_desk.execute("SELECT state FROM choice_vouchers WHERE id = ?",
                               (v[1]["id"],)).fetchone()["state"] == "open"
        assert desk_redemption.redemption_verdict(at_desk, lost["order_id"])
        assert desk_redemption.redemption_verdict(first.db, won["order_id"]) is None
        await at_the_gate(hub, tmp_path, perf, admitted=won["card"], refused=lost["card"])
    finally:
        await first.close()
        await second.close()


async def at_the_gate(hub, tmp_path, perf: str, *, admitted: dict, refused: dict) -> None:
    """A gate of the performance's venue, enrolled and synced now, decides both tickets at the start:
    the winner's is admitted, the loser's refused as revoked (the hub kept its genuine code revoked)."""
    venue = hub.db.execute("SELECT venue_id, starts_at FROM performances WHERE id = ?", (perf,)).fetchone()
    folder, gate_db = await enrolled(hub, tmp_path, role="gate", name="Tor 1", venues=[venue["venue_id"]])
    client = SyncClient(gate_db, folder)
    try:
        await client.round()
        gate = Access(gate_db, GateRules(venue_id=venue["venue_id"]), TrustedClock(gate_db))
        starts = parse_iso(venue["starts_at"])
        assert gate.decide(admitted["code"], starts).reason == "ADMITTED"
        verdict = gate.decide(refused["code"], starts)
        assert verdict.reason == "REVOKED" and "voucher redemption" in verdict.detail, verdict
    finally:
        await client.close()


async def test_online_the_desk_asks_the_hub_first_and_prints_nothing_for_a_voucher_used_meanwhile(
        hub, tmp_path, aiohttp_client):
    """The office redeemed the voucher a moment ago; the desk has not pulled it yet. With the hub
    reachable the desk pushes before printing, learns it lost, withdraws its ticket: a 409, no print."""
    from core.base.node import this_node
    from core.subscriptions import voucher_redemption
    v = await sell_vouchers(hub)
    edge = await desk_edge(hub, tmp_path, "Kasse 1")
    try:
        perf = ahead(hub)[0]
        (seat,) = give_seats(hub, edge, perf, "4")
        await edge.client.round()
        office = msgspec.convert({"vouchers": [{"number": v[0]["number"]}], "performance_id": perf,
                                  "seat_id": free_seats(hub.db, perf, hub.ids["zones"]["4"])[0]},
                                 voucher_redemption.RedemptionIn)
        voucher_redemption.redeem(hub.db, this_node(hub.db), office, channel="phone", now=utcnow())
        desk = await aiohttp_client(edge.app())
        desk.edge = edge
        await login(desk)
        problem = await expect(await desk.post("/api/voucher-redemptions", json={
            "vouchers": [{"code": v[0]["code"]}], "performance_id": perf, "seat_id": seat}), 409)
        assert "bereits anderswo eingelöst" in problem["detail_de"] and v[0]["number"] in problem["detail"]
        assert receipts(edge) == []
        assert edge.db.execute("SELECT status FROM tickets").fetchone()["status"] == "cancelled"
        assert edge.db.execute("SELECT count(*) AS n FROM print_jobs WHERE kind = 'card' AND state <> 'printed'"
                               ).fetchone()["n"] == 0
        assert [r["kind"] for r in conflicts(hub)] == ["voucher.choice_redeemed", "card.issued"]
    finally:
        await edge.close()
