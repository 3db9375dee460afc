"""The live channel's hub side: a pull that waits for news (`GET /sync/v1/pull?...&wait=S`).

An edge keeps one long-poll open; the hub holds it until a change the node may see is
committed, or until the wait ends (then it answers an empty page, which doubles as the
heartbeat that tells the edge the hub is still there). Changes reach the feed from every
writer of the hub's database (API, office, pushes, jobs, other hub processes), so instead
of hooking each commit, one task per process looks at the feed's head (`max(seq)`, an index
lookup) every `POLL_S` while anyone waits, and wakes the waiters when it grew. Each waiter
then reads the new rows and goes on waiting if none of them is in its node's scope.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

from core.sync import scope as node_scope
from hub.sync import feed

POLL_S = 0.1  # how often the feed's head is looked at while a long-poll waits
MAX_WAIT_S = 25.0  # the longest a pull may be held (well inside the 5-minute replay window)


class FeedWatch:
    """Wakes waiting pulls when the change feed grows (one per app, on the app's loop)."""

    def __init__(self, db: sqlite3.Connection, poll_s: float = POLL_S) -> None:
        self.db, self.poll_s = db, poll_s
        self._waiters = 0
        self._grew: asyncio.Event = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closed = False

    async def wait_past(self, head: int, timeout_s: float) -> None:
        """Return when the feed's head is past *head*, after *timeout_s*, or at shutdown."""
        if self._closed or feed.head(self.db) > head:
            return
        self._waiters += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(head))
        grew = self._grew
        try:
            await asyncio.wait_for(grew.wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            self._waiters -= 1

    async def _watch(self, head: int) -> None:
        """Poll the head while anyone waits; each growth wakes every waiter once."""
        while self._waiters > 0 and not self._closed:
            await asyncio.sleep(self.poll_s)
            now = feed.head(self.db)
            if now != head:
                head = now
                self._wake_all()

    def _wake_all(self) -> None:
        self._grew.set()
        self._grew = asyncio.Event()

    def close(self) -> None:
        """At shutdown: every held pull answers at once, so the hub stops without waiting them out."""
        self._closed = True
        self._wake_all()


async def wait_for_news(db: sqlite3.Connection, watch: FeedWatch, scope: dict, after: int, limit: int,
                        wait_s: float, still_admitted: Callable[[], bool]) -> None:
    """Hold a pull until the feed after *after* holds a change in *scope* (or more than a
    page), *wait_s* ends, or *still_admitted* says no (the node was revoked meanwhile).
    Rows outside the scope are skipped once read, not reread at every growth."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait_s, MAX_WAIT_S)
    scope = node_scope.NodeScope.of(scope)
    scanned = after
    while True:
        head = feed.head(db)
        if head > scanned:
            changes, scanned, more = feed.page(db, scope, scanned, limit)
            if changes or more:
                return
        remaining = deadline - loop.time()
        if remaining <= 0 or not still_admitted():
            return
        await watch.wait_past(head, remaining)
