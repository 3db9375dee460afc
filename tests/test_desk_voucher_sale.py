"""Choice-voucher subscriptions sold at the cash desk, offline (issue 15, S5), on a real cash desk
enrolled against a real hub over loopback HTTP.

The desk lists "Wahlgutschein 6er" (six vouchers of 25,00 EUR for 120,00 EUR) with its count,
value and offer; with the hub away it sells one at the disabled tier (84,00 EUR) through the same
`POST /api/subscriptions` as the seated kinds, issues the six vouchers in the sale's transaction
with its own card key and `W`-series numbers, and prints them as slips below the receipt in ONE
receipt-printer job, each slip's QR (decoded from the printed raster) the voucher's signed code.
When the hub is back the sale travels as `subscription.sold` with its vouchers: the hub sells it
again (package price with the tier from its own catalog) and stores the vouchers under the
desk's ids, numbers and codes, with its own value, tier and validity; the desk keeps its codes
after the pull, so a reprint still carries the QRs.

The bad day: a desk op with a forged code, a code another desk signed, one the desk signed for a
longer validity, a voucher missing or none at all, a wrong value, a wrong valid_until, a number
outside the desk's series, vouchers on a seated sale's op, a wrong tier and a replay (the same op,
or the same vouchers under a new sale) are each a conflict for the office that stores nothing.
At the desk a voucher sale with seats, dates, a zone or a form the product does not print is
refused with nothing stored; a printer fault keeps the sale and a retry prints the slips."""

from __future__ import annotations

import datetime as dt
import json
import re

import msgspec
import pytest

from core.base.clock import iso, utcnow
from core.base.ids import uuid7
from core.base.node import this_node
from core.base.storage import transaction
from core.cards import cardcode, cards
from core.printing import print_queue
from core.subscriptions import choice_vouchers
from core.subscriptions.sale import SubscriptionSaleIn, sell_subscriptions
from hub.app import make_app
from tests.helpers import table_counts
from tests.test_desk_api import enrolled_edge, expect, files, login
from tests.test_desk_subscription_sync import Desk, move, ring_party
from tests.test_desk_subscriptions_api import IMAGE_QR_PRINTER, customer, escpos_qr_codes, product_id, receipts
from tests.test_subscription_sale import product, tier
from tests.test_sync import enrolled
from tests.test_trust_no_device import conflicts, digest, inject, tamper

VOUCHER = "Wahlgutschein 6er"
DISABLED = "Schwerbehinderte (GdB ab 50)"
LEDGER = ("orders", "order_lines", "payments", "subscriptions", "tickets", "cards", "choice_vouchers", "print_jobs",
          "outbox")


def ledger(db) -> dict[str, int]:
    counts = table_counts(db)
    return {t: counts[t] for t in LEDGER}


def series_of(node_id: str) -> str:
    return "W" + node_id.replace("-", "")[-6:].upper()


def vouchers_of(db, subscription_id: str) -> list[dict]:
    return db.execute("SELECT * FROM choice_vouchers WHERE subscription_id = ? ORDER BY position",
                      (subscription_id,)).fetchall()


async def desk_client(hub, tmp_path, aiohttp_client, printer: str = IMAGE_QR_PRINTER):
    """A logged-in cash desk whose receipt printer writes QR codes as raster images."""
    (tmp_path / "receipt-printer.toml").write_text(printer)
    edge = await enrolled_edge(hub, tmp_path,
                               desk_toml=f'[printers]\nreceipt = "{tmp_path / "receipt-printer.toml"}"\n')
    client = await aiohttp_client(edge.app())
    client.edge = edge
    await login(client)
    return client


# --- the desk sells offline, prints, and the hub stores the same vouchers ------------------------------


