"""The cash desk's subscription sale in a real browser (issue 14: S2 ring, S17 ring seats in the
desk's pool), everything real: `tessera hub serve` on a copy of the sample hub, a cash desk
enrolled over HTTP with a one-time code and run with `tessera edge serve`, Debian's Chromium
driven by Playwright at the desk's 1024x768.

The story: the office moves ring seats of "Abo-Ring A" into the desk's pool (two seats of the
covered orchestra pit, which exist only where the pit is covered, and three Parkett seats) and
the desk pulls them; the hub goes away; the cashier sells two subscriptions side by side: she
taps the two pit seats on the "pit covered" map and sees them booked across the ring, steps
through the "pit open" variant (the suggestion taken for the first, a seat tapped for the
second), creates the customer, gives the second subscriber a student discount, takes the pass
and single tickets, is paid cash with change, and sees the numbers and what printed (receipt
with 16 ticket slips, each with its QR, passes queued to the card printer). A scanned code
opens the card lookup. Every step is photographed in German and English (a language switch
keeps the sale in progress). Then the hub comes back: the desk pushes (nothing waiting) and the
hub holds both subscriptions with their 16 seats, replacements where the pit is open.

Screenshots go to `<tmp_path>/screenshots` and to `test-output/desk-subscriptions/` (git-ignored).
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
    BACK_ONLINE_MS,
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
from tests.test_sync_kill import Process, run_here

pytestmark = pytest.mark.slow  # Chromium and real tessera hub/edge processes

ROOT = Path(__file__).resolve().parents[1]
SHOTS_FOR_PEOPLE = ROOT / "test-output" / "desk-subscriptions"
PIN = "4711"
RING = "Abo-Ring A"
PIT_OPEN = "Standard (Orchestergraben offen)"
PIT_COVERED = "Orchestergraben überbaut"
POOL_WAIT_S = 30


class Shots:
    """Numbered screenshots of the page as it is, full page (to see that nothing is cut off)."""

    def __init__(self, folder: Path, prefix: str) -> None:
        # the two tests may run side by side (xdist): each clears and writes only its own names
        self.folder, self.prefix, self.n = folder, prefix, 0
        folder.mkdir(parents=True)
        SHOTS_FOR_PEOPLE.mkdir(parents=True, exist_ok=True)
        for old in SHOTS_FOR_PEOPLE.glob(f"{prefix}-*.png"):
            old.unlink()

    def __call__(self, page: Page, name: str) -> None:
        self.n += 1
        path = self.folder / f"{self.prefix}-{self.n:02d}-{name}.png"
        page.screenshot(path=path, full_page=True)
        shutil.copy2(path, SHOTS_FOR_PEOPLE / path.name)


TOUCH_PX = 44


def assert_touch_sized(page: Page) -> None:
    """Every visible button, tab, link and seat of the screen is at least 44x44 px, and nothing is
    wider than the screen (no sideways scrolling of the page)."""
    small = page.evaluate("""(min) => [...document.querySelectorAll(
        'main button, main [role=tab], nav a, header a, header button, main svg [data-seat-id]')]
      .filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
      .map((e) => [e.id || e.dataset.testid || e.dataset.seatId || e.textContent.trim().slice(0, 20),
                   e.getBoundingClientRect()])
      .filter(([, r]) => r.width > 0 && (r.width < min - 0.5 || r.height < min - 0.5))
      .map(([name, r]) => `${name} ${Math.round(r.width)}x${Math.round(r.height)}`)""", TOUCH_PX)
    assert small == [], small
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


def both_languages(page: Page, shots: Shots, name: str, lang_now: str, ready: str) -> str:
    """A screenshot in the language shown, then one after switching to the other (the sale in
    progress survives the page load; *ready* is an element the restored step shows); returns
    the language now shown."""
    assert_touch_sized(page)
    shots(page, f"{name}-{lang_now}")
    other = "en" if lang_now == "de" else "de"
    page.locator(f"#lang-{other}").click()
    page.wait_for_url(f"**/subscriptions?lang={other}")
    expect(page.locator("html")).to_have_attribute("lang", other)
    expect(page.locator("#sub-back")).to_have_text("Back" if other == "en" else "Zurück")
    expect(page.locator(ready).first).to_be_visible()
    assert_touch_sized(page)
    shots(page, f"{name}-{other}")
    return other


def seat_ids(hub_dir: Path, plan_id: str, wanted: list[tuple[str, str]]) -> list[str]:
    """Seat ids of the main house's Parkett by (row, seat label), read from the hub's file."""
    db = sqlite3.connect(f"file:{hub_dir / DB_NAME}?mode=ro", uri=True)
    try:
        return [db.execute("SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id WHERE s.plan_id = ? "
                           "AND c.name = 'Parkett' AND s.row_label = ? AND s.label = ?",
                           (plan_id, row, label)).fetchone()[0] for row, label in wanted]
    finally:
        db.close()


def variants_of(hub_dir: Path, performance_ids: list[str]) -> dict[str, str]:
    """performance id -> the name of its plan variant."""
    db = sqlite3.connect(f"file:{hub_dir / DB_NAME}?mode=ro", uri=True)
    try:
        return {p: db.execute("SELECT v.name FROM performances p JOIN plan_variants v ON v.id = p.variant_id "
                              "WHERE p.id = ?", (p,)).fetchone()[0] for p in performance_ids}
    finally:
        db.close()


def post_json(url: str, body: dict, token: str | None = None, cookie: str | None = None) -> tuple[dict, str]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie:
        headers["Cookie"] = cookie
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read()), resp.headers.get("Set-Cookie", "")


def desk_cookie(desk_url: str, name: str, pin: str) -> str:
    operator = next(o for o in http_json(f"{desk_url}/api/operators") if o["name"] == name)
    _, set_cookie = post_json(f"{desk_url}/api/login", {"operator_id": operator["id"], "pin": pin})
    return set_cookie.split(";", 1)[0]


def wait_for_pool(desk_url: str, cookie: str, product_id: str, free: int) -> dict:
    """The desk has pulled the ring seats moved into its pool: the product shows them free."""
    deadline = time.monotonic() + POOL_WAIT_S
    while True:
        request = urllib.request.Request(f"{desk_url}/api/subscription-products", headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=10) as resp:
            products = json.loads(resp.read())["products"]
        found = next((p for p in products if p["id"] == product_id), None)
        if found and found["free_in_pool"] == free:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def tap(page: Page, box: str, seat_id: str, state: str = "selected") -> None:
    """Tap a seat on a map and wait for the map to come back with the seat in *state*."""
    page.locator(f'#{box} [data-seat-id="{seat_id}"]').click()
    expect(page.locator(f'#{box} [data-seat-id="{seat_id}"]')).to_have_attribute("data-state", state)


def booked(page: Page, member: int) -> dict[str, tuple[str, str]]:
    """The summary's dates of a member: performance id -> (seat id, replacement true|false)."""
    rows = page.locator(f'[data-testid=member-summary][data-member="{member}"] [data-testid=booked-date]')
    return {r.get_attribute("data-performance-id"): (r.get_attribute("data-seat-id"),
                                                     r.get_attribute("data-replacement")) for r in rows.all()}


