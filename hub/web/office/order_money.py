"""An order's money as the office's order page shows it (issue 16): its payment state, its
invoices and its SEPA debits, each read through the API (`api_call`), so the page says what the
API says. A part the API refuses (an order the payment rules do not know) is left out, never
guessed.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from core.payments import invoices
from hub.services import staff
from hub.web.office import api_call, views
from hub.web.office.money_text import TEXT

# What a money button did, named by its text key: the page after the redirect says it in its own
# language (`?done=KEY&n=&r=&m=&c=`), so switching the language keeps the message readable.
NOTES = frozenset({"inv_issued", "inv_cancelled", "deb_made", "md_made", "md_amended", "md_cancelled_done",
                   "sepa_account_done", "sepa_exported", "sepa_returned_done", "sepa_collected_done",
                   "bank_imported", "bank_duplicate", "bank_assigned", "bank_dismissed", "cn_done", "rf_paid",
                   "bank_imported_overpaid", "bank_taken_back"})


async def read(request: web.Request, me: staff.Session, order: dict) -> dict:
    """{state, invoices, debits, mandates}: the payment state (None if refused), the invoices of
    the order newest first, its SEPA debits, and the customer's active mandates (for a debit)."""
    out: dict = {"state": None, "invoices": [], "debits": [], "mandates": [], "uninvoiced": 0}
    try:
        out["state"] = await api_call.call(request, me, "GET", f"/orders/{order['id']}/payment-state")
        out["invoices"] = (await api_call.call(request, me, "GET", "/invoices",
                                               query={"order_id": order["id"], "limit": 500}))["items"]
        out["debits"] = (await api_call.call(request, me, "GET", "/sepa-debits",
                                             query={"order_id": order["id"]}))["items"]
        if order.get("customer_id"):
            found = await api_call.call(request, me, "GET", "/sepa-mandates",
                                        query={"customer_id": order["customer_id"]})
            out["mandates"] = [m for m in found["items"] if m["state"] == "active"]
    except api_call.Refused:
        pass  # an office role the money operations refuse: the page shows the order without them
    billed = {line["order_line_id"] for i in out["invoices"] if i["kind"] == "invoice" and not i["cancelled_by"]
              for line in i["lines"]}
    out["uninvoiced"] = sum(1 for item in order.get("items", [])
                            if item["id"] not in billed and invoices.billable(item))
    return out


def note(request: web.Request) -> str:
    """The message of `?done=KEY` in the page's language ("" for a key that is no note)."""
    key = request.query.get("done", "")
    if key not in NOTES:
        return ""
    lang = views._lang(request)
    args = {k: request.query.get(k, "")[:100] for k in ("n", "r", "m")}
    cents = request.query.get("c", "0")
    args["s"] = views._euros(lang)(int(cents) if cents.isdigit() and len(cents) < 12 else 0)
    return TEXT[lang][key].format(**args)


def day(iso_day: str | None) -> str:
    """A calendar day (YYYY-MM-DD) as the office reads it: 02.12.2026."""
    return dt.date.fromisoformat(iso_day[:10]).strftime("%d.%m.%Y") if iso_day else ""
