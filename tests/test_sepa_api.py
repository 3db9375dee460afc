"""The SEPA API (hub/web/areas/sepa.py) and `tessera hub sepa export` on a real hub: mandates,
debits and runs over real HTTP, staff only; hostile input is a clear 4xx naming the field and
stores nothing; the CLI writes the XSD-valid file and says what went wrong in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sepaxml
import xmlschema

from hub.services import tokens
from tests.helpers import call, problem, table_counts

XSD = xmlschema.XMLSchema(os.path.join(os.path.dirname(sepaxml.__file__), "schemas", "pain.008.001.08.xsd"))
CREDITOR_IBAN = "DE89370400440532013000"
DEBTOR_IBAN = "DE02120300000000202051"


@pytest.fixture
async def office(api):
    ids = api.hub.ids
    api.org = ids["museum_organizer"]
    await call(api, "PUT", f"/organizers/{api.org}/sepa-account", {"iban": CREDITOR_IBAN}, status=200)
    api.customer = (await call(api, "GET", "/customers?limit=1", status=200))["items"][0]["id"]
    return api


def mandate_body(api, **kw) -> dict:
    return {"organizer_id": api.org, "customer_id": api.customer, "reference": "ABO-2026-0001",
            "iban": DEBTOR_IBAN, "signed_on": "2026-01-15", **kw}


async def sepa_order(api) -> dict:
    return await call(api, "POST", "/orders", {
        "lines": [{"product_id": api.hub.ids["annual_products"][0], "holders": [{"name": "Erika Mustermann"}]}],
        "payment_method": "sepa", "delivery": "pickup", "customer_id": api.customer}, status=201)


async def test_the_office_records_reads_lists_and_cancels_a_mandate(office):
    made = await call(office, "POST", "/sepa-mandates", mandate_body(office, bic="dkbadebbxxx"), status=201)
    assert (made["sequence"], made["state"], made["bic"], made["debtor_name"].count(" ")) == (
        "FRST", "active", "DKBADEBBXXX", 1)
    assert await call(office, "GET", f"/sepa-mandates/{made['id']}", status=200) == made
    listed = await call(office, "GET", f"/sepa-mandates?customer_id={office.customer}", status=200)
    assert [m["id"] for m in listed["items"]] == [made["id"]]
    cancelled = await call(office, "POST", f"/sepa-mandates/{made['id']}/cancel", {}, status=200)
    assert cancelled["state"] == "cancelled"
    await problem(office, "POST", f"/sepa-mandates/{made['id']}/cancel", {}, status=409, slug="conflict")


@pytest.mark.parametrize(("change", "field", "says"), [
    ({"iban": "DE02120300000000202052"}, "iban", "not valid"),
    ({"iban": "DE45120300001234567890"}, "iban", "check digits"),
    ({"iban": "TR330006100519786457841326"}, "iban", "outside the SEPA area"),
    ({"reference": "ABO 2026"}, "reference", "SEPA reference"),
    ({"reference": "Müller"}, "reference", "SEPA reference"),
    ({"reference": "X" * 36}, "reference", "35"),
    ({"signed_on": "2999-01-01"}, "signed_on", ""),
    ({"bic": "NOPE"}, "bic", "BIC"),
    ({"customer_id": "01a23787-0000-7000-8000-000000000000"}, "customer_id", "no customer"),
    ({"kind": "forever"}, "kind", ""),
    ({"address": {"lines": ["Bahnhofstrasse 1", "8001 Zürich"]}}, "address.lines", "unknown"),
    ({"address": {"street": "Bahnhofstrasse 1", "postcode": "8001", "country": "CH"}}, "address.town", ""),
])
async def test_a_hostile_mandate_is_a_clear_4xx_naming_the_field_and_stores_nothing(office, change, field, says):
    before = table_counts(office.hub.db)
    resp = await office.post("/api/v1/sepa-mandates", json=mandate_body(office, **change),
                             headers=office.hub.headers())
    body = await resp.json(content_type=None)
    assert 400 <= resp.status < 500 and resp.content_type == "application/problem+json", body
    assert body["field"] == field and says in body["detail"], body
    assert table_counts(office.hub.db) == before


async def test_a_mandate_reference_is_unique_per_creditor_whatever_its_case(office):
    await call(office, "POST", "/sepa-mandates", mandate_body(office), status=201)
    clash = await problem(office, "POST", "/sepa-mandates", mandate_body(office, reference="abo-2026-0001"),
                          status=409, slug="conflict")
    assert clash["field"] == "reference"
    other = office.hub.ids["theatre_organizer"]
    await call(office, "POST", "/sepa-mandates", mandate_body(office, organizer_id=other), status=201)


async def test_a_debit_takes_the_amount_of_the_orders_open_sepa_payment_and_refuses_the_rest(office):
    order = await sepa_order(office)
    await problem(office, "POST", "/sepa-debits", {"order_id": order["id"]}, status=409, slug="conflict")  # no mandate
    mandate = await call(office, "POST", "/sepa-mandates", mandate_body(office), status=201)
    await problem(office, "POST", "/sepa-debits", {"order_id": order["id"], "amount_cents": 1}, status=400,
                  slug="unknown-field")
    await problem(office, "POST", "/sepa-debits", {"order_id": order["id"], "prenotified_on": "2999-01-01"},
                  status=422, slug="validation-failed")
    stranger = (await call(office, "GET", "/customers?limit=2", status=200))["items"][1]["id"]
    foreign = await call(office, "POST", "/sepa-mandates", mandate_body(office, customer_id=stranger,
                                                                         reference="FREMD-1"), status=201)
    wrong = await problem(office, "POST", "/sepa-debits", {"order_id": order["id"], "mandate_id": foreign["id"]},
                          status=422, slug="validation-failed")
    assert wrong["field"] == "mandate_id"
    made = await call(office, "POST", "/sepa-debits", {"order_id": order["id"]}, status=201)
    assert (made["amount_cents"], made["mandate_id"], made["state"]) == (order["total_cents"], mandate["id"], "due")
    await problem(office, "POST", "/sepa-debits", {"order_id": order["id"]}, status=409, slug="conflict")
    listed = await call(office, "GET", f"/sepa-debits?order_id={order['id']}", status=200)
    assert [d["id"] for d in listed["items"]] == [made["id"]]
    cash = await call(office, "POST", "/orders", {
        "lines": [{"product_id": office.hub.ids["annual_products"][0], "holders": [{"name": "Max Muster"}]}],
        "payment_method": "cash", "delivery": "pickup", "customer_id": office.customer}, status=201)
    await problem(office, "POST", "/sepa-debits", {"order_id": cash["id"]}, status=409, slug="conflict")


async def test_a_run_is_previewed_exported_listed_and_downloaded_and_a_return_needs_a_known_reason(office):
    await call(office, "POST", "/sepa-mandates", mandate_body(office), status=201)
    debit = await call(office, "POST", "/sepa-debits", {"order_id": (await sepa_order(office))["id"],
                                                        "prenotified_on": "2020-01-01"}, status=201)
    preview = await call(office, "GET", f"/sepa-runs/preview?organizer_id={office.org}", status=200)
    assert preview["debits"] == 1 and preview["batches"][0]["sequence"] == "FRST" and preview["held"] == []
    await problem(office, "GET", f"/sepa-runs/preview?organizer_id={office.org}&collection_date=2026-13-01",
                  status=400, slug="invalid-parameter")
    await problem(office, "POST", f"/sepa-debits/{debit['id']}/collected", status=409, slug="conflict")
    run = await call(office, "POST", "/sepa-runs", {"organizer_id": office.org}, status=201)
    assert run["debits"] == 1 and run["held"] == []
    await problem(office, "POST", "/sepa-runs", {"organizer_id": office.org}, status=409, slug="conflict")
    assert [r["id"] for r in (await call(office, "GET", "/sepa-runs", status=200))["items"]] == [run["id"]]
    resp = await office.get(f"/api/v1/sepa-runs/{run['id']}/file", headers=office.hub.headers())
    assert resp.status == 200 and resp.content_type == "application/xml"
    assert run["message_id"] in resp.headers["Content-Disposition"]
    XSD.validate((await resp.read()).decode())
    for bad in ({"reason": "XX99"}, {"reason": "am04"}, {"reason": "AM04", "fee_cents": -1}, {"reason": "AM04",
                                                                                              "fee_cents": 10**9}):
        before = table_counts(office.hub.db)
        resp = await office.post(f"/api/v1/sepa-debits/{debit['id']}/return", json=bad, headers=office.hub.headers())
        assert resp.status in (400, 422) and table_counts(office.hub.db) == before
    await call(office, "POST", f"/sepa-debits/{debit['id']}/return", {"reason": "MD06"}, status=200)


async def test_only_office_and_admin_tokens_reach_sepa(office):
    for role in ("shop", "agency"):
        secret, _ = tokens.create_token(office.hub.db, f"{role} 1", role)
        await problem(office, "GET", f"/sepa-mandates?customer_id={office.customer}", token=secret, status=403,
                      slug="forbidden")
        await problem(office, "POST", "/sepa-runs", {"organizer_id": office.org}, token=secret, status=403,
                      slug="forbidden")


def tessera(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parent.parent)


async def test_the_cli_exports_the_due_debits_and_errors_are_one_line(office, tmp_path):
    folder = str(office.hub.dir)
    failed = tessera("hub", "sepa", "export", "--data", folder, "--collection-date", "2026-02-30")
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1 and "not a date" in failed.stderr
    nothing = tessera("hub", "sepa", "export", "--data", folder, "--out", str(tmp_path / "f.xml"))
    assert nothing.returncode == 1 and nothing.stderr == "tessera: error: no debit is due for collection\n"
    await call(office, "POST", "/sepa-mandates", mandate_body(office), status=201)
    await call(office, "POST", "/sepa-debits", {"order_id": (await sepa_order(office))["id"],
                                                "prenotified_on": "2020-01-01"}, status=201)
    saturday = tessera("hub", "sepa", "export", "--data", folder, "--collection-date", "2030-01-05")
    assert saturday.returncode == 1 and saturday.stderr.count("\n") == 1 and "TARGET" in saturday.stderr
    missing = tessera("hub", "sepa", "export", "--data", folder, "--out", str(tmp_path / "no" / "f.xml"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    done = tessera("hub", "sepa", "export", "--data", folder, "--out", str(tmp_path / "f.xml"))
    assert done.returncode == 0, done.stderr
    assert "1 debits" in done.stdout
    XSD.validate(str(tmp_path / "f.xml"))
    assert len((await call(office, "GET", "/sepa-runs", status=200))["items"]) == 1
