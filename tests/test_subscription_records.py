"""Subscriptions as records (issue 13): found by customer, product, performance, state, number and
name; read with a seat per performance; tier (for the next season: nothing re-priced), form, state
and seats changed, a seat change checked like a sale (taken, held by another, another zone, a
variant without the seat) and done in one transaction or not at all. Core on real SQLite, the
staff API over HTTP."""

from __future__ import annotations

import pytest

from core.base.errors import Conflict, ValidationError
from core.base.ids import uuid7
from core.subscriptions import holds, records
from core.subscriptions.records import SeatChangeIn, SubscriptionChange
from core.subscriptions.sale import ReplacementIn
from tests.helpers import call, problem
from tests.test_subscription_sale import (
    GENERAL,
    house,
    ledger,
    pit_and_parkett,
    product,
    sale,
    seat,
    sell,
    tier,
    variant_of,
)


def sold_seats(db, sub_id: str) -> dict[str, str]:
    return {s["performance_id"]: s["seat_id"] for s in records.get(db, sub_id)["seats"]}


def state_of(db) -> tuple:
    """Everything a refused change must leave as it was."""
    return (ledger(db), db.execute("SELECT id, status, seat_id FROM tickets ORDER BY id").fetchall(),
            db.execute("SELECT * FROM subscriptions ORDER BY id").fetchall())


@pytest.fixture
def ring_b(sample_hub) -> dict:
    hub = sample_hub
    chair = seat(hub.db, house(hub), "Parkett", "11", "5")
    return sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"], seat_ids=[chair["id"]]))


def test_subscriptions_are_found_by_customer_product_performance_state_number_and_name(sample_hub, ring_b):
    hub, db = sample_hub, sample_hub.db
    customer = db.execute("SELECT * FROM customers WHERE id = ?", (hub.ids["first_customer"],)).fetchone()
    other_customer = db.execute("SELECT id FROM customers WHERE id <> ? LIMIT 1", (customer["id"],)).fetchone()["id"]
    other = sell(hub, sale(product(hub, "Abo-Ring C"), other_customer,
                           seat_ids=[seat(db, house(hub), "Parkett", "11", "6")["id"]]))

    def ids(**kw) -> list[str]:
        return [s["id"] for s in records.search(db, **kw)["items"]]

    assert ids(filters={"customer_id": customer["id"]}) == [ring_b["id"]]
    assert ids(filters={"product_id": product(hub, "Abo-Ring C")}) == [other["id"]]
    assert ids(performance_id=hub.ids["rings"]["B"][2]) == [ring_b["id"]]
    assert ids(filters={"number": other["number"]}) == [other["id"]]
    assert ids(q=customer["last_name"][1:].upper()) == [ring_b["id"]]
    assert ids(q="%") == [] and ids(filters={"state": "paused"}) == []
    assert set(ids(filters={"state": "active"})) == {ring_b["id"], other["id"]}
    page = records.search(db, limit=1, offset=1)
    assert page["total"] == 2 and len(page["items"]) == 1
    one = records.get(db, ring_b["id"])
    assert [s["performance_id"] for s in one["seats"]] == hub.ids["rings"]["B"]  # the ring's dates are in order
    assert all(s["label"] == "5" and s["row_label"] == "11" for s in one["seats"])


def test_a_tier_change_is_recorded_for_next_season_and_nothing_is_repriced(sample_hub, ring_b):
    db = sample_hub.db
    pupils = tier(db, ring_b["product_id"], "Schüler/Studierende")
    changed = records.change_tier(db, ring_b["id"], pupils, GENERAL)
    assert changed["tier_id"] == pupils and changed["price_cents"] == ring_b["price_cents"]
    assert sum(s["price_cents"] for s in changed["seats"]) == ring_b["price_cents"]
    before = state_of(db)
    with pytest.raises(ValidationError, match="another product"):
        records.change_tier(db, ring_b["id"], tier(db, product(sample_hub, "Abo-Ring C"), "Ehrenkarte"), GENERAL)
    with pytest.raises(ValidationError, match="unknown"):
        records.change_tier(db, ring_b["id"], str(uuid7()), GENERAL)
    assert state_of(db) == before
    assert records.change_tier(db, ring_b["id"], None, GENERAL)["tier_id"] is None


def test_the_form_changes_as_the_product_allows(sample_hub, ring_b):
    hub, db = sample_hub, sample_hub.db
    assert records.change_form(db, ring_b["id"], "both", GENERAL)["form"] == "both"
    choice = product(hub, "Wahl-Abo Studio 5 aus 8")
    dates = [r["performance_id"] for r in db.execute(
        "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position", (choice,))]
    sub = sell(hub, sale(choice, hub.ids["first_customer"], performance_ids=dates[:5],
                         seat_ids=[seat(db, hub.ids["plans"]["Studio"], "Saal", "3", "3")["id"]]))
    assert sub["form"] == "single_tickets"
    with pytest.raises(ValidationError, match="single_tickets, not pass"):
        records.change_form(db, sub["id"], "pass", GENERAL)


