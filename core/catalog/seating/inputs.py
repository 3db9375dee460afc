"""What the seating API accepts: plans, sections, rows, seats, variants and their patches."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from core.catalog.common import Body, Id, Name
from core.catalog.resource import patch_of

Label = Annotated[str, Meta(min_length=1, max_length=12, pattern=r"^\S(.*\S)?$")]
Coord = Annotated[float, Meta(ge=-100_000, le=100_000)]
ZoneCode = Annotated[str, Meta(min_length=1, max_length=8, pattern=r"^[A-Za-z0-9]+$")]


class SeatIn(Body, kw_only=True):
    label: Label
    x: Coord
    y: Coord
    zone: ZoneCode
    wheelchair: bool = False
    companion: bool = False


class RowIn(Body, kw_only=True):
    label: Label
    seats: Annotated[list[SeatIn], Meta(min_length=1, max_length=1000)]


class SectionIn(Body, kw_only=True):
    name: Name
    rows: Annotated[list[RowIn], Meta(min_length=1, max_length=500)]


class RemoveIn(Body, kw_only=True):
    """Seats a variant leaves out: a whole row, or some seats of it."""

    section: Name
    row: Label
    seats: list[Label] | None = None


class VariantIn(Body, kw_only=True):
    name: Name
    add: list[SectionIn] = []
    remove: list[RemoveIn] = []
    active: bool = True


class PlanIn(Body, kw_only=True):
    venue_id: Id
    name: Name
    seat_size: Annotated[float, Meta(ge=0.01, le=1000)] = 1.0
    base_variant: Name = "Standard"
    sections: Annotated[list[SectionIn], Meta(min_length=1, max_length=100)]
    variants: list[VariantIn] = []


class PlanHeaderIn(Body, kw_only=True):
    """The changeable part of a plan: seats are changed one by one (SeatPatchIn)."""

    venue_id: Id
    name: Name
    seat_size: Annotated[float, Meta(ge=0.01, le=1000)] = 1.0
    active: bool = True


class VariantHeaderIn(Body, kw_only=True):
    name: Name
    active: bool = True


VariantPatch = patch_of(VariantHeaderIn)


class SeatPatchIn(Body, kw_only=True):
    row_label: Label | msgspec.UnsetType = msgspec.UNSET
    label: Label | msgspec.UnsetType = msgspec.UNSET
    x: Coord | msgspec.UnsetType = msgspec.UNSET
    y: Coord | msgspec.UnsetType = msgspec.UNSET
    zone: ZoneCode | msgspec.UnsetType = msgspec.UNSET
    wheelchair: bool | msgspec.UnsetType = msgspec.UNSET
    companion: bool | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
