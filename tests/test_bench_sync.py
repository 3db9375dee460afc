"""Smoke test for `python -m bench sync` at a tiny size (1,000 pushed ops, a few thousand pulled
changes, 150 ops caught up after an outage) against a real `tessera hub serve` process: the figures
are well-formed, and every op reached the hub exactly once. No timing assertions: absolute times
on shared machines mean nothing here."""

from __future__ import annotations

import json
import math

import pytest

from bench import sync, sync_live
from bench.__main__ import BENCHMARKS
from core.base.node import NODE_DB
from core.base.storage import connect
from hub.app import db_path

FIGURES = {"push_ops_per_s", "direct_insert_ops_per_s", "direct_insert_sync_ops_only_per_s", "push_vs_direct_insert",
           "push_hub_cpu_us_per_op", "push_edge_cpu_us_per_op", "pull_changes", "pull_changes_per_s",
           "pull_edge_peak_rss", "pull_edge_rss_at_start", "pull_edge_cpu_us_per_change",
           "pull_hub_cpu_us_per_change", "catchup_s", "catchup_wait_s", "catchup_push_s",
           "push_ops_per_s_synchronous_full", "push_ops_per_s_synchronous_normal", "push_synchronous_full_vs_normal",
           "push_single_ops_per_s_synchronous_full", "push_single_ops_per_s_synchronous_normal",
           "push_single_synchronous_full_vs_normal", "live_revocation_s", "live_revocation_s_p50",
           "live_pool_move_s", "live_pool_move_s_p50", "live_offline_flip_s", "live_online_flip_s",
           "live_backlog_moves_s"}


@pytest.mark.slow  # the sync benchmark with a subprocess, about 3 s
def test_sync_benchmark_smoke(tmp_path, capsys):
    size = sync.Size.tiny()
    figures = sync.run(size, work=tmp_path)

    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == figures
    assert {f["figure"] for f in figures} == FIGURES
    for f in figures:
        assert set(f) == {"bench", "figure", "value", "unit", "budget", "ratio"} and f["bench"] == "sync"
        assert isinstance(f["value"], int | float) and math.isfinite(f["value"]) and f["value"] >= 0
        if f["budget"] is None:
            assert f["ratio"] is None
    by_name = {f["figure"]: f for f in figures}
    push = by_name["push_vs_direct_insert"]  # a rate: budget / value
    assert push["budget"] == sync.PUSH_BUDGET and push["value"] > 0
    assert math.isclose(push["ratio"], push["budget"] / push["value"], rel_tol=0.01)
    rss = by_name["pull_edge_peak_rss"]  # a cost: value / budget
    assert rss["budget"] == sync.RSS_BUDGET_MB and math.isclose(rss["ratio"], rss["value"] / rss["budget"],
                                                                rel_tol=0.01)
    assert 10 < rss["value"] < 1000  # the edge's own RSS, not the benchmark process's
    assert by_name["pull_changes"]["value"] >= size.push_ops
    assert math.isclose(by_name["catchup_s"]["value"],
                        by_name["catchup_wait_s"]["value"] + by_name["catchup_push_s"]["value"], rel_tol=0.02,
                        abs_tol=0.002)

    # exactly once at the hub: every node_seq of each gate logged and applied once, every entry
    # written once (one entries row and one change-feed row each), no conflicts
    gates = {}
    for name, count in ((sync.PUSH_GATE, size.push_ops), (sync.PULL_GATE, size.catchup_ops),
                        (sync.LIVE_GATE, sync_live.BACKLOG_OPS)):
        edge = connect(sync.gate_folder(tmp_path, name) / NODE_DB, edge=True)
        try:
            node_id = edge.execute("SELECT id FROM node").fetchone()["id"]
            own = {r["id"] for r in edge.execute("SELECT id FROM entries WHERE node_id = ?", (node_id,))}
            outbox = edge.execute("SELECT count(*) AS n, max(node_seq) AS last, sum(result = 'applied') AS applied "
                                  "FROM outbox").fetchone()
            pushed_seq = edge.execute("SELECT pushed_seq FROM sync_state").fetchone()["pushed_seq"]
        finally:
            edge.close()
        assert len(own) == count
        assert outbox == {"n": count, "last": count, "applied": count} and pushed_seq == count
        gates[node_id] = (own, count)

    hub = connect(db_path(tmp_path / "hub"))
    try:
        for node_id, (own, count) in gates.items():
            ops = hub.execute("SELECT node_seq, status FROM sync_ops WHERE node_id = ? ORDER BY node_seq",
                              (node_id,)).fetchall()
            assert [r["node_seq"] for r in ops] == list(range(1, count + 1))
            assert {r["status"] for r in ops} == {"applied"}
            at_hub = [r["id"] for r in hub.execute("SELECT id FROM entries WHERE node_id = ?", (node_id,))]
            assert len(at_hub) == len(set(at_hub)) == count and set(at_hub) == own
        assert hub.execute("SELECT count(*) AS n FROM conflicts").fetchone()["n"] == 0
        entry_changes = hub.execute("SELECT count(*) AS n FROM changes WHERE tbl = 'entries'").fetchone()["n"]
        assert entry_changes == size.push_ops + size.catchup_ops + sync_live.BACKLOG_OPS  # + the live gate's
    finally:
        hub.close()

    # the temporary database copies of the direct-insert baseline and the hub copies of the
    # synchronous FULL/NORMAL phase are gone
    assert not list(tmp_path.glob("*.sqlite*")) and not list(tmp_path.glob("hub-*"))


def test_sync_benchmark_is_registered():
    assert BENCHMARKS["sync"] is sync
