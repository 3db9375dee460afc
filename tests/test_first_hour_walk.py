"""Issue 12's "done when", walked as a new user would, in Debian's Chromium:

run `tessera demo`, open the printed office URL (its setup link first), log in, sell a card at
the demo's cash desk, see the sale in the office, scan the card at the demo's gate and see the
entry in the office, then order in the shop, find the mail in the office's outbox, open it with
its link in the demo's mail inbox, personalize the card, and see it personalized in the office.

Nothing is read from a database: only what the demo prints, the pages, and the files the
demo's printers write. Screenshots in test-output/first-hour/walk-*.png, for people to look at.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.office import PASSWORD
from tests.test_cli import Server, scan

pytestmark = pytest.mark.slow  # the demo's five servers and Chromium
SHOTS = Path(__file__).resolve().parents[1] / "test-output" / "first-hour"
HOLDER = "Lena Gangway"


def printed(text: str, pattern: str) -> str:
    found = re.search(pattern, text)
    assert found, f"the demo did not print {pattern!r}:\n{text}"
    return found.group(1)


def started_demo(folder: Path) -> tuple[Server, str]:
    server = Server("demo", "--data", str(folder))
    while not any("Stop with Ctrl-C" in line for line in server.lines):
        line = server.proc.stdout.readline()
        assert line, f"the demo stopped before it was ready: {server.proc.stderr.read()}"
        server.lines.append(line)
    return server, "".join(server.lines)


def shop_order(hub_url: str, shop_token: str, product_id: str) -> dict:
    """The demo's printed curl example, sent with urllib."""
    body = {"lines": [{"product_id": product_id}], "delivery": "mail", "payment_reference": "walk",
            "customer": {"first_name": "Eva", "last_name": "Spaziergang", "email": "eva@example.org",
                         "street": "Am Markt 1", "postcode": "28195", "town": "Bremen"}}
    req = urllib.request.Request(hub_url + "/api/v1/shop/orders", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {shop_token}", "Idempotency-Key": "walk-1",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        return json.loads(resp.read())


def test_a_new_users_first_hour_from_the_demo_to_the_gate_and_the_mail(tmp_path):
    from playwright.sync_api import expect

    from tests.browsers import chromium
    from tests.test_desk_browser import log_in as desk_log_in
    from tests.test_desk_browser import pdf_text_and_codes

    started = time.monotonic()
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("walk-*.png"):
        old.unlink(missing_ok=True)
    data = tmp_path / "demo-data"
    demo, text = started_demo(data)
    office_url = printed(text, r"office app\s+(http://\S+/office/)")
    setup_url = printed(text, r"set its password first at (http://\S+)\)")
    desk_url = printed(text, r"cash desk\s+(http://\S+)")
    gate_url = printed(text, r"gate\s+(http://\S+)")
    inbox_url = printed(text, r"mail inbox\s+(http://\S+)")
    hub_url = printed(text, r"hub API\s+(http://\S+)/api/v1")
    operator, pin = re.search(r"log in as (.+), PIN (\d+)", text).groups()
    shots = iter(range(1, 100))

    def reloaded_text(page, selector: str) -> str:
        page.reload()
        return page.locator(selector).inner_text()

    def shot(page, name: str) -> None:
        page.screenshot(path=SHOTS / f"walk-{next(shots):02d}-{name}.png", full_page=True)

    try:
        with chromium() as browser:
            office = browser.new_context(viewport={"width": 1366, "height": 768}, locale="de-DE").new_page()
            desk = browser.new_context(viewport={"width": 1024, "height": 768}, locale="de-DE").new_page()
            for page in (office, desk):
                page.set_default_timeout(15_000)

            # 1. the office: the printed setup link, then the printed office URL and a login
            office.goto(setup_url)
            office.fill("#password", PASSWORD)
            office.fill("#password2", PASSWORD)
            office.keyboard.press("Enter")
            expect(office.locator("#note")).to_contain_text("Passwort gespeichert")
            office.goto(office_url)
            office.fill("#user", "admin")
            office.fill("#password", PASSWORD)
            office.click("#submit")
            expect(office.locator("#me")).to_contain_text("admin")
            shot(office, "office-start")

            # 2. the cash desk: the printed cashier and PIN, one annual card, cash
            desk_log_in(desk, desk_url, operator, pin)
            desk.locator("#pin-ok").click()
            desk.wait_for_url(f"{desk_url}/sell")
            desk.locator("[data-testid=product-tile]").first.click()
            desk.locator("[data-testid=cart-line][data-kind=annual] [data-testid=holder-name]").fill(HOLDER)
            desk.locator("#given").fill("100")
            desk.locator("#sell-button").click()
            expect(desk.locator("#sale-result")).to_be_visible()
            sale_number = desk.locator("#sale-number").inner_text().strip()
            card_number = desk.locator("[data-testid=sale-card]").first.get_attribute("data-card-number")
            shot(desk, "desk-sold")

            # 3. the office sees the desk's sale within seconds: the orders list, then the order
            office.goto(office_url + "orders?channel=cashdesk")
            wait_until(lambda: sale_number in reloaded_text(office, "#rows"),
                       timeout=30, interval=0.1, what="the desk's sale in the office's orders list")
            office.locator("#rows tbody a", has_text=sale_number).first.click()
            expect(office.locator("#lines")).to_contain_text(card_number)
            expect(office.locator("#lines")).to_contain_text(HOLDER)
            shot(office, "office-desk-order")

            # 4. the gate: the code from the desk's card printer, scanned as the demo says
            pdfs = sorted((data / "desk" / "var" / "card-out").glob("*.pdf"))
            pdf_text, codes = pdf_text_and_codes(pdfs[-1])
            assert card_number in pdf_text and len(codes) == 1
            verdict = wait_until(lambda: (v := scan(gate_url, codes[0]))["reason"] != "UNKNOWN_SIGNER" and v,
                                 timeout=30, interval=0.05, what="the desk's card reaching the gate")
            assert verdict["reason"] == "ADMITTED", verdict

            # 5. the office follows the card: its page (from the order) shows the gate's entry
            office.locator("#lines a", has_text=card_number).click()
            expect(office.locator("#title")).to_contain_text(HOLDER)
            history = "section[aria-labelledby=h-history]"
            wait_until(lambda: "Stadtmuseum" in reloaded_text(office, history), timeout=30, interval=0.1,
                       what="the gate's entry in the office's card page")
            shot(office, "office-card-entered")

            # 6. the shop: an order by the printed example; its mail in the office outbox
            product_id = printed(text, r'"product_id": "([0-9a-f-]{36})"')
            order = shop_order(hub_url, printed(text, r"shop token\s+(tsr_\S+)"), product_id)
            office.goto(office_url + "mail?state=sent")
            wait_until(lambda: "eva@example.org" in reloaded_text(office, "#rows"),
                       timeout=30, interval=0.1, what="the shop's mail sent, in the office outbox")
            office.locator("#rows tbody a").first.click()
            expect(office.locator("#to")).to_have_text("eva@example.org")
            expect(office.locator("#inbox-link")).to_have_text(inbox_url)
            shot(office, "office-mail-sent")

            # 7. the demo's inbox, its link, the personalization page
            office.click("#inbox-link")
            office.locator("#mails a").first.click()
            office.locator("#text a[href*='/p/']").first.click()
            office.fill("#name", "Eva Spaziergang")
            office.click("button[type=submit]")
            expect(office.locator("#card-number")).to_be_visible()
            shot(office, "personalized")

            # 8. back in the office: the shop order's card is personalized
            office.goto(office_url + f"orders/{order['id']}")
            expect(office.locator("#lines")).to_contain_text("Eva Spaziergang")
            shot(office, "office-shop-order")
    finally:
        assert demo.stop() == 0
    print(f"first hour walked in {time.monotonic() - started:.1f} s; screenshots in {SHOTS}")
