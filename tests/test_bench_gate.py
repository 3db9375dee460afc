"""Smoke test for `python -m bench gate` at a tiny size: the setup builds the gate database it
claims, the timed scans really record entries, and the figures are well-formed. No timing
assertions: absolute times on shared machines mean nothing here."""

from __future__ import annotations

import json
import math

from bench import gate, peer_flood
from bench.__main__ import BENCHMARKS
from core.base.storage import connect


def test_gate_benchmark_smoke(tmp_path, capsys):
    size = gate.Size.tiny(scans=50)
    prepared = gate.prepare(tmp_path, size)

    db = connect(prepared.gate_db, edge=True)
    try:
        counts = db.execute("SELECT (SELECT count(*) FROM cards) AS cards, (SELECT count(*) FROM cards WHERE "
                            "revoked_at IS NOT NULL) AS revoked, (SELECT count(*) FROM entries) AS entries"
                            ).fetchone()
    finally:
        db.close()
    assert counts["cards"] == size.cards + 2 and counts["revoked"] == size.revoked  # + a theatre pass and ticket
    assert counts["entries"] == size.history
    assert len(set(prepared.scan_codes)) == len(prepared.scan_codes) == size.admits
    assert not set(prepared.scan_codes) & set(prepared.revoked_codes)

    results = gate.measure(prepared, size)
    timed_admits = size.rounds * size.per_block["admit"] + size.sustained
    assert timed_admits == 50
    assert len(results.all("admit")) == size.rounds * size.per_block["admit"]
    for kind in gate.BLOCKS:
        assert len(results.samples[kind]) == size.rounds
        assert all(ns > 0 for ns in results.all(kind))

    # every admit (warm-up, timed, sustained) recorded one entry, with its outbox operation
    db = connect(prepared.gate_db, edge=True)
    try:
        recorded = db.execute("SELECT id, card_id FROM entries WHERE record != ?", (gate.HISTORY_RECORD,)).fetchall()
        outbox = db.execute("SELECT count(*) AS n FROM outbox WHERE kind = 'entry.recorded'").fetchone()["n"]
    finally:
        db.close()
    assert {r["id"] for r in recorded} == set(results.admitted_ids)
    assert len(recorded) == len({r["card_id"] for r in recorded}) == size.admits == outbox

    # the real gate, quiet and under a 4-client flood of its peer endpoints from other processes
    flood = gate.measure_flood(prepared, size)
    assert len(flood.quiet_ns) == len(flood.flood_ns) == size.flood_scans // 2
    assert flood.requests > 0 and flood.door_admitted == 0  # nothing the flood sent got past the door
    assert sum(flood.door_refused.values()) == flood.requests and set(flood.door_refused) <= {
        "too-many-requests", "unsigned", "unknown-signer", "too-large"}
    db = connect(prepared.gate_db, edge=True)
    try:  # every flood-phase scan was a real entry; no forged record was stored
        flooded_in = db.execute("SELECT count(*) AS n FROM entries WHERE record != ?", (gate.HISTORY_RECORD,)
                                ).fetchone()["n"]
    finally:
        db.close()
    assert flooded_in == size.admits + size.flood_scans

    capsys.readouterr()
    figures = gate.report(results, flood)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == figures
    names = {f["figure"] for f in figures}
    assert {"scan_vs_verify_plus_commit", "scan_median_ms", "scan_p99_ms", "scans_per_s_one_core",
            "scans_per_s_sustained", "baseline_verify_us", "baseline_commit_us", "decide_revoked_us",
            "decide_malformed_us", "scan_p99_quiet_ms", "scan_p99_flood_ms", "scan_p99_flood_vs_quiet",
            "flood_requests_per_s", "flood_refused_at_door"} <= names
    for f in figures:
        assert set(f) == {"bench", "figure", "value", "unit", "budget", "ratio"} and f["bench"] == "gate"
        assert isinstance(f["value"], int | float) and math.isfinite(f["value"]) and f["value"] >= 0
        if f["budget"] is None:
            assert f["ratio"] is None
        else:
            assert math.isclose(f["ratio"], f["value"] / f["budget"], rel_tol=0.01)  # costs: value / budget
    by_name = {f["figure"]: f for f in figures}
    assert by_name["scan_vs_verify_plus_commit"]["budget"] == gate.SCAN_BUDGET
    assert by_name["scan_p99_ms"]["value"] >= by_name["scan_median_ms"]["value"]
    assert by_name["scan_p99_flood_vs_quiet"]["budget"] == peer_flood.FLOOD_BUDGET == 1.5


def test_gate_benchmark_is_registered():
    assert BENCHMARKS["gate"] is gate
