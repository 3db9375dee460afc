"""The pain.008.001.08 export (core/payments/sepa.py) on a real hub database: the file matches
the golden file made from the format description and passes the XSD; batches per sequence type
and collection date; FRST then RCUR, OOFF once; mandate amendments carried once; the lead time
of the pre-notification, TARGET days and D-1; a debtor outside the EEA with a structured address
only; the export marks debits submitted with its file in one transaction; a return re-opens the
payment with its reason and fee.

Orders and mandates are made through the API (real HTTP); debits and exports are made through
core with a fixed "now", so dates are exact."""

from __future__ import annotations

import datetime as dt
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sepaxml
import xmlschema

from core.base.errors import Conflict, ValidationError
from core.payments import debits, mandates, sepa
from core.payments.sepa import Creditor, Item
from tests.helpers import call, table_counts

GOLDEN = Path(__file__).parent / "golden" / "pain008_001_08.xml"
XSD = xmlschema.XMLSchema(os.path.join(os.path.dirname(sepaxml.__file__), "schemas", "pain.008.001.08.xsd"))
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.008.001.08"}
UTC = dt.UTC
MONDAY = dt.datetime(2026, 5, 4, 8, 30, tzinfo=UTC)  # a TARGET day
CREDITOR_IBAN = "DE89370400440532013000"
DEBTOR_IBAN = "DE02120300000000202051"


def canonical(xml: bytes | str) -> str:
    """The document without comments and indentation, attributes and namespaces in one order."""
    text = xml.decode() if isinstance(xml, bytes) else xml
    return ET.canonicalize(text, strip_text=True)


# --- the golden file ----------------------------------------------------------------------------------


def golden_items() -> tuple[list[Item], Creditor]:
    creditor = Creditor("org", "Theater Nordstadt gGmbH", "DE98ZZZ09999999999", CREDITOR_IBAN, "COBADEFFXXX",
                        "Theaterstrasse 1", "28195", "Bremen", "DE")
    day = dt.date(2026, 5, 19)
    items = [
        Item("d1", "E2E-0001", 4950, "FRST", day, "m1", "ABO-2026-0001", dt.date(2026, 3, 2),
             "Juergen Mueller-Luedenscheidt", DEBTOR_IBAN, None, "Bestellung A1B2C3-2026-000001"),
        Item("d2", "E2E-0002", 90, "RCUR", day, "m2", "ABO-2025-0815", dt.date(2025, 8, 15), "Erika Mustermann",
             DEBTOR_IBAN, None, "Bestellung A1B2C3-2026-000002", amendment="agent"),
        Item("d3", "E2E-0003", 2050, "RCUR", day, "m3", "ABO-2025-0816", dt.date(2025, 8, 16), "Zoe Zuercher",
             "CH9300762011623852957", "UBSWCHZH80A", "Bestellung A1B2C3-2026-000003",
             address={"street_name": "Bahnhofstrasse 10", "postcode": "8001", "town": "Zuerich", "country": "CH"},
             amendment="account", amended_from_iban="CH5604835012345678009"),
    ]
    return items, creditor


def test_the_file_is_the_golden_file_and_passes_the_xsd():
    items, creditor = golden_items()
    xml = sepa.render(list(reversed(items)), creditor, "TESSERA-GOLDEN-1", MONDAY)
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert canonical(xml) == canonical(GOLDEN.read_bytes())
    XSD.validate(xml.decode())
    XSD.validate(str(GOLDEN))


def test_the_writer_refuses_what_the_xsd_refuses():
    items, creditor = golden_items()
    items[0].iban = "not an iban"
    with pytest.raises(ValidationError, match="XSD"):
        sepa.render(items, creditor, "TESSERA-GOLDEN-2", MONDAY)


# --- on a hub -----------------------------------------------------------------------------------------


