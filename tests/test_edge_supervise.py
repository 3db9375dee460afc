"""The desk's background loops (sync, printing) survive a bug: it is logged, and the loop
starts again, so sales never wait silently behind a dead sync loop."""

from __future__ import annotations

import asyncio
import logging

from edge import server
from tests import test_desk_api

hub = test_desk_api.hub  # the sample hub served over loopback (fixture)


async def test_a_loop_that_fails_is_logged_and_started_again(hub, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(server, "RESTART_S", 0.01)
    edge = await test_desk_api.enrolled_edge(hub, tmp_path)
    starts = []

    async def flaky_run(wake, period_s):
        starts.append(period_s)
        if len(starts) < 3:
            raise RuntimeError(f"bug number {len(starts)}")
        await asyncio.Event().wait()  # the third start keeps running

    monkeypatch.setattr(edge.client, "run", flaky_run)
    try:
        with caplog.at_level(logging.ERROR, logger="tessera.edge"):
            edge.start_background()
            for _ in range(200):
                if len(starts) == 3:
                    break
                await asyncio.sleep(0.01)
        assert len(starts) == 3
        failures = [r for r in caplog.records if "sync loop failed" in r.getMessage()]
        assert len(failures) == 2 and "bug number 1" in str(failures[0].exc_info[1])
        assert all(not t.done() for t in edge._tasks)
    finally:
        await edge.close()
