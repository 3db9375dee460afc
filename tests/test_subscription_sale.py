"""Selling subscriptions at the hub (issue 13): a ring across two plan variants with a replacement
seat, a choice N of M, a combi priced per performance, tiers (complimentary too), sale windows on a
fixed clock, holds of others refused and one's own converted, the database as the last word, 20
threads with their own SQLite connections racing for one ring's seats, hostile input, and kill -9
of a process selling in a loop. Real SQLite files of a copy of the sample hub; the API over HTTP."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import msgspec
import pytest

from core.base import sql
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.node import this_node
from core.subscriptions import holds
from core.subscriptions.sale import SubscriptionSaleIn, sell_subscription
from hub.app import open_database
from tests.helpers import call, problem, table_counts

ROOT = Path(__file__).resolve().parents[1]
GENERAL = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)  # general sale of the sample's products
RENEWAL = dt.datetime(2026, 4, 1, 10, 0, tzinfo=dt.UTC)  # the renewal presale
CLOSED = dt.datetime(2026, 2, 1, 10, 0, tzinfo=dt.UTC)  # before any window
RING_A_PRICE = {"1": 36800, "2": 29400}


# --- helpers (the other subscription test files use them too) -------------------------------------------


def seat(db, plan_id: str, section: str, row: str, label: str) -> dict:
    return db.execute("SELECT s.* FROM seats s JOIN plan_sections c ON c.id = s.section_id WHERE s.plan_id = ? "
                      "AND c.name = ? AND s.row_label = ? AND s.label = ?", (plan_id, section, row, label)).fetchone()


def house(hub) -> str:
    return hub.ids["plans"]["Großes Haus"]


def variant_of(db, performance_id: str) -> str:
    return db.execute("SELECT variant_id FROM performances WHERE id = ?", (performance_id,)).fetchone()["variant_id"]


def product(hub, name: str) -> str:
    return hub.ids["subscriptions"][name]


def tier(db, product_id: str, name: str) -> str:
    return db.execute("SELECT id FROM discount_tiers WHERE product_id = ? AND name = ?",
                      (product_id, name)).fetchone()["id"]


def sale(product_id: str, customer_id: str, **kw) -> SubscriptionSaleIn:
    return msgspec.convert({"product_id": product_id, "customer_id": customer_id, "payment_method": "transfer",
                            **kw}, SubscriptionSaleIn)


def sell(hub, body: SubscriptionSaleIn, *, now: dt.datetime = GENERAL, channel: str = "phone", **kw) -> dict:
    return sell_subscription(hub.db, this_node(hub.db), body, channel=channel, now=now, **kw)


def tickets_of(db, line_id: str) -> list[dict]:
    return db.execute("SELECT * FROM tickets WHERE line_id = ? AND status = 'sold' ORDER BY performance_id",
                      (line_id,)).fetchall()


def ledger(db) -> dict[str, int]:
    counts = table_counts(db)
    return {t: counts[t] for t in ("orders", "order_lines", "tickets", "subscriptions", "payments", "seat_holds")}


def pit_and_parkett(hub) -> tuple[dict, dict]:
    """A pit seat (only in 'Orchestergraben überbaut') and a Parkett seat of the same zone (in every variant)."""
    db = hub.db
    pit = seat(db, house(hub), "Parkett", "A", "5")
    parkett = seat(db, house(hub), "Parkett", "3", "9")
    assert pit["variant_id"] and parkett["variant_id"] is None and pit["zone_id"] == parkett["zone_id"]
    return pit, parkett


# --- ring across two plan variants -----------------------------------------------------------------------


def test_a_ring_across_two_variants_gets_the_same_seat_everywhere_and_a_replacement_where_it_is_missing(
        sample_hub):
    hub, db = sample_hub, sample_hub.db
    ring = hub.ids["rings"]["A"]
    variants = {variant_of(db, p) for p in ring}
    assert len(variants) == 2  # pit open for the operas, pit covered for the plays
    pit, parkett = pit_and_parkett(hub)
    body = sale(product(hub, "Abo-Ring A"), hub.ids["first_customer"], seat_ids=[pit["id"]])
    standard = next(v for v in variants if v != pit["variant_id"])
    with pytest.raises(ValidationError, match="replacement") as refused:
        sell(hub, body)
    assert refused.value.extra["variant_id"] == standard and refused.value.extra["suggestion"]
    before = ledger(db)
    sub = sell(hub, sale(product(hub, "Abo-Ring A"), hub.ids["first_customer"], seat_ids=[pit["id"]],
                         replacements=[{"variant_id": standard, "seat_id": parkett["id"]}]))
    tickets = tickets_of(db, sub["line_id"])
    assert len(tickets) == len(ring) == 8
    for t in tickets:
        expected = pit["id"] if variant_of(db, t["performance_id"]) == pit["variant_id"] else parkett["id"]
        assert t["seat_id"] == expected
    assert sub["price_cents"] == RING_A_PRICE["1"] == sum(t["price_cents"] for t in tickets)
    assert sub["number"].startswith(f"ABO-{GENERAL.year}-") and sub["form"] in ("pass", "single_tickets", "both")
    line = db.execute("SELECT * FROM order_lines WHERE id = ?", (sub["line_id"],)).fetchone()
    assert line["kind"] == "subscription" and line["price_cents"] == sub["price_cents"]
    after = ledger(db)
    assert {k: after[k] - before[k] for k in after} == {"orders": 1, "order_lines": 1, "tickets": 8,
                                                        "subscriptions": 1, "payments": 1, "seat_holds": 0}
    # the seats are now taken in every performance: a second ring on the same seat is refused, nothing stored
    with pytest.raises(Conflict, match="Parkett row A seat 5"):
        sell(hub, sale(product(hub, "Abo-Ring A"), hub.ids["first_customer"], seat_ids=[pit["id"]],
                       replacements=[{"variant_id": standard,
                                      "seat_id": seat(db, house(hub), "Parkett", "3", "10")["id"]}]))
    assert ledger(db) == after


def test_a_ring_seat_in_every_variant_needs_no_replacement_and_a_superfluous_one_is_refused(sample_hub):
    hub, db = sample_hub, sample_hub.db
    pit, parkett = pit_and_parkett(hub)
    body = dict(seat_ids=[parkett["id"]], replacements=[{"variant_id": pit["variant_id"], "seat_id": pit["id"]}])
    with pytest.raises(ValidationError, match="not needed"):
        sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"], **body))
    sub = sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"], seat_ids=[parkett["id"]]))
    assert {t["seat_id"] for t in tickets_of(db, sub["line_id"])} == {parkett["id"]}


def test_a_companion_seat_is_never_sold_alone_and_a_wheelchair_place_is_sold(sample_hub):
    """S8: the companion seat beside a wheelchair place goes only with it; the place itself sells."""
    hub, db = sample_hub, sample_hub.db
    companion = db.execute("SELECT * FROM seats WHERE plan_id = ? AND companion = 1 AND variant_id IS NULL "
                           "ORDER BY id LIMIT 1", (house(hub),)).fetchone()
    wheelchair = db.execute("SELECT * FROM seats WHERE plan_id = ? AND wheelchair = 1 AND variant_id IS NULL "
                            "ORDER BY id LIMIT 1", (house(hub),)).fetchone()
    assert companion and wheelchair, "the sample house has wheelchair places with companion seats"
    before = ledger(db)
    with pytest.raises((ValidationError, Conflict), match="(?i)companion"):
        sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"], seat_ids=[companion["id"]]))
    assert ledger(db) == before
    sub = sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"], seat_ids=[wheelchair["id"]]))
    assert {t["seat_id"] for t in tickets_of(db, sub["line_id"])} == {wheelchair["id"]}


# --- choice and combi ------------------------------------------------------------------------------------


def test_a_choice_takes_exactly_n_of_the_m_dates_then_one_seat_free_in_all_of_them(sample_hub):
    hub, db = sample_hub, sample_hub.db
    prod = product(hub, "Wahl-Abo Studio 5 aus 8")
    pool = db.execute("SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position",
                      (prod,)).fetchall()
    dates = [r["performance_id"] for r in pool]
    studio = hub.ids["plans"]["Studio"]
    chair = seat(db, studio, "Saal", "2", "5")
    with pytest.raises(ValidationError, match="exactly 5"):
        sell(hub, sale(prod, hub.ids["first_customer"], performance_ids=dates[:4], seat_ids=[chair["id"]]))
    # the seat is sold for one of the chosen dates already: not free in all of them
    taken = sell(hub, sale(prod, hub.ids["first_customer"], performance_ids=dates[:5], seat_ids=[chair["id"]]))
    assert len(tickets_of(db, taken["line_id"])) == 5 and taken["price_cents"] == 10000
    with pytest.raises(Conflict, match="Saal row 2 seat 5"):
        sell(hub, sale(prod, hub.ids["first_customer"], performance_ids=dates[4:7] + dates[:2], seat_ids=[chair["id"]]))
    # other dates on the neighbouring seat
    rest = sell(hub, sale(prod, hub.ids["first_customer"], performance_ids=dates[3:8], seat_ids=[
        seat(db, studio, "Saal", "2", "6")["id"]]))
    assert sorted(t["performance_id"] for t in tickets_of(db, rest["line_id"])) == sorted(dates[3:8])


def test_a_combi_is_priced_per_performance_in_each_seats_zone(sample_hub):
    hub, db = sample_hub, sample_hub.db
    prod = product(hub, "Kombi-Ticket Klassiker")
    perfs = [r["performance_id"] for r in db.execute(
        "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position", (prod,))]
    zones = {z: hub.ids["zones"][z] for z in ("1", "2")}
    front = seat(db, house(hub), "Parkett", "3", "3")  # zone 1
    back = seat(db, house(hub), "Parkett", "12", "3")  # zone 2
    studio = seat(db, hub.ids["plans"]["Studio"], "Saal", "8", "4")  # zone 2
    assert (front["zone_id"], back["zone_id"], studio["zone_id"]) == (zones["1"], zones["2"], zones["2"])
    picks = [{"performance_id": perfs[0], "seat_id": front["id"]}, {"performance_id": perfs[1], "seat_id": back["id"]},
             {"performance_id": perfs[2], "seat_id": studio["id"]}]
    sub = sell(hub, sale(prod, hub.ids["first_customer"], seats=picks))
    tickets = {t["performance_id"]: t for t in tickets_of(db, sub["line_id"])}
    assert sub["price_cents"] == 5200 + 4100 + 1700 and sub["zone_id"] is None
    assert [tickets[p]["price_cents"] for p in perfs] == [5200, 4100, 1700]
    with pytest.raises(ValidationError, match="exactly one seat"):
        sell(hub, sale(prod, hub.ids["first_customer"], seats=picks[:2]))


@pytest.mark.parametrize(("tier_name", "price"), [(None, 29400), ("Schüler/Studierende", 14700),
                                                  ("Frühbucher", 27400), ("Ehrenkarte", 0)])
def test_tiers_price_the_ring_from_the_catalog_and_complimentary_costs_nothing(sample_hub, tier_name, price):
    hub, db = sample_hub, sample_hub.db
    prod = product(hub, "Abo-Ring C")
    chair = seat(db, house(hub), "Parkett", "12", "10")  # zone 2
    tier_id = tier(db, prod, tier_name) if tier_name else None
    sub = sell(hub, sale(prod, hub.ids["first_customer"], seat_ids=[chair["id"]], tier_id=tier_id))
    tickets = tickets_of(db, sub["line_id"])
    assert sub["price_cents"] == price == sum(t["price_cents"] for t in tickets)
    assert max(t["price_cents"] for t in tickets) - min(t["price_cents"] for t in tickets) <= price % 8 + 1
    order = db.execute("SELECT * FROM orders WHERE id = ?", (sub["order_id"],)).fetchone()
    assert order["total_cents"] == price


# --- sale windows ----------------------------------------------------------------------------------------


def test_renewal_presale_is_for_subscribers_only_and_outside_every_window_nothing_is_sold(sample_hub):
    hub, db = sample_hub, sample_hub.db
    prod = product(hub, "Abo-Ring A")
    chair = seat(db, house(hub), "Parkett", "4", "4")
    customer = hub.ids["first_customer"]
    before = ledger(db)
    with pytest.raises(Conflict, match="outside its sale windows"):
        sell(hub, sale(prod, customer, seat_ids=[chair["id"]]), now=CLOSED)
    with pytest.raises(Conflict, match="renewal presale"):
        sell(hub, sale(prod, customer, seat_ids=[chair["id"]]), now=RENEWAL)
    assert ledger(db) == before
    _make_last_season_subscriber(hub, customer)
    sub = sell(hub, sale(prod, customer, seat_ids=[chair["id"]]), now=RENEWAL)
    assert sub["state"] == "active"


def _make_last_season_subscriber(hub, customer: str) -> None:
    """A subscription of the same organizer in the season before (2025/26), sold in its own time."""
    db = hub.db
    org = hub.ids["theatre_organizer"]
    old_season = call_local(hub, "POST", "/seasons", {"organizer_id": org, "name": "2025/26",
                                                      "starts_on": "2025-09-01", "ends_on": "2026-07-15"})
    ring = hub.ids["rings"]["A"][:1]
    perf = db.execute("SELECT * FROM performances WHERE id = ?", (ring[0],)).fetchone()
    old_perf = call_local(hub, "POST", "/performances", {
        "venue_id": perf["venue_id"], "variant_id": perf["variant_id"], "season_id": old_season["id"],
        "title": "Alte Spielzeit", "starts_at": "2025-10-01T19:30:00+02:00",
        "prices": [{"zone_id": z, "price_cents": 1000} for z in hub.ids["zones"].values()]})
    old = call_local(hub, "POST", "/subscription-products", {
        "organizer_id": org, "season_id": old_season["id"], "name": "Abo-Ring A 2025/26", "title": "Alt",
        "kind": "ring", "performance_ids": [old_perf["id"]],
        "zone_prices": [{"zone_id": z, "price_cents": 5000} for z in hub.ids["zones"].values()]})
    chair = seat(db, house(hub), "Parkett", "6", "6")
    sell(hub, sale(old["id"], customer, seat_ids=[chair["id"]]), now=dt.datetime(2025, 8, 1, tzinfo=dt.UTC))


def call_local(hub, method: str, path: str, body: dict) -> dict:
    from hub.app import make_app
    from hub.client import LocalClient
    return LocalClient(make_app(hub.db)).call(method, path, body)


# --- holds -----------------------------------------------------------------------------------------------


def ring_bookings(hub, seat_id: str, ring: str = "B") -> list[tuple[str, str]]:
    return [(p, seat_id) for p in hub.ids["rings"][ring]]


def test_a_seat_held_by_another_is_refused_and_ones_own_hold_is_converted(sample_hub):
    hub, db = sample_hub, sample_hub.db
    chair = seat(db, house(hub), "Parkett", "7", "7")
    prod = product(hub, "Abo-Ring B")
    held = holds.hold(db, "token:shop-one", ring_bookings(hub, chair["id"]), now=GENERAL)
    before = ledger(db)
    with pytest.raises(Conflict, match="Parkett row 7 seat 7"):
        sell(hub, sale(prod, hub.ids["first_customer"], seat_ids=[chair["id"]]), holder="staff:someone")
    assert ledger(db) == before
    sub = sell(hub, sale(prod, hub.ids["first_customer"], seat_ids=[chair["id"]]), holder="token:shop-one")
    assert len(tickets_of(db, sub["line_id"])) == 8
    assert db.execute("SELECT count(*) AS n FROM seat_holds WHERE hold_id = ?", (held["id"],)).fetchone()["n"] == 0


def test_an_expired_hold_frees_its_seat(sample_hub):
    hub, db = sample_hub, sample_hub.db
    chair = seat(db, house(hub), "Parkett", "7", "8")
    holds.hold(db, "token:shop-one", ring_bookings(hub, chair["id"]), now=GENERAL, ttl=dt.timedelta(minutes=10))
    with pytest.raises(Conflict):
        sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"], seat_ids=[chair["id"]]),
             now=GENERAL + dt.timedelta(minutes=9))
    sub = sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"], seat_ids=[chair["id"]]),
               now=GENERAL + dt.timedelta(minutes=10, seconds=1))
    assert len(tickets_of(db, sub["line_id"])) == 8


# --- the database is the last word -----------------------------------------------------------------------


def _raw_ticket(db, performance_id: str, seat_row: dict) -> None:
    order = db.execute("SELECT id FROM orders LIMIT 1").fetchone()["id"]
    line = db.execute("SELECT id FROM order_lines WHERE order_id = ? LIMIT 1", (order,)).fetchone()["id"]
    with db:
        db.execute("INSERT INTO tickets (id, order_id, line_id, performance_id, seat_id, zone_id, price_cents, "
                   "created_at) VALUES (?, ?, ?, ?, ?, ?, 0, '2026-06-01T10:00:00Z')",
                   (uuid7(), order, line, performance_id, seat_row["id"], seat_row["zone_id"]))


def test_the_triggers_refuse_a_raw_ticket_on_a_held_seat_and_a_hold_on_a_sold_seat(sample_hub):
    hub, db = sample_hub, sample_hub.db
    perf = hub.ids["rings"]["B"][0]
    held_seat, sold_seat = seat(db, house(hub), "Parkett", "9", "1"), seat(db, house(hub), "Parkett", "9", "2")
    sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"], seat_ids=[sold_seat["id"]]))
    holds.hold(db, "staff:x", [(perf, held_seat["id"])], now=GENERAL)
    with pytest.raises(sqlite3.IntegrityError, match="seat is held"):
        _raw_ticket(db, perf, held_seat)
    with pytest.raises(sqlite3.IntegrityError, match="seat is sold"), db:
        db.execute("INSERT INTO seat_holds (performance_id, seat_id, hold_id, holder, expires_at, created_at) "
                   "VALUES (?, ?, 'h', 'staff:y', '2030-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                   (perf, sold_seat["id"]))
    free_seat = seat(db, house(hub), "Parkett", "9", "3")
    with pytest.raises(Conflict, match="Parkett row 9 seat 2 is already sold"):
        holds.hold(db, "staff:y", [(perf, free_seat["id"]), (perf, sold_seat["id"])], now=GENERAL)
    with pytest.raises(Conflict, match="Parkett row 9 seat 1 is held by another"):
        holds.hold(db, "staff:y", [(perf, free_seat["id"]), (perf, held_seat["id"])], now=GENERAL)
    # all or nothing: the free seat was not kept for staff:y by either attempt
    assert db.execute("SELECT count(*) AS n FROM seat_holds WHERE seat_id = ?", (free_seat["id"],)).fetchone()["n"] == 0


# --- concurrency: 20 threads, own connections, the same ring seats ---------------------------------------


def test_twenty_threads_racing_for_the_same_ring_seats_one_wins_per_seat_and_no_ring_is_partial(sample_hub):
    hub = sample_hub
    prod = product(hub, "Abo-Ring B")
    seats_wanted = [seat(hub.db, house(hub), "Parkett", "10", str(n))["id"] for n in (1, 2, 3)]
    node = this_node(hub.db)
    results: list[object] = [None] * 20
    start = threading.Barrier(20)

    def buyer(k: int) -> None:
        db = open_database(hub.dir, migrate=False)  # a connection of its own, as each hub request's
        try:
            body = sale(prod, hub.ids["first_customer"], seat_ids=[seats_wanted[k % 3]])
            start.wait()
            results[k] = sell_subscription(db, node, body, channel="phone", now=GENERAL)["id"]
        except Conflict as exc:
            results[k] = exc
        finally:
            db.close()

    threads = [threading.Thread(target=buyer, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert len(won) == 3 and len(lost) == 17, results
    db = hub.db
    for perf in hub.ids["rings"]["B"]:
        sold = db.execute("SELECT seat_id, count(*) AS n FROM tickets WHERE performance_id = ? AND status = 'sold' "
                          "GROUP BY seat_id", (perf,)).fetchall()
        assert {r["seat_id"] for r in sold} >= set(seats_wanted) and all(r["n"] == 1 for r in sold)
    assert_no_partial_subscription(db)


def assert_no_partial_subscription(db) -> int:
    """Every stored subscription has a sold ticket for every date of its product (ring/combi) or N (choice)."""
    subs = db.execute("SELECT s.*, p.kind, p.pick_count, (SELECT count(*) FROM subscription_performances sp "
                      "WHERE sp.product_id = p.id) AS dates FROM subscriptions s "
                      "JOIN subscription_products p ON p.id = s.product_id").fetchall()
    for sub in subs:
        n = db.execute("SELECT count(*) AS n FROM tickets WHERE line_id = ? AND status = 'sold'",
                       (sub["line_id"],)).fetchone()["n"]
        assert n == (sub["pick_count"] if sub["kind"] == "choice" else sub["dates"]), sub["number"]
    return len(subs)


# --- hostile input ---------------------------------------------------------------------------------------


def test_hostile_sales_are_refused_and_store_nothing(sample_hub):
    hub, db = sample_hub, sample_hub.db
    ring = product(hub, "Abo-Ring A")
    customer = hub.ids["first_customer"]
    studio_seat = seat(db, hub.ids["plans"]["Studio"], "Saal", "1", "1")
    zone1, zone2 = seat(db, house(hub), "Parkett", "3", "1"), seat(db, house(hub), "Parkett", "12", "1")
    pit = seat(db, house(hub), "Parkett", "A", "1")
    standard = next(v for v in {variant_of(db, p) for p in hub.ids["rings"]["A"]} if v != pit["variant_id"])
    before = ledger(db)
    cases = [
        (NotFound, dict(product_id=str(uuid7()), seat_ids=[zone1["id"]])),
        (NotFound, dict(customer_id=str(uuid7()), seat_ids=[zone1["id"]])),
        (ValidationError, dict(seat_ids=[str(uuid7())])),
        (ValidationError, dict(seat_ids=[studio_seat["id"]])),  # a seat of another plan
        (ValidationError, dict(seat_ids=[zone1["id"], zone1["id"]])),  # duplicate
        (ValidationError, dict(seat_ids=[zone1["id"], zone2["id"]])),  # two seats on one plan
        (ValidationError, dict(seat_ids=[])),  # wrong count
        (ValidationError, dict(seat_ids=[pit["id"]],  # replacement in another zone
                               replacements=[{"variant_id": standard, "seat_id": zone2["id"]}])),
        (ValidationError, dict(seat_ids=[zone1["id"]], zone_id=hub.ids["zones"]["2"])),  # zone mismatch
        (ValidationError, dict(seat_ids=[zone1["id"]], tier_id=str(uuid7()))),
        (ValidationError, dict(seat_ids=[zone1["id"]],
                               tier_id=tier(db, product(hub, "Abo-Ring B"), "Ehrenkarte"))),  # another's tier
        (ValidationError, dict(seat_ids=[zone1["id"]], form="pass",  # a form the product does not print
                               product_id=product(hub, "Wahl-Abo Studio 5 aus 8"))),
        (ValidationError, dict(product_id=product(hub, "Wahlgutschein 6er"), seat_ids=[zone1["id"]])),
    ]
    for error, fields in cases:
        fields = {"product_id": ring, "customer_id": customer, **fields}
        with pytest.raises(error):
            sell(hub, sale(**fields))
    assert ledger(db) == before


# --- kill -9 in the middle of sales ----------------------------------------------------------------------

SELLER = """
import datetime as dt, sys
from core.base.node import this_node
from core.subscriptions.sale import SubscriptionSaleIn, sell_subscription
from core.base.errors import Conflict
from hub.app import open_database
db = open_database(sys.argv[1], migrate=False)
node = this_node(db)
product, customer = sys.argv[2], sys.argv[3]
seats = [r["id"] for r in db.execute("SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id "
         "WHERE s.plan_id = ? AND c.name = '1. Rang' ORDER BY s.id", (sys.argv[4],))]
