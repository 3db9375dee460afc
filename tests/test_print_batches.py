"""Print batches at the hub (A7, A8) over real HTTP: queued jobs -> one PDF -> the card printer (a real
folder), every QR decoded from the rendered PDF and admitted by the hub's own Access; a printer that
fails, is fixed and retried; a config that is wrong; the PrintWorker; the loop serving while a batch
renders in its thread."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import zxingcpp
from PIL import Image

from core.base.clock import utcnow
from core.cards import cards
from core.cards.access import Access, GateRules
from core.cards.trusted_time import TrustedClock
from core.sales import orders
from hub.app import make_app
from hub.services import leases, print_batches
from tests.helpers import call, problem, table_counts

PT_PER_MM = 72 / 25.4


async def phone_order(api, holders: list[str], delivery: str) -> list[dict]:
    customer = (await call(api, "GET", "/customers?limit=1", status=200))["items"][0]["id"]
    lines = [{"product_id": api.hub.ids["annual_products"][0], "quantity": len(chunk),
              "holders": [{"name": name} for name in chunk]} for chunk in _chunks(holders, 20)]
    order = await call(api, "POST", "/orders", {"lines": lines, "customer_id": customer, "delivery": delivery,
                                                "payment_method": "transfer"}, status=201)
    return [item["card"] for item in order["items"]]


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def qr_codes(pdf: bytes, dpi: int = 300) -> list[list[str]]:
    """Every page rendered like a scanner would see it; the QR codes found on each."""
    pages = [page.render(scale=dpi / 72).to_pil() for page in pdfium.PdfDocument(pdf)]
    return [[r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]
            for image in pages]


def gate(db, venue_id: str) -> Access:
    return Access(db, GateRules(venue_id=venue_id), TrustedClock(db))


def fulfilment(db, card_id: str) -> str:
    return db.execute("SELECT fulfilment FROM cards WHERE id = ?", (card_id,)).fetchone()["fulfilment"]


def write_settings(hub_dir: Path, text: str) -> None:
    (hub_dir / "hub.toml").write_text("[print]\n" + text, encoding="utf-8")


async def api_with(aiohttp_client, hub, text: str):
    """hub.toml is read when the app is made: write `[print]`, then make the app."""
    write_settings(hub.dir, text)
    client = await aiohttp_client(make_app(hub.db))
    client.hub = hub
    return client


async def test_a_batch_prints_every_card_and_every_printed_code_is_admitted(api):
    hub = api.hub
    mail = await phone_order(api, ["Erika Müller", "Jürgen Weiß", "Ada Lovelace"], "mail")
    pickup = await phone_order(api, ["Paul Abholer"], "pickup")
    issued = mail + pickup

    batch = await call(api, "POST", "/print-batches", {"kind": "card"}, status=201)
    assert (batch["jobs"], batch["failed"], batch["errors"], batch["layout"]) == (4, 0, [], "museum-standard")
    target = Path(batch["target"])
    assert target.parent == hub.dir / "print-out" and target.suffix == ".pdf"
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # one PDF, no half-written file left
    pdf = target.read_bytes()
    doc = pdfium.PdfDocument(pdf)
    assert len(doc) == 4
    width, height = doc[0].get_size()
    assert (round(width / PT_PER_MM, 1), round(height / PT_PER_MM, 1)) == (85.6, 54.0)  # CR80
    assert "Jürgen Weiß" in doc[1].get_textpage().get_text_range()

    codes = qr_codes(pdf)
    assert all(len(page) == 1 for page in codes)
    by_code = {c["code"]: c for c in issued}
    assert sorted(page[0] for page in codes) == sorted(by_code)
    museum = gate(hub.db, hub.ids["museum_venues"]["Stadtmuseum"])
    for (code,) in codes:
        verdict = museum.decide(code)
        assert verdict.admitted, verdict
        assert (verdict.card_id, verdict.holder) == (by_code[code]["id"], by_code[code]["holder_name"])
    assert {fulfilment(hub.db, c["id"]) for c in issued} == {"printed"}

    carriers = await call(api, "POST", "/print-batches", {"kind": "carrier"}, status=201)
    assert carriers["jobs"] == 3  # only the mailed cards
    sheets = Path(carriers["target"]).read_bytes()
    doc = pdfium.PdfDocument(sheets)
    assert len(doc) == 3 and round(doc[0].get_size()[1] / PT_PER_MM) == 297  # A4
    customer = hub.db.execute("SELECT * FROM customers WHERE id = ?", (mail[0]["customer_id"],)).fetchone()
    text = doc[0].get_textpage().get_text_range()
    assert customer["street"] in text and f"{customer['postcode']} {customer['town']}" in text
    assert customer["last_name"] in text
    assert sorted(page[0] for page in qr_codes(sheets, dpi=200)) == sorted(c["code"] for c in mail)

    listed = await call(api, "GET", "/print-batches", status=200)
    assert [(b["id"], b["kind"], b["jobs"]) for b in listed["items"]] == [
        (carriers["batch_id"], "carrier", 3), (batch["batch_id"], "card", 4)]
    assert (await call(api, "GET", "/print-jobs", status=200))["total"] == 0
    jobs = hub.db.execute("SELECT DISTINCT batch_id, state FROM print_jobs WHERE kind = 'card'").fetchall()
    assert jobs == [{"batch_id": batch["batch_id"], "state": "printed"}]
    nothing = await call(api, "POST", "/print-batches", {}, status=200)
    assert (nothing["batch_id"], nothing["jobs"], nothing["target"]) == (None, 0, None)


async def test_a_failing_printer_keeps_the_jobs_until_it_is_fixed_and_they_are_retried(aiohttp_client, sample_hub,
                                                                                       tmp_path):
    hub = sample_hub
    blocker = tmp_path / "share"
    blocker.write_text("not a folder")  # nobody, root included, can create share/out below a regular file
    out = blocker / "out"
    profile = tmp_path / "hotfolder.toml"
    profile.write_text(f'kind = "card_printer"\nmodel = "Test hot folder"\ndriver = "folder"\n\n'
                       f'[folder]\npath = "{out}"\nprefix = "test-"\n', encoding="utf-8")
    api = await api_with(aiohttp_client, hub, f'card_printer = "{profile}"\n')
    issued = await phone_order(api, ["Eins", "Zwei"], "pickup")

    failed = await call(api, "POST", "/print-batches", {"kind": "card"}, status=200)
    assert (failed["batch_id"], failed["jobs"], failed["failed"]) == (None, 0, 2)
    assert {e["card_number"] for e in failed["errors"]} == {c["number"] for c in issued}
    assert all("does not exist" in e["error"] for e in failed["errors"])
    jobs = (await call(api, "GET", "/print-jobs?state=failed", status=200))["items"]
    assert len(jobs) == 2 and all(j["attempts"] == 1 and str(out) in j["last_error"] for j in jobs)
    assert {fulfilment(hub.db, c["id"]) for c in issued} == {"personalized"}
    assert (await call(api, "GET", "/print-batches", status=200))["total"] == 0
    # failed jobs wait for a retry: the next batch does not feed them to the broken printer again
    assert (await call(api, "POST", "/print-batches", {"kind": "card"}, status=200))["failed"] == 0

    blocker.unlink()
    out.mkdir(parents=True)
    assert (await call(api, "POST", "/print-jobs/retry", {"job_ids": [jobs[0]["id"]]}, status=200)) == \
        {"requeued": 1}
    assert (await call(api, "POST", "/print-jobs/retry", {}, status=200)) == {"requeued": 1}
    assert (await call(api, "POST", "/print-jobs/retry", {}, status=200)) == {"requeued": 0}
    assert (await call(api, "GET", "/print-jobs?state=queued", status=200))["total"] == 2
    printed = await call(api, "POST", "/print-batches", {"kind": "card"}, status=201)
    assert printed["jobs"] == 2 and printed["printer"] == "hotfolder" and Path(printed["target"]).parent == out
    assert Path(printed["target"]).name.startswith("test-")
    assert {fulfilment(hub.db, c["id"]) for c in issued} == {"printed"}
    assert (await call(api, "GET", "/print-jobs", status=200))["total"] == 0


async def test_jobs_that_cannot_print_fail_alone(api):
    hub = api.hub
    keep, revoke = await phone_order(api, ["Bleibt", "Gesperrt"], "pickup")
    await call(api, "POST", f"/cards/{revoke['id']}/revoke", {"reason": "Rückbuchung"}, status=200)
    batch = await call(api, "POST", "/print-batches", {"kind": "card"}, status=201)
    assert (batch["jobs"], batch["failed"]) == (1, 1)
    assert batch["errors"][0]["card_id"] == revoke["id"] and "revoked" in batch["errors"][0]["error"]
    assert [page[0] for page in qr_codes(Path(batch["target"]).read_bytes())] == [keep["code"]]
    assert (fulfilment(hub.db, keep["id"]), fulfilment(hub.db, revoke["id"])) == ("printed", "personalized")


async def test_a_broken_print_setup_is_a_clear_409_and_changes_nothing(api, aiohttp_client):
    hub = api.hub
    await phone_order(api, ["Wartet"], "pickup")
    for settings, words in (('layout = "does-not-exist"\n', "no such layout file"),
                            ('layot = "museum-photo"\n', "unknown key(s) layot"),
                            ('card_printer = "no-such-printer"\n', "no-such-printer"),
                            ("auto_batch_seconds = -1\n", "auto_batch_seconds")):
        broken = await api_with(aiohttp_client, hub, settings)  # the hub starts; only printing is refused
        before = table_counts(hub.db)  # (a generation would count the token's last use)
        refused = await problem(broken, "POST", "/print-batches", {"kind": "card"}, status=409, slug="conflict")
        assert words in refused["detail"], refused
        assert table_counts(hub.db) == before
    assert (await call(api, "GET", "/print-jobs?state=queued", status=200))["total"] == 1
    await problem(api, "POST", "/print-batches", {"kind": "receipt"}, status=422, slug="validation-failed")
    await problem(api, "POST", "/print-batches", {"limit": 1001}, status=422, slug="validation-failed")
    await problem(api, "GET", "/print-jobs?state=printed", status=400, slug="invalid-parameter")


async def test_the_photo_layout_prints_the_holders_photo(aiohttp_client, sample_hub):
    hub = sample_hub
    api = await api_with(aiohttp_client, hub, 'layout = "museum-photo"\n')
    customer = (await call(api, "GET", "/customers?limit=1", status=200))["items"][0]["id"]
    shop = orders.OrderIn(lines=[orders.LineIn(product_id=hub.ids["annual_products"][0])], customer_id=customer,
                          delivery="pickup", payment_method="online")
    node = hub.db.execute("SELECT * FROM node").fetchone()
    item = orders.place_order(hub.db, node, None, shop, channel="shop", now=utcnow())["items"][0]
    photo = io.BytesIO()
    Image.new("RGB", (220, 280), "#6A8CAF").save(photo, "JPEG")
    card = orders.personalize_item(hub.db, cards.load_signer(hub.db, hub.dir), item["id"],
                                   orders.HolderIn(name="Mit Bild"), utcnow(), photo=("image/jpeg", photo.getvalue()))
    batch = await call(api, "POST", "/print-batches", {"kind": "card"}, status=201)
    assert batch["layout"] == "museum-photo"
    pdf = Path(batch["target"]).read_bytes()
    page = pdfium.PdfDocument(pdf)[0]
    assert len(list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]))) == 1
    assert qr_codes(pdf) == [[card["code"]]]


async def test_the_loop_serves_requests_while_a_batch_renders(api, monkeypatch):
    """Rendering runs in a thread: while it is held mid-render, the hub answers other requests."""
    rendering, go = threading.Event(), threading.Event()
    real = print_batches.render_and_send

    def held(*args):
        rendering.set()
        assert go.wait(30), "the test did not let the render finish"
        return real(*args)

    monkeypatch.setattr(print_batches, "render_and_send", held)
    issued = await phone_order(api, [f"Karte {i}" for i in range(60)], "pickup")
    batch = asyncio.create_task(call(api, "POST", "/print-batches", {"kind": "card", "limit": 1000}))
    assert await asyncio.to_thread(rendering.wait, 30)
    assert (await call(api, "GET", "/health", status=200))["status"] == "ok"
    assert (await call(api, "GET", "/print-jobs?state=queued", status=200))["total"] == 60  # not yet printed
    # an office batch at the same time waits for the first instead of taking the same jobs
    second = asyncio.create_task(call(api, "POST", "/print-batches", {"kind": "card"}))
    await asyncio.sleep(0.2)  # a window in which the second batch must NOT finish: no event to wait on
    assert not second.done()
    go.set()
    result = await batch
    assert result["jobs"] == 60 and len(pdfium.PdfDocument(Path(result["target"]).read_bytes())) == 60
    assert (await second)["jobs"] == 0
    assert {fulfilment(api.hub.db, c["id"]) for c in issued} == {"printed"}


async def test_the_print_worker_prints_new_cards_by_itself(aiohttp_client, sample_hub):
    client = await api_with(aiohttp_client, sample_hub, "auto_batch_seconds = 0.2\nbatch_size = 2\n")
    issued = await phone_order(client, ["Auto Eins", "Auto Zwei", "Auto Drei"], "mail")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (await call(client, "GET", "/print-jobs", status=200))["total"]:
        await asyncio.sleep(0.1)
    assert {fulfilment(sample_hub.db, c["id"]) for c in issued} == {"printed"}
    batches = (await call(client, "GET", "/print-batches", status=200))["items"]
    assert sorted((b["kind"], b["jobs"]) for b in batches) == [("card", 1), ("card", 2), ("carrier", 1),
                                                               ("carrier", 2)]
    files = sorted(p.name.split("-")[0] for p in (sample_hub.dir / "print-out").iterdir())
    assert files == ["card", "card", "carrier", "carrier"]
    await client.close()  # on_cleanup stops the worker
    assert not client.app[print_batches.PRINTING].worker.running


async def test_a_batch_another_hub_process_is_making_is_a_409_and_the_worker_skips_it(api):
    """Several hub processes on one database (docs/hub-processes.md): a batch takes the lease of
    its kind; while another process holds it, the office gets 409 and nothing is printed."""
    hub = api.hub
    await phone_order(api, ["Wartet Ab"], "pickup")
    assert leases.take(hub.db, "print-batch-card", "other-process", utcnow(), print_batches.LEASE)
    busy = await problem(api, "POST", "/print-batches", {"kind": "card"}, status=409, slug="conflict")
    assert "another hub process" in busy["detail"]
    desk = api.app[print_batches.PRINTING]
    worker = print_batches.PrintWorker(desk, 60)
    assert await worker.run_once() == []  # the card batch skipped; no carriers queued
    assert (await call(api, "GET", "/print-jobs?state=queued", status=200))["total"] == 1
    leases.give_back(hub.db, "print-batch-card", "other-process")
    assert (await call(api, "POST", "/print-batches", {"kind": "card"}, status=201))["jobs"] == 1
    assert leases.holder(hub.db, "print-batch-card", utcnow()) is None  # given back after the batch
