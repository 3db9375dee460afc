"""Cancelling order lines and refunding (issue 16): the office cancels a card, a seat ticket or a
subscription for the rest of its season, over the real hub API on loopback.

What a user expects, line by line: the seat is free again in its pool, the card revoked, a claim
not yet paid dropped (a SEPA debit not yet exported lowered or withdrawn), money already paid
refunded by the method it came in (as refunds the office pays out), the invoice cancelled by a
Stornorechnung and what stays billed invoiced again, the payment state and open items right to
the cent. The bad day: a line cancelled twice, a line of another order, a fee above the credit, a
performance that has begun, a shop token, unknown fields, a refund paid out twice or without the
card terminal's reference: a clear problem and nothing changed."""

from __future__ import annotations

import datetime as dt

import pytest

from core.base.node import this_node
from core.cards import cards
from core.sales.contingents import HUB
from core.sales.tickets import SaleIn, sell
from core.subscriptions.passes import issue_subscription_cards
from hub.app import make_app
from hub.services import tokens
from hub.web.clock import CLOCK
from tests.helpers import call, problem, table_counts
from tests.office import Clock
from tests.test_subscription_sale import GENERAL, house, sale, seat
from tests.test_subscription_sale import sell as sell_subscription

MID_SEASON = dt.datetime(2026, 12, 2, 11, 0, tzinfo=dt.UTC)  # Abo-Ring A: 3 of its 8 dates played
LEDGER = ("orders", "order_lines", "tickets", "payments", "invoices", "cancellations", "cancelled_lines",
          "sepa_debits", "cards")


@pytest.fixture
async def api(aiohttp_client, sample_hub):
    app = make_app(sample_hub.db)
    app[CLOCK] = Clock(MID_SEASON)
    client = await aiohttp_client(app)
    client.hub = sample_hub
    return client


def customer(db) -> str:
    return db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]


async def phone_order(api, products=(0, 3), method="transfer", reference=None) -> dict:
    ids = api.hub.ids["annual_products"]
    body = {"lines": [{"product_id": ids[p], "holders": [{"name": "Erika Mustermann"}]} for p in products],
            "customer_id": customer(api.hub.db), "delivery": "pickup", "payment_method": method,
            "payment_reference": reference}
    return await call(api, "POST", "/orders", body, status=201)


async def order(api, order_id: str) -> dict:
    return await call(api, "GET", f"/orders/{order_id}", status=200)


def ledger(db) -> dict:
    found = table_counts(db)
    rows = db.execute("SELECT id, amount_cents, state, method FROM payments ORDER BY id").fetchall()
    return {**{t: found.get(t, 0) for t in LEDGER}, "payments_rows": rows,
            "revoked": db.execute("SELECT count(*) AS n FROM cards WHERE revoked_at IS NOT NULL").fetchone()["n"],
            "sold": db.execute("SELECT count(*) AS n FROM tickets WHERE status = 'sold'").fetchone()["n"]}


