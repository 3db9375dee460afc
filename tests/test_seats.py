"""The seat logic of subscriptions (S8, core/subscriptions): availability bitsets, free in all,
ring groups and variant steps, choice, combi and best available; hand-made plans for each rule,
Hypothesis against brute-force oracles on random plans, and the sample theatre from SQLite."""

from __future__ import annotations

import itertools
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.base.clock import utcnow
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.node import this_node
from core.catalog.seating.inputs import SeatPatchIn
from core.catalog.seating.plans import update_seat
from core.sales import contingents
from core.sales.tickets import SaleIn, sell
from core.subscriptions import holds, seat_loader
from core.subscriptions.best import best_available
from core.subscriptions.seats import (
    NEIGHBOUR_GAP,
    Plan,
    Seat,
    availability,
    check_selection,
    free_in_all,
    indexes_of,
    mask_of,
)
from core.subscriptions.series import (
    best_ring_seats,
    choice_groups,
    combi_best,
    pick_seat,
    pick_seats,
    ring_bookings,
    ring_groups,
)

BASE = "base"


def row(label: str, count: int, *, y: float, section: str = "Parkett", x0: float = 0.0, zone: str = "z1",
        wheel: tuple[int, ...] = (), companion: tuple[int, ...] = (), variant: str | None = None,
        aisle_after: int | None = None) -> list[Seat]:
    """Seats 1..count of a row, one seat width apart (two more after *aisle_after*)."""
    seats, x = [], x0
    for n in range(1, count + 1):
        seats.append(Seat(f"{section}/{label}/{n:02d}", section, label, str(n), x, y, zone,
                          n in wheel, n in companion, variant))
        x += 3.0 if n == aisle_after else 1.0
    return seats


def sid(label: str, n: int, section: str = "Parkett") -> str:
    return f"{section}/{label}/{n:02d}"


def names(plan: Plan, indexes) -> list[str]:
    return [f"{plan.seats[i].row}{plan.seats[i].label}" for i in indexes]


# -- availability ---------------------------------------------------------------------------------

def test_bitsets_round_trip():
    assert indexes_of(mask_of([0, 7, 8, 1999], 2000)) == [0, 7, 8, 1999]
    assert indexes_of(0) == []


def test_a_seat_the_variant_lacks_is_never_free_there():
    seats = row("1", 4, y=1) + row("A", 2, y=0, variant="pit") + [
        Seat("off", "Parkett", "2", "1", 0, 2, "z1", active=False)]
    plan = Plan("p", 1.0, seats, {"stage": [sid("1", 1)]}, [BASE, "pit", "stage"])
    nothing_sold = {v: set(plan.ids(availability(plan, "x", v, ()).free)) for v in (BASE, "pit", "stage")}
    row1 = {sid("1", n) for n in range(1, 5)}
    assert nothing_sold[BASE] == row1  # not the pit seats, not the inactive seat
    assert nothing_sold["pit"] == row1 | {sid("A", 1), sid("A", 2)}
    assert nothing_sold["stage"] == row1 - {sid("1", 1)}
    # selling a seat of another variant changes nothing; a removed seat stays unavailable
    perf = availability(plan, "x", "stage", [sid("A", 1), sid("1", 2)])
    assert set(plan.ids(perf.free)) == {sid("1", 3), sid("1", 4)}
    with pytest.raises(ValidationError, match="not a variant"):
        availability(plan, "x", "elsewhere", ())


def test_free_in_all_is_an_and_and_only_within_one_plan():
    plan = Plan("p", 1.0, row("1", 5, y=1), {}, [BASE, "pit"])
    perfs = [availability(plan, "a", BASE, [sid("1", 1)]), availability(plan, "b", BASE, [sid("1", 5)]),
             availability(plan, "c", "pit", [sid("1", 3)])]
    assert set(plan.ids(free_in_all(perfs))) == {sid("1", 2), sid("1", 4)}
    other = Plan("q", 1.0, row("1", 5, y=1), {}, [BASE])
    with pytest.raises(ValidationError, match="different seating plans"):
        free_in_all([perfs[0], availability(other, "d", BASE, ())])
    with pytest.raises(ValidationError):
        free_in_all([])


