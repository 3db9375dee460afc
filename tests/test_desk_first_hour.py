"""The cash desk as a new cashier meets it in the first hour (issue 12, items 3 and 4).

Everything real: the sample hub and an enrolled desk served over loopback HTTP in this
process (aiohttp test servers), the desk's own database and signing key, and Debian's
Chromium driven by Playwright's async API in the same event loop.

Each test names the defect it guards against. The card lookup's verdict on a scanned code
is tested at the API and in the browser: a forged code (one symbol changed, so the
signature fails), a superseded one (the older issue of a card replaced as lost) and a
revoked one (revoked at the hub, pulled by the desk) are each named in a red banner.

Screenshots go to `<tmp_path>/shots` and, for people, to `test-output/desk-first-hour/`
(git-ignored).
"""

from __future__ import annotations

import re
import shutil
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page, async_playwright, expect

from core.base.money import format_eur
from tests import test_desk_api as desk_api
from tests.test_desk_api import PIN, enrolled_edge, login

pytestmark = pytest.mark.slow  # Chromium; about 10 s a test

desk = desk_api.desk  # an enrolled cash desk behind a test client (fixture)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS_FOR_PEOPLE = ROOT / "test-output" / "desk-first-hour"
STEP_MS = 10_000
SMALL = {"width": 1024, "height": 768}
GERMAN_DATE = re.compile(r"^\d{2}\.\d{2}\.\d{4}$")  # 02.12.2026, as office, receipts and personalization
ENGLISH_DATE = re.compile(r"^\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}$")


# --- set-up ---------------------------------------------------------------------------------------------------


def product_named(edge, name: str) -> str:
    return edge.db.execute("SELECT id FROM annual_products WHERE name = ?", (name,)).fetchone()["id"]


def first_entry_product(edge) -> dict:
    return edge.db.execute("SELECT id, name, months FROM annual_products WHERE validity_mode = 'from_first_entry' "
                           "AND active = 1 ORDER BY name").fetchone()


def fixed_product(edge) -> dict:
    return edge.db.execute("SELECT id, name FROM annual_products WHERE validity_mode <> 'from_first_entry' "
                           "AND active = 1 AND EXISTS (SELECT 1 FROM json_each(channels) WHERE value = 'cashdesk') "
                           "ORDER BY name").fetchone()


def forged(code: str) -> str:
    """One symbol of the signed validity changed: the text still decodes, the signature fails."""
    at = 50
    swapped = "1" if code[at] != "1" else "2"
    return code[:at] + swapped + code[at + 1:]


async def sell(client, lines: list[dict], method: str = "cash") -> dict:
    body = {"lines": lines, "payment_method": method}
    if method == "card":
        body["payment_reference"] = "T-1"
    resp = await client.post("/api/orders", json=body)
    data = await resp.json()
    assert resp.status == 201, data
    return data


def annual(product_id: str, *names: str) -> dict:
    return {"product_id": product_id, "kind": "annual", "quantity": len(names),
            "holders": [{"name": n} for n in names]}


async def lookup(client, q: str) -> dict:
    resp = await client.get("/api/cards", params={"q": q})
    data = await resp.json()
    assert resp.status == 200, data
    return data


async def revoke_at_hub(hub, card_id: str) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{hub.url}/api/v1/cards/{card_id}/revoke", json={"reason": "stolen"},
                               headers=hub.headers())
        assert resp.status == 200, await resp.text()


@pytest.fixture
async def live_desk(hub, tmp_path, aiohttp_server):
    """An enrolled desk on a real loopback port, for the browser."""
    edge = await enrolled_edge(hub, tmp_path)
    server = await aiohttp_server(edge.app())
    edge.url = str(server.make_url("")).rstrip("/")
    yield edge
    await edge.close()


class Shots:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        SHOTS_FOR_PEOPLE.mkdir(parents=True, exist_ok=True)

    async def __call__(self, page: Page, name: str, full_page: bool = False) -> Path:
        path = self.folder / f"{name}.png"
        await page.screenshot(path=path, full_page=full_page)
        shutil.copy2(path, SHOTS_FOR_PEOPLE / path.name)
        return SHOTS_FOR_PEOPLE / path.name


