"""Wall-clock helpers. All stored timestamps are ISO 8601 UTC strings ending in `Z`.

Keeping one textual form makes timestamps sort correctly as SQLite TEXT and compare
equal across hub and edges. Trusted time (B7, core/cards/trusted_time.py) builds on
`system_now()`: the machine's clock as a node sees it.
"""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

# Where the venues are: calendar dates (validity of annual tickets, seasons) start and end
# at local midnight. One organizer time zone for now; a per-organizer zone can replace it.
LOCAL_TZ = ZoneInfo("Europe/Berlin")


# Shifts the clock a node judges cards by (`system_now`), in seconds: for drills and tests of
# a device whose clock runs ahead or behind, in its own process, without touching the machine's
# clock (which needs root and moves every other process too). Unset in production.
CLOCK_OFFSET_ENV = "TESSERA_CLOCK_OFFSET_S"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def system_now() -> dt.datetime:
    """The system clock as a node's trusted time reads it, shifted by TESSERA_CLOCK_OFFSET_S
    when that is set (read at each call, so a test can set it for one node's objects)."""
    offset = os.environ.get(CLOCK_OFFSET_ENV)
    now = dt.datetime.now(dt.UTC)
    return now + dt.timedelta(seconds=float(offset)) if offset else now


def iso(moment: dt.datetime) -> str:
    """Normalise an aware datetime to `YYYY-MM-DDTHH:MM:SSZ` (microseconds dropped)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a timezone is required")
    if moment.tzinfo is not dt.UTC:
        moment = moment.astimezone(dt.UTC)
    # by hand: strftime costs ~15 us here, and the gate formats several times per scan
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
            f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z")


def iso_ms(moment: dt.datetime) -> str:
    """Like iso(), with milliseconds: for revocation times, which are compared with the
    millisecond signing time inside a card id."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return iso(utcnow())



def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def day_start(day: dt.date) -> dt.datetime:
    """Local midnight at the start of *day*, as an aware UTC datetime."""
    return dt.datetime.combine(day, dt.time(0, 0), LOCAL_TZ).astimezone(dt.UTC)


def day_end(day: dt.date) -> dt.datetime:
    """The last second of local *day*, as an aware UTC datetime."""
    return day_start(day + dt.timedelta(days=1)) - dt.timedelta(seconds=1)
