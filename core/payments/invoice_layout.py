"""The A4 invoice layout as data (`invoice_layouts/*.toml`), like the card layouts.

Where each block of an invoice sits on the page (mm from the sheet's top-left corner; text y is
the baseline), the fonts (the PDF standard fonts, as for cards: WinAnsi covers umlauts, ß and €)
and colours. The address block's default place is the window of a DIN 5008 form B letter
(DL envelope with window), so the invoice goes out by post without re-typing. What the blocks
say (German or English) is `core.payments.invoice_pdf`'s; the layout says only where.

Checked strictly when loaded (msgspec, `forbid_unknown_fields`): a typo is one `LayoutError`
naming the file and the field.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from msgspec import Meta, Struct

from core.base import tomlfiles
from core.printing.card_layout import STANDARD_FONTS, LayoutError

LAYOUTS_ENV = "TESSERA_INVOICE_LAYOUTS"
DEFAULT = "invoice-a4"
A4_W, A4_H = 210.0, 297.0

Colour = Annotated[str, Meta(pattern=r"^#[0-9A-Fa-f]{6}$")]
X = Annotated[float, Meta(ge=0, le=A4_W)]
Y = Annotated[float, Meta(ge=0, le=A4_H)]
Pt = Annotated[float, Meta(ge=4, le=40)]
Line = Annotated[float, Meta(ge=2, le=20)]


class Text(Struct, forbid_unknown_fields=True, frozen=True):
    """Defaults for every block."""

    font: str = "Helvetica"
    bold_font: str = "Helvetica-Bold"
    size_pt: Pt = 9.0
    colour: Colour = "#000000"
    accent: Colour = "#1F3A5F"  # title and rules


class Block(Struct, forbid_unknown_fields=True, frozen=True):
    x_mm: X
    y_mm: Y
    line_mm: Line = 4.2
    size_pt: Pt | None = None  # None: text.size_pt
    width_mm: Annotated[float, Meta(gt=0, le=A4_W)] = 80.0


class Table(Struct, forbid_unknown_fields=True, frozen=True):
    y_mm: Y  # baseline of the column heads on the first page
    next_page_y_mm: Y = 30.0  # on continuation pages
    bottom_mm: Y = 250.0  # no line below this; the rest continues on the next page
    line_mm: Line = 5.0
    position_x_mm: X = 25.0
    description_x_mm: X = 35.0
    vat_right_mm: X = 160.0
    amount_right_mm: X = 190.0


class Stamp(Struct, forbid_unknown_fields=True, frozen=True):
    """The "Duplikat" mark of a duplicate: diagonal, light, over the page."""

    x_mm: X = 105.0
    y_mm: Y = 160.0
    size_pt: Annotated[float, Meta(ge=10, le=150)] = 80.0
    angle: Annotated[float, Meta(ge=-90, le=90)] = 35.0
    colour: Colour = "#D0D0D0"


class InvoiceLayout(Struct, forbid_unknown_fields=True, frozen=True):
    name: str
    text: Text = Text()
    issuer: Block = Block(x_mm=125.0, y_mm=20.0, size_pt=8.5)
    sender_line: Block = Block(x_mm=25.0, y_mm=50.0, size_pt=6.5, width_mm=85.0)
    address: Block = Block(x_mm=25.0, y_mm=58.0, line_mm=4.6, width_mm=85.0)
    meta: Block = Block(x_mm=115.0, y_mm=58.0, line_mm=4.6, width_mm=75.0)
    title: Block = Block(x_mm=25.0, y_mm=108.0, size_pt=15.0)
    table: Table = Table(y_mm=122.0)
    footer: Block = Block(x_mm=25.0, y_mm=283.0, line_mm=3.4, size_pt=7.0, width_mm=165.0)
    stamp: Stamp = Stamp()
    path: str = ""  # set by the loader


def layouts_dir() -> Path:
    """`$TESSERA_INVOICE_LAYOUTS`, else `invoice_layouts/` at the top of the project."""
    env = os.environ.get(LAYOUTS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "invoice_layouts"


def _check(layout: InvoiceLayout) -> tuple[str, str] | None:
    for where, font in (("text.font", layout.text.font), ("text.bold_font", layout.text.bold_font)):
        if font not in STANDARD_FONTS:
            return where, f"unknown font {font!r} (use a PDF standard font: Helvetica, Times-Roman, Courier, ...)"
    t = layout.table
    if not t.y_mm < t.bottom_mm or not t.next_page_y_mm < t.bottom_mm:
        return "table.bottom_mm", "must lie below table.y_mm and table.next_page_y_mm"
    if not t.position_x_mm < t.description_x_mm < t.vat_right_mm < t.amount_right_mm:
        return "table", "columns must go left to right: position, description, vat, amount"
    for where, block in (("issuer", layout.issuer), ("sender_line", layout.sender_line), ("address", layout.address),
                         ("meta", layout.meta), ("footer", layout.footer)):
        if block.x_mm + block.width_mm > A4_W + 0.01:
            return f"{where}.width_mm", "the block runs off the A4 page"
    return None


def load(name_or_path: str | os.PathLike[str] = DEFAULT) -> InvoiceLayout:
    """Load and check a layout by name (file stem in `invoice_layouts/`) or by path to a .toml file."""
    path = tomlfiles.resolve(name_or_path, layouts_dir(), "layout", LayoutError)
    data = tomlfiles.read(path, "layout", LayoutError)
    if "path" in data:
        raise LayoutError(f"{tomlfiles.shown(path)}: path: unknown field")
    layout = tomlfiles.convert(data, InvoiceLayout, path, LayoutError)
    problem = _check(layout)
    if problem:
        raise LayoutError(f"{tomlfiles.shown(path)}: {problem[0]}: {problem[1]}")
    return layout


@lru_cache(maxsize=8)
def cached(name_or_path: str = DEFAULT) -> InvoiceLayout:
    """A layout read once per process (a run of 1,000 invoices reads its file once)."""
    return load(name_or_path)
