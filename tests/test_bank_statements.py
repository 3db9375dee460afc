"""Bank statements (B6, issue 16): a camt.053 file uploaded to a real hub over HTTP is matched to
what the hub expects, end to end: an invoice issued for a transfer order and a SEPA debit exported
in a pain.008 run, then a statement with a transfer paying part of the invoice by its
Kassenzeichen and the debit coming back (AM04, 3.50 EUR charges) leaves the order partly paid and
the debit returned with its fee as an open row. The same file twice adds nothing. The office
clears the unmatched list by hand (assign to an order, dismiss with a note). camt.053.001.02 is
read too (a batch of collected debits by end-to-end id, a transfer naming the invoice number).

The bad day: XXE, billion laughs, malformed XML, another namespace, an amount with three decimals,
a shop token: a clear 4xx and nothing stored. The camt files in tests/data/ are made from the
ISO 20022 message definitions; the test fills in the ids the hub gave out."""

from __future__ import annotations

import string
import subprocess
import sys
from pathlib import Path

import pytest

from hub.services import tokens
from tests.helpers import call, problem, table_counts

DATA = Path(__file__).parent / "data"
CREDITOR_IBAN = "DE89370400440532013000"
DEBTOR_IBAN = "DE02120300000000202051"
XML = {"Content-Type": "application/xml"}


def camt(name: str, **values: str) -> bytes:
    text = string.Template((DATA / name).read_text(encoding="utf-8")).safe_substitute(day="2026-03-16", **values)
    return text.encode("utf-8")


def euro(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


async def collecting(api):
    """*api* with the museum association collecting into the statements' account and its first customer."""
    api.org = api.hub.ids["museum_organizer"]
    await call(api, "PUT", f"/organizers/{api.org}/sepa-account", {"iban": CREDITOR_IBAN}, status=200)
    api.customer = api.hub.db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]
    return api


@pytest.fixture
async def office(api):
    return await collecting(api)


async def order(api, method: str, product: int = 0) -> dict:
    return await call(api, "POST", "/orders", {
        "lines": [{"product_id": api.hub.ids["annual_products"][product], "holders": [{"name": "Erika Mustermann"}]}],
        "payment_method": method, "delivery": "pickup", "customer_id": api.customer}, status=201)


async def exported_debits(api, count: int) -> list[dict]:
    """*count* SEPA orders of the customer, each debited on a mandate of its own, in one pain.008 run."""
    made = []
    for n in range(count):
        mandate = await call(api, "POST", "/sepa-mandates", {
            "organizer_id": api.org, "customer_id": api.customer, "reference": f"ABO-2026-000{n + 1}",
            "iban": DEBTOR_IBAN, "signed_on": "2026-01-15"}, status=201)
        placed = await order(api, "sepa")
        made.append(await call(api, "POST", "/sepa-debits", {"order_id": placed["id"], "mandate_id": mandate["id"],
                                                             "prenotified_on": "2026-01-01"}, status=201))
    await call(api, "POST", "/sepa-runs", {"organizer_id": api.org}, status=201)
    return made


async def upload(api, raw: bytes, status: int) -> dict:
    resp = await api.post("/api/v1/bank-statements", data=raw, headers={**api.hub.headers(), **XML})
    body = await resp.json(content_type=None)
    assert resp.status == status, body
    return body


async def state_of(api, order_id: str) -> dict:
    return await call(api, "GET", f"/orders/{order_id}/payment-state", status=200)