def test_pool_filter_keeps_only_the_pools_seats():
    plan = Plan("p", 1.0, row("1", 4, y=1), {}, [BASE])
    perf = availability(plan, "a", BASE, [sid("1", 1)], pool_ids=[sid("1", 1), sid("1", 2)])
    assert plan.ids(perf.free) == [sid("1", 2)]
    assert set(plan.ids(perf.other_pool)) == {sid("1", 3), sid("1", 4)}


# -- best available -----------------------------------------------------------------------------------

def test_best_available_takes_adjacent_seats_in_one_row_of_the_zone_centre_front():
    seats = row("1", 10, y=1, zone="z1") + row("2", 10, y=2, zone="z1") + row("3", 10, y=3, zone="z2")
    plan = Plan("p", 1.0, seats, {}, [BASE])
    layout = plan.layout(BASE)
    everything = plan.offered(BASE)
    assert names(plan, best_available(layout, everything, 4)) == ["14", "15", "16", "17"]
    assert names(plan, best_available(layout, everything, 2, zone_id="z2")) == ["35", "36"]
    # the middle of row 1 sold: the front row's rest is off-centre, row 2's centre wins
    sold = plan.mask([sid("1", n) for n in range(3, 9)])
    assert names(plan, best_available(layout, everything & ~sold, 4)) == ["24", "25", "26", "27"]
    assert best_available(layout, everything, 11) is None
    with pytest.raises(ValidationError):
        best_available(layout, everything, 0)
    with pytest.raises(ValidationError):
        best_available(layout, everything, 2, wheelchair=3)


def test_an_aisle_breaks_a_row_into_runs():
    # seats 1-3 | aisle (3 seat widths) | seats 4-6: no block of 4 crosses the aisle
    plan = Plan("p", 1.0, row("1", 6, y=1, aisle_after=3), {}, [BASE])
    assert best_available(plan.layout(BASE), plan.offered(BASE), 4) is None
    assert len(best_available(plan.layout(BASE), plan.offered(BASE), 3)) == 3
    # the gap rule scales with the plan's seat size: 3 units apart are neighbours when seats are 2.5 wide
    wide = Plan("p", 2.5, [Seat(f"s{n}", "P", "1", str(n), 3.0 * n, 1, "z1") for n in range(4)], {}, [BASE])
    assert NEIGHBOUR_GAP * 2.5 >= 3.0
    assert len(best_available(wide.layout(BASE), wide.offered(BASE), 4)) == 4


def test_best_available_leaves_no_single_orphan_where_it_can():
    plan = Plan("p", 1.0, row("1", 6, y=1), {}, [BASE])
    layout, offered = plan.layout(BASE), plan.offered(BASE)
    # three of six: the central blocks 2-4 and 3-5 would leave seat 1 or 6 alone; 1-3 and 4-6 leave
    # nobody alone and score the same, so the lower index (1-3) wins
    assert names(plan, best_available(layout, offered, 3)) == ["11", "12", "13"]
    # unavoidable: 4 of 5 free seats asked for leaves one alone, and is still offered
    five = Plan("q", 1.0, row("1", 5, y=1), {}, [BASE])
    assert len(best_available(five.layout(BASE), five.offered(BASE), 4)) == 4
    # one seat asked for goes to the seat that is alone already (seat 1), not the central seat 4,
    # which would leave seat 3 alone
    seven = Plan("r", 1.0, row("1", 7, y=1), {}, [BASE])
    sold = seven.mask([sid("1", 2), sid("1", 5)])
    assert names(seven, best_available(seven.layout(BASE), seven.offered(BASE) & ~sold, 1)) == ["11"]