async def test_vouchers_sold_offline_print_as_slips_and_reach_the_hub_under_the_desks_ids(hub, tmp_path,
                                                                                          aiohttp_client,
                                                                                          aiohttp_server):
    desk = await desk_client(hub, tmp_path, aiohttp_client)
    edge = desk.edge
    try:
        port = hub.server.port
        await hub.server.close()  # from here on the desk is offline

        listed = {p["name"]: p for p in (await expect(await desk.get("/api/subscription-products"), 200))["products"]}
        offer = listed[VOUCHER]
        assert (offer["kind"], offer["voucher_count"], offer["voucher_value_cents"], offer["price_cents"]) == \
            ("voucher", 6, 2500, 12000)
        assert offer["zones"] is None and offer["free_in_pool"] is None and offer["forms"] == ["pass"]
        assert len(offer["performances"]) == 11 and DISABLED in {t["name"] for t in offer["tiers"]}
        disabled = tier(edge.db, offer["id"], DISABLED)
        body = {"product_id": offer["id"], "customer_id": customer(edge), "tier_id": disabled,
                "holder_name": "Greta Wolf", "payment_method": "cash"}
        quote = await expect(await desk.post("/api/subscription-quote", json=body), 200)
        assert quote == {"total_cents": 8400, "members": [{"price_cents": 8400, "zone_id": None}]}

        before = ledger(edge.db)
        sold = await expect(await desk.post("/api/subscriptions", json={**body, "given_cents": 10000}), 201)
        assert sold["order"]["total_cents"] == 8400 and sold["change_cents"] == 1600
        (sub,) = sold["subscriptions"]
        assert sub["tickets"] == [] and sub["tier_id"] == disabled and sub["price_cents"] == 8400
        year, series = utcnow().year, series_of(edge.node["id"])
        assert [v["number"] for v in sub["vouchers"]] == [f"{series}-{year}-{k:06d}" for k in range(1, 7)]
        after = ledger(edge.db)
        assert {k: after[k] - before[k] for k in LEDGER} == {
            "orders": 1, "order_lines": 1, "payments": 1, "subscriptions": 1, "tickets": 0, "cards": 0,
            "choice_vouchers": 6, "print_jobs": 1, "outbox": 1}  # one op carries the sale and its vouchers

        # each code is signed by this desk's key: it verifies offline against the trust records
        at_desk = vouchers_of(edge.db, sub["id"])
        for v in at_desk:
            found = choice_vouchers.find(edge.db, code=v["code"])
            assert (found["id"], found["value_cents"], found["tier_name"], found["issued_by"]) == \
                (v["id"], 2500, DISABLED, edge.node["id"])
            assert choice_vouchers.state_at(found, utcnow()) == "open"

        # ONE receipt-printer job: the receipt, then a slip per voucher with its QR
        assert [o["state"] for o in sold["printing"]] == ["printed"] and sold["receipt"]["state"] == "printed"
        (printed,) = [p.read_bytes() for p in receipts(edge)]
        assert escpos_qr_codes(printed) == [v["code"] for v in at_desk]
        words = " ".join(re.sub(r"[\x00-\x1f]", " ", printed.decode("cp858", "replace")).split())
        assert "Greta Wolf, 6 x 25,00 € Wahlgutscheine 84,00 €" in words and "Wahlgutschein 1 von 6" in words
        assert all(v["number"].encode() in printed for v in at_desk)

        (op,) = edge.db.execute("SELECT body FROM outbox WHERE kind = 'subscription.sold'").fetchall()
        sent = json.loads(op["body"])["members"][0]["vouchers"]
        assert [(v["id"], v["number"], v["position"], v["code"]) for v in sent] == \
            [(v["id"], v["number"], v["position"], v["code"]) for v in at_desk]

        # the hub is back: the sale and its vouchers arrive, the same ids, numbers and codes
        await aiohttp_server(make_app(hub.db), port=port)
        result = await edge.client.round()
        assert result.rejected == 0, conflicts(hub)
        at_hub = vouchers_of(hub.db, sub["id"])
        until = iso(choice_vouchers.season_end(hub.db, offer["id"]))
        assert [(v["id"], v["number"], v["position"], v["code"]) for v in at_hub] == \
            [(v["id"], v["number"], v["position"], v["code"]) for v in at_desk]
        assert {(v["value_cents"], v["tier_id"], v["tier_name"], v["valid_until"], v["issued_by"], v["state"])
                for v in at_hub} == {(2500, disabled, DISABLED, until, edge.node["id"], "open")}
        hub_sub = hub.db.execute("SELECT * FROM subscriptions WHERE id = ?", (sub["id"],)).fetchone()
        assert (hub_sub["price_cents"], hub_sub["tier_id"], hub_sub["channel"]) == (8400, disabled, "cashdesk")
        assert choice_vouchers.find(hub.db, code=at_desk[0]["code"])["number"] == at_desk[0]["number"]

        # the desk keeps the codes of its own vouchers after the pull: a reprint has every QR again
        assert [v["code"] for v in vouchers_of(edge.db, sub["id"])] == [v["code"] for v in at_desk]
        with transaction(edge.db):
            job = print_queue.enqueue(edge.db, "receipt", sold["order"]["id"], None, utcnow())
        assert (await edge.printing.print_job(job)).state == "printed"
        newest = receipts(edge)[-1].read_bytes()
        assert escpos_qr_codes(newest) == [v["code"] for v in at_desk]
    finally:
        await edge.close()