async def test_a_partial_transfer_and_a_returned_debit_come_in_through_one_statement(office):
    transfer = await order(office, "transfer", product=3)
    invoice = await call(office, "POST", f"/orders/{transfer['id']}/invoices", {}, status=201)
    [debit] = await exported_debits(office, 1)
    partial = invoice["total_cents"] // 2
    raw = camt("camt053_001_08.xml", kassenzeichen=invoice["kassenzeichen"], partial=euro(partial),
               e2e=debit["end_to_end_id"], returned=euro(debit["amount_cents"]))

    done = await upload(office, raw, 201)
    assert {k: done[k] for k in ("duplicate", "version", "new", "skipped", "matched", "returned", "unmatched")} == {
        "duplicate": False, "version": "camt.053.001.08", "new": 4, "skipped": 1, "matched": 1, "returned": 1,
        "unmatched": 2}

    paid = await state_of(office, transfer["id"])
    assert (paid["state"], paid["paid_cents"], paid["open_cents"], paid["pending_cents"]) == (
        "partly_paid", partial, invoice["total_cents"] - partial, invoice["total_cents"] - partial)
    rows = office.hub.db.execute("SELECT method, state, amount_cents, reference FROM payments WHERE order_id = ? "
                                 "AND state = 'paid'", (transfer["id"],)).fetchall()
    assert rows == [{"method": "transfer", "state": "paid", "amount_cents": partial,
                     "reference": "Bank 2026031600001"}]

    back = await call(office, "GET", f"/sepa-debits?order_id={debit['order_id']}", status=200)
    assert [(d["state"], d["return_reason"], d["return_fee_cents"]) for d in back["items"]] == [
        ("returned", "AM04", 350)]
    owed = await state_of(office, debit["order_id"])
    assert (owed["state"], owed["paid_cents"], owed["pending_cents"]) == (
        "open", 0, debit["amount_cents"] + 350)

    entries = await call(office, "GET", f"/bank-entries?statement_id={done['statement_id']}", status=200)
    by_ref = {e["reference"]: e for e in entries["items"]}
    assert (by_ref["2026031600001"]["rule"], by_ref["2026031600001"]["order_id"]) == ("kassenzeichen",
                                                                                      transfer["id"])
    assert by_ref["2026031600002"]["state"] == "returned"
    unmatched = await call(office, "GET", "/bank-entries?state=unmatched", status=200)
    assert sorted(e["amount_cents"] for e in unmatched["items"]) == [990, 1234]
    assert all(e["note"] for e in unmatched["items"])


async def test_the_same_file_twice_changes_nothing(office):
    transfer = await order(office, "transfer", product=3)
    invoice = await call(office, "POST", f"/orders/{transfer['id']}/invoices", {}, status=201)
    [debit] = await exported_debits(office, 1)
    raw = camt("camt053_001_08.xml", kassenzeichen=invoice["kassenzeichen"], partial="10.00",
               e2e=debit["end_to_end_id"], returned=euro(debit["amount_cents"]))
    first = await upload(office, raw, 201)
    before = table_counts(office.hub.db)
    again = await upload(office, raw, 200)
    assert (again["duplicate"], again["statement_id"], again["new"], again["known"]) == (
        True, first["statement_id"], 0, 4)
    assert table_counts(office.hub.db) == before
    listed = await call(office, "GET", "/bank-statements", status=200)
    assert [(s["id"], s["entries"], s["unmatched"]) for s in listed["items"]] == [(first["statement_id"], 4, 2)]


