"""A cash desk's subscription sales reach the hub as `subscription.sold` (issue 14, S17): a real hub
(a copy of the sample) over loopback HTTP and a real enrolled cashdesk replica driven by the real
sync client. Ring seats move into the desk's pool, the desk sells offline from it (a ring across
the two plan variants of "Abo-Ring A" with a replacement step, a party of two with a tier, a
choice, a combi) and issues the cards; the hub sells each again from the desk's pool, stores it
under the same ids and prices and accepts the cards. Hostile or stale ops are conflicts that change
nothing (a refused sale's cards are kept revoked, so gates refuse them); a re-push is a duplicate."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from core.base.clock import day_end, iso, parse_iso, utcnow
from core.base.node import this_node
from core.base.storage import transaction
from core.cards import cards
from core.sales import contingents
from core.sales.tickets import SaleIn
from core.sales.tickets import sell as sell_seats
from core.subscriptions import passes, ring_pools
from core.subscriptions.sale import SubscriptionSaleIn, sell_subscriptions
from tests.conftest import prepared_sample_hub
from tests.test_subscription_sale import house, pit_and_parkett, product, seat, tier, variant_of
from tests.test_sync import enrolled, kasse_1, with_kasse_1
from tests.test_trust_no_device import conflicts, digest, inject, results, tamper

RING_A = "Abo-Ring A"
CHOICE = "Wahl-Abo Studio 5 aus 8"
COMBI = "Kombi-Ticket Klassiker"


@dataclass
class Desk:
    folder: Path
    db: object
    client: object
    node: dict

    @property
    def pool(self) -> str:
        return contingents.node_pool(self.node["id"])

    def sell(self, body: dict) -> dict:
        sale = msgspec.convert({"payment_method": "cash", **body}, SubscriptionSaleIn)
        return sell_subscriptions(self.db, self.node, sale, channel="cashdesk", pool=self.pool, now=utcnow())

    def cards_for(self, sold: dict) -> list[dict]:
        signer = cards.load_signer(self.db, self.folder)
        return [c for sub in sold["subscriptions"]
                for c in passes.issue_subscription_cards(self.db, signer, sub["id"], utcnow())]


@pytest.fixture
def sample_hub(request, tmp_path, backend):
    """A private copy of the sample hub with Kasse 1 enrolled (made once per test process: a
    desk's database, key and enrollment cost about a second), served by `hub`."""
    return prepared_sample_hub(request, tmp_path, backend, "kasse-1-enrolled", with_kasse_1)[0]


@pytest.fixture
async def desk(hub):
    folder, db, client = kasse_1(hub)
    node = this_node(db)
    try:
        yield Desk(folder, db, client, node)
    finally:
        await client.close()
        db.close()


def move(hub, desk: Desk, name: str, seat_ids: list[str]) -> None:
    ring_pools.move_ring_seats(hub.db, product(hub, name), seat_ids, desk.pool, utcnow())


def dates(hub, name: str) -> list[str]:
    return [r["performance_id"] for r in hub.db.execute(
        "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position",
        (product(hub, name),))]


def ring_party(hub) -> tuple[dict, list[str]]:
    """A party of two in Abo-Ring A: a pit seat (missing where the pit is covered: a replacement
    there) and a Parkett seat at the pupils' tier. Returns the body and the seats to move."""
    db = hub.db
    pit, parkett = pit_and_parkett(hub)
    other = seat(db, house(hub), "Parkett", "3", "11")
    covered = next(variant_of(db, p) for p in hub.ids["rings"]["A"] if variant_of(db, p) != pit["variant_id"])
    body = {"product_id": product(hub, RING_A), "customer_id": hub.ids["first_customer"], "form": "both",
            "members": [{"seat_ids": [pit["id"]], "replacements": [{"variant_id": covered, "seat_id": parkett["id"]}],
                         "holder_name": "Erika Muster"},
                        {"seat_ids": [other["id"]], "tier_id": tier(db, product(hub, RING_A), "Schüler/Studierende"),
                         "holder_name": "Max Muster"}]}
    return body, [pit["id"], parkett["id"], other["id"]]


async def ring_sold_at_desk(hub, desk: Desk) -> dict:
    body, seats = ring_party(hub)
    move(hub, desk, RING_A, seats)
    await desk.client.round()
    return desk.sell(body)


def hub_ledger(hub, order_id: str) -> dict:
    db = hub.db
    order = db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    subs = db.execute("SELECT * FROM subscriptions WHERE order_id = ? ORDER BY number", (order_id,)).fetchall()
    tickets = db.execute("SELECT id, performance_id, seat_id, zone_id, price_cents, line_id FROM tickets "
                         "WHERE order_id = ? ORDER BY id", (order_id,)).fetchall()
    return {"order": order, "subs": subs, "tickets": tickets}


# --- the desk's sales arrive, the same at the hub ---------------------------------------------------------


async def test_a_ring_party_a_choice_and_a_combi_sold_at_the_desk_are_the_same_at_the_hub(hub, desk):
    db = hub.db
    ring_body, ring_seats = ring_party(hub)
    move(hub, desk, RING_A, ring_seats)
    studio = seat(db, hub.ids["plans"]["Studio"], "Saal", "2", "5")
    move(hub, desk, CHOICE, [studio["id"]])
    combi = dates(hub, COMBI)
    front = seat(db, house(hub), "Parkett", "3", "3")
    studio_back = seat(db, hub.ids["plans"]["Studio"], "Saal", "8", "4")
    move(hub, desk, COMBI, [front["id"], studio_back["id"]])
    await desk.client.round()
    sold = [desk.sell(ring_body),
            desk.sell({"product_id": product(hub, CHOICE), "customer_id": hub.ids["first_customer"],
                       "performance_ids": dates(hub, CHOICE)[:5], "seat_ids": [studio["id"]],
                       "payment_method": "card", "payment_reference": "TID 0815"}),
            desk.sell({"product_id": product(hub, COMBI), "customer_id": hub.ids["first_customer"],
                       "seats": [{"performance_id": combi[0], "seat_id": front["id"]},
                                 {"performance_id": combi[1], "seat_id": front["id"]},
                                 {"performance_id": combi[2], "seat_id": studio_back["id"]}]})]
    issued = [desk.cards_for(s) for s in sold]
    assert [s["total_cents"] for s in sold] == [36800 + 18400, 10000, 5200 * 2 + 1700]
    assert desk.db.execute("SELECT count(*) AS n FROM outbox WHERE kind = 'subscription.sold'").fetchone()["n"] == 3
    assert all(s["number"].startswith("A") and s["subscriptions"][0]["number"].startswith("AB") for s in sold)
    result = await desk.client.round()
    assert result.rejected == 0, conflicts(hub)
    for s, its_cards in zip(sold, issued, strict=True):
        at_hub, at_desk = hub_ledger(hub, s["order_id"]), hub_ledger_of(desk.db, s["order_id"])
        assert at_hub["order"]["number"] == s["number"] and at_hub["order"]["channel"] == "cashdesk"
        assert at_hub["order"]["total_cents"] == s["total_cents"] and at_hub["order"]["delivery"] == "counter"
        assert [dict(t) for t in at_hub["tickets"]] == [dict(t) for t in at_desk["tickets"]]
        fields = ("id", "number", "line_id", "price_cents", "tier_id", "zone_id", "form", "holder_name", "channel")
        assert [[x[f] for f in fields] for x in at_hub["subs"]] == [[x[f] for f in fields] for x in at_desk["subs"]]
        for card in its_cards:
            got = db.execute("SELECT * FROM cards WHERE id = ?", (card["id"],)).fetchone()
            assert got is not None and got["revoked_at"] is None and got["order_item_id"] == card["order_item_id"]
            assert (got["kind"], got["valid_from"], got["valid_until"]) == (card["kind"], card["valid_from"],
                                                                            card["valid_until"])
    ring = hub_ledger(hub, sold[0]["order_id"])
    assert len(ring["tickets"]) == 16 and {t["performance_id"] for t in ring["tickets"]} == set(hub.ids["rings"]["A"])
    assert sorted(x["price_cents"] for x in ring["subs"]) == [18400, 36800]
    assert [c["kind"] for c in issued[0]].count("subscription") == 2  # form both: a pass and 8 tickets each
    assert [c["kind"] for c in issued[0]].count("single") == 16
    assert db.execute("SELECT holder_name FROM cards WHERE id = ?", (issued[0][0]["id"],)).fetchone()["holder_name"] \
        == "Erika Muster"
    first_pass = next(c for c in issued[0] if c["kind"] == "subscription")
    assert {r["performance_id"] for r in db.execute("SELECT performance_id FROM pass_performances WHERE card_id = ?",
                                                    (first_pass["id"],))} == set(hub.ids["rings"]["A"])
    # the hub issues nothing of its own for them: a later call finds them all there
    signer = cards.load_signer(db, hub.dir)
    assert passes.issue_subscription_cards(db, signer, sold[0]["subscriptions"][0]["id"], utcnow()) == []
    # a re-push of everything (a lost answer): duplicates, nothing twice
    before = digest(db)
    desk.db.execute("UPDATE sync_state SET pushed_seq = 0")
    again = await desk.client.round()
    assert again.rejected == 0 and set(results(desk.db)) == {"duplicate"}
    assert digest(db) == before


def hub_ledger_of(db, order_id: str) -> dict:
    class Side:
        pass
    side = Side()
    side.db = db
    return hub_ledger(side, order_id)


# --- attacks: each a conflict that changes nothing ------------------------------------------------------


def _forge_price(body: dict) -> None:
    t = body["members"][0]["tickets"][0]
    t["price_cents"] += 500
    body["members"][0]["price_cents"] += 500
    body["total_cents"] += 500


def _forge_total(body: dict) -> None:
    body["total_cents"] -= 100


def _drop_ticket(body: dict) -> None:
    dropped = body["members"][0]["tickets"].pop()
    body["members"][0]["price_cents"] -= dropped["price_cents"]
    body["total_cents"] -= dropped["price_cents"]


def _hub_series_number(body: dict) -> None:
    body["members"][1]["number"] = f"ABO-{utcnow().year}-000999"


def _other_order_series(body: dict) -> None:
    body["number"] = "A000000-2026-000001"


def _unknown_field(body: dict) -> None:
    body["members"][0]["discount_cents"] = 1000


TAMPERED = {
    "forged-price": (_forge_price, "costs|derives"),
    "forged-total": (_forge_total, "total"),
    "ticket-missing-from-ring": (_drop_ticket, "derives"),
    "number-of-the-hubs-series": (_hub_series_number, "series"),
    "order-number-of-another-node": (_other_order_series, "series"),
    "unknown-field": (_unknown_field, "malformed"),
}


@pytest.mark.parametrize("attack", list(TAMPERED))
async def test_a_tampered_sale_op_is_a_conflict_that_changes_nothing(hub, desk, attack):
    change, reason = TAMPERED[attack]
    await ring_sold_at_desk(hub, desk)
    tamper(desk.db, "subscription.sold", change)
    before = digest(hub.db)
    result = await desk.client.round()
    assert result.rejected == 1
    (conflict,) = conflicts(hub)
    assert conflict["kind"] == "subscription.sold"
    assert any(word in conflict["reason"] for word in reason.split("|")), conflict["reason"]
    assert digest(hub.db) == before


async def test_the_hub_state_decides_pool_sold_seat_and_tier(hub, desk):
    """Seat no longer in the desk's pool at the hub, a seat sold meanwhile, a tier the office
    deactivated: each a conflict; nothing of the sale is stored."""
    body, seats = ring_party(hub)
    move(hub, desk, RING_A, seats)
    await desk.client.round()
    pit, parkett = pit_and_parkett(hub)
    ring = hub.ids["rings"]["A"]
    desk.sell(body)
    with transaction(hub.db):  # behind the desk's back: the pit seat of one performance leaves its pool
        hub.db.execute("DELETE FROM seat_pools WHERE seat_id = ? AND performance_id = ?",
                       (pit["id"], next(p for p in ring if variant_of(hub.db, p) == pit["variant_id"])))
    body2 = dict(body, members=[body["members"][1]])  # the Parkett seat, a second sale on another seat
    other = seat(hub.db, house(hub), "Parkett", "3", "12")
    move(hub, desk, RING_A, [other["id"]])
    await desk.client.round()  # the first sale is refused here
    # not in this desk's pool at the hub: not free for this desk in every performance of the ring
    assert conflicts(hub)[-1]["kind"] == "subscription.sold" and "not free" in conflicts(hub)[-1]["reason"]
    body2["members"] = [dict(body["members"][1], seat_ids=[other["id"]])]
    desk.sell(body2)
    hub_node = this_node(hub.db)
    sell_seats(hub.db, hub_node, SaleIn(performance_id=ring[4], seat_ids=[other["id"]], payment_method="cash"),
               pool=desk.pool, channel="phone", now=utcnow())
    before = digest(hub.db)
    await desk.client.round()
    assert "seat 12 is not free" in conflicts(hub)[-1]["reason"], conflicts(hub)[-1]
    assert digest(hub.db) == before
    # a tier the office deactivated after the desk's last pull
    third = seat(hub.db, house(hub), "Parkett", "3", "13")
    move(hub, desk, RING_A, [third["id"]])
    await desk.client.round()
    desk.sell(dict(body2, members=[dict(body["members"][1], seat_ids=[third["id"]])]))
    with transaction(hub.db):
        hub.db.execute("UPDATE discount_tiers SET active = 0 WHERE id = ?", (body["members"][1]["tier_id"],))
    before = digest(hub.db)
    await desk.client.round()
    assert "deactivated" in conflicts(hub)[-1]["reason"], conflicts(hub)[-1]
    assert digest(hub.db) == before
    assert hub.db.execute("SELECT count(*) AS n FROM subscriptions").fetchone()["n"] == 0


async def test_a_tier_of_another_product_and_an_op_node_of_another_node_are_refused(hub, desk):
    await ring_sold_at_desk(hub, desk)
    op = json.loads(desk.db.execute("SELECT body FROM outbox WHERE kind = 'subscription.sold'").fetchone()["body"])
    desk.db.execute("DELETE FROM outbox")
    other_tier = tier(hub.db, product(hub, "Abo-Ring B"), "Schüler/Studierende")
    inject(desk.db, "subscription.sold", dict(op, members=[dict(op["members"][0]),
                                                              dict(op["members"][1], tier_id=other_tier)]))
    inject(desk.db, "subscription.sold", dict(op, node_id=this_node(hub.db)["id"]))
    before = digest(hub.db)
    result = await desk.client.round()
    assert result.rejected == 2
    reasons = [c["reason"] for c in conflicts(hub)]
    assert "another product" in reasons[0] and "another node" in reasons[1], reasons
    assert digest(hub.db) == before


@pytest.mark.parametrize("role", ["counter", "gate"])
async def test_a_counter_or_gate_may_not_push_a_subscription_sale(hub, desk, tmp_path, role):
    await ring_sold_at_desk(hub, desk)
    op = json.loads(desk.db.execute("SELECT body FROM outbox WHERE kind = 'subscription.sold'").fetchone()["body"])
    venue = [hub.ids["museum_venues"]["Stadtmuseum"]] if role == "gate" else None
    _, db, client = await enrolled(hub, tmp_path, role=role, name=f"{role} 9", venues=venue)
    try:
        node_id = this_node(db)["id"]
        inject(db, "subscription.sold", dict(op, node_id=node_id))
        before = digest(hub.db)
        result = await client.round()
        assert result.rejected == 1 and f"a {role} node may not send" in conflicts(hub)[-1]["reason"]
        assert digest(hub.db) == before
    finally:
        await client.close()


# --- the desk's cards ------------------------------------------------------------------------------------


async def test_a_single_ticket_for_a_line_the_desk_did_not_sell_is_refused_and_kept_revoked(hub, desk):
    """The line is a subscription the hub sold: refused; the genuinely signed code is kept revoked."""
    from tests.test_subscription_sale import sale, sell
    pit, _ = pit_and_parkett(hub)
    others = sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"],
                            seat_ids=[seat(hub.db, house(hub), "Parkett", "5", "5")["id"]]), now=utcnow())
    await desk.client.round()
    perf = hub.ids["rings"]["B"][0]
    signer = cards.load_signer(desk.db, desk.folder)
    card = cards.issue_card(desk.db, signer, product_id=perf, kind="single", now=utcnow(),
                            details={"order_item_id": others["line_id"], "delivery": "counter"})
    before = digest(hub.db)
    result = await desk.client.round()
    assert result.rejected == 1 and "not a subscription this node sold" in conflicts(hub)[-1]["reason"]
    kept = hub.db.execute("SELECT * FROM cards WHERE id = ?", (card["id"],)).fetchone()
    assert kept["revoked_at"] and kept["order_item_id"] is None and kept["customer_id"] is None
    after = digest(hub.db)
    assert {t for t in after if after[t] != before[t]} == {"cards", "changes"}  # the card, and its feed row


