"""The seat map (B8): one renderer for desk, office and shop, drawn from the plan's x/y.

Pure functions, no SQL (the loader is `seatmap_data.py`): a plan and the seats of one
variant with their states go in, a compact JSON (for clients that draw themselves) or an
SVG string comes out. The SVG carries no script: every seat is a `<g>` with
`data-seat-id`, `data-state`, `role="button"` and a spoken `aria-label`, and clients add
their own handlers. States differ by outline and pattern as well as colour (a colour-blind
cashier must tell a taken seat from a free one), wheelchair and companion places carry a
symbol. All text comes from input and is escaped; the output is byte-for-byte the same
for the same input, so it can be cached.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from core.base.errors import ValidationError

FREE, TAKEN, OTHER_POOL, HELD, SELECTED, HIDDEN = "free", "taken", "other_pool", "held", "selected", "hidden"
STATES = (FREE, TAKEN, OTHER_POOL, HELD, SELECTED, HIDDEN)
LANGS = ("de", "en")
UNIT = 32.0  # SVG user units per seat: 1024 CSS px show a 32-seat-wide plan at >= 28 px a seat
FALLBACK_COLOR = "#888888"
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

WORDS = {
    "de": {"row": "Reihe", "seat": "Platz", FREE: "frei", TAKEN: "belegt", OTHER_POOL: "anderes Kontingent",
           HELD: "reserviert", SELECTED: "ausgewählt", "wheelchair": "Rollstuhlplatz",
           "companion": "Begleitplatz", "map": "Saalplan"},
    "en": {"row": "Row", "seat": "Seat", FREE: "free", TAKEN: "taken", OTHER_POOL: "other pool",
           HELD: "held", SELECTED: "selected", "wheelchair": "wheelchair place",
           "companion": "companion seat", "map": "Seat map"},
}


@dataclass(frozen=True, slots=True)
class MapPlan:
    """What the map needs of a seating plan."""

    id: str
    name: str
    seat_size: float


@dataclass(frozen=True, slots=True)
class MapSeat:
    """One seat of a variant with its section, row and price zone (code, name, colour, order)."""

    id: str
    section: str
    row: str
    label: str
    x: float
    y: float
    zone: str
    zone_name: str
    color: str
    wheelchair: bool = False
    companion: bool = False
    zone_sort: int = 0


# -- geometry shared by JSON and SVG ------------------------------------------------------------


def check_states(states: dict[str, str]) -> None:
    """Refuse a state the map does not know (a typo would otherwise draw a seat as free)."""
    for seat_id, state in sorted(states.items()):
        if state not in STATES:
            raise ValidationError(f"seat {seat_id}: unknown state {state!r} (known: {', '.join(STATES)})",
                                  field="states")


def visible(seats: list[MapSeat], states: dict[str, str]) -> list[MapSeat]:
    """The seats to draw: those of the variant that are not hidden, in the order given."""
    check_states(states)
    return [s for s in seats if states.get(s.id, FREE) != HIDDEN]


def rows_of(seats: list[MapSeat]) -> list[tuple[str, str, MapSeat, MapSeat]]:
    """(section, row, leftmost seat, rightmost seat) per row, in first-seen order."""
    ends: dict[tuple[str, str], list[MapSeat]] = {}
    for seat in seats:
        pair = ends.setdefault((seat.section, seat.row), [seat, seat])
        if (seat.x, seat.label) < (pair[0].x, pair[0].label):
            pair[0] = seat
        if (seat.x, seat.label) > (pair[1].x, pair[1].label):
            pair[1] = seat
    return [(sec, row, left, right) for (sec, row), (left, right) in ends.items()]


def sections_of(seats: list[MapSeat]) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(name, (min x, min y, max x, max y) of its seat centres) per section, in first-seen order."""
    boxes: dict[str, list[float]] = {}
    for s in seats:
        box = boxes.setdefault(s.section, [s.x, s.y, s.x, s.y])
        box[:] = [min(box[0], s.x), min(box[1], s.y), max(box[2], s.x), max(box[3], s.y)]
    return [(name, (b[0], b[1], b[2], b[3])) for name, b in boxes.items()]