def test_wheelchair_places_and_companion_seats():
    plan = Plan("p", 1.0, row("9", 8, y=9, wheel=(1, 2), companion=(3, 4)), {}, [BASE])
    layout, offered = plan.layout(BASE), plan.offered(BASE)
    # no wheelchair asked for: neither wheelchair places nor companion seats are offered
    assert names(plan, best_available(layout, offered, 4)) == ["95", "96", "97", "98"]
    assert best_available(layout, offered, 5) is None
    # one wheelchair place with its companion
    assert names(plan, best_available(layout, offered, 2, wheelchair=1)) == ["92", "93"]
    # a wheelchair place and three more: the second companion seat would stand beside no wheelchair place
    assert best_available(layout, offered, 4, wheelchair=1) is None
    assert best_available(layout, offered, 4, wheelchair=2) is None
    assert names(plan, best_available(layout, offered, 3, wheelchair=2)) == ["91", "92", "93"]
    # companion seat never sold alone, also when picked by hand
    with pytest.raises(ValidationError, match="companion seat"):
        check_selection(plan, BASE, offered, [sid("9", 3)])
    with pytest.raises(ValidationError, match="companion seat"):
        check_selection(plan, BASE, offered, [sid("9", 4), sid("9", 1)], wheelchair=1)  # 1 is not beside 4
    assert check_selection(plan, BASE, offered, [sid("9", 2), sid("9", 3)], wheelchair=1)
    with pytest.raises(ValidationError, match="wheelchair place"):
        check_selection(plan, BASE, offered, [sid("9", 2), sid("9", 3)])
    with pytest.raises(ValidationError, match="not free"):
        check_selection(plan, BASE, offered & ~plan.mask([sid("9", 6)]), [sid("9", 6)])
    with pytest.raises(ValidationError, match="twice"):
        check_selection(plan, BASE, offered, [sid("9", 6), sid("9", 6)])


# -- ring, choice, combi -----------------------------------------------------------------------------

def two_plans() -> tuple[Plan, Plan]:
    house = Plan("house", 1.0, row("1", 6, y=1) + row("A", 4, y=0, x0=1, variant="pit"),
                 {"stage": [sid("1", 1), sid("1", 2)]}, [BASE, "pit", "stage"])
    studio = Plan("studio", 1.0, row("1", 4, y=1, section="Saal"), {}, [BASE])
    return house, studio


def test_a_ring_is_grouped_by_plan_with_one_seat_per_group_the_same_in_every_performance():
    house, studio = two_plans()
    perfs = [availability(house, "h1", BASE, [sid("1", 3)]), availability(studio, "s1", BASE, ()),
             availability(house, "h2", BASE, [sid("1", 4)]), availability(studio, "s2", BASE, [sid("1", 1, "Saal")])]
    groups = ring_groups(perfs)
    assert [(g.plan.id, [p.performance_id for p in g.performances]) for g in groups] == [
        ("house", ["h1", "h2"]), ("studio", ["s1", "s2"])]
    assert set(house.ids(groups[0].choosable())) == {sid("1", n) for n in (1, 2, 5, 6)}
    seats = pick_seat(groups[0], sid("1", 2))
    assert seats.steps() == [] and seats.bookings() == [("h1", sid("1", 2)), ("h2", sid("1", 2))]
    with pytest.raises(Conflict, match="not free in every performance"):
        pick_seat(groups[0], sid("1", 3))  # sold in h1 only
    with pytest.raises(ValidationError, match="not part of this plan variant"):
        pick_seat(groups[0], sid("A", 1))  # a pit seat: the base variant lacks it
    with pytest.raises(ValidationError, match="twice"):
        ring_groups([perfs[0], perfs[0]])


def test_a_ring_steps_through_the_variant_that_lacks_the_seat():
    house, _ = two_plans()
    perfs = [availability(house, "pit1", "pit", ()), availability(house, "stage1", "stage", [sid("1", 4)]),
             availability(house, "pit2", "pit", [sid("1", 6)]), availability(house, "stage2", "stage", ())]
    [group] = ring_groups(perfs)
    assert group.variants == ("pit", "stage")
    # row 1 seat 2 is removed in the stage variant: one step there, with a suggestion nearby
    seats = pick_seat(group, sid("1", 2))
    [step] = seats.steps()
    assert (step.variant_id, step.performance_ids, step.missing_seat_id) == ("stage", ("stage1", "stage2"), sid("1", 2))
    assert set(house.ids(step.candidates)) == {sid("1", n) for n in (3, 5, 6)}
    assert step.suggestion == sid("1", 3)
    with pytest.raises(ValidationError, match="replacement"):
        seats.bookings()
    with pytest.raises(Conflict, match="not free"):
        seats.replace_in("stage", sid("1", 4))  # sold in stage1
    done = seats.replace_in("stage", sid("1", 5))
    assert done.steps() == []
    assert done.bookings() == [("pit1", sid("1", 2)), ("stage1", sid("1", 5)), ("pit2", sid("1", 2)),
                               ("stage2", sid("1", 5))]
    # picked on the pit map: a pit-only seat needs a replacement in the stage variant
    pit_seat = pick_seat(group, sid("A", 1), "pit")
    assert [s.variant_id for s in pit_seat.steps()] == ["stage"]
    # row 1 seat 6 is sold in pit2: not choosable although free in the others
    with pytest.raises(Conflict):
        pick_seat(group, sid("1", 6))
    [auto] = best_ring_seats(group)
    assert auto.steps() == [] and len({seat for _, seat in auto.bookings()}) <= 2


