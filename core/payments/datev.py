"""DATEV export: the payments of a date range as a DATEV-Format Buchungsstapel (EXTF) for the
organizer's tax advisor.

The file is what DATEV's format description asks for: a header line (Kennzeichen EXTF, header
version 700, format category 21 "Buchungsstapel", format version 13, the creation time, the
consultant and client numbers, the fiscal year start, the account length, the date range, a
label), the line of the 125 column names, then one line per booking; fields separated by `;`,
texts in double quotes (a quote doubled), amounts with a decimal comma and no sign (the sign is
the Soll/Haben flag), Belegdatum as DDMM, encoded Windows-1252, lines ending CRLF.

What is booked (cash basis, by payment day at the venues): every `paid` payment row of the
range, on the money account of its method (Kasse, Bank, Geldtransit, ...) against the revenue
account of the VAT code of the order's lines, gross (the revenue accounts are DATEV's automatic
VAT accounts, so no BU key). An order with lines of several VAT codes splits each payment in
proportion to the lines' gross amounts, to the cent (largest remainder), so the parts add up
to the payment. A refund (a negative row) books the other way round. Belegfeld 1 is the number
of the order's invoice (core/payments/invoices.py) when it has one live invoice, else the order
number; the Buchungstext says the method and the customer. A line on a live invoice has the
VAT code the invoice stated; other lines without a VAT code (seat tickets) take their
organizer's invoicing setting `ticket_vat_code` (core/payments/invoices.py), the one rule an
invoice follows too, so an invoice and the books never disagree.

The accounts are hub.toml `[datev]` settings (defaults: SKR03; confirm them with the tax
advisor); the consultant and client numbers have no default, and without them nothing is
exported.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.base.clock import LOCAL_TZ, day_end, day_start, iso
from core.base.errors import Conflict, ValidationError
from core.payments import providers
from core.payments.invoices import ORGANIZER_OF, InvoicingIn, settings_of
from core.payments.states import local_day
from core.payments.vat import RATES

FORMAT_VERSION = 13
ENCODING = "cp1252"
TEXT_MAX = 60
FIRST_DAY, LAST_DAY = dt.date(2000, 1, 1), dt.date(2999, 12, 31)  # a sane range, far from datetime's ends
DOCUMENT_MAX = 36
# DATEV: Belegfeld 1 takes letters, digits and $ & % * + - / (anything else is left out)
# letters without a decomposition into a base letter and a mark
FALLBACK = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i"})
DOCUMENT_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789$&%*+-/")

COLUMNS: tuple[str, ...] = (
    "Umsatz (ohne Soll/Haben-Kz)", "Soll/Haben-Kennzeichen", "WKZ Umsatz", "Kurs", "Basis-Umsatz",
    "WKZ Basis-Umsatz", "Konto", "Gegenkonto (ohne BU-Schlüssel)", "BU-Schlüssel", "Belegdatum", "Belegfeld 1",
    "Belegfeld 2", "Skonto", "Buchungstext", "Postensperre", "Diverse Adressnummer", "Geschäftspartnerbank",
    "Sachverhalt", "Zinssperre", "Beleglink",
    *(f"Beleginfo - {kind} {n}" for n in range(1, 9) for kind in ("Art", "Inhalt")),
    "KOST1 - Kostenstelle", "KOST2 - Kostenstelle", "Kost-Menge", "EU-Land u. UStID (Bestimmung)",
    "EU-Steuersatz (Bestimmung)", "Abw. Versteuerungsart", "Sachverhalt L+L", "Funktionsergänzung L+L",
    "BU 49 Hauptfunktionstyp", "BU 49 Hauptfunktionsnummer", "BU 49 Funktionsergänzung",
    *(f"Zusatzinformation - {kind} {n}" for n in range(1, 21) for kind in ("Art", "Inhalt")),
    "Stück", "Gewicht", "Zahlweise", "Forderungsart", "Veranlagungsjahr", "Zugeordnete Fälligkeit", "Skontotyp",
    "Auftragsnummer", "Buchungstyp", "USt-Schlüssel (Anzahlungen)", "EU-Mitgliedstaat (Anzahlungen)",
    "Sachverhalt L+L (Anzahlungen)", "EU-Steuersatz (Anzahlungen)", "Erlöskonto (Anzahlungen)", "Herkunft-Kz",
    "Buchungs GUID", "KOST-Datum", "SEPA-Mandatsreferenz", "Skontosperre", "Gesellschaftername",
    "Beteiligtennummer", "Identifikationsnummer", "Zeichnernummer", "Postensperre bis",
    "Bezeichnung SoBil-Sachverhalt", "Kennzeichen SoBil-Buchung", "Festschreibung", "Leistungsdatum",
    "Datum Zuord. Steuerperiode", "Fälligkeit", "Generalumkehr (GU)", "Steuersatz", "Land", "Abrechnungsreferenz",
    "BVV-Position", "EU-Land u. UStID (Ursprung)", "EU-Steuersatz (Ursprung)", "Abw. Skontokonto",
)

DEFAULT_REVENUE = {"19": "8400", "7": "8300", "exempt": "8100"}  # SKR03: Erlöse 19 %, 7 %, steuerfrei
DEFAULT_MONEY = {"cash": "1000", "card": "1360", "online": "1360", "transfer": "1200", "sepa": "1200",
                 "voucher": "1590"}  # SKR03: Kasse, Geldtransit, Bank, durchlaufende Posten (vouchers sold)


class DatevConfigError(ValueError):
    """hub.toml `[datev]` is wrong; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class DatevSettings:
    """`[datev]` of hub.toml: who the file is for and which accounts get what."""

    consultant_number: int | None = None  # Beraternummer (1001-9999999)
    client_number: int | None = None  # Mandantennummer (1-99999)
    fiscal_year_start: int = 1  # month the fiscal year starts
    account_length: int = 4  # Sachkontenlänge (4-8)
    chart: str = "03"  # SKR 03 or 04
    label: str = "Tessera"  # Bezeichnung of the batch (at most 30 characters)
    initials: str = ""  # Diktatkürzel (two letters or nothing)
    revenue: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_REVENUE))
    money: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MONEY))

    def require_numbers(self) -> tuple[int, int]:
        if self.consultant_number is None or self.client_number is None:
            raise Conflict("set the tax advisor's consultant_number and client_number in hub.toml [datev] first",
                           detail_de="Bitte zuerst Berater- und Mandantennummer in hub.toml [datev] eintragen")
        return self.consultant_number, self.client_number


