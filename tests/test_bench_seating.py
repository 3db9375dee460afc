"""Smoke test for `python -m bench seating` at a tiny size: the house it builds is the 2,000-seat
house it claims, with its sales in the database, and the figures are well-formed. No timing
assertions: absolute times on shared machines mean nothing here."""

from __future__ import annotations

import json
import random

from bench import seating
from bench.__main__ import BENCHMARKS
from core.subscriptions import seat_loader
from core.subscriptions.seats import indexes_of


def test_seating_benchmark_smoke(tmp_path, capsys):
    db, perfs = seating.build_house(tmp_path / "house")
    try:
        loaded = seat_loader.load_performances(db, perfs)
        assert len(loaded) == seating.PERFORMANCES and loaded[0].plan.size == 2060  # 2,000 + the pit's 60
        assert len({p.variant_id for p in loaded}) == 3
    finally:
        db.close()
    results = seating.measure(tmp_path / "run", seating.Size.tiny())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines == results
    by_name = {r["figure"]: r for r in results}
    assert by_name["free_in_all_8x2000_p99_ms"]["budget"] == seating.FREE_IN_ALL_BUDGET_MS == 1.0
    assert by_name["best_available_4_of_2000_70pct_sold_p99_ms"]["budget"] == seating.BEST_BUDGET_MS == 5.0
    assert all(r["value"] > 0 for r in results)
    assert 0 < by_name["best_available_found_share"]["value"] <= 1


def test_seating_benchmark_sells_what_it_says(tmp_path):
    db, perfs = seating.build_house(tmp_path / "house")
    try:
        seating.sell_random(db, perfs, 120, random.Random(1))
        for perf in seat_loader.load_performances(db, perfs):
            assert len(indexes_of(perf.taken)) == 120
            assert perf.free.bit_count() == perf.offered.bit_count() - 120
    finally:
        db.close()


def test_seating_benchmark_is_registered():
    assert BENCHMARKS["seating"] is seating