def test_a_party_in_a_ring_sits_together_and_two_replacements_never_collide():
    house = Plan("house", 1.0, row("1", 6, y=1, wheel=(1,), companion=(2,)) + row("A", 4, y=0, x0=1, variant="pit")
                 + row("2", 6, y=2), {}, [BASE, "pit"])
    perfs = [availability(house, "pit1", "pit", ()), availability(house, "base1", BASE, [sid("2", 3)])]
    [group] = ring_groups(perfs)
    # four subscribers in the pit row: the base variant lacks their seats, so they get replacements
    # there, side by side again (row 2 has no four left, row 1 has after its wheelchair place)
    parties = best_ring_seats(group, 4)
    assert [p.seat_id for p in parties] == [sid("A", n) for n in (1, 2, 3, 4)]
    assert [p.by_variant[BASE] for p in parties] == [sid("1", n) for n in (3, 4, 5, 6)]
    assert len(ring_bookings(parties)) == 8
    # the same replacement for both is refused when the order's seats are put together
    by_hand = pick_seats(group, [sid("A", 2), sid("A", 3)], "pit")
    same = [p.replace_in(BASE, sid("1", 4)) for p in by_hand]
    with pytest.raises(Conflict, match="chosen twice"):
        ring_bookings(same)
    # a companion seat goes only with the wheelchair place beside it, in the same order
    with pytest.raises(ValidationError, match="companion seat"):
        pick_seat(group, sid("1", 2), BASE)
    pair = pick_seats(group, [sid("1", 1), sid("1", 2)], BASE)
    assert [p.steps() for p in pair] == [[], []]
    # a wheelchair subscriber with a companion: best available keeps them together
    assert [p.seat_id for p in best_ring_seats(group, 2, wheelchair=1)] == [sid("1", 1), sid("1", 2)]


def test_choice_first_n_dates_then_seats_free_in_all_of_them():
    house, _ = two_plans()
    pool = [availability(house, f"d{n}", BASE, [sid("1", n)]) for n in range(1, 6)]
    with pytest.raises(ValidationError, match="exactly 3"):
        choice_groups(pool, ["d1", "d2"], 3)
    with pytest.raises(ValidationError, match="twice"):
        choice_groups(pool, ["d1", "d1", "d2"], 3)
    with pytest.raises(ValidationError, match="not one of"):
        choice_groups(pool, ["d1", "d2", "elsewhere"], 3)
    [group] = choice_groups(pool, ["d5", "d1", "d2"], 3)
    assert [p.performance_id for p in group.performances] == ["d1", "d2", "d5"]
    assert set(house.ids(group.choosable())) == {sid("1", n) for n in (3, 4, 6)}


def test_combi_keeps_the_same_seats_where_it_can():
    plan = Plan("p", 1.0, row("1", 6, y=1), {}, [BASE])
    centre = [sid("1", n) for n in (3, 4)]
    perfs = [availability(plan, "a", BASE, ()), availability(plan, "b", BASE, [sid("1", 1)]),
             availability(plan, "c", BASE, centre), availability(plan, "d", BASE, ())]
    seats = combi_best(perfs, 2)
    # a and b share a block; c needs another one (its centre is sold) and d keeps c's
    assert seats["a"] == seats["b"] and seats["c"] == seats["d"]
    assert not set(seats["c"]) & set(centre)
    assert combi_best([availability(plan, "full", BASE, plan.ids(plan.offered(BASE)))], 1) == {"full": None}


# -- Hypothesis: free in all and best available against brute force ---------------------------------

