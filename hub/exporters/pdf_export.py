"""Reports as PDF for printed lists: A4 landscape, a header with the report's title, when it was
made and its filters, the column headings on every page, and a footer "Seite n von m".

The house's PDF pieces are reused (reportlab's canvas as for invoices and cards, the invoice's
money and day formats via `cells.shown`, its cut-to-width `_fit`). Rows are drawn as they come
from the cursor; the page count comes from the row count the caller passes (one line per row,
so the pages are known before the first one is drawn).
"""

from __future__ import annotations

import datetime as dt
from typing import BinaryIO

from reportlab.lib.colors import HexColor
from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfgen.canvas import Canvas

from core.base.clock import LOCAL_TZ
from core.payments.invoice_pdf import _fit
from core.reports.registry import Result
from hub.exporters.cells import shown

WIDTH, HEIGHT = landscape(A4)
MARGIN = 28.0
LINE = 11.0
SIZE = 7.5
FONT, BOLD = "Helvetica", "Helvetica-Bold"
TOP = HEIGHT - MARGIN - 40  # below the page header
BOTTOM = MARGIN + 18  # above the footer
ROWS_PER_PAGE = int((TOP - LINE - BOTTOM) // LINE)
TEXT = {"de": {"page": "Seite {n} von {total}", "made": "Erstellt {when}", "filter": "Filter: {f}",
               "rows": "{n} Zeilen"},
        "en": {"page": "Page {n} of {total}", "made": "Made {when}", "filter": "Filter: {f}", "rows": "{n} rows"}}


def pages(total: int) -> int:
    return max(1, -(-total // ROWS_PER_PAGE))


class _Sheet:
    """Draws the pages of one report; `row()` starts a new page when the current one is full."""

    def __init__(self, canvas: Canvas, result: Result, lang: str, total: int, filters: str) -> None:
        self.c, self.result, self.lang, self.total, self.filters = canvas, result, lang, total, filters
        weights = [c.width for c in result.columns]
        scale = (WIDTH - 2 * MARGIN) / sum(weights)
        self.x, x = [], MARGIN
        for w in weights:
            self.x.append((x, w * scale))
            x += w * scale
        self.page, self.y = 0, BOTTOM - 1
        self.made = dt.datetime.now(LOCAL_TZ).strftime("%d.%m.%Y %H:%M" if lang == "de" else "%Y-%m-%d %H:%M")

    def _t(self, key: str, **kw: object) -> str:
        return TEXT[self.lang][key].format(**kw)

    def _cells(self, values: list[str], font: str) -> None:
        self.c.setFont(font, SIZE)
        for (x, width), col, text in zip(self.x, self.result.columns, values, strict=True):
            text = _fit(text, font, SIZE, width - 4)
            if col.kind in ("money", "int"):
                self.c.drawRightString(x + width - 3, self.y, text)
            else:
                self.c.drawString(x + 1, self.y, text)

    def _new_page(self) -> None:
        if self.page:
            self.c.showPage()
        self.page += 1
        c = self.c
        c.setFont(BOLD, 13)
        c.drawString(MARGIN, HEIGHT - MARGIN - 12, self.result.report.title(self.lang))
        c.setFont(FONT, 8)
        info = [self._t("made", when=self.made), self._t("rows", n=self.total)]
        if self.filters:
            info.append(self._t("filter", f=self.filters))
        c.drawString(MARGIN, HEIGHT - MARGIN - 26, _fit("   ·   ".join(info), FONT, 8, WIDTH - 2 * MARGIN))
        c.drawRightString(WIDTH - MARGIN, MARGIN, self._t("page", n=self.page, total=pages(self.total)))
        c.drawString(MARGIN, MARGIN, "Tessera")
        self.y = TOP
        c.setFillColor(HexColor("#e8eaed"))
        c.rect(MARGIN, self.y - 3, WIDTH - 2 * MARGIN, LINE, stroke=0, fill=1)
        c.setFillColor(HexColor("#000000"))
        self._cells([col.title(self.lang) for col in self.result.columns], BOLD)
        self.y -= LINE

    def row(self, values: tuple) -> None:
        if self.y < BOTTOM:
            self._new_page()
        self._cells([shown(col, v, self.lang) for col, v in zip(self.result.columns, values, strict=True)], FONT)
        self.y -= LINE

    def finish(self) -> None:
        if self.page == 0:  # an empty report: one page with its header
            self._new_page()


def write(result: Result, out: BinaryIO, *, lang: str = "de", total: int, filters: str = "") -> None:
    canvas = Canvas(out, pagesize=(WIDTH, HEIGHT), pageCompression=1)
    canvas.setTitle(result.report.title(lang))
    canvas.setAuthor("Tessera")
    sheet = _Sheet(canvas, result, lang, total, filters)
    for row in result.rows:
        sheet.row(row)
    sheet.finish()
    canvas.save()