@asynccontextmanager
async def browser_page(viewport: dict = SMALL):
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            # an en-US browser: dates must still come out in the desk's own formats
            context = await browser.new_context(viewport=viewport, locale="en-US", timezone_id="America/New_York")
            page = await context.new_page()
            page.set_default_timeout(STEP_MS)
            yield page
        finally:
            await browser.close()


async def log_in(page: Page, url: str, name: str = "Anna", lang: str = "de") -> None:
    await page.goto(f"{url}/?lang={lang}")
    await page.locator(f'[data-testid=operator-tile][data-operator-name="{name}"]').click()
    for digit in PIN:
        await page.locator(f"#pin-key-{digit}").click()
    await page.locator("#pin-ok").click()
    await page.wait_for_url(f"{url}/sell")


async def replaced_rows(page: Page, action) -> None:
    """Run *action* and wait until the card table was drawn anew (the old first row detached).
    The table must be drawn first: right after a page load its search may still be on its way."""
    await page.wait_for_function("() => document.querySelector('#card-results tr')")
    await page.evaluate("() => { window.__oldRow = document.querySelector('#card-results tr'); }")
    await action()
    await page.wait_for_function("() => window.__oldRow && !document.contains(window.__oldRow)")


# --- item 4: the lookup checks a scanned code as a gate does ---------------------------------------------------


async def test_lookup_names_forged_superseded_and_revoked_codes(desk, hub):
    """Before: the lookup decoded the card id out of any code and showed the real card, no word."""
    edge = desk.edge
    await login(desk)
    product = fixed_product(edge)["id"]
    sold = await sell(desk, [annual(product, "Zoë Ölbaum", "Björn Weiß")])
    first, second = (item["card"] for item in sold["order"]["items"])

    genuine = await lookup(desk, first["code"])
    assert genuine["scan"]["level"] == "ok" and genuine["scan"]["reason"] == "ADMITTED"
    assert [c["id"] for c in genuine["cards"]] == [first["id"]]

    fake = await lookup(desk, forged(first["code"]))
    assert fake["scan"]["level"] == "refused" and fake["scan"]["reason"] == "FORGED"
    assert fake["scan"]["message_de"] == "Ausweis gefälscht oder beschädigt"
    assert fake["scan"]["message_en"] == "Card forged or damaged"

    replaced = await desk.post(f"/api/cards/{first['id']}/replace", json={})
    assert replaced.status == 201, await replaced.text()
    old = await lookup(desk, first["code"])
    assert (old["scan"]["level"], old["scan"]["reason"]) == ("refused", "SUPERSEDED")
    assert old["scan"]["message_de"].startswith("Ausweis ersetzt") and old["scan"]["issue"] == 1
    new_code = (await replaced.json())["card"]["code"]
    assert (await lookup(desk, new_code))["scan"]["level"] == "ok"

    await edge.client.round()  # the sale reaches the hub
    await revoke_at_hub(hub, second["id"])
    await edge.client.round()  # the revocation reaches the desk
    gone = await lookup(desk, second["code"])
    assert (gone["scan"]["level"], gone["scan"]["reason"]) == ("refused", "REVOKED")
    assert gone["scan"]["message_en"] == "Card revoked" and gone["cards"][0]["revoked_at"]

    # a number or a name is no scanned code: no verdict, the lookup as before
    by_number = await lookup(desk, first["number"])
    assert by_number["scan"] is None and [c["id"] for c in by_number["cards"]] == [first["id"]]
    assert (await lookup(desk, "x" * 2000))["scan"] is None  # capped, not a code, nothing found


async def test_lookup_shows_first_entry_cards_as_months_until_first_use(desk, hub):
    """Before: a 12-months-from-first-entry card listed the signed outer end date as if it ended then."""
    edge = desk.edge
    await login(desk)
    museum = first_entry_product(edge)
    sold = await sell(desk, [annual(museum["id"], "Hanna Groß")])
    card = (await lookup(desk, sold["order"]["items"][0]["card"]["number"]))["cards"][0]
    assert (card["validity_mode"], card["months"], card["first_entry_at"]) == ("from_first_entry", museum["months"],
                                                                               None)


# --- item 4 and the card screen in the browser ---------------------------------------------------------------


