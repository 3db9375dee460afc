"""Print documents: what a receipt printer is asked to print, as neutral data. No printing logic.

`core.printing` lays a receipt out into a `PrintDocument` for a given width in characters; a
printer driver (`devices.printers.receipt`) encodes it for its model (ESC/POS). The type lives in
`core.base` because both sides need it and devices may import nothing of core but `core.base`.

A document is a sequence of slips; the printer separates slips (cuts, or feeds paper to tear
off when it has no cutter), also after the last one. A slip holds text lines and QR codes:

* `Line(style, text)`: one line, laid out for `width` characters. Styles: `normal` (left),
  `center`, `title` (centred, bold), `bold` (left, bold, double height: totals), `rule`
  (a separator line, printed like `normal`).
* `Qr(payload)`: a QR code, centred, on its own with a blank line above and below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["STYLES", "Line", "PrintDocument", "Qr", "Slip", "Style"]

Style = Literal["normal", "center", "bold", "rule", "title"]
STYLES: frozenset[str] = frozenset(get_args(Style))


@dataclass(frozen=True, slots=True)
class Line:
    style: Style
    text: str

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"line style must be one of {sorted(STYLES)}, got {self.style!r}")


@dataclass(frozen=True, slots=True)
class Qr:
    payload: str

    def __post_init__(self) -> None:
        if not self.payload:
            raise ValueError("a QR code needs a payload")


Slip = tuple[Line | Qr, ...]


@dataclass(frozen=True, slots=True)
class PrintDocument:
    width: int  # characters per line the text was laid out for
    slips: tuple[Slip, ...]
