"""Smoke test for `python -m bench presale` at a tiny size (a dozen clients, 30 seats left in each
date): a real hub process sells the ring out over HTTP, every order has its eight tickets, no seat
is sold twice, and the figures are well-formed. No timing assertions: absolute times on shared
machines mean nothing here."""

from __future__ import annotations

import json

import pytest

from bench import presale
from bench.__main__ import BENCHMARKS


@pytest.mark.slow  # a hub subprocess and a few hundred requests, about 4 s
def test_presale_benchmark_sells_the_ring_out_and_never_a_seat_twice(tmp_path, capsys):
    results = presale.measure(tmp_path, presale.Size.tiny())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines == results
    by_name = {r["figure"]: r for r in results}
    assert by_name["presale_seats_double_sold"]["value"] == 0
    assert by_name["presale_subscriptions_sold"]["value"] == 30  # the 30 seats left in every date, then sold out
    assert by_name["presale_seats_left"]["value"] == 0
    assert by_name["presale_request_p99_ms"]["budget"] == presale.REQUEST_P99_BUDGET_MS
    assert by_name["presale_orders_per_s"]["value"] > 0


def test_presale_benchmark_is_registered():
    assert BENCHMARKS["presale"] is presale
