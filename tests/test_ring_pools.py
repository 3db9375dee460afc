"""Ring seats in a cash desk's pool (issue 14, S17): a subscription product's seat moved into a
desk's pool in every performance of its plan group or in none, received by a real enrolled desk
over loopback HTTP, recalled two-step as one (back at the hub only when every performance's seat
was released; a seat the desk sold leaves the whole ring seat with it, reported), the hub's seat
map showing it as another pool's in every performance, and hostile input refused with nothing
moved. Real SQLite files of a copy of the sample hub; the office API over HTTP."""

from __future__ import annotations

import datetime as dt

import pytest

from core.base.clock import utcnow
from core.base.errors import Conflict
from core.base.ids import uuid7
from core.catalog.seating.seatmap import OTHER_POOL
from core.sales import contingents
from core.sales.seat_states import seat_states
from core.sales.tickets import SaleIn, sell
from core.subscriptions import offers, ring_pools
from hub.app import make_app
from tests.conftest import prepared_sample_hub
from tests.helpers import call, problem, table_counts
from tests.test_subscription_sale import pit_and_parkett, product, variant_of
from tests.test_sync import enrolled, kasse_1, with_kasse_1

RING = "Abo-Ring B"


@pytest.fixture
def sample_hub(request, tmp_path, backend):
    """A private copy of the sample hub with Kasse 1 enrolled (`with_kasse_1`, made once per test
    process and backend: a desk's database, key and enrollment cost about a second)."""
    return prepared_sample_hub(request, tmp_path, backend, "kasse-1-enrolled", with_kasse_1)[0]


def pools_of(hub, seat_id: str, ring: str = "B") -> list[str]:
    return [contingents.pool_of(hub.db, p, seat_id) for p in hub.ids["rings"][ring]]


def moves(db) -> dict[str, int]:
    counts = table_counts(db)
    return {t: counts[t] for t in ("seat_pools", "recalls", "ring_recalls", "ring_recall_parts", "tickets")}


async def test_a_ring_seat_moves_to_a_desk_in_every_performance_and_the_desk_receives_it(hub, tmp_path):
    _, db, client = kasse_1(hub)
    desk = contingents.node_pool(db.execute("SELECT id FROM node").fetchone()["id"])
    pit, parkett = pit_and_parkett(hub)
    try:
        out = ring_pools.move_ring_seats(hub.db, product(hub, RING), [parkett["id"], pit["id"]], desk, utcnow())
        ring = hub.ids["rings"]["B"]
        assert pools_of(hub, parkett["id"]) == [desk] * len(ring)
        # the pit seat exists only where the pit is covered: moved there, nowhere else
        with_pit = [p for p in ring if variant_of(hub.db, p) == pit["variant_id"]]
        assert 0 < len(with_pit) < len(ring)
        assert {m["seat_id"]: m["performance_ids"] for m in out["moved"]} == {parkett["id"]: ring,
                                                                              pit["id"]: with_pit}
        assert hub.db.execute("SELECT count(*) AS n FROM seat_pools WHERE seat_id = ? AND pool = ?",
                              (pit["id"], desk)).fetchone()["n"] == len(with_pit)
        for perf in ring:  # the hub's seat map: another pool's seat, in every performance of the ring
            assert seat_states(hub.db, perf)[parkett["id"]] == OTHER_POOL
        (group,) = offers.availability(hub.db, product(hub, RING), now=utcnow())["groups"]
        assert all(parkett["id"] not in v["free_seat_ids"] for v in group["variants"])  # the hub cannot sell it
        await client.round()
        got = {r["performance_id"] for r in db.execute("SELECT performance_id FROM seat_pools WHERE seat_id = ? "
                                                        "AND pool = ?", (parkett["id"], desk))}
        assert got == set(ring)
        node = db.execute("SELECT * FROM node").fetchone()  # the desk can sell it offline in any of them
        sold = sell(db, node, SaleIn(performance_id=ring[3], seat_ids=[parkett["id"]], payment_method="cash"),
                    pool=desk, channel="cashdesk", now=utcnow())
        assert sold["tickets"][0]["seat_id"] == parkett["id"]
    finally:
        await client.close()