@pytest.fixture
async def office(api):
    """The sample hub with the museum association collecting by SEPA and three customers."""
    ids = api.hub.ids
    org = ids["museum_organizer"]
    await call(api, "PUT", f"/organizers/{org}/sepa-account", {"iban": CREDITOR_IBAN, "bic": "COBADEFFXXX"},
               status=200)
    customers = (await call(api, "GET", "/customers?limit=3", status=200))["items"]
    api.org, api.customers = org, [c["id"] for c in customers]
    return api


async def mandate(api, customer: str, reference: str, **kw) -> dict:
    body = {"organizer_id": api.org, "customer_id": customer, "reference": reference, "iban": DEBTOR_IBAN,
            "signed_on": "2026-03-02", **kw}
    return await call(api, "POST", "/sepa-mandates", body, status=201)


async def sepa_order(api, customer: str | None) -> dict:
    body = {"lines": [{"product_id": api.hub.ids["annual_products"][0], "holders": [{"name": "Erika Mustermann"}]}],
            "payment_method": "sepa", "delivery": "pickup", **({"customer_id": customer} if customer else {})}
    return await call(api, "POST", "/orders", body, status=201)


def debit(api, order: dict, *, now=MONDAY, **kw) -> dict:
    return debits.create_from_order(api.hub.db, debits.DebitIn(order_id=order["id"], **kw), now)


def exported(api, now=MONDAY, **kw) -> tuple[dict, ET.Element]:
    run = sepa.export(api.hub.db, api.org, now, **kw)
    xml = sepa.run_file(api.hub.db, run["id"])
    XSD.validate(xml.decode())
    return run, ET.fromstring(xml)


def batches(doc: ET.Element) -> list[tuple[str, str, list[str]]]:
    return [(b.findtext("p:PmtTpInf/p:SeqTp", namespaces=NS), b.findtext("p:ReqdColltnDt", namespaces=NS),
             [t.findtext("p:PmtId/p:EndToEndId", namespaces=NS) for t in b.findall("p:DrctDbtTxInf", NS)])
            for b in doc.findall("p:CstmrDrctDbtInitn/p:PmtInf", NS)]


async def test_a_recurring_mandate_goes_frst_then_rcur_and_the_payment_is_paid_when_collected(office):
    await mandate(office, office.customers[0], "ABO-1")
    first = debit(office, await sepa_order(office, office.customers[0]), prenotified_on=dt.date(2026, 4, 1))
    run, doc = exported(office)
    assert batches(doc) == [("FRST", "2026-05-05", [first["end_to_end_id"]])]  # D-1: Tuesday
    assert run["debits"] == 1 and run["total_cents"] == first["amount_cents"] == 6500
    assert debits.get(office.hub.db, first["id"])["state"] == "submitted"
    assert debits.mark_collected(office.hub.db, first["id"], MONDAY)["state"] == "collected"
    assert office.hub.db.execute("SELECT state FROM payments WHERE id = ?",
                                 (first["payment_id"],)).fetchone()["state"] == "paid"
    second = debit(office, await sepa_order(office, office.customers[0]), prenotified_on=dt.date(2026, 4, 1))
    _, doc = exported(office, MONDAY + dt.timedelta(days=7))
    assert batches(doc) == [("RCUR", "2026-05-12", [second["end_to_end_id"]])]


