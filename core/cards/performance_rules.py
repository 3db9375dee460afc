"""Which performance a season pass or single ticket is used for at this gate, now (S9).

A single ticket (card kind 3) carries its performance as its product; a season pass (kind 2)
carries its subscription product, but admits the dates the hub recorded for that one card
(`pass_performances`: a choice subscriber's N chosen dates, without a date given up); a pass
without such rows (issued before them, or by a desk that does not write them) admits its
product's listed performances (`subscription_performances`). Both are let in once per
performance, only at that performance's venue and only inside the gate's entry window around
the start (`gate.toml`: `entry_before_minutes`, `entry_after_minutes`). The card's signed
validity stays the outer bound: it is checked first (NOT_YET_VALID / EXPIRED), so a gate with a
wider window cannot stretch a ticket.

Why a separate module: the entry window is a rule about performances, not about card bytes;
`core.cards.access.Access` asks `place()` and then looks for an earlier entry inside the window
it returns. Everything comes from tables the gate receives by sync (`performances`,
`subscription_performances`, `pass_performances`), so it works offline.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass

from core.base.clock import LOCAL_TZ, parse_iso

PERFORMANCE_KINDS = frozenset({"subscription", "single"})


@dataclass(frozen=True, slots=True)
class Showing:
    """One performance a card may be used for: where and when it starts."""

    performance_id: str
    venue_id: str
    starts_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Window:
    """The entry window of one showing at this gate."""

    showing: Showing
    opens: dt.datetime
    closes: dt.datetime


@dataclass(frozen=True, slots=True)
class Placement:
    """`place()`'s answer: a window to admit in, or a refusal reason with its detail."""

    window: Window | None
    reason: str = ""
    detail: str = ""


def load_showings(db: sqlite3.Connection) -> dict[str, list[Showing]]:
    """Product id -> its showings by start: a subscription product's listed performances and each
    performance as its own product (a single ticket's). Cancelled (inactive) performances admit
    nobody, so they are left out."""
    out: dict[str, list[Showing]] = {}
    performances = {}
    for row in db.execute("SELECT id, venue_id, starts_at FROM performances WHERE active = 1"):
        showing = Showing(row["id"], row["venue_id"], parse_iso(row["starts_at"]))
        performances[row["id"]] = showing
        out[row["id"]] = [showing]
    for row in db.execute("SELECT product_id, performance_id FROM subscription_performances"):
        if (showing := performances.get(row["performance_id"])) is not None:
            out.setdefault(row["product_id"], []).append(showing)
    for showings in out.values():
        showings.sort(key=lambda s: s.starts_at)
    return out


def pass_showings(db: sqlite3.Connection, card_id: str,
                  showings: dict[str, list[Showing]]) -> list[Showing] | None:
    """The showings the pass *card_id* admits by its own recorded dates, or None when the hub
    recorded none for it (then its product's listed performances apply). Read per decision, not
    cached: one indexed lookup, and a re-written list is seen at the next scan after the pull.
    *showings* is `load_showings()`: a performance's own entry gives its (active) showing."""
    rows = db.execute("SELECT performance_id FROM pass_performances WHERE card_id = ?", (card_id,)).fetchall()
    if not rows:
        return None
    found = [showings[r["performance_id"]][0] for r in rows if r["performance_id"] in showings]
    return sorted(found, key=lambda s: s.starts_at)


def window_of(showing: Showing, before_minutes: int, after_minutes: int) -> Window:
    return Window(showing, showing.starts_at - dt.timedelta(minutes=before_minutes),
                  showing.starts_at + dt.timedelta(minutes=after_minutes))


def place(showings: list[Showing], venue_id: str, now: dt.datetime, before_minutes: int,
          after_minutes: int) -> Placement:
    """The showing at *venue_id* whose window holds *now* (the nearest start if two overlap).
    None: WRONG_PERFORMANCE when no showing is at this venue or none today, else TOO_EARLY or
    TOO_LATE by the showing today at this venue whose start is nearest to now."""
    here = [window_of(s, before_minutes, after_minutes) for s in showings if s.venue_id == venue_id]
    if not here:
        return Placement(None, "WRONG_PERFORMANCE", "no performance of this card at this venue")
    open_now = [w for w in here if w.opens <= now <= w.closes]
    if open_now:
        return Placement(min(open_now, key=lambda w: abs(w.showing.starts_at - now)))
    today = now.astimezone(LOCAL_TZ).date()
    same_day = [w for w in here if w.showing.starts_at.astimezone(LOCAL_TZ).date() == today]
    if not same_day:
        return Placement(None, "WRONG_PERFORMANCE", "no performance of this card at this venue today")
    nearest = min(same_day, key=lambda w: abs(w.showing.starts_at - now))
    start = nearest.showing.starts_at.astimezone(LOCAL_TZ).strftime("%H:%M")
    if now < nearest.opens:
        return Placement(None, "TOO_EARLY", f"performance at {start}: entry from "
                                            f"{nearest.opens.astimezone(LOCAL_TZ):%H:%M}")
    return Placement(None, "TOO_LATE", f"performance at {start}: entry until "
                                       f"{nearest.closes.astimezone(LOCAL_TZ):%H:%M}")
