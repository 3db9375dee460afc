"""Annual-ticket products (A1): what a museum sells as Jahreskarte.

Validity is one of three modes: fixed dates; N months from purchase; N months from the
first entry (the clock starts at the first gate scan anywhere, see A10).
"""

from __future__ import annotations

import calendar
import datetime as dt
import sqlite3
from typing import Annotated, Literal

from msgspec import Meta

from core.base.errors import ValidationError
from core.base.sql import json_values
from core.catalog.common import Body, Cents, Channel, Id, Name, VatCode, check_unique, check_when
from core.catalog.resource import Audience, Resource, children_of, require

ValidityMode = Literal["fixed", "from_purchase", "from_first_entry"]


class AnnualProductIn(Body, kw_only=True):
    organizer_id: Id
    name: Name
    validity_mode: ValidityMode
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    months: Annotated[int, Meta(ge=1, le=60)] | None = None
    price_cents: Cents
    vat_code: VatCode = "exempt"
    channels: Annotated[list[Channel], Meta(min_length=1, max_length=4)]
    venue_ids: Annotated[list[Id], Meta(min_length=1, max_length=200)]
    active: bool = True


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day N months later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def validity_window(product: dict, sold_on: dt.date, first_entry_on: dt.date | None) -> tuple[dt.date, dt.date] | None:
    """First and last valid day of a card of *product*; None while a from-first-entry card
    has not been used yet (it is valid for its first entry, which starts the window)."""
    mode = product["validity_mode"]
    if mode == "fixed":
        return dt.date.fromisoformat(product["valid_from"]), dt.date.fromisoformat(product["valid_until"])
    start = sold_on if mode == "from_purchase" else first_entry_on
    if start is None:
        return None
    return start, add_months(start, product["months"]) - dt.timedelta(days=1)


class AnnualProducts(Resource):
    name = "annual-ticket product"
    table = "annual_products"
    In = AnnualProductIn
    parent = ("organizer_id", "organizers", "organizer")
    children = ("venue_ids",)
    sorts = ("name", "price_cents", "created_at", "updated_at")
    filters = ("organizer_id", "validity_mode")

    def check(self, db: sqlite3.Connection, data: AnnualProductIn, current: dict | None) -> None:
        for field in ("valid_from", "valid_until"):
            if getattr(data, field) is not None:
                check_when(getattr(data, field), field)
        if data.validity_mode == "fixed":
            if data.valid_from is None or data.valid_until is None:
                raise ValidationError("fixed validity needs valid_from and valid_until", field="valid_from")
            if data.valid_until < data.valid_from:
                raise ValidationError(
                    f"valid_until ({data.valid_until}) is before valid_from ({data.valid_from})", field="valid_until"
                )
            if data.months is not None:
                raise ValidationError("fixed validity takes dates, not months", field="months")
        else:
            if data.months is None:
                raise ValidationError(f"validity mode {data.validity_mode} needs months", field="months")
            if data.valid_from is not None or data.valid_until is not None:
                raise ValidationError(
                    f"validity mode {data.validity_mode} counts months; leave valid_from/valid_until empty",
                    field="valid_from",
                )
        check_unique(data.channels, "channels", "sales channel")
        check_unique(data.venue_ids, "venue_ids", "venue")
        for venue_id in data.venue_ids:
            venue = require(db, "venues", venue_id, "venue", "venue_ids", current)
            if venue["organizer_id"] != data.organizer_id:
                raise ValidationError(f"venue {venue['name']!r} belongs to another organizer", field="venue_ids")

    def write_children(self, db: sqlite3.Connection, id_: str, data: AnnualProductIn) -> None:
        db.execute("DELETE FROM annual_product_venues WHERE product_id = ?", (id_,))
        db.executemany(
            "INSERT INTO annual_product_venues (product_id, venue_id) VALUES (?, ?)",
            [(id_, v) for v in data.venue_ids],
        )

    def load_children(self, db: sqlite3.Connection, outs: list[dict]) -> None:
        venues = children_of(db, outs, "SELECT product_id, venue_id FROM annual_product_venues "
                             "WHERE product_id IN ({ids}) ORDER BY venue_id")
        for out in outs:
            out["venue_ids"] = [v["venue_id"] for v in venues[out["id"]]]

    def audience_sql(self, audience: Audience) -> tuple[str, tuple]:
        """The shop sees what is on sale online; an agency what is released to agencies."""
        if audience == "internal":
            return "", ()
        channel = "online" if audience == "shop" else "agency"
        return f"active = 1 AND ? IN ({json_values('channels')})", (channel,)
