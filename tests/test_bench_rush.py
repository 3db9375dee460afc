"""Smoke test for `python -m bench rush` at a tiny size (6 clients, 8 seats left in each
date; SQLite, and PostgreSQL with one and two hub processes): real `tessera hub serve`
processes sell the ring out over HTTP (round robin over two processes), every order has its
eight tickets, no seat is sold twice, and the figures are well-formed. No timing assertions:
absolute times on shared machines mean nothing here."""

from __future__ import annotations

import json

import pytest

from bench import presale, rush
from bench.__main__ import BENCHMARKS


@pytest.mark.slow  # three hubs built and served, two on a throwaway PostgreSQL cluster: about 45 s
def test_rush_benchmark_sells_out_on_every_setup_and_never_a_seat_twice(tmp_path, capsys, pg_cluster):
    results = rush.measure(tmp_path, rush.Size.tiny(), pg_cluster)  # the worker's cluster, not one more
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines == results
    by_name = {r["figure"]: r for r in results}
    for setup in ("sqlite_1", "postgresql_1", "postgresql_2"):
        assert by_name[f"rush_{setup}_seats_double_sold"]["value"] == 0
        assert by_name[f"rush_{setup}_seats_double_sold"]["ratio"] == 0
        assert by_name[f"rush_{setup}_subscriptions_sold"]["value"] == 8  # the 8 seats left, then sold out
        assert by_name[f"rush_{setup}_seats_left"]["value"] == 0
        assert by_name[f"rush_{setup}_orders_per_s"]["value"] > 0
        assert by_name[f"rush_{setup}_cpu_ms_per_order"]["value"] > 0
    assert by_name["rush_sqlite_1_db_cpu_ms_per_order"]["value"] == 0  # SQLite runs inside the hub process
    assert by_name["rush_postgresql_1_db_cpu_ms_per_order"]["value"] > 0  # the cluster's processes counted
    cost = by_name["rush_postgresql_cost_ratio"]
    assert cost["budget"] == rush.COST_BUDGET_FACTOR
    assert cost["value"] == pytest.approx(by_name["rush_postgresql_1_cpu_ms_per_order"]["value"]
                                          / by_name["rush_sqlite_1_cpu_ms_per_order"]["value"], rel=0.02)


def test_the_cost_ratio_is_the_median_of_the_pairs_and_each_pair_is_reported(capsys):
    """This machine's speed drifts between runs minutes apart: the ratio is the median over
    sqlite_1/postgresql_1 pairs run back to back (the setups' own runs and the further pairs)."""
    def outcome(setup: str, cpu_s: float) -> rush.Outcome:
        sold = presale.Rush(orders=[{}] * 100, request_ms=[10.0], seconds=1.0)
        return rush.Outcome(setup, sold, hub_cpu_s=cpu_s, db_cpu_s=0.0, twice=0, free=0)

    setups = [outcome("sqlite_1", 1.0), outcome("postgresql_1", 3.0), outcome("postgresql_2", 9.0)]
    pairs = [(outcome("sqlite_1", 1.0), outcome("postgresql_1", 2.0)),
             (outcome("sqlite_1", 2.0), outcome("postgresql_1", 5.0))]
    by_name = {r["figure"]: r for r in rush.report(setups, pairs)}
    assert [by_name[f"rush_postgresql_cost_ratio_pair_{n}"]["value"] for n in (1, 2, 3)] == [3.0, 2.0, 2.5]
    cost = by_name["rush_postgresql_cost_ratio"]
    assert (cost["value"], cost["ratio"]) == (2.5, 1.25)
    assert by_name["rush_postgresql_1_cpu_ms_per_order"]["value"] == 30.0  # the setups' own runs
    assert "rush_postgresql_cost_ratio_pair_1" not in {r["figure"] for r in rush.report(setups)}
    capsys.readouterr()


def test_rush_benchmark_is_registered():
    assert BENCHMARKS["rush"] is rush
