"""Cash-desk receipts: the data on a German till receipt and its plain-text layout. Pure, no I/O.

Prices are gross (VAT included), in integer cents. The VAT in a rate's total is computed once per rate,
not per line, as `round(gross * rate / (100 + rate))` (half away from zero, like `core.base.money`), and the
net is gross minus VAT, so net + VAT always equals the printed total to the cent.

Museum admission (annual tickets, vouchers for them) is exempt under § 4 Nr. 20a UStG; such lines carry
VAT code "exempt" and the receipt prints the exemption note. `receipt_document` lays the receipt and its
voucher slips out as a neutral `core.base.documents.PrintDocument` for a printer's width; the byte encoding
for a printer (ESC/POS) lives in `devices.printers.receipt`. This module only decides what the receipt says
and where.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from dataclasses import dataclass, field
from typing import Literal

from core.base.clock import LOCAL_TZ
from core.base.documents import Line, PrintDocument, Qr, Slip, Style
from core.base.money import MAX_CENTS, format_eur

__all__ = [
    "EXEMPT_NOTE",
    "Credit",
    "VAT_LETTERS",
    "VAT_RATES",
    "Payment",
    "Receipt",
    "ReceiptLine",
    "VatTotal",
    "Voucher",
    "layout",
    "receipt_document",
    "receipt_lines",
    "vat_share",
]

VatCode = Literal["19", "7", "exempt"]
VAT_RATES: dict[str, int] = {"19": 19, "7": 7, "exempt": 0}
VAT_LETTERS: dict[str, str] = {"19": "A", "7": "B", "exempt": "C"}
EXEMPT_NOTE = "Steuerfrei nach § 4 Nr. 20a UStG"
MIN_WIDTH = 24


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    description: str
    quantity: int
    unit_cents: int  # gross
    vat: VatCode

    def __post_init__(self) -> None:
        if self.vat not in VAT_RATES:
            raise ValueError(f"VAT code must be one of {sorted(VAT_RATES)}, got {self.vat!r}")
        if not 1 <= self.quantity <= 10_000:
            raise ValueError(f"quantity must be 1..10000, got {self.quantity}")
        if not 0 <= self.unit_cents <= MAX_CENTS:
            raise ValueError(f"unit price must be 0..{MAX_CENTS} cents, got {self.unit_cents}")
        if not self.description.strip():
            raise ValueError("a receipt line needs a description")

    @property
    def total_cents(self) -> int:
        return self.quantity * self.unit_cents


@dataclass(frozen=True, slots=True)
class Payment:
    """`cash` with the amount given (change is computed), or `card` with the external terminal's reference."""

    method: Literal["cash", "card"]
    given_cents: int | None = None  # cash only; None = exact amount
    terminal_ref: str = ""  # card only

    def __post_init__(self) -> None:
        if self.method not in ("cash", "card"):
            raise ValueError(f"payment method must be 'cash' or 'card', got {self.method!r}")
        if self.method == "card" and self.given_cents is not None:
            raise ValueError("amount given is for cash payments only")
        if self.given_cents is not None and not 0 <= self.given_cents <= MAX_CENTS:
            raise ValueError(f"amount given must be 0..{MAX_CENTS} cents")


@dataclass(frozen=True, slots=True)
class Credit:
    """Part of the total paid without money at the till: a choice voucher (S10), its number in the
    label and the value it used. The payment (cash or card) is the rest."""

    label: str
    cents: int

    def __post_init__(self) -> None:
        if not 0 < self.cents <= MAX_CENTS:
            raise ValueError(f"a credit is 1..{MAX_CENTS} cents, got {self.cents}")


@dataclass(frozen=True, slots=True)
class Voucher:
    """An annual-ticket voucher printed below the receipt; `code` is a card code (goes into the QR)."""

    product: str
    number: str
    code: str
    note: str = "Einlösbar an der Kasse gegen eine persönliche Jahreskarte."


@dataclass(frozen=True, slots=True)
class VatTotal:
    code: str  # "19" | "7" | "exempt"
    letter: str  # A, B, C as marked on the lines
    rate: int  # percent
    gross_cents: int
    net_cents: int
    vat_cents: int