def test_a_ring_across_two_plan_variants_sold_at_the_desk_while_the_hub_is_down(tmp_path, sample_template):
    started = time.monotonic()
    hub_dir, desk_dir, log = tmp_path / "hub", tmp_path / "desk", tmp_path / "log.txt"
    shutil.copytree(sample_template[0], hub_dir)
    token, ids = sample_template[1], sample_template[2]
    ring_id, ring = ids["subscriptions"][RING], ids["rings"]["A"]
    shots = Shots(tmp_path / "screenshots", "ring")
    hub = Process(log, "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise", ready=HUB_READY)
    hub_port = hub.url.rsplit(":", 1)[1]
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

        # the office moves ring seats into the desk's pool: two pit seats (only where the pit is
        # covered) and three Parkett seats (everywhere); the desk pulls them
        pit_a5, pit_a6, p3_6, p3_7, p3_8 = seat_ids(hub_dir, ids["plans"]["Großes Haus"],
                                                     [("A", "5"), ("A", "6"), ("3", "6"), ("3", "7"), ("3", "8")])
        moved, _ = post_json(f"{hub.url}/api/v1/subscription-products/{ring_id}/pools",
                             {"seat_ids": [pit_a5, pit_a6, p3_6, p3_7, p3_8], "to": f"node:{node_id}"}, token=token)
        assert len(moved["moved"]) == 5
        variant = variants_of(hub_dir, ring)
        covered = [p for p in ring if variant[p] == PIT_COVERED]
        pit_open = [p for p in ring if variant[p] == PIT_OPEN]
        assert len(covered) == len(pit_open) == 4
        cookie = desk_cookie(desk.url, "Anna", PIN)
        wait_for_pool(desk.url, cookie, ring_id, free=3)  # the pit seats are not free where the pit is open

        with chromium() as browser:
            page = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
            page.set_default_timeout(STEP_MS)
            log_in(page, desk.url, "Anna", PIN)
            page.locator("#pin-ok").click()
            page.wait_for_url(f"{desk.url}/sell")
            page.locator("#nav-subscriptions").click()
            page.wait_for_url(f"{desk.url}/subscriptions")
            expect(page.locator("#nav-subscriptions")).to_have_text("Abos")

            # the hub goes away; the status bar says so
            assert hub.stop() == 0
            expect(page.locator("#status-online")).to_have_attribute("data-online", "false", timeout=STATUS_MS)

            # 1. the product tiles: the ring with its dates and the seats free in this desk's pool
            tile = page.locator(f'[data-testid=sub-product-tile][data-product-id="{ring_id}"]')
            expect(tile).to_contain_text(RING)
            expect(tile.locator("[data-testid=sub-free]")).to_have_text("3 Plätze frei an dieser Kasse")
            expect(tile).to_contain_text("8 Termine")
            lang = both_languages(page, shots, "products", "de", "[data-testid=sub-product-tile]")
            expect(tile.locator("[data-testid=sub-free]")).to_have_text("3 seats free at this desk")
            tile.click()

            # 2. the seat map: a tab per plan variant; the pit seats on the "pit covered" map
            tabs = page.locator("[data-testid=map-tab]")
            expect(tabs).to_have_count(2)
            pit_tab = page.locator("[data-testid=map-tab]", has_text="Faust I")  # a play: the pit covered
            pit_tab.click()
            expect(page.locator(f'#seat-map [data-seat-id="{pit_a5}"]')).to_have_attribute("data-state", "free")
            expect(page.locator("#seat-map [data-state=free]")).to_have_count(5)
            tap(page, "seat-map", pit_a5)
            tap(page, "seat-map", pit_a6)
            expect(pit_tab.locator("[data-testid=map-tab-count]")).to_have_text("2")
            # booked across the ring: each pit seat at the four covered dates; a replacement where open
            for member, seat in ((0, pit_a5), (1, pit_a6)):
                across = booked(page, member)
                assert set(across) == set(ring)
                assert all(across[p] == (seat, "false") for p in covered), across
                assert all(across[p][1] == "true" for p in pit_open), across
            first_replacement = booked(page, 0)[pit_open[0]][0]
            assert first_replacement in (p3_6, p3_7, p3_8)  # the suggestion, preselected
            lang = both_languages(page, shots, "seats-party-across-the-ring", lang,
                                  f'#seat-map [data-seat-id="{pit_a5}"]')
            expect(page.locator(f'#seat-map [data-seat-id="{pit_a5}"]')).to_have_attribute(
                "data-state", "selected")  # kept over the language switch
            page.locator("#sub-next").click()

            # 3. the variant steps: where the pit is open, a replacement per subscriber
            expect(page.locator("#variant-step-of")).to_have_text(re.compile(r"^(Schritt 1 von 2|Step 1 of 2)$"))
            expect(page.locator(f'#step-map [data-seat-id="{first_replacement}"]')).to_have_attribute(
                "data-state", "selected")
            expect(page.locator(f'#step-map [data-seat-id="{pit_a5}"]')).to_have_count(0)  # no pit here
            lang = both_languages(page, shots, "variant-step-suggestion", lang, "#step-map [data-state=selected]")
            page.locator("#sub-next").click()  # the suggestion taken
            expect(page.locator("#variant-step-of")).to_have_text(re.compile(r"^(Schritt 2 von 2|Step 2 of 2)$"))
            suggested = booked(page, 1)[pit_open[0]][0]  # preselected unless member 1 has it
            second = next(s for s in (p3_8, p3_7, p3_6) if s not in (first_replacement, suggested))
            tap(page, "step-map", second)  # the cashier taps a seat of her own
            expect(page.locator("#variant-suggestion")).to_contain_text(
                re.compile(r" · (gewählt|chosen): Parkett, (Reihe|Row) 3, (Platz|Seat) [678]$"))
            assert all(booked(page, 1)[p] == (second, "true") for p in pit_open)
            lang = both_languages(page, shots, "variant-step-tapped", lang, "#step-map [data-state=selected]")
            page.locator("#sub-next").click()

            # 4. the customer (new, offline), a tier and a pass name per subscriber, the form
            page.locator("#new-customer").click()
            page.locator("#nc-first").fill("Grete")
            page.locator("#nc-last").fill("Weißhaupt")
            page.locator("#nc-street").fill("Am Wall 12")
            page.locator("#nc-postcode").fill("2819")  # four digits: no German postcode
            page.locator("#nc-town").fill("Bremen")
            page.locator("#nc-save").click()
            expect(page.locator("#message")).to_have_text(
                "Die PLZ passt nicht zum Land (Deutschland: fünf Ziffern).")
            expect(page.locator("#nc-postcode")).to_be_focused()
            expect(page.locator("#nc-postcode")).to_have_class(re.compile(r"\bfield-bad\b"))
            shots(page, "new-customer-postcode-refused-de")
            page.locator("#nc-postcode").fill("28195")
            page.locator("#nc-save").click()
            expect(page.locator("#customer-chosen")).to_contain_text("Weißhaupt, Grete")
            members = page.locator("[data-testid=member-row]")
            expect(members).to_have_count(2)
            expect(members.nth(0).locator("[data-testid=member-holder]")).to_have_value("Grete Weißhaupt")
            members.nth(1).locator("[data-testid=member-holder]").fill("Lena Weißhaupt")
            members.nth(1).locator("[data-testid=tier-choice]", has_text="Schüler").click()
            page.locator('[data-testid=form-choice][data-form="both"]').click()
            expect(page.locator("#total")).to_have_text("552,00 €")  # 368 + 184 (50 % off)
            expect(members.nth(1).locator("[data-testid=member-price]")).to_have_text("184,00 €")
            lang = both_languages(page, shots, "customer-tiers-form", lang,
                                  "[data-testid=member-price]:not(:empty)")
            expect(members.nth(1).locator("[data-testid=member-holder]")).to_have_value("Lena Weißhaupt")
            page.locator("#sub-next").click()

            # 5. cash with change
            page.locator("#given").fill("600")
            expect(page.locator("#change")).to_have_text("48,00 €")
            lang = both_languages(page, shots, "pay-cash", lang, "#sell-button")
            expect(page.locator("#change")).to_have_text("48,00 €")
            page.locator("#sell-button").click()
            expect(page.locator("#sale-result")).to_be_visible()
            number = page.locator("#sale-number").inner_text().strip()
            expect(page.locator("#sale-change")).to_have_text("48,00 €")
            sold = page.locator("[data-testid=sale-subscription]")
            expect(sold).to_have_count(2)
            sub_numbers = [sold.nth(k).get_attribute("data-number") for k in range(2)]
            expect(sold.nth(1)).to_contain_text("Lena Weißhaupt")
            expect(page.locator("#sale-receipt")).to_have_text(re.compile(r"^(gedruckt · mit|printed · with) 16 "))
            expect(page.locator("#message")).to_be_hidden()
            expect(page.locator("#status-online")).to_have_attribute("data-online", "false")
            expect(page.locator("#status-waiting")).not_to_have_text(re.compile(r"^0 "))
            lang = both_languages(page, shots, "sold", lang, "#new-sale")
            expect(page.locator("#sale-number")).to_have_text(number)  # the result stays over a switch

            # the receipt with the 16 ticket slips, each with its QR code; the passes queued to the card printer
            (receipt,) = printed_files(desk_dir / "var" / "printer-out", "*.escpos", 1)  # one job, slips after
            escpos = receipt.read_bytes()
            assert number.encode() in escpos and b"552,00" in escpos and b"48,00" in escpos
            codes = qr_payloads(escpos)
            assert len(codes) == 16 and len(set(codes)) == 16
            printed_files(desk_dir / "var" / "card-out", "*.pdf", 2)

            # a scanned code (a ticket slip's QR) opens the card lookup from this screen
            page.locator("#new-sale").click()
            expect(page.locator("[data-testid=sub-product-tile]").first).to_be_visible()
            page.keyboard.type(codes[0])
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(r"/cards\?q="))
            expect(page.locator("#scan-verdict")).to_be_visible()
            shots(page, f"scan-opens-lookup-{lang}")

            # the hub comes back: the desk pushes everything
            hub = Process(log, "hub", "serve", "--data", str(hub_dir), "--port", hub_port, "--no-advertise",
                          ready=HUB_READY)
            processes.append(hub)
            expect(page.locator("#status-online")).to_have_attribute("data-online", "true",
                                                                      timeout=BACK_ONLINE_MS)
            expect(page.locator("#status-waiting")).to_have_text(re.compile(r"^0 "), timeout=STATUS_MS)
            page.goto(f"{desk.url}/subscriptions")
            shots(page, f"back-online-{lang}")

        # the hub holds both subscriptions, every date seated, the replacements where the pit is open
        office = sqlite3.connect(f"file:{hub_dir / DB_NAME}?mode=ro", uri=True)
        try:
            held = office.execute(
                "SELECT s.number, s.holder_name, s.form, s.state, s.price_cents, s.line_id FROM subscriptions s "
                "JOIN order_lines l ON l.id = s.line_id JOIN orders o ON o.id = l.order_id WHERE o.number = ? "
                "ORDER BY s.price_cents DESC", (number,)).fetchall()
            order = office.execute("SELECT o.operator, o.channel, o.total_cents, p.method, p.given_cents FROM orders o "
                                   "JOIN payments p ON p.order_id = o.id WHERE o.number = ?", (number,)).fetchone()
            seats = {line: dict(office.execute("SELECT performance_id, seat_id FROM tickets WHERE line_id = ? "
                                               "AND status = 'sold'", (line,)).fetchall())
                     for *_, line in held}
        finally:
            office.close()
        assert order == ("Anna", "cashdesk", 55200, "cash", 60000)  # the cash handed over, as typed at the desk
        assert sorted(h[0] for h in held) == sorted(sub_numbers)
        assert [(h[1], h[2], h[3], h[4]) for h in held] == [("Grete Weißhaupt", "both", "active", 36800),
                                                            ("Lena Weißhaupt", "both", "active", 18400)]
        for (*_, line), pit_seat, replacement in zip(held, (pit_a5, pit_a6), (first_replacement, second), strict=True):
            assert seats[line] == {p: pit_seat if p in covered else replacement for p in ring}
        for process in reversed(processes):
            assert process.stop() == 0
    finally:
        for process in processes:
            process.ensure_gone()
    print(f"\n{time.monotonic() - started:.1f} s in all; screenshots in {shots.folder}")


