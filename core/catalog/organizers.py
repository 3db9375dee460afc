"""Organizers (the legal entity selling: a museum association, a theatre) and their
venues and price zones."""

from __future__ import annotations

import sqlite3
from typing import Annotated, Literal

from msgspec import Meta

from core.catalog.common import (
    Address,
    Body,
    Id,
    Name,
    check_address,
    check_creditor_id,
    check_vat_id,
)
from core.catalog.resource import Resource


class OrganizerIn(Body, kw_only=True):
    name: Name
    address: Address
    tax_number: Annotated[str, Meta(max_length=40)] | None = None
    vat_id: Annotated[str, Meta(max_length=20)] | None = None
    sepa_creditor_id: Annotated[str, Meta(max_length=35)] | None = None
    active: bool = True


class Organizers(Resource):
    name = "organizer"
    table = "organizers"
    In = OrganizerIn
    sorts = ("name", "created_at", "updated_at")

    def check(self, db: sqlite3.Connection, data: OrganizerIn, current: dict | None) -> None:
        check_address(data.address)
        if data.vat_id:
            check_vat_id(data.vat_id)
        if data.sepa_creditor_id:
            check_creditor_id(data.sepa_creditor_id)


class VenueIn(Body, kw_only=True):
    organizer_id: Id
    name: Name
    kind: Literal["museum", "exhibition", "stage"]
    address: Address
    active: bool = True


class Venues(Resource):
    name = "venue"
    table = "venues"
    In = VenueIn
    parent = ("organizer_id", "organizers", "organizer")
    sorts = ("name", "kind", "created_at", "updated_at")
    filters = ("organizer_id", "kind")

    def check(self, db: sqlite3.Connection, data: VenueIn, current: dict | None) -> None:
        check_address(data.address)


class PriceZoneIn(Body, kw_only=True):
    """A price category (Preiskategorie) shared by all venues of an organizer, so that a
    ring crossing two houses can still have one package price per zone."""

    organizer_id: Id
    code: Annotated[str, Meta(min_length=1, max_length=8, pattern=r"^[A-Za-z0-9]+$")]
    name: Name
    color: Annotated[str, Meta(pattern=r"^#[0-9a-fA-F]{6}$")] = "#888888"
    sort: Annotated[int, Meta(ge=0, le=1000)] = 0
    active: bool = True


class PriceZones(Resource):
    name = "price zone"
    table = "price_zones"
    In = PriceZoneIn
    parent = ("organizer_id", "organizers", "organizer")
    sorts = ("sort", "code", "name", "created_at")
    default_sort = "sort"
    filters = ("organizer_id",)
    search = ("name", "code")
    unique_message = "this organizer already has a price zone with that code"



def venue_id(db: sqlite3.Connection, venue: str) -> str:
    """A venue given by id or by its exact name (command lines accept both)."""
    rows = db.execute("SELECT id FROM venues WHERE id = ? OR name = ?", (venue, venue)).fetchall()
    if len(rows) != 1:
        raise ValueError(f"no venue {venue!r}" if not rows else f"venue name {venue!r} is ambiguous; give its id")
    return rows[0]["id"]


def venue_name(db: sqlite3.Connection, venue: str | None) -> str | None:
    """The name of the venue with id *venue* (None if unknown here, e.g. before the first sync)."""
    row = db.execute("SELECT name FROM venues WHERE id = ?", (venue,)).fetchone() if venue else None
    return row["name"] if row else None
