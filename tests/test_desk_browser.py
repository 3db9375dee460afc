"""The cash desk and the counter in a real browser (A4, A5, A8, E6), everything real:
`tessera hub serve` on a copy of the sample hub, a cash desk and a counter enrolled over
HTTP with one-time codes (`tessera hub enroll` + `tessera edge enroll`) and run with
`tessera edge serve`, and Debian's Chromium driven by Playwright.

The story: the cashier logs in on the PIN pad; the hub goes away and the status bar says
offline; she sells an annual card and a voucher for cash (change shown, receipt and card
really printed to the simulated printers); the voucher's QR payload is read back from the
receipt's ESC/POS bytes and "scanned" (typed + Enter, like a keyboard-wedge scanner) at
the counter, which makes and hands over the personalized card, and refuses the voucher the
second time; the hub comes back on the same port and both nodes show online with nothing
waiting; the office API then shows both cards, personalized and printed (the counter's one
handed over), and the hub holds the voucher's exchange. On the way: a wrong PIN shows the
error with the tries left, and the counter switches between English and German.

Screenshots of every screen go to `<tmp_path>/screenshots` and, for people, to
`test-output/desk-browser/` in the repository (git-ignored).

The browser runs in a plain (sync) test function, so it never meets pytest-aiohttp's loop.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
import urllib.request
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp
from playwright.sync_api import Page, expect

from hub.app import DB_NAME
from tests.browsers import chromium
from tests.test_sync_kill import Process, run_here

pytestmark = pytest.mark.slow  # Chromium and real tessera hub/edge processes, about 40 s

ROOT = Path(__file__).resolve().parents[1]
SHOTS_FOR_PEOPLE = ROOT / "test-output" / "desk-browser"
PIN_ANNA, PIN_BEN = "4711", "2580"
HUB_READY = r"hub API on (http://127\.0\.0\.1:\d+)/api/v1"
EDGE_READY = r"on (http://127\.0\.0\.1:\d+)/api/status"
STEP_MS = 10_000  # one screen reacting to a click, printing included
STATUS_MS = 12_000  # the desk's sync loop notices (1 s period) + the status bar refresh (4 s)
BACK_ONLINE_MS = 30_000  # the sync loop backs off (0.5, 1, 2, 4, 8, 16 s ...) while the hub is away; + refresh


def http_json(url: str, token: str | None = None, timeout: float = 10) -> dict | list:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_until_synced(edge_url: str, operators: int, deadline_s: float = 30) -> None:
    """The node pulled the catalog, the operators and the certificates, and nothing waits."""
    deadline = time.monotonic() + deadline_s
    while True:
        status = http_json(f"{edge_url}/api/status")
        if status["online"] and status["last_pull_at"] and status["ops_waiting"] == 0 \
                and len(http_json(f"{edge_url}/api/operators")) == operators:
            return
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def qr_payloads(escpos: bytes) -> list[str]:
    """The data of every native QR code in ESC/POS bytes: `GS ( k pL pH 49 80 48 data`
    (function 180, store the symbol data)."""
    found, at = [], 0
    while (at := escpos.find(b"\x1d(k", at)) >= 0:
        size = escpos[at + 3] + 256 * escpos[at + 4]
        if escpos[at + 5:at + 8] == b"\x31\x50\x30":
            found.append(escpos[at + 8:at + 5 + size].decode("ascii"))
        at += 5 + size
    return found


def printed_files(folder: Path, pattern: str, count: int, deadline_s: float = 10) -> list[Path]:
    """The printer's output files, once *count* are there (a card may print just after the answer)."""
    deadline = time.monotonic() + deadline_s
    while len(found := sorted(folder.glob(pattern)) if folder.exists() else []) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count} {pattern} in {folder}"
        time.sleep(0.1)
    assert len(found) == count, found
    return found


def pdf_text_and_codes(path: Path) -> tuple[str, list[str]]:
    doc = pdfium.PdfDocument(path.read_bytes())
    text = "".join(page.get_textpage().get_text_range() for page in doc)
    codes = [r.text for page in doc for r in zxingcpp.read_barcodes(page.render(scale=300 / 72).to_pil())
             if r.format == zxingcpp.BarcodeFormat.QRCode]
    return text, codes


class Shots:
    def __init__(self, folder: Path) -> None:
        self.folder, self.n = folder, 0
        folder.mkdir(parents=True)
        shutil.rmtree(SHOTS_FOR_PEOPLE, ignore_errors=True)
        SHOTS_FOR_PEOPLE.mkdir(parents=True)

    def __call__(self, page: Page, name: str) -> None:
        self.n += 1
        path = self.folder / f"{self.n:02d}-{name}.png"
        page.screenshot(path=path, full_page=True)
        shutil.copy2(path, SHOTS_FOR_PEOPLE / path.name)


