"""Seat holds of a checkout (issue 13): a ring's seats held in all its performances or none, taken for
everybody else (availability, sale, another hold), bought by their holder, released by their holder
only, expired holds freeing their seats (looked at with a fixed clock, and swept by the hub's worker),
hostile holds refused without a trace. Real SQLite copies of the sample hub; the API over HTTP."""

from __future__ import annotations

import datetime as dt

import pytest

from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.sales import contingents
from core.subscriptions import holds, offers
from hub.services.hold_sweeper import SWEEPER
from tests.helpers import async_wait_until, call, problem
from tests.test_subscription_sale import GENERAL, house, product, seat

T0 = GENERAL


def rows(db) -> int:
    return db.execute("SELECT count(*) AS n FROM seat_holds").fetchone()["n"]


def ring_of(hub, seat_id: str, name: str = "B") -> list[dict]:
    return [{"performance_id": p, "seat_id": seat_id} for p in hub.ids["rings"][name]]


async def staff_token(api, name: str) -> str:
    return (await call(api, "POST", "/tokens", {"name": name, "role": "office"}, status=201))["token"]


async def test_a_ring_hold_takes_every_performance_and_is_taken_for_everybody_else(api):
    hub, db = api.hub, api.hub.db
    chair = seat(db, house(hub), "Parkett", "5", "10")
    other = {"Authorization": f"Bearer {await staff_token(api, 'Kasse 2')}"}
    held = await call(api, "POST", "/seat-holds", {"seats": ring_of(hub, chair["id"])}, status=201)
    assert len(held["seats"]) == 8 and held["holder"].startswith("staff:") and rows(db) == 8
    # another staff member: the seat is not free for them, their hold and their sale are refused
    prod = product(hub, "Abo-Ring B")
    mine = await call(api, "GET", f"/subscription-products/{prod}/availability", status=200)
    theirs = await call(api, "GET", f"/subscription-products/{prod}/availability", status=200, headers=other)
    assert chair["id"] in mine["groups"][0]["variants"][0]["free_seat_ids"]
    assert chair["id"] not in theirs["groups"][0]["variants"][0]["free_seat_ids"]
    lost = await problem(api, "POST", "/seat-holds", {"seats": ring_of(hub, chair["id"])[3:5]}, status=409,
                         slug="conflict", headers=other)
    assert "Parkett row 5 seat 10 is held by another buyer" in lost["detail"] and rows(db) == 8
    body = {"product_id": prod, "customer_id": hub.ids["first_customer"], "seat_ids": [chair["id"]],
            "payment_method": "transfer"}
    await problem(api, "POST", "/subscriptions", body, status=409, slug="conflict",
                  headers={**other, "Idempotency-Key": "other-1"})
    await problem(api, "DELETE", f"/seat-holds/{held['id']}", status=404, slug="not-found", headers=other)
    # the holder buys: the hold becomes the subscription's tickets
    sold = await call(api, "POST", "/subscriptions", body, status=201,
                      headers={**hub.headers(), "Idempotency-Key": "mine-1"})
    assert len(sold["seats"]) == 8 and rows(db) == 0


async def test_the_holder_releases_a_hold_and_the_seats_are_free_again(api):
    hub, db = api.hub, api.hub.db
    chair = seat(db, house(hub), "Parkett", "5", "11")
    held = await call(api, "POST", "/seat-holds", {"seats": ring_of(hub, chair["id"]), "ttl_seconds": 120},
                      status=201)
    assert (await call(api, "DELETE", f"/seat-holds/{held['id']}", status=200)) == {"released": 8}
    assert rows(db) == 0
    await problem(api, "DELETE", f"/seat-holds/{held['id']}", status=404, slug="not-found")


def test_an_expired_hold_no_longer_takes_its_seat_for_a_look_a_hold_or_a_sale(sample_hub):
    hub, db = sample_hub, sample_hub.db
    chair = seat(db, house(hub), "Parkett", "6", "10")
    bookings = [(b["performance_id"], b["seat_id"]) for b in ring_of(hub, chair["id"])]
    holds.hold(db, "token:shop-a", bookings, now=T0, ttl=dt.timedelta(minutes=10))
    prod = product(hub, "Abo-Ring B")

    def free_for_b(now):
        return chair["id"] in offers.availability(db, prod, holder="token:shop-b", now=now)[
            "groups"][0]["variants"][0]["free_seat_ids"]

    assert not free_for_b(T0 + dt.timedelta(minutes=9, seconds=59))
    with pytest.raises(Conflict):
        holds.hold(db, "token:shop-b", bookings, now=T0 + dt.timedelta(minutes=9))
    assert rows(db) == 8
    assert free_for_b(T0 + dt.timedelta(minutes=10))  # the look deleted the expired rows
    assert rows(db) == 0
    again = holds.hold(db, "token:shop-b", bookings, now=T0 + dt.timedelta(minutes=10))
    assert holds.of_holder(db, "token:shop-b", T0 + dt.timedelta(minutes=10))[0]["id"] == again["id"]
    assert holds.of_holder(db, "token:shop-a", T0 + dt.timedelta(minutes=10)) == []


