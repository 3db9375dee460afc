"""Seasons (Spielzeiten), e.g. 2026/27: the frame for subscriptions and rollover."""

from __future__ import annotations

import datetime as dt
import sqlite3

from core.base.errors import ValidationError
from core.catalog.common import Body, Id, Name, check_when
from core.catalog.resource import Resource


class SeasonIn(Body, kw_only=True):
    organizer_id: Id
    name: Name
    starts_on: dt.date
    ends_on: dt.date
    active: bool = True


class Seasons(Resource):
    name = "season"
    table = "seasons"
    In = SeasonIn
    parent = ("organizer_id", "organizers", "organizer")
    sorts = ("starts_on", "name", "created_at")
    default_sort = "starts_on"
    filters = ("organizer_id",)
    unique_message = "this organizer already has a season with that name"

    def check(self, db: sqlite3.Connection, data: SeasonIn, current: dict | None) -> None:
        check_when(data.starts_on, "starts_on")
        check_when(data.ends_on, "ends_on")
        if data.ends_on <= data.starts_on:
            raise ValidationError(
                f"season ends ({data.ends_on}) before it starts ({data.starts_on})", field="ends_on"
            )
        if (data.ends_on - data.starts_on).days > 731:
            raise ValidationError("a season cannot last longer than two years", field="ends_on")
