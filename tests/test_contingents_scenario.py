"""Contingents under a seeded random scenario (E3, S17): two cash desks sell offline from their
pools while the hub sells online and the office moves seats (recalls included); then everyone
reconnects in random order until sync is quiet. Whatever the seed: no seat is sold twice, no
desk sale is lost (it reached the hub, or at worst became a conflict record), every pool count
adds up to the house, and every recall ends `done`.

The hub is the real aiohttp app on a loopback test server; the desks are real enrolled edge
folders driven by the real SyncClient. Enrolling two desks and pulling the catalog costs about
a second, so it is done once per worker (`house_template`) and copied per seed.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from core.base.clock import utcnow
from core.base.errors import Conflict
from core.base.node import NODE_DB, this_node
from core.base.storage import connect
from core.sales import contingents
from core.sales.tickets import SaleIn, sell
from edge.sync import enroll as enrolling
from edge.sync.client import SyncClient, status
from hub.app import DB_NAME, make_app
from hub.sync import enrollment

SEEDS = range(30)
DESKS = ("A", "B")
ACTIVE_SEATS = 40  # the seats the scenario plays with; the rest of the house stays in the hub's pool
OFFLINE_STEPS = 25
MAX_PASSES = 8


async def _build_template(sample: Path, folder: Path) -> None:
    shutil.copytree(sample, folder / "hub")
    db = connect(folder / "hub" / DB_NAME)
    runner = web.AppRunner(make_app(db), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        for name in DESKS:
            code = enrollment.create_code(db, name=f"Kasse {name}", role="cashdesk", venue_ids=[], now=utcnow())
            await enrolling.enroll(folder / name, code, [url])
            desk_db = connect(folder / name / NODE_DB, edge=True)
            client = SyncClient(desk_db, folder / name)
            try:
                await client.round()  # the whole catalog, once
            finally:
                await client.close()
                desk_db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                desk_db.close()
    finally:
        await runner.cleanup()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()


@pytest.fixture(scope="session")
def house_template(sample_template, tmp_path_factory) -> Path:
    """A sample hub with two enrolled cash desks that have pulled everything (closed files)."""
    folder = tmp_path_factory.mktemp("contingents")
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_build_template(sample_template[0], folder))
    finally:
        loop.close()
    return folder


@dataclass
class Desk:
    name: str
    db: object
    client: SyncClient
    node: dict
    pool: str
    sales: list[dict] = field(default_factory=list)


@dataclass
class House:
    db: object
    ids: dict
    node: dict
    desks: dict[str, Desk]
    hub_sales: list[dict] = field(default_factory=list)
    recalls: list[dict] = field(default_factory=list)


@pytest.fixture
async def house(house_template, sample_template, tmp_path, aiohttp_server):
    shutil.copytree(house_template, tmp_path / "house")
    db = connect(tmp_path / "house" / "hub" / DB_NAME)
    server = await aiohttp_server(make_app(db))
    url = str(server.make_url("")).rstrip("/")
    desks = {}
    for name in DESKS:
        folder = tmp_path / "house" / name
        desk_db = connect(folder / NODE_DB, edge=True)
        node = this_node(desk_db)
        desks[name] = Desk(name, desk_db, SyncClient(desk_db, folder, hub_url=url), node,
                           contingents.node_pool(node["id"]))
    yield House(db, sample_template[2], this_node(db), desks)
    for desk in desks.values():
        await desk.client.close()
        desk.db.close()
    await server.close()
    db.close()


def by_place(db, performance: str) -> list[str]:
    """The performance's seat ids in a fixed order (ids are new in every session, places are not)."""
    seats = contingents.seats_of(db, performance)
    return sorted(seats, key=lambda s: (seats[s]["section"], seats[s]["row_label"], seats[s]["label"]))


def _sold(db, performance: str) -> set[str]:
    return {r["seat_id"] for r in db.execute(
        "SELECT seat_id FROM tickets WHERE performance_id = ? AND status = 'sold'", (performance,))}