def vat_share(gross_cents: int, rate: int) -> int:
    """VAT contained in a gross amount, rounded half away from zero: round(gross * rate / (100 + rate))."""
    sign = -1 if gross_cents < 0 else 1
    num, den = abs(gross_cents) * rate, 100 + rate
    return sign * ((2 * num + den) // (2 * den))


@dataclass(frozen=True, slots=True)
class Receipt:
    organizer: str
    address: tuple[str, ...]
    tax_id: str  # "USt-IdNr. DE123456789" or "St.-Nr. 12/345/67890", printed as given
    node: str  # cash desk / node name
    operator: str
    sale_number: str
    time: dt.datetime  # aware; printed in Europe/Berlin
    lines: tuple[ReceiptLine, ...]
    payment: Payment
    voucher: Voucher | None = None
    footer: tuple[str, ...] = field(default=("Vielen Dank für Ihren Besuch!",))
    credits: tuple[Credit, ...] = ()  # choice vouchers that paid part of the total

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("receipt time must be timezone-aware")
        if not self.lines:
            raise ValueError("a receipt needs at least one line")
        if self.due_cents < 0:
            raise ValueError("the credits are more than the total")
        given = self.payment.given_cents
        if given is not None and given < self.due_cents:
            raise ValueError(f"amount given {format_eur(given)} is less than the total {format_eur(self.due_cents)}")

    @property
    def total_cents(self) -> int:
        return sum(line.total_cents for line in self.lines)

    @property
    def due_cents(self) -> int:
        """What is paid at the till: the total less the credits (vouchers)."""
        return self.total_cents - sum(c.cents for c in self.credits)

    @property
    def change_cents(self) -> int:
        """Change to hand back (0 for card or an exact cash payment)."""
        given = self.payment.given_cents
        return 0 if given is None else given - self.due_cents

    @property
    def local_time(self) -> dt.datetime:
        return self.time.astimezone(LOCAL_TZ)

    def vat_totals(self) -> list[VatTotal]:
        """One entry per VAT code used, in the order 19, 7, exempt."""
        result = []
        for code, rate in VAT_RATES.items():
            lines = [line for line in self.lines if line.vat == code]
            if not lines:
                continue
            gross = sum(line.total_cents for line in lines)
            vat = vat_share(gross, rate)
            result.append(VatTotal(code, VAT_LETTERS[code], rate, gross, gross - vat, vat))
        return result


# --- layout ----------------------------------------------------------------------------------------------


def _pair(left: str, right: str, width: int) -> list[str]:
    """`left ...... right` on one line; a long left side wraps, the right side ends the last line."""
    room = width - len(right) - 1
    if len(left) <= room:
        return [left + " " * (width - len(left) - len(right)) + right]
    parts = textwrap.wrap(left, width) or [""]
    if len(parts[-1]) > room:
        parts.append("")
    last = parts.pop()
    return parts + [last + " " * (width - len(last) - len(right)) + right]


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width) or [""]


