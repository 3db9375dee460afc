"""Best available: the seats to offer when the customer asks for "N seats in zone Z".

Rules, in this order:
1. N seats side by side in one row (neighbours in x order, no gap wider than half a seat:
   `seats.NEIGHBOUR_GAP`), all free, all in one price zone (the asked one, if any);
2. exactly the asked number of wheelchair places among them (none when none is asked: a
   wheelchair place is kept for those who need it), and every companion seat among them
   right beside a wheelchair place among them (a companion seat is never sold alone);
3. fewest single orphan seats left: a free seat beside the block whose other side is not a
   free neighbour would be left alone; a block that leaves none wins over any that does, and a
   single seat asked for goes first to a seat that is alone already (it closes a gap);
4. the best score: the distance, in seat widths, of the block's centre from the middle of
   the stage edge: |centre x - middle x of the variant| + (centre y - smallest y of the
   variant). Central and front seats score low. Ties go to the block whose first seat has the
   lowest index, so the answer never depends on the order of the search.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.base.errors import ValidationError
from core.subscriptions.seats import Layout, Run

Choice = tuple[int, ...]


def check_request(count: int, wheelchair: int) -> None:
    if count < 1:
        raise ValidationError("ask for at least one seat", field="count")
    if not 0 <= wheelchair <= count:
        raise ValidationError(f"{wheelchair} wheelchair places cannot be part of {count} seats", field="wheelchair")


def best_available(layout: Layout, free: int, count: int, *, zone_id: str | None = None,
                   wheelchair: int = 0) -> Choice | None:
    """The best block of *count* seats of *free* (a bitset) in *layout*, as seat indexes in row
    order; None when no row has such a block."""
    check_request(count, wheelchair)
    bits = bin(free)[:1:-1]
    best: tuple[int, float, int] | None = None
    found: Choice | None = None
    for run in layout.runs:
        if len(run.seats) < count or (zone_id is not None and zone_id not in run.zones):
            continue
        flags = [i < len(bits) and bits[i] == "1" for i in run.seats]
        for start in _windows(run, flags, count, zone_id, wheelchair):
            key = (_orphans(flags, start, count), _score(layout, run, start, count), run.seats[start])
            if best is None or key < best:
                best, found = key, run.seats[start:start + count]
    return found


def _windows(run: Run, flags: list[bool], count: int, zone_id: str | None, wheelchair: int):
    """Start positions of the blocks of *run* that keep rules 1 and 2."""
    free_stretch = 0
    for end in range(len(flags)):
        free_stretch = free_stretch + 1 if flags[end] else 0
        if free_stretch < count:
            continue
        start = end - count + 1
        if run.zone_changes_before[end + 1] - run.zone_changes_before[start + 1] != 0:
            continue  # the block crosses a zone border
        if zone_id is not None and run.zones[start] != zone_id:
            continue
        if run.wheel_before[end + 1] - run.wheel_before[start] != wheelchair:
            continue
        if run.companion_before[end + 1] - run.companion_before[start] and not _companions_ok(run, start, end):
            continue
        yield start


def _companions_ok(run: Run, start: int, end: int) -> bool:
    return all(not run.companion[k] or (k > start and run.wheel[k - 1]) or (k < end and run.wheel[k + 1])
               for k in range(start, end + 1))


def _orphans(flags: Sequence[bool], start: int, count: int) -> int:
    """Lone seats the block makes: free seats beside it left without a free neighbour, less one
    if the block is itself a lone seat (so one seat asked for fills a gap first)."""
    left, right = start - 1, start + count
    if count == 1 and not (left >= 0 and flags[left]) and not (right < len(flags) and flags[right]):
        return -1
    alone = 0
    if left >= 0 and flags[left] and not (left > 0 and flags[left - 1]):
        alone += 1
    if right < len(flags) and flags[right] and not (right + 1 < len(flags) and flags[right + 1]):
        alone += 1
    return alone


def _score(layout: Layout, run: Run, start: int, count: int) -> float:
    end = start + count - 1
    centre_x, centre_y = (run.xs[start] + run.xs[end]) / 2, (run.ys[start] + run.ys[end]) / 2
    return (abs(centre_x - layout.mid_x) + (centre_y - layout.front_y)) / layout.seat_size


def nearest_free(layout: Layout, free: int, x: float, y: float, zone_id: str | None = None, *,
                 wheelchair: bool = False) -> int | None:
    """The free seat nearest to (x, y), one of zone *zone_id* if there is one: the replacement a
    ring subscriber is offered where a plan variant lacks their seat. A wheelchair place for a
    wheelchair place, else an ordinary seat (never a companion seat, which goes only with one)."""
    bits = bin(free)[:1:-1]
    best: tuple[bool, float, int] | None = None
    for run in layout.runs:
        for pos, i in enumerate(run.seats):
            if i >= len(bits) or bits[i] != "1" or run.wheel[pos] != wheelchair or run.companion[pos]:
                continue
            key = (zone_id is not None and run.zones[pos] != zone_id,
                   (run.xs[pos] - x) ** 2 + (run.ys[pos] - y) ** 2, i)
            if best is None or key < best:
                best = key
    return None if best is None else best[2]
