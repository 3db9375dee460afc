"""Invoices in core (issue 16, S13): a §14 UStG invoice for an order's open lines, with the
issuer's tax number, the customer's address, net and VAT per rate, the exemption for §4 Nr. 20a,
payment terms and a Kassenzeichen from the organizer's pattern; the SEPA pre-notification where
the order is debited; cancellation invoices that negate the original with their own number from
the same gapless series; and invoices that the database refuses to edit or delete.

The bad day: an order without a customer, lines of two organizers, a line invoiced twice or
named twice or of another order, an organizer without tax number, a second cancellation,
hostile Kassenzeichen patterns: a clear error and nothing stored. Real SQLite copies of the
sample hub."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.base.clock import utcnow
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.node import this_node
from core.cards import cards
from core.payments import invoices, kassenzeichen, mandates, vat
from core.payments.invoices import InvoiceCancelIn, InvoiceIn, InvoicingIn
from core.sales import orders
from core.sales.orders import HolderIn, LineIn, OrderIn
from tests.helpers import table_counts

VERBUND, REDUCED, CALENDAR = 0, 2, 3  # sample annual products: exempt, (made) 19 %, 7 %
INVOICE_TABLES = ("invoices", "invoice_lines", "invoice_vat", "kassenzeichen_series")


def customer_id(db, k: int = 0) -> str:
    return db.execute("SELECT id FROM customers ORDER BY number LIMIT 1 OFFSET ?", (k,)).fetchone()["id"]


def place(hub, *, products=(VERBUND, CALENDAR), method="transfer", customer=True, reference=None) -> dict:
    """A phone order of one annual ticket per product named, for the sample's first customer."""
    if REDUCED in products:
        hub.db.execute("UPDATE annual_products SET vat_code = '19' WHERE id = ?",
                       (hub.ids["annual_products"][REDUCED],))
    lines = [LineIn(product_id=hub.ids["annual_products"][p], quantity=1, holders=[HolderIn(name="Erika Mustermann")])
             for p in products]
    if not customer:  # a cash desk's sale: nobody named
        order = OrderIn(lines=lines, payment_method="cash", given_cents=20_000)
    else:
        order = OrderIn(lines=lines, customer_id=customer_id(hub.db), payment_method=method, delivery="pickup",
                        payment_reference=reference)
    signer = cards.load_signer(hub.db, hub.dir)
    return orders.place_order(hub.db, this_node(hub.db), signer, order, channel="phone" if customer else "cashdesk",
                              now=utcnow())


def issue(hub, order: dict, **kw) -> dict:
    return invoices.issue(hub.db, this_node(hub.db), order["id"], InvoiceIn(**kw), now=utcnow(), operator="Anna")


def counts(db) -> dict:
    found = table_counts(db)
    return {t: found.get(t, 0) for t in INVOICE_TABLES}


# --- sums to the cent ---------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.integers(0, 10**7), st.sampled_from(["19", "7", "exempt"])), min_size=1, max_size=40))
def test_net_plus_vat_is_gross_per_rate_and_the_rates_add_up_to_the_lines(lines):
    rates = vat.breakdown(lines)
    assert sum(r["gross_cents"] for r in rates) == sum(cents for cents, _ in lines)
    for r in rates:
        assert r["net_cents"] + r["vat_cents"] == r["gross_cents"]
        assert r["gross_cents"] == sum(cents for cents, code in lines if code == r["vat_code"])
        exact = r["gross_cents"] * r["rate"] / (100 + r["rate"])
        assert abs(r["vat_cents"] - exact) <= 0.5  # rounded once per rate, to the nearest cent
    assert [r["vat_code"] for r in rates] == [c for c in vat.ORDER if c in {code for _, code in lines}]


@given(st.integers(-10**8, 10**8), st.sampled_from(["19", "7", "exempt"]))
def test_a_cancellation_splits_to_exactly_the_negated_figures(gross, code):
    net, tax = vat.split(gross, code)
    assert vat.split(-gross, code) == (-net, -tax)


def test_the_well_known_figures():
    assert vat.split(11900, "19") == (10000, 1900)
    assert vat.split(10700, "7") == (10000, 700)
    assert vat.split(6500, "exempt") == (6500, 0)
    assert vat.split(1, "19") == (1, 0) and vat.split(6, "19") == (5, 1)  # 0.958 cents VAT rounds to 1