_KEYS = {"consultant_number", "client_number", "fiscal_year_start", "account_length", "chart", "label", "initials",
         "revenue", "money"}
# keys that moved elsewhere: a hub.toml still naming one is told where the setting lives now
_MOVED = {"ticket_vat": "the VAT code of seat tickets is the organizer's invoicing setting ticket_vat_code "
                        "(PUT /api/v1/organizers/{id}/invoicing), which invoices and DATEV both follow; "
                        "remove datev.ticket_vat"}
DEFAULT_TICKET_VAT = InvoicingIn().ticket_vat_code  # a line whose organizer cannot be found


def _int(table: Mapping, key: str, low: int, high: int, source: str, default: int | None) -> int | None:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DatevConfigError(f"{source}: datev.{key} must be a whole number from {low} to {high}, not {value!r}")
    return value


def _accounts(table: Mapping, key: str, known: Iterable[str], defaults: dict[str, str], length: int,
              source: str) -> dict[str, str]:
    given = table.get(key, {})
    if not isinstance(given, dict):
        raise DatevConfigError(f"{source}: datev.{key} must be a table")
    known = tuple(known)
    out = dict(defaults)
    for name, account in given.items():
        if name not in known:
            raise DatevConfigError(f"{source}: unknown key datev.{key}.{name}; known: {', '.join(known)}")
        out[name] = account
    for name, account in out.items():
        if not isinstance(account, str) or not account.isascii() or not account.isdigit() or len(account) != length:
            raise DatevConfigError(f"{source}: datev.{key}.{name} must be an account of {length} digits "
                                   f"(as a string), not {account!r}")
    return out


