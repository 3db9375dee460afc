"""Pure seat checks: duplicate or overlapping seats, and the structural rules of a plan import."""

from __future__ import annotations

import math

import msgspec

from core.base.errors import ValidationError
from core.catalog.seating.inputs import PlanIn, SectionIn, VariantIn

MAX_SEATS = 20_000


# -- pure checks -----------------------------------------------------------------

class Place(msgspec.Struct):
    """A seat as the checks see it: its key and where it is drawn."""

    section: str
    row: str
    label: str
    x: float
    y: float

    def describe(self) -> str:
        return f"{self.section} row {self.row} seat {self.label}"


def check_places(places: list[Place], seat_size: float, where: str) -> None:
    """Refuse duplicate keys and seats drawn on top of each other (closer than a seat)."""
    keys: dict[tuple[str, str, str], Place] = {}
    for place in places:
        key = (place.section, place.row, place.label)
        if key in keys:
            raise ValidationError(f"{where}: duplicate seat {place.describe()}", field="seats")
        keys[key] = place
    grid: dict[tuple[int, int], list[Place]] = {}
    for place in places:
        gx, gy = math.floor(place.x / seat_size), math.floor(place.y / seat_size)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for other in grid.get((gx + dx, gy + dy), ()):
                    if abs(other.x - place.x) < seat_size and abs(other.y - place.y) < seat_size:
                        raise ValidationError(
                            f"{where}: seats {other.describe()} at ({other.x:g}, {other.y:g}) and "
                            f"{place.describe()} at ({place.x:g}, {place.y:g}) overlap "
                            f"(seats are {seat_size:g} wide)",
                            field="seats",
                        )
        grid.setdefault((gx, gy), []).append(place)


def places_of(sections: list[SectionIn]) -> list[Place]:
    return [
        Place(section.name, row.label, seat.label, seat.x, seat.y)
        for section in sections
        for row in section.rows
        for seat in row.seats
    ]


def check_plan(plan: PlanIn) -> None:
    """All structural rules of an import, without touching the database."""
    base = places_of(plan.sections)
    check_places(base, plan.seat_size, f"plan {plan.name!r}")
    total = len(base)
    names = {plan.base_variant}
    base_keys = {(p.section, p.row, p.label) for p in base}
    for variant in plan.variants:
        if variant.name in names:
            raise ValidationError(f"variant name {variant.name!r} is used twice", field="variants")
        names.add(variant.name)
        removed = removed_keys(variant, base, base_keys)
        added = places_of(variant.add)
        kept = [p for p in base if (p.section, p.row, p.label) not in removed]
        check_places(kept + added, plan.seat_size, f"variant {variant.name!r}")
        total += len(added)
    if total > MAX_SEATS:
        raise ValidationError(f"a plan may hold at most {MAX_SEATS} seats, this one has {total}")


def removed_keys(variant: VariantIn, base: list[Place], base_keys: set) -> set:
    removed: set = set()
    for item in variant.remove:
        row_keys = {k for k in base_keys if k[0] == item.section and k[1] == item.row}
        if not row_keys:
            raise ValidationError(
                f"variant {variant.name!r} removes {item.section} row {item.row}, "
                "which the plan does not have",
                field="variants",
            )
        if item.seats is None:
            removed |= row_keys
            continue
        for label in item.seats:
            key = (item.section, item.row, label)
            if key not in row_keys:
                raise ValidationError(
                    f"variant {variant.name!r} removes {item.section} row {item.row} seat {label}, "
                    "which the plan does not have",
                    field="variants",
                )
            removed.add(key)
    return removed