async def test_cancelling_one_card_of_an_invoiced_transfer_order_drops_its_claim_and_reissues_the_invoice(api):
    db = api.hub.db
    placed = await phone_order(api)  # 65,00 € + 55,00 €, owed by transfer
    invoice = await call(api, "POST", f"/orders/{placed['id']}/invoices", {}, status=201)
    second = placed["items"][1]
    body = {"line_ids": [second["id"]], "reason": "Kunde verzieht"}

    before = ledger(db)
    quote = await call(api, "POST", f"/orders/{placed['id']}/cancellations/quote", body, status=200)
    assert ledger(db) == before  # a preview writes nothing
    assert (quote["credit_cents"], quote["released_cents"], quote["refund_cents"], quote["invoice_number"]) == (
        5500, 5500, 0, invoice["number"])

    done = await call(api, "POST", f"/orders/{placed['id']}/cancellations", body, status=201)
    assert (done["credit_cents"], done["released_cents"], done["refund_cents"], done["refunds"]) == (5500, 5500, 0, [])
    assert [(line["position"], line["credit_cents"]) for line in done["lines"]] == [(2, 5500)]
    assert done["lines"][0]["what"]["cards"] == [second["card"]["number"]]
    assert cards.get_card(db, second["card"]["id"])["revoke_reason"] == "Kunde verzieht"
    assert cards.get_card(db, placed["items"][0]["card"]["id"])["revoked_at"] is None

    storno = await call(api, "GET", f"/invoices/{done['cancellation_invoice_id']}", status=200)
    assert (storno["kind"], storno["cancels_id"], storno["total_cents"]) == ("cancellation", invoice["id"], -12000)
    again = await call(api, "GET", f"/invoices/{done['reissued_invoice_id']}", status=200)
    assert again["total_cents"] == 6500
    assert [line["order_line_id"] for line in again["lines"]] == [placed["items"][0]["id"]]
    assert again["kassenzeichen"] and again["number"] not in (invoice["number"], storno["number"])

    view = await order(api, placed["id"])
    assert [(i["cancelled"], i["credit_cents"]) for i in view["items"]] == [(False, None), (True, 5500)]
    state = view["payment_state"]
    assert (state["state"], state["total_cents"], state["credited_cents"], state["pending_cents"],
            state["open_cents"]) == ("open", 12000, 5500, 6500, 6500)
    items = await call(api, "GET", f"/customers/{customer(db)}/open-items", status=200)
    mine = [i for i in items["items"] if i["order_id"] == placed["id"]]
    assert [(i["open_cents"], i["invoice_number"]) for i in mine] == [(6500, again["number"])]

    before = ledger(db)
    twice = await problem(api, "POST", f"/orders/{placed['id']}/cancellations", body, status=409, slug="conflict")
    assert "already cancelled" in twice["detail"] and "Kunde verzieht" in twice["detail"]
    assert ledger(db) == before
    listed = await call(api, "GET", f"/orders/{placed['id']}/cancellations", status=200)
    assert [c["id"] for c in listed] == [done["id"]]


async def test_a_card_paid_order_cancelled_in_full_is_refunded_to_the_card_and_paid_out_with_the_terminals_reference(
        api):
    db = api.hub.db
    placed = await phone_order(api, method="card", reference="TERM-4711")
    lines = [i["id"] for i in placed["items"]]
    done = await call(api, "POST", f"/orders/{placed['id']}/cancellations",
                      {"line_ids": lines, "reason": "Doppelt gekauft", "fee_cents": 500}, status=201)
    assert (done["credit_cents"], done["refund_cents"], done["released_cents"]) == (11500, 11500, 0)
    assert [(line["position"], line["credit_cents"]) for line in done["lines"]] == [(1, 6000), (2, 5500)]
    [refund] = done["refunds"]
    assert (refund["method"], refund["amount_cents"], refund["state"], refund["reference"]) == (
        "card", 11500, "pending", "TERM-4711")
    state = (await order(api, placed["id"]))["payment_state"]
    assert (state["state"], state["refund_due_cents"], state["paid_cents"]) == ("overpaid", 11500, 12000)

    due = await call(api, "GET", "/refunds?state=pending", status=200)
    assert [(r["id"], r["order_number"], r["amount_cents"]) for r in due["items"]] == [
        (refund["id"], placed["number"], 11500)]
    before = ledger(db)
    missing = await problem(api, "POST", f"/refunds/{refund['id']}/paid-out", {}, status=422,
                            slug="validation-failed")
    assert missing["field"] == "reference"
    assert ledger(db) == before
    paid = await call(api, "POST", f"/refunds/{refund['id']}/paid-out", {"reference": "TERM-4712"}, status=200)
    assert (paid["state"], paid["reference"]) == ("paid", "TERM-4712")
    await problem(api, "POST", f"/refunds/{refund['id']}/paid-out", {"reference": "x"}, status=409, slug="conflict")
    state = (await order(api, placed["id"]))["payment_state"]
    # 5,00 € fee kept: 120,00 paid, 115,00 back, 5,00 owed for the fee
    assert (state["state"], state["paid_cents"], state["refunded_cents"], state["open_cents"]) == (
        "paid", 500, 11500, 0)
    assert (await call(api, "GET", "/refunds?state=pending", status=200))["items"] == []


