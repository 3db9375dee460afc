"""Smoke test for `python -m bench postgresql` at a tiny size: both backends place the orders
and the figures are well-formed, the PostgreSQL one with twice the SQLite one as its budget.
No timing assertions."""

from __future__ import annotations

import json

from bench import postgresql
from bench.__main__ import BENCHMARKS


def test_the_postgresql_benchmark_reports_both_backends(capsys, pg_cluster):
    assert BENCHMARKS["postgresql"] is postgresql
    results = postgresql.run(count=3, cluster=pg_cluster)  # the worker's cluster, not one more
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines == results
    by_name = {r["figure"]: r for r in results}
    assert set(by_name) == {"sqlite_order_ms", "postgresql_order_ms", "sqlite_order_cpu_ms",
                            "postgresql_order_client_cpu_ms"}
    assert all(r["bench"] == "postgresql" and r["value"] > 0 for r in results)
    lite = by_name["sqlite_order_ms"]["value"]
    assert abs(by_name["postgresql_order_ms"]["budget"] - 2 * lite) <= 0.01 * 2 * lite + 0.001