async def test_the_hubs_worker_sweeps_expired_holds(api):
    hub, db = api.hub, api.hub.db
    # its first round runs as the app starts (on PostgreSQL in a thread, maybe after the holds below)
    await async_wait_until(lambda: api.app[SWEEPER].rounds >= 1, what="the sweeper's first round")
    chair = seat(db, house(hub), "Parkett", "6", "11")
    long_ago = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    holds.hold(db, "token:gone", [(hub.ids["rings"]["B"][0], chair["id"])], now=long_ago)
    kept = holds.hold(db, "token:here", [(hub.ids["rings"]["B"][1], chair["id"])],
                      now=dt.datetime.now(dt.UTC), ttl=holds.MAX_TTL)
    assert rows(db) == 2
    api.app[SWEEPER].wake()
    await async_wait_until(lambda: rows(db) == 1, what="expired hold swept")
    assert db.execute("SELECT hold_id FROM seat_holds").fetchone()["hold_id"] == kept["id"]


def test_hostile_holds_are_refused_and_hold_nothing(sample_hub):
    hub, db = sample_hub, sample_hub.db
    perf = hub.ids["rings"]["B"][0]
    chair = seat(db, house(hub), "Parkett", "8", "8")
    studio = seat(db, hub.ids["plans"]["Studio"], "Saal", "1", "1")
    agency_seat = seat(db, house(hub), "Parkett", "8", "9")
    contingents.move_seats(db, perf, [agency_seat["id"]], "agency:some-agency", T0)
    cases = [
        (NotFound, "token:x", [(str(uuid7()), chair["id"])]),  # unknown performance
        (ValidationError, "token:x", [(perf, str(uuid7()))]),  # unknown seat
        (ValidationError, "token:x", [(perf, studio["id"])]),  # a seat of another plan
        (ValidationError, "token:x", [(perf, chair["id"]), (perf, chair["id"])]),  # twice
        (ValidationError, "token:x", []),
        (ValidationError, "nobody", [(perf, chair["id"])]),  # not a holder
        (ValidationError, "token:x' OR 1=1 --", [(perf, chair["id"])]),
        (Conflict, "token:x", [(perf, chair["id"]), (perf, agency_seat["id"])]),  # another pool's seat
    ]
    for error, holder, bookings in cases:
        with pytest.raises(error):
            holds.hold(db, holder, bookings, now=T0)
    with pytest.raises(ValidationError):
        holds.hold(db, "token:x", [(perf, chair["id"])], now=T0, ttl=dt.timedelta(days=1))
    assert rows(db) == 0
    # the agency holds its own seat from its own pool
    assert holds.hold(db, "token:some-agency", [(perf, agency_seat["id"])], now=T0, pool="agency:some-agency")


async def test_hostile_holds_over_http_are_4xx_and_store_nothing(api):
    hub, db = api.hub, api.hub.db
    perf = hub.ids["rings"]["B"][0]
    chair = seat(db, house(hub), "Parkett", "8", "10")
    await problem(api, "POST", "/seat-holds", {"seats": [{"performance_id": perf, "seat_id": chair["id"]}],
                                               "ttl_seconds": 10 ** 6}, status=422, slug="validation-failed")
    await problem(api, "POST", "/seat-holds", {"seats": [{"performance_id": perf, "seat_id": chair["id"]}],
                                               "holder": "staff:someone-else"}, status=400, slug="unknown-field")
    await problem(api, "POST", "/seat-holds", {"seats": []}, status=422, slug="validation-failed")
    await problem(api, "POST", "/seat-holds", {"seats": [{"performance_id": str(uuid7()), "seat_id": chair["id"]}]},
                  status=404, slug="not-found")
    await problem(api, "DELETE", f"/seat-holds/{uuid7()}", status=404, slug="not-found")
    assert rows(db) == 0


def test_the_nodes_id_and_role_are_read_once_per_connection_and_its_key_each_time(empty_hub, monkeypatch):
    """`identity` (what a sale and a customer's number use) reads the node row once per
    connection: id and role never change. `this_node` (the signer's key, which may) still
    reads it each time."""
    from core.base import node

    db = empty_hub.db
    row = node.this_node(db)
    assert node.identity(db) == {"id": row["id"], "role": "hub"} and node.node_id(db) == row["id"]
    db.execute("UPDATE node SET key_id = ?", (4711,))
    assert node.this_node(db)["key_id"] == 4711
    monkeypatch.setattr(node, "this_node", lambda _db: pytest.fail("read again"))
    assert node.identity(db) == {"id": row["id"], "role": "hub"}


def test_releasing_seats_takes_exactly_those_pairs_of_that_holder(sample_hub):
    """`release_seats` is one statement over (performance, seat) pairs: a holder's hold of the
    same seat at another date, or of another seat at the same date, stays; so does another
    holder's."""
    db, ring = sample_hub.db, sample_hub.ids["rings"]["B"]
    a, b = (seat(db, house(sample_hub), "Parkett", "6", n)["id"] for n in ("1", "2"))
    now = dt.datetime.now(dt.UTC)
    holds.hold(db, "token:me", [(ring[0], a), (ring[1], b), (ring[0], b), (ring[1], a)], now=now)
    holds.hold(db, "token:other", [(ring[2], a)], now=now)
    holds.release_seats(db, "token:me", [(ring[0], a), (ring[1], b)])
    left = {(r["holder"], r["performance_id"], r["seat_id"]) for r in db.execute(
        "SELECT holder, performance_id, seat_id FROM seat_holds").fetchall()}
    assert left == {("token:me", ring[0], b), ("token:me", ring[1], a), ("token:other", ring[2], a)}
    holds.release_seats(db, "token:other", [])
    assert rows(db) == 3