def _pools(db, performance: str, seats: list[str]) -> dict[str, str]:
    """contingents.pools() for just these seats (that one lists the whole house, which is slow here)."""
    explicit = {r["seat_id"]: r["pool"] for r in db.execute(
        f"SELECT seat_id, pool FROM seat_pools WHERE performance_id = ? AND seat_id IN ({','.join('?' * len(seats))})",
        (performance, *seats))}
    return {s: explicit.get(s, contingents.HUB) for s in seats}


def _pick(rng: random.Random, seats: list[str]) -> list[str]:
    return rng.sample(seats, min(len(seats), rng.choice((1, 1, 2, 3))))


def desk_sells(rng: random.Random, desk: Desk, performance: str, active: list[str]) -> None:
    """A desk, offline, sells from what it believes is its pool; sometimes it is asked for
    seats outside it (or sold already), which must be refused locally with a clear message."""
    local = _pools(desk.db, performance, active)
    sold = _sold(desk.db, performance)
    own = [s for s in active if local[s] == desk.pool and s not in sold]
    seats = _pick(rng, own) if own and rng.random() < 0.7 else _pick(rng, active)
    foreign = [s for s in seats if local[s] != desk.pool]
    taken = [s for s in seats if s in sold]
    outbox_before = desk.db.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"]
    method = rng.choice(("cash", "card"))
    sale = SaleIn(performance_id=performance, seat_ids=seats, payment_method=method,
                  payment_reference=f"T-{rng.randint(1, 9999)}" if method == "card" else None)
    if foreign or taken:
        with pytest.raises(Conflict) as refused:
            sell(desk.db, desk.node, sale, pool=desk.pool, channel="cashdesk", now=utcnow())
        # the first seat that cannot be sold is named, and why
        first = next(s for s in seats if s in foreign or s in taken)
        reason = "is not in this desk's contingent" if first in foreign else "is already sold"
        assert reason in refused.value.detail and " row " in refused.value.detail
        assert desk.db.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"] == outbox_before
        return
    desk.sales.append(sell(desk.db, desk.node, sale, pool=desk.pool, channel="cashdesk", now=utcnow()))


def hub_sells(rng: random.Random, house: House, performance: str, active: list[str]) -> None:
    """Online sale at the hub, from the hub's pool only."""
    pools, sold = _pools(house.db, performance, active), _sold(house.db, performance)
    own = [s for s in active if pools[s] == contingents.HUB and s not in sold]
    seats = _pick(rng, own) if own and rng.random() < 0.8 else _pick(rng, active)
    sale = SaleIn(performance_id=performance, seat_ids=seats, payment_method="card")
    if any(pools[s] != contingents.HUB or s in sold for s in seats):
        with pytest.raises(Conflict):
            sell(house.db, house.node, sale, pool=contingents.HUB, channel="shop", now=utcnow())
        return
    house.hub_sales.append(sell(house.db, house.node, sale, pool=contingents.HUB, channel="shop", now=utcnow()))


def office_moves(rng: random.Random, house: House, performance: str, active: list[str]) -> None:
    """The office moves a few seats to another pool: free seats move at once, seats of a desk are
    recalled (two steps). Sold seats and seats under recall are refused, all or nothing."""
    target = rng.choice([contingents.HUB, contingents.BLOCKED, *(d.pool for d in house.desks.values())])
    seats = rng.sample(active, rng.randint(1, 6))
    before = _pools(house.db, performance, active)
    recalling = {r["seat_id"] for r in house.db.execute(
        "SELECT seat_id FROM seat_pools WHERE performance_id = ? AND recall_id IS NOT NULL", (performance,))}
    sold = _sold(house.db, performance)
    if any(s in sold or s in recalling for s in seats):
        with pytest.raises(Conflict, match="sold and stay where they are|already being recalled"):
            contingents.move_seats(house.db, performance, seats, target, utcnow())
        assert _pools(house.db, performance, active) == before
        return
    result = contingents.move_seats(house.db, performance, seats, target, utcnow())
    after = _pools(house.db, performance, active)
    for seat in seats:
        held_by_desk = before[seat].startswith("node:") and before[seat] != target
        assert after[seat] == (before[seat] if held_by_desk else target), seat
    assert sorted(result["moved"]) == sorted(s for s in seats if before[s] != target
                                             and not before[s].startswith("node:"))
    house.recalls.extend(result["recalls"])