async def test_batches_are_per_sequence_type_and_collection_date_and_a_mandates_first_debit_is_alone(office):
    a, b = office.customers[:2]
    await mandate(office, a, "ABO-A")
    await mandate(office, b, "ABO-B")
    d1 = debit(office, await sepa_order(office, a), prenotified_on=dt.date(2026, 4, 1))
    exported(office)  # a's mandate is RCUR now
    d2 = debit(office, await sepa_order(office, a), prenotified_on=dt.date(2026, 4, 1))
    d3 = debit(office, await sepa_order(office, b), prenotified_on=dt.date(2026, 4, 1))
    d4 = debit(office, await sepa_order(office, b), prenotified_on=dt.date(2026, 4, 1))  # b's second FRST
    d5 = debit(office, await sepa_order(office, a))  # told today: lead time to 18 May
    the_plan = sepa.plan(office.hub.db, office.org, MONDAY.date())
    assert [h["debit_id"] for h in the_plan.held] == [d4["id"]] and "later file" in the_plan.held[0]["reason"]
    _, doc = exported(office)
    assert sorted(batches(doc)) == sorted([("FRST", "2026-05-05", [d3["end_to_end_id"]]),
                                           ("RCUR", "2026-05-05", [d2["end_to_end_id"]]),
                                           ("RCUR", "2026-05-18", [d5["end_to_end_id"]])])
    assert debits.get(office.hub.db, d1["id"])["run_id"] != debits.get(office.hub.db, d2["id"])["run_id"]
    assert debits.get(office.hub.db, d4["id"])["state"] == "due"


async def test_a_one_off_mandate_debits_once_then_is_used(office):
    await mandate(office, office.customers[0], "EINMAL-1", kind="oneoff")
    order = await sepa_order(office, office.customers[0])
    debit(office, order, prenotified_on=dt.date(2026, 4, 1))
    _, doc = exported(office)
    assert batches(doc)[0][0] == "OOFF"
    with pytest.raises(Conflict, match="no active SEPA mandate"):
        debit(office, await sepa_order(office, office.customers[0]))


async def test_a_fixed_collection_date_holds_back_debits_whose_lead_time_it_breaks(office):
    await mandate(office, office.customers[0], "ABO-L")
    await mandate(office, office.customers[1], "ABO-M")
    early = debit(office, await sepa_order(office, office.customers[0]), prenotified_on=dt.date(2026, 4, 20))
    late = debit(office, await sepa_order(office, office.customers[1]), prenotified_on=dt.date(2026, 4, 30))
    the_plan = sepa.plan(office.hub.db, office.org, MONDAY.date(), collection_date=dt.date(2026, 5, 8))
    assert [i.debit_id for i in the_plan.items] == [early["id"]]
    assert the_plan.held[0]["debit_id"] == late["id"] and "2026-05-14" in the_plan.held[0]["reason"]
    run, doc = exported(office, collection_date=dt.date(2026, 5, 8))
    assert batches(doc) == [("FRST", "2026-05-08", [early["end_to_end_id"]])] and run["held"] == the_plan.held


@pytest.mark.parametrize(("day", "says"), [
    (dt.date(2026, 5, 9), "no TARGET business day"),  # Saturday
    (dt.date(2026, 5, 1), "no TARGET business day"),  # Labour Day
    (dt.date(2026, 5, 4), "D-1"),  # today
])
async def test_a_collection_date_off_target_or_before_d_minus_1_is_refused(office, day, says):
    with pytest.raises(ValidationError, match=says):
        sepa.plan(office.hub.db, office.org, MONDAY.date(), collection_date=day)


