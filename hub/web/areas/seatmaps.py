"""Seat maps (B8) over the API: `GET /performances/{id}/seat-map` as JSON (default) or SVG.

The map shows the performance's plan variant with the seats the caller cannot sell marked:
sold (`taken`), held for a checkout (`held`) and in another pool (`other_pool`: a cash desk, an
agency, blocked). The pool is the hub's, or for an agency token its own `agency:<token id>`.
The renderer is `core.catalog.seating.seatmap`, the same for desk, office and shop; the
SVG has no script, clients bind their own handlers to `data-seat-id`.
"""

from __future__ import annotations

import msgspec

from core.base.ids import is_uuid
from core.catalog.seating.seatmap import LANGS, seat_map_json, seat_map_svg
from core.sales.contingents import HUB
from core.sales.seat_states import performance_map
from hub.web.api import Api, Ctx, Media, Param
from hub.web.clock import now
from hub.web.problems import ApiError

READERS = ("admin", "office", "shop", "agency")  # as the seating-plan reads
FORMATS = ("json", "svg")
SVG = "image/svg+xml"


class MapPlanOut(msgspec.Struct):
    id: str
    name: str
    seat_size: float


class MapSectionOut(msgspec.Struct):
    name: str
    bbox: list[float]


class MapRowOut(msgspec.Struct):
    section: str
    label: str
    start: list[float]
    end: list[float]


class MapZoneOut(msgspec.Struct):
    code: str
    name: str
    color: str


class MapSeatOut(msgspec.Struct):
    id: str
    x: float
    y: float
    section: str
    row: str
    label: str
    zone: str
    color: str
    wheelchair: bool
    companion: bool
    state: str


class SeatMap(msgspec.Struct):
    """A seat map as data (plan units, x/y are seat centres)."""

    plan: MapPlanOut
    view_box: list[float]
    sections: list[MapSectionOut]
    rows: list[MapRowOut]
    zones: list[MapZoneOut]
    seats: list[MapSeatOut]


def _choice(ctx: Ctx, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = ctx.query.get(name, default)
    if value not in allowed:
        raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                       f"{name} must be one of {', '.join(allowed)}, not {value!r}", field=name)
    return value


def performance_seat_map(ctx: Ctx):
    """The map of one performance; a malformed id is a 400, an unknown one a 404."""
    fmt = _choice(ctx, "format", FORMATS, "json")
    lang = _choice(ctx, "lang", LANGS, "de")
    performance_id = ctx.path("id")
    if not is_uuid(performance_id):
        raise ApiError(400, "invalid-parameter", "Invalid path parameter",
                       f"the performance id must be an id (UUID), not {performance_id[:60]!r}", field="id")
    pool = f"agency:{ctx.token['id']}" if ctx.token and ctx.token["role"] == "agency" else HUB  # an agency's own
    plan, seats, states = performance_map(ctx.db, performance_id, pool, now(ctx))
    if fmt == "svg":
        return Media(seat_map_svg(plan, seats, states, lang).encode("utf-8"), SVG)
    return seat_map_json(plan, seats, states)


def register(api: Api) -> None:
    api.add("GET", "/performances/{id}/seat-map", performance_seat_map, summary="Read a performance's seat map",
            tag="Seating", roles=READERS, response=SeatMap, also_media=(SVG,),
            cacheable=False,  # per agency pool, and a hold turns free when it expires, without a write
            query=[Param("format", "str", "json (default) or svg", max_length=10),
                   Param("lang", "str", "language of the SVG's labels: de (default) or en", max_length=5)],
            description="The plan variant of the performance with every seat's state as the hub's pool sees "
                        "it (an agency: its own pool): free, taken (sold), held (for a checkout, until the hold "
                        "expires) or other_pool (a cash desk's, an agency's or blocked). "
                        "`format=svg` answers image/svg+xml: one element per seat with data-seat-id, "
                        "data-state, role=button and an aria-label; no script.")
