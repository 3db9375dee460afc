"""Seat holds of a checkout (shop, office, agency): seats kept for one buyer for a few minutes.

A hold (`hold_id`) is a set of (performance, seat) rows in `seat_holds`, taken in ONE
transaction or not at all: a ring's hold covers all of its performances, so a buyer never
holds half a ring. The holder is `token:<id>` (a shop or agency token) or `staff:<id>`;
only the holder may buy or release it. Held seats are taken for everybody else
(`held_by_others` plugs into `seat_loader.load_performances`), and the database refuses a
sold ticket on a held seat and a hold on a sold seat (the triggers of migration 0018).

A hold looks at its own seats only, never at the whole house: the seats' plan, variant and
pool in one statement (`contingents.booked_seats`), then all its rows in one batch, which the
database refuses if any seat is sold or held by someone else; only then is it asked which
seat that was (`refused`), to name it.

Expired holds are deleted before seats are looked at or claimed (`expire` for the
performances touched), and the hub's worker calls `expire_all` now and then so the table
stays small.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Sequence

from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.sql import json_values, keyed_rows, listed
from core.base.storage import retried, transaction
from core.sales import contingents
from core.sales.contingents import HUB
from core.subscriptions.seat_loader import Holds

DEFAULT_TTL = dt.timedelta(minutes=10)
MAX_TTL = dt.timedelta(hours=2)
MAX_SEATS = 500  # a ring of 20 dates for a party of 20 and some: a hold larger than this is refused
HOLDER = re.compile(r"^(token|staff):[0-9A-Za-z-]{1,64}$")

Booking = tuple[str, str]  # (performance id, seat id)


def check_holder(holder: str) -> str:
    if not HOLDER.match(holder or ""):
        raise ValidationError("a holder is 'token:<id>' or 'staff:<id>'", field="holder")
    return holder


def expire(db: sqlite3.Connection, now: dt.datetime, performance_ids: Sequence[str]) -> None:
    """Delete the expired holds of *performance_ids* (before their seats are looked at or
    claimed). Writes: call it inside the caller's transaction, or alone. Inside one the DELETE
    simply goes (on PostgreSQL with the transaction's next round trip, nothing waits for it);
    alone, a look first, so that a plain look at the seats writes nothing when no hold expired."""
    if not performance_ids:
        return
    marks, perfs = listed(dict.fromkeys(performance_ids))
    where, args = f"WHERE performance_id IN ({marks}) AND expires_at <= ?", (*perfs, iso(now))
    # alone, a look first (the earliest expiry first: PostgreSQL answers from the index
    # seat_holds_expiry, few entries before *now*, also in the generic plan a prepared statement
    # makes on a new hub, which it keeps; without ORDER BY that plan read the whole table, whose
    # dead rows pile up in a rush)
    if not db.in_transaction and not db.execute(
            f"SELECT 1 FROM seat_holds {where} ORDER BY expires_at LIMIT 1", args).fetchone():
        return  # a plain look writes nothing
    db.execute(f"DELETE FROM seat_holds {where}", args)  # alone: one statement, a write of its own


def expire_all(db: sqlite3.Connection, now: dt.datetime) -> int:
    """Delete every expired hold (the hub's worker calls this periodically). Returns the rows deleted."""
    with transaction(db):
        return db.execute("DELETE FROM seat_holds WHERE expires_at <= ?", (iso(now),)).rowcount


def held_by_others(holder: str | None) -> Holds:
    """A `holds` source for `seat_loader.load_performances`: the seats held by anybody but
    *holder* (whose own holds are free for them: they are about to buy them), read in the
    loader's one statement."""
    return Holds(holder)


def _check_bookings(db: sqlite3.Connection, bookings: Sequence[Booking], pool: str) -> dict[Booking, dict]:
    """Every seat exists in its performance's plan variant and is in *pool*; none twice. Returns
    what it read of each seat (`contingents.booked_seats`)."""
    if not bookings:
        raise ValidationError("name at least one seat to hold", field="seats")
    if len(bookings) > MAX_SEATS:
        raise ValidationError(f"a hold takes at most {MAX_SEATS} seats", field="seats")
    if len(set(bookings)) != len(bookings):
        raise ValidationError("a seat is named twice for one performance", field="seats")
    by_perf: dict[str, list[str]] = {}
    for perf, seat in bookings:
        by_perf.setdefault(perf, []).append(seat)
    offered = contingents.booked_seats(db, bookings)
    for perf, seats in by_perf.items():
        for seat in seats:
            found = offered.get((perf, seat))
            if found is None:
                contingents.performance(db, perf)  # NotFound for a performance that does not exist
                raise ValidationError(f"seat {seat} is not part of performance {perf}", field="seats")
            if found["pool"] != pool:
                raise Conflict(f"{describe(found)} is not in this pool ({pool}) at performance {perf}",
                               field="seats")
    return offered


def describe(seat: dict) -> str:
    return f"{seat['section']} row {seat['row_label']} seat {seat['label']}"


@retried  # a deadlock or serialization failure on PostgreSQL: run again
def hold(db: sqlite3.Connection, holder: str, bookings: Sequence[Booking], *, now: dt.datetime,
         ttl: dt.timedelta = DEFAULT_TTL, pool: str = HUB, expired: bool = False,
         booked: dict[Booking, dict] | None = None) -> dict:
    """Hold *bookings* ((performance, seat) pairs, e.g. all of a ring's) for *holder* until
    now + *ttl*: all of them in one transaction, or none (a Conflict naming the first seat
    sold or held by someone else). Seats the holder holds already are taken over into the new hold.
    *expired*: the caller has deleted the expired holds of these performances at *now* in the
    same transaction (`offers.performances`, which chose the seats): not looked for again.
    *booked*, if given, is filled with each seat's section, row, label, zone and pool as the
    check read them (`contingents.booked_seats`): a caller that shows them asks nothing more."""
    check_holder(holder)
    if not dt.timedelta(seconds=1) <= ttl <= MAX_TTL:
        raise ValidationError(f"a hold lasts between 1 second and {MAX_TTL}", field="ttl_seconds")
    hold_id, expires = uuid7(), iso(now + ttl)
    with transaction(db):
        offered = _check_bookings(db, bookings, pool)
        if booked is not None:
            booked.update(offered)
        if not expired:
            expire(db, now, list({p for p, _ in bookings}))
        try:
            with transaction(db):  # a savepoint: a refused insert undoes only these (PostgreSQL aborts otherwise)
                release_seats(db, holder, bookings)  # the holder's own holds of these seats: taken over
                db.executemany("INSERT INTO seat_holds (performance_id, seat_id, hold_id, holder, expires_at, "
                               "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                               [(perf, seat, hold_id, holder, expires, iso(now)) for perf, seat in bookings])
        except sqlite3.IntegrityError as exc:
            raise refused(db, bookings, holder, exc) from None
    return {"id": hold_id, "holder": holder, "expires_at": expires,
            "seats": [{"performance_id": p, "seat_id": s} for p, s in bookings]}


def seat_conflict(db: sqlite3.Connection, performance_id: str, seat_id: str, exc: sqlite3.IntegrityError, *,
                  why: str | None = None) -> Conflict:
    """The database said no (unique index or trigger): a Conflict naming the seat and why (from
    the refusal's text unless *why* says it)."""
    seat = contingents.some_seats(db, performance_id, [seat_id]).get(seat_id)
    name = describe(seat) if seat else f"seat {seat_id}"
    if why is None:
        why = "held by another buyer" if "held" in str(exc) or "seat_holds" in str(exc) else "already sold"
    return Conflict(f"{name} is {why} at performance {performance_id}", field="seats",
                    seats=[{"performance_id": performance_id, "seat_id": seat_id}])


def refused(db: sqlite3.Connection, bookings: Sequence[Booking], holder: str | None,
            exc: sqlite3.IntegrityError) -> Conflict:
    """The database refused a batch of *bookings* (a hold's rows, a sale's tickets; rolled
    back): the Conflict naming the first of them that is sold or held by anybody but *holder*
    (the batch's first seat if none is, e.g. a refusal of another kind)."""
    taken = {(r["performance_id"], r["seat_id"]): r["why"] for r in db.execute(
        "SELECT performance_id, seat_id, 'sold' AS why FROM tickets WHERE status = 'sold' AND performance_id IN "
        f"({json_values()}) AND seat_id IN ({json_values()}) UNION ALL SELECT performance_id, seat_id, 'held' "
        f"FROM seat_holds WHERE holder IS NOT ? AND performance_id IN ({json_values()}) AND seat_id IN "
        f"({json_values()})", (*_perfs_and_seats(bookings), holder, *_perfs_and_seats(bookings)))}
    perf, seat = next((b for b in bookings if b in taken), bookings[0])
    why = {"sold": "already sold", "held": "held by another buyer"}.get(taken.get((perf, seat)))
    return seat_conflict(db, perf, seat, exc, why=why)


def _perfs_and_seats(bookings: Sequence[Booking]) -> tuple[str, str]:
    return json.dumps(sorted({p for p, _ in bookings})), json.dumps(sorted({s for _, s in bookings}))


@retried
def release(db: sqlite3.Connection, hold_id: str, holder: str) -> int:
    """Give a hold's seats back at once. Only its holder may; an unknown (or expired and
    cleaned up) hold is a NotFound. Returns the seats released."""
    with transaction(db):
        rows = db.execute("SELECT holder FROM seat_holds WHERE hold_id = ?", (hold_id,)).fetchall()
        if not rows or any(r["holder"] != holder for r in rows):
            raise NotFound(f"no hold {hold_id} of yours")
        return db.execute("DELETE FROM seat_holds WHERE hold_id = ?", (hold_id,)).rowcount


def release_seats(db: sqlite3.Connection, holder: str, bookings: Sequence[Booking]) -> None:
    """These seats' hold rows of *holder* go: bought (in the sale's transaction), or taken
    over into the holder's new hold."""
    if not bookings:
        return
    keys, params = keyed_rows(bookings, "performance_id", "seat_id")  # one statement, not one per seat
    db.execute(f"DELETE FROM seat_holds WHERE holder = ? AND (performance_id, seat_id) IN "
               f"(SELECT performance_id, seat_id FROM {keys} AS k)", (holder, *params))


def of_holder(db: sqlite3.Connection, holder: str, now: dt.datetime) -> list[dict]:
    """The holder's holds that have not expired, each with its seats."""
    out: dict[str, dict] = {}
    for row in db.execute("SELECT * FROM seat_holds WHERE holder = ? AND expires_at > ? "
                          "ORDER BY created_at, hold_id", (holder, iso(now))):
        entry = out.setdefault(row["hold_id"], {"id": row["hold_id"], "holder": holder,
                                                "expires_at": row["expires_at"], "seats": []})
        entry["seats"].append({"performance_id": row["performance_id"], "seat_id": row["seat_id"]})
    return list(out.values())