CHOICE = "Wahl-Abo Studio 5 aus 8"
COMBI = "Kombi-Ticket Klassiker"


def studio_seat_ids(hub_dir: Path, plan_id: str, row: str, labels: list[str]) -> list[str]:
    db = sqlite3.connect(f"file:{hub_dir / DB_NAME}?mode=ro", uri=True)
    try:
        return [db.execute("SELECT id FROM seats WHERE plan_id = ? AND row_label = ? AND label = ?",
                           (plan_id, row, label)).fetchone()[0] for label in labels]
    finally:
        db.close()


def test_a_choice_with_a_seat_sold_meanwhile_and_a_combi(tmp_path, sample_template):
    """A choice: 5 of 8 dates picked (a sixth refused), a seat tapped; another session of the
    desk sells that seat for the same dates first; the sale is refused with the operator's own
    words, the map comes back with the seat taken, another seat is tapped and the sale goes
    through by card (no change line). Then a combi: a seat per date on each date's map, paid
    cash exactly. Typing slowly is never taken for a scan."""
    hub_dir, desk_dir, log = tmp_path / "hub", tmp_path / "desk", tmp_path / "log.txt"
    shutil.copytree(sample_template[0], hub_dir)
    token, ids = sample_template[1], sample_template[2]
    shots = Shots(tmp_path / "screenshots", "choice")
    choice_id = ids["subscriptions"][CHOICE]
    hub = Process(log, "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise", ready=HUB_READY)
    processes = [hub]
    try:
        run_here("hub", "operator", "add", "--data", str(hub_dir), "--name", "Anna", "--pin", PIN)
        run_here("hub", "operator", "add", "--data", str(hub_dir), "--name", "Ben", "--pin", "2580")
        code = run_here("hub", "enroll", "--data", str(hub_dir), "--node", "Kasse 2", "--role", "cashdesk").split()[-1]
        run_here("edge", "enroll", "--data", str(desk_dir), "--code", code, "--hub", hub.url)
        desk = Process(log, "edge", "serve", "--data", str(desk_dir), "--port", "0", "--sync-seconds", "1",
                       ready=EDGE_READY)
        processes.append(desk)
        wait_until_synced(desk.url, 2)
        node_id = http_json(f"{desk.url}/api/status")["node_id"]
        s5, s6 = studio_seat_ids(hub_dir, ids["plans"]["Studio"], "3", ["5", "6"])
        post_json(f"{hub.url}/api/v1/subscription-products/{choice_id}/pools",
                  {"seat_ids": [s5, s6], "to": f"node:{node_id}"}, token=token)
        # the combi's three dates: a Parkett seat in the two at the main house, a Saal seat in the studio's
        combi_id = ids["subscriptions"][COMBI]
        combi_dates = http_json(f"{hub.url}/api/v1/subscription-products/{combi_id}", token)["performance_ids"]
        (parkett,) = seat_ids(hub_dir, ids["plans"]["Großes Haus"], [("5", "10")])
        (saal,) = studio_seat_ids(hub_dir, ids["plans"]["Studio"], "4", ["4"])
        combi_seat = {}
        for perf in combi_dates:
            seat = parkett if perf in ids["rings"]["B"] else saal
            post_json(f"{hub.url}/api/v1/performances/{perf}/pools", {"seat_ids": [seat], "to": f"node:{node_id}"},
                      token=token)
            combi_seat[perf] = seat
        ben = desk_cookie(desk.url, "Ben", "2580")
        wait_for_pool(desk.url, ben, choice_id, free=2)
        wait_for_pool(desk.url, ben, combi_id, free=1)

        with chromium() as browser:
            page = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
            page.set_default_timeout(STEP_MS)
            log_in(page, desk.url, "Anna", PIN)
            page.locator("#pin-ok").click()
            page.wait_for_url(f"{desk.url}/sell")
            page.goto(f"{desk.url}/subscriptions")
            tile = page.locator(f'[data-testid=sub-product-tile][data-product-id="{choice_id}"]')
            expect(tile.locator("[data-testid=sub-free]")).to_have_text(
                "2 Plätze an allen Terminen frei an dieser Kasse")
            tile.click()

            # five of the eight dates; a sixth cannot be added; Next only with exactly five
            expect(page.locator("#dates-ask")).to_have_text("5 von 8 Terminen wählen")
            dates = page.locator("[data-testid=date-toggle]")
            expect(dates).to_have_count(8)
            expect(page.locator("#sub-next")).to_be_disabled()
            for k in range(5):
                dates.nth(k).click()
                expect(dates.nth(k)).to_have_attribute("aria-pressed", "true")
            expect(page.locator("#dates-count")).to_have_text("5 von 5 gewählt")
            expect(dates.nth(5)).to_be_disabled()
            chosen = [dates.nth(k).get_attribute("data-performance-id") for k in range(5)]
            page.locator("#sub-next").click()

            # the seats free in all five chosen dates, in this desk's pool
            expect(page.locator("#seat-map [data-state=free]")).to_have_count(2)
            tap(page, "seat-map", s5)
            assert set(booked(page, 0)) == set(chosen)
            page.locator("#sub-next").click()
            # a person typing code-like capitals slowly, then Enter: no scan, the screen stays
            page.locator("#customer-search").press_sequentially("KD1234567890ABCDEF", delay=80)
            page.keyboard.press("Enter")
            expect(page.locator("#customer-search")).to_have_value("KD1234567890ABCDEF")
            assert page.url.endswith("/subscriptions")
            page.locator("#customer-search").fill("Mül")
            found = page.locator("[data-testid=customer-result]").first
            customer_id = found.get_attribute("data-customer-id")
            found.click()
            expect(page.locator("#total")).to_have_text("100,00 €")

            # meanwhile Ben, at the same desk, sells that seat for the same dates
            post_json(f"{desk.url}/api/subscriptions", {
                "product_id": choice_id, "customer_id": customer_id, "performance_ids": chosen,
                "seat_ids": [s5], "payment_method": "cash", "given_cents": 10000}, cookie=ben)

            page.locator("#sub-next").click()
            page.locator("#pay-card").click()
            page.locator("#terminal-ref").fill("T-4711")
            page.locator("#sell-button").click()
            expect(page.locator("#message")).to_have_text(
                "Ein gewählter Platz ist nicht mehr frei oder nicht im Kontingent dieser Kasse. "
                "Der Saalplan ist aktualisiert: bitte einen anderen Platz wählen.")
            expect(page.locator("#step-seats")).to_be_visible()
            expect(page.locator(f'#seat-map [data-seat-id="{s5}"]')).to_have_attribute("data-state", "taken")
            assert booked(page, 0) == {}  # the seat gone is no longer chosen
            expect(page.locator("#sub-next")).to_be_disabled()
            shots(page, "choice-seat-taken-meanwhile-de")
            tap(page, "seat-map", s6)
            page.locator("#sub-next").click()
            expect(page.locator("#customer-chosen")).to_be_visible()  # the customer stays chosen
            expect(page.locator("#total")).to_have_text("100,00 €")
            page.locator("#sub-next").click()
            expect(page.locator("#terminal-ref")).to_have_value("T-4711")
            page.locator("#sell-button").click()
            expect(page.locator("#sale-result")).to_be_visible()
            expect(page.locator("#sale-change-row")).to_be_hidden()  # paid by card: no change line
            expect(page.locator("[data-testid=sale-subscription]")).to_have_count(1)
            expect(page.locator("[data-testid=sale-subscription]")).to_have_attribute("data-form", "single_tickets")
            expect(page.locator("#sale-receipt")).to_have_text("gedruckt · mit 5 Ticket-Abschnitten")
            expect(page.locator("#message")).to_be_hidden()
            shots(page, "choice-sold-by-card-de")
            assert booked(page, 0) == {p: (s6, "false") for p in chosen}

            # a combi: a map per date, a seat on each; paid cash, exactly
            page.locator("#new-sale").click()
            page.locator(f'[data-testid=sub-product-tile][data-product-id="{combi_id}"]').click()
            tabs = page.locator("[data-testid=map-tab]")
            expect(tabs).to_have_count(3)
            for k in range(3):
                expect(page.locator("#sub-next")).to_be_disabled()  # a seat at every date first
                tabs.nth(k).click()
                perf = tabs.nth(k).get_attribute("data-key")
                expect(page.locator("#seat-map")).to_have_attribute("data-key", perf)  # that date's map
                tap(page, "seat-map", combi_seat[perf])
                expect(tabs.nth(k).locator("[data-testid=map-tab-count]")).to_have_text("1")
            assert booked(page, 0) == {p: (combi_seat[p], "false") for p in combi_dates}
            shots(page, "combi-seat-per-date-de")
            page.locator("#sub-next").click()
            page.locator("#customer-search").fill("Mül")
            page.locator("[data-testid=customer-result]").first.click()
            expect(page.locator("#sub-form-row")).to_be_hidden()  # single tickets only: nothing to choose
            expect(page.locator("#total")).to_have_text("125,00 €")  # 52 + 52 + 21, priced per date
            page.locator("#sub-next").click()
            page.locator("#pay-cash").click()
            page.locator("#given-exact").click()
            expect(page.locator("#change")).to_have_text("0,00 €")
            page.locator("#sell-button").click()
            expect(page.locator("#sale-result")).to_be_visible()
            expect(page.locator("#sale-change")).to_have_text("0,00 €")
            expect(page.locator("#sale-receipt")).to_have_text("gedruckt · mit 3 Ticket-Abschnitten")
            shots(page, "combi-sold-de")
    finally:
        for process in processes:
            process.ensure_gone()
