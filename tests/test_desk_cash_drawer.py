"""The desk's cash drawer (S11 "cash: given, change, float"): the cashier records the opening float,
sells for cash (the change handed back is not in the drawer), takes cash out to the safe, counts at
closing, and the day summary says what should be there and the difference. Offline too: the
entries are the desk's own; they reach the hub as `cash.moved` ops, once, and a forged one (another
node's, from the future, altered under the same id) is refused. A real edge enrolled at the real
hub over loopback; hostile bodies change nothing."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from core.base.clock import iso, utcnow
from core.base.node import this_node
from core.sales import cash_drawer
from core.sync.ops import Pushed
from tests.test_desk_api import desk, expect, login, sale_body  # noqa: F401 - the desk fixture

DRAWER = ("float_cents", "cash_takings_cents", "deposits_cents", "withdrawals_cents", "expected_cents",
          "counted_cents", "difference_cents")


@pytest.fixture
def till(desk):  # noqa: F811 - the enrolled desk of tests/test_desk_api.py, logged out
    return desk


def figures(drawer: dict) -> tuple:
    return tuple(drawer[k] for k in DRAWER)


async def test_float_sales_cash_out_and_count_give_the_difference_and_reach_the_hub_once(till, hub):
    await login(till, "Anna")
    for kind, cents, note in (("float", 15000, None), ("withdrawal", 5000, "Tresor"), ("deposit", 2000, None)):
        done = await expect(await till.post("/api/cash", json={"kind": kind, "amount_cents": cents, "note": note}),
                            201)
        assert done["entry"]["operator"] == "Anna"
    await expect(await till.post("/api/orders", json=sale_body(hub, vouchers=0, given=10000)), 201)  # 65 € cash
    summary = await expect(await till.get("/api/summary"), 200)
    assert figures(summary["drawer"]) == (15000, 6500, 2000, 5000, 18500, None, None)
    await expect(await till.post("/api/cash", json={"kind": "count", "amount_cents": 18000}), 201)
    drawer = (await expect(await till.get("/api/summary"), 200))["drawer"]
    assert (drawer["counted_cents"], drawer["difference_cents"]) == (18000, -500)  # 5 € short
    await expect(await till.post("/api/cash", json={"kind": "count", "amount_cents": 18500, "note": "nachgezählt"}),
                 201)
    drawer = (await expect(await till.get("/api/summary"), 200))["drawer"]
    assert drawer["difference_cents"] == 0 and len(drawer["entries"]) == 5  # the later count counts

    html = await (await till.get("/summary")).text()
    assert 'id="drawer-form"' in html and "Soll-Bestand" in html and "185,00" in html
    old = await (await till.get("/summary?day=2001-01-01")).text()
    assert 'id="drawer-form"' not in old  # entries go on today only

    await till.edge.client.round()
    stored = hub.db.execute("SELECT kind, amount_cents, operator, note FROM cash_movements WHERE node_id = ? "
                            "ORDER BY created_at, id", (till.edge.node["id"],)).fetchall()
    assert [(s["kind"], s["amount_cents"]) for s in stored] == [
        ("float", 15000), ("withdrawal", 5000), ("deposit", 2000), ("count", 18000), ("count", 18500)]
    assert cash_drawer.drawer(hub.db, till.edge.node["id"], dt.date.fromisoformat(drawer["day"]))[
        "difference_cents"] == 0  # the office sees the same closing


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "tip", "amount_cents": 100}, "kind"),
    ({"kind": "float", "amount_cents": -1}, "amount_cents"),
    ({"kind": "float", "amount_cents": 10**12}, "amount_cents"),
    ({"kind": "float", "amount_cents": 100, "note": "a\x00b"}, "note"),
    ({"kind": "float", "amount_cents": 100, "node_id": "x"}, "node_id"),
])
async def test_a_hostile_drawer_entry_is_refused_and_stores_nothing(till, body, field):
    await login(till, "Anna")
    before = till.edge.db.execute("SELECT count(*) AS n FROM cash_movements").fetchone()["n"]
    problem = await expect(await till.post("/api/cash", json=body), 422)
    assert problem.get("field") == field or field in problem["detail"]
    assert till.edge.db.execute("SELECT count(*) AS n FROM cash_movements").fetchone()["n"] == before


async def test_no_operator_no_entry(till):
    await expect(await till.post("/api/cash", json={"kind": "float", "amount_cents": 100}), 401)


def test_the_hub_refuses_a_forged_or_altered_drawer_entry(sample_hub):
    db, now = sample_hub.db, utcnow()
    node = this_node(db)["id"]  # a node with a certificate (here the hub's own)
    op = msgspec.convert({"id": "0190b0a0-0000-7000-8000-000000000001", "node_id": node, "kind": "float",
                          "amount_cents": 10000, "created_at": iso(now)}, cash_drawer.CashOp)
    pushed = Pushed(db=db, node_id=node, role="cashdesk", venue_ids=(), trust=None, now=now)
    cash_drawer.apply_pushed(pushed, op)
    cash_drawer.apply_pushed(pushed, op)  # the same op again: nothing new
    assert db.execute("SELECT count(*) AS n FROM cash_movements").fetchone()["n"] == 1
    for forged, says in ((msgspec.structs.replace(op, amount_cents=1), "other data"),
                         (msgspec.structs.replace(op, id="0190b0a0-0000-7000-8000-000000000002",
                                                  node_id="0190b0a0-0000-7000-8000-00000000ffff"), "another node"),
                         (msgspec.structs.replace(op, id="0190b0a0-0000-7000-8000-000000000003",
                                                  created_at=iso(now + dt.timedelta(days=2))), "after the hub"),
                         (msgspec.structs.replace(op, id="0190b0a0-0000-7000-8000-000000000005",
                                                  created_at="2001-01-01T00:00:00Z"), "before this node"),
                         (msgspec.structs.replace(op, id="0190b0a0-0000-4000-8000-000000000004"), "UUIDv7")):
        with pytest.raises(cash_drawer.Refused, match=says):
            cash_drawer.apply_pushed(pushed, forged)
    assert db.execute("SELECT count(*) AS n FROM cash_movements").fetchone()["n"] == 1