async def test_a_pass_valid_longer_than_its_subscription_is_refused(hub, desk):
    sold = await ring_sold_at_desk(hub, desk)
    sub = sold["subscriptions"][0]
    signer = cards.load_signer(desk.db, desk.folder)
    held = passes.seats(desk.db, sub["line_id"])
    long = cards.issue_card(desk.db, signer, product_id=sub["product_id"], kind="subscription", now=utcnow(),
                            holder_name="Erika Muster", valid_from=parse_iso(iso(held[0].starts_at)).replace(hour=0),
                            valid_until=day_end(held[-1].starts_at.date() + dt.timedelta(days=30)),
                            details={"order_item_id": sub["line_id"], "delivery": "counter"})
    result = await desk.client.round()
    assert result.rejected == 1, conflicts(hub)
    assert "validity" in conflicts(hub)[-1]["reason"]
    assert hub.db.execute("SELECT revoked_at FROM cards WHERE id = ?", (long["id"],)).fetchone()["revoked_at"]
    # the sale itself is there; the right pass, issued now, is accepted
    assert hub.db.execute("SELECT 1 FROM subscriptions WHERE id = ?", (sub["id"],)).fetchone()
    with transaction(desk.db):
        desk.db.execute("UPDATE cards SET revoked_at = ? WHERE id = ?", (iso(utcnow()), long["id"]))
    good = [c for c in passes.issue_subscription_cards(desk.db, signer, sub["id"], utcnow())
            if c["kind"] == "subscription"]
    assert len(good) == 1
    assert (await desk.client.round()).rejected == 0, conflicts(hub)
    row = hub.db.execute("SELECT revoked_at, holder_name FROM cards WHERE id = ?", (good[0]["id"],)).fetchone()
    assert row["revoked_at"] is None and row["holder_name"] == "Erika Muster"