async def test_a_fee_on_an_invoiced_order_stays_billed_on_the_new_invoice_and_a_transfer_refund_names_the_iban(api):
    db = api.hub.db
    placed = await phone_order(api, products=(0,))
    await call(api, "POST", f"/orders/{placed['id']}/invoices", {"language": "en"}, status=201)
    row = db.execute("SELECT id FROM payments WHERE order_id = ?", (placed["id"],)).fetchone()
    db.execute("UPDATE payments SET state = 'paid', reference = 'Bank X1' WHERE id = ?", (row["id"],))
    done = await call(api, "POST", f"/orders/{placed['id']}/cancellations",
                      {"line_ids": [placed["items"][0]["id"]], "reason": "Rückgabe", "fee_cents": 1000,
                       "refund_method": "transfer"}, status=201)
    assert (done["credit_cents"], done["refund_cents"]) == (5500, 5500)
    assert [(r["method"], r["amount_cents"]) for r in done["refunds"]] == [("transfer", 5500)]
    kept = await call(api, "GET", f"/invoices/{done['reissued_invoice_id']}", status=200)
    assert [(line["gross_cents"], line["description"]) for line in kept["lines"]] == [
        (1000, "Jahreskarte Verbund (cancelled; amount kept)")]
    assert (kept["total_cents"], kept["paid_cents"], kept["due_cents"]) == (1000, 1000, 0)


async def test_a_cancelled_seat_ticket_frees_the_seat_and_a_begun_performance_is_refused(api):
    db, hub = api.hub.db, api.hub
    node = this_node(db)
    perfs = db.execute("SELECT p.id, p.starts_at FROM performances p JOIN plan_variants v ON v.id = p.variant_id "
                       "WHERE v.plan_id = ? ORDER BY p.starts_at", (house(hub),)).fetchall()
    ahead = next(p for p in perfs if p["starts_at"] > "2026-12-03")
    played = perfs[0]
    parkett = seat(db, house(hub), "Parkett", "3", "4")["id"]
    sold = sell(db, node, SaleIn(performance_id=ahead["id"], seat_ids=[parkett], payment_method="transfer"),
                pool=HUB, channel="phone", now=GENERAL)
    old = sell(db, node, SaleIn(performance_id=played["id"], seat_ids=[parkett], payment_method="transfer"),
               pool=HUB, channel="phone", now=GENERAL)
    line = db.execute("SELECT line_id FROM tickets WHERE id = ?", (sold["tickets"][0]["id"],)).fetchone()["line_id"]
    done = await call(api, "POST", f"/orders/{sold['id']}/cancellations", {"line_ids": [line], "reason": "Krank"},
                      status=201)
    assert done["lines"][0]["what"]["tickets"] == [sold["tickets"][0]["id"]]
    again = sell(db, node, SaleIn(performance_id=ahead["id"], seat_ids=[parkett], payment_method="transfer"),
                 pool=HUB, channel="phone", now=GENERAL)  # the seat sells again
    assert again["tickets"][0]["seat_id"] == parkett

    before = ledger(db)
    old_line = db.execute("SELECT line_id FROM tickets WHERE id = ?", (old["tickets"][0]["id"],)).fetchone()["line_id"]
    begun = await problem(api, "POST", f"/orders/{old['id']}/cancellations",
                          {"line_ids": [old_line], "reason": "zu spät"}, status=409, slug="conflict")
    assert "has begun" in begun["detail"] and "hat begonnen" in begun["detail_de"]
    assert ledger(db) == before