async def test_a_receipt_printer_fault_keeps_the_voucher_sale_and_a_retry_prints_the_slips(hub, tmp_path,
                                                                                          aiohttp_client):
    blocker = tmp_path / "share"  # a file where the printer's folder should be: every write fails
    blocker.write_text("not a folder")
    missing = blocker / "printer-out"
    desk = await desk_client(hub, tmp_path, aiohttp_client,
                             IMAGE_QR_PRINTER.replace('"var/printer-out"', f'"{missing}"'))
    edge = desk.edge
    try:
        body = {"product_id": product_id(edge, VOUCHER), "customer_id": customer(edge), "payment_method": "card",
                "payment_reference": "TID 4711"}
        sold = await expect(await desk.post("/api/subscriptions", json=body), 201)  # the sale stands
        assert [o["state"] for o in sold["printing"]] == ["failed"] and sold["order"]["total_cents"] == 12000
        assert len(sold["subscriptions"][0]["vouchers"]) == 6
        blocker.unlink()  # the printer is back
        retried = await expect(await desk.post("/api/print-jobs/retry", json={}), 200)
        assert [o["state"] for o in retried["printing"]] == ["printed"]
        printed = b"".join(p.read_bytes() for p in files(missing, "*.escpos"))
        codes = [v["code"] for v in vouchers_of(edge.db, sold["subscriptions"][0]["id"])]
        assert escpos_qr_codes(printed) == codes and len(codes) == 6
    finally:
        await edge.close()


async def test_a_voucher_sale_with_seats_dates_zone_or_another_form_is_refused_and_nothing_stored(hub, tmp_path,
                                                                                                  aiohttp_client):
    desk = await desk_client(hub, tmp_path, aiohttp_client)
    edge = desk.edge
    try:
        voucher = product_id(edge, VOUCHER)
        ring = product_id(edge, "Abo-Ring A")
        good = {"product_id": voucher, "customer_id": customer(edge), "payment_method": "cash"}
        some_seat = edge.db.execute("SELECT id, zone_id FROM seats LIMIT 1").fetchone()
        perf = edge.db.execute("SELECT performance_id FROM subscription_performances WHERE product_id = ? LIMIT 1",
                               (voucher,)).fetchone()["performance_id"]
        before = ledger(edge.db)
        for bad in ({"seat_ids": [some_seat["id"]]}, {"performance_ids": [perf]}, {"zone_id": some_seat["zone_id"]},
                    {"form": "single_tickets"}, {"tier_id": tier(edge.db, ring, "Schüler/Studierende")},
                    {"members": [{"seats": [{"performance_id": perf, "seat_id": some_seat["id"]}]}]}):
            for path in ("/api/subscriptions", "/api/subscription-quote"):
                problem = await expect(await desk.post(path, json={**good, **bad}), 422)
                assert problem["detail"] and ledger(edge.db) == before, (bad, problem)
        for path in (f"/api/subscription-products/{voucher}/availability",
                     f"/api/subscription-products/{voucher}/seat-map.svg"):
            assert "no seats" in (await expect(await desk.get(path), 422))["detail"]
        assert ledger(edge.db) == before
    finally:
        await edge.close()


