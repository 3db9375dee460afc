"""Smoke test for `python -m bench reports` at a small size: the booking list it exports has the rows
it claims (the report command says so, and the file is a real XLSX) and the figures are well-formed
JSON lines against the budgets of DESIGN §9. No timing assertions."""

from __future__ import annotations

import json

import pytest

from bench import reports
from bench.__main__ import BENCHMARKS


@pytest.mark.slow
def test_the_reports_bench_exports_its_rows_and_reports_well_formed_lines(capsys):
    assert BENCHMARKS["reports"] is reports and (reports.ROWS, reports.BUDGET_S, reports.BUDGET_MB) == (
        100_000, 10.0, 50.0)
    results = reports.run(rows=3000)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines == results and all(r["bench"] == "reports" and r["value"] > 0 for r in results)
    assert [r["figure"] for r in results[:2]] == ["xlsx_100k_rows_seconds", "xlsx_100k_rows_peak_rss"]
    assert results[1]["unit"] == "MB" and 5 < results[1]["value"] < 1000  # a process's RSS, not the bench's
    assert results[3]["figure"] == "xlsx_file_size" and results[3]["value"] > 0.05  # 3,000 rows, not an empty book