async def test_a_subscription_cancelled_mid_season_refunds_the_dates_not_played_by_transfer(api):
    db, hub = api.hub.db, api.hub
    parkett = seat(db, house(hub), "Parkett", "5", "7")["id"]
    sold = sell_subscription(hub, sale(hub.ids["subscriptions"]["Abo-Ring A"], customer(db), form="both",
                                       seat_ids=[parkett], holder_name="Greta Wolf"))
    issued = issue_subscription_cards(db, cards.load_signer(db, hub.dir), sold["id"], GENERAL)
    db.execute("UPDATE payments SET state = 'paid', reference = 'Bank A7' WHERE order_id = ?", (sold["order_id"],))
    tickets = db.execute("SELECT t.price_cents, p.starts_at FROM tickets t JOIN performances p ON "
                         "p.id = t.performance_id WHERE t.line_id = ?", (sold["line_id"],)).fetchall()
    ahead = sum(t["price_cents"] for t in tickets if t["starts_at"] > "2026-12-02T11:00:00Z")
    assert 0 < ahead < sold["price_cents"] and len(tickets) == 8

    response = await api.patch(f"/api/v1/subscriptions/{sold['id']}", json={"state": "cancelled", "effective": "now"},
                               headers=hub.headers())
    assert response.status == 200, await response.text()
    [done] = await call(api, "GET", f"/orders/{sold['order_id']}/cancellations", status=200)
    assert (done["credit_cents"], done["refund_cents"]) == (ahead, ahead)
    assert [(r["method"], r["amount_cents"]) for r in done["refunds"]] == [("transfer", ahead)]
    assert len(done["lines"][0]["what"]["tickets"]) == 5
    assert all(cards.get_card(db, c["id"])["revoked_at"] for c in issued)
    state = (await order(api, sold["order_id"]))["payment_state"]
    assert (state["credited_cents"], state["refund_due_cents"], state["state"]) == (ahead, ahead, "overpaid")
    await call(api, "POST", f"/refunds/{done['refunds'][0]['id']}/paid-out", {}, status=200)
    state = (await order(api, sold["order_id"]))["payment_state"]
    assert (state["state"], state["paid_cents"]) == ("paid", sold["price_cents"] - ahead)


async def sepa_ready(api) -> str:
    org = api.hub.ids["museum_organizer"]
    await call(api, "PUT", f"/organizers/{org}/sepa-account", {"iban": "DE89370400440532013000"}, status=200)
    made = await call(api, "POST", "/sepa-mandates", {
        "organizer_id": org, "customer_id": customer(api.hub.db), "reference": "ABO-2026-0042",
        "iban": "DE02120300000000202051", "signed_on": "2026-01-15"}, status=201)
    return made["id"]


