"""A new customer created at a cash desk while the hub is down (issue 14: a subscriber at the
counter), pushed later: the hub stores it with the desk's number and id, the row comes back to
the desk unchanged and reaches a second desk; and every forged or replayed `customer.created`
is a conflict that changes nothing at the hub. Real hub app and real edges over loopback."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import msgspec
import pytest

from core.base.clock import iso, utcnow
from core.base.errors import Conflict
from core.catalog.customers import CustomerIn
from core.sales.desk_customers import create_at_desk, customer_series
from edge.sync.client import SyncError
from hub.app import make_app
from tests.test_desk_api import enrolled_edge, expect, login, sale_body
from tests.test_sync import enrolled
from tests.test_trust_no_device import conflicts, digest, inject, results, tamper

NEW = {"salutation": "Frau", "first_name": "Henriette", "last_name": "Abonnentin", "company": "",
       "address": {"street": "Theaterplatz 3", "postcode": "01067", "town": "Dresden", "country": "DE"},
       "email": "henriette@example.org", "phone": "+49 351 123456"}


def row(db, customer_id: str) -> dict | None:
    found = db.execute("SELECT * FROM customers WHERE id = ?", (customer_id,)).fetchone()
    return dict(found) if found else None


def node_of(db) -> dict:
    return db.execute("SELECT * FROM node").fetchone()


def customer_in(**changes) -> CustomerIn:
    return msgspec.convert({**NEW, **changes}, CustomerIn)


# --- the desk's endpoint, offline, and the real sync both ways ---------------------------------------------------


async def test_a_desk_creates_customers_offline_and_they_reach_the_hub_and_another_desk(hub, tmp_path,
                                                                                          aiohttp_client,
                                                                                          aiohttp_server):
    edge = await enrolled_edge(hub, tmp_path)
    desk = await aiohttp_client(edge.app())
    desk.edge = edge
    second = None
    try:
        await expect(await desk.post("/api/customers", json=NEW), 401)
        await login(desk)
        port = hub.server.port
        await hub.server.close()  # the network is down

        created = await expect(await desk.post("/api/customers", json=NEW), 201)
        other = await expect(await desk.post("/api/customers", json={**NEW, "first_name": "Karl",
                                                                     "email": None, "phone": None}), 201)
        series = customer_series(edge.node["id"])
        year = utcnow().year
        assert created["number"] == f"{series}-{year}-000001" and other["number"] == f"{series}-{year}-000002"
        assert re.fullmatch(r"KD[0-9A-F]{6}", series) and series.endswith(edge.node["id"][-6:].upper())
        assert {k: created[k] for k in NEW} == NEW and created["active"] is True
        assert uuid.UUID(created["id"]).version == 7
        found = await expect(await desk.get("/api/customers", params={"q": "Abonnentin"}), 200)
        assert {c["id"] for c in found} == {created["id"], other["id"]}  # the desk's search index has them
        # a sale for the new customer, still offline (its order op follows the customer op)
        order = await expect(await desk.post("/api/orders", json={**sale_body(hub, vouchers=0),
                                                                  "customer_id": created["id"]}), 201)
        with pytest.raises(SyncError):
            await edge.client.push()
        assert row(hub.db, created["id"]) is None
        local = row(edge.db, created["id"])

        server = await aiohttp_server(make_app(hub.db), port=port)  # the network is back
        assert str(server.make_url("")).rstrip("/") == hub.url
        result = await edge.client.round()
        assert result.rejected == 0 and result.pushed >= 3, conflicts(hub)
        assert row(hub.db, created["id"]) == local  # same id, number, fields and times as the desk's
        assert row(hub.db, other["id"])["number"] == other["number"]
        assert hub.db.execute("SELECT customer_id FROM orders WHERE id = ?",
                              (order["order"]["id"],)).fetchone()["customer_id"] == created["id"]
        # the hub's row came back through the feed: the desk's row is the same, found once
        await edge.client.round()
        assert row(edge.db, created["id"]) == local
        found = await expect(await desk.get("/api/customers", params={"q": "Henriette"}), 200)
        assert [c["id"] for c in found] == [created["id"]]

        second = await enrolled_edge(hub, tmp_path, name="Kasse 2")
        assert row(second.db, created["id"]) == local
        at_hub = hub.db.execute("SELECT count(*) AS n FROM customers").fetchone()["n"]
        assert second.db.execute("SELECT count(*) AS n FROM customers").fetchone()["n"] == at_hub
    finally:
        if second is not None:
            await second.close()
        await edge.close()


@pytest.mark.parametrize(("change", "field"), [
    ({"email": "not-an-address"}, "email"),
    ({"phone": "call me"}, "phone"),
    ({"address": {**NEW["address"], "postcode": "1067"}}, "address.postcode"),
    ({"address": {"street": "Theaterplatz 3", "town": "Dresden"}}, "address.postcode"),
    ({"last_name": " "}, "last_name"),
    ({"iban": "DE02120300000000202051"}, "iban"),
], ids=["email", "phone", "postcode-de", "postcode-missing", "blank-last-name", "unknown-field"])
async def test_bad_input_at_the_desk_is_a_422_naming_the_field_and_stores_nothing(hub, tmp_path, aiohttp_client,
                                                                                   change, field):
    edge = await enrolled_edge(hub, tmp_path)
    desk = await aiohttp_client(edge.app())
    desk.edge = edge
    try:
        await login(desk)
        before = edge.db.execute("SELECT count(*) AS n FROM customers").fetchone()["n"]
        problem = await expect(await desk.post("/api/customers", json={**NEW, **change}), 422)
        assert problem["field"] == field, problem
        assert edge.db.execute("SELECT count(*) AS n FROM customers").fetchone()["n"] == before
        assert edge.db.execute("SELECT count(*) AS n FROM outbox WHERE kind = 'customer.created'").fetchone()["n"] == 0
    finally:
        await edge.close()


async def test_two_offline_desks_and_a_counter_never_clash(hub, tmp_path):
    made = []
    clients = []
    try:
        for role, name in (("cashdesk", "Kasse 1"), ("cashdesk", "Kasse 2"), ("counter", "Theke")):
            _, db, client = await enrolled(hub, tmp_path, role=role, name=name)
            clients.append(client)
            made.append((db, client, create_at_desk(db, node_of(db), customer_in(), utcnow())))
        assert len({c["number"] for _, _, c in made}) == 3
        for db, client, customer in made:
            await client.push()
            assert results(db) == ["applied"]
            assert row(hub.db, customer["id"]) == row(db, customer["id"])
    finally:
        for client in clients:
            await client.close()


# --- attacks: each a conflict that changes nothing ---------------------------------------------------------------


def _hub_series(body: dict) -> None:
    body["number"] = f"KD-{utcnow().year}-000001"


ATTACKS = {
    "number-of-hub-series": (_hub_series, "not from this node's series"),
    "number-of-other-year": (lambda b: b.update(number=re.sub(r"-\d{4}-", "-2019-", b["number"])),
                             "not from the year"),
    "number-malformed": (lambda b: b.update(number=b["number"].replace("-", "'")), "not from this node"),
    "node-id-of-hub": (lambda b: b.update(node_id=str(uuid.UUID(int=7))), "another node"),
    "bad-email": (lambda b: b["customer"].update(email="nobody"), "malformed customer.created"),
    "bad-postcode": (lambda b: b["customer"]["address"].update(postcode="123"), "postcode"),
    "no-address": (lambda b: b["customer"].pop("address"), "malformed customer.created"),
    "unknown-field": (lambda b: b["customer"].update(iban="DE02120300000000202051"), "malformed customer.created"),
    "nul-in-name": (lambda b: b["customer"].update(last_name="Abonnentin\x00"), "holds a NUL character"),
    "created-ahead": (lambda b: b.update(created_at="2099-01-01T00:00:00Z"), "after the hub's time"),
    "id-not-uuid7": (lambda b: b.update(id=str(uuid.uuid4())), "not a UUIDv7"),
}


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
async def test_a_forged_customer_op_is_a_conflict_that_changes_nothing(hub, tmp_path, attack):
    change, reason = ATTACKS[attack]
    _, db, client = await enrolled(hub, tmp_path)
    try:
        customer = create_at_desk(db, node_of(db), customer_in(), utcnow())
        tamper(db, "customer.created", change)
        before = digest(hub.db)
        await client.push()
        [conflict] = conflicts(hub)
        assert results(db) == [f"rejected: {conflict['reason']}"] and reason in conflict["reason"], conflict
        assert digest(hub.db) == before and row(hub.db, customer["id"]) is None
    finally:
        await client.close()


@pytest.mark.parametrize("column", ["id", "wall_time", "boot_id"])
async def test_a_nul_in_an_ops_envelope_refuses_the_push_and_changes_nothing(hub, tmp_path, column):
    """The op's own fields (not its body) with U+0000: the whole push is refused as malformed on
    both backends (PostgreSQL's text cannot hold it: it was a 500 there), the hub unchanged, the
    op still waiting at the desk; the desk's next honest push goes through."""
    _, db, client = await enrolled(hub, tmp_path)
    try:
        customer = create_at_desk(db, node_of(db), customer_in(), utcnow())
        honest = db.execute(f"SELECT {column} AS v FROM outbox WHERE kind = 'customer.created'").fetchone()["v"]
        db.execute(f"UPDATE outbox SET {column} = ? WHERE kind = 'customer.created'", (honest + "\x00",))
        before = digest(hub.db)
        with pytest.raises(SyncError, match="400"):
            await client.push()
        assert digest(hub.db) == before and row(hub.db, customer["id"]) is None
        assert results(db) == [None]
        db.execute(f"UPDATE outbox SET {column} = ? WHERE kind = 'customer.created'", (honest,))
        await client.push()
        assert results(db) == ["applied"] and row(hub.db, customer["id"]) == row(db, customer["id"])
    finally:
        await client.close()


async def test_another_desks_customer_replayed_or_renumbered_is_refused(hub, tmp_path):
    """Desk 2 pushes desk 1's op as it is (node id of desk 1), or with its own node id but
    desk 1's number: both refused; desk 1's own push then applies."""
    _, one, one_client = await enrolled(hub, tmp_path)
    _, two, two_client = await enrolled(hub, tmp_path, name="Kasse 2")
    try:
        customer = create_at_desk(one, node_of(one), customer_in(), utcnow())
        body = json.loads(one.execute("SELECT body FROM outbox WHERE kind = 'customer.created'").fetchone()["body"])
        before = digest(hub.db)
        inject(two, "customer.created", body)
        inject(two, "customer.created", {**body, "node_id": node_of(two)["id"]})
        await two_client.push()
        assert [c["reason"] for c in conflicts(hub)] == [
            "customer recorded by another node than the one that pushed it",
            f"customer number {customer['number']} is not from this node's series "
            f"{customer_series(node_of(two)['id'])}"]
        assert digest(hub.db) == before
        await one_client.push()
        assert results(one) == ["applied"] and row(hub.db, customer["id"]) == row(one, customer["id"])
    finally:
        await one_client.close()
        await two_client.close()


async def test_a_gate_may_not_create_customers(hub, tmp_path):
    _, desk, desk_client = await enrolled(hub, tmp_path)
    venue = hub.ids["museum_venues"]["Stadtmuseum"]
    _, gate, gate_client = await enrolled(hub, tmp_path, role="gate", name="Tor 1", venues=[venue])
    try:
        create_at_desk(desk, node_of(desk), customer_in(), utcnow())
        body = json.loads(desk.execute("SELECT body FROM outbox").fetchone()["body"])
        with pytest.raises(Conflict):
            create_at_desk(gate, node_of(gate), customer_in(), utcnow())
        before = digest(hub.db)
        inject(gate, "customer.created", {**body, "node_id": node_of(gate)["id"],
                                          "number": f"{customer_series(node_of(gate)['id'])}-{utcnow().year}-000001"})
        await gate_client.push()
        assert results(gate) == ["rejected: a gate node may not send customer.created"]
        assert digest(hub.db) == before
    finally:
        await desk_client.close()
        await gate_client.close()


async def test_same_id_other_data_is_refused_identical_repush_and_duplicates_change_nothing(hub, tmp_path):
    _, db, client = await enrolled(hub, tmp_path)
    try:
        customer = create_at_desk(db, node_of(db), customer_in(), utcnow())
        await client.push()
        stored = row(hub.db, customer["id"])
        body = json.loads(db.execute("SELECT body FROM outbox").fetchone()["body"])
        before = digest(hub.db)
        other = {**body, "customer": {**body["customer"], "last_name": "Untergeschoben"}}
        inject(db, "customer.created", other)  # a new op (node_seq) with the same id: other content
        inject(db, "customer.created", body)  # the same content again: a no-op
        await client.push()
        refusal = f"customer {customer['id']} exists already with other data"
        assert results(db) == ["applied", f"rejected: {refusal}", "applied"]
        assert [c["reason"] for c in conflicts(hub)] == [refusal]
        db.execute("UPDATE sync_state SET pushed_seq = 0")  # the whole outbox pushed again (a lost answer)
        await client.push()
        assert results(db) == ["duplicate", f"duplicate: {refusal}", "duplicate"]
        after = digest(hub.db)
        # only the node's "last heard of" mark moved (the identical op counts as applied)
        assert {t for t in before if before[t] != after[t]} <= {"node_op_marks"}
        assert row(hub.db, customer["id"]) == stored
    finally:
        await client.close()


async def test_a_desk_clock_ahead_gets_the_hubs_creation_time_back(hub, tmp_path):
    """A desk whose clock runs an hour ahead: the customer is kept at the hub's time (noted for
    the office), and the desk's row takes the hub's time with the next pull."""
    _, db, client = await enrolled(hub, tmp_path)
    try:
        customer = create_at_desk(db, node_of(db), customer_in(), utcnow() + dt.timedelta(hours=1))
        before_push = utcnow()
        result = await client.round()
        assert results(db) == ["applied"] and result.rejected == 0
        stored = row(hub.db, customer["id"])
        assert iso(before_push) <= stored["created_at"] <= iso(utcnow()) < customer["created_at"]
        assert "clock ahead" in conflicts(hub)[0]["reason"]
        await client.round()
        assert row(db, customer["id"]) == stored
    finally:
        await client.close()
