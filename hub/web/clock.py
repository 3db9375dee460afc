"""The API's clock: what "now" is for sale windows, seat holds and held seats on the seat map.

Handlers that judge time by it (the shop's and agencies' subscriptions, the seat map) read
`now(ctx)`. The hub runs on the system clock; a test sets `app[CLOCK]` to a clock it moves,
so a hold expires or a sale window opens without waiting for the wall clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from aiohttp import web

from core.base.clock import utcnow

CLOCK = web.AppKey("api_clock", Callable[[], dt.datetime])


def now(ctx) -> dt.datetime:
    """The app's clock if one is set, else the system clock (UTC)."""
    return app_now(getattr(ctx, "app", None))


def app_now(app: web.Application | None) -> dt.datetime:
    """*app*'s clock if one is set, else the system clock (UTC): for the app's workers (the hold
    sweeper judges a hold expired by the clock that made it)."""
    clock = app.get(CLOCK) if app is not None and hasattr(app, "get") else None
    return clock() if clock is not None else utcnow()
