"""A subscription's single tickets on a receipt printer (ESC/POS, 58 or 80 mm): the desk variant of
the A6 ticket (`card_layouts/subscription-ticket.toml`). Pure: it lays ticket faces out as a neutral
`PrintDocument`, one slip (one cut) per ticket; `devices.printers.receipt.render` encodes it for the
printer model, with the QR code of the ticket's card code.

The same data as the A6 ticket: organizer, performance, date and time, venue, seat, the discount
label with the subscription's name, the subscription's and the card's numbers.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from core.base.documents import Line, PrintDocument, Qr, Slip
from core.printing.card_layout import CardFace, strftime_de

MIN_WIDTH = 24
ENTRY_NOTE = "Einlass ab 2 Stunden vor Beginn"


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=True) or [""]


def ticket_slip(face: CardFace, width: int) -> Slip:
    """One ticket: who and what in centred lines, the seat in bold, then the QR code and the numbers."""
    when = strftime_de(face.starts_at, "%a %d.%m.%Y, %H:%M Uhr") if face.starts_at else ""
    head = [(style, text) for style, value in (("center", face.organizer), ("title", "ABO-TICKET"),
                                               ("title", face.performance), ("center", when),
                                               ("center", face.venue))
            if value for text in _wrap(value, width)]
    seat = [("bold", text) for text in _wrap(face.seat, width)]  # bold is double height, not double width
    tail = [("center", text) for value in (face.discount, f"Abonnement {face.reference}" if face.reference else "")
            if value for text in _wrap(value, width)]
    after = [("center", text) for value in (f"Nr. {face.number}", ENTRY_NOTE) for text in _wrap(value, width)]
    return (*(Line(s, t) for s, t in head), Line("rule", "-" * width), *(Line(s, t) for s, t in seat),
            *(Line(s, t) for s, t in tail), Qr(face.code), *(Line(s, t) for s, t in after))


def tickets_document(faces: Iterable[CardFace], width: int) -> PrintDocument:
    """The tickets laid out for *width* characters, each on its own slip."""
    if width < MIN_WIDTH:
        raise ValueError(f"a ticket needs at least {MIN_WIDTH} characters per line, not {width}")
    slips = tuple(ticket_slip(face, width) for face in faces)
    if not slips:
        raise ValueError("no tickets to print")
    return PrintDocument(width, slips)
