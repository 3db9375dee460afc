"""Choice vouchers redeemed at the cash desk in a real browser (issue 15, S10), everything real:
`tessera hub serve` on a copy of the sample hub, a cash desk enrolled over HTTP with a one-time
code and run with `tessera edge serve`, Debian's Chromium driven by Playwright at the desk's
1024x768.

The story: the office sells a "Wahlgutschein 6er" at the disabled tier (six vouchers of 25,00 €)
and moves three seats of a ring C performance in the vouchers' offer into the desk's pool (two of
58,00 €, one of 22,00 €); the desk pulls them and the vouchers; the hub goes away. The cashier
scans one voucher's code (into the scan field), then another's anywhere on the page (a scanner's
burst), sees both in the list, tries to add the first again (refused, named), picks the
performance, the 58,00 € zone and a seat, sees the split (50,00 € by vouchers, 8,00 € to pay),
switches to "as payment" and back, is given 10 € cash, redeems: 2,00 € change, the receipt with
the ticket's QR printed. Every step is photographed in German and English (a language switch
keeps the redemption in progress), and every button is finger-sized.

The sale before it (S5), on the subscription screen with the hub down: "Wahlgutschein 6er" has no
seat map, so the cashier goes from the product to the customer, gives the disabled tier (84,00 €),
takes 100 € cash (16,00 € change) and sees the six voucher numbers; the one receipt job carries
six voucher slips whose QR codes (the printer's own, read from the job's bytes) are the vouchers'
signed codes.

Screenshots go to `<tmp_path>/screenshots` and to `test-output/desk-vouchers/` (git-ignored).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from hub.app import DB_NAME
from tests.browsers import chromium
from tests.test_desk_browser import (
    EDGE_READY,
    HUB_READY,
    STATUS_MS,
    STEP_MS,
    http_json,
    log_in,
    printed_files,
    qr_payloads,
    wait_until_synced,
)
from tests.test_desk_subscriptions_browser import Shots, assert_touch_sized, desk_cookie, post_json
from tests.test_desk_subscriptions_browser import both_languages as both_languages_of_sale
from tests.test_sync_kill import Process, run_here

pytestmark = pytest.mark.slow  # Chromium and real tessera hub/edge processes

PIN = "4711"
VOUCHER = "Wahlgutschein 6er"
DISABLED = "Schwerbehinderte (GdB ab 50)"
POOL_WAIT_S = 30


class VoucherShots(Shots):
    """The subscription screen's numbered full-page shots, into test-output/desk-vouchers/."""

    def __init__(self, folder: Path, prefix: str) -> None:
        import tests.test_desk_subscriptions_browser as subs

        people = Path(subs.ROOT) / "test-output" / "desk-vouchers"
        self.people = people
        self.folder, self.prefix, self.n = folder, prefix, 0
        folder.mkdir(parents=True)
        people.mkdir(parents=True, exist_ok=True)
        for old in people.glob(f"{prefix}-*.png"):
            old.unlink()

    def __call__(self, page: Page, name: str) -> None:
        self.n += 1
        path = self.folder / f"{self.prefix}-{self.n:02d}-{name}.png"
        page.screenshot(path=path, full_page=True)
        shutil.copy2(path, self.people / path.name)


def both_languages(page: Page, shots: VoucherShots, name: str, lang_now: str, ready: str) -> str:
    """A screenshot in the language shown, then one after switching to the other (the redemption in
    progress survives the page load; *ready* is an element the restored screen shows)."""
    assert_touch_sized(page)
    shots(page, f"{name}-{lang_now}")
    other = "en" if lang_now == "de" else "de"
    page.locator(f"#lang-{other}").click()
    page.wait_for_url(f"**/vouchers?lang={other}")
    expect(page.locator("html")).to_have_attribute("lang", other)
    expect(page.locator("#cv-add")).to_have_text("Add" if other == "en" else "Hinzufügen")
    expect(page.locator(ready).first).to_be_visible()
    assert_touch_sized(page)
    shots(page, f"{name}-{other}")
    return other