def random_step(rng: random.Random, house: House, performance: str, active: list[str]) -> None:
    action = rng.random()
    if action < 0.5:
        desk_sells(rng, house.desks[rng.choice(DESKS)], performance, active)
    elif action < 0.75:
        hub_sells(rng, house, performance, active)
    else:
        office_moves(rng, house, performance, active)


async def reconnect(rng: random.Random, house: House, performance: str, active: list[str], *,
                    busy_passes: int = 0) -> int:
    """Every desk syncs, in random order, pass after pass, until nothing moves; returns passes.
    During the first *busy_passes* passes everyone keeps selling and the office keeps moving
    seats between the desks' rounds."""
    for passes in range(1, MAX_PASSES + 1):
        order = rng.sample(list(house.desks.values()), len(house.desks))
        moved = 0
        for desk in order:
            if passes <= busy_passes:
                for _ in range(rng.randint(0, 3)):
                    random_step(rng, house, performance, active)
            result = await desk.client.round()
            assert result.rejected == 0, (desk.name, desk.db.execute(
                "SELECT result FROM outbox WHERE result LIKE 'rejected%'").fetchall())
            moved += result.pushed + result.pulled + result.recalls_answered
        open_recalls = house.db.execute("SELECT count(*) AS n FROM recalls WHERE state = 'requested'").fetchone()["n"]
        if not moved and not open_recalls and passes > busy_passes:
            return passes
    raise AssertionError(f"sync still busy after {MAX_PASSES} passes")


