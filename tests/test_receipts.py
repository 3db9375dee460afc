"""Receipts: VAT arithmetic and German layout (pure), ESC/POS bytes from python-escpos, and the printer
adapter against real sockets on 127.0.0.1 (a printer that prints, refuses, is out of paper, or swallows
everything without reading), a device file and the demo's folder."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import socket
import time
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.base.documents import Line, PrintDocument, Qr
from core.printing.receipts import (
    EXEMPT_NOTE,
    Payment,
    Receipt,
    ReceiptLine,
    Voucher,
    receipt_document,
    receipt_lines,
    vat_share,
)
from devices.printers.receipt import (
    FileConnection,
    FolderConnection,
    NetworkConnection,
    PrinterError,
    ReceiptPrinter,
    columns,
    load_printer,
    parse_status,
    render,
)
from devices.profiles import ProfileError

CODE = ("0123456789ABCDEFGHJKLMNPQRSTUVWX" * 5)[:160]  # a card code's alphabet and length
WHEN = dt.datetime(2026, 7, 1, 12, 30, tzinfo=dt.UTC)  # 14:30 in Berlin (CEST)


def receipt(lines=None, payment=None, voucher=None) -> Receipt:
    return Receipt(
        organizer="Städtisches Museum Köln",
        address=("Domplatz 1", "50667 Köln"),
        tax_id="USt-IdNr. DE123456789",
        node="kasse-foyer",
        operator="Jürgen",
        sale_number="K1-000042",
        time=WHEN,
        lines=lines
        or (
            ReceiptLine("Jahreskarte Erwachsene", 2, 4500, "exempt"),
            ReceiptLine("Ausstellungskatalog", 1, 2990, "7"),
            ReceiptLine("Kaffee", 3, 350, "19"),
            ReceiptLine("Postkarte", 1, 199, "19"),
        ),
        payment=payment or Payment("cash", given_cents=20_000),
        voucher=voucher,
    )


# --- VAT and money ---------------------------------------------------------------------------------------


def test_vat_per_rate_mixed_lines():
    totals = {t.code: t for t in receipt().vat_totals()}
    assert list(totals) == ["19", "7", "exempt"]
    a, b, c = totals["19"], totals["7"], totals["exempt"]
    assert (a.gross_cents, a.vat_cents, a.net_cents) == (1249, 199, 1050)  # 1249 * 19 / 119 = 199.42
    assert (b.gross_cents, b.vat_cents, b.net_cents) == (2990, 196, 2794)  # 2990 * 7 / 107 = 195.61
    assert (c.gross_cents, c.vat_cents, c.net_cents) == (9000, 0, 9000)
    assert receipt().total_cents == 1249 + 2990 + 9000


def test_vat_is_computed_per_rate_not_per_line():
    # three lines of 0.10 € at 19 %: per line 0.016 -> 0.02 each (0.06), per rate 0.30 -> 0.05
    lines = tuple(ReceiptLine(f"Artikel {i}", 1, 10, "19") for i in range(3))
    (t,) = receipt(lines=lines, payment=Payment("card")).vat_totals()
    assert (t.gross_cents, t.vat_cents, t.net_cents) == (30, 5, 25)


@given(st.integers(0, 10**8), st.sampled_from([19, 7]))
def test_vat_share_rounds_half_away_from_zero(gross, rate):
    exact = Fraction(gross * rate, 100 + rate)
    assert vat_share(gross, rate) == int(exact + Fraction(1, 2))
    assert vat_share(-gross, rate) == -vat_share(gross, rate)


def test_cash_change_card_and_bad_amounts():
    assert receipt().change_cents == 20_000 - 13_239
    assert receipt(payment=Payment("cash")).change_cents == 0
    assert receipt(payment=Payment("card", terminal_ref="TID 4711 / 000123")).change_cents == 0
    with pytest.raises(ValueError, match="less than the total"):
        receipt(payment=Payment("cash", given_cents=10_000))
    with pytest.raises(ValueError, match="cash payments only"):
        Payment("card", given_cents=100)
    with pytest.raises(ValueError, match="VAT code"):
        ReceiptLine("x", 1, 100, "16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        Receipt("o", (), "", "n", "op", "1", dt.datetime(2026, 1, 1), receipt().lines, Payment("card"))


# --- text layout -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [32, 42, 48])
def test_german_text_layout(width):
    text = receipt_lines(receipt(), width)
    assert all(len(line) <= width for line in text)
    joined = "\n".join(text)
    assert "Städtisches Museum Köln" in joined and "USt-IdNr. DE123456789" in joined
    assert "01.07.2026 14:30" in joined  # Europe/Berlin, summer time
    assert "Bediener: Jürgen" in joined and "Kasse: kasse-foyer" in joined
    total = next(line for line in text if line.startswith("Summe"))
    assert total.endswith("132,39 €") and len(total) == width
    assert next(line for line in text if line.startswith("Gegeben")).endswith("200,00 €")
    assert next(line for line in text if line.startswith("Rückgeld")).endswith("67,61 €")
    assert any(line.startswith("Bar") for line in text)
    assert "§ 4 Nr. 20a UStG" in " ".join(text)  # the exemption note, possibly wrapped
    assert "  2 x 45,00 €" in joined and joined.count(" C\n") >= 1


def test_card_payment_text_and_no_exempt_note_without_exempt_lines():
    r = receipt(lines=(ReceiptLine("Kaffee", 1, 350, "19"),), payment=Payment("card", terminal_ref="TA-991"))
    text = "\n".join(receipt_lines(r, 48))
    assert "Karte" in text and "TA-991" in text
    assert "Rückgeld" not in text and "Gegeben" not in text and EXEMPT_NOTE not in text
    with pytest.raises(ValueError):
        receipt_lines(r, 10)


# --- print document ----------------------------------------------------------------------------------


def escpos(r: Receipt, profile, vouchers=()) -> bytes:
    """What the desk does: lay the receipt out for the printer's width, then encode the document."""
    return render(receipt_document(r, columns(profile), vouchers), profile)