# --- issuing ----------------------------------------------------------------------------------------------


def test_an_invoice_carries_what_section_14_asks_for(sample_hub):
    order = place(sample_hub, products=(VERBUND, CALENDAR, REDUCED))
    invoice = issue(sample_hub, order)
    assert invoice["number"] == f"RE-{dt.date.today().year}-000001"
    assert invoice["issuer"]["name"] == "Museumsverbund Nordstadt e.V."
    assert invoice["issuer"]["tax_number"] == "60/145/12345" and invoice["issuer"]["vat_id"] == "DE123456789"
    assert invoice["recipient"]["street"] and invoice["recipient"]["postcode"] and invoice["recipient"]["town"]
    assert [line["vat_code"] for line in invoice["lines"]] == ["exempt", "7", "19"]
    assert [(v["vat_code"], v["gross_cents"], v["net_cents"], v["vat_cents"]) for v in invoice["vat"]] == [
        ("19", 4000, 3361, 639), ("7", 5500, 5140, 360), ("exempt", 6500, 6500, 0)]
    assert invoice["total_cents"] == order["total_cents"] == 16000
    assert invoice["paid_cents"] == 0 and invoice["due_cents"] == 16000
    assert invoice["due_on"] == (dt.date.fromisoformat(invoice["issued_on"]) + dt.timedelta(days=14)).isoformat()
    assert invoice["kassenzeichen"] == f"{dt.date.today().year}-000001"
    assert invoice["sepa"] is None and invoice["cancelled_by"] is None


def test_a_second_invoice_takes_only_the_open_lines_and_the_next_number(sample_hub):
    order = place(sample_hub, products=(VERBUND, CALENDAR))
    first_line, second_line = (item["id"] for item in order["items"])
    first = issue(sample_hub, order, line_ids=[first_line])
    second = issue(sample_hub, order)
    assert [line["order_line_id"] for line in second["lines"]] == [second_line]
    assert int(second["number"][-6:]) == int(first["number"][-6:]) + 1
    assert second["kassenzeichen"] != first["kassenzeichen"]
    before = counts(sample_hub.db)
    with pytest.raises(Conflict, match="already invoiced"):
        issue(sample_hub, order)
    with pytest.raises(Conflict, match="already on invoice"):
        issue(sample_hub, order, line_ids=[first_line])
    assert counts(sample_hub.db) == before


def test_a_paid_order_is_invoiced_as_paid_without_due_date(sample_hub):
    order = place(sample_hub, products=(VERBUND,), method="cash")
    invoice = issue(sample_hub, order)
    assert (invoice["paid_cents"], invoice["due_cents"], invoice["due_on"]) == (6500, 0, None)


def test_a_debited_order_carries_the_pre_notification(sample_hub):
    order = place(sample_hub, products=(VERBUND,), method="sepa", reference="MANDAT-0001")
    invoice = issue(sample_hub, order, payment_days=3)
    assert invoice["sepa"] == {"creditor_id": "DE98ZZZ09999999999", "mandate_reference": "MANDAT-0001",
                               "collection_on": invoice["due_on"], "amount_cents": 6500}
    lead = dt.date.fromisoformat(invoice["due_on"]) - dt.date.fromisoformat(invoice["issued_on"])
    assert lead.days == mandates.PRENOTIFICATION_DAYS  # never less than the pre-notification lead time


@pytest.mark.parametrize("lead_days, due_in", [(20, 20), (2, 3)])
def test_the_pre_notification_keeps_the_creditors_lead_time(sample_hub, lead_days, due_in):
    """The creditor account's `prenotification_days` (not a fixed 14): a longer lead time moves
    the collection date out, a shorter one leaves the payment days as they are."""
    org = sample_hub.ids["museum_organizer"]
    mandates.set_creditor_account(sample_hub.db, org, mandates.CreditorAccountIn(
        iban="DE89370400440532013000", prenotification_days=lead_days), utcnow())
    order = place(sample_hub, products=(VERBUND,), method="sepa", reference="MANDAT-0001")
    invoice = issue(sample_hub, order, payment_days=3)
    lead = dt.date.fromisoformat(invoice["sepa"]["collection_on"]) - dt.date.fromisoformat(invoice["issued_on"])
    assert lead.days == due_in