async def test_a_debtor_outside_the_eea_needs_a_bic_and_a_structured_address_inside_none_is_sent(office):
    swiss = "CH9300762011623852957"
    await mandate(office, office.customers[0], "ABO-CH", iban=swiss, debtor_name="Zoë Zürcher",
                  address={"street": "Bahnhofstrasse 10", "postcode": "8001", "town": "Zürich", "country": "CH"})
    await mandate(office, office.customers[1], "ABO-CH2", iban=swiss)  # no BIC
    await mandate(office, office.customers[2], "ABO-DE")
    ch = debit(office, await sepa_order(office, office.customers[0]), prenotified_on=dt.date(2026, 4, 1))
    held = debit(office, await sepa_order(office, office.customers[1]), prenotified_on=dt.date(2026, 4, 1))
    de = debit(office, await sepa_order(office, office.customers[2]), prenotified_on=dt.date(2026, 4, 1))
    office.hub.db.execute("UPDATE sepa_mandates SET bic = 'UBSWCHZH80A' WHERE reference = 'ABO-CH'")
    run, doc = exported(office)
    assert run["held"] == [{"debit_id": held["id"], "end_to_end_id": held["end_to_end_id"],
                            "reason": "the debtor's account is outside the EEA: the mandate needs the bank's BIC",
                            "reason_de": "Das Konto des Zahlers liegt außerhalb des EWR: das Mandat braucht die "
                                         "BIC der Bank"}]
    txs = {t.findtext("p:PmtId/p:EndToEndId", namespaces=NS): t for t in doc.iter(f"{{{NS['p']}}}DrctDbtTxInf")}
    address = txs[ch["end_to_end_id"]].find("p:Dbtr/p:PstlAdr", NS)
    assert [(e.tag.split("}")[1], e.text) for e in address] == [
        ("StrtNm", "Bahnhofstrasse 10"), ("PstCd", "8001"), ("TwnNm", "Zuerich"), ("Ctry", "CH")]
    assert txs[ch["end_to_end_id"]].findtext("p:Dbtr/p:Nm", namespaces=NS) == "Zoe Zuercher"
    assert txs[de["end_to_end_id"]].find("p:Dbtr/p:PstlAdr", NS) is None
    assert not any(e.tag.endswith("AdrLine") for e in doc.iter())  # never unstructured


async def test_a_debtor_outside_the_eea_without_a_town_is_held_back(office):
    await mandate(office, office.customers[0], "ABO-GB", iban="GB29NWBK60161331926819", bic="NWBKGB2L")
    d = debit(office, await sepa_order(office, office.customers[0]), prenotified_on=dt.date(2026, 4, 1))
    office.hub.db.execute("UPDATE customers SET town = '' WHERE id = ?", (office.customers[0],))
    the_plan = sepa.plan(office.hub.db, office.org, MONDAY.date())
    assert the_plan.held == [{"debit_id": d["id"], "end_to_end_id": d["end_to_end_id"],
                              "reason": "the debtor's account is outside the EEA: a structured address "
                                        "(town and country) is needed",
                              "reason_de": "Das Konto des Zahlers liegt außerhalb des EWR: eine Anschrift mit Ort "
                                           "und Land ist nötig"}]
    before = table_counts(office.hub.db)
    with pytest.raises(Conflict, match="no debit is due"):
        sepa.export(office.hub.db, office.org, MONDAY)
    assert table_counts(office.hub.db) == before


async def test_an_amendment_is_carried_by_the_next_debit_only(office):
    m = await mandate(office, office.customers[0], "ABO-AM")
    debit(office, await sepa_order(office, office.customers[0]), prenotified_on=dt.date(2026, 4, 1))
    exported(office)
    same_bank = "DE03120300001001234564"  # DKB, like the first
    other_bank = "DE89370400440532013000"  # Commerzbank
    amended = await call(office, "POST", f"/sepa-mandates/{m['id']}/amend", {"iban": same_bank}, status=200)
    assert (amended["amendment"], amended["amended_from_iban"], amended["sequence"]) == ("account", DEBTOR_IBAN,
                                                                                          "RCUR")
    amended = await call(office, "POST", f"/sepa-mandates/{m['id']}/amend", {"iban": other_bank}, status=200)
    assert (amended["amendment"], amended["amended_from_iban"], amended["sequence"]) == ("agent", DEBTOR_IBAN,
                                                                                          "FRST")
    assert amended["reference"] == "ABO-AM"
    d = debit(office, await sepa_order(office, office.customers[0]), prenotified_on=dt.date(2026, 4, 1))
    _, doc = exported(office, MONDAY + dt.timedelta(days=1))
    info = doc.find(".//p:MndtRltdInf", NS)
    assert info.findtext("p:AmdmntInd", namespaces=NS) == "true"
    assert info.findtext("p:AmdmntInfDtls/p:OrgnlDbtrAgt/p:FinInstnId/p:Othr/p:Id", namespaces=NS) == "SMNDA"
    assert batches(doc)[0][0] == "FRST"
    assert debits.get(office.hub.db, d["id"])["amendment"] == "agent"
    after = mandates.get(office.hub.db, m["id"])
    assert (after["amendment"], after["sequence"], after["iban"]) == (None, "RCUR", other_bank)


