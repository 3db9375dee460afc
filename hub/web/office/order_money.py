"""An order's money as the office's order page shows it (issue 16): its payment state, its
invoices and its SEPA debits, each read through the API (`api_call`), so the page says what the
API says. A part the API refuses (an order the payment rules do not know) is left out, never
guessed.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from hub.services import staff
from hub.web.office import api_call


async def read(request: web.Request, me: staff.Session, order: dict) -> dict:
    """{state, invoices, debits, mandates}: the payment state (None if refused), the invoices of
    the order newest first, its SEPA debits, and the customer's active mandates (for a debit)."""
    out: dict = {"state": None, "invoices": [], "debits": [], "mandates": []}
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
    return out


def day(iso_day: str | None) -> str:
    """A calendar day (YYYY-MM-DD) as the office reads it: 02.12.2026."""
    return dt.date.fromisoformat(iso_day[:10]).strftime("%d.%m.%Y") if iso_day else ""