def settings_from_dict(table: Any, source: str) -> DatevSettings:
    """Read and check `[datev]` (None: the defaults, which cannot export until the numbers are set)."""
    if table is None:
        return DatevSettings()
    if not isinstance(table, dict):
        raise DatevConfigError(f"{source}: [datev] must be a table")
    for key in table:
        if key in _MOVED:
            raise DatevConfigError(f"{source}: datev.{key} is no longer read: {_MOVED[key]}")
        if key not in _KEYS:
            raise DatevConfigError(f"{source}: unknown key datev.{key}; known: {', '.join(sorted(_KEYS))}")
    length = _int(table, "account_length", 4, 8, source, 4)
    chart = table.get("chart", "03")
    if chart not in ("03", "04"):
        raise DatevConfigError(f'{source}: datev.chart must be "03" or "04" (SKR), not {chart!r}')
    label = table.get("label", "Tessera")
    if not isinstance(label, str) or not 0 < len(label) <= 30 or not _encodable(label):
        raise DatevConfigError(f"{source}: datev.label must be 1 to 30 characters of Windows-1252")
    initials = table.get("initials", "")
    if not isinstance(initials, str) or not (initials == "" or (len(initials) == 2 and initials.isascii()
                                                                and initials.isalpha())):
        raise DatevConfigError(f"{source}: datev.initials must be two letters or empty")
    methods = [p.method for p in providers.all_providers() if p.method != "none"]
    return DatevSettings(
        consultant_number=_int(table, "consultant_number", 1001, 9_999_999, source, None),
        client_number=_int(table, "client_number", 1, 99_999, source, None),
        fiscal_year_start=_int(table, "fiscal_year_start", 1, 12, source, 1), account_length=length,
        chart=chart, label=label, initials=initials.upper(),
        revenue=_accounts(table, "revenue", RATES, DEFAULT_REVENUE, length, source),
        money=_accounts(table, "money", methods, DEFAULT_MONEY, length, source))


# --- what is booked ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Booking:
    """One line of the batch: *amount_cents* (> 0) on *account* at *side* (S debit, H credit),
    the same on *contra* at the other side."""

    amount_cents: int
    side: str
    account: str
    contra: str
    day: dt.date
    document: str
    text: str


