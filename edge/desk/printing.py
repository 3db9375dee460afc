"""The desk's printers (E6): receipts (ESC/POS) and cards (PDF) from the node's print queue.

`core.printing.print_queue` keeps the book: a job is queued in the transaction of the sale or card
that needs it. This module renders and sends jobs and marks them `printed` (a card job also
moves its card to `printed`, A8) or `failed` with the printer's own message. A printer that
is offline or out of paper never undoes a sale: the job waits for a retry from the
print-queue screen, and is retried automatically as soon as a later job of the same kind
gets through (the printer is evidently back).

Threads: rendering (ESC/POS, reportlab) and sending run in worker threads; every database
read and write happens on the event-loop thread, so the aiohttp handlers never wait for a
printer and the SQLite connection is only used from one thread.

Device configuration: `desk.toml` in the edge data folder (all keys optional)::

    [printers]
    receipt = "receipt-epson-tm-t20iii"   # receipt printer profile: name in firmware_profiles/ or a .toml path
    card = "card-printer-evolis-cups"     # card printer profile (firmware_profiles/card-printers/)
    layout = "museum-standard"            # card layout (card_layouts/)

    [receipt]                             # the receipt header; defaults come from the organizer in the replica
    organizer = "Museumsverbund Nordstadt e.V."
    address = ["Museumsufer 1", "28195 Bremen"]
    tax_id = "USt-IdNr. DE123456789"
    footer = ["Vielen Dank für Ihren Besuch!"]

Without the file (or without a printer key) the desk prints to simulated printers:
`receipt-sim-folder` and `card-printer-sim-folder`. A *relative* folder in a folder-type
profile is taken relative to the edge data folder (a service's working directory means
nothing), so receipts land in `<data>/var/printer-out/*.escpos` and cards in
`<data>/var/card-out/*.pdf`; such folders are created. Absolute folders are used as they
are and must exist (an unmounted hot-folder share is an error, not a silent local copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
import tomllib
from dataclasses import dataclass
from pathlib import Path

import msgspec
from msgspec import Struct

from core.base.clock import parse_iso
from core.base.documents import PrintDocument
from core.base.errors import NotFound
from core.base.money import format_eur
from core.cards.trusted_time import TrustedClock
from core.printing import print_queue
from core.printing.card_layout import CardFace, Layout, face_from_card, load_layout, render_cards
from core.printing.receipts import Credit, Payment, Receipt, ReceiptLine, Voucher, receipt_document
from core.printing.ticket_slips import tickets_document
from core.sales import orders
from core.subscriptions import print_data, voucher_print
from devices.printers.card import CardPrinter, CardPrinterProfile, PrintError, load_card_printer, open_card_printer
from devices.printers.receipt import (
    FolderConnection,
    PrinterError,
    PrinterProfile,
    ReceiptPrinter,
    columns,
    load_printer,
    render,
)

log = logging.getLogger("tessera.printing")
DESK_CONFIG = "desk.toml"
DEFAULT_RECEIPT_PRINTER = "receipt-sim-folder"
DEFAULT_CARD_PRINTER = "card-printer-sim-folder"
SWEEP_S = 60.0  # queued jobs (e.g. left from before a restart) are picked up at least this often
PRINTED_KINDS = ("receipt", "card")  # carriers (A4 mail sheets) are printed at the hub's office


class PrinterSettings(Struct, forbid_unknown_fields=True, frozen=True):
    receipt: str = DEFAULT_RECEIPT_PRINTER
    card: str = DEFAULT_CARD_PRINTER
    layout: str = "museum-standard"


class ReceiptSettings(Struct, forbid_unknown_fields=True, frozen=True):
    organizer: str | None = None
    address: list[str] | None = None
    tax_id: str | None = None
    footer: list[str] = msgspec.field(default_factory=lambda: ["Vielen Dank für Ihren Besuch!"])


class WebSettings(Struct, forbid_unknown_fields=True, frozen=True):
    # host names the desk's screens are opened by, besides loopback and the machine's name
    # (a tablet that opens http://kasse-2.example:8081 needs "kasse-2.example" here)
    hosts: list[str] = msgspec.field(default_factory=list)


class DeskConfig(Struct, forbid_unknown_fields=True, frozen=True):
    printers: PrinterSettings = PrinterSettings()
    receipt: ReceiptSettings = ReceiptSettings()
    web: WebSettings = WebSettings()


def load_desk_config(data_dir: Path) -> DeskConfig:
    """`desk.toml` of the data folder, or the defaults; a mistake is one ValueError naming the file."""
    path = Path(data_dir) / DESK_CONFIG
    if not path.exists():
        return DeskConfig()
    try:
        return msgspec.convert(tomllib.loads(path.read_text()), DeskConfig, strict=True)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def receipt_profile(name: str, data_dir: Path) -> PrinterProfile:
    """The receipt printer profile; a relative folder connection is put inside the data folder."""
    profile = load_printer(name)
    conn = profile.connection
    if isinstance(conn, FolderConnection) and not Path(conn.folder).is_absolute():
        conn = msgspec.structs.replace(conn, folder=str(Path(data_dir) / conn.folder))
        profile = msgspec.structs.replace(profile, connection=conn)
    return profile


def card_printer(profile: CardPrinterProfile, data_dir: Path) -> CardPrinter:
    """The card printer; a relative hot folder lives inside the data folder and is created."""
    if profile.driver == "folder" and profile.folder and not Path(profile.folder.path).is_absolute():
        folder = Path(data_dir) / profile.folder.path
        folder.mkdir(parents=True, exist_ok=True)
        return open_card_printer(profile, folder=folder)
    return open_card_printer(profile)


# --- what a receipt says -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptJob:
    """Everything needed to render one receipt, read from the database on the loop thread."""

    receipt: Receipt
    vouchers: tuple[Voucher, ...]


def _organizer(db: sqlite3.Connection, product_id: str | None) -> dict | None:
    """The organizer of an annual or a subscription product (else the first active one)."""
    for table in ("annual_products", "subscription_products"):
        row = db.execute(f"SELECT o.* FROM {table} p JOIN organizers o ON o.id = p.organizer_id "
                         "WHERE p.id = ?", (product_id,)).fetchone() if product_id else None
        if row:
            return row
    return db.execute("SELECT * FROM organizers WHERE active = 1 ORDER BY name LIMIT 1").fetchone()


def _header(db: sqlite3.Connection, settings: ReceiptSettings, product_id: str | None) -> tuple[str, tuple, str]:
    """Organizer name, address lines and tax id: desk.toml first, else the organizer in the replica."""
    org = _organizer(db, product_id) or {}
    name = settings.organizer or org.get("name") or "Tessera"
    if settings.address is not None:
        address = tuple(settings.address)
    else:
        address = tuple(x for x in (org.get("street"), f"{org.get('postcode', '')} {org.get('town', '')}".strip())
                        if x)
    if settings.tax_id is not None:
        tax_id = settings.tax_id
    elif org.get("vat_id"):
        tax_id = f"USt-IdNr. {org['vat_id']}"
    else:
        tax_id = f"St.-Nr. {org['tax_number']}" if org.get("tax_number") else ""
    return name, address, tax_id


def _lines(db: sqlite3.Connection, items: list[dict]) -> tuple[ReceiptLine, ...]:
    """One line per product, kind and price, in the order of the items; a subscription one line
    per subscription, saying its tier and holder."""
    grouped: dict[tuple, int] = {}
    for item in items:
        name = item["product"] or item["product_id"]
        if item["kind"] == "subscription":
            name = _subscription_line(db, item)
        vat = item["vat_code"] or print_data.redeemed_ticket_vat(db, item["id"])
        key = (name, item["kind"], item["price_cents"], vat, item["id"] if item["kind"] ==
               "subscription" else None)
        grouped[key] = grouped.get(key, 0) + 1
    return tuple(ReceiptLine(f"Gutschein {product}" if kind == "voucher" else product, n, price, vat)
                 for (product, kind, price, vat, _), n in grouped.items())


def _subscription_line(db: sqlite3.Connection, item: dict) -> str:
    """"Abo ABO-2026-00012 Abo-Ring A, Schüler/Studierende (Abo-Ring A), Greta Wolf, 8 Vorst.": the
    receipt names what was sold, for whom, at which tier (print_data's own wording)."""
    row = db.execute("SELECT id FROM subscriptions WHERE line_id = ?", (item["id"],)).fetchone()
    if row is None:
        return item["product"] or item["product_id"]
    sub = print_data.subscription_row(db, row["id"])
    if sub["product_kind"] == "voucher":
        got = db.execute("SELECT count(*) AS n, max(value_cents) AS value FROM choice_vouchers "
                         "WHERE subscription_id = ?", (sub["id"],)).fetchone()
        what = f"{got['n']} x {format_eur(got['value'] or 0)} Wahlgutscheine"
    else:
        what = f"{len(print_data.seats(db, sub['line_id']))} Vorst."
    return (f"Abo {sub['number']} {sub['product_name']}, {sub['tier_name'] or print_data.FULL_PRICE_LABEL}, "
            f"{print_data.holder_name(sub)}, {what}")


def build_receipt(db: sqlite3.Connection, node: dict, settings: ReceiptSettings, order_id: str) -> ReceiptJob:
    """The receipt of a desk order: lines per product, payment, operator, node, sale number, vouchers
    (an annual voucher's, and the choice vouchers of a voucher subscription, each a slip with its QR)."""
    view = orders.order_view(db, order_id)
    items = view["items"]
    # choice vouchers paid part of a redeemed ticket (credits); the till's payment is the other row
    credits = tuple(Credit(f"Wahlgutschein {p['reference']}", p["amount_cents"]) for p in view["payments"]
                    if p["method"] == "voucher")
    paid = next((p for p in view["payments"] if p["method"] != "voucher"), {})
    if paid.get("method") == "card":
        payment = Payment("card", terminal_ref=paid.get("reference") or "")
    else:
        payment = Payment("cash", given_cents=paid.get("given_cents"))
    name, address, tax_id = _header(db, settings, items[0]["product_id"] if items else None)
    receipt = Receipt(organizer=name, address=address, tax_id=tax_id, node=node["name"],
                      operator=view["operator"] or "-", sale_number=view["number"],
                      time=parse_iso(view["created_at"]), lines=_lines(db, items), payment=payment,
                      footer=tuple(settings.footer), credits=credits)
    vouchers = tuple(Voucher(product=i["product"] or "", number=i["card"]["number"], code=i["card"]["code"])
                     for i in items if i["kind"] == "voucher" and i["card"])
    choice = voucher_print.receipt_vouchers(db, order_id) if any(i["kind"] == "subscription" for i in items) else []
    if None in choice:
        raise PrintError(f"sale {view['number']}: a choice voucher's code is not on this desk; print it at the "
                         "office (voucher PDF)")
    return ReceiptJob(receipt, vouchers + tuple(choice))


def render_receipt(job: ReceiptJob, profile: PrinterProfile, tickets: tuple[CardFace, ...] = ()) -> bytes:
    """The receipt, then one voucher slip (with its QR code) per voucher and one ticket slip per
    single ticket, as one ESC/POS job: core lays it out for the printer's width, the driver encodes
    it. Pure, runs in a worker thread."""
    width = columns(profile)
    document = receipt_document(job.receipt, width, job.vouchers)
    if tickets:
        document = PrintDocument(width, document.slips + tickets_document(tickets, width).slips)
    return render(document, profile)


# --- the worker ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    job_id: str
    kind: str
    state: str  # printed | failed | queued (not handled here)
    error: str | None = None
    target: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class DeskPrinting:
    """Prints the node's queued receipt and card jobs, one at a time per printer, and
    remembers each printer's last error for the status."""

    def __init__(self, db: sqlite3.Connection, node: dict, data_dir: Path, clock: TrustedClock,
                 config: DeskConfig | None = None) -> None:
        self.db, self.node, self.data_dir, self.clock = db, node, Path(data_dir), clock
        self.config = config or load_desk_config(data_dir)
        self.receipt_profile = receipt_profile(self.config.printers.receipt, self.data_dir)
        self.receipts = ReceiptPrinter(self.receipt_profile)
        self.card_profile = load_card_printer(self.config.printers.card)
        self.cards: CardPrinter | None = None  # opened on first use (may create its folder)
        self.layout: Layout = load_layout(self.config.printers.layout)
        self._layouts: dict[str, Layout] = {}  # a subscription card's layout by card kind, loaded on first use
        self.errors: dict[str, str] = {"receipt": "", "card": ""}
        # one lock per printer: a job is never sent twice concurrently, and a slow card
        # printer never holds up the next customer's receipt
        self._locks = {"receipt": asyncio.Lock(), "card": asyncio.Lock()}
        self._wake = asyncio.Event()

    def status(self) -> dict:
        return {"receipt_printer": self.receipt_profile.name, "card_printer": self.card_profile.name,
                "errors": {k: v for k, v in self.errors.items() if v}}

    def kick(self) -> None:
        """Ask the background loop to print what is queued."""
        self._wake.set()

    async def run(self) -> None:
        """Forever: print queued jobs when kicked, and every SWEEP_S."""
        while True:
            self._wake.clear()
            try:
                await self.print_queued()
            except Exception:  # a bug must not stop the desk's printing for good
                log.exception("print worker round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SWEEP_S)

    async def print_queued(self) -> list[Outcome]:
        jobs = [j for j in print_queue.open_jobs(self.db) if j["state"] == "queued" and j["kind"] in PRINTED_KINDS]
        return [await self.print_job(j["id"]) for j in jobs]

    async def print_jobs(self, job_ids: list[str]) -> list[Outcome]:
        return [await self.print_job(job_id) for job_id in job_ids]

    async def print_job(self, job_id: str) -> Outcome:
        """Print one job now (unless it printed meanwhile); never raises for a printer fault."""
        first = self.db.execute("SELECT kind, ref_id FROM print_jobs WHERE id = ?", (job_id,)).fetchone()
        device = printer_of(self.db, first) if first else "receipt"
        async with self._locks[device]:
            job = self.db.execute("SELECT * FROM print_jobs WHERE id = ?", (job_id,)).fetchone()
            if job is None or job["state"] == "printed" or job["kind"] not in PRINTED_KINDS:
                return Outcome(job_id, job["kind"] if job else "?", job["state"] if job else "missing")
            try:
                target = await (self._receipt(job) if job["kind"] == "receipt" else self._card(job))
            except (PrinterError, PrintError, OSError) as exc:
                message = str(exc) or type(exc).__name__
                print_queue.mark_failed(self.db, [job_id], message)
                self.errors[device] = message
                log.warning("print job %s (%s) failed: %s", job_id, job["kind"], message)
                return Outcome(job_id, job["kind"], "failed", message)
            print_queue.mark_printed(self.db, self.node, [job_id], self.clock.now(),
                                     batch_id=None if target else "superseded")
            if self.errors[device]:
                self.errors[device] = ""
                self._retry_failed(device)
            return Outcome(job_id, job["kind"], "printed", target=target)

    async def print_with_slips(self, receipt_job: str, slip_jobs: list[str]) -> list[Outcome]:
        """A sale's receipt and its single tickets as ONE receipt-printer job (the receipt, then a
        slip per ticket): one render, one write and one commit for all, since a ring of eight
        dates would otherwise be nine printer round trips before the customer has an answer.
        A fault marks them all failed; a retry prints each on its own (`print_job`)."""
        if not slip_jobs:
            return [await self.print_job(receipt_job)]
        async with self._locks["receipt"]:
            jobs = [self.db.execute("SELECT * FROM print_jobs WHERE id = ?", (j,)).fetchone()
                    for j in (receipt_job, *slip_jobs)]
            if any(j is None or j["state"] == "printed" for j in jobs):
                raise RuntimeError("print_with_slips() is for the jobs a sale has just queued")
            ids = [j["id"] for j in jobs]
            try:
                data = build_receipt(self.db, self.node, self.config.receipt, jobs[0]["ref_id"])
                known: dict = {}  # the sale's subscriptions and seats, read once for all its tickets
                faces = tuple(self._ticket_face(j, known) for j in jobs[1:])
                payload = await asyncio.to_thread(render_receipt, data, self.receipt_profile, faces)
                target = (await self.receipts.print(payload, job=f"receipt-{data.receipt.sale_number}")).target
            except (PrinterError, PrintError, OSError) as exc:
                message = str(exc) or type(exc).__name__
                print_queue.mark_failed(self.db, ids, message)
                self.errors["receipt"] = message
                log.warning("receipt %s with %d tickets failed: %s", receipt_job, len(slip_jobs), message)
                return [Outcome(j["id"], j["kind"], "failed", message) for j in jobs]
            print_queue.mark_printed(self.db, self.node, ids, self.clock.now())
            if self.errors["receipt"]:
                self.errors["receipt"] = ""
                self._retry_failed("receipt")
            return [Outcome(j["id"], j["kind"], "printed", target=target) for j in jobs]

    def _ticket_face(self, job: dict, known: dict | None = None) -> CardFace:
        card = self.db.execute("SELECT * FROM cards WHERE id = ?", (job["ref_id"],)).fetchone()
        if card is None or card["kind"] != "single" or card["issue"] != job["card_issue"]:
            raise PrintError(f"job {job['id']} is not the current issue of a single ticket")
        try:
            return print_data.face_for_card(self.db, card, known)
        except NotFound as exc:
            raise PrintError(exc.detail) from None

    def _retry_failed(self, device: str) -> None:
        """The printer is back: its failed jobs go back in the queue for the background loop."""
        failed = [j["id"] for j in print_queue.open_jobs(self.db) if j["state"] == "failed" and
                  j["kind"] in PRINTED_KINDS and printer_of(self.db, j) == device]
        if failed:
            print_queue.retry(self.db, failed)
            self.kick()

    async def _receipt(self, job: dict) -> str:
        data = build_receipt(self.db, self.node, self.config.receipt, job["ref_id"])
        payload = await asyncio.to_thread(render_receipt, data, self.receipt_profile)
        result = await self.receipts.print(payload, job=f"receipt-{data.receipt.sale_number}")
        return result.target

    async def _card(self, job: dict) -> str | None:
        """Render and send the card; None (nothing printed) when the card was re-issued since
        the job was queued: the newer issue has its own job, an old code must not be printed."""
        card = self.db.execute("SELECT c.*, p.name AS product_name FROM cards c LEFT JOIN annual_products p "
                               "ON p.id = c.product_id WHERE c.id = ?", (job["ref_id"],)).fetchone()
        if card is None:
            raise PrintError(f"card {job['ref_id']} is not in this node's database")
        if card["issue"] != job["card_issue"]:
            return None
        if card["kind"] in print_data.LAYOUTS:
            return await self._subscription_card(card)
        name, _, _ = _header(self.db, self.config.receipt, card["product_id"])
        face = face_from_card(card, product=card["product_name"] or "", organizer=name)
        return await self._card_pdf(await asyncio.to_thread(render_cards, [face], self.layout), card)

    async def _subscription_card(self, card: dict) -> str:
        """A season pass goes to the card printer in its own layout; a single ticket is a slip with
        its QR code on the receipt printer (the customer takes it with the receipt)."""
        try:
            face = print_data.face_for_card(self.db, card)
        except NotFound as exc:
            raise PrintError(exc.detail) from None
        if card["kind"] == "single":
            document = tickets_document([face], columns(self.receipt_profile))
            payload = await asyncio.to_thread(render, document, self.receipt_profile)
            return (await self.receipts.print(payload, job=f"ticket-{card['number']}")).target
        layout = self._layouts.get(card["kind"]) or self._layouts.setdefault(
            card["kind"], load_layout(print_data.LAYOUTS[card["kind"]]))
        return await self._card_pdf(await asyncio.to_thread(render_cards, [face], layout), card)

    async def _card_pdf(self, pdf: bytes, card: dict) -> str:
        if self.cards is None:
            self.cards = card_printer(self.card_profile, self.data_dir)
        return await asyncio.to_thread(self.cards.print_pdf, pdf, f"card-{card['number']}")

    def close(self) -> None:
        self.receipts.close()


def printer_of(db: sqlite3.Connection, job: dict) -> str:
    """Which printer a job goes to: receipts and a subscription's single tickets (slips) the receipt
    printer, every other card the card printer."""
    if job["kind"] != "card":
        return "receipt"
    card = db.execute("SELECT kind FROM cards WHERE id = ?", (job["ref_id"],)).fetchone()
    return "receipt" if card and card["kind"] == "single" else "card"


def by_printer(db: sqlite3.Connection, job_ids: list[str]) -> dict[str, list[str]]:
    """The jobs split by the printer they go to (`printer_of`), each list in the order given."""
    out: dict[str, list[str]] = {"receipt": [], "card": []}
    for job_id in job_ids:
        job = db.execute("SELECT kind, ref_id FROM print_jobs WHERE id = ?", (job_id,)).fetchone()
        if job:
            out[printer_of(db, job)].append(job_id)
    return out


def job_ids_for(db: sqlite3.Connection, ref_ids: list[str]) -> list[str]:
    """Open jobs of these orders/cards, oldest first (what a sale or exchange just queued)."""
    if not ref_ids:
        return []
    marks = ", ".join("?" * len(ref_ids))
    return [r["id"] for r in db.execute(f"SELECT id FROM print_jobs WHERE ref_id IN ({marks}) AND state <> 'printed' "
                                        "ORDER BY created_at, id", ref_ids)]