def test_receipt_document_slips():
    v1, v2 = Voucher("Jahreskarte Erwachsene", "G-1", CODE), Voucher("Jahreskarte Kind", "G-2", CODE[::-1])
    doc = receipt_document(receipt(voucher=v1), 32, (v2,))
    assert doc.width == 32 and len(doc.slips) == 3  # the receipt, then one slip per voucher
    receipt_slip, *slips = doc.slips
    assert receipt_slip[:4] == (Line("title", "Städtisches Museum Köln"), Line("center", "Domplatz 1"),
                                Line("center", "50667 Köln"), Line("center", "USt-IdNr. DE123456789"))  # fmt: skip
    assert all(isinstance(p, Line) and len(p.text) <= 32 for p in receipt_slip)
    assert len(receipt_slip) == len(receipt_lines(receipt(), 32))  # the same rows as the plain-text layout
    assert Line("bold", "Summe" + " " * 19 + "132,39 €") in receipt_slip
    for slip, v in zip(slips, (v1, v2), strict=True):
        assert slip[0] == Line("title", "GUTSCHEIN") and Line("center", f"Gutschein-Nr. {v.number}") in slip
        assert [p for p in slip if isinstance(p, Qr)] == [Qr(v.code)]
    assert len(receipt_document(receipt(), 48).slips) == 1
    with pytest.raises(ValueError, match="line style"):
        Line("huge", "x")  # type: ignore[arg-type]


def test_driver_prints_a_hand_made_document():
    # the driver knows nothing of receipts: any neutral document prints
    profile = load_printer("receipt-epson-tm-t20iii")
    doc = PrintDocument(48, ((Line("title", "Hallo"), Line("normal", "Grüße")), (Qr("ABC123"), Line("center", "€"))))
    data = render(doc, profile)
    assert data.startswith(b"\x1b@\x1bt\x13") and b"Gr\x81\xe1e\n" in data and b"\xd5\n" in data
    assert data.count(b"\x1dV\x01") == 2 and data.endswith(b"\x1dV\x01")
    assert b"\x1d(k\x09\x001P0ABC123" in data
    assert columns(profile) == 48 and columns(load_printer("receipt-zjiang-pos5890-usb")) == 32
    with pytest.raises(ValueError, match="laid out for 48 characters"):
        render(doc, load_printer("receipt-zjiang-pos5890-usb"))