now = dt.datetime(2026, 6, 1, 10, tzinfo=dt.UTC)
for seat in seats:
    try:
        sell_subscription(db, node, SubscriptionSaleIn(product_id=product, customer_id=customer, seat_ids=[seat],
                          payment_method="transfer"), channel="phone", now=now)
    except Conflict:
        continue
    print("sold", flush=True)
"""


@pytest.mark.slow
def test_kill_9_while_selling_leaves_every_stored_subscription_with_all_its_tickets(sample_hub):
    hub = sample_hub
    prod = product(hub, "Abo-Ring B")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for round_ in range(4):
        seller = subprocess.Popen([sys.executable, "-c", SELLER, str(hub.dir), prod, hub.ids["first_customer"],
                                   house(hub)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        for _ in range(2 + round_):  # let it sell a few, then kill it in the middle of the next
            assert seller.stdout.readline().startswith("sold")
        os.kill(seller.pid, signal.SIGKILL)
        seller.wait(timeout=30)
        db = open_database(hub.dir, migrate=False)
        try:
            stored = assert_no_partial_subscription(db)
            orphans = db.execute("SELECT count(*) AS n FROM order_lines l WHERE l.kind = 'subscription' AND NOT "
                                 "EXISTS (SELECT 1 FROM subscriptions s WHERE s.line_id = l.id)").fetchone()["n"]
            assert stored >= 2 + round_ and orphans == 0
            if not sql.is_postgresql(db):  # the SQLite file after the kill (PostgreSQL: the server's WAL)
                assert db.execute("PRAGMA integrity_check").fetchone()["integrity_check"] == "ok"
        finally:
            db.close()


# --- over HTTP ---------------------------------------------------------------------------------------------


async def test_the_staff_api_sells_a_ring_once_per_idempotency_key_and_refuses_a_price_in_the_body(api):
    hub, db = api.hub, api.hub.db
    chair = seat(db, house(hub), "Parkett", "14", "14")
    body = {"product_id": product(hub, "Abo-Ring C"), "customer_id": hub.ids["first_customer"],
            "seat_ids": [chair["id"]], "payment_method": "transfer"}
    before = ledger(db)
    await problem(api, "POST", "/subscriptions", {**body, "price_cents": 1}, status=400, slug="unknown-field",
                  headers={**hub.headers(), "Idempotency-Key": "k-price"})
    await problem(api, "POST", "/subscriptions", body, status=400, slug="idempotency-key-missing")
    assert ledger(db) == before
    headers = {**hub.headers(), "Idempotency-Key": "sale-1"}
    first = await call(api, "POST", "/subscriptions", body, status=201, headers=headers)
    again = await call(api, "POST", "/subscriptions", body, status=201, headers=headers)
    assert first == again and len(first["seats"]) == 8 and first["price_cents"] == 29400
    assert ledger(db)["subscriptions"] == before["subscriptions"] + 1
    lost = await problem(api, "POST", "/subscriptions", body, status=409, slug="conflict",
                         headers={**hub.headers(), "Idempotency-Key": "sale-2"})
    assert "Parkett row 14 seat 14" in lost["detail"]
    best = await call(api, "GET", f"/subscription-products/{body['product_id']}/best-available?count=1"
                      f"&zone_id={chair['zone_id']}", status=200)
    assert best["found"] and len(best["bookings"]) == 8
    assert all(b["seat_id"] != chair["id"] for b in best["bookings"])


# --- agencies and forms ------------------------------------------------------------------------------------


def test_an_agency_sells_released_products_with_tiers_bookable_by_all_from_its_own_contingent(sample_hub):
    from core.sales import contingents
    hub, db = sample_hub, sample_hub.db
    ring = hub.ids["rings"]["A"]
    mine, elsewhere = seat(db, house(hub), "1. Rang", "2", "10"), seat(db, house(hub), "1. Rang", "2", "11")
    for perf in ring:
        contingents.move_seats(db, perf, [mine["id"]], "agency:tok-1", GENERAL)
    prod, customer = product(hub, "Abo-Ring A"), hub.ids["first_customer"]
    as_agency = dict(channel="agency", audience="agency", pool="agency:tok-1", holder="token:tok-1",
                     agency_token="tok-1")
    before = ledger(db)
    with pytest.raises(NotFound):  # not released to agencies
        sell(hub, sale(product(hub, "Abo-Ring B"), customer, seat_ids=[mine["id"]]), **as_agency)
    with pytest.raises(ValidationError, match="unknown discount tier"):  # not bookable by all
        sell(hub, sale(prod, customer, seat_ids=[mine["id"]], tier_id=tier(db, prod, "Ehrenkarte")), **as_agency)
    with pytest.raises(Conflict):  # the hub's seat, not the agency's
        sell(hub, sale(prod, customer, seat_ids=[elsewhere["id"]]), **as_agency)
    with pytest.raises(Conflict):  # the hub cannot sell the agency's seat either
        sell(hub, sale(prod, customer, seat_ids=[mine["id"]]))
    assert ledger(db) == before
    sub = sell(hub, sale(prod, customer, seat_ids=[mine["id"]], tier_id=tier(db, prod, "Schüler/Studierende")),
               **as_agency)
    assert (sub["channel"], sub["agency_token"], sub["price_cents"]) == ("agency", "tok-1", 29400 // 2)
    assert db.execute("SELECT channel FROM orders WHERE id = ?", (sub["order_id"],)).fetchone()["channel"] == "shop"
    assert len(tickets_of(db, sub["line_id"])) == 8


def test_the_form_defaults_to_single_tickets_for_a_transferable_product(sample_hub):
    hub, db = sample_hub, sample_hub.db
    a = sell(hub, sale(product(hub, "Abo-Ring A"), hub.ids["first_customer"],
                       seat_ids=[seat(db, house(hub), "Parkett", "15", "1")["id"]]))
    b = sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"],
                       seat_ids=[seat(db, house(hub), "Parkett", "15", "2")["id"]]))
    c = sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"], form="pass",
                       seat_ids=[seat(db, house(hub), "Parkett", "15", "3")["id"]]))
    assert (a["form"], b["form"], c["form"]) == ("pass", "single_tickets", "pass")


async def test_availability_lists_the_ring_group_with_its_variants_lead_first(api):
    hub = api.hub
    pit, parkett = pit_and_parkett(hub)
    found = await call(api, "GET", f"/subscription-products/{product(hub, 'Abo-Ring A')}/availability", status=200)
    (group,) = found["groups"]
    lead, other = group["variants"]
    assert lead["lead"] and not other["lead"] and other["variant_id"] == pit["variant_id"]
    assert pit["id"] in other["free_seat_ids"] and pit["id"] not in lead["free_seat_ids"]
    assert parkett["id"] in lead["free_seat_ids"] and parkett["id"] in other["free_seat_ids"]
    assert sorted(lead["performance_ids"] + other["performance_ids"]) == sorted(hub.ids["rings"]["A"])
    await problem(api, "GET", f"/subscription-products/{product(hub, 'Abo-Ring A')}/availability?performance_ids=x",
                  status=400, slug="invalid-parameter")
    await problem(api, "GET", f"/subscription-products/{uuid7()}/availability", status=404, slug="not-found")


def test_a_ring_across_two_venues_takes_one_seat_per_seating_plan(sample_hub):
    hub, db = sample_hub, sample_hub.db
    dates = hub.ids["rings"]["C"][:2] + [r["performance_id"] for r in db.execute(
        "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position LIMIT 2",
        (product(hub, "Wahl-Abo Studio 5 aus 8"),))]
    ring = call_local(hub, "POST", "/subscription-products", {
        "organizer_id": hub.ids["theatre_organizer"], "season_id": hub.ids["season"], "name": "Haus und Studio",
        "title": "Zwei Bühnen", "kind": "ring", "performance_ids": dates,
        "zone_prices": [{"zone_id": z, "price_cents": 10001} for z in hub.ids["zones"].values()]})
    house_seat = seat(db, house(hub), "Parkett", "2", "2")
    studio_seat = seat(db, hub.ids["plans"]["Studio"], "Saal", "2", "2")
    before = ledger(db)
    with pytest.raises(ValidationError, match="each seating plan"):
        sell(hub, sale(ring["id"], hub.ids["first_customer"], seat_ids=[house_seat["id"]]))
    assert ledger(db) == before
    sub = sell(hub, sale(ring["id"], hub.ids["first_customer"], seat_ids=[studio_seat["id"], house_seat["id"]]))
    tickets = {t["performance_id"]: t for t in tickets_of(db, sub["line_id"])}
    assert [tickets[d]["seat_id"] for d in dates] == [house_seat["id"]] * 2 + [studio_seat["id"]] * 2
    assert [tickets[d]["price_cents"] for d in dates] == [2501, 2500, 2500, 2500]  # remainder on the first date
