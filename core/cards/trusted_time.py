"""Trusted time (B7): a node's clock may be wrong in either direction; its cards and entries must not be.

A Raspberry Pi has no RTC. Booted offline, its clock starts at the last time it saved
(fake-hwclock) or in 1970, and a gate would call every card NOT_YET_VALID or let an
expired one in. A clock can also run *ahead* (a wrong time zone, a bad NTP answer, a typo
when set by hand): a desk a year ahead sells cards that are valid only a year from now.

So each node keeps two things in `time_floor` (migration 0013 for the anchor):

- the **hub anchor**: the hub's time seen at the last sync, with this machine's monotonic
  reading at that moment and the boot id (monotonic time is only comparable within one
  boot). While the anchor is from this boot, `hub now = hub time + monotonic elapsed`.
- a **floor**: the latest moment the node knows has passed (hub time, and its own recorded
  entries), for a node that rebooted without hub contact.

The trusted now is

- `hub now`, when there is an anchor of this boot and the system clock differs from it by
  more than `max_skew` (5 minutes by default), ahead or behind;
- otherwise `max(system clock, floor + monotonic elapsed since the floor was read)`, which
  equals the system clock whenever that is sane and is never below the floor.

The floor never runs ahead of the hub: entries recorded before the last hub contact do not
raise it (the hub's time supersedes them), and entries recorded after it in the anchor's
boot count only up to `hub time + their monotonic elapsed`. So a gate whose clock ran ahead,
and was corrected by a sync, does not jump ahead again when it restarts. Entries of a later
boot (rebooted, no hub contact since) are taken as they are: that is the floor logic.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.base.clock import iso, system_now
from core.base.outbox import boot_id
from core.base.storage import transaction

MAX_SKEW = dt.timedelta(minutes=5)  # beyond this a system clock is not believed while hub time is known
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class HubAnchor:
    """The hub's time at the last sync, with the monotonic reading and boot it was taken in."""

    hub_time: dt.datetime
    mono: float
    boot: str
    seq: int  # the last outbox op recorded before that moment

    @classmethod
    def of(cls, row: dict | None) -> HubAnchor | None:
        """The anchor kept in a `time_floor` row, if the node has synced since migration 0013."""
        if row is None or row["hub_time"] is None:
            return None
        return cls(dt.datetime.fromisoformat(row["hub_time"]), row["hub_mono"], row["hub_boot"], row["hub_seq"])

    def at(self, mono: float) -> dt.datetime:
        """Hub time at monotonic reading *mono* of the same boot."""
        return self.hub_time + dt.timedelta(seconds=mono - self.mono)


