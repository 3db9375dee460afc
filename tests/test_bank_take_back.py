"""A transfer that pays what a SEPA debit was to collect, and a wrong match taken back (issue 16),
end to end through camt.053 files uploaded to the real app on loopback.

- The debit is still `due` (not in a file): the transfer matched by Kassenzeichen pays the SEPA
  row and cancels the debit in the same transaction (or lowers it to what stays open), so the
  next SEPA run does not collect it again.
- The debit is already `submitted`: the transfer is matched, the order shows `overpaid` (a refund
  is due) and the import's answer says so; if the debit comes back after all, nothing is owed.
- The office takes a wrong match back: the rows are restored as they were (the debit due again),
  the order is open again, the entry is unmatched again. Only office and admin tokens; an entry
  that is not a matched credit, or an order changed since, is 409 with German text.
"""

from __future__ import annotations

import pytest

from hub.services import tokens
from tests.helpers import call, problem, table_counts
from tests.test_bank_statements import DEBTOR_IBAN, camt, collecting, euro, order, state_of, upload


@pytest.fixture
async def office(api):
    return await collecting(api)


async def sepa_order_with_debit(api, *, export: bool = False) -> tuple[dict, dict, dict]:
    """A SEPA order of the customer, its invoice (Kassenzeichen) and its debit (due, or submitted)."""
    mandate = await call(api, "POST", "/sepa-mandates", {
        "organizer_id": api.org, "customer_id": api.customer, "reference": "ABO-2026-0100", "iban": DEBTOR_IBAN,
        "signed_on": "2026-01-15"}, status=201)
    placed = await order(api, "sepa")
    invoice = await call(api, "POST", f"/orders/{placed['id']}/invoices", {}, status=201)
    debit = await call(api, "POST", "/sepa-debits", {"order_id": placed["id"], "mandate_id": mandate["id"],
                                                     "prenotified_on": "2026-01-01"}, status=201)
    if export:
        await call(api, "POST", "/sepa-runs", {"organizer_id": api.org}, status=201)
    return placed, invoice, debit


def statement(invoice: dict, cents: int) -> bytes:
    """A statement whose first credit names the invoice's Kassenzeichen (the others stay unmatched)."""
    return camt("camt053_001_08.xml", kassenzeichen=invoice["kassenzeichen"], partial=euro(cents), e2e="UNKNOWN",
                returned="5.00")


async def debit_of(api, debit: dict) -> dict:
    return (await call(api, "GET", f"/sepa-debits?order_id={debit['order_id']}", status=200))["items"][0]


async def entry_of(api, done: dict) -> dict:
    entries = await call(api, "GET", f"/bank-entries?statement_id={done['statement_id']}&state=matched", status=200)
    [entry] = entries["items"]
    return entry


async def test_a_transfer_cancels_the_due_debit_and_taking_the_match_back_makes_it_due_again(office):
    placed, invoice, debit = await sepa_order_with_debit(office)
    done = await upload(office, statement(invoice, placed["total_cents"]), 201)
    assert (done["matched"], done["debits_cancelled"], done["debits_lowered"], done["overpaid"]) == (1, 1, 0, [])
    paid = await state_of(office, placed["id"])
    assert (paid["state"], paid["paid_cents"], paid["pending_cents"]) == ("paid", placed["total_cents"], 0)
    cancelled = await debit_of(office, debit)
    assert cancelled["state"] == "cancelled" and "Bank 2026031600001" in cancelled["cancel_reason"]
    entry = await entry_of(office, done)
    assert entry["rule"] == "kassenzeichen" and "cancelled: this transfer paid it" in entry["note"]
    nothing = await problem(office, "POST", "/sepa-runs", {"organizer_id": office.org}, status=409, slug="conflict")
    assert "Keine Lastschrift" in nothing["detail_de"]  # the debit is not collected as well

    back = await call(office, "POST", f"/bank-entries/{entry['id']}/take-back", {"note": "falscher Auftrag"},
                      status=200)
    assert (back["state"], back["rule"], back["order_id"], back["payment_id"]) == ("unmatched", None, None, None)
    assert back["note"] == f"match taken back (kassenzeichen, order {placed['number']}): falscher Auftrag"
    again = await state_of(office, placed["id"])
    assert (again["state"], again["paid_cents"], again["pending_cents"]) == ("open", 0, placed["total_cents"])
    rows = office.hub.db.execute("SELECT method, state, amount_cents, reference FROM payments WHERE order_id = ?",
                                 (placed["id"],)).fetchall()
    assert [(r["method"], r["state"], r["amount_cents"]) for r in rows] == [("sepa", "pending", placed["total_cents"])]
    due = await debit_of(office, debit)
    assert (due["state"], due["amount_cents"], due["cancelled_at"]) == ("due", placed["total_cents"], None)
    unmatched = await call(office, "GET", "/bank-entries?state=unmatched", status=200)
    assert entry["id"] in {e["id"] for e in unmatched["items"]}
    twice = await problem(office, "POST", f"/bank-entries/{entry['id']}/take-back", {}, status=409, slug="conflict")
    assert "zurückgenommen" in twice["detail_de"]
    assert (await call(office, "POST", "/sepa-runs", {"organizer_id": office.org}, status=201))["debits"] == 1