async def test_a_move_is_refused_when_one_performance_is_sold_or_held_and_nothing_moves(hub, tmp_path):
    _, db, client = kasse_1(hub)
    await client.close()
    desk = contingents.node_pool(db.execute("SELECT id FROM node").fetchone()["id"])
    _, parkett = pit_and_parkett(hub)
    ring = hub.ids["rings"]["B"]
    sell(hub.db, hub.db.execute("SELECT * FROM node").fetchone(),
         SaleIn(performance_id=ring[5], seat_ids=[parkett["id"]], payment_method="cash"),
         pool="hub", channel="phone", now=utcnow())
    free = hub.db.execute("SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id WHERE "
                          "c.name = 'Parkett' AND s.row_label = '4' AND s.variant_id IS NULL LIMIT 1").fetchone()["id"]
    before = moves(hub.db)
    with pytest.raises(Conflict, match="is sold"):
        ring_pools.move_ring_seats(hub.db, product(hub, RING), [free, parkett["id"]], desk, utcnow())
    assert moves(hub.db) == before and pools_of(hub, free) == ["hub"] * len(ring)
    hub.db.execute("INSERT INTO seat_holds (performance_id, seat_id, hold_id, holder, expires_at, created_at) "
                   "VALUES (?, ?, ?, 'staff:x', ?, ?)", (ring[2], free, uuid7(),
                                                         (utcnow() + dt.timedelta(minutes=5)).isoformat(),
                                                         utcnow().isoformat()))
    with pytest.raises(Conflict, match="held"):
        ring_pools.move_ring_seats(hub.db, product(hub, RING), [free], desk, utcnow())
    contingents.move_seats(hub.db, ring[7], [parkett["id"]], "blocked", utcnow())
    before = moves(hub.db)
    with pytest.raises(Conflict, match="in pool blocked"):
        ring_pools.move_ring_seats(hub.db, product(hub, RING), [parkett["id"]], "hub", utcnow())
    assert moves(hub.db) == before


async def test_recall_is_two_steps_and_the_ring_seat_comes_back_in_every_performance(hub, tmp_path):
    _, db, client = kasse_1(hub)
    desk = contingents.node_pool(db.execute("SELECT id FROM node").fetchone()["id"])
    _, parkett = pit_and_parkett(hub)
    prod, ring = product(hub, RING), hub.ids["rings"]["B"]
    try:
        ring_pools.move_ring_seats(hub.db, prod, [parkett["id"]], desk, utcnow())
        await client.round()
        out = ring_pools.move_ring_seats(hub.db, prod, [parkett["id"]], "hub", utcnow())
        assert out["moved"] == [] and out["recalls"][0]["performance_ids"] == ring
        assert pools_of(hub, parkett["id"]) == [desk] * len(ring)  # until the desk answers: still the desk's
        with pytest.raises(Conflict, match="being recalled"):
            ring_pools.move_ring_seats(hub.db, prod, [parkett["id"]], "hub", utcnow())
        result = await client.round()
        assert result.recalls_answered == len(ring)
        assert pools_of(hub, parkett["id"]) == ["hub"] * len(ring)
        (recall,) = ring_pools.ring_seat_pools(hub.db, prod, utcnow())["recalls"]
        assert recall["state"] == "done" and recall["kept_sold"] == [] and recall["waiting_for"] == []
        await client.round()
        assert db.execute("SELECT count(*) AS n FROM seat_pools WHERE seat_id = ? AND pool = ?",
                          (parkett["id"], desk)).fetchone()["n"] == 0
    finally:
        await client.close()


