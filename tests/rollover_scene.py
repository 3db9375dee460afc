"""The rollover scene the rollover tests share: the sample theatre's 2026/27 season with sold
subscriptions of every kind and fate, and its next season 2027/28 with a renamed tier, a new plan
variant that removes seats, a seat whose price zone changed, and the Studio on a new plan.

Everything is made through the hub's own code (API for the catalog, `sale.sell_subscriptions` for
the sales, `records` for cancel and pause), so the rollover meets what the office really makes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from core.base.node import this_node
from core.payments import debits, mandates, sepa
from core.subscriptions import records
from core.subscriptions.sale import sell_subscriptions
from hub import sample_next_season
from hub.app import make_app
from hub.client import LocalClient
from tests.conftest import prepared_sample_hub
from tests.test_subscription_sale import GENERAL, house, product, sale, seat, tier

NOW = dt.datetime(2027, 3, 1, 10, 0, tzinfo=dt.UTC)  # the rollover: after the season's cancellation deadline
CREDITOR_IBAN = "DE89370400440532013000"
DEBTOR_IBAN = "DE02120300000000202051"


@dataclass
class Scene:
    hub: object
    new: dict
    subs: dict[str, dict] = field(default_factory=dict)  # role -> the old subscription
    customers: list[str] = field(default_factory=list)


def _customers(db, count: int) -> list[str]:
    return [r["id"] for r in db.execute("SELECT id FROM customers ORDER BY number LIMIT ?", (count,))]


def _sell(hub, prod_name: str, customer: str, **kw) -> dict:
    body = sale(product(hub, prod_name), customer, **kw)
    return sell_subscriptions(hub.db, this_node(hub.db), body, channel="phone", now=GENERAL)


def build(hub) -> Scene:
    """The scene on a copy of the sample hub (see the module's docstring for what is in it)."""
    db = hub.db
    client = LocalClient(make_app(db))
    new = sample_next_season.build(client, hub.ids)
    scene = Scene(hub, new, customers=_customers(db, 12))
    c = scene.customers
    plan = house(hub)

    def chair(row: str, label: str, section: str = "Parkett") -> str:
        return seat(db, plan, section, row, label)["id"]

    def one(role: str, prod_name: str, customer: str, **kw) -> None:
        scene.subs[role] = _sell(hub, prod_name, customer, **kw)["subscriptions"][0]

    one("kept", "Abo-Ring A", c[0], seat_ids=[chair("10", "5")], payment_method="sepa")
    one("cancelled", "Abo-Ring A", c[1], seat_ids=[chair("10", "6")])
    one("tier_renamed", "Abo-Ring B", c[2], seat_ids=[chair("11", "7")],
        tier_id=tier(db, product(hub, "Abo-Ring B"), "Schüler/Studierende"))
    one("moved", "Abo-Ring C", c[3], seat_ids=[chair("12", "8")])
    one("wheelchair", "Abo-Ring C", c[4], seat_ids=[chair("20", "1")])
    one("paused", "Abo-Ring B", c[5], seat_ids=[chair("11", "8")])
    one("zone", "Abo-Ring B", c[6], seat_ids=[chair("9", "1")])
    studio = hub.ids["plans"]["Studio"]
    choice = product(hub, "Wahl-Abo Studio 5 aus 8")
    dates = [r["performance_id"] for r in db.execute(
        "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position", (choice,))]
    one("choice", "Wahl-Abo Studio 5 aus 8", c[7], performance_ids=dates[1:6],
        seat_ids=[seat(db, studio, "Saal", "3", "3")["id"]])
    combi = product(hub, "Kombi-Ticket Klassiker")
    combi_dates = [r["performance_id"] for r in db.execute(
        "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position", (combi,))]
    one("combi", "Kombi-Ticket Klassiker", c[8], seats=[
        {"performance_id": combi_dates[0], "seat_id": chair("4", "4")},
        {"performance_id": combi_dates[1], "seat_id": chair("4", "4")},
        {"performance_id": combi_dates[2], "seat_id": seat(db, studio, "Saal", "2", "2")["id"]}])
    party = _sell(hub, "Abo-Ring A", c[9], members=[{"seat_ids": [chair("14", "9")], "holder_name": "Eva Party"},
                                                    {"seat_ids": [chair("14", "10")], "holder_name": "Jan Party"}])
    scene.subs["party_1"], scene.subs["party_2"] = party["subscriptions"]
    one("voucher", "Wahlgutschein 6er", c[10])
    records.set_state(db, scene.subs["cancelled"]["id"], "cancelled", GENERAL)
    records.set_state(db, scene.subs["paused"]["id"], "paused", GENERAL)
    _next_season_changes(scene, client, plan, chair)
    _mandate_with_collected_frst(scene)
    return scene


def scene_hub(request, tmp_path, backend):
    """For a module's `sample_hub` fixture: a private copy of the sample hub with the scene on it,
    the scene built once per test process and backend and copied for each test (its `api` and
    `hub` serve that copy); `hub.scene` is the Scene."""
    hub, (new, subs, customers) = prepared_sample_hub(request, tmp_path, backend, "rollover-scene", _parts)
    hub.scene = Scene(hub, new, subs, customers)
    return hub


def _parts(hub) -> tuple[dict, dict, list[str]]:
    scene = build(hub)
    return scene.new, scene.subs, scene.customers


def _next_season_changes(scene: Scene, client: LocalClient, plan: str, chair) -> None:
    """Renamed tier (Ring B), a new variant removing Parkett 12/8 and the wheelchair place 20/1 at
    the first date of Ring C, and Parkett 9/1 moved to price zone 1."""
    db, new = scene.hub.db, scene.new
    ring_b = new["products"]["Abo-Ring B"]
    renamed = tier(db, ring_b, "Schüler/Studierende")
    client.call("PATCH", f"/discount-tiers/{renamed}", {"name": "Schüler und Studierende"})
    variant = client.call("POST", f"/seating-plans/{plan}/variants", {
        "name": "Rampe 2027/28", "remove": [{"section": "Parkett", "row": "12", "seats": ["8"]},
                                           {"section": "Parkett", "row": "20", "seats": ["1"]}]})
    first_c = new["performances"][scene.hub.ids["rings"]["C"][0]]
    client.call("PATCH", f"/performances/{first_c}", {"variant_id": variant["id"]})
    scene.new["variant"] = variant["id"]
    client.call("PATCH", f"/seating-plans/{plan}/seats/{chair('9', '1')}", {"zone": "1"})


def _mandate_with_collected_frst(scene: Scene) -> None:
    """The kept subscriber pays by SEPA: a recurring mandate whose FRST debit (the old order) was collected."""
    db, hub = scene.hub.db, scene.hub
    org = hub.ids["theatre_organizer"]
    mandates.set_creditor_account(db, org, mandates.CreditorAccountIn(iban=CREDITOR_IBAN, bic="COBADEFFXXX"), GENERAL)
    customer = scene.subs["kept"]["customer_id"]
    mandate = mandates.create(db, mandates.MandateIn(organizer_id=org, customer_id=customer, reference="ABO-ROLL-1",
                                                     iban=DEBTOR_IBAN, signed_on=GENERAL.date()), GENERAL)
    debit = debits.create_from_order(db, debits.DebitIn(order_id=scene.subs["kept"]["order_id"],
                                                        mandate_id=mandate["id"]), GENERAL)
    sepa.export(db, org, GENERAL)
    debits.mark_collected(db, debit["id"], GENERAL + dt.timedelta(days=20))
    scene.subs["kept"]["mandate_id"] = mandate["id"]


def many(scene: Scene, count: int, rings: tuple[str, ...] = ("B", "C")) -> int:
    """*count* more ring subscriptions (parties of 20, one customer each) on base seats still free in
    the old season, neither wheelchair nor companion seats; returns how many were sold."""
    hub, db = scene.hub, scene.hub.db
    customers = _customers(db, 200)
    sold = 0
    for ring in rings:
        taken = {r["seat_id"] for r in db.execute("SELECT seat_id FROM tickets WHERE performance_id = ? "
                                                  "AND status = 'sold'", (hub.ids["rings"][ring][0],))}
        free = [r["id"] for r in db.execute(
            "SELECT id FROM seats WHERE plan_id = ? AND variant_id IS NULL AND wheelchair = 0 AND companion = 0 "
            "AND active = 1 ORDER BY id", (house(hub),)) if r["id"] not in taken]
        for start in range(0, len(free), 20):
            batch = free[start:start + min(20, count - sold)]
            if not batch:
                return sold
            _sell(hub, f"Abo-Ring {ring}", customers[(sold // 20) % len(customers)],
                  members=[{"seat_ids": [s]} for s in batch])
            sold += len(batch)
    return sold