class TrustedClock:
    def __init__(self, db: sqlite3.Connection, *, system: Callable[[], dt.datetime] = system_now,
                 monotonic: Callable[[], float] = time.monotonic, boot: Callable[[], str] = boot_id,
                 max_skew: dt.timedelta = MAX_SKEW):
        self.db, self.system, self.monotonic, self.boot = db, system, monotonic, boot
        self.max_skew = max_skew
        self._load()

    def _load(self) -> None:
        row = self.db.execute("SELECT * FROM time_floor WHERE id = 1").fetchone()
        self.floor = _parse(row["floor"]) if row else EPOCH
        self.source = row["source"] if row else "none"
        self.anchor = HubAnchor.of(row)
        own = self._latest_own_entry()
        if own is not None and own > self.floor:
            self.floor, self.source = own, "entry"
        self.floor_mono = self.monotonic()

    def _latest_own_entry(self) -> dt.datetime | None:
        """The latest moment this node's own recent entries prove, never beyond the hub's time."""
        after = self.anchor.seq if self.anchor else 0
        rows = self.db.execute(
            "SELECT wall_time, mono_ns, boot_id FROM outbox WHERE kind = 'entry.recorded' AND node_seq > ? "
            "ORDER BY node_seq DESC LIMIT 100", (after,)).fetchall()
        latest = None
        for r in rows:
            moment = _parse(r["wall_time"])
            if self.anchor is not None and r["boot_id"] == self.anchor.boot:
                moment = min(moment, self.anchor.at(r["mono_ns"] / 1e9))  # stamped ahead: the hub's time
            latest = moment if latest is None or moment > latest else latest
        return latest

    def hub_now(self) -> dt.datetime | None:
        """The hub's time now, from the last sync of this boot; None without one."""
        if self.anchor is None or self.anchor.boot != self.boot():
            return None
        return self.anchor.at(self.monotonic())

    def now(self) -> dt.datetime:
        return self._decide()[0]

    def _decide(self) -> tuple[dt.datetime, str]:
        """Trusted now and what it came from: "hub+monotonic", "floor+monotonic" or "system"."""
        system = self.system()
        hub = self.hub_now()
        if hub is not None and abs(system - hub) > self.max_skew:
            return hub, "hub+monotonic"
        carried = self.floor + dt.timedelta(seconds=self.monotonic() - self.floor_mono)
        return (system, "system") if system >= carried else (carried, "floor+monotonic")

    def offset_seconds(self) -> float:
        """System clock minus trusted time: positive when the clock runs ahead, negative behind."""
        return (self.system() - self.now()).total_seconds()

    def skew_seconds(self) -> float:
        """How far the system clock is off trusted time, either way (0 when it is sane)."""
        return abs(self.offset_seconds())

    def describe(self) -> str:
        """One line for a warning: how far off the clock is and which way."""
        offset = self.offset_seconds()
        way = "ahead of" if offset > 0 else "behind"
        return f"system clock is {abs(offset):.0f} s {way} trusted time"

    def status(self) -> dict:
        """What the gate's status page, the desk's status bar and `tessera edge status` show."""
        now, using = self._decide()
        system = self.system()
        offset = (system - now).total_seconds()
        using = "system" if abs(offset) <= 1 else using
        return {"system": iso(system), "trusted": iso(now), "floor": iso(self.floor),
                "floor_source": self.source, "hub_time_known": self.hub_now() is not None,
                "clock_offset_seconds": round(offset, 3), "clock_behind_seconds": round(max(0.0, -offset), 3),
                "clock_ahead_seconds": round(max(0.0, offset), 3),
                "max_skew_seconds": self.max_skew.total_seconds(), "using": using}

    def observe(self, moment: dt.datetime, source: str) -> None:
        """Note in memory that *moment* has passed, for an event that is itself on disk (an
        entry: `_load` finds it again after a restart), so the hot path writes nothing extra."""
        if moment > self.floor:
            self.floor, self.source, self.floor_mono = moment, source, self.monotonic()

    def raise_floor(self, moment: dt.datetime, source: str) -> None:
        """Remember that *moment* has passed, on disk. Call inside the transaction of the event
        it comes from. Never beyond the hub's time when that is known."""
        hub = self.hub_now()
        if hub is not None:
            moment = min(moment, hub)
        if moment <= self.floor:
            return
        self.db.execute(
            "INSERT INTO time_floor (id, floor, source) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET floor = excluded.floor, source = excluded.source "
            "WHERE excluded.floor > time_floor.floor", (iso(moment), source))
        self.floor, self.source, self.floor_mono = moment, source, self.monotonic()

    def set_from_hub(self, hub_now: dt.datetime) -> None:
        """The hub's clock is the reference: adopt it as the anchor and the floor, even if that
        lowers a floor that a clock running ahead pushed into the future."""
        mono = self.monotonic()
        with transaction(self.db):
            seq = self.db.execute("SELECT coalesce(max(node_seq), 0) AS s FROM outbox").fetchone()["s"]
            anchor = HubAnchor(hub_now, mono, self.boot(), seq)
            self.db.execute(
                "INSERT INTO time_floor (id, floor, source, hub_time, hub_mono, hub_boot, hub_seq) "
                "VALUES (1, ?, 'hub', ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET floor = excluded.floor, "
                "source = 'hub', hub_time = excluded.hub_time, hub_mono = excluded.hub_mono, "
                "hub_boot = excluded.hub_boot, hub_seq = excluded.hub_seq",
                (iso(hub_now), hub_now.isoformat(), mono, anchor.boot, seq))
        self.anchor = anchor
        self.floor, self.source, self.floor_mono = hub_now, "hub", mono