async def test_the_office_assigns_an_unmatched_credit_and_dismisses_a_fee(office):
    transfer = await order(office, "transfer", product=3)
    raw = camt("camt053_001_08.xml", kassenzeichen="NONE-1", partial="1.00", e2e="UNKNOWN", returned="5.00")
    await upload(office, raw, 201)
    unmatched = {e["amount_cents"]: e for e in (await call(office, "GET", "/bank-entries?state=unmatched",
                                                           status=200))["items"]}
    donation, fee = unmatched[1234], unmatched[990]
    assigned = await call(office, "POST", f"/bank-entries/{donation['id']}/assign",
                          {"order_id": transfer["id"], "note": "Anruf Frau Muster"}, status=200)
    assert (assigned["state"], assigned["rule"], assigned["order_id"]) == ("assigned", "manual", transfer["id"])
    assert (await state_of(office, transfer["id"]))["paid_cents"] == 1234
    dismissed = await call(office, "POST", f"/bank-entries/{fee['id']}/dismiss", {"note": "Kontoentgelt"},
                           status=200)
    assert (dismissed["state"], dismissed["note"]) == ("dismissed", "Kontoentgelt")
    body = await problem(office, "POST", f"/bank-entries/{fee['id']}/assign", {"order_id": transfer["id"]},
                         status=409, slug="conflict")
    assert body["detail_de"]
    money_out = unmatched[500]
    await problem(office, "POST", f"/bank-entries/{money_out['id']}/assign", {"order_id": transfer["id"]},
                  status=409, slug="conflict")
    await problem(office, "POST", f"/bank-entries/{money_out['id']}/dismiss", {"note": "  "}, status=422,
                  slug="validation-failed")
    await problem(office, "POST", "/bank-entries/0190b0a0-0000-7000-8000-000000000000/dismiss", {"note": "x"},
                  status=404, slug="not-found")


async def test_camt_053_001_02_collects_debits_by_end_to_end_id_and_pays_an_invoice_by_number(office):
    one, two = await exported_debits(office, 2)
    transfer = await order(office, "transfer", product=3)
    invoice = await call(office, "POST", f"/orders/{transfer['id']}/invoices", {}, status=201)
    raw = camt("camt053_001_02.xml", e2e_one=one["end_to_end_id"], e2e_two=two["end_to_end_id"],
               one=euro(one["amount_cents"]), two=euro(two["amount_cents"]),
               batch=euro(one["amount_cents"] + two["amount_cents"]), invoice_total=euro(invoice["total_cents"]),
               invoice_number=invoice["number"])
    done = await upload(office, raw, 201)
    assert (done["version"], done["account_iban"], done["matched"], done["unmatched"]) == (
        "camt.053.001.02", CREDITOR_IBAN, 3, 0)
    for debit in (one, two):
        assert (await state_of(office, debit["order_id"]))["state"] == "paid"
        listed = await call(office, "GET", f"/sepa-debits?order_id={debit['order_id']}", status=200)
        assert listed["items"][0]["state"] == "collected"
    paid = await state_of(office, transfer["id"])
    assert (paid["state"], paid["pending_cents"]) == ("paid", 0)
    rules = {e["rule"] for e in (await call(office, "GET", "/bank-entries", status=200))["items"]}
    assert rules == {"end_to_end_id", "invoice_number"}


GOOD = camt("camt053_001_08.xml", kassenzeichen="X-1", partial="1.00", e2e="E", returned="2.00").decode()
HOSTILE = {
    "XXE": '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&x;</Document>',
    "billion laughs": '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
                      '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><Document>&c;</Document>',
    "malformed": GOOD[:-40],
    "not XML": "IBAN;Betrag\nDE89;10,00\n",
    "empty": "",
    "wrong namespace": GOOD.replace("camt.053.001.08", "camt.052.001.08"),
    "three decimals": GOOD.replace("<Amt Ccy=\"EUR\">12.34</Amt>", "<Amt Ccy=\"EUR\">12.345</Amt>"),
    "no currency": GOOD.replace("<Amt Ccy=\"EUR\">12.34</Amt>", "<Amt>12.34</Amt>"),
    "no entry reference": GOOD.replace("<NtryRef>4</NtryRef>", "").replace(
        "<AcctSvcrRef>2026031600004</AcctSvcrRef>", ""),
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_a_file_that_is_no_camt_053_is_a_clear_4xx_and_stores_nothing(office, name):
    before = table_counts(office.hub.db)
    resp = await office.post("/api/v1/bank-statements", data=HOSTILE[name].encode(),
                             headers={**office.hub.headers(), **XML})
    body = await resp.json(content_type=None)
    assert resp.status == 422 and resp.content_type == "application/problem+json", body
    assert body["field"] == "file" and "camt.053" in body["detail"] and body["detail_de"], body
    assert "root:" not in body["detail"]  # no file contents leak back
    assert table_counts(office.hub.db) == before


async def test_only_office_and_admin_tokens_reach_bank_statements(office):
    for role in ("shop", "agency"):
        secret, _ = tokens.create_token(office.hub.db, f"{role} 1", role)
        resp = await office.post("/api/v1/bank-statements", data=GOOD.encode(),
                                 headers={**office.hub.headers(secret), **XML})
        assert resp.status == 403
        await problem(office, "GET", "/bank-entries?state=unmatched", token=secret, status=403, slug="forbidden")
    await problem(office, "POST", "/bank-statements", {"file": GOOD}, status=415, slug="unsupported-media-type")


def tessera(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])


