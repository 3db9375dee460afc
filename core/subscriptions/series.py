"""The seats of a subscription across its performances: ring (S2), choice (S4) and combi (S6).

- **Ring**: the performances are grouped by seating plan (a ring may span venues and plans);
  the subscriber gets one seat per group, the same in every performance of the group. A
  group whose performances use different variants of the plan has a *lead* variant (that of
  its first performance) where the seat is picked; in every other variant of the group that
  lacks the seat, the sale *steps* through that variant and a replacement seat is chosen
  there, free in all of that variant's performances of the group. `GroupSeats` is that
  state: group -> variant -> chosen seat, with the open steps.
- **Choice**: first N of the M dates, then the chosen dates are seated like a ring.
- **Combi**: a seat per performance; best available keeps the same seat for as long a run
  of performances (in their order) as it can, and changes seat only where it must.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from core.base.errors import Conflict, ValidationError
from core.subscriptions.best import best_available, nearest_free
from core.subscriptions.seats import PerformanceSeats, Plan, check_selection, free_in_all, is_set


@dataclass(frozen=True)
class RingGroup:
    """A ring's performances on one seating plan, in ring order."""

    plan: Plan
    performances: tuple[PerformanceSeats, ...]

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants used, in order of first use; the first is the lead."""
        return tuple(dict.fromkeys(p.variant_id for p in self.performances))

    @property
    def lead(self) -> str:
        return self.performances[0].variant_id

    def of_variant(self, variant_id: str) -> tuple[PerformanceSeats, ...]:
        return tuple(p for p in self.performances if p.variant_id == variant_id)

    def free_in_variant(self, variant_id: str) -> int:
        """Seats free in every performance of the group that uses *variant_id*."""
        return free_in_all(self.of_variant(variant_id))

    def choosable(self, variant_id: str | None = None) -> int:
        """Seats that may be picked in *variant_id* (the lead by default): offered there and free
        in every performance of the group whose variant has them. Performances whose variant
        lacks the seat become steps."""
        variant_id = variant_id or self.lead
        if variant_id not in self.variants:
            raise ValidationError(f"variant {variant_id} is not used by this ring's performances on this plan",
                                  field="variant_id")
        mask = self.plan.offered(variant_id)
        everything = self.plan.everything
        for perf in self.performances:
            mask &= perf.free | (everything & ~perf.offered)
        return mask


def ring_groups(performances: Sequence[PerformanceSeats]) -> list[RingGroup]:
    """Group performances by seating plan, groups in order of first appearance."""
    if len({p.performance_id for p in performances}) != len(performances):
        raise ValidationError("a performance is listed twice", field="performance_ids")
    groups: dict[str, list[PerformanceSeats]] = {}
    for perf in performances:
        groups.setdefault(perf.plan.id, []).append(perf)
    return [RingGroup(perfs[0].plan, tuple(perfs)) for perfs in groups.values()]


@dataclass(frozen=True)
class Step:
    """A variant of a group that lacks the chosen seat: the sale picks a replacement there."""

    plan_id: str
    variant_id: str
    performance_ids: tuple[str, ...]
    missing_seat_id: str
    candidates: int  # bitset: seats free in all of this variant's performances of the group
    suggestion: str | None  # nearest free seat to the missing one (same zone first)


@dataclass(frozen=True)
class GroupSeats:
    """The seats of one subscriber in one ring group: variant -> seat id (None: step still open)."""

    group: RingGroup
    seat_id: str  # the seat picked (in the lead variant, or the one the map showed)
    by_variant: dict[str, str | None] = field(default_factory=dict)

    def steps(self) -> list[Step]:
        return [self._step(v) for v, seat in self.by_variant.items() if seat is None]

    def _step(self, variant_id: str) -> Step:
        plan, missing = self.group.plan, self.group.plan.seat(self.seat_id)
        candidates = self.group.free_in_variant(variant_id)
        near = nearest_free(plan.layout(variant_id), candidates, missing.x, missing.y, missing.zone_id,
                            wheelchair=missing.wheelchair)
        return Step(plan.id, variant_id, tuple(p.performance_id for p in self.group.of_variant(variant_id)),
                    self.seat_id, candidates, None if near is None else plan.seats[near].id)

    def replace_in(self, variant_id: str, seat_id: str) -> GroupSeats:
        """Choose the replacement seat in *variant_id*; it must be free in all its performances."""
        if variant_id not in self.by_variant:
            raise ValidationError(f"variant {variant_id} is not used in this group", field="variant_id")
        if self.by_variant[variant_id] == self.seat_id:
            raise ValidationError("the chosen seat exists in this variant: nothing to replace", field="variant_id")
        seat = self.group.plan.seat(seat_id)
        if not is_set(self.group.free_in_variant(variant_id), self.group.plan.index[seat_id]):
            raise Conflict(f"{seat.describe()} is not free in every performance of this variant")
        return replace(self, by_variant={**self.by_variant, variant_id: seat_id})

    def bookings(self) -> list[tuple[str, str]]:
        """(performance id, seat id) for every performance of the group; refused while a step is open."""
        open_steps = [v for v, seat in self.by_variant.items() if seat is None]
        if open_steps:
            raise ValidationError(f"choose a replacement seat in {len(open_steps)} plan variant(s) first",
                                  field="seat_ids", variants=open_steps)
        return [(p.performance_id, self.by_variant[p.variant_id]) for p in self.group.performances]


def pick_seats(group: RingGroup, seat_ids: Sequence[str], variant_id: str | None = None, *,
               wheelchair: int | None = None) -> list[GroupSeats]:
    """The seats of the subscribers of one order, picked together on the map of *variant_id*
    (the group's lead by default): each must be free in every performance whose variant has it,
    and together they keep the rules of a hand-made pick (`check_selection`: a companion seat
    only beside a wheelchair place picked with it; *wheelchair* places if given). The variants
    that lack a seat become that subscriber's steps."""
    plan, variant_id = group.plan, variant_id or group.lead
    choosable = group.choosable(variant_id)
    for seat_id in seat_ids:
        seat = plan.seat(seat_id)
        index = plan.index[seat_id]
        if not is_set(plan.offered(variant_id), index):
            raise ValidationError(f"{seat.describe()} is not part of this plan variant", field="seat_id")
        if not is_set(choosable, index):
            raise Conflict(f"{seat.describe()} is not free in every performance of this ring")
    places = sum(plan.seat(s).wheelchair for s in seat_ids) if wheelchair is None else wheelchair
    check_selection(plan, variant_id, choosable, seat_ids, wheelchair=places)
    return [GroupSeats(group, seat_id, {v: seat_id if is_set(plan.offered(v), plan.index[seat_id]) else None
                                        for v in group.variants}) for seat_id in seat_ids]


def pick_seat(group: RingGroup, seat_id: str, variant_id: str | None = None) -> GroupSeats:
    """One subscriber's seat: `pick_seats` for one (so never a companion seat on its own)."""
    return pick_seats(group, [seat_id], variant_id)[0]


def ring_bookings(parties: Sequence[GroupSeats]) -> list[tuple[str, str]]:
    """(performance id, seat id) for all subscribers of an order; refused while a step is open
    or if two of them would sit on one seat in one performance (two replacements alike)."""
    bookings = [b for party in parties for b in party.bookings()]
    seen: set[tuple[str, str]] = set()
    for booking in bookings:
        if booking in seen:
            seat = parties[0].group.plan.seat(booking[1])
            raise Conflict(f"{seat.describe()} is chosen twice for one performance", field="seat_ids")
        seen.add(booking)
    return bookings


def best_ring_seats(group: RingGroup, count: int = 1, *, zone_id: str | None = None,
                    wheelchair: int = 0) -> list[GroupSeats] | None:
    """Best available for *count* subscribers side by side in a group, every step filled: where a
    variant lacks some of their seats, those subscribers get the best block of their own there
    (free in all that variant's performances, not taken by the party). None when nothing fits."""
    lead = group.plan.layout(group.lead)
    block = best_available(lead, group.choosable(), count, zone_id=zone_id, wheelchair=wheelchair)
    if block is None:
        return None
    parties = pick_seats(group, [group.plan.seats[i].id for i in block], wheelchair=wheelchair)
    for variant in group.variants:
        missing = [k for k, party in enumerate(parties) if party.by_variant[variant] is None]
        if not missing:
            continue
        kept = group.plan.mask(party.by_variant[variant] for party in parties if party.by_variant[variant])
        places = sum(group.plan.seat(parties[k].seat_id).wheelchair for k in missing)
        spare = best_available(group.plan.layout(variant), group.free_in_variant(variant) & ~kept, len(missing),
                               zone_id=zone_id, wheelchair=places)
        if spare is None:
            return None
        for k, index in zip(missing, spare, strict=True):
            parties[k] = parties[k].replace_in(variant, group.plan.seats[index].id)
    return parties


# -- choice (N of M) -------------------------------------------------------------------------------

def choice_groups(pool: Sequence[PerformanceSeats], chosen_ids: Sequence[str], pick_count: int) -> list[RingGroup]:
    """First N dates of the M: exactly *pick_count* distinct performances of *pool*; then their seats are
    found like a ring's (one seat free in all chosen performances of a plan)."""
    if len(set(chosen_ids)) != len(chosen_ids):
        raise ValidationError("a date is chosen twice", field="performance_ids")
    if len(chosen_ids) != pick_count:
        raise ValidationError(f"choose exactly {pick_count} dates, not {len(chosen_ids)}", field="performance_ids")
    by_id = {p.performance_id: p for p in pool}
    strangers = [c for c in chosen_ids if c not in by_id]
    if strangers:
        raise ValidationError(f"performance {strangers[0]} is not one of this subscription's dates",
                              field="performance_ids")
    chosen = set(chosen_ids)
    return ring_groups([p for p in pool if p.performance_id in chosen])


# -- combi -----------------------------------------------------------------------------------------

def combi_best(performances: Sequence[PerformanceSeats], count: int, *, zone_id: str | None = None,
               wheelchair: int = 0) -> dict[str, list[str] | None]:
    """Best available per performance (None where nothing fits), keeping the same seats over the
    longest run of consecutive performances of one plan where they are free in all of them."""
    out: dict[str, list[str] | None] = {}
    for group in ring_groups(performances):
        perfs, i = group.performances, 0
        while i < len(perfs):
            layout = group.plan.layout(perfs[i].variant_id)
            found = best_available(layout, perfs[i].free, count, zone_id=zone_id, wheelchair=wheelchair)
            j, mask = i, perfs[i].free
            while found is not None and j + 1 < len(perfs):
                longer = best_available(layout, mask & perfs[j + 1].free, count, zone_id=zone_id,
                                        wheelchair=wheelchair)
                if longer is None:
                    break
                j, mask, found = j + 1, mask & perfs[j + 1].free, longer
            for perf in perfs[i:j + 1]:
                out[perf.performance_id] = None if found is None else [group.plan.seats[k].id for k in found]
            i = j + 1
    return out