async def test_a_recall_after_an_offline_sale_is_reported_partial_and_nothing_is_half_moved(hub, tmp_path):
    _, db, client = kasse_1(hub)
    node = db.execute("SELECT * FROM node").fetchone()
    desk = contingents.node_pool(node["id"])
    _, parkett = pit_and_parkett(hub)
    prod, ring = product(hub, RING), hub.ids["rings"]["B"]
    try:
        ring_pools.move_ring_seats(hub.db, prod, [parkett["id"]], desk, utcnow())
        await client.round()
        sell(db, node, SaleIn(performance_id=ring[2], seat_ids=[parkett["id"]], payment_method="cash"),
             pool=desk, channel="cashdesk", now=utcnow())  # offline: the hub does not know yet
        ring_pools.move_ring_seats(hub.db, prod, [parkett["id"]], "hub", utcnow())
        result = await client.round()
        assert result.rejected == 0 and result.recalls_answered == len(ring)
        # the sold one stays where it is, and so does the rest of the ring seat: never half-moved
        assert pools_of(hub, parkett["id"]) == [desk] * len(ring)
        found = ring_pools.ring_seat_pools(hub.db, prod, utcnow())
        (recall,) = found["recalls"]
        assert recall["state"] == "partial" and recall["kept_sold"] == [ring[2]]
        (seat,) = [s for s in found["seats"] if s["seat_id"] == parkett["id"]]
        assert seat["pool"] == desk and [p["sold"] for p in seat["performances"]] == [p == ring[2] for p in ring]
        assert hub.db.execute("SELECT count(*) AS n FROM seat_pools WHERE recall_id IS NOT NULL").fetchone()["n"] == 0
        with pytest.raises(Conflict, match="sold at the desk"):  # known sold now: a ring recall cannot be whole
            ring_pools.move_ring_seats(hub.db, prod, [parkett["id"]], "hub", utcnow())
        await client.round()  # the desk gets the released seats back: it holds the ring seat again
        assert {r["pool"] for r in db.execute("SELECT pool FROM seat_pools WHERE seat_id = ?",
                                              (parkett["id"],))} == {desk}
        assert db.execute("SELECT count(*) AS n FROM seat_pools WHERE seat_id = ?",
                          (parkett["id"],)).fetchone()["n"] == len(ring)
    finally:
        await client.close()


