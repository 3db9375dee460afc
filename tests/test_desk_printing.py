"""Desk printing (E6) with real printers: a network receipt printer that is offline (a closed
loopback port) and comes back (a real socket server on that port), a card printer hot
folder that is missing and then appears, voucher slips with their QR codes, desk.toml."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from pathlib import Path

import pytest

from core.printing import print_queue
from core.printing.receipts import Voucher
from devices.printers.receipt import load_printer
from edge.desk.printing import ReceiptJob, build_receipt, load_desk_config, render_receipt
from edge.desk.server import Edge
from tests.test_desk_api import enrolled_edge, expect, files, login, pdf_codes, sale_body  # noqa: F401
from tests.test_receipts import CAPTURED, CODE, receipt

ESC_POS_INIT = b"\x1b@"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def network_printer(folder: Path, port: int) -> Path:
    path = folder / "net-printer.toml"
    path.write_text(f"""kind = "printer"
model = "Loopback ESC/POS printer"
escpos_profile = "TM-T20II"
timeout_ms = 3000

[paper]
width_mm = 80
columns = 48

[connection]
type = "network"
host = "127.0.0.1"
port = {port}
connect_timeout_ms = 500
""")
    return path


class PrinterServer:
    """A receipt printer on a loopback port: collects every job's bytes."""

    def __init__(self, port: int) -> None:
        self.port, self.jobs = port, []
        self.server: asyncio.Server | None = None

    async def start(self) -> PrinterServer:
        self.server = await asyncio.start_server(self._job, "127.0.0.1", self.port)
        return self

    async def _job(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.jobs.append(await reader.read())
        writer.close()

    async def wait_jobs(self, n: int) -> list[bytes]:
        for _ in range(200):
            if len(self.jobs) >= n:
                return self.jobs
            await asyncio.sleep(0.02)
        raise AssertionError(f"printer got {len(self.jobs)} jobs, expected {n}")

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def offline_desk(hub, tmp_path, aiohttp_client):  # noqa: F811
    port = free_port()
    profile = network_printer(tmp_path, port)
    edge = await enrolled_edge(hub, tmp_path, desk_toml=f'[printers]\nreceipt = "{profile}"\n')
    client = await aiohttp_client(edge.app())
    client.edge, client.printer_port = edge, port
    yield client
    await edge.close()


async def test_offline_receipt_printer_keeps_the_sale_and_retries(offline_desk, hub):  # noqa: F811
    desk, edge = offline_desk, offline_desk.edge
    await login(desk)
    data = await expect(await desk.post("/api/orders", json=sale_body(hub)), 201)
    order = data["order"]
    assert data["receipt"]["state"] == "failed" and "printer offline" in data["receipt"]["error"]
    assert edge.db.execute("SELECT count(*) AS n FROM orders WHERE id = ?", (order["id"],)).fetchone()["n"] == 1
    assert edge.db.execute("SELECT count(*) AS n FROM outbox WHERE kind = 'order.placed'").fetchone()["n"] == 1
    assert [o.state for o in await edge.printing.print_queued()] == ["printed"]  # the card printer is fine

    jobs = (await expect(await desk.get("/api/print-jobs"), 200))
    failed = [j for j in jobs["jobs"] if j["state"] == "failed"]
    assert len(failed) == 1 and failed[0]["kind"] == "receipt" and failed[0]["number"] == order["number"]
    assert "printer offline" in failed[0]["last_error"] and failed[0]["attempts"] == 1
    status = await expect(await desk.get("/api/status"), 200)
    assert status["print_queue"]["failed"] == 1 and "printer offline" in status["printer_errors"]["receipt"]
    page = await (await desk.get("/print-queue")).text()
    assert 'data-state="failed"' in page and "printer offline" in page

    # still offline: the retry fails again, nothing lost
    retried = await expect(await desk.post("/api/print-jobs/retry", json={}), 200)
    assert [o["state"] for o in retried["printing"]] == ["failed"] and retried["counts"]["failed"] == 1

    printer = await PrinterServer(desk.printer_port).start()
    try:
        retried = await expect(await desk.post("/api/print-jobs/retry", json={"job_ids": [failed[0]["id"]]}), 200)
        assert [o["state"] for o in retried["printing"]] == ["printed"]
        [job] = await printer.wait_jobs(1)
        assert job.startswith(ESC_POS_INIT) and order["number"].encode() in job and b"130,00" in job
        assert order["items"][1]["card"]["code"].encode() in job  # the voucher slip's QR
        status = await expect(await desk.get("/api/status"), 200)
        assert status["print_queue"] == {"queued": 0, "failed": 0} and status["printer_errors"] == {}
        assert edge.db.execute("SELECT state, attempts FROM print_jobs WHERE id = ?",
                               (failed[0]["id"],)).fetchone() == {"state": "printed", "attempts": 3}
    finally:
        await printer.close()


async def test_a_failed_receipt_prints_with_the_next_job(offline_desk, hub):  # noqa: F811
    desk, edge = offline_desk, offline_desk.edge
    await login(desk)
    first = await expect(await desk.post("/api/orders", json=sale_body(hub, vouchers=0)), 201)
    assert first["receipt"]["state"] == "failed"
    worker = asyncio.create_task(edge.printing.run())
    printer = await PrinterServer(desk.printer_port).start()
    try:
        second = await expect(await desk.post("/api/orders", json=sale_body(hub, vouchers=0)), 201)
        assert second["receipt"]["state"] == "printed"
        jobs = await printer.wait_jobs(2)
        numbers = [n for n in (first["order"]["number"], second["order"]["number"]) for j in jobs if n.encode() in j]
        assert sorted(numbers) == sorted([first["order"]["number"], second["order"]["number"]])
        for _ in range(100):  # the worker prints the two cards after the answers
            if print_queue.counts(edge.db) == {"queued": 0, "failed": 0}:
                break
            await asyncio.sleep(0.05)
        assert print_queue.counts(edge.db) == {"queued": 0, "failed": 0}
    finally:
        worker.cancel()
        await printer.close()


async def test_missing_card_printer_folder_then_retry(hub, tmp_path, aiohttp_client):  # noqa: F811
    hot = tmp_path / "share" / "cards"
    profile = tmp_path / "hot-folder.toml"
    profile.write_text(f'kind = "card_printer"\nmodel = "Hot folder"\ndriver = "folder"\n\n[folder]\npath = "{hot}"\n')
    edge = await enrolled_edge(hub, tmp_path, desk_toml=f'[printers]\ncard = "{profile}"\n')
    try:
        desk = await aiohttp_client(edge.app())
        desk.edge = edge
        await login(desk)
        data = await expect(await desk.post("/api/orders", json=sale_body(hub, vouchers=0)), 201)
        card = data["order"]["items"][0]["card"]
        assert data["receipt"]["state"] == "printed"
        [card_job] = [o for o in data["printing"] if o["kind"] == "card"]
        assert card_job["state"] == "queued"  # for the print worker, which finds no folder
        [outcome] = await edge.printing.print_queued()
        assert outcome.state == "failed" and "does not exist" in outcome.error
        assert card["fulfilment"] == "personalized"
        hot.mkdir(parents=True)
        retried = await expect(await desk.post("/api/print-jobs/retry", json={}), 200)
        assert [o["state"] for o in retried["printing"]] == ["printed"]
        [pdf] = files(hot, "card-*.pdf")
        assert pdf_codes(pdf) == [card["code"]]
        assert edge.db.execute("SELECT fulfilment FROM cards WHERE id = ?", (card["id"],)).fetchone()["fulfilment"] \
            == "printed"
    finally:
        await edge.close()


async def test_one_voucher_slip_per_voucher(hub, tmp_path):  # noqa: F811
    edge = await enrolled_edge(hub, tmp_path)
    try:
        from core.cards import cards
        from core.sales import orders

        order = orders.place_order(edge.db, edge.node, cards.load_signer(edge.db, edge.data_dir), orders.OrderIn(
            lines=[orders.LineIn(product_id=hub.ids["annual_products"][0], kind="voucher", quantity=3)],
            payment_method="cash", operator="Anna"), channel="cashdesk", now=edge.clock.now())
        job = build_receipt(edge.db, edge.node, edge.printing.config.receipt, order["id"])
        assert isinstance(job, ReceiptJob) and len(job.vouchers) == 3
        assert [line.quantity for line in job.receipt.lines] == [3]
        data = render_receipt(job, edge.printing.receipt_profile)
        assert data.count(b"GUTSCHEIN") == 3 and data.count(order["number"].encode()) == 4  # receipt + 3 slips
        for item in order["items"]:
            assert data.count(item["card"]["code"].encode()) == 1
        assert job.receipt.organizer == "Museumsverbund Nordstadt e.V."
        assert job.receipt.tax_id == "USt-IdNr. DE123456789"
    finally:
        await edge.close()


@pytest.mark.parametrize("printer", ["epson", "zjiang"])
def test_desk_receipt_job_bytes_as_before(printer):
    # the desk lays the job out for the printer's width (core) and the driver encodes it: the same bytes
    # as when the desk cut each voucher slip off a one-voucher render of the driver's own layout
    profile = load_printer({"epson": "receipt-epson-tm-t20iii", "zjiang": "receipt-zjiang-pos5890-usb"}[printer])
    three = tuple(Voucher(f"Jahreskarte {kind}", f"G-2026-00{i}", CODE[i:] + CODE[:i])
                  for i, kind in enumerate(["Erwachsene", "Kind", "Familie"]))  # fmt: skip
    data = render_receipt(ReceiptJob(receipt(), three), profile)
    assert (len(data), hashlib.sha256(data).hexdigest()) == CAPTURED[f"{printer}-three-vouchers"]


def test_desk_toml_defaults_and_mistakes(tmp_path):
    config = load_desk_config(tmp_path)
    assert config.printers.receipt == "receipt-sim-folder" and config.printers.layout == "museum-standard"
    (tmp_path / "desk.toml").write_text('[receipt]\norganizer = "Haus"\naddress = ["A 1", "12345 B"]\n'
                                        'footer = ["Danke"]\n')
    assert load_desk_config(tmp_path).receipt.address == ["A 1", "12345 B"]
    (tmp_path / "desk.toml").write_text('[printers]\nrecipt = "x"\n')
    with pytest.raises(ValueError, match="desk.toml.*recipt"):
        load_desk_config(tmp_path)


async def test_a_wrong_printer_profile_stops_the_desk_with_one_line(hub, tmp_path):  # noqa: F811
    edge = await enrolled_edge(hub, tmp_path)
    await edge.close()
    (edge.data_dir / "desk.toml").write_text('[printers]\nreceipt = "no-such-printer"\n')
    with pytest.raises(ValueError, match="no-such-printer"):
        Edge(edge.data_dir)
