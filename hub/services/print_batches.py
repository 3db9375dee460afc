"""Print batches at the hub (A7): the queued card and carrier jobs become one PDF for the card printer.

Cards personalized at the hub (phone sales, the shop's personalization link, staff on the customer's
behalf) get a print job in the same transaction (`core.printing.print_queue`). A *batch* takes the queued
jobs of one kind, oldest first, renders one PDF - `card`: one CR80 card per page in the configured
layout; `carrier`: one A4 mail carrier per card with the customer's postal address - and hands it to
the card printer. Then the jobs are marked printed (their cards move to `printed`, A8) or failed
with the printer's own words (cards stay `personalized`). The hub keeps a copy of each batch's PDF in
<data>/print-batches/<batch id>.pdf for the office to download again (`batch_pdf`). A failed job waits
until the office retries it (`POST /print-jobs/retry`, after fixing the printer), as at the desks:
a broken printer is not fed the same jobs every round, and a job that can never print (its card revoked
since) cannot crowd out the new ones.

Rendering 1000 cards takes seconds, so it runs in a thread (`asyncio.to_thread`). The SQLite
connection belongs to the event loop's thread: rows are read before the thread starts and results are
written after it returns. One lock per hub keeps two batches (the worker's and an office request) from
taking the same jobs while a PDF is being made.

Settings: an optional `[print]` section in `hub.toml` in the hub's data folder::

    [print]
    layout = "museum-standard"       # a name in card_layouts/ or a path to a layout .toml
    card_printer = "card-printer-evolis-cups"   # a card printer profile (name or .toml path);
                                     # default: a folder printer writing into <data>/print-out/
    auto_batch_seconds = 60          # > 0: the PrintWorker makes a batch this often; 0 (default): off
    batch_size = 200                 # jobs per batch the worker takes (1..1000)
    pass_layout = "subscription-pass"       # a subscription's season pass (card kind 2, CR80)
    ticket_layout = "subscription-ticket"   # a subscription's single tickets (card kind 3, A6)

A batch may hold annual cards, passes and tickets together: each page has its own layout's size.

hub.toml is read once, when the app is made (`hub/settings.py`; `SECTION` declares `[print]` there):
a changed layout or printer takes effect when the hub is restarted. A broken `[print]` section
does not stop the hub: every batch answers 409 with its message and prints nothing, and the worker
does not start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from aiohttp import web

from core.base.clock import iso, utcnow
from core.base.errors import Conflict, NotFound
from core.base.ids import uuid7
from core.base.node import this_node
from core.base.storage import transaction
from core.printing import print_queue
from core.printing.card_layout import (
    CardFace,
    Layout,
    LayoutError,
    face_from_card,
    load_layout,
    render_cards,
    render_carrier_sheet,
    render_carrier_sheets,
    render_pages,
)
from core.subscriptions import print_data
from devices.printers.card import CardPrinter, FolderPrinter, PrintError, load_card_printer, open_card_printer
from devices.profiles import ProfileError
from hub.services import leases
from hub.services.worker import Worker
from hub.settings import SETTINGS_FILE, HubContext, Section
from hub.web.offload import off_loop

log = logging.getLogger("tessera.print")
T = TypeVar("T")

DEFAULT_LAYOUT = "museum-standard"
PASS_LAYOUT, TICKET_LAYOUT = print_data.LAYOUTS["subscription"], print_data.LAYOUTS["single"]
OUTPUT_FOLDER = "print-out"
KEPT_FOLDER = "print-batches"  # the hub's own copy of each batch's PDF, named <batch id>.pdf
MAX_BATCH = 1000
DEFAULT_BATCH = 200
STOP_WAIT_S = 120.0  # a batch in progress may finish at shutdown, so no PDF is sent but left unrecorded
# How long a batch may take before another hub process may print the same jobs (hub/services/leases.py):
# far longer than rendering 1000 cards and handing them to the printer takes.
LEASE = dt.timedelta(minutes=15)
BatchKind = Literal["card", "carrier"]


class PrintBusy(Conflict):
    """Another hub process on the same database is printing a batch of this kind right now."""

    title = "A print batch is being made"


class PrintConfigError(Conflict):
    """The `[print]` settings, the layout or the printer profile are unusable; nothing was printed."""

    title = "Printing is not set up correctly"


@dataclass(frozen=True, slots=True)
class PrintSettings:
    layout: str = DEFAULT_LAYOUT
    card_printer: str | None = None  # None: folder printer into <data>/print-out/
    auto_batch_seconds: float = 0.0
    batch_size: int = DEFAULT_BATCH
    pass_layout: str = PASS_LAYOUT
    ticket_layout: str = TICKET_LAYOUT


def settings_from_dict(section: Any, source: str = SETTINGS_FILE) -> PrintSettings:
    """`[print]` of hub.toml, strictly: an unknown key or a wrong type is one error naming the file
    and the key. Defaults when the file or the section is absent (None)."""
    if section is None:
        return PrintSettings()
    if not isinstance(section, dict):
        raise PrintConfigError(f"{source}: [print] must be a table")
    known = {"layout", "card_printer", "auto_batch_seconds", "batch_size", "pass_layout", "ticket_layout"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise PrintConfigError(f"{source}: [print] has unknown key(s) {', '.join(unknown)}; "
                               f"known: {', '.join(sorted(known))}")
    for key in ("layout", "card_printer", "pass_layout", "ticket_layout"):
        if key in section and (not isinstance(section[key], str) or not section[key].strip()):
            raise PrintConfigError(f"{source}: [print] {key} must be a non-empty string")
    seconds = section.get("auto_batch_seconds", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 86_400:
        raise PrintConfigError(f"{source}: [print] auto_batch_seconds must be a number 0..86400, not {seconds!r}")
    size = section.get("batch_size", DEFAULT_BATCH)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH:
        raise PrintConfigError(f"{source}: [print] batch_size must be a whole number 1..{MAX_BATCH}, not {size!r}")
    return PrintSettings(layout=section.get("layout", DEFAULT_LAYOUT), card_printer=section.get("card_printer"),
                         auto_batch_seconds=float(seconds), batch_size=size,
                         pass_layout=section.get("pass_layout", PASS_LAYOUT),
                         ticket_layout=section.get("ticket_layout", TICKET_LAYOUT))


SECTION = Section("print", settings_from_dict, PrintConfigError)


# --- what a batch prints ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    """One job, ready to render without the database (the render thread must not touch it)."""

    job_id: str
    card_id: str
    face: CardFace
    address: tuple[str, ...] = ()
    layout: Layout | None = None  # None: the batch's (annual) layout; a subscription's pass or ticket has its own


@dataclass(frozen=True, slots=True)
class Refused:
    job_id: str
    card_id: str
    card_number: str | None
    error: str


@dataclass(frozen=True, slots=True)
class Printer:
    name: str  # what print_batches.printer records
    device: CardPrinter


def open_printer(settings: PrintSettings, data_dir: Path, kind: BatchKind) -> Printer:
    """The configured printer, or the default folder printer (which creates its folder)."""
    if settings.card_printer is None:
        folder = Path(data_dir) / OUTPUT_FOLDER
        folder.mkdir(mode=0o750, exist_ok=True)
        return Printer(f"folder:{folder}", FolderPrinter(folder, prefix=f"{kind}-"))
    try:
        profile = load_card_printer(settings.card_printer)
    except (ProfileError, OSError) as exc:
        raise PrintConfigError(f"card printer {settings.card_printer!r}: {exc}") from None
    return Printer(profile.name or settings.card_printer, open_card_printer(profile))


def _layout(settings: PrintSettings) -> Layout:
    try:
        return load_layout(settings.layout)
    except LayoutError as exc:
        raise PrintConfigError(str(exc)) from None


def kind_layouts(settings: PrintSettings) -> dict[str, Layout]:
    """The layouts of a subscription's cards by card kind (pass, single ticket)."""
    try:
        return {"subscription": load_layout(settings.pass_layout), "single": load_layout(settings.ticket_layout)}
    except LayoutError as exc:
        raise PrintConfigError(str(exc)) from None


