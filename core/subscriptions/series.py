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
from core.subscriptions.seats import PerformanceSeats, Plan, free_in_all, is_set


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


def pick_seat(group: RingGroup, seat_id: str, variant_id: str | None = None) -> GroupSeats:
    """The subscriber picks *seat_id* on the map of *variant_id* (the group's lead by default): it
    must be free in every performance whose variant has it; the other variants become steps."""
    plan, variant_id = group.plan, variant_id or group.lead
    seat = plan.seat(seat_id)
    index = plan.index[seat_id]
    choosable = group.choosable(variant_id)
    if not is_set(plan.offered(variant_id), index):
        raise ValidationError(f"{seat.describe()} is not part of this plan variant", field="seat_id")
    if not is_set(choosable, index):
        raise Conflict(f"{seat.describe()} is not free in every performance of this ring")
    return GroupSeats(group, seat_id, {
        v: seat_id if is_set(plan.offered(v), index) else None for v in group.variants})


def best_ring_seats(group: RingGroup, *, zone_id: str | None = None,
                    wheelchair: bool = False) -> GroupSeats | None:
    """Best available for one subscriber in a group, with every step filled by its suggestion;
    None when no seat (or no replacement) is free."""
    choice = best_available(group.plan.layout(group.lead), group.choosable(), 1, zone_id=zone_id,
                            wheelchair=int(wheelchair))
    if choice is None:
        return None
    seats = pick_seat(group, group.plan.seats[choice[0]].id)
    for step in seats.steps():
        if step.suggestion is None:
            return None
        seats = seats.replace_in(step.variant_id, step.suggestion)
    return seats


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