def test_a_seat_change_for_one_performance_cancels_the_old_ticket_and_sells_the_new_at_its_price(sample_hub, ring_b):
    hub, db = sample_hub, sample_hub.db
    perf = hub.ids["rings"]["B"][3]
    new = seat(db, house(hub), "Parkett", "11", "7")
    old_price = {s["performance_id"]: s["price_cents"] for s in records.get(db, ring_b["id"])["seats"]}
    changed = records.change_seats(db, ring_b["id"], SeatChangeIn(seat_id=new["id"], performance_id=perf),
                                   now=GENERAL)
    seats = {s["performance_id"]: s for s in changed["seats"]}
    assert seats[perf]["seat_id"] == new["id"] and seats[perf]["price_cents"] == old_price[perf]
    assert sum(1 for s in seats.values() if s["seat_id"] == new["id"]) == 1
    cancelled = db.execute("SELECT * FROM tickets WHERE line_id = ? AND status = 'cancelled'",
                           (ring_b["line_id"],)).fetchall()
    assert [(t["performance_id"], t["seat_id"]) for t in cancelled] == [
        (perf, ring_b["tickets"][0]["seat_id"])]
    assert len(seats) == 8


def test_a_seat_change_is_checked_like_a_sale_and_a_refused_one_changes_nothing(sample_hub, ring_b):
    hub, db = sample_hub, sample_hub.db
    perf = hub.ids["rings"]["B"][1]
    taken = seat(db, house(hub), "Parkett", "11", "8")
    sell(hub, sale(product(hub, "Abo-Ring B"), hub.ids["first_customer"], seat_ids=[taken["id"]]))
    held = seat(db, house(hub), "Parkett", "11", "9")
    holds.hold(db, "token:shop", [(perf, held["id"])], now=GENERAL)
    other_zone = seat(db, house(hub), "Parkett", "3", "3")
    before = state_of(db)
    cases = [
        (Conflict, SeatChangeIn(seat_id=taken["id"], performance_id=perf)),
        (Conflict, SeatChangeIn(seat_id=held["id"], performance_id=perf)),
        (Conflict, SeatChangeIn(seat_id=held["id"])),  # all dates: held in one of them
        (ValidationError, SeatChangeIn(seat_id=other_zone["id"], performance_id=perf)),
        (ValidationError, SeatChangeIn(seat_id=str(uuid7()), performance_id=perf)),
        (ValidationError, SeatChangeIn(seat_id=taken["id"], performance_id=hub.ids["rings"]["A"][0])),
        (ValidationError, SeatChangeIn(seat_id=seat(db, hub.ids["plans"]["Studio"], "Saal", "1", "1")["id"])),
    ]
    for error, body in cases:
        with pytest.raises(error):
            records.change_seats(db, ring_b["id"], body, now=GENERAL)
        assert state_of(db) == before
    # the holder itself may move onto its held seat: the hold is converted
    moved = records.change_seats(db, ring_b["id"], SeatChangeIn(seat_id=held["id"], performance_id=perf),
                                 holder="token:shop", now=GENERAL)
    assert sold_seats(db, moved["id"])[perf] == held["id"]
    assert db.execute("SELECT count(*) AS n FROM seat_holds").fetchone()["n"] == 0


def test_a_group_seat_change_steps_through_the_variants(sample_hub):
    hub, db = sample_hub, sample_hub.db
    pit, parkett = pit_and_parkett(hub)
    sub = sell(hub, sale(product(hub, "Abo-Ring A"), hub.ids["first_customer"],
                         seat_ids=[seat(db, house(hub), "Parkett", "4", "9")["id"]]))
    standard = next(v for v in {variant_of(db, p) for p in hub.ids["rings"]["A"]} if v != pit["variant_id"])
    before = state_of(db)
    with pytest.raises(ValidationError, match="replacement"):
        records.change_seats(db, sub["id"], SeatChangeIn(seat_id=pit["id"]), now=GENERAL)
    assert state_of(db) == before
    changed = records.change_seats(db, sub["id"], SeatChangeIn(
        seat_id=pit["id"], replacements=[ReplacementIn(variant_id=standard, seat_id=parkett["id"])]), now=GENERAL)
    for s in changed["seats"]:
        assert s["seat_id"] == (pit["id"] if s["variant_id"] == pit["variant_id"] else parkett["id"])
    assert sum(s["price_cents"] for s in changed["seats"]) == sub["price_cents"]