async def test_an_amendment_before_the_first_debit_carries_nothing(office):
    m = await mandate(office, office.customers[0], "ABO-NEU")
    amended = await call(office, "POST", f"/sepa-mandates/{m['id']}/amend", {"iban": CREDITOR_IBAN}, status=200)
    assert (amended["amendment"], amended["sequence"]) == (None, "FRST")


async def test_a_return_reopens_the_payment_with_reason_and_fee_and_a_dead_account_cancels_the_mandate(office):
    m = await mandate(office, office.customers[0], "ABO-R")
    d = debit(office, await sepa_order(office, office.customers[0]), prenotified_on=dt.date(2026, 4, 1))
    exported(office)
    returned = await call(office, "POST", f"/sepa-debits/{d['id']}/return", {"reason": "AM04", "fee_cents": 350},
                          status=200)
    assert (returned["state"], returned["return_reason"], returned["return_fee_cents"]) == ("returned", "AM04", 350)
    rows = office.hub.db.execute("SELECT method, amount_cents, state, reference FROM payments WHERE order_id = ? "
                                 "ORDER BY created_at, id", (d["order_id"],)).fetchall()
    assert [(r["method"], r["amount_cents"], r["state"]) for r in rows] == [("sepa", 6500, "pending"),
                                                                            ("transfer", 350, "pending")]
    assert d["end_to_end_id"] in rows[1]["reference"]
    assert mandates.get(office.hub.db, m["id"])["sequence"] == "FRST"  # its only debit came back
    again = debit(office, {"id": d["order_id"]}, prenotified_on=dt.date(2026, 4, 1))  # a new debit may follow
    exported(office, MONDAY + dt.timedelta(days=1))
    await call(office, "POST", f"/sepa-debits/{again['id']}/return", {"reason": "AC04"}, status=200)
    assert mandates.get(office.hub.db, m["id"])["state"] == "cancelled"


async def test_a_cancelled_mandates_due_debits_are_held_back(office):
    m = await mandate(office, office.customers[0], "ABO-C")
    d = debit(office, await sepa_order(office, office.customers[0]), prenotified_on=dt.date(2026, 4, 1))
    await call(office, "POST", f"/sepa-mandates/{m['id']}/cancel", {"reason": "Kündigung"}, status=200)
    assert sepa.plan(office.hub.db, office.org, MONDAY.date()).held[0] == {
        "debit_id": d["id"], "end_to_end_id": d["end_to_end_id"], "reason": "the mandate is cancelled",
        "reason_de": "Das Mandat ist widerrufen"}


async def test_an_order_is_debited_once(office):
    await mandate(office, office.customers[0], "ABO-1X")
    order = await sepa_order(office, office.customers[0])
    debit(office, order)
    with pytest.raises(Conflict, match="no open SEPA payment"):
        debit(office, order)


def test_a_mandate_expires_36_months_after_its_last_use():
    assert mandates.add_months(dt.date(2024, 2, 29), 36) == dt.date(2027, 2, 28)
    assert mandates.add_months(dt.date(2023, 11, 30), 3) == dt.date(2024, 2, 29)
    assert mandates.expires_on("2023-05-01", None) == dt.date(2026, 5, 1)
    assert mandates.expires_on("2023-05-01", "2024-01-17") == dt.date(2027, 1, 17)


