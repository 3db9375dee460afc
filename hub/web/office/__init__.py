"""The office web app at /office/ (issue 12): staff login, sessions and the start page.

Views only: the rules are in `hub/services/staff.py`. `install(app)` adds the routes.
"""

import datetime as dt
from collections.abc import Callable

from aiohttp import web

from core.base.clock import utcnow
from hub.web.office import (
    account,
    api_tokens,
    bank_statements,
    cancellations,
    cards,
    catalog,
    devices,
    direct_debits,
    lists,
    money,
    operators,
    printing,
    reports,
    ring_pools,
    rollover,
    sales,
    staff_admin,
    subscribers,
    subscription_sale,
    views,
    voucher_redemptions,
    work,
)
from hub.web.office.views import CLOCK


def install(app: web.Application, clock: Callable[[], dt.datetime] = utcnow) -> None:
    """The foundation's pages (`views`) and the list screens (`lists`)."""
    views.install(app, clock)
    sales.install(app)  # phone sale (issue 12): before lists, so /office/orders/new is no order id
    lists.install(app)
    devices.install(app)
    work.install(app)
    cards.install(app)  # cards by fulfilment state and print batches (issue 12)
    printing.install(app)
    staff_admin.install(app)  # staff and TOTP (issue 12)
    account.install(app)
    operators.install(app)  # operators, API tokens, catalog (issue 12)
    api_tokens.install(app)
    catalog.install(app)
    subscription_sale.install(app)  # subscriptions (issue 13): the sale before the detail route
    rollover.install(app)  # season rollover (S15): /office/subscriptions/rollover before the detail route
    subscribers.install(app)
    ring_pools.install(app)  # ring seats in the desks' pools (issue 14)
    voucher_redemptions.install(app)  # choice vouchers redeemed and looked up (issue 15)
    money.install(app)  # open items, invoices, DATEV (issue 16)
    direct_debits.install(app)  # SEPA mandates and runs (issue 16)
    bank_statements.install(app)  # camt.053 upload and the unmatched entries (issue 16)
    reports.install(app)  # the S14 lists, sortable, filterable, as CSV, XLSX and PDF (issue 17)
    cancellations.install(app)  # cancel order lines, refunds to pay out (issue 16)


__all__ = ["CLOCK", "install"]
