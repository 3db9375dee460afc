"""Wall-clock helpers. All stored timestamps are ISO 8601 UTC strings ending in `Z`.

Keeping one textual form makes timestamps sort correctly as SQLite TEXT and compare
equal across hub and edges. Trusted time (B7) will build on `utcnow()`.
"""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """Normalise an aware datetime to `YYYY-MM-DDTHH:MM:SSZ` (microseconds dropped)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a timezone is required")
    return moment.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    return iso(utcnow())

