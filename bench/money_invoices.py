"""The invoice figure of `python -m bench money` (issue 16): 1,000 invoice PDFs, ms per invoice (budget 20 ms).

A real hub database (the sample catalog in a temporary folder) with 1,000 phone orders of three
annual tickets each (VAT exempt, 7 % and 19 %, so every invoice has three rates), each invoiced by
`core.payments.invoices.issue`. Measured: per invoice, reading it back from the database
(`invoices.get`) and rendering its A4 PDF (`core.payments.invoice_pdf.render`, the shipped layout,
loaded once) to the finished bytes, one PDF per invoice as the office downloads them. As context:
the time to issue an invoice (number, Kassenzeichen, VAT per rate, one transaction each), a
duplicate's render time, and the PDF size. Setting up the orders is not measured.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.report import figure
from core.base.clock import utcnow
from core.base.node import this_node
from core.cards import cards
from core.payments import invoice_pdf, invoices
from core.sales import orders
from core.sales.orders import HolderIn, LineIn, OrderIn

NAME = "money"
INVOICES = 1000
BUDGET_MS = 20.0
VERBUND, REDUCED, CALENDAR = 0, 2, 3  # sample annual products; REDUCED is made 19 % here


def _hub(folder: Path) -> tuple:
    from hub import sample  # the hub's sample catalog, as the tests build it
    from hub.app import init_hub, make_app
    from hub.client import LocalClient

    db, _ = init_hub(folder)
    ids = sample.build(LocalClient(make_app(db)), performances=4)
    db.execute("UPDATE annual_products SET vat_code = '19' WHERE id = ?", (ids["annual_products"][REDUCED],))
    return db, ids


def _orders(db, folder: Path, ids: dict, count: int) -> list[str]:
    customers = [r["id"] for r in db.execute("SELECT id FROM customers ORDER BY number LIMIT 50")]
    signer, node = cards.load_signer(db, folder), this_node(db)
    placed = []
    for i in range(count):
        lines = [LineIn(product_id=ids["annual_products"][p], quantity=1, holders=[HolderIn(name="Erika Mustermann")])
                 for p in (VERBUND, CALENDAR, REDUCED)]
        order = OrderIn(lines=lines, customer_id=customers[i % len(customers)], payment_method="transfer",
                        delivery="pickup")
        placed.append(orders.place_order(db, node, signer, order, channel="phone", now=utcnow())["id"])
    return placed


def measure_invoices(count: int = INVOICES) -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="tessera-bench-invoices-")) / "hub"
    try:
        db, ids = _hub(folder)
        order_ids = _orders(db, folder, ids, count)
        node = this_node(db)
        started = time.perf_counter()
        issued = [invoices.issue(db, node, oid, invoices.InvoiceIn(), now=utcnow())["id"] for oid in order_ids]
        issue_s = time.perf_counter() - started
        invoice_pdf.render(invoices.get(db, issued[0]))  # warm-up: layout file, font metrics
        started = time.perf_counter()
        size = sum(len(invoice_pdf.render(invoices.get(db, iid))) for iid in issued)
        render_s = time.perf_counter() - started
        started = time.perf_counter()
        for iid in issued[:100]:
            invoice_pdf.render(invoices.get(db, iid), duplicate=True)
        duplicate_s = time.perf_counter() - started
        db.close()
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)
    return [figure(NAME, "invoice_pdf_per_invoice_ms", render_s * 1000 / count, "ms",
                   BUDGET_MS if count == INVOICES else None),
            figure(NAME, "invoice_issue_per_invoice_ms", issue_s * 1000 / count, "ms"),
            figure(NAME, "invoice_duplicate_pdf_ms", duplicate_s * 1000 / min(count, 100), "ms"),
            figure(NAME, "invoice_pdf_bytes", size / count, "bytes")]
