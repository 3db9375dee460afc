"""Card print data (A7): a layout file (`card_layouts/*.toml`) + card faces -> PDF with reportlab.

The layout is data, not code: page size, fields (which card attribute, position, font, size, colour,
alignment, max width), the QR code (position, size, error level), an optional photo box, coloured
boxes and a background colour or image. `load_layout()` checks a file strictly (msgspec,
`forbid_unknown_fields`) so a typo is one `LayoutError` naming the file and the field, e.g.
`card_layouts/museum-standard.toml: fields[2].font: unknown font 'Arial' (use a PDF standard font ...)`.

Coordinates are millimetres from the card's **top-left** corner, as a designer measures them: for
boxes, the photo and the QR code (x, y) is their top-left corner; for text, y is the baseline.

Fonts are the 14 PDF standard fonts (Helvetica, Times-Roman, Courier and their bold/italic variants):
reportlab writes them with WinAnsi encoding, which covers German umlauts and ß, and embeds nothing.

The QR code is drawn from segno's module matrix as filled rectangles (one per horizontal run of dark
modules), always in alphanumeric mode: card codes use only digits and upper-case letters, so the
160-symbol code fits a version 7-8 symbol a gate scanner reads quickly.

No network and no file I/O besides reading the layout and its background image.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import segno
from msgspec import Meta, Struct
from reportlab.lib.colors import HexColor
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from core.base import tomlfiles
from core.base.clock import LOCAL_TZ, parse_iso

__all__ = [
    "CardFace",
    "DateLine",
    "Layout",
    "LayoutError",
    "face_from_card",
    "layouts_dir",
    "load_layout",
    "render_card_canvas",
    "render_carrier_sheet",
    "render_cards",
    "render_carrier_sheets",
    "render_pages",
]

LAYOUTS_ENV = "TESSERA_CARD_LAYOUTS"
STANDARD_FONTS = frozenset(pdfmetrics.standardFonts)
A4 = (210.0, 297.0)  # mm

Colour = Annotated[str, Meta(pattern=r"^#[0-9A-Fa-f]{6}$")]
Mm = Annotated[float, Meta(ge=0, le=1000)]
Size = Annotated[float, Meta(gt=0, le=1000)]
Pt = Annotated[float, Meta(ge=2, le=200)]
Source = Literal["holder_name", "product", "number", "valid_from", "valid_until", "organizer", "text",
                 # subscription passes and single tickets (core/subscriptions/passes.py); empty ones are skipped
                 "venue", "performance", "starts_at", "seat", "discount", "reference"]
FACE_SOURCES = frozenset({"venue", "performance", "starts_at", "seat", "discount", "reference"})
WEEKDAYS_DE = ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So")


class LayoutError(ValueError):
    """A layout file is missing, not TOML, or not a valid layout: one line naming the file and the field."""


# --- the layout file -----------------------------------------------------------------------------------


class Page(Struct, forbid_unknown_fields=True, frozen=True):
    width_mm: Size = 85.6  # CR80 (ISO/IEC 7810 ID-1)
    height_mm: Size = 54.0
    corner_radius_mm: Mm = 3.18  # only for the outline drawn on the carrier sheet


class Background(Struct, forbid_unknown_fields=True, frozen=True):
    colour: Colour | None = None
    image: str | None = None  # relative to the layout file; stretched over the whole card


class Box(Struct, forbid_unknown_fields=True, frozen=True):
    """A filled rectangle (a colour band, a frame for the photo)."""

    x_mm: Mm
    y_mm: Mm
    width_mm: Size
    height_mm: Size
    colour: Colour


class Field(Struct, forbid_unknown_fields=True, frozen=True):
    source: Source
    x_mm: Mm
    y_mm: Mm  # baseline
    text: str = ""  # the text itself for source = "text"
    label: str = ""  # written before the value, e.g. "gültig bis "
    font: str = "Helvetica"
    size_pt: Pt = 8.0
    min_size_pt: Pt = 4.0  # shrink to fit max_width_mm down to this, then cut with "…"
    colour: Colour = "#000000"
    align: Literal["left", "center", "right"] = "left"  # x is the left edge, centre or right edge
    max_width_mm: Mm | None = None
    date_format: str = "%d.%m.%Y"  # also for starts_at; %a is the German weekday (Mo, Di, ...)


class Dates(Struct, forbid_unknown_fields=True, frozen=True):
    """The list of dates with seats on a season pass: one line per performance (date, title, seat), the
    seat right-aligned. Up to `max_lines` dates in one column; up to twice as many in two columns of
    compact lines (date and seat, no title, the type shrunk down to `min_size_pt` to fit); beyond that
    the last line is `more_text` ({n}: how many are not shown). Text never leaves the block: titles
    and seats are cut with "…"."""

    x_mm: Mm
    y_mm: Mm  # baseline of the first line
    width_mm: Size
    line_mm: Size = 2.5
    max_lines: Annotated[int, Meta(ge=1, le=60)] = 10
    font: str = "Helvetica"
    seat_font: str = "Helvetica-Bold"
    size_pt: Pt = 5.5
    min_size_pt: Pt = 4.5  # two columns shrink to this so date and seat fit side by side
    colour: Colour = "#000000"
    date_format: str = "%a %d.%m.%y %H:%M"
    compact_date_format: str = "%d.%m. %H:%M"  # in two columns
    more_text: str = "+ {n} weitere Termine"


class Qr(Struct, forbid_unknown_fields=True, frozen=True):
    x_mm: Mm
    y_mm: Mm
    size_mm: Annotated[float, Meta(ge=10, le=1000)]  # including the quiet zone
    error: Literal["L", "M", "Q", "H"] = "M"
    quiet_zone: Annotated[int, Meta(ge=2, le=10)] = 4  # modules; ISO 18004 asks for 4
    # None: segno picks the mask with the lowest penalty score (ISO 18004 8.8.2; most of the rendering
    # time); 0-7: that mask, any of which makes a valid symbol
    mask: Annotated[int, Meta(ge=0, le=7)] | None = None
    colour: Colour = "#000000"
    background: Colour = "#FFFFFF"


class Photo(Struct, forbid_unknown_fields=True, frozen=True):
    x_mm: Mm
    y_mm: Mm
    width_mm: Size
    height_mm: Size
    placeholder: Colour = "#DDDDDD"  # filled when the card has no photo


class Carrier(Struct, forbid_unknown_fields=True, frozen=True):
    """Where the card sits on the A4 mail carrier (top-left corner, mm from the sheet's top-left)."""

    card_x_mm: Mm = 105.0
    card_y_mm: Mm = 120.0
    font: str = "Helvetica"
    card: bool = True  # False: no card on the sheet (a cover sheet for tickets), only address and dates
    dates_title: str = "Ihre Termine und Plätze"


class Layout(Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    qr: Qr
    page: Page = Page()
    background: Background = Background()
    boxes: list[Box] = []
    photo: Photo | None = None
    fields: list[Field] = []
    dates: Dates | None = None
    carrier: Carrier = Carrier()
    path: str = ""  # set by the loader
    background_image: bytes | None = None  # read by the loader from background.image


# --- loading -------------------------------------------------------------------------------------------


def layouts_dir() -> Path:
    """`$TESSERA_CARD_LAYOUTS`, else `card_layouts/` at the top of the project."""
    env = os.environ.get(LAYOUTS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "card_layouts"


def _resolve(name_or_path: str | os.PathLike[str]) -> Path:
    return tomlfiles.resolve(name_or_path, layouts_dir(), "layout", LayoutError)


def _check(layout: Layout) -> tuple[str, str] | None:
    fonts = [(f"fields[{i}].font", f.font) for i, f in enumerate(layout.fields)] + [
        ("carrier.font", layout.carrier.font)]
    if layout.dates:
        fonts += [("dates.font", layout.dates.font), ("dates.seat_font", layout.dates.seat_font)]
    for where, font in fonts:
        if font not in STANDARD_FONTS:
            return where, f"unknown font {font!r} (use a PDF standard font: Helvetica, Helvetica-Bold, " \
                          "Times-Roman, Courier, ...)"
    for i, f in enumerate(layout.fields):
        if f.source == "text" and not f.text:
            return f"fields[{i}].text", 'required with source = "text"'
        if f.min_size_pt > f.size_pt:
            return f"fields[{i}].min_size_pt", f"larger than size_pt ({f.size_pt:g})"
        try:
            dt.date(2026, 1, 2).strftime(f.date_format)
        except ValueError as exc:
            return f"fields[{i}].date_format", str(exc)
        bad = {ch for ch in f.label + f.text if ord(ch) > 255 and ch not in "…€"}
        if bad:
            return f"fields[{i}]", f"characters the standard fonts cannot print: {''.join(sorted(bad))}"
    w, h = layout.page.width_mm, layout.page.height_mm
    if layout.dates and (problem := _check_dates(layout.dates, w, h)):
        return problem
    placed = [("qr", layout.qr.x_mm, layout.qr.y_mm, layout.qr.size_mm, layout.qr.size_mm)]
    if layout.photo:
        p = layout.photo
        placed.append(("photo", p.x_mm, p.y_mm, p.width_mm, p.height_mm))
    placed += [(f"boxes[{i}]", b.x_mm, b.y_mm, b.width_mm, b.height_mm) for i, b in enumerate(layout.boxes)]
    for where, x, y, bw, bh in placed:
        if x + bw > w + 0.01 or y + bh > h + 0.01:
            return where, f"does not fit on the {w:g} x {h:g} mm page"
    return None


def _check_dates(d: Dates, w: float, h: float) -> tuple[str, str] | None:
    """The dates block: a usable date format, printable fixed texts, and every line on the page."""
    try:
        dt.datetime(2026, 1, 2, 19, 30).strftime(d.date_format + d.compact_date_format)
        d.more_text.format(n=3)
    except (ValueError, KeyError, IndexError) as exc:
        return "dates", f"bad date_format or more_text: {exc}"
    bad = {ch for ch in d.more_text if ord(ch) > 255 and ch not in "…€"}
    if bad:
        return "dates.more_text", f"characters the standard fonts cannot print: {''.join(sorted(bad))}"
    if d.min_size_pt > d.size_pt:
        return "dates.min_size_pt", f"larger than size_pt ({d.size_pt:g})"
    if d.x_mm + d.width_mm > w + 0.01 or d.y_mm + (d.max_lines - 1) * d.line_mm > h + 0.01:
        return "dates", f"{d.max_lines} lines do not fit on the {w:g} x {h:g} mm page"
    return None


def load_layout(name_or_path: str | os.PathLike[str]) -> Layout:
    """Load and check a layout by name (file stem in `card_layouts/`) or by path to a .toml file."""
    path = _resolve(name_or_path)
    shown = tomlfiles.shown(path)
    data = tomlfiles.read(path, "layout", LayoutError)
    for reserved in ("path", "background_image"):
        if reserved in data:
            raise LayoutError(f"{shown}: {reserved}: unknown field")
    layout = tomlfiles.convert(data, Layout, path, LayoutError)
    problem = _check(layout)
    if problem:
        raise LayoutError(f"{shown}: {problem[0]}: {problem[1]}")
    image = None
    if layout.background.image:
        image_path = path.parent / layout.background.image
        try:
            image = image_path.read_bytes()
            ImageReader(io.BytesIO(image)).getSize()
        except OSError as exc:
            raise LayoutError(f"{shown}: background.image: cannot read {image_path}: {exc.strerror or exc}") from None
        except Exception:  # noqa: BLE001 - PIL raises many kinds for a non-image
            raise LayoutError(f"{shown}: background.image: {image_path} is not an image") from None
    return msgspec.structs.replace(layout, path=str(path), background_image=image)


# --- what is printed -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DateLine:
    """One performance on a season pass (and its carrier sheet): local start, title, seat."""

    starts_at: dt.datetime
    title: str
    seat: str


@dataclass(frozen=True, slots=True)
class CardFace:
    """Everything printed on one card. Dates are local (Europe/Berlin) calendar days; the fields
    after `photo` are for subscription passes and single tickets (empty on annual cards)."""

    number: str
    holder_name: str
    product: str
    valid_from: dt.date
    valid_until: dt.date
    organizer: str
    code: str
    photo: bytes | None = None
    venue: str = ""
    performance: str = ""
    starts_at: dt.datetime | None = None  # local time of the performance
    seat: str = ""
    discount: str = ""
    reference: str = ""  # e.g. the subscription's number
    dates: tuple[DateLine, ...] = ()


def face_from_card(card: dict, *, product: str, organizer: str, photo: bytes | None = None) -> CardFace:
    """A card row (`core.cards.cards`: ISO UTC validity, valid_until = last valid minute) -> what is printed."""
    return CardFace(number=str(card["number"]), holder_name=card.get("holder_name") or "", product=product,
                    valid_from=parse_iso(card["valid_from"]).astimezone(LOCAL_TZ).date(),
                    valid_until=parse_iso(card["valid_until"]).astimezone(LOCAL_TZ).date(),
                    organizer=organizer, code=card["code"], photo=photo)


def strftime_de(moment: dt.date, fmt: str) -> str:
    """strftime with %a as the German weekday, whatever the process locale is."""
    return moment.strftime(fmt.replace("%a", WEEKDAYS_DE[moment.weekday()]))


def _value(field: Field, face: CardFace) -> str:
    if field.source == "text":
        value = field.text
    elif field.source in ("valid_from", "valid_until"):
        value = strftime_de(getattr(face, field.source), field.date_format)
    elif field.source in FACE_SOURCES:  # a pass or ticket field; absent on this face: nothing, not even the label
        raw = getattr(face, field.source)
        value = strftime_de(raw, field.date_format) if isinstance(raw, dt.date) else raw or ""
        if not value:
            return ""
    else:
        value = str(getattr(face, field.source))
    return field.label + value


def _printable(text: str) -> str:
    """What WinAnsi cannot encode becomes '?', instead of a blank glyph or an encoding error."""
    return "".join(ch if ch.isprintable() and _winansi(ch) else "?" for ch in text)


@lru_cache(maxsize=1024)
def _winansi(ch: str) -> bool:
    try:
        ch.encode("cp1252")
        return True
    except UnicodeEncodeError:
        return False


def _fit(text: str, field: Field) -> tuple[str, float]:
    """Shrink the font so the text fits max_width; below min_size_pt, cut the text and end it with '…'."""
    size = field.size_pt
    if field.max_width_mm is None:
        return text, size
    limit = field.max_width_mm * mm
    width = pdfmetrics.stringWidth(text, field.font, size)
    if width <= limit:
        return text, size
    size = max(field.min_size_pt, size * limit / width * 0.999)  # 0.999: float rounding must not cut the text
    while text and pdfmetrics.stringWidth(text, field.font, size) > limit:
        text = text[:-2] + "…" if len(text) > 1 else ""
    return text, size


def _cut(text: str, font: str, size: float, limit_pt: float) -> str:
    """*text* at a fixed size, cut with "…" so it is at most *limit_pt* wide ("" if nothing fits)."""
    if pdfmetrics.stringWidth(text, font, size) <= limit_pt:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > limit_pt:
        text = text[:-1]
    return text.rstrip() + "…" if text else ""


def date_rows(d: Dates, count: int) -> tuple[int, int, int]:
    """(columns, lines per column, dates shown) for *count* dates in the block: one column of full
    lines, two of compact lines, or two columns whose last line says how many more there are."""
    if count <= d.max_lines:
        return 1, d.max_lines, count
    if count <= 2 * d.max_lines:
        return 2, d.max_lines, count
    return 2, d.max_lines, 2 * d.max_lines - 1


def _draw_dates(canvas: Canvas, d: Dates, dates: Sequence[DateLine], page_h: float) -> None:
    columns, per_column, shown = date_rows(d, len(dates))
    gap = 2 * mm if columns == 2 else 0
    column_w = (d.width_mm * mm - gap) / columns
    if columns == 2:
        d = msgspec.structs.replace(d, size_pt=_compact_size(d, dates[:shown], column_w))
    canvas.setFillColor(HexColor(d.colour))
    for i in range(min(len(dates), columns * per_column)):
        x = d.x_mm * mm + (i // per_column) * (column_w + gap)
        y = page_h - (d.y_mm + (i % per_column) * d.line_mm) * mm
        if i >= shown:
            canvas.setFont(d.font, d.size_pt)
            canvas.drawString(x, y, _cut(d.more_text.format(n=len(dates) - shown), d.font, d.size_pt, column_w))
            continue
        _draw_date_line(canvas, d, dates[i], x, y, column_w, with_title=columns == 1)


def _compact_size(d: Dates, dates: Sequence[DateLine], column_w: float) -> float:
    """The size at which the widest compact line (date, space, seat) fits its column, not below min_size_pt."""
    def width(line: DateLine) -> float:
        return (pdfmetrics.stringWidth(strftime_de(line.starts_at, d.compact_date_format) + "  ", d.font, d.size_pt)
                + pdfmetrics.stringWidth(_printable(line.seat), d.seat_font, d.size_pt))
    widest = max((width(line) for line in dates), default=0.0)
    return d.size_pt if widest <= column_w else max(d.min_size_pt, d.size_pt * column_w / widest * 0.999)


def _draw_date_line(canvas: Canvas, d: Dates, line: DateLine, x: float, y: float, width: float,
                    *, with_title: bool) -> None:
    """Date left, seat right (at most 45 % of the width in a line with a title), the title cut to what is
    left between them."""
    space = pdfmetrics.stringWidth("  ", d.font, d.size_pt)
    when = _cut(strftime_de(line.starts_at, d.date_format if with_title else d.compact_date_format), d.font,
                d.size_pt, width)
    when_w = pdfmetrics.stringWidth(when, d.font, d.size_pt)
    seat = _cut(_printable(line.seat), d.seat_font, d.size_pt, min(width * (0.45 if with_title else 1.0),
                                                                   width - when_w - space))
    seat_w = pdfmetrics.stringWidth(seat, d.seat_font, d.size_pt)
    canvas.setFont(d.font, d.size_pt)
    canvas.drawString(x, y, when)
    if with_title:
        title = _cut(_printable(line.title), d.font, d.size_pt, width - when_w - seat_w - 2 * space)
        canvas.drawString(x + when_w + space, y, title)
    if seat:
        canvas.setFont(d.seat_font, d.size_pt)
        canvas.drawRightString(x + width, y, seat)


# --- drawing -------------------------------------------------------------------------------------------


def _qr_runs(code: str, error: str, mask: int | None) -> tuple[int, str]:
    """segno matrix (alphanumeric mode) -> (modules per side, PDF path operators: one `re` per horizontal run
    of dark modules, in module units with the origin at the symbol's top-left and y pointing down)."""
    qr = segno.make(code, mode="alphanumeric", error=error, boost_error=False, mask=mask)
    assert qr.mode == "alphanumeric", qr.mode
    ops = []
    for r, row in enumerate(qr.matrix):
        c, n = 0, len(row)
        while c < n:
            if row[c] & 1:
                start = c
                while c < n and row[c] & 1:
                    c += 1
                ops.append(f"{start} {r} {c - start} 1 re")
            else:
                c += 1
    return len(qr.matrix), "\n".join(ops)


def _draw_qr(canvas: Canvas, spec: Qr, code: str, page_h: float) -> None:
    side, ops = _qr_runs(code, spec.error, spec.mask)
    size = spec.size_mm * mm
    module = size / (side + 2 * spec.quiet_zone)
    x0, top = spec.x_mm * mm, page_h - spec.y_mm * mm  # top-left corner in PDF coordinates
    canvas.saveState()  # the colours set here must not leak into what is drawn after the code
    canvas.setFillColor(HexColor(spec.background))
    canvas.rect(x0, top - size, size, size, stroke=0, fill=1)
    canvas.setFillColor(HexColor(spec.colour))
    # one matrix for the whole symbol: module units, y down; the runs are written as integers (fast, exact)
    canvas.transform(module, 0, 0, -module, x0 + spec.quiet_zone * module, top - spec.quiet_zone * module)
    canvas.addLiteral(ops + "\nf")
    canvas.restoreState()


def _draw_card(canvas: Canvas, layout: Layout, face: CardFace) -> None:
    """Draw one card with its bottom-left corner at the canvas origin (translate before calling)."""
    w, h = layout.page.width_mm * mm, layout.page.height_mm * mm
    bg = layout.background
    if bg.colour:
        canvas.setFillColor(HexColor(bg.colour))
        canvas.rect(0, 0, w, h, stroke=0, fill=1)
    if layout.background_image:
        canvas.drawImage(_image(layout.background_image), 0, 0, w, h, mask="auto")
    for box in layout.boxes:
        canvas.setFillColor(HexColor(box.colour))
        canvas.rect(box.x_mm * mm, h - (box.y_mm + box.height_mm) * mm, box.width_mm * mm, box.height_mm * mm,
                    stroke=0, fill=1)
    if layout.photo:
        p = layout.photo
        x, y, pw, ph = p.x_mm * mm, h - (p.y_mm + p.height_mm) * mm, p.width_mm * mm, p.height_mm * mm
        if face.photo:
            canvas.drawImage(ImageReader(io.BytesIO(face.photo)), x, y, pw, ph, preserveAspectRatio=True,
                             anchor="c", mask="auto")
        else:
            canvas.setFillColor(HexColor(p.placeholder))
            canvas.rect(x, y, pw, ph, stroke=0, fill=1)
    for field in layout.fields:
        text, size = _fit(_printable(_value(field, face)), field)
        if not text:
            continue
        canvas.setFont(field.font, size)
        canvas.setFillColor(HexColor(field.colour))
        x, y = field.x_mm * mm, h - field.y_mm * mm
        if field.align == "left":
            canvas.drawString(x, y, text)
        elif field.align == "center":
            canvas.drawCentredString(x, y, text)
        else:
            canvas.drawRightString(x, y, text)
    if layout.dates and face.dates:
        _draw_dates(canvas, layout.dates, face.dates, h)
    _draw_qr(canvas, layout.qr, face.code, h)


def _draw_carrier_dates(canvas: Canvas, carrier: Carrier, face: CardFace, top_mm: float, sheet_h: float) -> None:
    """All of a face's dates on the A4 sheet, 9 pt lines, closer together when there are many (down to
    3.2 mm, ~50 dates); a list longer still ends with a line saying how many more there are."""
    left, width, bottom = 25.0, 165.0, 282.0
    canvas.setFillColor(HexColor("#000000"))
    canvas.setFont(carrier.font + ("-Bold" if carrier.font in ("Helvetica", "Courier") else ""), 10)
    canvas.drawString(left * mm, sheet_h - top_mm * mm, _printable(carrier.dates_title))
    first = top_mm + 6
    line = max(3.2, min(5.0, (bottom - first) / max(1, len(face.dates))))
    fits = int((bottom - first) / line) + 1
    shown = face.dates if len(face.dates) <= fits else face.dates[:fits - 1]
    spec = Dates(x_mm=left, y_mm=first, width_mm=width, line_mm=line, font=carrier.font, seat_font=carrier.font,
                 size_pt=9 if line >= 4 else 7.5, date_format="%a %d.%m.%Y %H:%M Uhr")
    for i, date in enumerate(shown):
        _draw_date_line(canvas, spec, date, left * mm, sheet_h - (first + i * line) * mm, width * mm, with_title=True)
    if len(shown) < len(face.dates):
        canvas.setFont(carrier.font, spec.size_pt)
        canvas.drawString(left * mm, sheet_h - (first + len(shown) * line) * mm,
                          f"+ {len(face.dates) - len(shown)} weitere Termine")


@lru_cache(maxsize=8)
def _image(data: bytes) -> ImageReader:
    return ImageReader(io.BytesIO(data))  # one reader per background, so reportlab embeds it once


def _canvas(size: tuple[float, float], title: str) -> tuple[Canvas, io.BytesIO]:
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=size, invariant=1)
    canvas.setTitle(title)
    canvas.setCreator("Tessera")
    return canvas, out


def render_card_canvas(canvas: Canvas, faces: Iterable[CardFace], layout: Layout) -> int:
    """Draw each face on its own page of an existing canvas (its page size must be the card's)."""
    count = 0
    for face in faces:
        _draw_card(canvas, layout, face)
        canvas.showPage()
        count += 1
    return count


def render_cards(faces: Iterable[CardFace], layout: Layout) -> bytes:
    """A PDF for the card printer: one card per page, the page the size of the card."""
    canvas, out = _canvas((layout.page.width_mm * mm, layout.page.height_mm * mm), f"Cards ({layout.name})")
    render_card_canvas(canvas, faces, layout)
    canvas.save()
    return out.getvalue()


def render_pages(faces_with_layouts: Iterable[tuple[CardFace, Layout]], title: str = "Cards") -> bytes:
    """One PDF of faces in different layouts (annual cards, passes, A6 tickets): each page the size of
    its own layout, so one print batch can hold all of them."""
    canvas, out = _canvas((A4[0] * mm, A4[1] * mm), title)
    for face, layout in faces_with_layouts:
        canvas.setPageSize((layout.page.width_mm * mm, layout.page.height_mm * mm))
        _draw_card(canvas, layout, face)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def render_carrier_sheet(faces_with_addresses: Iterable[tuple[CardFace, Sequence[str]]], layout: Layout) -> bytes:
    """A4 mail carrier sheets, one per card: the address in the DIN 5008 (form B) window, the sender's return
    line above it, fold marks, and the card with its outline where the card is glued on.

    Window (form B, DIN C6/5 or DL envelope): 20 mm from the left, 45 mm from the top, 85 x 45 mm; the
    first 17.7 mm hold the return line, the address (up to 6 lines) follows."""
    return render_carrier_sheets(((face, address, layout) for face, address in faces_with_addresses),
                                 f"Card carriers ({layout.name})")


def render_carrier_sheets(items: Iterable[tuple[CardFace, Sequence[str], Layout]],
                          title: str = "Card carriers") -> bytes:
    """Carrier sheets, each card in its own layout. A face with dates (a season pass, a subscription's
    tickets) also gets the full list of its dates and seats below the card; a layout with
    `[carrier] card = false` (tickets) puts only the address and that list on the sheet."""
    canvas, out = _canvas((A4[0] * mm, A4[1] * mm), title)
    sheet_h = A4[1] * mm
    for face, address, layout in items:
        font = layout.carrier.font
        lines = [_printable(line) for line in address if line.strip()][:6]
        if not lines:
            raise ValueError(f"card {face.number}: no address for the carrier sheet")
        canvas.setFillColor(HexColor("#000000"))
        canvas.setFont(font, 7)
        canvas.drawString(25 * mm, sheet_h - (45 + 12.7) * mm, _printable(face.organizer)[:80])
        canvas.setFont(font, 10)
        for i, line in enumerate(lines):
            canvas.drawString(25 * mm, sheet_h - (45 + 17.7 + 4.5 + 4.5 * i) * mm, line)
        canvas.setLineWidth(0.3)
        canvas.setStrokeColor(HexColor("#888888"))
        for fold in (105.0, 210.0):  # fold marks, form B
            canvas.line(3 * mm, sheet_h - fold * mm, 8 * mm, sheet_h - fold * mm)
        canvas.line(3 * mm, sheet_h - 148.5 * mm, 10 * mm, sheet_h - 148.5 * mm)  # punch mark
        c = layout.carrier
        list_top = 112.0  # mm from the top: below the window and the first fold
        if c.card:
            cw, ch = layout.page.width_mm * mm, layout.page.height_mm * mm
            x, y = c.card_x_mm * mm, sheet_h - c.card_y_mm * mm - ch
            canvas.roundRect(x - 1 * mm, y - 1 * mm, cw + 2 * mm, ch + 2 * mm, layout.page.corner_radius_mm * mm,
                             stroke=1, fill=0)
            canvas.saveState()
            canvas.translate(x, y)
            path = canvas.beginPath()
            path.roundRect(0, 0, cw, ch, layout.page.corner_radius_mm * mm)
            canvas.clipPath(path, stroke=0, fill=0)
            _draw_card(canvas, layout, face)
            canvas.restoreState()
            list_top = c.card_y_mm + layout.page.height_mm + 12
        if face.dates:
            _draw_carrier_dates(canvas, c, face, list_top, sheet_h)
        canvas.showPage()
    canvas.save()
    return out.getvalue()
