"""Response shapes for the API document, derived from the core input structs so the
document and the code share one definition of each field."""

from __future__ import annotations

from typing import Any

import msgspec

from core.catalog.resource import Resource


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem detail."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None
    instance: str | None = None


def output_of(res: Resource, extra: list[tuple[str, Any]] | None = None) -> type:
    """Record shape: `id`, the input fields, timestamps (and *extra* fields)."""
    fields: list[tuple[str, Any]] = [("id", str), *(extra or [])]
    fields += [(f.name, f.type) for f in msgspec.structs.fields(res.In)]
    fields += [("created_at", str), ("updated_at", str)]
    name = res.In.__name__.removesuffix("In")
    return msgspec.defstruct(name, fields, kw_only=True)


def page_of(item: type) -> type:
    return msgspec.defstruct(f"{item.__name__}Page", [
        ("items", list[item]), ("total", int), ("limit", int), ("offset", int)], kw_only=True)


class Health(msgspec.Struct, kw_only=True):
    status: str
    version: str
    node_id: str
    schema_version: int


class Token(msgspec.Struct, kw_only=True):
    id: str
    name: str
    role: str
    created_at: str
    revoked_at: str | None


class NewToken(Token, kw_only=True):
    token: str


class Section(msgspec.Struct, kw_only=True):
    id: str
    name: str
    sort: int


class Variant(msgspec.Struct, kw_only=True):
    id: str
    plan_id: str
    name: str
    is_base: bool
    active: bool
    seat_count: int
    created_at: str
    updated_at: str


class SeatingPlan(msgspec.Struct, kw_only=True):
    id: str
    venue_id: str
    name: str
    seat_size: float
    active: bool
    sections: list[Section]
    variants: list[Variant]
    created_at: str
    updated_at: str


class Seat(msgspec.Struct, kw_only=True):
    id: str
    section: str
    row_label: str
    label: str
    x: float
    y: float
    zone_id: str
    zone: str
    wheelchair: bool
    companion: bool
    variant_id: str | None
    active: bool


class SeatList(msgspec.Struct, kw_only=True):
    variant_id: str
    items: list[Seat]


class Quote(msgspec.Struct, kw_only=True):
    product_id: str
    zone_id: str | None
    tier_id: str | None
    base_cents: int
    price_cents: int


class TierPrice(msgspec.Struct, kw_only=True):
    tier_id: str
    name: str
    price_cents: int


class ZoneRow(msgspec.Struct, kw_only=True):
    zone_id: str | None
    base_cents: int
    tiers: list[TierPrice]


class PriceTable(msgspec.Struct, kw_only=True):
    product_id: str
    kind: str
    zones: list[ZoneRow]
