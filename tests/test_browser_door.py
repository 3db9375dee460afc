"""The desk's own door (DESIGN §12: a kiosk browser may open a hostile page). Each attack
worked on the previous main: a page from elsewhere, or a rebound host name, could sell the
desk's contingent through `POST /api/sales` with no operator logged in, an operator name and
payment of its choosing, from a `text/plain` body. Now every state-changing desk and gate
request needs the desk's own host name, its own origin, a JSON body, and (for sales) the
operator's session; the operator comes from the session."""

from __future__ import annotations

import json

import pytest

from core.base.clock import utcnow
from core.sales import contingents
from tests.test_desk_api import desk, enrolled_edge  # noqa: F401 - fixtures
from tests.test_desk_api import login as log_in

PIN = "4711"


def seats_for(desk_client, n: int = 2) -> tuple[str, list[str]]:
    """Give the desk *n* seats of the first performance (at the hub) and pull them."""
    hub_db = desk_client.hub.db
    performance = desk_client.hub.ids["performances"][0]
    seats = list(contingents.seats_of(hub_db, performance))[:n]
    contingents.move_seats(hub_db, performance, seats, contingents.node_pool(desk_client.edge.node["id"]), utcnow())
    return performance, seats


def sold(desk_client) -> int:
    return desk_client.edge.db.execute("SELECT count(*) AS n FROM tickets").fetchone()["n"]


@pytest.fixture
async def seller(desk, hub):  # noqa: F811 - the fixtures above
    desk.hub = hub
    performance, seats = seats_for(desk)
    await desk.edge.client.round()
    desk.sale = {"performance_id": performance, "seat_ids": seats, "payment_method": "cash"}
    return desk


async def test_a_cross_site_text_plain_sale_is_refused(seller):
    """What a hostile page in the kiosk browser can send without the browser asking first."""
    origin = f"http://{seller.server.host}:{seller.server.port}"
    await log_in(seller, "Anna")  # even with a cashier logged in at the desk
    resp = await seller.post("/api/sales", data=json.dumps({**seller.sale, "payment_method": "none"}),
                             headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert resp.status == 403 and (await resp.json())["type"].endswith("cross-origin")
    resp = await seller.post("/api/sales", data=json.dumps(seller.sale), headers={"Content-Type": "text/plain",
                                                                                   "Origin": origin})
    assert resp.status == 415
    resp = await seller.post("/api/sales", json=seller.sale, headers={"Sec-Fetch-Site": "cross-site"})
    assert resp.status == 403
    assert sold(seller) == 0


async def test_a_rebound_host_name_is_refused(seller):
    """DNS rebinding: a hostile name that resolves to the desk; the browser sends its Host."""
    await log_in(seller, "Anna")
    for host in ("evil.example", "evil.example:8081", "192.0.2.7"):
        resp = await seller.post("/api/sales", json=seller.sale, headers={"Host": host, "Origin": f"http://{host}"})
        assert resp.status == 403 and (await resp.json())["type"].endswith("unknown-host"), host
        resp = await seller.post("/api/login", json={"operator_id": "x", "pin": PIN}, headers={"Host": host})
        assert resp.status == 403
    assert sold(seller) == 0


async def test_a_sale_needs_the_session_and_its_operator_sells(seller):
    resp = await seller.post("/api/sales", json=seller.sale)
    assert resp.status == 401 and sold(seller) == 0
    await log_in(seller, "Anna")
    resp = await seller.post("/api/sales", json={**seller.sale, "operator": "Mallory"})
    assert resp.status == 422 and "operator" in (await resp.json())["detail"]  # the body names no operator
    resp = await seller.post("/api/sales", json={**seller.sale, "payment_method": "none"})
    assert resp.status == 422 and sold(seller) == 0  # the desk takes cash or card
    origin = f"http://{seller.server.host}:{seller.server.port}"
    resp = await seller.post("/api/sales", json=seller.sale, headers={"Origin": origin})
    body = await resp.json()
    assert resp.status == 201 and body["operator"] == "Anna" and sold(seller) == 2


async def test_every_state_changing_desk_request_wants_json(seller):
    await log_in(seller, "Anna")
    for path in ("/api/logout", "/api/orders", "/api/print-jobs/retry", "/api/vouchers/redeem"):
        resp = await seller.post(path, data="{}", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status == 415, path
    # reads stay open to the kiosk's own pages and tools
    assert (await seller.get("/api/status")).status == 200


async def test_configured_host_names_are_answered(hub, tmp_path, aiohttp_client):  # noqa: F811
    """A tablet opening the desk by a LAN name works once desk.toml lists that name."""
    edge = await enrolled_edge(hub, tmp_path, desk_toml='[web]\nhosts = ["kasse-2.example"]\n')
    client = await aiohttp_client(edge.app())
    try:
        operator = edge.db.execute("SELECT id FROM operators WHERE name = 'Anna'").fetchone()["id"]
        resp = await client.post("/api/login", json={"operator_id": operator, "pin": PIN},
                                 headers={"Host": "kasse-2.example:8081", "Origin": "http://kasse-2.example:8081"})
        assert resp.status == 200
        resp = await client.post("/api/login", json={"operator_id": operator, "pin": PIN},
                                 headers={"Host": "kasse-3.example"})
        assert resp.status == 403
    finally:
        await edge.close()


def test_a_desk_session_ends_when_the_till_is_left_alone(monkeypatch):
    """Issue 11: an idle timeout on desk sessions (each use moves it on), and a shift's end."""
    from edge.desk import api
    clock = [1000.0]
    monkeypatch.setattr(api.time, "monotonic", lambda: clock[0])
    sessions = api.Sessions(lifetime_s=3600, idle_s=600)
    sid = sessions.create({"id": "o1", "name": "Anna"})
    clock[0] += 599
    assert sessions.get(sid)["name"] == "Anna"  # in use: the idle time starts again
    clock[0] += 599
    assert sessions.get(sid)["name"] == "Anna"
    clock[0] += 601
    assert sessions.get(sid) is None and sessions.get(sid) is None  # left alone: gone for good
    start = clock[0]
    busy = sessions.create({"id": "o1", "name": "Anna"})
    while sessions.get(busy) is not None:  # used every 9 minutes: still one shift at most
        clock[0] += 540
    assert 3600 <= clock[0] - start < 3600 + 540
