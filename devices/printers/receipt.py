"""Receipt printers (ESC/POS): print document -> bytes with python-escpos, bytes -> printer without blocking.

Two halves, as for the other devices (DESIGN 6):

* `render(document, profile) -> bytes` is pure: python-escpos' `Dummy` printer with the profile's escpos
  capability profile collects the bytes of a neutral `core.base.documents.PrintDocument` (ESC @, fixed
  code page such as CP858 for umlauts and the euro sign; styles as centre, bold, double height; a cut
  after each slip, or a paper feed without a cutter; QR codes native `GS ( k` when the model has it, else
  a raster image made with segno in alphanumeric mode). What a receipt says and where is decided by
  `core.printing.receipts.receipt_document`, laid out for the width `columns(profile)` of this printer.
* `ReceiptPrinter(profile).print(data)` sends bytes over the profile's connection (network socket port
  9100, USB via python-escpos, serial, a device file, or a folder for the demo). The blocking write runs
  in the printer's own worker thread and is bounded by `timeout_ms`; any failure is one `PrinterError`
  with an operator-readable line ("printer offline", "paper out", ...). The caller keeps the bytes: a
  failed print never loses the sale, the job can simply be sent again.

Profiles are TOML files `kind = "printer"` in `firmware_profiles/` (see its README), validated like the
scanner and relay profiles: one error line naming the file and the field.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from core.base.documents import Line, PrintDocument
from devices.errors import DeviceError
from devices.profiles import load_profile

__all__ = [
    "FileConnection",
    "FolderConnection",
    "NetworkConnection",
    "PaperSettings",
    "PrintResult",
    "PrinterError",
    "PrinterProfile",
    "ReceiptPrinter",
    "SerialConnection",
    "UsbConnection",
    "columns",
    "load_printer",
    "parse_status",
    "render",
]

Ms = Annotated[int, Meta(ge=1, le=120_000)]
_USB_HEX = Annotated[str, Meta(pattern=r"^(0x)?[0-9a-fA-F]{4}$")]

# DLE EOT n (real-time status). Replies have bit 1 and bit 4 set, bits 0 and 7 clear.
STATUS_PRINTER = b"\x10\x04\x01"
STATUS_OFFLINE = b"\x10\x04\x02"
STATUS_PAPER = b"\x10\x04\x04"


class PrinterError(DeviceError):
    """Printing failed; the message is one line for the operator. The job can be retried."""


# --- profile ---------------------------------------------------------------------------------------------


class NetworkConnection(Struct, tag="network", tag_field="type", forbid_unknown_fields=True, frozen=True):
    host: str
    port: Annotated[int, Meta(ge=1, le=65535)] = 9100
    connect_timeout_ms: Ms = 2000
    status: bool = False  # ask DLE EOT status before each job (paper out, cover open, offline)


class UsbConnection(Struct, tag="usb", tag_field="type", forbid_unknown_fields=True, frozen=True):
    vendor_id: _USB_HEX  # "04b8" as lsusb prints it
    product_id: _USB_HEX


class SerialConnection(Struct, tag="serial", tag_field="type", forbid_unknown_fields=True, frozen=True):
    port: str
    baudrate: Annotated[int, Meta(ge=50, le=4_000_000)] = 38400


class FileConnection(Struct, tag="file", tag_field="type", forbid_unknown_fields=True, frozen=True):
    device: str  # e.g. /dev/usb/lp0


class FolderConnection(Struct, tag="folder", tag_field="type", forbid_unknown_fields=True, frozen=True):
    folder: str  # relative paths are relative to the working directory; created when missing


Connection = NetworkConnection | UsbConnection | SerialConnection | FileConnection | FolderConnection


class PaperSettings(Struct, forbid_unknown_fields=True, frozen=True):
    width_mm: Literal[58, 80]
    columns: Annotated[int, Meta(ge=24, le=64)]  # characters per line in font A
    codepage: str = "CP858"  # a code page name from the escpos profile (CP858: umlauts, ß and €)
    native_qr: bool = True  # GS ( k; false: the QR code is sent as a raster image
    qr_module_dots: Annotated[int, Meta(ge=1, le=16)] = 4
    cut: Literal["full", "partial", "none"] = "partial"


class PrinterProfile(Struct, forbid_unknown_fields=True, frozen=True):
    kind: Literal["printer"]
    model: str
    escpos_profile: str  # a profile name of python-escpos' capabilities database, e.g. "TM-T20II"
    paper: PaperSettings
    connection: Connection
    vendor: str = ""
    notes: str = ""
    timeout_ms: Ms = 10_000  # a job not sent within this time fails (printer stuck, blackholed socket)
    name: str = ""
    path: str = ""


def _escpos_capabilities() -> dict[str, Any]:
    from escpos.capabilities import CAPABILITIES

    return CAPABILITIES["profiles"]


def _check_printer(p: PrinterProfile) -> tuple[str, str] | None:
    profiles = _escpos_capabilities()
    caps = profiles.get(p.escpos_profile)
    if caps is None:
        return "escpos_profile", f"unknown python-escpos profile {p.escpos_profile!r} (e.g. TM-T20II, TM-T88V)"
    pages = {str(v).upper() for v in caps.get("codePages", {}).values()}
    if p.paper.codepage.upper() not in pages:
        return "paper.codepage", f"{p.paper.codepage!r} is not a code page of {p.escpos_profile}"
    if p.paper.native_qr and not caps.get("features", {}).get("qrCode"):
        return "paper.native_qr", f"{p.escpos_profile} has no native QR codes: set native_qr = false"
    return None


def load_printer(name_or_path: str | os.PathLike[str]) -> PrinterProfile:
    """Load and validate a receipt printer profile by name (file stem) or .toml path. Raises ProfileError."""
    return load_profile(name_or_path, "printer", PrinterProfile, _check_printer)


# --- rendering -------------------------------------------------------------------------------------------


def _qr_image(code: str, module: int) -> Any:
    """QR code as a 1-bit PIL image, alphanumeric mode (card codes use only 0-9 and A-X), ECC level M."""
    import segno
    from PIL import Image

    qr = segno.make_qr(code, mode="alphanumeric" if code.isalnum() and code.upper() == code else None,
                       error="m", boost_error=False)  # fmt: skip
    rows = list(qr.matrix_iter(scale=module, border=2))
    img = Image.new("1", (len(rows[0]), len(rows)), 1)
    img.putdata([0 if dark else 1 for row in rows for dark in row])
    return img


def columns(profile: PrinterProfile) -> int:
    """Characters per line of this printer (font A): the width to lay a document out for."""
    return profile.paper.columns


def render(document: PrintDocument, profile: PrinterProfile) -> bytes:
    """ESC/POS bytes of the document for this printer model, a cut (or paper feed) after each slip. Pure.
    Raises ValueError for a document laid out wider than the paper."""
    from escpos import printer
    from escpos.constants import QR_ECLEVEL_M

    paper = profile.paper
    if document.width > paper.columns:
        raise ValueError(f"document laid out for {document.width} characters, {profile.model} prints "
                         f"{paper.columns}")  # fmt: skip
    p = printer.Dummy(profile=profile.escpos_profile)
    p.hw("INIT")
    p.charcode(paper.codepage)

    current = ["normal"]

    def style(wanted: str) -> None:
        if wanted == current[0]:
            return
        if current[0] in ("bold", "title"):
            p.set(bold=False, normal_textsize=True)
        if wanted == "bold":
            p.set(align="left", bold=True, double_height=True)
        else:
            p.set(align="center" if wanted in ("center", "title") else "left", bold=wanted == "title")
        current[0] = wanted

    for slip in document.slips:
        for part in slip:
            if isinstance(part, Line):
                style(part.style)
                p.textln(part.text)
                continue
            style("normal")  # a QR code: centred, a blank line above and below
            p.ln()
            if paper.native_qr:
                p.set(align="center")
                p.qr(part.payload, ec=QR_ECLEVEL_M, size=paper.qr_module_dots, native=True)
            else:
                p.image(_qr_image(part.payload, paper.qr_module_dots), center=True)
            p.set(align="left")
            p.ln()
        style("normal")
        if paper.cut == "none":
            p.ln(4)
        else:
            p.cut(mode="PART" if paper.cut == "partial" else "FULL")
    return p.output


# --- status ----------------------------------------------------------------------------------------------


def parse_status(query: bytes, reply: int) -> str | None:
    """Meaning of a DLE EOT reply byte: None if fine, else the reason. Raises ValueError for a byte that is
    not a status reply (wrong fixed bits)."""
    if reply & 0x93 != 0x12:
        raise ValueError(f"not an ESC/POS status byte: 0x{reply:02X}")
    if query == STATUS_PAPER and reply & 0x60:
        return "paper out"
    if query == STATUS_OFFLINE:
        if reply & 0x04:
            return "cover open"
        if reply & 0x20:
            return "paper out"
    if query == STATUS_PRINTER and reply & 0x08:
        return "printer offline"
    return None


# --- sending ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrintResult:
    printer: str
    size: int
    elapsed_s: float
    target: str  # where the bytes went: host:port, device, or the file written


class ReceiptPrinter:
    """Sends ESC/POS jobs over a profile's connection. One worker thread; jobs never overlap.

    `print()` raises PrinterError (and sets `last_error`) on any failure, within `timeout_ms`; while an
    abandoned write is still stuck in the worker, further jobs fail at once ("printer busy")."""

    def __init__(self, profile: PrinterProfile | str) -> None:
        self.profile = load_printer(profile) if isinstance(profile, str) else profile
        self.name = self.profile.name or self.profile.model
        self.last_error = ""
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"printer-{self.name}")
        self._running: Future[str] | None = None
        self._lock = asyncio.Lock()
        self._seq = itertools.count(1)
        self._abandoned = threading.Event()

    @property
    def busy(self) -> bool:
        return self._running is not None and not self._running.done()

    async def print(self, data: bytes, job: str = "receipt") -> PrintResult:
        async with self._lock:
            if self.busy:
                raise self._fail("printer busy: a previous job is still stuck in the connection")
            started = time.monotonic()
            self._abandoned = threading.Event()
            fut = self._worker.submit(self._send, data, job, self._abandoned)
            self._running = fut
            timeout = self.profile.timeout_ms / 1000
            try:
                target = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), timeout)
            except TimeoutError:
                self._abandoned.set()
                raise self._fail(f"printer not responding (no answer within {timeout:g} s)") from None
            except PrinterError as exc:
                raise self._fail(str(exc)) from None
            except Exception as exc:
                raise self._fail(f"{type(exc).__name__}: {exc}") from None
            self.last_error = ""
            return PrintResult(self.name, len(data), time.monotonic() - started, target)

    def _fail(self, message: str) -> PrinterError:
        self.last_error = message
        return PrinterError(f"{self.name}: {message}")

    def close(self) -> None:
        self._abandoned.set()
        self._worker.shutdown(wait=False, cancel_futures=True)

    # blocking part, in the worker thread

    def _send(self, data: bytes, job: str, abandoned: threading.Event) -> str:
        conn = self.profile.connection
        if isinstance(conn, NetworkConnection):
            return self._send_network(conn, data, abandoned)
        if isinstance(conn, FolderConnection):
            return self._send_folder(conn, data, job)
        if isinstance(conn, FileConnection):
            return self._send_file(conn.device, data)
        if isinstance(conn, SerialConnection):
            return self._send_serial(conn, data)
        return self._send_usb(conn, data)

    def _send_network(self, conn: NetworkConnection, data: bytes, abandoned: threading.Event) -> str:
        target = f"{conn.host}:{conn.port}"
        deadline = time.monotonic() + self.profile.timeout_ms / 1000
        try:
            sock = socket.create_connection((conn.host, conn.port), timeout=conn.connect_timeout_ms / 1000)
        except (ConnectionRefusedError, TimeoutError, OSError) as exc:
            raise PrinterError(f"printer offline ({target}: {exc.strerror or exc})") from None
        with sock:
            try:
                if conn.status:
                    for query in (STATUS_PRINTER, STATUS_OFFLINE, STATUS_PAPER):
                        sock.settimeout(max(0.05, deadline - time.monotonic()))
                        sock.sendall(query)
                        reply = sock.recv(1)
                        if not reply:
                            raise PrinterError(f"printer closed the connection ({target})")
                        try:
                            problem = parse_status(query, reply[0])
                        except ValueError as exc:
                            raise PrinterError(f"{exc} ({target})") from None
                        if problem:
                            raise PrinterError(problem)
                view = memoryview(data)
                while view and not abandoned.is_set():
                    sock.settimeout(max(0.05, deadline - time.monotonic()))
                    sent = sock.send(view[:65536])
                    view = view[sent:]
                if view:
                    raise PrinterError("job abandoned")
            except TimeoutError:
                raise PrinterError(f"printer not responding ({target})") from None
            except (ConnectionError, OSError) as exc:
                raise PrinterError(f"connection to printer lost ({target}: {exc.strerror or exc})") from None
        return target

    def _send_folder(self, conn: FolderConnection, data: bytes, job: str) -> str:
        folder = Path(conn.folder)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job)[:60] or "job"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            target = folder / f"{stamp}-{os.getpid()}-{next(self._seq):04d}-{safe}.escpos"
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as exc:
            raise PrinterError(f"cannot write to {folder}: {exc.strerror or exc}") from None
        return str(target)

    def _send_file(self, device: str, data: bytes) -> str:
        try:
            fd = os.open(device, os.O_WRONLY | os.O_NOCTTY)
        except FileNotFoundError:
            raise PrinterError(f"printer offline ({device} not found: unplugged?)") from None
        except OSError as exc:
            raise PrinterError(f"cannot open {device}: {exc.strerror or exc}") from None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise PrinterError(f"write to {device} failed: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        return device

    def _send_serial(self, conn: SerialConnection, data: bytes) -> str:
        from devices.profiles import SerialPort
        from devices.serial_port import open_serial

        port = open_serial(conn.port, SerialPort(port=conn.port, baudrate=conn.baudrate),
                           timeout=0, write_timeout=self.profile.timeout_ms / 1000)  # fmt: skip
        try:
            port.write(data)
            port.flush()
        except Exception as exc:
            raise PrinterError(f"write to {conn.port} failed: {exc}") from None
        finally:
            port.close()
        return conn.port

    def _send_usb(self, conn: UsbConnection, data: bytes) -> str:
        from escpos import printer

        target = f"usb {conn.vendor_id}:{conn.product_id}"
        try:
            usb = printer.Usb(int(conn.vendor_id, 16), int(conn.product_id, 16), profile=self.profile.escpos_profile)
            usb.open()
            usb._raw(data)
            usb.close()
        except Exception as exc:
            raise PrinterError(f"printer offline ({target}: {exc})") from None
        return target