def zones_of(seats: list[MapSeat]) -> list[tuple[str, str, str]]:
    """(code, name, colour) of every zone on the map, in the organizer's zone order."""
    found = {s.zone: s for s in seats}
    return [(z.zone, z.zone_name, safe_color(z.color))
            for z in sorted(found.values(), key=lambda s: (s.zone_sort, s.zone))]


def safe_color(color: str) -> str:
    """A zone colour as #rrggbb; anything else (it is drawn into an attribute) becomes grey."""
    return color.lower() if _COLOR.match(color) else FALLBACK_COLOR


def view_box(seats: list[MapSeat], seat_size: float) -> tuple[float, float, float, float]:
    """(x, y, width, height) in plan units: the seats, a row label at each end, a title line."""
    if not seats:
        return (0.0, 0.0, 4 * seat_size, 2 * seat_size)
    xs, ys = [s.x for s in seats], [s.y for s in seats]
    x0, y0 = min(xs) - 1.5 * seat_size, min(ys) - 1.6 * seat_size
    return (x0, y0, max(xs) + 1.5 * seat_size - x0, max(ys) + 0.6 * seat_size - y0)


# -- JSON --------------------------------------------------------------------------------------


def seat_map_json(plan: MapPlan, seats: list[MapSeat], states: dict[str, str]) -> dict:
    """The map as data, in plan units (x/y are seat centres): for clients that draw themselves."""
    shown = visible(seats, states)
    return {
        "plan": {"id": plan.id, "name": plan.name, "seat_size": plan.seat_size},
        "view_box": list(view_box(shown, plan.seat_size)),
        "sections": [{"name": name, "bbox": list(box)} for name, box in sections_of(shown)],
        "rows": [{"section": sec, "label": row, "start": [left.x, left.y], "end": [right.x, right.y]}
                 for sec, row, left, right in rows_of(shown)],
        "zones": [{"code": code, "name": name, "color": color} for code, name, color in zones_of(shown)],
        "seats": [{"id": s.id, "x": s.x, "y": s.y, "section": s.section, "row": s.row, "label": s.label,
                   "zone": s.zone, "color": safe_color(s.color), "wheelchair": s.wheelchair,
                   "companion": s.companion, "state": states.get(s.id, FREE)} for s in shown],
    }


# -- SVG ---------------------------------------------------------------------------------------


def esc(text: str) -> str:
    """Text safe in SVG content and in double-quoted attributes (characters XML forbids become U+FFFD)."""
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=True)