def address_lines(customer: dict) -> tuple[str, ...]:
    """The postal address as DIN 5008 wants it in the window (country only when not Germany)."""
    name = " ".join(p for p in (customer["salutation"], customer["first_name"], customer["last_name"]) if p)
    lines = [customer["company"], name, customer["street"], f"{customer['postcode']} {customer['town']}"]
    if customer["country"].upper() != "DE":
        lines.append(customer["country"].upper())
    return tuple(line for line in lines if line and line.strip())


def queued_jobs(db: sqlite3.Connection, kind: BatchKind, limit: int) -> list[dict]:
    """Queued jobs of *kind*, oldest first (failed ones wait for a retry)."""
    return db.execute("SELECT * FROM print_jobs WHERE state = 'queued' AND kind = ? ORDER BY created_at, id LIMIT ?",
                      (kind, limit)).fetchall()


def collect(db: sqlite3.Connection, kind: BatchKind, limit: int, layout: Layout,
            layouts: Mapping[str, Layout] | None = None) -> tuple[list[Piece], list[Refused]]:
    """The queued jobs of *kind*, oldest first, split into what can be printed and what cannot (a card
    revoked or re-issued since the job was queued, a carrier without a postal address). *layouts*:
    the layouts of a subscription's passes and tickets by card kind (`kind_layouts`); without them
    only annual cards print."""
    pieces: list[Piece] = []
    refused: list[Refused] = []
    known: dict = {}  # subscriptions and their seats, read once for all their cards in the batch
    for job in queued_jobs(db, kind, limit):
        card = db.execute("SELECT c.*, p.name AS product, o.name AS organizer FROM cards c "
                          "LEFT JOIN annual_products p ON p.id = c.product_id "
                          "LEFT JOIN organizers o ON o.id = p.organizer_id WHERE c.id = ?",
                          (job["ref_id"],)).fetchone()
        problem = print_queue.unprintable(card, job, print_queue.PRINTED_KINDS if layouts else ("annual",))
        address: tuple[str, ...] = ()
        if problem is None and kind == "carrier":
            customer = db.execute("SELECT * FROM customers WHERE id = ?", (card["customer_id"],)).fetchone() \
                if card["customer_id"] else None
            address = address_lines(customer) if customer else ()
            problem = None if address else "the card has no customer with a postal address for the carrier"
        if problem is not None:
            refused.append(Refused(job["id"], job["ref_id"], card["number"] if card else None, problem))
            continue
        if layouts and card["kind"] in layouts:
            try:
                face = print_data.face_for_card(db, card, known)
            except NotFound as exc:
                refused.append(Refused(job["id"], job["ref_id"], card["number"], exc.detail))
                continue
            pieces.append(Piece(job["id"], card["id"], face, address, layouts[card["kind"]]))
            continue
        photo = _photo(db, card["id"]) if layout.photo and card["has_photo"] else None
        face = face_from_card(card, product=card["product"] or "", organizer=card["organizer"] or "", photo=photo)
        pieces.append(Piece(job["id"], card["id"], face, address))
    return pieces, refused