GAPS = (1.0, 1.25, 2.0, 3.0)  # in seat widths; never exactly on the neighbour boundary


class Drawn(NamedTuple):
    """A random plan and, for the oracles, the raw data it was made from (never the plan's own index)."""

    plan: Plan
    seats: list[Seat]
    removed: dict[str, list[str]]
    seat_size: float


@st.composite
def random_plans(draw) -> Drawn:
    size = draw(st.sampled_from((1.0, 0.5)))
    seats = []
    for r in range(draw(st.integers(1, 3))):
        x = 0.0
        for n in range(draw(st.integers(1, 8))):
            kind = draw(st.sampled_from(("plain",) * 6 + ("wheel", "companion")))
            seats.append(Seat(f"s{r}-{n}", "S", str(r), str(n), x, float(r), draw(st.sampled_from(("a", "b"))),
                              kind == "wheel", kind == "companion", None, draw(st.booleans()) or n % 3 != 0))
            x += draw(st.sampled_from(GAPS)) * size
    extra = [Seat(f"v{n}", "S", "9", str(n), n * size, 9.0, "a", variant_id="v2")
             for n in range(draw(st.integers(0, 4)))]
    ids = [s.id for s in seats]
    removed = {"v1": draw(st.lists(st.sampled_from(ids), unique=True)),
               "v2": draw(st.lists(st.sampled_from(ids), unique=True))}
    return Drawn(Plan("rnd", size, seats + extra, removed, [BASE, "v1", "v2"]), seats + extra, removed, size)


def oracle_offered(drawn: Drawn, variant: str) -> set[str]:
    gone = set(drawn.removed.get(variant, ()))
    return {s.id for s in drawn.seats if s.active and s.variant_id in (None, variant) and s.id not in gone}


@settings(max_examples=150, derandomize=True, deadline=None)
@given(data=st.data())
def test_free_in_all_matches_brute_force(data):
    drawn = data.draw(random_plans())
    plan, ids = drawn.plan, [s.id for s in drawn.seats]
    perfs, truth = [], set(ids)
    for n in range(data.draw(st.integers(1, 4))):
        variant = data.draw(st.sampled_from((BASE, "v1", "v2")))
        sold = data.draw(st.lists(st.sampled_from(ids), unique=True))
        pool = data.draw(st.none() | st.lists(st.sampled_from(ids), unique=True))
        perfs.append(availability(plan, f"p{n}", variant, sold, pool))
        truth &= {s for s in oracle_offered(drawn, variant) if s not in sold and (pool is None or s in pool)}
    assert set(plan.ids(free_in_all(perfs))) == truth


def oracle_best(drawn: Drawn, variant: str, free: set[str], count: int, zone: str | None, wheelchair: int):
    """Every set of *count* free seats of one row, checked rule by rule; the best by (lone seats made,
    score, first seat's index)."""
    offered = oracle_offered(drawn, variant)
    seats = sorted((s for s in drawn.seats if s.id in offered), key=lambda s: s.id)
    index = {s.id: i for i, s in enumerate(sorted(drawn.seats, key=lambda s: s.id))}
    xs = [s.x for s in seats]
    mid, front = (min(xs) + max(xs)) / 2, min(s.y for s in seats)
    rows: dict[tuple, list[Seat]] = {}
    for s in seats:
        rows.setdefault((s.section, s.row), []).append(s)
    best = None
    for members in rows.values():
        members.sort(key=lambda s: (s.x, s.y))

        def beside(a: Seat, b: Seat, members=members) -> bool:
            i, j = members.index(a), members.index(b)
            return abs(i - j) == 1 and abs(a.x - b.x) <= 1.5 * drawn.seat_size

        def lonely(pool: set[str], members=members, beside=beside) -> int:
            return sum(1 for s in members if s.id in pool and not any(
                o.id in pool and beside(s, o) for o in members if o is not s))

        row_free = {s.id for s in members if s.id in free}
        for block in itertools.combinations([s for s in members if s.id in free], count):
            if not all(beside(a, b) for a, b in itertools.pairwise(block)):
                continue
            if len({s.zone_id for s in block}) != 1 or (zone is not None and block[0].zone_id != zone):
                continue
            if sum(s.wheelchair for s in block) != wheelchair:
                continue
            if any(s.companion and not any(o.wheelchair and beside(s, o) for o in block) for s in block):
                continue
            made = lonely(row_free - {s.id for s in block}) - lonely(row_free)
            cx, cy = (block[0].x + block[-1].x) / 2, (block[0].y + block[-1].y) / 2
            key = (made, (abs(cx - mid) + (cy - front)) / drawn.seat_size, index[block[0].id])
            if best is None or key < best[0]:
                best = (key, tuple(index[s.id] for s in block))
    return None if best is None else best[1]