# --- the hub trusts no desk: hostile voucher ops are conflicts that store nothing -------------------------


@pytest.fixture
async def desk(hub, tmp_path):
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        yield Desk(folder, db, client, this_node(db))
    finally:
        await client.close()


async def vouchers_sold(hub, desk: Desk, tier_name: str | None = DISABLED) -> dict:
    """Six vouchers sold at the desk (after a pull), signed with its key."""
    await desk.client.round()
    prod = product(hub, VOUCHER)
    body = msgspec.convert({"product_id": prod, "customer_id": hub.ids["first_customer"], "payment_method": "cash",
                            "tier_id": tier(hub.db, prod, tier_name) if tier_name else None}, SubscriptionSaleIn)
    return sell_subscriptions(desk.db, desk.node, body, channel="cashdesk", pool=desk.pool, now=utcnow(),
                              signer=cards.load_signer(desk.db, desk.folder))


def resigned(code: str, signer: cards.NodeSigner, **change) -> str:
    """The voucher code signed again by *signer*, with payload fields changed (minutes for times)."""
    p = cardcode.decode(code).payload
    fields = {"card_id": p.card_id, "code": p.product_code, "kind": p.kind, "issue": p.issue,
              "valid_from": p.valid_from, "valid_until": p.valid_until, **change}
    at = {k: dt.datetime.fromtimestamp(fields.pop(k) * 60, dt.UTC) for k in ("valid_from", "valid_until")}
    return cards.sign_card(signer, **fields, **at)


def _voucher(body: dict, k: int = 0) -> dict:
    return body["members"][0]["vouchers"][k]


def _forged_signature(body: dict, ctx) -> None:
    code = _voucher(body)["code"]
    flip = "B" if code[100] == "A" else "A"
    _voucher(body)["code"] = code[:100] + flip + code[101:]


def _signed_by_another_desk(body: dict, ctx) -> None:
    _voucher(body)["code"] = resigned(_voucher(body)["code"], ctx["other"])


def _signed_for_longer(body: dict, ctx) -> None:
    p = cardcode.decode(_voucher(body)["code"]).payload
    _voucher(body)["code"] = resigned(_voucher(body)["code"], ctx["own"], valid_until=p.valid_until + 365 * 24 * 60)


def _one_missing(body: dict, ctx) -> None:
    body["members"][0]["vouchers"].pop()


def _none_at_all(body: dict, ctx) -> None:
    body["members"][0]["vouchers"] = []


def _dearer(body: dict, ctx) -> None:
    _voucher(body, 2)["value_cents"] = 3000


def _later(body: dict, ctx) -> None:
    _voucher(body)["valid_until"] = "2099-12-31T22:59:59Z"


def _hub_series(body: dict, ctx) -> None:
    _voucher(body, 5)["number"] = f"WG-{utcnow().year}-000777"


def _twice(body: dict, ctx) -> None:
    _voucher(body, 1)["number"] = _voucher(body, 0)["number"]


def _full_price_claimed(body: dict, ctx) -> None:
    body["members"][0]["tier_id"] = None  # the desk says full price but charged 84,00


TAMPERED = {
    "forged-signature": (_forged_signature, "does not verify|malformed"),
    "signed-by-another-desk": (_signed_by_another_desk, "not signed by a card key of this cash desk"),
    "signed-for-a-longer-validity": (_signed_for_longer, "another validity"),
    "a-voucher-missing": (_one_missing, "has 6 vouchers"),
    "no-vouchers-at-all": (_none_at_all, "has 6 vouchers"),
    "wrong-value": (_dearer, "worth 2500"),
    "wrong-valid-until": (_later, "season's end"),
    "number-of-the-hubs-series": (_hub_series, "series"),
    "a-number-twice": (_twice, "twice"),
    "tier-not-what-was-charged": (_full_price_claimed, "costs 12000"),
}