async def test_a_sepa_debit_not_yet_exported_is_lowered_then_withdrawn_and_one_at_the_bank_is_reported(api):
    db = api.hub.db
    await sepa_ready(api)
    placed = await phone_order(api, method="sepa")
    debit = await call(api, "POST", "/sepa-debits", {"order_id": placed["id"]}, status=201)
    assert debit["amount_cents"] == 12000
    first, second = (i["id"] for i in placed["items"])
    done = await call(api, "POST", f"/orders/{placed['id']}/cancellations", {"line_ids": [first], "reason": "a"},
                      status=201)
    assert (done["released_cents"], done["refund_cents"]) == (6500, 0)
    assert db.execute("SELECT amount_cents FROM sepa_debits WHERE id = ?", (debit["id"],)).fetchone()[
        "amount_cents"] == 5500
    await call(api, "POST", f"/orders/{placed['id']}/cancellations", {"line_ids": [second], "reason": "b"},
               status=201)
    assert db.execute("SELECT state FROM sepa_debits WHERE id = ?", (debit["id"],)).fetchone()["state"] == "cancelled"
    state = (await order(api, placed["id"]))["payment_state"]
    assert (state["open_cents"], state["pending_cents"], state["credited_cents"]) == (0, 0, 12000)

    other = await phone_order(api, products=(0,), method="sepa")
    at_bank = await call(api, "POST", "/sepa-debits", {"order_id": other["id"]}, status=201)
    db.execute("UPDATE sepa_debits SET state = 'submitted' WHERE id = ?", (at_bank["id"],))
    done = await call(api, "POST", f"/orders/{other['id']}/cancellations",
                      {"line_ids": [other["items"][0]["id"]], "reason": "c"}, status=201)
    assert (done["released_cents"], done["at_bank_cents"], done["refund_cents"]) == (0, 6500, 0)
    assert db.execute("SELECT amount_cents, state FROM sepa_debits WHERE id = ?", (at_bank["id"],)).fetchone() == {
        "amount_cents": 6500, "state": "submitted"}


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"line_ids": [], "reason": "x"}, 422, "line_ids"),
    ({"line_ids": ["LINE"], "reason": "   "}, 422, "reason"),
    ({"line_ids": ["LINE"], "reason": "x", "fee_cents": -1}, 422, "fee_cents"),
    ({"line_ids": ["LINE"], "reason": "x", "refund_method": "bitcoin"}, 422, "refund_method"),
    ({"line_ids": ["LINE"], "reason": "x", "total_cents": 0}, 400, "total_cents"),
    ({"line_ids": ["LINE", "LINE"], "reason": "x"}, 422, "line_ids"),
    ({"line_ids": ["OTHER"], "reason": "x"}, 422, "line_ids"),
    ({"line_ids": ["LINE"], "reason": "x", "fee_cents": 6501}, 422, "fee_cents"),
])
async def test_hostile_cancellations_are_clear_problems_and_change_nothing(api, body, status, field):
    db = api.hub.db
    placed = await phone_order(api, products=(0,), method="card", reference="T-1")
    other = await phone_order(api, products=(0,), method="card", reference="T-2")
    names = {"LINE": placed["items"][0]["id"], "OTHER": other["items"][0]["id"]}
    body = {**body, "line_ids": [names[x] for x in body["line_ids"]]}
    before = ledger(db)
    found = await call(api, "POST", f"/orders/{placed['id']}/cancellations", body, status=status)
    if field:
        assert found.get("field") == field or field in found["detail"], found
    assert ledger(db) == before


async def test_only_staff_cancel_or_pay_out_and_an_ordinary_payment_is_no_refund(api):
    db = api.hub.db
    placed = await phone_order(api, products=(0,), method="card", reference="T-1")
    line = placed["items"][0]["id"]
    secret, _ = tokens.create_token(db, "Webshop", "shop")
    before = ledger(db)
    for method, path, body in (("POST", f"/orders/{placed['id']}/cancellations", {"line_ids": [line], "reason": "x"}),
                               ("POST", f"/orders/{placed['id']}/cancellations/quote",
                                {"line_ids": [line], "reason": "x"}),
                               ("GET", f"/orders/{placed['id']}/cancellations", None),
                               ("GET", "/refunds", None)):
        resp = await api.request(method, "/api/v1" + path, json=body, headers={"Authorization": f"Bearer {secret}"})
        assert resp.status == 403, (path, await resp.text())
    payment = db.execute("SELECT id FROM payments WHERE order_id = ?", (placed["id"],)).fetchone()["id"]
    await problem(api, "POST", f"/refunds/{payment}/paid-out", {"reference": "x"}, status=404, slug="not-found")
    await problem(api, "GET", "/refunds?state=open", status=400, slug="invalid-parameter")
    assert ledger(db) == before


async def test_two_confirmations_at_once_cancel_once_and_refund_once(api):
    import asyncio

    db = api.hub.db
    placed = await phone_order(api, method="card", reference="T-9")
    body = {"line_ids": [placed["items"][0]["id"]], "reason": "Doppelklick"}
    answers = await asyncio.gather(*(api.post(f"/api/v1/orders/{placed['id']}/cancellations", json=body,
                                              headers=api.hub.headers()) for _ in range(2)))
    assert sorted(a.status for a in answers) == [201, 409]
    found = db.execute("SELECT count(*) AS n FROM cancellations WHERE order_id = ?", (placed["id"],)).fetchone()
    assert found["n"] == 1
    assert [r["amount_cents"] for r in db.execute("SELECT amount_cents FROM payments WHERE order_id = ? AND "
                                                  "cancellation_id IS NOT NULL", (placed["id"],))] == [-6500]