@settings(max_examples=200, derandomize=True, deadline=None)
@given(data=st.data())
def test_best_available_matches_brute_force(data):
    drawn = data.draw(random_plans())
    plan = drawn.plan
    variant = data.draw(st.sampled_from((BASE, "v1", "v2")))
    sold = data.draw(st.lists(st.sampled_from([s.id for s in drawn.seats]), unique=True))
    perf = availability(plan, "p", variant, sold)
    count = data.draw(st.integers(1, 4))
    wheelchair = data.draw(st.integers(0, min(count, 2)))
    zone = data.draw(st.sampled_from((None, "a", "b")))
    if not oracle_offered(drawn, variant):
        return
    free = oracle_offered(drawn, variant) - set(sold)
    found = best_available(plan.layout(variant), perf.free, count, zone_id=zone, wheelchair=wheelchair)
    assert found == oracle_best(drawn, variant, free, count, zone, wheelchair)


# -- the sample theatre, from SQLite -----------------------------------------------------------------

def seat_id(db, plan_id: str, section: str, row_label: str, label: str) -> str:
    return db.execute("SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id WHERE s.plan_id = ? "
                      "AND c.name = ? AND s.row_label = ? AND s.label = ?",
                      (plan_id, section, row_label, label)).fetchone()["id"]


def test_sample_theatre_ring_across_two_variants_from_sqlite(sample_hub):
    db, ids = sample_hub.db, sample_hub.ids
    house = ids["plans"]["Großes Haus"]
    ring = ids["rings"]["A"]  # operas with the pit open, plays with the pit covered (two extra rows)
    perfs = seat_loader.load_performances(db, ring)
    [group] = ring_groups(perfs)
    assert len(group.variants) == 2 and group.plan.id == house
    lead_seats = len(indexes_of(group.plan.offered(group.lead)))
    assert lead_seats == 800 and len(indexes_of(group.choosable())) == 800

    # a seat sold in one performance is no longer free in all; a held one neither (the holds hook)
    node = this_node(db)
    p5 = seat_id(db, house, "Parkett", "5", "10")
    sell(db, node, SaleIn(performance_id=ring[3], seat_ids=[p5], payment_method="transfer"),
         pool=contingents.HUB, channel="phone", now=utcnow())
    p6 = seat_id(db, house, "Parkett", "6", "10")
    held = seat_loader.load_performances(db, ring, holds=lambda _db, perf_ids: {perf_ids[0]: {p6}})
    [group] = ring_groups(held)
    assert {p5, p6}.isdisjoint(group.plan.ids(group.choosable()))
    assert p6 in group.plan.ids(ring_groups(seat_loader.load_performances(db, ring))[0].choosable())

    # picked on the covered-pit map in row A: the open-pit performances step to a replacement
    covered = next(v for v in group.variants if v != group.lead)
    pit_a3 = seat_id(db, house, "Parkett", "A", "3")
    seats = pick_seat(group, pit_a3, covered)
    [step] = seats.steps()
    assert step.variant_id == group.lead and len(step.performance_ids) == 4
    replacement = group.plan.seat(step.suggestion)
    assert replacement.section == "Parkett" and replacement.row == "1"
    bookings = seats.replace_in(step.variant_id, step.suggestion).bookings()
    assert len(bookings) == 8 and {s for _, s in bookings} == {pit_a3, step.suggestion}

    # best available for four in zone 1 lands in the front centre of the stalls
    zone1 = ids["zones"]["1"]
    block = best_available(group.plan.layout(group.lead), group.choosable(), 4, zone_id=zone1)
    chosen = [group.plan.seats[i] for i in block]
    assert {(s.section, s.row) for s in chosen} == {("Parkett", "1")}
    assert [s.label for s in chosen] == ["9", "10", "11", "12"]