@pytest.mark.parametrize("attack", list(TAMPERED))
async def test_a_tampered_voucher_sale_op_is_a_conflict_that_stores_nothing(hub, desk, tmp_path, attack):
    change, reason = TAMPERED[attack]
    folder, other_db, other_client = await enrolled(hub, tmp_path, name="Kasse 2")
    try:
        ctx = {"own": cards.load_signer(desk.db, desk.folder), "other": cards.load_signer(other_db, folder)}
        await vouchers_sold(hub, desk)
        tamper(desk.db, "subscription.sold", lambda body: change(body, ctx))
        before = digest(hub.db)
        result = await desk.client.round()
        assert result.rejected == 1
        (conflict,) = conflicts(hub)
        assert conflict["kind"] == "subscription.sold"
        assert re.search(reason, conflict["reason"]), conflict["reason"]
        assert digest(hub.db) == before
    finally:
        await other_client.close()


async def test_a_replayed_sale_or_its_vouchers_under_a_new_sale_store_nothing_twice(hub, desk):
    sold = await vouchers_sold(hub, desk, tier_name=None)
    (op,) = desk.db.execute("SELECT body FROM outbox WHERE kind = 'subscription.sold'").fetchall()
    body = json.loads(op["body"])
    assert (await desk.client.round()).rejected == 0, conflicts(hub)
    assert len(vouchers_of(hub.db, sold["subscriptions"][0]["id"])) == 6
    before = digest(hub.db)

    inject(desk.db, "subscription.sold", body)  # the very same sale again
    again = json.loads(json.dumps(body))  # the same vouchers under a new order and subscription
    again.update(order_id=uuid7(), number=body["number"][:-6] + "000099")
    again["members"][0].update(line_id=uuid7(), subscription_id=uuid7(),
                               number=body["members"][0]["number"][:-6] + "000099")
    inject(desk.db, "subscription.sold", again)
    result = await desk.client.round()
    assert result.rejected == 2
    reasons = [c["reason"] for c in conflicts(hub)]
    assert "exists already" in reasons[0] and "exists already" in reasons[1] and "voucher" in reasons[1]
    assert digest(hub.db) == before


async def test_vouchers_on_a_seated_sale_op_are_refused(hub, desk):
    ring_body, seats = ring_party(hub)
    move(hub, desk, "Abo-Ring A", seats)
    await desk.client.round()
    desk.sell(ring_body)
    stolen = {"id": uuid7(), "number": f"{series_of(desk.node['id'])}-{utcnow().year}-000001", "position": 1,
              "value_cents": 2500, "valid_until": "2027-07-31T21:59:59Z", "code": "A" * cardcode.TEXT_LENGTH}
    tamper(desk.db, "subscription.sold", lambda body: body["members"][0].update(vouchers=[stolen]))
    before = digest(hub.db)
    assert (await desk.client.round()).rejected == 1
    assert "has no choice vouchers" in conflicts(hub)[0]["reason"]
    assert digest(hub.db) == before


async def test_a_party_of_two_gets_six_vouchers_each_at_the_desk_and_at_the_hub(hub, desk):
    await desk.client.round()
    prod = product(hub, VOUCHER)
    body = msgspec.convert({"product_id": prod, "customer_id": hub.ids["first_customer"], "payment_method": "cash",
                            "members": [{"holder_name": "Erika Muster"},
                                        {"holder_name": "Max Muster", "tier_id": tier(hub.db, prod, DISABLED)}]},
                           SubscriptionSaleIn)
    sold = sell_subscriptions(desk.db, desk.node, body, channel="cashdesk", pool=desk.pool, now=utcnow(),
                              signer=cards.load_signer(desk.db, desk.folder))
    assert sold["total_cents"] == 12000 + 8400
    numbers = [v["number"] for s in sold["subscriptions"] for v in s["vouchers"]]
    assert len(set(numbers)) == 12 and all(n.startswith(series_of(desk.node["id"]) + "-") for n in numbers)
    assert (await desk.client.round()).rejected == 0, conflicts(hub)
    for sub in sold["subscriptions"]:
        assert [(v["id"], v["number"], v["code"], v["tier_id"]) for v in vouchers_of(hub.db, sub["id"])] == \
            [(v["id"], v["number"], v["code"], sub["tier_id"]) for v in sub["vouchers"]]