def num(value: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros: stable bytes, small files."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def text_color(color: str) -> str:
    """Black or white, whichever reads better on the zone colour."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return "#111111" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#ffffff"


def aria_label(seat: MapSeat, state: str, lang: str) -> str:
    """'Reihe 3, Platz 12, Parkett, frei' (and the wheelchair/companion mark before the state)."""
    w = WORDS[lang]
    parts = [f"{w['row']} {seat.row}", f"{w['seat']} {seat.label}", seat.section]
    parts += [w[mark] for mark in ("wheelchair", "companion") if getattr(seat, mark)]
    return ", ".join(parts + [w[state]])


DEFS = (
    '<defs>'
    '<pattern id="tm-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
    '<rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#8a8a8a" '
    'stroke-width="3"/></pattern>'
    '<pattern id="tm-dots" width="6" height="6" patternUnits="userSpaceOnUse">'
    '<rect width="6" height="6" fill="#fff4c2"/><circle cx="3" cy="3" r="1" fill="#b08f00"/></pattern>'
    '<symbol id="tm-wheelchair" viewBox="0 0 24 24"><circle cx="11" cy="3.5" r="2.5"/>'
    '<path d="M10 7h3v6h5l3 6-2.6 1.2L16 16h-6a1.5 1.5 0 0 1-1.5-1.5V8.5z"/>'
    '<path d="M7.5 10.6v2.3a5 5 0 1 0 7.3 5.1h2.3a7.2 7.2 0 1 1-9.6-7.4z"/></symbol>'
    '<symbol id="tm-companion" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4.6" fill="#ffffff" '
    'stroke="#111111" stroke-width="1"/><path d="M4.2 2.2h1.6v2h2v1.6h-2v2H4.2v-2h-2V4.2h2z" '
    'fill="#111111"/></symbol>'
    '</defs>'
)
STYLE = (
    '<style>'
    '.tm text{font-family:"DejaVu Sans",Arial,sans-serif}'
    '.tm .sec{font-size:16px;font-weight:bold;fill:#222222}'
    '.tm .row{font-size:12px;font-weight:bold;fill:#555555}'
    '.tm .lbl{font-size:12px;font-weight:bold;text-anchor:middle;dominant-baseline:central}'
    '.tm .hit{fill:#ffffff;fill-opacity:0;pointer-events:all}'
    '.tm .free{stroke:#000000;stroke-opacity:.35}'
    '.tm .leg{font-size:13px;fill:#222222}'
    '.tm .seat[tabindex]{cursor:pointer}'
    '.tm .seat:focus{outline:none}'
    '.tm .seat:focus .body{stroke:#000000;stroke-width:3}'
    '</style>'
)


def _body(color: str, state: str) -> str:
    """The seat's visible square, distinct per state by fill, pattern and outline."""
    shape = 'class="body" x="-13" y="-13" width="26" height="26" rx="5"'
    if state == TAKEN:
        return (f'<rect {shape} fill="#e0e0e0" stroke="#9e9e9e" stroke-width="1"/>'
                '<path d="M-8-8L8 8M8-8L-8 8" stroke="#6e6e6e" stroke-width="2.5" stroke-linecap="round"/>')
    if state == OTHER_POOL:
        return f'<rect {shape} fill="url(#tm-hatch)" stroke="{color}" stroke-width="2" stroke-dasharray="4 3"/>'
    if state == HELD:
        return f'<rect {shape} fill="url(#tm-dots)" stroke="#6b5a00" stroke-width="2" stroke-dasharray="1.5 2.5"/>'
    if state == SELECTED:
        return (f'<rect {shape} fill="#111111" stroke="{color}" stroke-width="3"/>'
                '<rect x="-15.5" y="-15.5" width="31" height="31" rx="7" fill="none" stroke="#111111" '
                'stroke-width="1.5"/>')
    return f'<rect {shape.replace("body", "body free")} fill="{color}"/>'


def _mark(seat: MapSeat, state: str, color: str) -> str:
    """The label, or the wheelchair symbol; the companion badge; nothing readable on a taken seat."""
    if state == TAKEN:
        return ""
    ink = {FREE: text_color(color), SELECTED: "#ffffff"}.get(state, "#111111")
    if seat.wheelchair:
        out = f'<use href="#tm-wheelchair" x="-10" y="-10" width="20" height="20" fill="{ink}"/>'
    else:
        fit = max(7, min(12, int(24 / (0.65 * len(seat.label)))))  # bold digits are ~0.65 em wide
        size = "" if fit == 12 else f' style="font-size:{fit}px"'
        out = f'<text class="lbl" fill="{ink}"{size}>{esc(seat.label)}</text>'
    if seat.companion:
        out += '<use href="#tm-companion" x="5" y="-16" width="12" height="12"/>'
    return out


def _seat(seat: MapSeat, state: str, k: float, lang: str) -> str:
    color = safe_color(seat.color)
    focus = ' tabindex="0"' if state in (FREE, SELECTED) else ' aria-disabled="true"'
    pressed = ' aria-pressed="true"' if state == SELECTED else ""
    return (f'<g class="seat" data-seat-id="{esc(seat.id)}" data-state="{state}" data-zone="{esc(seat.zone)}" '
            f'role="button"{focus}{pressed} aria-label="{esc(aria_label(seat, state, lang))}" '
            f'transform="translate({num(seat.x * k)} {num(seat.y * k)})">'
            '<rect class="hit" x="-16" y="-16" width="32" height="32"/>'
            f'{_body(color, state)}{_mark(seat, state, color)}</g>')


def _labels(seats: list[MapSeat], k: float) -> list[str]:
    """Section names above each section, row labels at both ends of each row."""
    out = [f'<text class="sec" x="{num((b[0] + b[2]) / 2 * k)}" y="{num(b[1] * k - 26)}" '
           f'text-anchor="middle">{esc(name)}</text>' for name, b in sections_of(seats)]
    for _, row, left, right in rows_of(seats):
        for seat, dx in ((left, -UNIT), (right, UNIT)):
            out.append(f'<text class="row" x="{num(seat.x * k + dx)}" y="{num(seat.y * k)}" '
                       f'text-anchor="middle" dominant-baseline="central">{esc(row)}</text>')
    return out


def _legend(seats: list[MapSeat], x0: float, y0: float, width: float, lang: str) -> tuple[list[str], float]:
    """Zone swatches (name + colour), then the symbols and states; wraps to the map's width.
    Returns the elements and the height used."""
    w = WORDS[lang]
    items = [(f'<rect x="0" y="-9" width="18" height="18" rx="4" fill="{color}"/>', name)
             for _, name, color in zones_of(seats)]
    first = zones_of(seats)[0][2] if seats else FALLBACK_COLOR  # free seats show their zone's colour
    items += [(_legend_swatch(state, first), w[state]) for state in (FREE, TAKEN, OTHER_POOL, HELD, SELECTED)]
    items += [('<use href="#tm-wheelchair" x="0" y="-9" width="18" height="18" fill="#111111"/>', w["wheelchair"]),
              ('<use href="#tm-companion" x="1" y="-8" width="16" height="16"/>', w["companion"])]
    out, x, y = [], x0, y0 + 18
    for swatch, name in items:
        item_w = 30 + 7.6 * len(name) + 22
        if x > x0 and x + item_w > x0 + width:
            x, y = x0, y + 28
        out.append(f'<g class="legend-item" transform="translate({num(x)} {num(y)})">{swatch}'
                   f'<text class="leg" x="26" y="0" dominant-baseline="central">{esc(name)}</text></g>')
        x += item_w
    return out, y + 18 - y0


def _legend_swatch(state: str, color: str) -> str:
    inner = _body(color, state).replace('x="-13" y="-13"', 'x="-9" y="-9"').replace(
        'width="26" height="26"', 'width="18" height="18"')
    inner = inner.replace('x="-15.5" y="-15.5" width="31" height="31"', 'x="-11" y="-11" width="22" height="22"')
    inner = inner.replace("M-8-8L8 8M8-8L-8 8", "M-5-5L5 5M5-5L-5 5")
    return f'<g transform="translate(9 0)">{inner}</g>'


def seat_map_svg(plan: MapPlan, seats: list[MapSeat], states: dict[str, str], lang: str = "de") -> str:
    """The map as a standalone SVG: scales with its viewBox (width 100 % in a page), UNIT user
    units per seat; section names, row labels at both ends, zone colours with a legend."""
    if lang not in LANGS:
        raise ValidationError(f"unknown language {lang!r} (known: {', '.join(LANGS)})", field="lang")
    shown = visible(seats, states)
    k = UNIT / plan.seat_size
    bx, by, bw, bh = (v * k for v in view_box(shown, plan.seat_size))
    legend, legend_h = _legend(shown, bx + 8, by + bh, bw - 16, lang)
    height = bh + legend_h + 8
    title = f"{WORDS[lang]['map']}: {plan.name}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tm" viewBox="{num(bx)} {num(by)} {num(bw)} {num(height)}" '
        f'width="{num(bw)}" height="{num(height)}" role="group" aria-label="{esc(title)}" '
        f'data-plan-id="{esc(plan.id)}">',
        f'<title>{esc(title)}</title>', DEFS, STYLE,
        f'<rect x="{num(bx)}" y="{num(by)}" width="{num(bw)}" height="{num(height)}" fill="#ffffff"/>',
        *_labels(shown, k),
        '<g class="seats">', *(_seat(s, states.get(s.id, FREE), k, lang) for s in shown), '</g>',
        '<g class="legend">', *legend, '</g>',
        '</svg>',
    ]
    return "".join(parts)
