"""Smoke test for the invoice figure of `python -m bench money` at a tiny size: it issues and renders
the invoices it claims (three VAT rates each) and reports well-formed figures. No timing assertions."""

from __future__ import annotations

import json

from bench import money, money_invoices


def test_the_invoice_figure_issues_and_renders_its_invoices_and_reports_well_formed_lines(capsys):
    assert money_invoices.measure_invoices in money.FIGURES
    results = money_invoices.measure_invoices(8)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines == results and all(r["bench"] == "money" and r["value"] > 0 for r in results)
    assert [r["figure"] for r in results] == ["invoice_pdf_per_invoice_ms", "invoice_issue_per_invoice_ms",
                                              "invoice_duplicate_pdf_ms", "invoice_pdf_bytes"]
    assert results[3]["value"] > 3000  # a real A4 page with text, not an empty PDF
    assert money_invoices.BUDGET_MS == 20.0 and money_invoices.INVOICES == 1000