def test_cancel_pause_and_resume(sample_hub, ring_b):
    hub, db = sample_hub, sample_hub.db
    with pytest.raises(Conflict, match="only a paused one"):
        records.set_state(db, ring_b["id"], "active", GENERAL)
    assert records.set_state(db, ring_b["id"], "paused", GENERAL)["state"] == "paused"
    assert records.set_state(db, ring_b["id"], "active", GENERAL)["state"] == "active"
    with pytest.raises(ValidationError, match="organizer"):
        records.set_state(db, ring_b["id"], "cancelled", GENERAL, ends_season_id=str(uuid7()))
    cancelled = records.change(db, ring_b["id"], SubscriptionChange(state="cancelled"), GENERAL)
    assert cancelled["state"] == "cancelled" and cancelled["ends_season_id"] == hub.ids["season"]
    assert len(cancelled["seats"]) == 8  # it runs to the end of its season
    with pytest.raises(Conflict, match="cancelled"):
        records.change_form(db, ring_b["id"], "pass", GENERAL)


async def test_the_staff_api_lists_reads_and_changes_subscriptions(api):
    hub, db = api.hub, api.hub.db
    chair = seat(db, house(hub), "Parkett", "13", "5")
    body = {"product_id": product(hub, "Abo-Ring B"), "customer_id": hub.ids["first_customer"],
            "seat_ids": [chair["id"]], "payment_method": "invoice"}
    await problem(api, "POST", "/subscriptions", body, status=422, slug="validation-failed",
                  headers={**hub.headers(), "Idempotency-Key": "bad-method"})
    sold = await call(api, "POST", "/subscriptions", {**body, "payment_method": "transfer"}, status=201,
                      headers={**hub.headers(), "Idempotency-Key": "b-1"})
    listed = await call(api, "GET", f"/subscriptions?customer_id={hub.ids['first_customer']}&state=active",
                        status=200)
    assert [s["id"] for s in listed["items"]] == [sold["id"]] and listed["total"] == 1
    await problem(api, "GET", "/subscriptions?state=gone", status=400, slug="invalid-parameter")
    perf = hub.ids["rings"]["B"][0]
    moved = await call(api, "PUT", f"/subscriptions/{sold['id']}/seats",
                       {"performance_id": perf, "seat_id": seat(db, house(hub), "Parkett", "13", "6")["id"]},
                       status=200)
    assert {s["performance_id"]: s["label"] for s in moved["seats"]}[perf] == "6"
    paused = await call(api, "PATCH", f"/subscriptions/{sold['id']}", {"state": "paused", "form": "both"},
                        status=200)
    assert (paused["state"], paused["form"]) == ("paused", "both")
    await problem(api, "PATCH", f"/subscriptions/{sold['id']}", {"state": "over"}, status=422,
                  slug="validation-failed")
    await problem(api, "PATCH", f"/subscriptions/{sold['id']}", {"price_cents": 0}, status=400, slug="unknown-field")
    await problem(api, "GET", f"/subscriptions/{uuid7()}", status=404, slug="not-found")
    read = await call(api, "GET", f"/subscriptions/{sold['id']}", status=200)
    assert read["price_cents"] == sold["price_cents"] == 29400


async def test_a_seat_change_replaces_the_paper_that_shows_the_old_seat(api):
    """The single ticket of the moved date and the pass (it lists every seat) get new codes and
    print jobs; the old codes are superseded, so the paper with the old seat does not stay valid
    beside the new one. The tickets of dates that did not move are left as they are."""
    hub, db = api.hub, api.hub.db
    chair = seat(db, house(hub), "Parkett", "14", "5")
    sold = await call(api, "POST", "/subscriptions",
                      {"product_id": product(hub, "Abo-Ring B"), "customer_id": hub.ids["first_customer"],
                       "seat_ids": [chair["id"]], "payment_method": "transfer", "form": "both"},
                      status=201, headers={**hub.headers(), "Idempotency-Key": "paper-1"})
    line = db.execute("SELECT line_id FROM subscriptions WHERE id = ?", (sold["id"],)).fetchone()["line_id"]

    def cards_now() -> dict[str, dict]:
        rows = db.execute("SELECT * FROM cards WHERE order_item_id = ? AND revoked_at IS NULL", (line,)).fetchall()
        return {r["product_id"] if r["kind"] == "single" else "pass": r for r in rows}

    before = cards_now()
    perf, other = hub.ids["rings"]["B"][0], hub.ids["rings"]["B"][1]
    assert before["pass"]["issue"] == before[perf]["issue"] == 1 and len(before) == 9  # a pass + 8 tickets
    await call(api, "PUT", f"/subscriptions/{sold['id']}/seats",
               {"performance_id": perf, "seat_id": seat(db, house(hub), "Parkett", "14", "6")["id"]}, status=200)
    after = cards_now()
    assert after["pass"]["issue"] == 2 and after[perf]["issue"] == 2 and after[perf]["code"] != before[perf]["code"]
    assert after[other]["issue"] == 1 and after[other]["code"] == before[other]["code"]
    queued = {(j["ref_id"], j["card_issue"]) for j in db.execute(
        "SELECT ref_id, card_issue FROM print_jobs WHERE kind = 'card' AND state = 'queued'")}
    assert {(after[perf]["id"], 2), (after["pass"]["id"], 2)} <= queued
    assert (after[perf]["id"], 1) not in queued  # the old seat's job is dropped