# ESC/POS bytes of receipt(voucher=Voucher("Jahreskarte Erwachsene", "G-2026-0007", CODE)) on the Epson
# TM-T20III profile, captured from the driver before it took print documents (when it imported
# core.printing.receipts and laid the receipt out itself): the document path must give the same bytes.
EPSON_RECEIPT_WITH_VOUCHER = (
    b"\x1b@\x1bt\x13\x1bE\x01\x1ba\x01St\x84dtisches Museum K\x94ln\n"
    b"\x1b!\x00\x1b!\x00\x1b!\x00\x1bE\x00\x1bE\x00\x1ba\x01Domplatz 1\n"
    b"50667 K\x94ln\n"
    b"USt-IdNr. DE123456789\n"
    b"\x1bE\x00\x1ba\x00------------------------------------------------\n"
    b"\x1bE\x00\x1ba\x00Beleg-Nr. K1-000042             01.07.2026 14:30\n"
    b"Kasse: kasse-foyer\n"
    b"Bediener: J\x81rgen\n"
    b"\x1bE\x00\x1ba\x00------------------------------------------------\n"
    b"\x1bE\x00\x1ba\x00Jahreskarte Erwachsene\n"
    b"  2 x 45,00 \xd5                          90,00 \xd5 C\n"
    b"Ausstellungskatalog                    29,90 \xd5 B\n"
    b"Kaffee\n"
    b"  3 x 3,50 \xd5                           10,50 \xd5 A\n"
    b"Postkarte                               1,99 \xd5 A\n"
    b"\x1bE\x00\x1ba\x00------------------------------------------------\n"
    b"\x1b!\x00\x1b!\x00\x1b!\x10\x1bE\x01\x1ba\x00Summe                                   132,39 \xd5\n"
    b"\x1b!\x00\x1b!\x00\x1b!\x00\x1bE\x00\x1bE\x00\x1ba\x00Bar                                     132,39 "
    b"\xd5\n"
    b"Gegeben                                 200,00 \xd5\n"
    b"R\x81ckgeld                                 67,61 \xd5\n"
    b"\x1bE\x00\x1ba\x00------------------------------------------------\n"
    b"\x1bE\x00\x1ba\x00MwSt.       Netto     MwSt.               Brutto\n"
    b"A 19 %    10,50 \xd5    1,99 \xd5              12,49 \xd5\n"
    b"B  7 %    27,94 \xd5    1,96 \xd5              29,90 \xd5\n"
    b"C frei    90,00 \xd5    0,00 \xd5              90,00 \xd5\n"
    b"C: Steuerfrei nach \xf5 4 Nr. 20a UStG\n"
    b"\x1bE\x00\x1ba\x00------------------------------------------------\n"
    b"\x1bE\x00\x1ba\x01Vielen Dank f\x81r Ihren Besuch!\n"
    b"\x1bE\x00\x1ba\x00\x1bd\x06\x1dV\x01\x1bE\x01\x1ba\x01GUTSCHEIN\n"
    b"\x1b!\x00\x1b!\x00\x1b!\x00\x1bE\x00\x1bE\x00\x1ba\x01Jahreskarte Erwachsene\n"
    b"Gutschein-Nr. G-2026-0007\n"
    b"St\x84dtisches Museum K\x94ln\n"
    b"\x1bE\x00\x1ba\x00\n"
    b"\x1ba\x01\x1d(k\x04\x001A2\x00\x1d(k\x03\x001C\x04\x1d(k\x03\x001E1\x1d(k\xa3\x001P0"
    + CODE.encode("ascii")
    + b"\x1d(k\x03\x001Q0\x1ba\x00\n"
    b"\x1bE\x00\x1ba\x01Einl\x94sbar an der Kasse gegen eine pers\x94nliche\n"
    b"Jahreskarte.\n"
    b"Beleg-Nr. K1-000042, 01.07.2026\n"
    b"\x1bE\x00\x1ba\x00\x1bd\x06\x1dV\x01"
)
# Length and sha256 of more jobs, captured the same way; the three-voucher jobs came from the desk's
# render_receipt, which then cut each voucher slip off a whole one-voucher render.
CAPTURED = {
    "zjiang-image-qr-no-cut": (10677, "d6d742609a29248cc4458c814402a46993242562aefc4d9e5b63640d38860057"),
    "epson-card-full-cut": (850, "f7bf4ce0dd554281dc1f33c8b5b194ed803b07626e2e769633cb9ab530d6848b"),
    "epson-three-vouchers": (2491, "64ea7755aa95a2ff613d583ed05474276a11f247938ec6623a92ca554c58929e"),
    "zjiang-three-vouchers": (29947, "e9f62b33a342edecdc75d598af802dd3e6a27060da27595196eb036b98a70c1c"),
}