def log_in(page: Page, url: str, name: str, pin: str) -> None:
    page.goto(f"{url}/")
    page.locator(f'[data-testid=operator-tile][data-operator-name="{name}"]').click()
    expect(page.locator("#login-who")).to_have_text(name)
    for digit in pin:
        page.locator(f"#pin-key-{digit}").click()
    expect(page.locator("#pin-input")).to_have_value(pin)


def test_desk_and_counter_in_a_browser_while_the_hub_is_down(tmp_path, sample_template):
    started = time.monotonic()
    hub_dir, desk_dir, counter_dir = tmp_path / "hub", tmp_path / "desk", tmp_path / "counter"
    log = tmp_path / "log.txt"
    shutil.copytree(sample_template[0], hub_dir)
    token, product_id = sample_template[1], sample_template[2]["annual_products"][0]
    shots = Shots(tmp_path / "screenshots")
    hub = Process(log, "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise", ready=HUB_READY)
    hub_port = hub.url.rsplit(":", 1)[1]
    processes = [hub]
    try:
        # the office: two operators, then one-time codes for a desk and a counter, enrolled over the network
        run_here("hub", "operator", "add", "--data", str(hub_dir), "--name", "Anna", "--pin", PIN_ANNA)
        run_here("hub", "operator", "add", "--data", str(hub_dir), "--name", "Ben", "--pin", PIN_BEN)
        for folder, node, role in ((desk_dir, "Kasse 1", "cashdesk"), (counter_dir, "Theke 1", "counter")):
            code = run_here("hub", "enroll", "--data", str(hub_dir), "--node", node, "--role", role).split()[-1]
            run_here("edge", "enroll", "--data", str(folder), "--code", code, "--hub", hub.url)
        desk = Process(log, "edge", "serve", "--data", str(desk_dir), "--port", "0", "--sync-seconds", "1",
                       ready=EDGE_READY)
        processes.append(desk)
        counter = Process(log, "edge", "serve", "--data", str(counter_dir), "--port", "0", "--sync-seconds", "1",
                          ready=EDGE_READY)
        processes.append(counter)
        wait_until_synced(desk.url, 2)
        wait_until_synced(counter.url, 2)
        product_name = http_json(f"{hub.url}/api/v1/annual-ticket-products/{product_id}", token)["name"]

        with chromium() as browser:
            # one browser profile per device: cookies are per host, not per port
            at_desk = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            at_counter = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
            for page in (at_desk, at_counter):
                page.set_default_timeout(STEP_MS)

            # 1. the cashier logs in on the PIN pad
            log_in(at_desk, desk.url, "Anna", PIN_ANNA)
            shots(at_desk, "desk-login-pin-pad")
            at_desk.locator("#pin-ok").click()
            at_desk.wait_for_url(f"{desk.url}/sell")
            expect(at_desk.locator("#status-operator")).to_contain_text("Anna")
            expect(at_desk.locator("#status-online")).to_have_attribute("data-online", "true")
            expect(at_desk.locator("#status-waiting")).to_have_text(re.compile(r"^0 "))
            shots(at_desk, "desk-sell-online")

            # at the counter: a wrong PIN first, then the right one
            log_in(at_counter, counter.url, "Ben", "0000")
            at_counter.locator("#pin-ok").click()
            expect(at_counter.locator("#login-error")).to_contain_text("Falsche PIN (noch 4 Versuche)")
            expect(at_counter.locator("#pin-input")).to_have_value("")
            shots(at_counter, "counter-wrong-pin")
            for digit in PIN_BEN:
                at_counter.locator(f"#pin-key-{digit}").click()
            at_counter.locator("#pin-ok").click()
            at_counter.wait_for_url(f"{counter.url}/counter")

            # English and back is one click each; the counter works in English from here
            expect(at_counter.locator("#voucher-check")).to_have_text("Prüfen")
            expect(at_counter.locator("label[for=voucher-scan]")).to_have_text("Gutschein scannen")
            at_counter.locator("#lang-en").click()
            at_counter.wait_for_url("**/counter?lang=en")
            expect(at_counter.locator("#voucher-check")).to_have_text("Check")
            expect(at_counter.locator("label[for=voucher-scan]")).to_have_text("Scan voucher")
            expect(at_counter.locator("#nav-counter")).to_have_text("Counter")
            expect(at_counter.locator("html")).to_have_attribute("lang", "en")

            # 2. the hub goes away: the desk says so on its own
            assert hub.stop() == 0
            hub_down = time.monotonic()
            expect(at_desk.locator("#status-online")).to_have_attribute("data-online", "false",
                                                                         timeout=STATUS_MS)
            expect(at_desk.locator("#status-online")).to_have_text("offline")
            offline_after = time.monotonic() - hub_down
            shots(at_desk, "desk-offline")

            # 3. sell one annual card and one voucher, cash, offline
            at_desk.locator(f'[data-testid=product-tile][data-product-id="{product_id}"]').click()
            holder = at_desk.locator('[data-testid=cart-line][data-kind=annual] [data-testid=holder-name]')
            expect(holder).to_be_focused()
            holder.fill("Jürgen Müller-Weiß")
            at_desk.locator(f'[data-testid=voucher-tile][data-product-id="{product_id}"]').click()
            expect(at_desk.locator("[data-testid=cart-line]")).to_have_count(2)
            expect(holder).to_have_value("Jürgen Müller-Weiß")  # re-rendering the cart keeps the name
            expect(at_desk.locator("#total")).to_have_text("130,00 €")
            # the optional customer, found in the desk's own replica while the hub is down
            at_desk.locator("#customer-search").fill("Müller")
            first_customer = at_desk.locator("[data-testid=customer-result]").first
            expect(first_customer).to_be_visible()
            customer_id = first_customer.get_attribute("data-customer-id")
            first_customer.click()
            expect(at_desk.locator("#customer-chosen")).to_contain_text("Müller")
            at_desk.locator("#given").fill("150")
            expect(at_desk.locator("#change")).to_have_text("20,00 €")
            shots(at_desk, "desk-cart-cash")
            at_desk.locator("#sell-button").click()
            expect(at_desk.locator("#sale-result")).to_be_visible()
            sale_number = at_desk.locator("#sale-number").inner_text().strip()
            assert sale_number
            expect(at_desk.locator("#sale-change")).to_have_text("20,00 €")
            expect(at_desk.locator("#sale-receipt")).to_have_text("gedruckt")
            sold = at_desk.locator("[data-testid=sale-card]")
            expect(sold).to_have_count(2)
            card_number = sold.nth(0).get_attribute("data-card-number")
            voucher_number = sold.nth(1).get_attribute("data-card-number")
            expect(sold.nth(0)).to_contain_text("Jürgen Müller-Weiß")
            expect(sold.nth(1)).to_contain_text(f"Gutschein {voucher_number}")
            expect(at_desk.locator("#message")).to_be_hidden()  # no printing error
            expect(at_desk.locator("#status-online")).to_have_attribute("data-online", "false")
            expect(at_desk.locator("#status-waiting")).not_to_have_text(re.compile(r"^0 "))
            shots(at_desk, "desk-sold-offline")

            receipts = printed_files(desk_dir / "var" / "printer-out", "*.escpos", 1)
            escpos = receipts[0].read_bytes()
            assert sale_number.encode() in escpos and b"130,00" in escpos and b"Bediener: Anna" in escpos
            assert b"GUTSCHEIN" in escpos
            desk_pdfs = printed_files(desk_dir / "var" / "card-out", "*.pdf", 1)
            desk_pdf_text, desk_pdf_codes = pdf_text_and_codes(desk_pdfs[0])
            assert "Jürgen Müller-Weiß" in desk_pdf_text and card_number in desk_pdf_text

            # 4. the voucher's QR payload, as the printer got it, scanned at the counter
            (voucher_code,) = qr_payloads(escpos)
            looked_up = at_desk.request.get(f"{desk.url}/api/cards", params={"q": voucher_code}).json()
            assert looked_up["scan"]["level"] == "ok"
            assert [(c["kind"], c["number"]) for c in looked_up["cards"]] == [("voucher", voucher_number)]
            scan = at_counter.locator("#voucher-scan")
            expect(scan).to_be_focused()
            at_counter.keyboard.type(voucher_code)
            at_counter.keyboard.press("Enter")
            expect(at_counter.locator("#voucher-product")).to_have_text(product_name)
            expect(at_counter.locator("#holder-name")).to_be_focused()
            at_counter.keyboard.type("Erika Mustermann")
            shots(at_counter, "counter-voucher-scanned")
            at_counter.locator("#redeem-button").click()
            expect(at_counter.locator("#redeem-result")).to_be_visible()
            counter_card = at_counter.locator("#redeem-card-number").inner_text().strip()
            assert counter_card and counter_card not in (card_number, voucher_number)
            expect(at_counter.locator("#redeem-holder")).to_have_text(f"Erika Mustermann · {product_name}")
            expect(at_counter.locator("#redeem-print")).to_have_text("printed")
            at_counter.locator("#handover-button").click()
            expect(at_counter.locator("#message")).to_have_text(f"{counter_card}: handed over")
            expect(at_counter.locator("#handover-button")).to_be_disabled()
            expect(at_counter.locator("#status-online")).to_have_attribute("data-online", "false",
                                                                            timeout=STATUS_MS)
            shots(at_counter, "counter-card-handed-over")
            counter_pdfs = printed_files(counter_dir / "var" / "card-out", "*.pdf", 1)
            counter_pdf_text, counter_pdf_codes = pdf_text_and_codes(counter_pdfs[0])
            assert "Erika Mustermann" in counter_pdf_text and counter_card in counter_pdf_text

            # the same voucher once more: refused, and nothing else happens
            at_counter.locator("#counter-reset").click()
            expect(scan).to_be_focused()
            at_counter.keyboard.type(voucher_code)
            at_counter.keyboard.press("Enter")
            expect(at_counter.locator("#message")).to_contain_text("voucher already exchanged")
            expect(at_counter.locator("#message")).to_contain_text(counter_card)
            expect(at_counter.locator("#message")).to_have_class(re.compile(r"\berror\b"))
            expect(at_counter.locator("#holder-form")).to_be_hidden()
            shots(at_counter, "counter-voucher-refused")

            # 5. the hub comes back (same folder, same port): both nodes catch up by themselves
            hub = Process(log, "hub", "serve", "--data", str(hub_dir), "--port", hub_port, "--no-advertise",
                          ready=HUB_READY)
            processes.append(hub)
            hub_back = time.monotonic()
            for page in (at_desk, at_counter):
                expect(page.locator("#status-online")).to_have_attribute("data-online", "true",
                                                                         timeout=BACK_ONLINE_MS)
                expect(page.locator("#status-waiting")).to_have_text(re.compile(r"^0 "), timeout=STATUS_MS)
            back_after = time.monotonic() - hub_back
            expect(at_desk.locator("#status-online")).to_have_text("online")
            expect(at_desk.locator("#status-last-sync")).not_to_contain_text("nie")
            shots(at_desk, "desk-back-online")
            at_counter.locator("#lang-de").click()
            at_counter.wait_for_url("**/counter?lang=de")
            expect(at_counter.locator("#voucher-check")).to_have_text("Prüfen")
            expect(at_counter.locator("#status-online")).to_have_attribute("data-online", "true")
            expect(at_counter.locator("#status-waiting")).to_have_text("0 warten auf Sync")
            shots(at_counter, "counter-back-online-german")

        # 6. the office sees both annual cards, personalized and printed, and the exchange
        cards = http_json(f"{hub.url}/api/v1/cards?product_id={product_id}&limit=200", token)["items"]
        by_number = {c["number"]: c for c in cards}
        desk_card, counter_card_row, voucher = by_number[card_number], by_number[counter_card], \
            by_number[voucher_number]
        assert (desk_card["holder_name"], desk_card["kind"], desk_card["fulfilment"], desk_card["delivery"]) == \
            ("Jürgen Müller-Weiß", "annual", "printed", "counter")
        assert (counter_card_row["holder_name"], counter_card_row["kind"], counter_card_row["fulfilment"]) == \
            ("Erika Mustermann", "annual", "handed_over")
        assert voucher["kind"] == "voucher" and voucher["holder_name"] is None
        assert not any(c["revoked_at"] for c in (desk_card, counter_card_row, voucher))
        printed = http_json(f"{hub.url}/api/v1/cards?fulfilment=printed&limit=200", token)["items"]
        handed_over = http_json(f"{hub.url}/api/v1/cards?fulfilment=handed_over&limit=200", token)["items"]
        assert desk_card["id"] in {c["id"] for c in printed}
        assert counter_card_row["id"] in {c["id"] for c in handed_over}
        # what was printed is what the hub holds: the QR codes in the PDFs are the cards' codes
        assert desk_pdf_codes == [desk_card["code"]] and counter_pdf_codes == [counter_card_row["code"]]
        assert http_json(f"{hub.url}/api/v1/conflicts", token) == []
        office = sqlite3.connect(f"file:{hub_dir / DB_NAME}?mode=ro", uri=True)
        try:
            redemption = office.execute("SELECT card_id, operator FROM voucher_redemptions WHERE voucher_id = ?",
                                        (voucher["id"],)).fetchone()
            order = office.execute("SELECT o.operator, o.channel, o.total_cents, p.given_cents, o.customer_id "
                                   "FROM orders o JOIN payments p ON p.order_id = o.id WHERE o.number = ?",
                                   (sale_number,)).fetchone()
        finally:
            office.close()
        assert redemption == (counter_card_row["id"], "Ben")
        assert order == ("Anna", "cashdesk", 13000, 15000, customer_id)
        for process in reversed(processes):
            assert process.stop() == 0
    finally:
        for process in processes:
            process.ensure_gone()
    print(f"\ndesk showed offline {offline_after:.1f} s after the hub stopped; "
          f"hub down {hub_back - hub_down:.1f} s, both nodes online again {back_after:.1f} s after the hub "
          f"restarted; {time.monotonic() - started:.1f} s in all; screenshots in {shots.folder}")
