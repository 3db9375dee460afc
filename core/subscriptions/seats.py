"""Seat availability as bitsets (S8): which seats of a performance are free, and which are free
in all performances of a ring, a choice or a combi group.

A plan's seats get a stable index: the plan's seat ids sorted, position in that list. A set
of seats is a Python int with bit *i* set for the seat at index *i*, so "free in all of these
performances" is one AND per performance, whatever the size of the house. Seats are the same
seats across the plan's variants (a seat keeps its id), so one index serves every variant;
a seat that a variant does not offer (removed there, added only by another variant, or
switched off) is never free in a performance using that variant.

Everything here is pure: plain data in, plain data out. `seat_loader` reads it from SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from core.base.errors import ValidationError

NEIGHBOUR_GAP = 1.5  # two seats of a row are neighbours if their centres are at most this many seat widths apart


# -- bitsets -------------------------------------------------------------------------------------

def mask_of(indexes: Iterable[int], size: int) -> int:
    """The bitset of *indexes* (each < *size*): written as a string of binary digits and read
    once, which is several times faster than setting bits of a big int one by one."""
    if size == 0:
        return 0
    digits = bytearray(b"0") * size
    for i in indexes:
        digits[i] = 49  # "1"
    digits.reverse()  # most significant digit first
    return int(digits, 2)


def indexes_of(mask: int) -> list[int]:
    """The set bits of *mask*, ascending."""
    bits = bin(mask)[:1:-1]  # least significant bit first, without '0b'
    out, at = [], bits.find("1")
    while at != -1:
        out.append(at)
        at = bits.find("1", at + 1)
    return out


def is_set(mask: int, index: int) -> bool:
    return (mask >> index) & 1 == 1


# -- the plan --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Seat:
    """One seat of a plan as stored: `variant_id` None for a base seat, else the only variant
    that has it; `active` False for a seat switched off (never sold in any variant)."""

    id: str
    section: str
    row: str
    label: str
    x: float
    y: float
    zone_id: str
    wheelchair: bool = False
    companion: bool = False
    variant_id: str | None = None
    active: bool = True

    def describe(self) -> str:
        return f"{self.section} row {self.row} seat {self.label}"


@dataclass(frozen=True, slots=True)
class Run:
    """Seats of one row that sit next to each other (by x, no gap wider than half a seat), in x order,
    with what best available asks of every window (prefix counts, so a window costs O(1))."""

    seats: tuple[int, ...]
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    zones: tuple[str, ...]
    wheel: tuple[bool, ...]
    companion: tuple[bool, ...]
    wheel_before: tuple[int, ...]  # wheelchair places among the first k seats, k = 0..len
    companion_before: tuple[int, ...]
    zone_changes_before: tuple[int, ...]  # positions j < k (j >= 1) whose zone differs from j - 1


def _prefix(flags: Sequence[bool]) -> tuple[int, ...]:
    out = [0]
    for flag in flags:
        out.append(out[-1] + int(flag))
    return tuple(out)


def make_run(plan: Plan, indexes: list[int]) -> Run:
    seats = [plan.seats[i] for i in indexes]
    zones = tuple(s.zone_id for s in seats)
    return Run(tuple(indexes), tuple(s.x for s in seats), tuple(s.y for s in seats), zones,
               tuple(s.wheelchair for s in seats), tuple(s.companion for s in seats),
               _prefix([s.wheelchair for s in seats]), _prefix([s.companion for s in seats]),
               _prefix([k > 0 and zones[k] != zones[k - 1] for k in range(len(seats))]))


@dataclass(frozen=True, slots=True)
class Layout:
    """How one variant's seats sit: rows cut into runs of neighbours, and the reference point of
    the best-available score (the stage is at the top of the drawing: the smallest y)."""

    variant_id: str
    seat_size: float
    runs: tuple[Run, ...]
    mid_x: float
    front_y: float
    place: dict[int, tuple[int, int]]  # seat index -> (run number, position in run)

    def neighbours(self, index: int) -> list[int]:
        """The seats right beside *index* in its row (none across an aisle)."""
        run_no, pos = self.place[index]
        run = self.runs[run_no].seats
        return [run[p] for p in (pos - 1, pos + 1) if 0 <= p < len(run)]


class Plan:
    """A seating plan with the stable index of its seats and, per variant, the seats it offers
    (a bitset) and their layout; both are computed once per variant and kept."""

    def __init__(self, plan_id: str, seat_size: float, seats: Iterable[Seat],
                 removed: dict[str, Iterable[str]] | None = None, variant_ids: Iterable[str] = ()) -> None:
        self.id = plan_id
        self.seat_size = seat_size
        self.seats: tuple[Seat, ...] = tuple(sorted(seats, key=lambda s: s.id))
        self.index: dict[str, int] = {s.id: i for i, s in enumerate(self.seats)}
        removed = removed or {}
        self.variant_ids = frozenset(variant_ids) | set(removed) | {s.variant_id for s in self.seats if s.variant_id}
        self.removed: dict[str, frozenset[int]] = {
            v: frozenset(self.index[s] for s in ids if s in self.index) for v, ids in removed.items()}
        self._offered: dict[str, int] = {}
        self._layouts: dict[str, Layout] = {}

    @property
    def size(self) -> int:
        return len(self.seats)

    @property
    def everything(self) -> int:
        return (1 << len(self.seats)) - 1

    def mask(self, seat_ids: Iterable[str]) -> int:
        """The bitset of those *seat_ids* that belong to this plan (others are ignored: they cannot be free here)."""
        index = self.index
        seat_ids = seat_ids if isinstance(seat_ids, (list, tuple, set, frozenset)) else list(seat_ids)
        if len(seat_ids) > 1:
            try:
                return mask_of(itemgetter(*seat_ids)(index), len(self.seats))  # all looked up in C
            except KeyError:
                pass
        return mask_of((index[s] for s in seat_ids if s in index), len(self.seats))

    def ids(self, mask: int) -> list[str]:
        return [self.seats[i].id for i in indexes_of(mask)]

    def seat(self, seat_id: str) -> Seat:
        try:
            return self.seats[self.index[seat_id]]
        except KeyError:
            raise ValidationError(f"seat {seat_id} is not part of this seating plan", field="seat_id") from None

    def _check_variant(self, variant_id: str) -> None:
        if variant_id not in self.variant_ids:
            raise ValidationError(f"variant {variant_id} is not a variant of this seating plan", field="variant_id")

    def offered(self, variant_id: str) -> int:
        """Seats a performance using *variant_id* offers: active, base or this variant's own, not removed here."""
        if variant_id not in self._offered:
            self._check_variant(variant_id)
            gone = self.removed.get(variant_id, frozenset())
            self._offered[variant_id] = mask_of(
                (i for i, s in enumerate(self.seats)
                 if s.active and s.variant_id in (None, variant_id) and i not in gone), len(self.seats))
        return self._offered[variant_id]

    def layout(self, variant_id: str) -> Layout:
        if variant_id not in self._layouts:
            self._layouts[variant_id] = self._make_layout(variant_id)
        return self._layouts[variant_id]

    def _make_layout(self, variant_id: str) -> Layout:
        rows: dict[tuple[str, str], list[int]] = {}
        for i in indexes_of(self.offered(variant_id)):
            seat = self.seats[i]
            rows.setdefault((seat.section, seat.row), []).append(i)
        runs: list[Run] = []
        for members in rows.values():
            members.sort(key=lambda i: (self.seats[i].x, self.seats[i].y))
            current = [members[0]]
            for i in members[1:]:
                if self.seats[i].x - self.seats[current[-1]].x > NEIGHBOUR_GAP * self.seat_size:
                    runs.append(make_run(self, current))
                    current = []
                current.append(i)
            runs.append(make_run(self, current))
        offered = [self.seats[i] for i in indexes_of(self.offered(variant_id))]
        xs = [s.x for s in offered] or [0.0]
        place = {i: (r, p) for r, run in enumerate(runs) for p, i in enumerate(run.seats)}
        return Layout(variant_id, self.seat_size, tuple(runs), (min(xs) + max(xs)) / 2,
                      min((s.y for s in offered), default=0.0), place)