def test_escpos_bytes_unchanged_since_the_driver_took_documents():
    epson, zjiang = load_printer("receipt-epson-tm-t20iii"), load_printer("receipt-zjiang-pos5890-usb")
    full_cut = msgspec.structs.replace(epson, paper=msgspec.structs.replace(epson.paper, cut="full"))
    voucher = Voucher("Jahreskarte Erwachsene", "G-2026-0007", CODE)
    three = tuple(Voucher(f"Jahreskarte {kind}", f"G-2026-00{i}", CODE[i:] + CODE[:i])
                  for i, kind in enumerate(["Erwachsene", "Kind", "Familie"]))  # fmt: skip
    card = receipt(lines=(ReceiptLine("Kaffee", 1, 350, "19"),), payment=Payment("card", terminal_ref="TA-991"))
    assert escpos(receipt(voucher=voucher), epson) == EPSON_RECEIPT_WITH_VOUCHER
    made = {
        "zjiang-image-qr-no-cut": escpos(receipt(voucher=voucher), zjiang),
        "epson-card-full-cut": escpos(card, full_cut),
        "epson-three-vouchers": escpos(receipt(), epson, three),
        "zjiang-three-vouchers": escpos(receipt(), zjiang, three),
    }
    assert {k: (len(b), hashlib.sha256(b).hexdigest()) for k, b in made.items()} == CAPTURED


# --- ESC/POS bytes ---------------------------------------------------------------------------------------


def test_escpos_bytes_epson_80mm_native_qr():
    data = escpos(receipt(voucher=Voucher("Jahreskarte Erwachsene", "G-2026-0007", CODE)),
                  load_printer("receipt-epson-tm-t20iii"))  # fmt: skip
    assert data.startswith(b"\x1b@")  # ESC @ init
    assert b"\x1bt\x13" in data[:10]  # ESC t 19: CP858
    # CP858: ä 84, ö 94, ü 81, ß E1, € D5, § F5
    assert "Städtisches Museum Köln".encode("cp858") in data and b"St\x84dtisches Museum K\x94ln" in data
    assert b"Bediener: J\x81rgen" in data and b"R\x81ckgeld" in data and b"132,39 \xd5" in data
    assert b"\xf5 4 Nr. 20a UStG" in data
    summe = data.index(b"Summe")
    assert b"\x1bE\x01" in data[summe - 12 : summe]  # bold total
    assert data.count(b"\x1dV\x01") == 2  # partial cut after the receipt and after the voucher
    assert data.endswith(b"\x1dV\x01")
    store = b"\x1d(k" + (len(CODE) + 3).to_bytes(2, "little") + b"1P0" + CODE.encode("ascii")
    assert store in data  # GS ( k ... 49 80 48 <code>: the voucher code goes into the native QR
    assert b"\x1d(k\x03\x001Q0" in data  # print the stored symbol
    assert b"\x1d(k\x03\x001E1" in data  # error correction M
    assert data.index(b"Gutschein-Nr. G-2026-0007") > data.index(b"\x1dV\x01")  # voucher after the first cut
    assert b"\x1b(k" not in data and "€".encode() not in data