async def test_card_lookup_in_the_browser(live_desk, hub, tmp_path):
    edge = live_desk
    shots = Shots(tmp_path / "shots")
    museum, plain = first_entry_product(edge), fixed_product(edge)
    async with browser_page() as page:
        await log_in(page, edge.url)
        api = page.request
        sold = await api.post(f"{edge.url}/api/orders", data={
            "lines": [annual(museum["id"], "Hanna Groß"), annual(plain["id"], "Jürgen Müller-Weiß"),
                      {"product_id": plain["id"], "kind": "voucher", "quantity": 1}],
            "payment_method": "cash", "given_cents": 100_000})
        assert sold.status == 201, await sold.text()
        items = (await sold.json())["order"]["items"]
        museum_card, plain_card, voucher = (i["card"] for i in items)

        for lang in ("de", "en"):
            await page.goto(f"{edge.url}/cards?lang={lang}&q={museum_card['number']}")
            row = page.locator(f'[data-testid=card-row][data-card-number="{museum_card["number"]}"]')
            # before: "gültig bis 2.12.2028" for a card nobody has used yet
            await expect(row.locator("[data-testid=card-valid]")).to_have_text(
                f"{museum['months']} Monate ab erster Nutzung" if lang == "de"
                else f"{museum['months']} months from first use")
            await page.goto(f"{edge.url}/cards?lang={lang}&q={plain_card['number']}")
            row = page.locator(f'[data-testid=card-row][data-card-number="{plain_card["number"]}"]')
            # before: the browser's en-US locale: mm/dd/yyyy
            await expect(row.locator("[data-testid=card-valid]")).to_have_text(
                GERMAN_DATE if lang == "de" else ENGLISH_DATE)
            # before: the raw word "annual" when the state was not set; now kind and state in words
            await expect(row.locator("[data-testid=card-state]")).to_have_text(
                re.compile(r"^Jahreskarte · (personalisiert|gedruckt)$" if lang == "de"
                           else r"^Annual ticket · (personalized|printed)$"))
            await page.goto(f"{edge.url}/cards?lang={lang}&q={voucher['number']}")
            await expect(page.locator("[data-testid=card-state]")).to_have_text(
                "Gutschein" if lang == "de" else "Voucher")
            await expect(page.locator("#scan-verdict")).to_be_hidden()  # a number is no scan

        # a re-print's confirmation stays after the table is drawn again (before: cleared at once)
        await page.goto(f"{edge.url}/cards?lang=de&q={plain_card['number']}")
        await expect(page.locator("[data-testid=reprint]")).to_be_visible()
        await replaced_rows(page, lambda: page.locator("[data-testid=reprint]").click())
        await expect(page.locator("#message")).to_be_visible()
        await expect(page.locator("#message")).to_have_text(f"{plain_card['number']}: gedruckt")
        await expect(page.locator("#message")).to_have_class(re.compile(r"\bok\b"))

        # the scanned code typed + Enter, like a keyboard-wedge scanner: genuine first
        scan = page.locator("#card-search")
        await scan.fill(plain_card["code"])
        await scan.press("Enter")
        await expect(page.locator("#scan-verdict")).to_have_attribute("data-level", "ok")
        # forged: the real card is listed, the red banner says the code is not it
        await scan.fill(forged(plain_card["code"]))
        await scan.press("Enter")
        verdict = page.locator("#scan-verdict")
        await expect(verdict).to_have_attribute("data-reason", "FORGED")
        await expect(verdict).to_have_class(re.compile(r"\bverdict-refused\b"))
        await expect(verdict).to_contain_text("Ausweis gefälscht oder beschädigt")
        await expect(verdict).to_contain_text("Diesen Code nicht annehmen.")
        await expect(page.locator("#message")).to_be_hidden()  # the confirmation gave way to the new search
        assert await verdict.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(192, 57, 43)"
        await shots(page, "lookup-forged-de-1024x768")

        # superseded: the card replaced as lost, its first print scanned
        await page.goto(f"{edge.url}/cards?lang=en&q={museum_card['number']}")
        await expect(page.locator("#card-results")).to_contain_text(museum_card["number"])
        page.once("dialog", lambda dialog: dialog.accept())
        await replaced_rows(page, lambda: page.locator("[data-testid=replace]").click())
        await expect(page.locator("#message")).to_contain_text(museum_card["number"])  # stays (lost card)
        await scan.fill(museum_card["code"])
        await scan.press("Enter")
        await expect(verdict).to_have_attribute("data-reason", "SUPERSEDED")
        await expect(verdict).to_contain_text("Card replaced – use the newer card")
        await expect(verdict).to_contain_text("Do not accept this code.")
        await shots(page, "lookup-superseded-en-1024x768")

        # revoked at the office, pulled by the desk
        await edge.client.round()
        await revoke_at_hub(hub, plain_card["id"])
        await edge.client.round()
        await scan.fill(plain_card["code"])
        await scan.press("Enter")
        await expect(verdict).to_have_attribute("data-reason", "REVOKED")
        await expect(verdict).to_contain_text("Card revoked")
        await expect(page.locator("[data-testid=card-state]")).to_have_text("Annual ticket · revoked")
        await shots(page, "lookup-revoked-en-1024x768")
        await page.goto(f"{edge.url}/cards?lang=de")
        await scan.fill(plain_card["code"])
        await scan.press("Enter")
        await expect(verdict).to_contain_text("Ausweis gesperrt")
        await shots(page, "lookup-revoked-de-1024x768")

        # dates typed and shown in the desk's own format, not the browser's date picker
        await page.goto(f"{edge.url}/summary?lang=en")
        await expect(page.locator("#summary-day")).to_have_value(ENGLISH_DATE)
        await page.locator("#summary-day").fill("12/02/1990")  # month or day first? refused, not guessed
        await page.locator("#summary-form button[type=submit]").click()
        await expect(page.locator("#message")).to_have_text("Please enter the date like 2 Dec 1990 or 2.12.1990.")
        await page.locator("#summary-day").fill("3 Dec 1990")
        await page.locator("#summary-form button[type=submit]").click()
        await page.wait_for_url("**/summary?day=1990-12-03")
        await expect(page.locator("#summary-day")).to_have_value("3 Dec 1990")
        await page.goto(f"{edge.url}/counter?lang=de")
        assert await page.locator("#holder-birth").get_attribute("type") == "text"
        await page.goto(f"{edge.url}/summary?lang=de")
        await expect(page.locator("#summary-day")).to_have_value(GERMAN_DATE)
        # the cash drawer: the opening float typed as the cashier writes it, a typo refused in words
        await page.locator("#drawer-amount").fill("150 Euro")
        await page.locator("#drawer-record").click()
        await expect(page.locator("#message")).to_have_text("Betrag bitte in Euro eingeben, z. B. 150,00.")
        await page.locator("#drawer-kind").select_option("float")
        await page.locator("#drawer-amount").fill("150,00")
        await page.locator("#drawer-record").click()
        await expect(page.locator("#message")).to_have_text("Gebucht")
        await expect(page.locator("#drawer-float")).to_contain_text("150,00")
        await expect(page.locator("#drawer-counted")).to_have_text("noch nicht gezählt")
        await shots(page, "summary-drawer-de-1024x768")
        await page.locator("#summary-day").fill("2.12.1990")
        await page.locator("#summary-form button[type=submit]").click()
        await page.wait_for_url("**/summary?day=1990-12-02")
        await expect(page.locator("#summary-day")).to_have_value("02.12.1990")  # typed short, shown as everywhere