def hub_read(hub_dir: Path, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    db = sqlite3.connect(f"file:{hub_dir / DB_NAME}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def offer_ahead(hub_dir: Path, product_id: str, plan_id: str) -> str:
    """The first performance of the vouchers' offer in the main house that lies ahead."""
    return hub_read(hub_dir, "SELECT p.id FROM subscription_performances sp JOIN performances p ON p.id = "
                             "sp.performance_id JOIN plan_variants v ON v.id = p.variant_id WHERE sp.product_id = ? "
                             "AND v.plan_id = ? AND p.starts_at > strftime('%Y-%m-%dT%H:%M:%S', 'now') "
                             "ORDER BY p.starts_at LIMIT 1", (product_id, plan_id))[0]["id"]


def seats_in_zones(hub_dir: Path, performance_id: str, zones: list[str]) -> list[str]:
    """A free Parkett/Rang seat of the performance's variant per zone id given (distinct, in order)."""
    out: list[str] = []
    for zone in zones:
        rows = hub_read(hub_dir, "SELECT s.id FROM seats s JOIN performances p ON p.id = ? JOIN plan_variants v "
                                 "ON v.id = p.variant_id WHERE s.plan_id = v.plan_id AND s.zone_id = ? "
                                 "AND s.active = 1 AND (s.variant_id IS NULL OR s.variant_id = v.id) "
                                 "AND s.wheelchair = 0 AND s.companion = 0 AND s.id NOT IN (SELECT seat_id FROM "
                                 "variant_removed_seats WHERE variant_id = v.id) ORDER BY s.id LIMIT 5",
                        (performance_id, zone))
        out.append(next(r["id"] for r in rows if r["id"] not in out))
    return out


def wait_for_desk(desk_url: str, cookie: str, performance_id: str, seats: int, number: str) -> None:
    """The desk has pulled the seats moved into its pool and the vouchers."""
    deadline = time.monotonic() + POOL_WAIT_S
    while True:
        try:
            request = urllib.request.Request(f"{desk_url}/api/voucher-redemptions/seats?performance_id="
                                             f"{performance_id}", headers={"Cookie": cookie})
            with urllib.request.urlopen(request, timeout=10) as resp:
                found = len(json.loads(resp.read())["seats"])
            request = urllib.request.Request(f"{desk_url}/api/choice-vouchers?number={number}",
                                             headers={"Cookie": cookie})
            with urllib.request.urlopen(request, timeout=10) as resp:
                known = resp.status == 200
        except urllib.error.HTTPError:
            found, known = -1, False
        if found == seats and known:
            return
        assert time.monotonic() < deadline, (found, known)
        time.sleep(0.05)


def scan_anywhere(page: Page, code: str) -> None:
    """A keyboard-wedge scanner: the code typed far faster than a person, then Enter, focus elsewhere."""
    page.locator("#cv-split").click()  # the focus leaves the scan field
    page.keyboard.type(code, delay=2)
    page.keyboard.press("Enter")


def test_two_vouchers_for_a_dearer_seat_paid_the_difference_in_cash_while_the_hub_is_down(tmp_path, sample_template):
    hub_dir, desk_dir, log = tmp_path / "hub", tmp_path / "desk", tmp_path / "log.txt"
    shutil.copytree(sample_template[0], hub_dir)
    token, ids = sample_template[1], sample_template[2]
    product_id = ids["subscriptions"][VOUCHER]
    shots = VoucherShots(tmp_path / "screenshots", "vouchers")
    hub = Process(log, "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise", ready=HUB_READY)
    processes = [hub]
    try:
        run_here("hub", "operator", "add", "--data", str(hub_dir), "--name", "Anna", "--pin", PIN)
        code = run_here("hub", "enroll", "--data", str(hub_dir), "--node", "Kasse 1", "--role", "cashdesk").split()[-1]
        run_here("edge", "enroll", "--data", str(desk_dir), "--code", code, "--hub", hub.url)
        desk = Process(log, "edge", "serve", "--data", str(desk_dir), "--port", "0", "--sync-seconds", "1",
                       ready=EDGE_READY)
        processes.append(desk)
        wait_until_synced(desk.url, 1)
        node_id = http_json(f"{desk.url}/api/status")["node_id"]

        # the office sells six vouchers at the disabled tier and gives the desk three seats
        customer = hub_read(hub_dir, "SELECT id FROM customers ORDER BY number LIMIT 1")[0]["id"]
        tier = hub_read(hub_dir, "SELECT id FROM discount_tiers WHERE product_id = ? AND name = ?",
                        (product_id, DISABLED))[0]["id"]
        request = urllib.request.Request(
            f"{hub.url}/api/v1/subscriptions", method="POST",
            data=json.dumps({"product_id": product_id, "customer_id": customer, "tier_id": tier,
                             "payment_method": "transfer"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "desk-vouchers",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            sold = json.loads(resp.read())
        vouchers = http_json(f"{hub.url}/api/v1/subscriptions/{sold['id']}/choice-vouchers", token)["items"]
        perf = offer_ahead(hub_dir, product_id, ids["plans"]["Großes Haus"])
        dear, dear2, cheap = seats_in_zones(hub_dir, perf, [ids["zones"]["1"], ids["zones"]["1"], ids["zones"]["4"]])
        post_json(f"{hub.url}/api/v1/performances/{perf}/pools", {"seat_ids": [dear, dear2, cheap],
                                                                  "to": f"node:{node_id}"}, token=token)
        cookie = desk_cookie(desk.url, "Anna", PIN)
        wait_for_desk(desk.url, cookie, perf, 3, vouchers[1]["number"])

        with chromium() as browser:
            page = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
            page.set_default_timeout(STEP_MS)
            log_in(page, desk.url, "Anna", PIN)
            page.locator("#pin-ok").click()
            page.wait_for_url(f"{desk.url}/sell")
            page.locator("#nav-vouchers").click()
            page.wait_for_url(f"{desk.url}/vouchers")
            expect(page.locator("#nav-vouchers")).to_have_text("Wahlgutscheine")
            assert hub.stop() == 0  # the hub goes away: the desk redeems from its own copy
            expect(page.locator("#status-online")).to_have_attribute("data-online", "false", timeout=STATUS_MS)

            # 1. scan: one code into the scan field, one anywhere on the page; a repeat is refused
            expect(page.locator("#cv-scan")).to_be_focused()
            page.locator("#cv-scan").fill(vouchers[0]["code"])
            page.locator("#cv-scan").press("Enter")
            expect(page.locator("[data-testid=cv-voucher]")).to_have_count(1)
            scan_anywhere(page, vouchers[1]["code"])
            expect(page.locator("[data-testid=cv-voucher]")).to_have_count(2)
            expect(page.locator(f'[data-testid=cv-voucher][data-number="{vouchers[1]["number"]}"]')).to_contain_text(
                "25,00 €")
            page.locator("#cv-scan").fill(vouchers[0]["number"])
            page.locator("#cv-scan").press("Enter")
            expect(page.locator("#message")).to_have_text(
                f"Gutschein {vouchers[0]['number']} ist schon in der Liste.")
            expect(page.locator("[data-testid=cv-voucher]")).to_have_count(2)
            lang = both_languages(page, shots, "scanned", "de", "[data-testid=cv-voucher]")

            # 2. the performance, the dear zone, a seat: the split
            page.locator(f'[data-testid=cv-perf][data-performance-id="{perf}"]').click()
            zones = page.locator("[data-testid=cv-zone]")
            expect(zones).to_have_count(2)
            expect(zones.first).to_contain_text("Preiskategorie I · 58,00 €")  # the zone's name, not its code
            page.locator(f'[data-testid=cv-zone][data-zone-id="{ids["zones"]["1"]}"]').click()
            expect(page.locator("[data-testid=cv-seat]")).to_have_count(2)
            page.locator(f'[data-testid=cv-seat][data-seat-id="{dear}"]').click()
            expect(page.locator("#cv-price")).to_have_text("58,00 €")
            expect(page.locator("#cv-used")).to_have_text("50,00 €")
            expect(page.locator("#cv-lapsed")).to_have_text("0,00 €")
            expect(page.locator("#total")).to_have_text("8,00 €")
            expect(page.locator("#cv-discount")).to_contain_text(f"{DISABLED} – {VOUCHER}")
            lang = both_languages(page, shots, "split", lang, "#cv-pay-panel")
            expect(page.locator("#total")).to_have_text("8,00 €")  # kept over the switch
            expect(page.locator(f'[data-testid=cv-seat][data-seat-id="{dear}"]')).to_have_attribute(
                "aria-pressed", "true")
            page.locator("#cv-rule-payment").click()  # as payment: same price, no discount type
            expect(page.locator("#cv-discount")).to_have_text("")
            expect(page.locator("#total")).to_have_text("8,00 €")
            page.locator("#cv-rule-value").click()
            expect(page.locator("#cv-discount")).not_to_have_text("")

            # 3. 10 € cash: 2 € change; redeem; receipt with the ticket's QR
            page.locator("#given-10").click()
            expect(page.locator("#change")).to_have_text("2,00 €")
            lang = both_languages(page, shots, "pay-cash", lang, "#redeem-button")
            expect(page.locator("#change")).to_have_text("2,00 €")
            page.locator("#redeem-button").click()
            expect(page.locator("#cv-result")).to_be_visible()
            expect(page.locator("#cv-change")).to_have_text("2,00 €")
            expect(page.locator("[data-testid=cv-done-voucher]")).to_have_count(2)
            number = page.locator("#cv-number").inner_text().strip()
            expect(page.locator("#message")).to_be_hidden()
            lang = both_languages(page, shots, "redeemed", lang, "#cv-new")
            expect(page.locator("#cv-number")).to_have_text(number)  # the result stays over a switch
            (receipt,) = printed_files(desk_dir / "var" / "printer-out", "*.escpos", 1)
            escpos = receipt.read_bytes()
            assert number.encode() in escpos and b"58,00" in escpos and len(qr_payloads(escpos)) == 1

            # the next redemption starts empty; a used voucher is refused by name
            page.locator("#cv-new").click()
            expect(page.locator("[data-testid=cv-voucher]")).to_have_count(0)
            page.locator("#cv-scan").fill(vouchers[0]["number"])
            page.locator("#cv-scan").press("Enter")
            expect(page.locator("#message")).to_contain_text(re.compile(
                rf"{vouchers[0]['number']}.*(eingelöst|redeemed)"))
            shots(page, f"used-refused-{lang}")
        for process in reversed(processes):
            process.stop()
    finally:
        for process in processes:
            process.ensure_gone()


def test_six_vouchers_sold_at_the_disabled_tier_for_cash_print_six_slips_while_the_hub_is_down(tmp_path,
                                                                                               sample_template):
    hub_dir, desk_dir, log = tmp_path / "hub", tmp_path / "desk", tmp_path / "log.txt"
    shutil.copytree(sample_template[0], hub_dir)
    product_id = sample_template[2]["subscriptions"][VOUCHER]
    shots = VoucherShots(tmp_path / "screenshots", "sale")
    hub = Process(log, "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise", ready=HUB_READY)
    processes = [hub]
    try:
        run_here("hub", "operator", "add", "--data", str(hub_dir), "--name", "Anna", "--pin", PIN)
        code = run_here("hub", "enroll", "--data", str(hub_dir), "--node", "Kasse 1", "--role", "cashdesk").split()[-1]
        run_here("edge", "enroll", "--data", str(desk_dir), "--code", code, "--hub", hub.url)
        desk = Process(log, "edge", "serve", "--data", str(desk_dir), "--port", "0", "--sync-seconds", "1",
                       ready=EDGE_READY)
        processes.append(desk)
        wait_until_synced(desk.url, 1)

        with chromium() as browser:
            page = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
            page.set_default_timeout(STEP_MS)
            log_in(page, desk.url, "Anna", PIN)
            page.locator("#pin-ok").click()
            page.wait_for_url(f"{desk.url}/sell")
            page.locator("#nav-subscriptions").click()
            page.wait_for_url(f"{desk.url}/subscriptions")
            assert hub.stop() == 0  # the hub goes away: the desk sells and signs the vouchers itself
            expect(page.locator("#status-online")).to_have_attribute("data-online", "false", timeout=STATUS_MS)

            # 1. the voucher product's tile: count, value and offer, no seats free to count
            tile = page.locator(f'[data-testid=sub-product-tile][data-product-id="{product_id}"]')
            expect(tile.locator("[data-testid=sub-vouchers]")).to_contain_text("6 x 25,00 € Wahlgutscheine")
            expect(tile).to_contain_text("120,00 €")
            lang = both_languages_of_sale(page, shots, "products", "de", "[data-testid=sub-vouchers]")
            tile.click()

            # 2. no seat map: straight to the customer, the offer in the summary; the disabled tier
            expect(page.locator("#step-customer")).to_be_visible()
            expect(page.locator("#sub-step-seats")).to_be_hidden()
            expect(page.locator("#sub-step-dates")).to_be_hidden()
            expect(page.locator("#seat-map svg")).to_have_count(0)
            expect(page.locator("[data-testid=voucher-offer]")).to_be_visible()
            page.locator("#customer-search").fill("Mül")
            page.locator("[data-testid=customer-result]").first.click()
            expect(page.locator("#customer-chosen")).to_contain_text("Mül")
            expect(page.locator("[data-testid=member-row]")).to_have_count(1)
            page.locator("[data-testid=tier-choice]", has_text="Schwerbehinderte").click()
            expect(page.locator("#total")).to_have_text("84,00 €")  # 120,00 € with 30 % off
            expect(page.locator("[data-testid=member-price]")).to_have_text("84,00 €")
            lang = both_languages_of_sale(page, shots, "customer-tier", lang,
                                          "[data-testid=member-price]:not(:empty)")
            expect(page.locator("[data-testid=tier-choice][aria-pressed=true]")).to_contain_text(
                "Schwerbehinderte")  # kept over the switch
            page.locator("#sub-next").click()

            # 3. cash: 100 € given, 16 € back; sold: the six voucher numbers and their slips
            page.locator("#pay-cash").click()
            page.locator("#given-100").click()
            expect(page.locator("#change")).to_have_text("16,00 €")
            lang = both_languages_of_sale(page, shots, "pay-cash", lang, "#sell-button")
            page.locator("#sell-button").click()
            expect(page.locator("#sale-result")).to_be_visible()
            expect(page.locator("#sale-change")).to_have_text("16,00 €")
            expect(page.locator("#message")).to_be_hidden()
            sold = page.locator("[data-testid=sale-subscription]")
            expect(sold).to_have_count(1)
            expect(sold).not_to_contain_text(re.compile("Abo-Ausweis|Einzeltickets"))  # vouchers: no form
            listed = sold.locator("[data-testid=sale-voucher]")
            expect(listed).to_have_count(6)
            numbers = [listed.nth(k).get_attribute("data-number") for k in range(6)]
            assert all(re.fullmatch(r"W[0-9A-F]{6}-\d{4}-\d{6}", n) for n in numbers) and len(set(numbers)) == 6
            assert page.evaluate("""() => { const box = document.getElementById('sale-result')
              .getBoundingClientRect(); return [...document.querySelectorAll('[data-testid=sale-voucher]')]
              .every((v) => v.getBoundingClientRect().right <= box.right); }""")  # each number whole in the box
            expect(page.locator("#sale-receipt")).to_contain_text(
                re.compile(r"(mit 6 Gutschein-Abschnitten|with 6 voucher slips)"))
            number = page.locator("#sale-number").inner_text().strip()
            lang = both_languages_of_sale(page, shots, "sold", lang, "#new-sale")
            expect(page.locator("#sale-number")).to_have_text(number)  # the result stays over a switch

            # the one receipt job: the sale, then a slip per voucher whose QR is its signed code
            (receipt,) = printed_files(desk_dir / "var" / "printer-out", "*.escpos", 1)
            escpos = receipt.read_bytes()
            assert number.encode() in escpos and b"84,00" in escpos
            assert all(n.encode() in escpos for n in numbers)
            codes = dict(desk_read(desk_dir, "SELECT number, code FROM choice_vouchers WHERE number IN "
                                             f"({', '.join('?' * len(numbers))})", tuple(numbers)))
            assert qr_payloads(escpos) == [codes[n] for n in sorted(numbers)]  # the printer's own QR codes
        for process in reversed(processes):
            process.stop()
    finally:
        for process in processes:
            process.ensure_gone()


def desk_read(desk_dir: Path, sql: str, args: tuple = ()) -> list[tuple]:
    db = sqlite3.connect(f"file:{desk_dir / 'node.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()
