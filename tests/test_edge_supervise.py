"""The desk's background loops (sync, printing) survive a bug: it is logged, and the loop
starts again, so sales never wait silently behind a dead sync loop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge.desk import server
from tests import test_desk_api
from tests.helpers import async_wait_until


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
            await async_wait_until(lambda: len(starts) >= 3, what="the third start of the sync loop")
        assert len(starts) == 3
        failures = [r for r in caplog.records if "sync loop failed" in r.getMessage()]
        assert len(failures) == 2 and "bug number 1" in str(failures[0].exc_info[1])
        assert all(not t.done() for t in edge._tasks)
    finally:
        await edge.close()


@pytest.mark.slow  # waits out a real backoff (about 8 s)
async def test_a_local_change_cuts_the_backoff_short_while_the_hub_is_away(hub, tmp_path):
    """The hub is away: rounds back off (0.5 s, 1 s, 2 s, ... with jitter). A sale made now
    wakes the loop at once, so it reaches the hub as soon as the hub answers, not after the
    longest wait; without a change the backoff goes on."""
    edge = await test_desk_api.enrolled_edge(hub, tmp_path)
    attempts: list[float] = []
    loop = asyncio.get_running_loop()

    async def away():
        attempts.append(loop.time())
        raise server.sync_client.SyncError("hub unreachable: test")

    edge.client.round = away
    task = asyncio.create_task(edge.client.run(edge.wake, period_s=60, max_backoff_s=60))
    try:
        # waits of about 0.5, 1, 2, 4 s: about 7.5 s
        await async_wait_until(lambda: len(attempts) >= 5, timeout=30, what="five attempts")
        gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
        assert gaps[-1] > 2.0  # backing off: the next wait is about 8 s
        edge.wake.set()  # a sale
        await async_wait_until(lambda: len(attempts) >= 6, timeout=5, what="the retry the sale wakes")
        # at once, not after the backoff (about 8 s); loose, for a loaded machine
        assert len(attempts) == 6 and attempts[-1] - attempts[-2] < 2.0
        await asyncio.sleep(0.5)  # a window in which nothing may happen: no event to wait on
        assert len(attempts) == 6  # one wake, one early retry: then the backoff goes on
        assert "unreachable" in edge.db.execute("SELECT last_error FROM sync_state").fetchone()["last_error"]
    finally:
        task.cancel()
        await edge.close()