def _photo(db: sqlite3.Connection, card_id: str) -> bytes | None:
    row = db.execute("SELECT data FROM card_photos WHERE card_id = ?", (card_id,)).fetchone()
    return row["data"] if row else None


def render(kind: BatchKind, pieces: Sequence[Piece], layout: Layout) -> bytes:
    """One PDF for the whole batch (pure: no database, safe in a worker thread)."""
    if all(p.layout is None for p in pieces):  # annual cards only: one page size
        if kind == "card":
            return render_cards([p.face for p in pieces], layout)
        return render_carrier_sheet([(p.face, p.address) for p in pieces], layout)
    if kind == "card":
        return render_pages([(p.face, p.layout or layout) for p in pieces], f"Cards ({layout.name})")
    return render_carrier_sheets([(p.face, p.address, p.layout or layout) for p in pieces],
                                 f"Card carriers ({layout.name})")


def render_and_send(kind: BatchKind, pieces: Sequence[Piece], layout: Layout, printer: Printer) -> tuple[str, bytes]:
    """Runs in a thread: render, then hand the PDF to the printer. Returns where it went and the PDF."""
    pdf = render(kind, pieces, layout)
    return printer.device.print_pdf(pdf, job=f"{kind}s-{len(pieces)}"), pdf


# --- the hub's copy of a batch's PDF ---------------------------------------------------------------------