def test_the_organizers_settings_shape_the_invoice(sample_hub):
    org = sample_hub.ids["museum_organizer"]
    invoices.set_settings(sample_hub.db, org, InvoicingIn(kassenzeichen_pattern="5.1100.{seq:07d}", payment_days=30),
                          utcnow())
    invoice = issue(sample_hub, place(sample_hub, products=(VERBUND,)))
    assert invoice["kassenzeichen"] == "5.1100.0000001"
    assert (dt.date.fromisoformat(invoice["due_on"]) - dt.date.fromisoformat(invoice["issued_on"])).days == 30


# --- cancellations and immutability -----------------------------------------------------------------------


def test_a_cancellation_negates_the_original_with_its_own_number(sample_hub):
    order = place(sample_hub, products=(VERBUND, CALENDAR, REDUCED))
    original = issue(sample_hub, order)
    storno = invoices.cancel(sample_hub.db, this_node(sample_hub.db), original["id"],
                             InvoiceCancelIn(reason="Rückgabe"), now=utcnow())
    assert storno["kind"] == "cancellation" and storno["cancels_number"] == original["number"]
    assert int(storno["number"][-6:]) == int(original["number"][-6:]) + 1
    assert storno["total_cents"] == -original["total_cents"]
    assert [line["gross_cents"] for line in storno["lines"]] == [-line["gross_cents"] for line in original["lines"]]
    assert [(v["net_cents"], v["vat_cents"]) for v in storno["vat"]] == [
        (-v["net_cents"], -v["vat_cents"]) for v in original["vat"]]
    assert storno["kassenzeichen"] is None and storno["cancels_kassenzeichen"] == original["kassenzeichen"]
    assert invoices.get(sample_hub.db, original["id"])["cancelled_by"]["number"] == storno["number"]
    again = issue(sample_hub, order)  # its lines are open again
    assert again["total_cents"] == original["total_cents"]


def test_an_invoice_is_cancelled_once_and_a_cancellation_never(sample_hub):
    original = issue(sample_hub, place(sample_hub, products=(VERBUND,)))
    node = this_node(sample_hub.db)
    storno = invoices.cancel(sample_hub.db, node, original["id"], InvoiceCancelIn(reason="x"), now=utcnow())
    before = counts(sample_hub.db)
    with pytest.raises(Conflict, match="already cancelled"):
        invoices.cancel(sample_hub.db, node, original["id"], InvoiceCancelIn(reason="x"), now=utcnow())
    with pytest.raises(Conflict, match="is a cancellation invoice"):
        invoices.cancel(sample_hub.db, node, storno["id"], InvoiceCancelIn(reason="x"), now=utcnow())
    with pytest.raises(NotFound):
        invoices.cancel(sample_hub.db, node, "0190b0a0-0000-7000-8000-000000000000", InvoiceCancelIn(reason="x"),
                        now=utcnow())
    assert counts(sample_hub.db) == before


@pytest.mark.parametrize("sql", [
    "UPDATE invoices SET total_cents = 1", "DELETE FROM invoices",
    "UPDATE invoice_lines SET gross_cents = 1", "DELETE FROM invoice_lines",
    "UPDATE invoice_vat SET vat_cents = 0, net_cents = gross_cents", "DELETE FROM invoice_vat"])
def test_the_database_refuses_to_edit_or_delete_an_invoice(sample_hub, sql):
    issue(sample_hub, place(sample_hub, products=(VERBUND, CALENDAR)))
    with pytest.raises(sqlite3.IntegrityError, match="never (edited|deleted)"):
        sample_hub.db.execute(sql)


# --- the bad day ------------------------------------------------------------------------------------------


def test_an_order_without_customer_gets_no_invoice(sample_hub):
    order = place(sample_hub, products=(VERBUND,), customer=False)
    with pytest.raises(ValidationError, match="has no customer") as refused:
        issue(sample_hub, order)
    assert refused.value.extra["detail_de"]
    assert counts(sample_hub.db) == {t: 0 for t in INVOICE_TABLES}