def test_escpos_bytes_58mm_image_qr_no_cutter():
    profile = load_printer("receipt-zjiang-pos5890-usb")
    data = escpos(receipt(voucher=Voucher("Jahreskarte Kind", "G-1", CODE)), profile)
    assert data.startswith(b"\x1b@") and b"R\x81ckgeld" in data
    assert b"\x1d(k" not in data and b"\x1dV" not in data  # no native QR, no cut
    assert b"\x1dv0" in data or b"\x1b*" in data or b"\x1d(L" in data  # a raster image instead
    plain = escpos(receipt(), profile)
    assert len(data) > len(plain) + 1000


# --- profiles --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["receipt-epson-tm-t20iii", "receipt-zjiang-pos5890-usb", "receipt-sim-folder"])
def test_shipped_printer_profiles_load(name):
    p = load_printer(name)
    assert p.name == name and p.kind == "printer" and p.paper.columns in (32, 48)


GOOD = """kind = "printer"
model = "X"
escpos_profile = "TM-T20II"
[paper]
width_mm = 80
columns = 48
[connection]
type = "network"
host = "10.0.0.9"
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("columns = 48", "columns = '48'"), "paper.columns: Expected `int`, got `str`"),
        (GOOD.replace("columns = 48", "colums = 48"), "paper.colums: unknown field"),
        (GOOD.replace('"TM-T20II"', '"TM-T20III"'), "escpos_profile: unknown python-escpos profile 'TM-T20III'"),
        (GOOD.replace('escpos_profile = "TM-T20II"', 'escpos_profile = "POS-5890"'), "paper.native_qr: POS-5890"),
        (GOOD.replace("columns = 48", 'columns = 48\ncodepage = "CP1234"'), "paper.codepage: 'CP1234'"),
        (GOOD.replace('"network"', '"carrier-pigeon"'), "connection"),
        (GOOD.replace('host = "10.0.0.9"', "port = 9100"), "connection.host: missing required field"),
        (GOOD.replace('kind = "printer"', 'kind = "relay"'), "kind: is 'relay', expected 'printer'"),
    ],
)
def test_profile_errors_name_file_and_field(tmp_path, monkeypatch, text, message):
    monkeypatch.setenv("TESSERA_PROFILES", str(tmp_path))
    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(ProfileError) as info:
        load_printer("p")
    assert str(info.value).startswith(f"{tmp_path / 'p.toml'}: ")
    assert message.replace("`", "") in str(info.value)


def test_parse_status():
    assert parse_status(b"\x10\x04\x04", 0x12) is None
    assert parse_status(b"\x10\x04\x04", 0x72) == "paper out"
    assert parse_status(b"\x10\x04\x02", 0x16) == "cover open"
    assert parse_status(b"\x10\x04\x01", 0x1A) == "printer offline"
    with pytest.raises(ValueError):
        parse_status(b"\x10\x04\x01", 0x00)


# --- sending ---------------------------------------------------------------------------------------------


def net_profile(port: int, status: bool = False, timeout_ms: int = 2000):
    base = load_printer("receipt-epson-tm-t20iii")
    conn = NetworkConnection(host="127.0.0.1", port=port, connect_timeout_ms=500, status=status)
    return msgspec.structs.replace(base, connection=conn, timeout_ms=timeout_ms)


class FakePrinter:
    """A network printer on 127.0.0.1: answers DLE EOT status queries before the job, stores the job."""

    def __init__(self, paper: int = 0x12, read: bool = True) -> None:
        self.paper, self.read = paper, read
        self.jobs: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if not self.read:  # blackhole: accept, never read, never answer
            await asyncio.sleep(30)  # the simulated device under test: it hangs
            writer.close()
            return
        replies = {1: 0x12, 2: 0x12, 4: self.paper}
        buf = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            buf += chunk
            while buf[:2] == b"\x10\x04" and len(buf) >= 3:
                writer.write(bytes([replies[buf[2]]]))
                await writer.drain()
                buf = buf[3:]
        self.jobs.append(buf)
        writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        for task in asyncio.all_tasks():
            if task.get_coro().__qualname__.startswith("FakePrinter.handle"):  # type: ignore[union-attr]
                task.cancel()


async def wait_for(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("status", [False, True])
async def test_network_printer_receives_exactly_the_bytes(status):
    data = escpos(receipt(voucher=Voucher("Jahreskarte", "G-1", CODE)), load_printer("receipt-epson-tm-t20iii"))
    fake = FakePrinter()
    async with fake as port:
        printer = ReceiptPrinter(net_profile(port, status=status))
        result = await printer.print(data)
        await wait_for(lambda: fake.jobs)
        printer.close()
    assert fake.jobs == [data]
    assert result.size == len(data) and result.target == f"127.0.0.1:{port}" and printer.last_error == ""


async def test_paper_out_is_reported_and_nothing_sent():
    fake = FakePrinter(paper=0x72)
    async with fake as port:
        printer = ReceiptPrinter(net_profile(port, status=True))
        with pytest.raises(PrinterError, match="paper out"):
            await printer.print(b"\x1b@hello\n")
        await wait_for(lambda: fake.jobs)
        printer.close()
    assert fake.jobs == [b""] and printer.last_error == "paper out"


async def test_refused_connection_is_printer_offline_quickly():
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    printer = ReceiptPrinter(net_profile(port))
    started = time.monotonic()
    with pytest.raises(PrinterError, match="printer offline"):
        await printer.print(b"\x1b@x")
    assert time.monotonic() - started < 1.0
    printer.close()


async def ticker(gaps: list[float], stop: asyncio.Event) -> None:
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        gaps.append(now - last)
        last = now


@pytest.mark.parametrize("status", [True, False])
async def test_blackhole_printer_times_out_and_loop_stays_responsive(status):
    # with status queries the printer never answers; without, it never reads a job bigger than the socket
    # buffers (32 MB), so the write blocks: both must fail at timeout_ms, the event loop ticking meanwhile
    data = b"\x1b@" + b"x" * (32 << 20) if not status else b"\x1b@x"
    fake = FakePrinter(read=False)
    async with fake as port:
        printer = ReceiptPrinter(net_profile(port, status=status, timeout_ms=400))
        gaps: list[float] = []
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(gaps, stop))
        started = time.monotonic()
        with pytest.raises(PrinterError, match="not responding"):
            await printer.print(data)
        elapsed = time.monotonic() - started
        stop.set()
        await tick
        await wait_for(lambda: not printer.busy)  # the worker gives up too (socket deadline)
        printer.close()
    assert 0.35 < elapsed < 1.5
    assert len(gaps) > 10 and max(gaps) < 0.2


async def test_folder_printer_writes_a_file(tmp_path):
    base = load_printer("receipt-sim-folder")
    out = tmp_path / "out"
    printer = ReceiptPrinter(msgspec.structs.replace(base, connection=FolderConnection(folder=str(out))))
    data = escpos(receipt(), base)
    first = await printer.print(data, job="sale K1/42")
    second = await printer.print(data, job="sale K1/42")
    printer.close()
    files = sorted(out.glob("*.escpos"))
    assert [str(f) for f in files] == sorted([first.target, second.target]) and len(files) == 2
    assert all(f.read_bytes() == data for f in files) and "sale_K1_42" in files[0].name
    assert not list(out.glob("*.tmp"))


async def test_device_file_printer(tmp_path):
    base = load_printer("receipt-zjiang-pos5890-usb")
    device = tmp_path / "lp0"
    device.write_bytes(b"")
    printer = ReceiptPrinter(msgspec.structs.replace(base, connection=FileConnection(device=str(device))))
    await printer.print(b"\x1b@abc")
    assert device.read_bytes() == b"\x1b@abc"
    missing = ReceiptPrinter(msgspec.structs.replace(base, connection=FileConnection(device=str(tmp_path / "no"))))
    with pytest.raises(PrinterError, match="printer offline"):
        await missing.print(b"\x1b@abc")
    printer.close()
    missing.close()


def test_image_qr_decodes_to_the_voucher_code():
    zxingcpp = pytest.importorskip("zxingcpp")
    from devices.printers.receipt import _qr_image

    img = _qr_image(CODE, 4)
    assert img.width <= 384  # fits 58 mm paper (384 dots)
    assert [r.text for r in zxingcpp.read_barcodes(img.convert("L"))] == [CODE]