def check(house: House, performance: str) -> None:
    hub = house.db
    seats = contingents.seats_of(hub, performance)
    hub_pools = contingents.pools(hub, performance)

    # zero seats sold twice: at the hub, and across the hub and every desk's own records
    doubles = hub.execute("SELECT seat_id, count(*) AS n FROM tickets WHERE performance_id = ? AND status = 'sold' "
                          "GROUP BY seat_id HAVING n > 1", (performance,)).fetchall()
    assert doubles == []
    sellers: dict[str, set[str]] = {}
    for db in (hub, *(d.db for d in house.desks.values())):
        for r in db.execute("SELECT seat_id, order_id AS sale_id FROM tickets "
                            "WHERE performance_id = ? AND status = 'sold'",
                            (performance,)):
            sellers.setdefault(r["seat_id"], set()).add(r["sale_id"])
    assert {seat: ids for seat, ids in sellers.items() if len(ids) > 1} == {}

    # every desk sale reached the hub (or became a conflict record: never silently dropped) ...
    conflicts = {json.loads(r["body"]).get("id"): r["reason"] for r in hub.execute(
        "SELECT body, reason FROM conflicts WHERE kind = 'sale.completed'")}
    for desk in house.desks.values():
        local = [r["id"] for r in desk.db.execute("SELECT DISTINCT order_id AS id FROM tickets")]
        assert sorted(local) == sorted(s["id"] for s in desk.sales)
        for sale in desk.sales:
            at_hub = hub.execute("SELECT count(*) AS n FROM tickets WHERE order_id = ?", (sale["id"],)).fetchone()["n"]
            assert at_hub == len(sale["tickets"]) or sale["id"] in conflicts, (desk.name, sale["number"])
        st = status(desk.db)
        assert st["ops_waiting"] == 0 and st["conflicts"] == 0, (desk.name, st)
        # ... and since desks sell only from their own pools, none of them can conflict
        ops = hub.execute("SELECT status, count(*) AS n FROM sync_ops WHERE node_id = ? GROUP BY status",
                          (desk.node["id"],)).fetchall()
        outbox = desk.db.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"]
        assert {r["status"]: r["n"] for r in ops} == ({"applied": outbox} if outbox else {})
        # the desk's view of the contingents has caught up with the hub's
        assert contingents.pools(desk.db, performance) == hub_pools, desk.name
    assert conflicts == {}

    # a sold seat stays in the pool that sold it; blocked seats are never sold
    for r in hub.execute("SELECT t.seat_id, s.node_id, s.channel FROM tickets t JOIN orders s ON s.id = t.order_id "
                         "WHERE t.performance_id = ? AND t.status = 'sold'", (performance,)):
        expected = contingents.HUB if r["node_id"] == house.node["id"] else contingents.node_pool(r["node_id"])
        assert hub_pools[r["seat_id"]] == expected, r
    sold_hub = sum(len(s["tickets"]) for s in house.hub_sales)
    sold_desks = sum(len(s["tickets"]) for d in house.desks.values() for s in d.sales)

    # every pool count adds up to the house
    summary = contingents.summary(hub, performance)
    assert summary["seats"] == len(seats)
    assert sum(p["seats"] for p in summary["pools"]) == len(seats)
    assert all(0 <= p["sold"] <= p["seats"] for p in summary["pools"])
    assert sum(p["sold"] for p in summary["pools"]) == sold_hub + sold_desks == len(_sold(hub, performance))
    by_pool = {p["pool"]: p for p in summary["pools"]}
    assert by_pool.get(contingents.BLOCKED, {"sold": 0})["sold"] == 0
    assert by_pool.get(contingents.HUB, {"sold": 0})["sold"] == sold_hub

    # recalls end done, at the hub and on the desk they were sent to; what a desk kept is what it sold
    assert summary["open_recalls"] == []
    for recall in house.recalls:
        row = hub.execute("SELECT * FROM recalls WHERE id = ?", (recall["id"],)).fetchone()
        assert row["state"] == "done", row
        desk = next(d for d in house.desks.values() if d.node["id"] == row["node_id"])
        assert desk.db.execute("SELECT state FROM recalls WHERE id = ?", (row["id"],)).fetchone()["state"] == "done"
        kept, released = set(json.loads(row["kept_sold"])), set(json.loads(row["released"]))
        assert kept | released == set(recall["seat_ids"]) and not kept & released
        assert kept <= _sold(desk.db, performance)  # (a released seat may come back and be sold later)


@pytest.mark.slow  # about 10 s
@pytest.mark.parametrize("seed", SEEDS)
async def test_offline_desks_and_the_online_hub_never_sell_a_seat_twice(house, seed):
    rng = random.Random(seed)
    performance = rng.choice(house.ids["performances"])
    active = rng.sample(by_place(house.db, performance), ACTIVE_SEATS)
    # the office splits the active seats between hub, desk A, desk B and blocked
    split: dict[str, list[str]] = {}
    for seat in active:
        split.setdefault(rng.choice([contingents.HUB, contingents.BLOCKED,
                                     *(d.pool for d in house.desks.values())]), []).append(seat)
    for pool, seats in split.items():
        assert contingents.move_seats(house.db, performance, seats, pool, utcnow())["recalls"] == []
    await reconnect(rng, house, performance, active)
    for desk in house.desks.values():
        assert contingents.pools(desk.db, performance) == contingents.pools(house.db, performance)

    for _epoch in range(rng.randint(1, 2)):
        # the hub is away for the desks: they sell from their pools; the hub sells online and
        # the office moves seats, recalls from the (offline) desks included
        for _ in range(OFFLINE_STEPS):
            random_step(rng, house, performance, active)
        # all reconnect, in random order; now and then the others go on selling in between
        await reconnect(rng, house, performance, active, busy_passes=rng.choice((0, 0, 1, 2)))
        check(house, performance)
    assert sum(len(d.sales) for d in house.desks.values()) > 0