def test_a_check_of_named_seats_reads_only_those_and_still_sees_them_sold_held_or_elsewhere(sample_hub):
    """A sale or a hold checks its own seats, not the house (issue 18): with `seats` the loader
    reads the state of just those (every other seat counts as taken), and a sold, held or
    blocked seat among them is what the whole house says; a hold still refuses each."""
    db, ids = sample_hub.db, sample_hub.ids
    house, ring, now = ids["plans"]["Großes Haus"], ids["rings"]["B"], utcnow()
    free, sold, held, blocked, other = (seat_id(db, house, "Parkett", "5", str(n)) for n in (1, 2, 3, 4, 5))
    for chair in (sold, other):
        sell(db, this_node(db), SaleIn(performance_id=ring[2], seat_ids=[chair], payment_method="transfer"),
             pool=contingents.HUB, channel="phone", now=now)
    holds.hold(db, "token:other", [(p, held) for p in ring], now=now)
    contingents.move_seats(db, ring[5], [blocked], contingents.BLOCKED, now)
    named = [free, sold, held, blocked]
    assert seat_loader.seat_state(db, ring, seats=named)[seat_loader.SOLD] == {ring[2]: {sold}}  # not `other`
    taken = holds.held_by_others("token:me")
    whole = seat_loader.load_performances(db, ring, pool=contingents.HUB, holds=taken)
    only = seat_loader.load_performances(db, ring, pool=contingents.HUB, holds=taken, seats=named)
    for house_wide, looked_at in zip(whole, only, strict=True):
        assert looked_at.free == house_wide.free & house_wide.plan.mask(named)
    [group] = ring_groups(only)
    assert group.plan.ids(group.choosable()) == [free]
    mine = seat_loader.load_performances(db, ring, holds=holds.held_by_others("token:other"), seats=[held])
    assert all(p.plan.ids(p.free) == [held] for p in mine)  # the holder's own hold is free for them
    for chair, perf, why in ((sold, ring[2], "already sold"), (held, ring[0], "held by another buyer"),
                             (blocked, ring[5], "not in this pool")):
        with pytest.raises(Conflict, match=why):
            holds.hold(db, "token:me", [(p, free) for p in ring[:2]] + [(perf, chair)], now=now)
    assert db.execute("SELECT count(*) AS n FROM seat_holds WHERE holder = 'token:me'").fetchone()["n"] == 0


def test_loader_pool_filter_and_plan_changes(sample_hub):
    db, ids = sample_hub.db, sample_hub.ids
    house = ids["plans"]["Großes Haus"]
    perf = ids["rings"]["B"][0]
    seats = [seat_id(db, house, "2. Rang", "8", str(n)) for n in (1, 2, 3)]
    contingents.move_seats(db, perf, seats, "agency:reisebuero", utcnow())
    [agency] = seat_loader.load_performances(db, [perf], pool="agency:reisebuero")
    assert set(agency.plan.ids(agency.free)) == set(seats)
    [hub] = seat_loader.load_performances(db, [perf], pool=contingents.HUB)
    assert set(seats).isdisjoint(hub.plan.ids(hub.free)) and len(indexes_of(hub.free)) == len(
        indexes_of(hub.offered)) - 3
    # a plan not changed lately comes from the cache
    db.execute("UPDATE seating_plans SET updated_at = '2026-01-01T00:00:00Z' WHERE id = ?", (house,))
    before = seat_loader.load_plan(db, house)
    assert seat_loader.load_plan(db, house) is before
    # seats switched off are seen at once, also two changes within one second (the stamp counts seconds)
    update_seat(db, house, seats[0], SeatPatchIn(active=False))
    [agency] = seat_loader.load_performances(db, [perf], pool="agency:reisebuero")
    assert agency.plan is not before and set(agency.plan.ids(agency.free)) == set(seats[1:])
    update_seat(db, house, seats[1], SeatPatchIn(active=False))
    [agency] = seat_loader.load_performances(db, [perf], pool="agency:reisebuero")
    assert set(agency.plan.ids(agency.free)) == {seats[2]}
    with pytest.raises(NotFound):
        seat_loader.load_performances(db, [perf, "01900000-0000-7000-8000-000000000000"])
