"""Card PDF benchmark: 1,000 cards in one batch, time per card (budget <= 20 ms, issue 5 "Benchmarks").

One batch is **one PDF of 1,000 pages** (one card per page, as the card printer gets it), rendered with
`core.printing.card_layout.render_cards` in the shipped `museum-standard` layout, from the layout already loaded
to the finished PDF bytes: text fitting, QR encoding (segno, alphanumeric mode) and drawing, and
reportlab's serialisation. The codes are 160-symbol texts in the card alphabet (same length and QR
version as signed cards; signing is not what is measured). Each of the 1,000 cards has a different
code and holder name. One warm-up batch of 20 cards runs first.

Figures: ms per card for the batch (against the budget), and as context the batch's wall time, the
`museum-photo` layout (with a JPEG photo on every card), the PDF size per card, and the standard layout
with a fixed QR mask (`qr.mask = 0`): choosing the best of the 8 masks by penalty score, which the shipped
layouts do, is most of segno's pure-Python work.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import time

import msgspec

from bench.report import figure
from core.cards.cardcode import ALPHABET, TEXT_LENGTH
from core.printing.card_layout import CardFace, load_layout, render_cards

NAME = "cardpdf"
CARDS = 1000
BUDGET_MS = 20.0
FIRST = ["Erika", "Jürgen", "Åsa", "Zoë", "Maximiliane", "Ludwig", "Özlem", "Hans-Peter"]
LAST = ["Mustermann", "Müller-Weiß", "Schäfer", "von Hohenzollern-Sigmaringen", "Groß", "Öztürk"]


def faces(count: int, photo: bytes | None = None, seed: int = 7) -> list[CardFace]:
    rng = random.Random(seed)
    start = dt.date(2026, 11, 23)
    return [CardFace(number=f"C-2026-{i + 1:06d}", holder_name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                     product="Jahreskarte Verbund", valid_from=start, valid_until=start + dt.timedelta(days=364),
                     organizer="Museumsverbund Musterstadt", code="".join(rng.choices(ALPHABET, k=TEXT_LENGTH)),
                     photo=photo) for i in range(count)]


def _photo() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (220, 280), "#6A8CAF").save(out, "JPEG")
    return out.getvalue()


def _batch(layout_name: str, photo: bytes | None, mask: int | None = None) -> tuple[float, int]:
    layout = load_layout(layout_name)
    if mask is not None:
        layout = msgspec.structs.replace(layout, qr=msgspec.structs.replace(layout.qr, mask=mask))
    render_cards(faces(20, photo, seed=1), layout)  # warm-up: imports, font metrics, caches
    batch = faces(CARDS, photo)
    started = time.perf_counter()
    pdf = render_cards(batch, layout)
    return time.perf_counter() - started, len(pdf)


def run() -> None:
    seconds, size = _batch("museum-standard", None)
    figure(NAME, "card_pdf_per_card_ms", seconds * 1000 / CARDS, "ms", BUDGET_MS)
    figure(NAME, "batch_1000_cards_s", seconds, "s")
    figure(NAME, "pdf_bytes_per_card", size / CARDS, "bytes")
    seconds, _ = _batch("museum-photo", _photo())
    figure(NAME, "card_pdf_per_card_ms_photo_layout", seconds * 1000 / CARDS, "ms", BUDGET_MS)
    seconds, _ = _batch("museum-standard", None, mask=0)
    figure(NAME, "card_pdf_per_card_ms_fixed_qr_mask", seconds * 1000 / CARDS, "ms")
