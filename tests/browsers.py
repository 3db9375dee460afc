"""One Chromium per test process, shared by the browser tests; each test gets fresh contexts.

Starting Playwright's driver and launching Chromium cost about 1.5 s per test; a browser
context (cookies, storage, cache of its own) costs milliseconds and isolates tests as well.
Not a test module: browser tests use `with chromium() as browser:` and open their contexts
(`browser.new_context(...)` or `browser.new_page(...)`) inside the block; the contexts opened
there are closed when it ends.

Playwright's sync API marks its event loop as the thread's running loop between calls. That
would make the next asyncio test in this process (pytest-aiohttp, `asyncio.run`) fail with
"another loop is running", so the mark is set only inside a `chromium()` block.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
from collections.abc import Iterator
from typing import Any

CHROMIUM = "/usr/bin/chromium"

_shared: dict[str, Any] = {}  # "playwright", "browser", "loop" once started in this process


def _start() -> Any:
    from playwright.sync_api import sync_playwright

    manager = sync_playwright()
    playwright = manager.start()
    _shared.update(manager=manager, playwright=playwright, loop=manager._loop,
                   browser=playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"]))
    atexit.register(_stop)
    return _shared["browser"]


def _stop() -> None:
    """At the end of the process: close Chromium and the driver (the loop mark set for their calls)."""
    if "playwright" not in _shared:
        return
    asyncio.events._set_running_loop(_shared["loop"])
    with contextlib.suppress(Exception):
        _shared["browser"].close()
    with contextlib.suppress(Exception):
        _shared["playwright"].stop()
    asyncio.events._set_running_loop(None)
    _shared.clear()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """The process's Chromium (launched on first use); contexts opened in the block close at its end."""
    if "browser" in _shared:
        asyncio.events._set_running_loop(_shared["loop"])
        browser = _shared["browser"]
        if not browser.is_connected():  # it crashed or was closed: start over
            asyncio.events._set_running_loop(None)
            _stop()
            browser = _start()
    else:
        browser = _start()
    before = set(browser.contexts)
    try:
        yield browser
    finally:
        try:
            for context in browser.contexts:
                if context not in before:
                    with contextlib.suppress(Exception):
                        context.close()
        finally:
            asyncio.events._set_running_loop(None)