async def test_the_cli_imports_a_statement_once_and_errors_are_one_line(office, tmp_path):
    folder = str(office.hub.dir)
    statement = tmp_path / "auszug.xml"
    statement.write_text(GOOD, encoding="utf-8")
    done = tessera("hub", "bank", "import", str(statement), "--data", folder)
    assert done.returncode == 0, done.stderr
    assert "4 bookings (0 known before): 0 matched, 0 returned debits, 4 unmatched" in done.stdout
    again = tessera("hub", "bank", "import", str(statement), "--data", folder)
    assert again.returncode == 0 and "nothing new" in again.stdout
    hostile = tmp_path / "xxe.xml"
    hostile.write_text(HOSTILE["XXE"])
    refused = tessera("hub", "bank", "import", str(hostile), "--data", folder)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "DOCTYPE" in refused.stderr
    missing = tessera("hub", "bank", "import", str(tmp_path / "nope.xml"), "--data", folder)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_a_reference_counts_only_as_a_whole_word():
    from core.payments.bank import _whole_word

    text = "RECHNUNG RE-2026-000001 KZ 2026-000002, DANKE"
    assert _whole_word(text, "re-2026-000001") and _whole_word(text, "2026-000002")
    assert not _whole_word(text, "2026-000001")  # inside the invoice number
    assert not _whole_word(text, "2026-00000")


async def test_a_credit_without_reference_matches_the_one_open_transfer_of_its_amount(office):
    transfer = await order(office, "transfer", product=3)
    amount = transfer["total_cents"]
    raw = camt("camt053_001_08.xml", kassenzeichen="-", partial=euro(amount), e2e="-", returned="1.00")
    done = await upload(office, raw.replace(b"Kassenzeichen - erste Rate", b"Jahreskarte"), 201)
    entries = (await call(office, "GET", f"/bank-entries?statement_id={done['statement_id']}", status=200))["items"]
    [credit] = [e for e in entries if e["reference"] == "2026031600001"]
    assert (credit["state"], credit["rule"], credit["order_id"]) == ("matched", "amount", transfer["id"])
    assert (await state_of(office, transfer["id"]))["state"] == "paid"


async def test_a_statement_of_an_account_that_is_not_ours_is_refused_naming_the_iban(office, tmp_path):
    """Only the organizers' SEPA creditor accounts are ours: another account's statement would
    be matched against our invoices by chance. API and CLI refuse it; nothing is stored."""
    foreign = GOOD.replace("DE89370400440532013000", "DE02100500000054540402").encode()
    before = table_counts(office.hub.db)
    body = await upload(office, foreign, 422)
    assert "account DE02100500000054540402, which is none of our accounts" in body["detail"]
    assert "DE89370400440532013000" in body["detail"] and body["field"] == "file"
    assert "Konto DE02100500000054540402, das keines unserer Konten ist" in body["detail_de"]
    statement = tmp_path / "fremd.xml"
    statement.write_bytes(foreign)
    refused = tessera("hub", "bank", "import", str(statement), "--data", str(office.hub.dir))
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "DE02100500000054540402" in refused.stderr
    assert table_counts(office.hub.db) == before
