"""The office side of annual tickets over real HTTP (A6, A8): phone orders, staff personalization,
fulfilment moves, lost cards, operators (API and CLI)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.base.clock import utcnow
from core.base.node import this_node
from core.cards.access import Access, GateRules
from core.cards.trusted_time import TrustedClock
from core.sales import orders
from core.sales.orders import LineIn, OrderIn
from tests.helpers import call, problem, table_counts

ROOT = Path(__file__).resolve().parents[1]
TESSERA = ROOT / ".venv" / "bin" / "tessera"
VERBUND, STADTMUSEUM_ONLY = 0, 1  # sample products: 0 sold by phone, 1 only online and at the desk


async def a_customer(api) -> str:
    return (await call(api, "GET", "/customers?limit=1", status=200))["items"][0]["id"]


async def phone_order(api, holders: list[str], delivery: str, product: int = VERBUND, **extra) -> dict:
    body = {"lines": [{"product_id": api.hub.ids["annual_products"][product], "quantity": len(holders),
                       "holders": [{"name": name} for name in holders]}],
            "customer_id": await a_customer(api), "delivery": delivery, "payment_method": "transfer", **extra}
    return await call(api, "POST", "/orders", body, status=201)


def cards_of(order: dict) -> list[dict]:
    return [item["card"] for item in order["items"]]


async def print_all(api) -> None:
    """Everything queued goes through the printer (the default folder printer of the hub)."""
    for kind in ("card", "carrier"):
        await call(api, "POST", "/print-batches", {"kind": kind})


def decide(db, code: str, venue: str = "Stadtmuseum") -> str:
    venue_id = None if venue is None else _venues(db)[venue]
    return Access(db, GateRules(venue_id=venue_id), TrustedClock(db)).decide(code).reason


def _venues(db) -> dict:
    return {r["name"]: r["id"] for r in db.execute("SELECT id, name FROM venues")}


async def test_a_phone_order_by_mail_issues_personalized_cards_with_print_jobs(api):
    order = await phone_order(api, ["Erika Mustermann", "Max Mustermann"], "mail",
                              payment_reference="Tel. 0421-123")
    assert order["channel"] == "phone" and order["delivery"] == "mail" and order["total_cents"] == 2 * 6500
    assert order["operator"] == "first admin (hub init)"  # who sold it, when no operator is given
    issued = cards_of(order)
    assert [c["holder_name"] for c in issued] == ["Erika Mustermann", "Max Mustermann"]
    assert {(c["fulfilment"], c["delivery"], c["customer_id"]) for c in issued} == \
        {("personalized", "mail", order["customer_id"])}
    for card in issued:
        assert decide(api.hub.db, card["code"]) == "ADMITTED"
    jobs = (await call(api, "GET", "/print-jobs?state=queued", status=200))["items"]
    assert sorted((j["kind"], j["ref_id"]) for j in jobs) == sorted(
        (kind, c["id"]) for c in issued for kind in ("card", "carrier"))  # a mailed card gets its carrier
    assert {j["card_number"] for j in jobs} == {c["number"] for c in issued}

    assert await call(api, "GET", f"/orders/{order['id']}", status=200) == order
    listed = await call(api, "GET", f"/orders?channel=phone&customer_id={order['customer_id']}", status=200)
    assert [o["id"] for o in listed["items"]] == [order["id"]] and listed["total"] == 1
    assert (await call(api, "GET", "/orders?channel=shop", status=200))["total"] == 0
    mine = await call(api, "GET", "/cards?fulfilment=personalized&delivery=mail", status=200)
    assert {c["id"] for c in mine["items"]} == {c["id"] for c in issued}
    assert (await call(api, "GET", "/cards?delivery=pickup", status=200))["total"] == 0


async def test_pickup_orders_get_no_carrier(api):
    order = await phone_order(api, ["Paula Abholer"], "pickup")
    (card,) = cards_of(order)
    jobs = (await call(api, "GET", "/print-jobs", status=200))["items"]
    assert [(j["kind"], j["ref_id"]) for j in jobs] == [("card", card["id"])]


async def test_refused_phone_orders_store_nothing(api):
    ids = api.hub.ids
    customer = await a_customer(api)
    before = table_counts(api.hub.db)
    line = {"product_id": ids["annual_products"][VERBUND], "quantity": 2, "holders": [{"name": "Nur Eine"}]}
    base = {"customer_id": customer, "delivery": "mail", "payment_method": "transfer"}
    missing = await problem(api, "POST", "/orders", {"lines": [line], **base}, status=422, slug="validation-failed")
    assert missing["field"] == "lines[0].holders" and "one holder per card" in missing["detail"]
    no_holders = {**line, "quantity": 1, "holders": None}
    await problem(api, "POST", "/orders", {"lines": [no_holders], **base}, status=422, slug="validation-failed")
    not_by_phone = {"product_id": ids["annual_products"][STADTMUSEUM_ONLY], "holders": [{"name": "X"}]}
    refused = await problem(api, "POST", "/orders", {"lines": [not_by_phone], **base}, status=409, slug="conflict")
    assert "not on sale through this channel (phone)" in refused["detail"]
    one = {**line, "quantity": 1}
    await problem(api, "POST", "/orders", {"lines": [one], **base, "delivery": "counter"}, status=422,
                  slug="validation-failed")
    await problem(api, "POST", "/orders", {"lines": [one], "delivery": "mail", "payment_method": "transfer"},
                  status=422, slug="validation-failed")  # a phone order needs a customer
    await problem(api, "POST", "/orders", {"lines": [one], **base, "customer_id": ids["annual_products"][0]},
                  status=404, slug="not-found")
    await problem(api, "POST", "/orders", {"lines": [one], **base, "channel": "shop"}, status=400,
                  slug="unknown-field")
    assert table_counts(api.hub.db) == before


async def test_staff_personalize_a_shop_item_for_the_customer(api):
    db = api.hub.db
    shop = OrderIn(lines=[LineIn(product_id=api.hub.ids["annual_products"][VERBUND], quantity=2)],
                   customer_id=await a_customer(api), delivery="pickup", payment_method="online")
    placed = orders.place_order(db, this_node(db), None, shop, channel="shop", now=utcnow())
    first, second = (item["id"] for item in placed["items"])
    card = await call(api, "POST", f"/order-items/{first}/personalize",
                      {"name": "Greta Anrufer", "birth_date": "1950-04-01"}, status=201)
    assert (card["holder_name"], card["holder_birth_date"], card["fulfilment"], card["delivery"]) == \
        ("Greta Anrufer", "1950-04-01", "personalized", "pickup")
    assert decide(db, card["code"]) == "ADMITTED"
    view = await call(api, "GET", f"/orders/{placed['id']}", status=200)
    assert [i["card_id"] for i in view["items"]] == [card["id"], None]
    assert [j["ref_id"] for j in (await call(api, "GET", "/print-jobs?kind=card", status=200))["items"]] == \
        [card["id"]]
    await problem(api, "POST", f"/order-items/{first}/personalize", {"name": "Noch mal"}, status=409,
                  slug="conflict")
    await problem(api, "POST", f"/order-items/{second}/personalize", {"name": " "}, status=422,
                  slug="validation-failed")
    await problem(api, "POST", "/order-items/01900000-0000-7000-8000-000000000000/personalize", {"name": "X"},
                  status=404, slug="not-found")


async def test_fulfilment_moves_in_bulk_all_or_nothing(api):
    mail = cards_of(await phone_order(api, ["Post Eins", "Post Zwei"], "mail"))
    pickup = cards_of(await phone_order(api, ["Abhol Eins"], "pickup"))
    mail_ids, pickup_ids = [c["id"] for c in mail], [c["id"] for c in pickup]

    early = await problem(api, "POST", "/cards/fulfilment", {"card_ids": mail_ids, "state": "dispatched"},
                          status=409, slug="conflict")
    assert mail[0]["number"] in early["detail"] and "from personalized to dispatched" in early["detail"]
    await print_all(api)
    printed = await call(api, "GET", "/cards?fulfilment=printed", status=200)
    assert {c["id"] for c in printed["items"]} == set(mail_ids + pickup_ids)

    # one mail card among the pickup ones: nothing moves, the 409 names the card
    mixed = await problem(api, "POST", "/cards/fulfilment", {"card_ids": pickup_ids + [mail_ids[1]],
                                                           "state": "deposited"}, status=409, slug="conflict")
    assert mail[1]["number"] in mixed["detail"] and "goes by mail" in mixed["detail"]
    assert (await call(api, "GET", "/cards?fulfilment=deposited", status=200))["total"] == 0

    dispatched = await call(api, "POST", "/cards/fulfilment", {"card_ids": mail_ids, "state": "dispatched"},
                            status=200)
    assert {(c["id"], c["fulfilment"]) for c in dispatched} == {(i, "dispatched") for i in mail_ids}
    for state in ("deposited", "handed_over"):
        moved = await call(api, "POST", "/cards/fulfilment", {"card_ids": pickup_ids, "state": state}, status=200)
        assert [c["fulfilment"] for c in moved] == [state]
    backwards = await problem(api, "POST", "/cards/fulfilment", {"card_ids": pickup_ids, "state": "printed"},
                              status=409, slug="conflict")
    assert "from handed_over to printed" in backwards["detail"]
    await problem(api, "POST", "/cards/fulfilment", {"card_ids": ["01900000-0000-7000-8000-000000000000"],
                                                     "state": "printed"}, status=404, slug="not-found")
    await problem(api, "POST", "/cards/fulfilment", {"card_ids": mail_ids, "state": "lost"}, status=422,
                  slug="validation-failed")
    await problem(api, "GET", "/cards?fulfilment=lost", status=400, slug="invalid-parameter")
    await problem(api, "GET", "/cards?delivery=drone", status=400, slug="invalid-parameter")


async def test_a_lost_card_is_replaced_and_its_old_code_superseded(api):
    (card,) = cards_of(await phone_order(api, ["Verlier Ich"], "mail"))
    await print_all(api)
    await call(api, "POST", "/cards/fulfilment", {"card_ids": [card["id"]], "state": "dispatched"}, status=200)

    new = await call(api, "POST", f"/cards/{card['id']}/replace", status=200)
    assert (new["id"], new["number"], new["issue"]) == (card["id"], card["number"], 2)
    assert new["code"] != card["code"] and new["fulfilment"] == "personalized"
    db = api.hub.db
    assert decide(db, card["code"]) == "SUPERSEDED"
    assert decide(db, new["code"]) == "ADMITTED"
    jobs = (await call(api, "GET", "/print-jobs?state=queued", status=200))["items"]
    assert sorted((j["kind"], j["card_issue"]) for j in jobs) == [("card", 2), ("carrier", 2)]
    await problem(api, "POST", "/cards/01900000-0000-7000-8000-000000000000/replace", status=404,
                  slug="not-found")
    voucher_like = await call(api, "POST", "/cards", {"product_id": api.hub.ids["annual_products"][0],
                                                      "kind": "voucher"}, status=201)
    await problem(api, "POST", f"/cards/{voucher_like['id']}/replace", status=409, slug="conflict")


async def test_operators_api_never_shows_the_pin(api):
    anna = await call(api, "POST", "/operators", {"name": "Anna", "pin": "4711"}, status=201)
    assert set(anna) == {"id", "name", "active", "created_at", "updated_at"} and anna["active"] is True
    bert = await call(api, "POST", "/operators", {"name": "Bert", "pin": "123456", "active": False}, status=201)
    listed = await call(api, "GET", "/operators", status=200)
    assert [o["name"] for o in listed] == ["Anna", "Bert"]
    assert [o["name"] for o in await call(api, "GET", "/operators?active=true", status=200)] == ["Anna"]
    changed = await call(api, "PUT", f"/operators/{bert['id']}", {"name": "Berta", "pin": "0815"}, status=200)
    assert changed["name"] == "Berta" and changed["active"] is True
    raw = (await (await api.get("/api/v1/operators", headers=api.hub.headers())).read()).decode()
    assert "pin" not in raw and "scrypt" not in raw
    await problem(api, "POST", "/operators", {"name": "Anna", "pin": "9999"}, status=409, slug="conflict")
    await problem(api, "PUT", f"/operators/{bert['id']}", {"name": "Anna", "pin": "9999"}, status=409,
                  slug="conflict")
    await problem(api, "POST", "/operators", {"name": "Carl", "pin": "12"}, status=422, slug="validation-failed")
    await problem(api, "PUT", "/operators/01900000-0000-7000-8000-000000000000", {"name": "X", "pin": "1234"},
                  status=404, slug="not-found")
    shop = (await call(api, "POST", "/tokens", {"name": "shop", "role": "shop"}, status=201))["token"]
    await problem(api, "GET", "/operators", status=403, slug="forbidden", token=shop)
    await problem(api, "POST", "/orders", {"lines": []}, status=403, slug="forbidden", token=shop)


def tessera(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(TESSERA), *args], cwd=ROOT, capture_output=True, text=True, timeout=60, input=stdin)


@pytest.mark.slow  # runs the real tessera command many times (about 15 s)
def test_operator_cli(sample_hub):
    folder = str(sample_hub.dir)
    added = tessera("hub", "operator", "add", "--data", folder, "--name", "Jörg", "--pin", "1234")
    assert added.returncode == 0, added.stderr
    assert "Jörg" in added.stdout
    piped = tessera("hub", "operator", "add", "--data", folder, "--name", "Ida", "--pin", "-", "--inactive",
                    stdin="98765\n")
    assert piped.returncode == 0, piped.stderr
    listed = tessera("hub", "operator", "list", "--data", folder)
    assert listed.returncode == 0
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(name, state) for name, state, _ in lines] == [("Ida", "inactive"), ("Jörg", "active")]
    assert "scrypt" not in listed.stdout
    active = tessera("hub", "operator", "list", "--data", folder, "--active")
    assert [line.split("\t")[0] for line in active.stdout.splitlines()] == ["Jörg"]
    row = sample_hub.db.execute("SELECT pin_hash FROM operator_pins JOIN operators ON id = operator_id "
                                "WHERE name = 'Jörg'").fetchone()  # the hub's own, never replicated
    assert row["pin_hash"].startswith("scrypt$") and "1234" not in row["pin_hash"]

    for argv, message in ((["--name", "Jörg", "--pin", "1234"], "exists already"),
                          (["--name", "Kurz", "--pin", "12"], "4 to 8 digits")):
        refused = tessera("hub", "operator", "add", "--data", folder, *argv)
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.count("\n") == 1 and message in refused.stderr
    missing = tessera("hub", "operator", "list", "--data", str(sample_hub.dir / "nowhere"))
    assert missing.returncode == 1 and missing.stderr.startswith("tessera: error:")
    usage = tessera("hub", "operator")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1
    manual = tessera("hub", "operator", "add", "--help")
    assert manual.returncode == 0 and "--pin" in manual.stdout