def kept_pdf_path(data_dir: Path, batch_id: str) -> Path:
    """Where the hub keeps a batch's PDF. Why a copy: a hot folder's software deletes what it took and
    CUPS keeps nothing, yet the office downloads a batch again (a jammed card, a second printer). The
    name comes from the batch id parsed as a UUID, never from the text given: `../x` is NotFound."""
    try:
        name = str(uuid.UUID(batch_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"print batch {batch_id!r} does not exist") from None
    return Path(data_dir) / KEPT_FOLDER / f"{name}.pdf"


def keep_pdf(data_dir: Path, batch_id: str, pdf: bytes) -> None:
    """Write the batch's copy (whole or not at all: a temporary file renamed into place)."""
    final = kept_pdf_path(data_dir, batch_id)
    final.parent.mkdir(mode=0o750, exist_ok=True)
    part = final.with_suffix(".part")
    part.write_bytes(pdf)
    part.replace(final)


def batch_pdf(db: sqlite3.Connection, data_dir: Path, batch_id: str) -> bytes:
    """The PDF of a batch the hub made (NotFound for an unknown id or a batch made before copies were kept)."""
    path = kept_pdf_path(data_dir, batch_id)
    row = db.execute("SELECT id FROM print_batches WHERE id = ?", (path.stem,)).fetchone()
    if row is None or not path.is_file():
        raise NotFound(f"print batch {batch_id!r} has no PDF on this hub")
    return path.read_bytes()


# --- running a batch -------------------------------------------------------------------------------------


class PrintDesk:
    """The hub's printing: batches never overlap, and the optional worker. Within this process an
    asyncio lock orders them; across hub processes on one database a lease per kind
    (`hub/services/leases.py`): a batch reads the queued jobs, renders for seconds outside the
    database and only then marks them printed, so two processes at once would print the same cards."""

    def __init__(self, hub: HubContext, app: web.Application | None = None) -> None:
        self.hub = hub
        self.db = hub.db
        self.app = app
        self.lock = asyncio.Lock()
        self.worker: PrintWorker | None = None
        self.holder = leases.holder_id()

    async def _in_db(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """*work*(db): the lease, the reads and the marks take or may wait for the write lock, so on
        PostgreSQL they run in the hub's executor on a pooled session (hub/web/offload.py)."""
        return work(self.db) if self.app is None else await off_loop(self.app, self.db, work)

    async def batch(self, kind: BatchKind, limit: int = DEFAULT_BATCH) -> dict:
        """Print up to *limit* open jobs of *kind* as one PDF; returns the batch summary.
        PrintBusy while another hub process makes a batch of *kind*."""
        async with self.lock:
            self.hub.section(SECTION)  # a broken [print]: PrintConfigError before anything is written
            name = f"print-batch-{kind}"
            now = utcnow()
            if not await self._in_db(lambda db: leases.take(db, name, self.holder, now, LEASE)):
                raise PrintBusy(f"another hub process is making a {kind} batch; try again in a moment",
                                detail_de="Ein anderer Hub-Prozess druckt gerade; bitte gleich noch einmal versuchen")
            try:
                return await self._batch(kind, limit)
            finally:
                await self._in_db(lambda db: leases.give_back(db, name, self.holder))

    async def _batch(self, kind: BatchKind, limit: int) -> dict:
        settings = self.hub.section(SECTION)  # a broken [print]: PrintConfigError (409), nothing written
        layout = _layout(settings)
        printer = open_printer(settings, self.hub.data_dir, kind)

        def collected(db: sqlite3.Connection) -> tuple[list[Piece], list[Refused]]:
            pieces, refused = collect(db, kind, limit, layout, kind_layouts(settings))
            if refused:
                _fail_each(db, refused)
            return pieces, refused

        pieces, refused = await self._in_db(collected)
        summary = {"batch_id": None, "kind": kind, "printer": printer.name, "layout": settings.layout,
                   "jobs": 0, "target": None, "failed": len(refused),
                   "errors": [_error(r) for r in refused]}
        if not pieces:
            return summary
        try:
            target, pdf = await asyncio.to_thread(render_and_send, kind, pieces, layout, printer)
        except PrintError as exc:
            return await self._failed(summary, pieces, str(exc))
        except Exception as exc:  # noqa: BLE001 - a render error must not lose the jobs: they fail, visibly
            log.exception("print batch (%s) could not be rendered", kind)
            return await self._failed(summary, pieces, f"could not render the PDF: {exc}")
        return await self._printed(summary, pieces, printer, target, pdf)

    async def _printed(self, summary: dict, pieces: Sequence[Piece], printer: Printer, target: str,
                       pdf: bytes) -> dict:
        now = utcnow()
        batch_id = uuid7()
        try:
            keep_pdf(self.hub.data_dir, batch_id, pdf)
        except OSError as exc:  # the printer has the cards: a full disk must not undo the batch
            log.warning("print batch %s: no copy of its PDF kept: %s", batch_id, exc)

        def recorded(db: sqlite3.Connection) -> None:
            with transaction(db):
                db.execute("INSERT INTO print_batches (id, kind, printer, jobs, target, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           (batch_id, summary["kind"], printer.name, len(pieces), target, iso(now)))
                print_queue.mark_printed(db, this_node(db), [p.job_id for p in pieces], now, batch_id)

        await self._in_db(recorded)
        log.info("print batch %s: %d %s job(s) -> %s", batch_id, len(pieces), summary["kind"], target)
        return {**summary, "batch_id": batch_id, "jobs": len(pieces), "target": target}

    async def _failed(self, summary: dict, pieces: Sequence[Piece], error: str) -> dict:
        await self._in_db(lambda db: print_queue.mark_failed(db, [p.job_id for p in pieces], error))
        log.warning("print batch (%s, %d job(s)) failed: %s", summary["kind"], len(pieces), error)
        errors = summary["errors"] + [{"job_id": p.job_id, "card_id": p.card_id, "card_number": p.face.number,
                                       "error": error} for p in pieces]
        return {**summary, "failed": summary["failed"] + len(pieces), "errors": errors}


def _fail_each(db: sqlite3.Connection, refused: Sequence[Refused]) -> None:
    with transaction(db):
        for r in refused:
            print_queue.mark_failed(db, [r.job_id], r.error)


def _error(r: Refused) -> dict:
    return {"job_id": r.job_id, "card_id": r.card_id, "card_number": r.card_number, "error": r.error}


# --- the worker ------------------------------------------------------------------------------------------


class PrintWorker(Worker):
    """Makes batches every `auto_batch_seconds`, cards first, then carriers; a full batch is followed at
    once by the next. `wake()` starts a round early; `await stop()` lets a batch in progress finish."""

    name = "tessera-print"

    def __init__(self, desk: PrintDesk, interval_s: float, batch_size: int = DEFAULT_BATCH) -> None:
        super().__init__()
        self.desk = desk
        self.interval_s = interval_s
        self.batch_size = batch_size

    def after_failure_s(self) -> float:
        return self.interval_s

    def stop_wait_s(self) -> float:
        return STOP_WAIT_S

    async def round(self) -> float:
        await self.run_once()
        return self.interval_s

    async def run_once(self) -> list[dict]:
        """One round: batches of each kind until fewer jobs than a full batch are left."""
        summaries = []
        for kind in ("card", "carrier"):
            while not self._stopping:
                try:
                    summary = await self.desk.batch(kind, self.batch_size)
                except PrintBusy:  # another hub process prints these jobs
                    break
                if summary["jobs"] or summary["failed"]:
                    summaries.append(summary)
                if summary["jobs"] < self.batch_size:
                    break
        return summaries


PRINTING = web.AppKey("printing", PrintDesk)


def wake_worker(app: web.Application) -> None:
    """New print jobs: a running PrintWorker makes its batch now instead of at its next round."""
    desk = app.get(PRINTING)
    if desk is not None and desk.worker is not None:
        desk.worker.wake()


def install(app: web.Application, hub: HubContext) -> PrintDesk:
    """Put the hub's PrintDesk into *app*; with `[print] auto_batch_seconds` > 0 the worker runs
    while the app does. A broken `[print]` section is logged; the office sees it on the next batch."""
    desk = PrintDesk(hub, app)
    app[PRINTING] = desk

    async def start_worker(_app: web.Application) -> None:
        try:
            settings = hub.section(SECTION)
        except PrintConfigError as exc:
            log.error("print worker not started: %s", exc.detail)
            return
        if settings.auto_batch_seconds > 0:
            desk.worker = PrintWorker(desk, settings.auto_batch_seconds, settings.batch_size)
            desk.worker.start()

    async def stop_worker(_app: web.Application) -> None:
        if desk.worker is not None:
            await desk.worker.stop()

    app.on_startup.append(start_worker)
    app.on_cleanup.append(stop_worker)
    return desk
