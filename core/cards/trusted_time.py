"""Trusted time (B7): a node without a real-time clock must not travel back in time.

A Raspberry Pi has no RTC. Booted offline, its clock starts at the last time it saved
(fake-hwclock) or in 1970, and a gate would call every card NOT_YET_VALID or let an
expired one in. So each node persists a *time floor*: the latest moment it knows has
passed (its own recorded events, and hub time seen during sync). The trusted now is

    max(system clock, floor + monotonic time elapsed since the floor was read)

which equals the system clock whenever that is sane, and is never below the floor. The
difference is reported as skew, so the status page and `tessera edge status` can say
"clock is 3 days behind". The hub's time is authoritative: `set_from_hub` may also lower
a floor that a clock running ahead pushed into the future.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Callable

from core.base.clock import iso, utcnow
from core.base.storage import transaction


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class TrustedClock:
    def __init__(self, db: sqlite3.Connection, *, system: Callable[[], dt.datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic):
        self.db, self.system, self.monotonic = db, system, monotonic
        self._load()

    def _load(self) -> None:
        row = self.db.execute("SELECT floor, source FROM time_floor WHERE id = 1").fetchone()
        self.floor = _parse(row["floor"]) if row else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        self.source = row["source"] if row else "none"
        own = self.db.execute("SELECT max(wall_time) AS at FROM (SELECT wall_time FROM outbox WHERE kind = "
                              "'entry.recorded' ORDER BY node_seq DESC LIMIT 100)").fetchone()
        if own["at"] and _parse(own["at"]) > self.floor:
            self.floor, self.source = _parse(own["at"]), "entry"
        self.floor_mono = self.monotonic()

    def now(self) -> dt.datetime:
        system = self.system()
        carried = self.floor + dt.timedelta(seconds=self.monotonic() - self.floor_mono)
        return system if system >= carried else carried

    def skew_seconds(self) -> float:
        """How far the system clock is behind trusted time (0 when it is sane)."""
        return max(0.0, (self.now() - self.system()).total_seconds())

    def status(self) -> dict:
        skew = self.skew_seconds()
        return {"system": iso(self.system()), "trusted": iso(self.now()), "floor": iso(self.floor),
                "floor_source": self.source, "clock_behind_seconds": round(skew, 3),
                "using": "floor+monotonic" if skew > 1 else "system"}

    def observe(self, moment: dt.datetime, source: str) -> None:
        """Note in memory that *moment* has passed, for an event that is itself on disk (an
        entry: `_load` finds it again after a restart), so the hot path writes nothing extra."""
        if moment > self.floor:
            self.floor, self.source, self.floor_mono = moment, source, self.monotonic()

    def raise_floor(self, moment: dt.datetime, source: str) -> None:
        """Remember that *moment* has passed, on disk. Call inside the transaction of the event it comes from."""
        if moment <= self.floor:
            return
        self.db.execute(
            "INSERT INTO time_floor (id, floor, source) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET floor = excluded.floor, source = excluded.source "
            "WHERE excluded.floor > time_floor.floor", (iso(moment), source))
        self.floor, self.source, self.floor_mono = moment, source, self.monotonic()

    def set_from_hub(self, hub_now: dt.datetime) -> None:
        """The hub's clock is the reference: adopt it, even if that lowers the floor."""
        with transaction(self.db):
            self.db.execute(
                "INSERT INTO time_floor (id, floor, source) VALUES (1, ?, 'hub') "
                "ON CONFLICT (id) DO UPDATE SET floor = excluded.floor, source = 'hub'", (iso(hub_now),))
        self.floor, self.source, self.floor_mono = hub_now, "hub", self.monotonic()