# -- availability ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PerformanceSeats:
    """One performance's seats as bitsets over its plan's index: what its variant offers, what is
    taken (sold or held), what lies in another pool, and so what is free to sell here."""

    performance_id: str
    plan: Plan
    variant_id: str
    offered: int
    taken: int
    other_pool: int
    free: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "free", self.offered & ~self.taken & ~self.other_pool)


def availability(plan: Plan, performance_id: str, variant_id: str, taken_ids: Iterable[str],
                 pool_ids: Iterable[str] | None = None) -> PerformanceSeats:
    """A performance's seats: *taken_ids* are sold or held; *pool_ids*, if given, are the only
    seats the asking pool may sell (a desk's contingent, the hub's online pool)."""
    offered = plan.offered(variant_id)
    other = 0 if pool_ids is None else offered & ~plan.mask(pool_ids)
    return PerformanceSeats(performance_id, plan, variant_id, offered, plan.mask(taken_ids) & offered, other)


def free_in_all(performances: Sequence[PerformanceSeats]) -> int:
    """Seats free in every one of *performances* (one plan): an AND of their free sets."""
    if not performances:
        raise ValidationError("free in all of no performances: name at least one", field="performance_ids")
    plan = performances[0].plan
    result = performances[0].free
    for perf in performances[1:]:
        if perf.plan.id != plan.id:
            raise ValidationError("these performances use different seating plans: group them by plan first",
                                  field="performance_ids")
        result &= perf.free
    return result


def check_selection(plan: Plan, variant_id: str, free: int, seat_ids: Sequence[str], *,
                    wheelchair: int = 0) -> list[int]:
    """Seats picked by hand: free, none twice, exactly *wheelchair* wheelchair places, and every
    companion seat beside a wheelchair place picked with it (a companion seat is never sold alone).
    Returns their indexes; the first broken rule is a ValidationError naming the seat."""
    if len(set(seat_ids)) != len(seat_ids):
        raise ValidationError("a seat is picked twice", field="seat_ids")
    layout = plan.layout(variant_id)
    chosen = [plan.index[plan.seat(s).id] for s in seat_ids]
    for i in chosen:
        if not is_set(free, i):
            raise ValidationError(f"{plan.seats[i].describe()} is not free here", field="seat_ids")
    places = sum(1 for i in chosen if plan.seats[i].wheelchair)
    if places != wheelchair:
        raise ValidationError(f"{places} wheelchair place(s) picked, {wheelchair} asked for", field="seat_ids")
    picked = set(chosen)
    for i in chosen:
        if plan.seats[i].companion and not any(n in picked and plan.seats[n].wheelchair
                                               for n in layout.neighbours(i)):
            raise ValidationError(f"{plan.seats[i].describe()} is a companion seat: it is sold only with "
                                  "the wheelchair place beside it", field="seat_ids")
    return chosen
