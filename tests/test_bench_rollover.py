"""Smoke test for `python -m bench rollover` at a tiny size: every subscription is kept, confirmed
with its invoice, half of them debited in the pain.008 file, and the figures are well-formed JSON
lines (the one with the budget only at full size). No timing assertions."""

from __future__ import annotations

import json

import pytest

from bench import rollover
from bench.__main__ import BENCHMARKS


@pytest.mark.slow
def test_the_rollover_bench_rolls_over_confirms_and_exports_and_reports_its_figures(capsys):
    assert BENCHMARKS["rollover"] is rollover
    results = rollover.measure(40)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines == results and all(r["bench"] == "rollover" and r["value"] > 0 for r in results)
    assert [r["figure"] for r in results] == [
        "rollover_40_with_invoices_and_pain008_s", "plan_and_hold_s", "confirm_orders_invoices_debits_prints_s",
        "confirm_per_subscription_ms", "pain008_20_debits_s"]
    assert results[0]["budget"] is None and rollover.BUDGET_S == 60.0 and rollover.SUBSCRIPTIONS == 20_000