async def test_office_api_moves_reads_and_refuses_hostile_input(hub, tmp_path, aiohttp_client):
    _, db, client = kasse_1(hub)
    await client.close()
    node_id = db.execute("SELECT id FROM node").fetchone()["id"]
    api = await aiohttp_client(make_app(hub.db))
    api.hub = hub
    pit, parkett = pit_and_parkett(hub)
    prod, ring = product(hub, RING), hub.ids["rings"]["B"]
    studio_seat = hub.db.execute("SELECT id FROM seats WHERE plan_id = ? LIMIT 1",
                                 (hub.ids["plans"]["Studio"],)).fetchone()["id"]
    gate = await enrolled(hub, tmp_path, role="gate", name="Tor 1")
    await gate[2].close()
    gate_id = gate[1].execute("SELECT id FROM node").fetchone()["id"]
    before = moves(hub.db)
    path = f"/subscription-products/{prod}/pools"
    await problem(api, "POST", f"/subscription-products/{uuid7()}/pools",
                  {"seat_ids": [parkett["id"]], "to": f"node:{node_id}"}, status=404, slug="not-found")
    await problem(api, "POST", path, {"seat_ids": [studio_seat], "to": f"node:{node_id}"}, status=422,
                  slug="validation-failed")  # a seat of no plan of this ring
    await problem(api, "POST", path, {"seat_ids": [uuid7()], "to": f"node:{node_id}"}, status=422,
                  slug="validation-failed")
    await problem(api, "POST", path, {"seat_ids": [parkett["id"]], "to": f"node:{gate_id}"}, status=422,
                  slug="validation-failed")  # a gate is no cash desk
    await problem(api, "POST", path, {"seat_ids": [parkett["id"]], "to": f"node:{uuid7()}"}, status=422,
                  slug="validation-failed")
    for pool in ("blocked", "agency:vvk", "node:../x", ""):
        resp = await api.post("/api/v1" + path, json={"seat_ids": [parkett["id"]], "to": pool},
                              headers=hub.headers())
        assert 400 <= resp.status < 500, pool
    await problem(api, "POST", path, {"seat_ids": [parkett["id"], parkett["id"]], "to": f"node:{node_id}"},
                  status=422, slug="validation-failed")
    assert moves(hub.db) == before
    moved = await call(api, "POST", path, {"seat_ids": [parkett["id"], pit["id"]], "to": f"node:{node_id}"},
                       status=200)
    assert moved["moved"][0] == {"seat_id": parkett["id"], "performance_ids": ring}
    read = await call(api, "GET", path, status=200)
    by_seat = {s["seat_id"]: s for s in read["seats"]}
    assert by_seat[parkett["id"]]["pool"] == by_seat[pit["id"]]["pool"] == f"node:{node_id}"
    single = hub.db.execute("SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id WHERE c.name = "
                            "'Parkett' AND s.row_label = '5' AND s.variant_id IS NULL LIMIT 1").fetchone()["id"]
    contingents.move_seats(hub.db, ring[0], [single], f"node:{node_id}", utcnow())  # one date on its own
    read = await call(api, "GET", path, status=200)
    mixed = {s["seat_id"]: s for s in read["seats"]}[single]
    assert mixed["pool"] == "mixed"
    assert [p["pool"] for p in mixed["performances"]] == [f"node:{node_id}"] + ["hub"] * (len(ring) - 1)
    await problem(api, "GET", f"/subscription-products/{uuid7()}/pools", status=404, slug="not-found")
    shop = hub.db.execute("SELECT count(*) AS n FROM seat_pools").fetchone()["n"]
    resp = await api.post("/api/v1" + path, json={"seat_ids": [parkett["id"]], "to": "hub"})  # no token
    assert resp.status == 401 and hub.db.execute("SELECT count(*) AS n FROM seat_pools").fetchone()["n"] == shop


async def test_answers_in_separate_pulls_move_nothing_until_the_last_performance_is_answered(hub, tmp_path):
    _, edge, client = kasse_1(hub)
    await client.close()
    db, node_id = hub.db, edge.execute("SELECT id FROM node").fetchone()["id"]
    desk = contingents.node_pool(node_id)
    _, parkett = pit_and_parkett(hub)
    prod, ring = product(hub, RING), hub.ids["rings"]["B"]
    ring_pools.move_ring_seats(db, prod, [parkett["id"]], desk, utcnow())
    ring_pools.move_ring_seats(db, prod, [parkett["id"]], "hub", utcnow())
    parts = {r["performance_id"]: r["id"] for r in db.execute("SELECT * FROM recalls WHERE state = 'requested'")}
    for perf in ring[:-1]:  # the desk's answers, as the hub applies its pushed `pool.released` ops
        contingents.apply_release(db, node_id, contingents.ReleaseOp(recall_id=parts[perf], released=[parkett["id"]],
                                                                     kept_sold=[]), utcnow())
        assert pools_of(hub, parkett["id"]) == [desk] * len(ring)  # frozen with the desk, still being recalled
    (recall,) = ring_pools.ring_seat_pools(db, prod, utcnow())["recalls"]
    assert recall["state"] == "requested" and recall["waiting_for"] == [ring[-1]]
    contingents.apply_release(db, node_id, contingents.ReleaseOp(recall_id=parts[ring[-1]], released=[parkett["id"]],
                                                                 kept_sold=[]), utcnow())
    assert pools_of(hub, parkett["id"]) == ["hub"] * len(ring)