# --- item 3: the sale screen -------------------------------------------------------------------------------------


async def test_sale_screen_at_1024x768(live_desk, tmp_path):
    edge = live_desk
    shots = Shots(tmp_path / "shots")
    museum, plain = first_entry_product(edge), fixed_product(edge)
    async with browser_page() as page:
        await log_in(page, edge.url)
        # "Entfernen" belongs to a chosen customer: none yet (before: shown anyway)
        await expect(page.locator("#customer-clear")).to_be_hidden()
        await page.locator(f'[data-testid=product-tile][data-product-id="{museum["id"]}"]').click()
        await page.locator(f'[data-testid=product-tile][data-product-id="{plain["id"]}"]').click()
        holders = page.locator("[data-testid=holder-name]")
        await expect(holders).to_have_count(2)
        # numbered across the cart (before: "Name Karteninhaber/in 1" twice)
        assert [await holders.nth(k).get_attribute("placeholder") for k in range(2)] == \
            ["Name Karteninhaber/in 1", "Name Karteninhaber/in 2"]

        # "Verkaufen" on screen without scrolling, two items in the cart (before: below the fold)
        await expect(page.locator("#sell-button")).to_be_in_viewport()
        assert await page.evaluate("() => [window.scrollY, document.documentElement.scrollHeight]") == [0, 768]

        # an error banner goes once its cause is fixed (before: it stayed)
        await holders.nth(0).fill("Hanna Groß")
        await page.locator("#sell-button").click()
        await expect(page.locator("#message")).to_have_text("Bitte für jede Jahreskarte einen Namen eingeben.")
        await holders.nth(1).fill("Jürgen Müller-Weiß")
        await expect(page.locator("#message")).to_be_hidden()

        await expect(page.locator("#sell-button")).to_be_in_viewport()
        # quick cash: a note fills the amount given
        total = int(await page.locator("#total").get_attribute("data-cents"))
        await page.locator("#given-100").click()
        await expect(page.locator("#given")).to_have_value("100,00")
        await expect(page.locator("#change")).to_have_text(format_eur(10_000 - total))
        await page.locator("#given-exact").click()
        await expect(page.locator("#change")).to_have_text("0,00 €")
        await shots(page, "sale-two-items-de-1024x768")

        # too little given: the warning on its own line under "Rückgeld" (before: "RückgeldDer gegebene ...")
        await page.locator("#given-5").click()
        await expect(page.locator("#change-warning")).to_have_text("Der gegebene Betrag reicht nicht.")
        await expect(page.locator("#change")).to_have_text("–")
        label = await page.locator("#change-label").bounding_box()
        warning = await page.locator("#change-warning").bounding_box()
        assert warning["y"] >= label["y"] + label["height"], (label, warning)
        await expect(page.locator("#sell-button")).to_be_in_viewport()
        await shots(page, "change-row-too-little-de-1024x768")

        # the cart survives a language switch and a look at another tab (before: lost)
        await page.locator("#lang-en").click()
        await page.wait_for_url("**/sell?lang=en")
        await expect(page.locator("[data-testid=cart-line]")).to_have_count(2)
        await expect(holders.nth(1)).to_have_value("Jürgen Müller-Weiß")
        await expect(page.locator("#given")).to_have_value("5,00")
        await expect(page.locator("#change-warning")).to_have_text("The amount given is not enough.")
        await expect(page.locator("#sell-button")).to_be_in_viewport()
        await shots(page, "change-row-too-little-en-1024x768")
        await page.locator("#nav-cards").click()
        await page.wait_for_url("**/cards")
        await page.locator("#nav-sell").click()
        await page.wait_for_url("**/sell")
        await expect(page.locator("[data-testid=cart-line]")).to_have_count(2)
        await expect(holders.nth(0)).to_have_value("Hanna Groß")
        assert [await holders.nth(k).get_attribute("placeholder") for k in range(2)] == \
            ["Card holder's name 1", "Card holder's name 2"]
        await page.locator("#given-100").click()
        await expect(page.locator("#change-warning")).to_be_hidden()
        await shots(page, "sale-two-items-en-1024x768")

        # paid by card: no "Change 0,00 €" on the result (before: shown)
        await page.locator("#pay-card").click()
        await page.locator("#terminal-ref").fill("T-4711")
        await page.locator("#sell-button").click()
        await expect(page.locator("#sale-result")).to_be_visible()
        await expect(page.locator("#sale-change-row")).to_be_hidden()
        await expect(page.locator("[data-testid=sale-card]")).to_have_count(2)
        await shots(page, "sold-by-card-en-1024x768")

        # sold: the cart is empty, also after a reload
        await page.reload()
        await expect(page.locator("[data-testid=cart-line]")).to_have_count(0)

        # cash shows its change; logging out empties the cart
        await page.locator(f'[data-testid=voucher-tile][data-product-id="{plain["id"]}"]').click()
        await page.locator("#given-100").click()
        await page.locator("#sell-button").click()
        await expect(page.locator("#sale-change-row")).to_be_visible()
        await page.locator("#new-sale").click()
        await page.locator(f'[data-testid=voucher-tile][data-product-id="{plain["id"]}"]').click()
        await expect(page.locator("[data-testid=cart-line]")).to_have_count(1)
        await page.locator("#logout-button").click()
        await page.wait_for_url(f"{edge.url}/")
        await log_in(page, edge.url, "Ben", lang="en")
        await expect(page.locator("[data-testid=cart-line]")).to_have_count(0)