def test_stray_and_doubled_lines_are_refused(sample_hub):
    order, other = place(sample_hub, products=(VERBUND,)), place(sample_hub, products=(CALENDAR,))
    mine = order["items"][0]["id"]
    with pytest.raises(ValidationError, match="not a line of order"):
        issue(sample_hub, order, line_ids=[other["items"][0]["id"]])
    with pytest.raises(ValidationError, match="named twice"):
        issue(sample_hub, order, line_ids=[mine, mine])
    with pytest.raises(NotFound):
        invoices.issue(sample_hub.db, this_node(sample_hub.db), "0190b0a0-0000-7000-8000-000000000000", InvoiceIn(),
                       now=utcnow())
    assert counts(sample_hub.db) == {t: 0 for t in INVOICE_TABLES}


def test_an_organizer_without_tax_number_cannot_invoice(sample_hub):
    sample_hub.db.execute("UPDATE organizers SET tax_number = NULL, vat_id = NULL WHERE id = ?",
                          (sample_hub.ids["museum_organizer"],))
    with pytest.raises(ValidationError, match="neither a tax number nor a VAT id"):
        issue(sample_hub, place(sample_hub, products=(VERBUND,)))
    assert counts(sample_hub.db) == {t: 0 for t in INVOICE_TABLES}


def test_a_number_taken_by_a_failed_invoice_is_given_to_the_next(sample_hub):
    """Gapless: a refused invoice rolls back its number and its Kassenzeichen with it."""
    order = place(sample_hub, products=(VERBUND,), method="sepa")
    sample_hub.db.execute("UPDATE organizers SET sepa_creditor_id = NULL WHERE id = ?",
                          (sample_hub.ids["museum_organizer"],))
    with pytest.raises(ValidationError, match="no SEPA creditor id"):
        issue(sample_hub, order)
    invoice = issue(sample_hub, place(sample_hub, products=(CALENDAR,)))
    assert invoice["number"].endswith("-000001") and invoice["kassenzeichen"].endswith("-000001")


@pytest.mark.parametrize("pattern", ["{0.__class__}", "{year}", "{seq}{seq}", "{year}{year}-{seq}", "KZ-{seq:x}",
                                     "{seq}\n", "ÄÖ{seq}", "{" * 3, "X" * 30 + "{seq:06d}", "{seq!r}"])
def test_hostile_kassenzeichen_patterns_are_refused(sample_hub, pattern):
    org = sample_hub.ids["museum_organizer"]
    with pytest.raises(ValidationError, match="Kassenzeichen pattern") as refused:
        invoices.set_settings(sample_hub.db, org, InvoicingIn(kassenzeichen_pattern=pattern), utcnow())
    assert refused.value.extra["detail_de"]
    assert invoices.settings_of(sample_hub.db, org)["kassenzeichen_pattern"] == kassenzeichen.DEFAULT_PATTERN


def test_a_changed_pattern_skips_a_kassenzeichen_already_given(sample_hub):
    museum = issue(sample_hub, place(sample_hub, products=(VERBUND,)))
    invoices.set_settings(sample_hub.db, sample_hub.ids["museum_organizer"],
                          InvoicingIn(kassenzeichen_pattern=f"{dt.date.today().year}-{{seq:06d}}"), utcnow())
    changed = issue(sample_hub, place(sample_hub, products=(VERBUND,)))
    assert changed["kassenzeichen"] != museum["kassenzeichen"]  # the same text from a new pattern is skipped
    assert changed["kassenzeichen"].endswith("-000002")


def test_listing_open_invoices_per_customer(sample_hub):
    open_one = issue(sample_hub, place(sample_hub, products=(VERBUND,)))
    issue(sample_hub, place(sample_hub, products=(CALENDAR,), method="cash"))
    cancelled = issue(sample_hub, place(sample_hub, products=(VERBUND,)))
    invoices.cancel(sample_hub.db, this_node(sample_hub.db), cancelled["id"], InvoiceCancelIn(reason="x"), now=utcnow())
    listed = invoices.list_(sample_hub.db, customer_id=customer_id(sample_hub.db), open_only=True)
    assert [i["number"] for i in listed["items"]] == [open_one["number"]]
    assert invoices.list_(sample_hub.db, customer_id=customer_id(sample_hub.db))["total"] == 4
    assert invoices.list_(sample_hub.db, customer_id=customer_id(sample_hub.db, 1))["total"] == 0