def allocate(amount: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split *amount* (>= 0) in proportion to *weights* (>= 0), to the cent: the parts add up
    to *amount* exactly (largest remainder, ties to the first key). No weight: all to the first."""
    keys = list(weights)
    total = sum(weights.values())
    if total <= 0:
        return {keys[0]: amount} if keys else {}
    shares = {k: amount * weights[k] // total for k in keys}
    rest = amount - sum(shares.values())
    by_remainder = sorted(keys, key=lambda k: (-(amount * weights[k] % total), keys.index(k)))
    for k in by_remainder[:rest]:
        shares[k] += 1
    return shares


def payment_bookings(payment: Mapping, order_number: str, lines: Iterable[Mapping], customer: str | None,
                     config: DatevSettings) -> list[Booking]:
    """The bookings of one paid payment row of an order with *lines* (price_cents, vat_code: each
    line's code already decided, see `line_vat_codes`)."""
    amount = payment["amount_cents"]
    if amount == 0 or payment["method"] not in config.money:
        return []
    weights: dict[str, int] = {}
    for line in lines:
        code = line["vat_code"]
        weights[code] = weights.get(code, 0) + max(line["price_cents"], 0)
    if not weights:
        weights = {DEFAULT_TICKET_VAT: 0}
    label = providers.get(payment["method"]).label_de
    text = f"{label} {order_number}" + (f" {customer}" if customer else "")
    side = "S" if amount > 0 else "H"  # the money account: receipts debit it, refunds credit it
    day = local_day(payment["created_at"])
    return [Booking(part, side, config.money[payment["method"]], config.revenue[code], day, order_number, text)
            for code, part in allocate(abs(amount), weights).items() if part > 0]


def check_range(start: dt.date, end: dt.date, config: DatevSettings) -> None:
    """A batch covers at most a year, in order, inside one fiscal year (DATEV refuses more)."""
    for name, day in (("from", start), ("to", end)):
        if not FIRST_DAY <= day <= LAST_DAY:
            raise ValidationError(f"{name} must lie between {FIRST_DAY} and {LAST_DAY}", field=name,
                                  detail_de=f"Das Datum muss zwischen {FIRST_DAY:%d.%m.%Y} und {LAST_DAY:%d.%m.%Y} "
                                            "liegen")
    if end < start:
        raise ValidationError("the range ends before it starts", field="to",
                              detail_de="Der Zeitraum endet vor seinem Beginn")
    if fiscal_year_start(start, config) != fiscal_year_start(end, config):
        raise ValidationError("a DATEV batch lies within one fiscal year", field="to",
                              detail_de="Ein DATEV-Stapel liegt in einem Wirtschaftsjahr")


def fiscal_year_start(day: dt.date, config: DatevSettings) -> dt.date:
    month = config.fiscal_year_start
    year = day.year if day.month >= month else day.year - 1
    return dt.date(year, month, 1)


_PAID = """
SELECT p.id, p.order_id, p.method, p.amount_cents, p.created_at, o.number,
       c.first_name, c.last_name, c.company
FROM payments p JOIN orders o ON o.id = p.order_id LEFT JOIN customers c ON c.id = o.customer_id
WHERE p.state = 'paid' AND p.created_at >= ? AND p.created_at <= ?
ORDER BY p.created_at, p.id
"""

# a line on a live invoice (not cancelled) has the VAT code that invoice stated (seat tickets too)
_LIVE = "i.kind = 'invoice' AND NOT EXISTS (SELECT 1 FROM invoices x WHERE x.cancels_id = i.id)"
_LINES = f"""
SELECT l.kind, l.product_id, l.price_cents,
       COALESCE((SELECT il.vat_code FROM invoice_lines il JOIN invoices i ON i.id = il.invoice_id
                 WHERE il.order_line_id = l.id AND {_LIVE} LIMIT 1), l.vat_code) AS vat_code
FROM order_lines l WHERE l.order_id = ? ORDER BY l.position
"""
_INVOICES = f"SELECT i.number FROM invoices i WHERE i.order_id = ? AND {_LIVE} ORDER BY i.created_at, i.id"


def line_vat_codes(db: sqlite3.Connection, lines: Iterable[Mapping], ticket_vat: dict[str, str]) -> list[dict]:
    """*lines* with each one's VAT code: its own (or its live invoice's), else its organizer's
    `ticket_vat_code` (found per line kind as invoices find the issuer, `invoices.ORGANIZER_OF`),
    else the setting's default. *ticket_vat* caches organizer id -> code across one export."""
    out = []
    for line in lines:
        code = line["vat_code"]
        if not code:
            sql = ORGANIZER_OF.get(line["kind"])
            found = db.execute(sql, (line["product_id"],)).fetchone() if sql else None
            organizer = found["organizer_id"] if found else None
            if organizer and organizer not in ticket_vat:
                ticket_vat[organizer] = settings_of(db, organizer)["ticket_vat_code"]
            code = ticket_vat[organizer] if organizer else DEFAULT_TICKET_VAT
        out.append({"price_cents": line["price_cents"], "vat_code": code})
    return out


def bookings(db: sqlite3.Connection, start: dt.date, end: dt.date, config: DatevSettings) -> list[Booking]:
    """Every booking of the paid payment rows from *start* to *end* (days at the venues)."""
    check_range(start, end, config)
    out: list[Booking] = []
    ticket_vat: dict[str, str] = {}
    for row in db.execute(_PAID, (iso(day_start(start)), iso(day_end(end)))).fetchall():
        lines = line_vat_codes(db, db.execute(_LINES, (row["order_id"],)).fetchall(), ticket_vat)
        invoices = [r["number"] for r in db.execute(_INVOICES, (row["order_id"],))]
        document = invoices[0] if len(invoices) == 1 else row["number"]
        name = " ".join(p for p in (row["first_name"], row["last_name"]) if p) or row["company"] or None
        out.extend(payment_bookings(row, document, lines, name, config))
    return out


# --- the file ---------------------------------------------------------------------------------------------


def _encodable(text: str) -> bool:
    try:
        text.encode(ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def cp1252_text(text: str, limit: int) -> str:
    """*text* as Windows-1252 can hold it: one line, letters it lacks by their base letter
    (ő -> o, Ł -> L), what is still left by '?', at most *limit* characters."""
    text = " ".join(text.split()).translate(FALLBACK)
    out = []
    for char in text:
        if not _encodable(char):
            base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
            char = base if base and _encodable(base) else "?"
        out.append(char)
    return "".join(out)[:limit]


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _amount(cents: int) -> str:
    return f"{cents // 100},{cents % 100:02d}"


def header_line(config: DatevSettings, start: dt.date, end: dt.date, created: dt.datetime, exported_by: str) -> str:
    """The first line (31 fields) of the format description's Buchungsstapel."""
    consultant, client = config.require_numbers()
    local = created.astimezone(LOCAL_TZ)
    stamp = local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"
    fields = ['"EXTF"', "700", "21", '"Buchungsstapel"', str(FORMAT_VERSION), stamp, "", '"RE"',
              _quoted(cp1252_text(exported_by, 25)), '""', str(consultant), str(client),
              fiscal_year_start(start, config).strftime("%Y%m%d"), str(config.account_length),
              start.strftime("%Y%m%d"), end.strftime("%Y%m%d"), _quoted(config.label), _quoted(config.initials),
              "1", "0", "0", '"EUR"', "", '""', "", "", _quoted(config.chart), "", "", '""', '""']
    return ";".join(fields)


def booking_line(booking: Booking) -> str:
    document = "".join(c for c in booking.document if c in DOCUMENT_CHARS)[:DOCUMENT_MAX]
    fields = [""] * len(COLUMNS)
    fields[0] = _amount(booking.amount_cents)
    fields[1] = _quoted(booking.side)
    fields[2] = '"EUR"'
    fields[6] = booking.account
    fields[7] = booking.contra
    fields[9] = booking.day.strftime("%d%m")
    fields[10] = _quoted(document)
    fields[13] = _quoted(cp1252_text(booking.text, TEXT_MAX))
    return ";".join(fields)


def render(config: DatevSettings, start: dt.date, end: dt.date, rows: Iterable[Booking], created: dt.datetime,
           exported_by: str = "Tessera") -> bytes:
    """The batch file: header line, column names, the bookings; Windows-1252, CRLF."""
    lines = [header_line(config, start, end, created, exported_by), ";".join(COLUMNS)]
    lines.extend(booking_line(b) for b in rows)
    return ("\r\n".join(lines) + "\r\n").encode(ENCODING)


def export(db: sqlite3.Connection, config: DatevSettings, start: dt.date, end: dt.date, created: dt.datetime,
           exported_by: str = "Tessera") -> bytes:
    """The DATEV batch of the payments from *start* to *end*."""
    config.require_numbers()
    return render(config, start, end, bookings(db, start, end, config), created, exported_by)


def file_name(start: dt.date, end: dt.date) -> str:
    return f"EXTF_Buchungsstapel_{start:%Y%m%d}_{end:%Y%m%d}.csv"