def layout(receipt: Receipt, width: int) -> list[tuple[Style, str]]:
    """The receipt as (style, text) rows, each text at most `width` characters. The printer driver maps
    styles to ESC/POS (centre, bold, double size); `receipt_lines` drops them."""
    if width < MIN_WIDTH:
        raise ValueError(f"receipt width must be at least {MIN_WIDTH} characters, got {width}")
    rows: list[tuple[Style, str]] = []
    rule: tuple[Style, str] = ("rule", "-" * width)

    def add(style: Style, texts: list[str]) -> None:
        rows.extend((style, t) for t in texts)

    add("title", _wrap(receipt.organizer, width))
    for line in receipt.address:
        add("center", _wrap(line, width))
    if receipt.tax_id:
        add("center", _wrap(receipt.tax_id, width))
    rows.append(rule)
    add("normal", _pair(f"Beleg-Nr. {receipt.sale_number}", receipt.local_time.strftime("%d.%m.%Y %H:%M"), width))
    add("normal", _wrap(f"Kasse: {receipt.node}", width))
    add("normal", _wrap(f"Bediener: {receipt.operator}", width))
    rows.append(rule)
    for line in receipt.lines:
        amount = f"{format_eur(line.total_cents)} {VAT_LETTERS[line.vat]}"
        if line.quantity == 1:
            add("normal", _pair(line.description, amount, width))
        else:
            add("normal", _wrap(line.description, width))
            add("normal", _pair(f"  {line.quantity} x {format_eur(line.unit_cents)}", amount, width))
    rows.append(rule)
    add("bold", _pair("Summe", format_eur(receipt.total_cents), width))
    for credit in receipt.credits:
        add("normal", _pair(credit.label, "-" + format_eur(credit.cents), width))
    pay, due = receipt.payment, receipt.due_cents
    if receipt.credits and due == 0:
        pass  # the vouchers paid it all
    elif pay.method == "cash":
        given = due if pay.given_cents is None else pay.given_cents
        add("normal", _pair("Bar", format_eur(due), width))
        add("normal", _pair("Gegeben", format_eur(given), width))
        add("normal", _pair("Rückgeld", format_eur(receipt.change_cents), width))
    else:
        add("normal", _pair("Karte", format_eur(due), width))
        if pay.terminal_ref:
            add("normal", _pair("Terminal-Beleg", pay.terminal_ref, width))
    rows.append(rule)
    if width >= 40:
        add("normal", _pair(f"{'MwSt.':<7}{'Netto':>10}{'MwSt.':>10}", "Brutto", width))
    else:
        add("normal", ["MwSt.   Brutto, Netto / MwSt."])
    for t in receipt.vat_totals():
        label = f"{t.letter} {t.rate:>2} %" if t.rate else f"{t.letter} frei"
        if width >= 40:
            left = f"{label:<7}{format_eur(t.net_cents):>10}{format_eur(t.vat_cents):>10}"
            add("normal", _pair(left, format_eur(t.gross_cents), width))
        else:
            add("normal", _pair(label, format_eur(t.gross_cents), width))
            add("normal", _pair("  Netto / MwSt.", f"{format_eur(t.net_cents)} / {format_eur(t.vat_cents)}", width))
    if any(t.code == "exempt" for t in receipt.vat_totals()):
        add("normal", _wrap(f"C: {EXEMPT_NOTE}", width))
    if receipt.footer:
        rows.append(rule)
        for line in receipt.footer:
            add("center", _wrap(line, width))
    return rows


def _voucher_slip(receipt: Receipt, voucher: Voucher, width: int) -> Slip:
    """A voucher slip: title, product, number and organizer, the QR code of the voucher's card code, the note."""
    above = [voucher.product, f"Gutschein-Nr. {voucher.number}", receipt.organizer]
    below = [voucher.note, f"Beleg-Nr. {receipt.sale_number}, {receipt.local_time.strftime('%d.%m.%Y')}"]
    return (
        Line("title", "GUTSCHEIN"),
        *(Line("center", t) for text in above for t in _wrap(text, width)),
        Qr(voucher.code),
        *(Line("center", t) for text in below for t in _wrap(text, width)),
    )


def receipt_document(receipt: Receipt, width: int, vouchers: tuple[Voucher, ...] = ()) -> PrintDocument:
    """The receipt laid out for `width` characters, then one voucher slip per voucher (`receipt.voucher`
    first, if set, then `vouchers`), each slip separated from the next by the printer (a cut)."""
    slips: list[Slip] = [tuple(Line(style, text) for style, text in layout(receipt, width))]
    for voucher in (receipt.voucher, *vouchers) if receipt.voucher else vouchers:
        slips.append(_voucher_slip(receipt, voucher, width))
    return PrintDocument(width, tuple(slips))


def receipt_lines(receipt: Receipt, width_chars: int) -> list[str]:
    """The receipt as plain text lines of at most `width_chars` characters (centred lines padded left)."""
    out = []
    for style, text in layout(receipt, width_chars):
        out.append(text.center(width_chars).rstrip() if style in ("center", "title") else text)
    return out