async def test_a_refused_sales_cards_end_up_revoked_at_the_hub(hub, desk):
    sold = await ring_sold_at_desk(hub, desk)
    issued = desk.cards_for(sold)
    ring = hub.ids["rings"]["A"]
    other = sold["subscriptions"][1]["tickets"][0]
    sell_seats(hub.db, this_node(hub.db), SaleIn(performance_id=other["performance_id"], seat_ids=[other["seat_id"]],
                                                 payment_method="cash"), pool=desk.pool, channel="phone", now=utcnow())
    await desk.client.round()
    kinds = [c["kind"] for c in conflicts(hub)]
    assert kinds == ["subscription.sold"] + ["card.issued"] * len(issued), kinds
    for card in issued:
        row = hub.db.execute("SELECT revoked_at, order_item_id FROM cards WHERE id = ?", (card["id"],)).fetchone()
        assert row["revoked_at"] and row["order_item_id"] is None
    sold_there = [r["performance_id"] for r in hub.db.execute("SELECT performance_id FROM tickets WHERE seat_id = ?",
                                                              (other["seat_id"],)) if r["performance_id"] in ring]
    assert sold_there == [other["performance_id"]]  # only the hub's own sale: none of the refused ring
    # after the next pull the desk knows its cards are revoked (its gates refuse them)
    await desk.client.round()
    assert all(desk.db.execute("SELECT revoked_at FROM cards WHERE id = ?", (c["id"],)).fetchone()["revoked_at"]
               for c in issued)