async def test_a_partial_transfer_lowers_the_due_debit_to_what_stays_open_and_back(office):
    placed, invoice, debit = await sepa_order_with_debit(office)
    done = await upload(office, statement(invoice, 2000), 201)
    assert (done["debits_cancelled"], done["debits_lowered"]) == (0, 1)
    rest = placed["total_cents"] - 2000
    state = await state_of(office, placed["id"])
    assert (state["state"], state["paid_cents"], state["open_cents"]) == ("partly_paid", 2000, rest)
    assert (await debit_of(office, debit))["amount_cents"] == rest
    preview = await call(office, "GET", f"/sepa-runs/preview?organizer_id={office.org}", status=200)
    assert preview["total_cents"] == rest

    entry = await entry_of(office, done)
    await call(office, "POST", f"/bank-entries/{entry['id']}/take-back", {}, status=200)
    assert (await debit_of(office, debit))["amount_cents"] == placed["total_cents"]
    state = await state_of(office, placed["id"])
    assert (state["state"], state["paid_cents"], state["pending_cents"]) == ("open", 0, placed["total_cents"])
    failed = office.hub.db.execute("SELECT amount_cents, reference FROM payments WHERE order_id = ? AND "
                                   "state = 'failed'", (placed["id"],)).fetchall()
    assert [(r["amount_cents"], r["reference"]) for r in failed] == [
        (2000, "Bank 2026031600001 (Zuordnung zurueckgenommen)")]  # the part paid stays, as nothing that came


async def test_a_transfer_beside_a_submitted_debit_overpays_the_order_and_says_so(office):
    placed, invoice, debit = await sepa_order_with_debit(office, export=True)
    done = await upload(office, statement(invoice, placed["total_cents"]), 201)
    entry = await entry_of(office, done)
    assert done["overpaid"] == [{"entry_id": entry["id"], "order_id": placed["id"], "note": entry["note"]}]
    assert f"overpaid: SEPA debit {debit['end_to_end_id']} was already submitted" in entry["note"]
    state = await state_of(office, placed["id"])
    assert (state["state"], state["paid_cents"], state["open_cents"]) == ("overpaid", 2 * placed["total_cents"], 0)
    assert (await debit_of(office, debit))["state"] == "submitted"  # at the bank: it collects
    open_items = await call(office, "GET", "/open-items", status=200)
    assert placed["id"] not in {i["order_id"] for i in open_items["items"]}

    # the customer has the debit returned (he paid by transfer): nothing is owed, nothing overpaid
    await call(office, "POST", f"/sepa-debits/{debit['id']}/return", {"reason": "MD06"}, status=200)
    state = await state_of(office, placed["id"])
    assert (state["state"], state["paid_cents"], state["pending_cents"]) == ("paid", placed["total_cents"], 0)


async def test_a_collection_matched_by_end_to_end_id_is_taken_back_to_submitted(office):
    placed, invoice, debit = await sepa_order_with_debit(office, export=True)
    raw = camt("camt053_001_02.xml", e2e_one=debit["end_to_end_id"], e2e_two="NONE2", one=euro(debit["amount_cents"]),
               two="1.00", batch=euro(debit["amount_cents"] + 100), invoice_total="1.00", invoice_number="RE-0")
    done = await upload(office, raw, 201)
    entries = await call(office, "GET", f"/bank-entries?statement_id={done['statement_id']}&state=matched",
                         status=200)
    [entry] = [e for e in entries["items"] if e["rule"] == "end_to_end_id"]
    assert (await state_of(office, placed["id"]))["state"] == "paid"
    await call(office, "POST", f"/bank-entries/{entry['id']}/take-back", {}, status=200)
    assert (await debit_of(office, debit))["state"] == "submitted"
    assert (await state_of(office, placed["id"]))["state"] == "open"


async def test_taking_back_is_refused_for_other_entries_changed_orders_and_other_roles(office):
    placed, invoice, debit = await sepa_order_with_debit(office)
    done = await upload(office, statement(invoice, placed["total_cents"]), 201)
    entry = await entry_of(office, done)
    unmatched = (await call(office, "GET", "/bank-entries?state=unmatched", status=200))["items"][0]
    await problem(office, "POST", f"/bank-entries/{unmatched['id']}/take-back", {}, status=409, slug="conflict")
    await problem(office, "POST", "/bank-entries/0190b0a0-0000-7000-8000-000000000000/take-back", {}, status=404,
                  slug="not-found")
    await problem(office, "POST", f"/bank-entries/{entry['id']}/take-back", {"note": "x" * 501}, status=422,
                  slug="validation-failed")
    for role in ("shop", "agency"):
        secret, _ = tokens.create_token(office.hub.db, f"{role} 1", role)
        await problem(office, "POST", f"/bank-entries/{entry['id']}/take-back", {}, token=secret, status=403,
                      slug="forbidden")
    # the paid row was refunded by hand since: the match is not taken back blindly
    office.hub.db.execute("UPDATE payments SET state = 'refunded' WHERE id = ?", (entry["payment_id"],))
    before = table_counts(office.hub.db)
    changed = await problem(office, "POST", f"/bank-entries/{entry['id']}/take-back", {}, status=409,
                            slug="conflict")
    assert "seit der Zuordnung geändert" in changed["detail_de"]
    assert (await call(office, "GET", f"/bank-entries/{entry['id']}", status=200))["state"] == "matched"
    assert table_counts(office.hub.db) == before
