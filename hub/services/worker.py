"""A background loop on the hub's event loop: the mail sender and the print batcher.

Each round does some work and says how long to wait for the next one; `wake()` (called after
a commit that queued work, from the loop's thread or from a handler running in the hub's
executor) starts the next round at once; `await stop()` lets a round in progress finish, so
nothing is sent but left unrecorded, and cancels it only after `stop_wait_s()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger("tessera.worker")


class Worker:
    name = "tessera-worker"

    def __init__(self) -> None:
        self._task: asyncio.Task | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.rounds = 0  # rounds finished (tests wait for the first, which runs as the app starts)

    async def round(self) -> float:
        """Do one round of work; the seconds to wait before the next (unless woken)."""
        raise NotImplementedError

    def after_failure_s(self) -> float:
        """How long to wait after a round that raised (it is logged, the loop goes on)."""
        return 60.0

    def stop_wait_s(self) -> float:
        return 10.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        """Thread-safe: an asyncio.Event may only be set from its loop's thread."""
        if self._wakeup is None or self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wakeup.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def stop(self) -> None:
        task = self._task
        if task is None:
            return
        self._stopping = True
        self.wake()
        try:
            await asyncio.wait_for(asyncio.shield(task), self.stop_wait_s())
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    async def _run(self) -> None:
        assert self._wakeup is not None
        while not self._stopping:
            self._wakeup.clear()
            try:
                delay = await self.round()
            except Exception:
                log.exception("%s: round failed", self.name)
                delay = self.after_failure_s()
            self.rounds += 1
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)