async def test_a_debit_on_a_mandate_unused_for_36_months_is_held_back_and_the_mandate_shows_expired(office):
    """Signed on 1 May 2023 and never used: it lapsed on 1 May 2026, so a debit collecting on
    5 May 2026 is held back (English and German reason). A debit presented in January 2024 (even
    one returned since) keeps it alive until January 2027."""
    db = office.hub.db
    m = await mandate(office, office.customers[0], "ABO-ALT", signed_on="2023-05-01")
    old = debit(office, await sepa_order(office, office.customers[0]), prenotified_on=dt.date(2026, 4, 1))
    new = debit(office, await sepa_order(office, office.customers[0]), prenotified_on=dt.date(2026, 4, 1))
    held = sepa.plan(db, office.org, MONDAY.date()).held
    assert [h["debit_id"] for h in held] == [old["id"], new["id"]]
    assert held[0]["reason"].startswith("the mandate expired on 2026-05-01: no debit was presented on it for 36")
    assert held[0]["reason_de"].startswith("Das Mandat ist am 01.05.2026 verfallen")
    with pytest.raises(Conflict) as refused:
        sepa.export(db, office.org, MONDAY)
    assert "verfallen" in refused.value.extra["detail_de"]
    shown = await call(office, "GET", f"/sepa-mandates/{m['id']}", status=200)
    assert (shown["expires_on"], shown["expired"], shown["last_presented_on"]) == ("2026-05-01", True, None)

    db.execute("UPDATE sepa_debits SET state = 'returned', collection_date = '2024-01-17', sequence = 'FRST', "
               "return_reason = 'AM04' WHERE id = ?", (old["id"],))
    the_plan = sepa.plan(db, office.org, MONDAY.date())
    assert [i.debit_id for i in the_plan.items] == [new["id"]] and the_plan.held == []
    row = mandates.get(db, m["id"])
    assert mandates.with_expiry(db, row, dt.date(2027, 1, 17))["expired"] is False
    assert mandates.with_expiry(db, row, dt.date(2027, 1, 18)) == {
        **row, "last_presented_on": "2024-01-17", "expires_on": "2027-01-17", "expired": True}


async def test_the_export_keeps_the_creditor_accounts_lead_time(office):
    """Told on 28 April: with the default 14 days the debit collects on 12 May at the earliest;
    with a 5-day lead time agreed in the mandates, on the first possible day (5 May). A fixed
    date that breaks the lead time holds the debit back."""
    db = office.hub.db
    await mandate(office, office.customers[0], "ABO-LEAD")
    d = debit(office, await sepa_order(office, office.customers[0]), prenotified_on=dt.date(2026, 4, 28))
    assert mandates.creditor_account(db, office.org)["prenotification_days"] == 14
    assert [(b["collection_date"], b["debit_ids"]) for b in sepa.plan(db, office.org, MONDAY.date()).as_dict()[
        "batches"]] == [("2026-05-12", [d["id"]])]
    fixed = sepa.plan(db, office.org, MONDAY.date(), collection_date=dt.date(2026, 5, 5))
    assert fixed.items == [] and "collect on 2026-05-12 or later" in fixed.held[0]["reason"]
    account = await call(office, "PUT", f"/organizers/{office.org}/sepa-account",
                         {"iban": CREDITOR_IBAN, "prenotification_days": 5}, status=200)
    assert account["prenotification_days"] == 5
    assert (await call(office, "GET", f"/organizers/{office.org}/sepa-account", status=200))[
        "prenotification_days"] == 5
    run, doc = exported(office)
    assert batches(doc) == [("FRST", "2026-05-05", [d["end_to_end_id"]])]


@pytest.mark.parametrize("days, status", [(0, 422), (31, 422), (-14, 422), ("14", 400), (1.5, 400), (None, 400)])
async def test_a_lead_time_outside_1_to_30_days_is_refused(office, days, status):
    before = mandates.creditor_account(office.hub.db, office.org)
    body = await call(office, "PUT", f"/organizers/{office.org}/sepa-account",
                      {"iban": "DE02120300000000202051", "prenotification_days": days}, status=status)
    assert "prenotification_days" in str(body)
    assert mandates.creditor_account(office.hub.db, office.org) == before
