"""The office's "Kontingente / Pools" screen (issue 14, S17): a seated subscription product's
seat maps coloured by the pool holding each ring seat, seats chosen on the map or by range,
moved into a cash desk's pool or recalled through the API, refusals named with nothing moved,
pending recalls shown, CSRF and roles. Real SQLite copies of the sample hub, a cash desk
enrolled over loopback HTTP, real sessions; the walk in Chromium against `tessera hub serve`
with screenshots in test-output/office/."""

from __future__ import annotations

import re

import pytest

from core.base.clock import utcnow
from core.base.storage import connect
from core.sales import contingents
from core.sales.tickets import SaleIn, sell
from hub.app import DB_NAME, make_app
from hub.services import tokens
from tests.conftest import prepared_sample_hub
from tests.helpers import table_counts
from tests.office import SHOTS, form_token, office_in_chromium, post_form, signed_in, staff_session
from tests.test_subscription_sale import product
from tests.test_sync import enroll_into, kasse_1

RING = "Abo-Ring A"


def seat_id(db, section: str, row: str, label: str) -> str:
    return db.execute("SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id JOIN seating_plans p "
                      "ON p.id = s.plan_id WHERE p.name = 'Großes Haus' AND c.name = ? AND s.row_label = ? "
                      "AND s.label = ?", (section, row, label)).fetchone()["id"]


def pools(db) -> dict[str, int]:
    counts = table_counts(db)
    return {t: counts[t] for t in ("seat_pools", "recalls", "ring_recalls", "ring_recall_parts", "tickets")}


def sell_at_hub(db, performance_id: str, seat: str) -> None:
    sell(db, db.execute("SELECT * FROM node").fetchone(),
         SaleIn(performance_id=performance_id, seat_ids=[seat], payment_method="cash"),
         pool="hub", channel="phone", now=utcnow())


def legend(html: str) -> dict[str, tuple[str, str]]:
    """pool key -> (ring seats, seats) from the legend table."""
    rows = re.findall(r'<tr data-pool="([^"]+)">.*?data-count="ring">([^<]*)<.*?data-count="seats">([^<]*)<',
                      html, re.S)
    return {key: (ring, seats) for key, ring, seats in rows}


def _foyer_and_staff(hub) -> dict[str, str]:
    enroll_into(hub, "Kasse Foyer")
    return {role: staff_session(role, role)(hub) for role in ("office", "admin")}


@pytest.fixture
def sample_hub(request, tmp_path, backend):
    """A private copy of the sample hub with the cash desk Kasse Foyer enrolled over HTTP and staff
    `office` and `admin` logged in (`hub.sessions`), made once per test process."""
    hub, sessions = prepared_sample_hub(request, tmp_path, backend, "kasse-foyer-and-staff", _foyer_and_staff)
    hub.sessions = sessions
    return hub


async def clerk_of(aiohttp_client, hub, role: str):
    return await signed_in(aiohttp_client, hub, role=role, session=hub.sessions[role])


async def desk_of(hub, tmp_path, name: str = "Kasse Foyer") -> str:
    _, db, client = kasse_1(hub, name)
    await client.close()
    try:
        return "node:" + db.execute("SELECT id FROM node").fetchone()["id"]
    finally:
        db.close()


async def test_a_move_and_a_recall_through_the_screen_as_the_office_role(hub, tmp_path, aiohttp_client):
    desk = await desk_of(hub, tmp_path)
    clerk = await clerk_of(aiohttp_client, hub, "office")
    prod = product(hub, RING)
    page = f"/office/ring-pools/{prod}"
    html = await (await clerk.get(page)).text()
    assert "Kasse Foyer" in html and legend(html)[desk] == ("0", "–")
    plan = re.search(r'name="sel_([0-9a-f-]+)"', html).group(1)
    seats = [seat_id(hub.db, "Parkett", "1", str(n)) for n in range(1, 7)]
    checked = await post_form(clerk, page, page, {f"sel_{plan}": ",".join(seats), "to": desk, "action": "check"})
    text = await checked.text()
    assert checked.status == 200 and "Kasse Foyer" in text and "Parkett · Reihe 1 · 6" in text
    assert pools(hub.db)["seat_pools"] == 0  # the confirmation page moves nothing
    moved = await post_form(clerk, page, page + "/move", {f"sel_{plan}": ",".join(seats), "to": desk})
    html = await moved.text()
    dates = len(hub.ids["rings"]["A"])
    assert moved.status == 200 and "6 Ringplätze sind jetzt im Pool von Kasse Foyer" in html
    assert legend(html)[desk] == ("6", str(6 * dates))
    assert hub.db.execute("SELECT count(*) AS n FROM seat_pools WHERE pool = ?", (desk,)).fetchone()["n"] == 6 * dates
    recalled = await post_form(clerk, page, page + "/move", {f"sel_{plan}": ",".join(seats[:2]), "to": "hub"})
    html = await recalled.text()
    assert recalled.status == 200 and "ausstehend" in html
    assert legend(html)["pending:" + desk][0] == "2" and legend(html)[desk][0] == "4"
    assert html.count('data-state="requested"') == 2


async def test_a_refused_move_names_the_seat_and_moves_nothing(hub, tmp_path, aiohttp_client):
    desk = await desk_of(hub, tmp_path)
    clerk = await clerk_of(aiohttp_client, hub, "admin")
    prod = product(hub, RING)
    sold = seat_id(hub.db, "Parkett", "3", "5")
    sell_at_hub(hub.db, hub.ids["rings"]["A"][2], sold)
    page = f"/office/ring-pools/{prod}"
    html = await (await clerk.get(page)).text()
    assert legend(html)["taken"][0] == "1"
    plan = re.search(r'name="sel_([0-9a-f-]+)"', html).group(1)
    ranged = await post_form(clerk, page, page, {"r_section": f"{plan}|Parkett", "r_row": "3", "r_from": "1",
                                                 "r_to": "12", "action": "range", "to": desk})
    html = await ranged.text()
    field = re.search(rf'name="sel_{plan}" value="([^"]*)"', html).group(1).split(",")
    assert len(field) == 12 and sold in field
    before = pools(hub.db)
    refused = await post_form(clerk, page, page + "/move", {f"sel_{plan}": ",".join(field), "to": desk})
    text = await refused.text()
    assert refused.status == 409 and "Nichts verschoben" in text and "Parkett row 3 seat 5" in text
    assert pools(hub.db) == before
    assert re.search(rf'name="sel_{plan}" value="([^"]*)"', text).group(1).split(",") == field  # kept to retry


async def test_the_desk_answers_a_recall_done_and_partial_and_a_mixed_seat_is_shown(hub, tmp_path, aiohttp_client):
    _, edge, desk_client = kasse_1(hub, "Kasse Foyer")
    node = edge.execute("SELECT * FROM node").fetchone()
    desk = "node:" + node["id"]
    clerk = await clerk_of(aiohttp_client, hub, "office")
    prod, dates = product(hub, RING), hub.ids["rings"]["A"]
    page = f"/office/ring-pools/{prod}"
    plan = re.search(r'name="sel_([0-9a-f-]+)"', await (await clerk.get(page)).text()).group(1)
    back, kept, stays = (seat_id(hub.db, "Parkett", "4", str(n)) for n in (1, 2, 3))
    try:
        await post_form(clerk, page, page + "/move", {f"sel_{plan}": f"{back},{kept},{stays}", "to": desk})
        await desk_client.round()
        sell(edge, node, SaleIn(performance_id=dates[1], seat_ids=[kept], payment_method="cash"), pool=desk,
             channel="cashdesk", now=utcnow())  # offline: the hub does not know yet
        await post_form(clerk, page, page + "/move", {f"sel_{plan}": f"{back},{kept}", "to": "hub"})
        assert (await desk_client.round()).recalls_answered == 2 * len(dates)
    finally:
        await desk_client.close()
    mixed = seat_id(hub.db, "Parkett", "5", "1")
    contingents.move_seats(hub.db, dates[0], [mixed], desk, utcnow())  # one date on its own
    html = await (await clerk.get(page)).text()
    counts = legend(html)
    assert counts[desk][0] == "2" and counts["mixed"][0] == "1" and "pending:" + desk not in counts
    assert re.search(r'<tr data-state="partial">.*?teilweise: bei der Kasse verkauft \(Termine: 1\)', html, re.S)
    assert re.search(r'<tr data-state="done">.*?erledigt', html, re.S)
    zones = dict(re.findall(r'data-seat-id="([^"]+)" data-state="[^"]+" data-zone="([^"]+)"', html))
    assert (zones[back], zones[kept], zones[stays], zones[mixed]) == ("hub", desk, desk, "mixed")


async def test_a_forged_post_without_the_form_token_changes_nothing(hub, tmp_path, aiohttp_client):
    desk = await desk_of(hub, tmp_path)
    clerk = await clerk_of(aiohttp_client, hub, "admin")
    prod = product(hub, RING)
    page = f"/office/ring-pools/{prod}"
    html = await (await clerk.get(page)).text()
    plan = re.search(r'name="sel_([0-9a-f-]+)"', html).group(1)
    seats = ",".join(seat_id(hub.db, "Parkett", "2", str(n)) for n in range(1, 4))
    before = pools(hub.db)
    for fields in ({f"sel_{plan}": seats, "to": desk}, {f"sel_{plan}": seats, "to": desk, "csrf": "x" * 43}):
        response = await clerk.post(page + "/move", data=fields, allow_redirects=False)
        assert response.status == 403
    token = await form_token(clerk, page)
    other = await clerk.post(page + "/move", data={"csrf": token, f"sel_{plan}": seats, "to": desk},
                             headers={"Origin": "https://evil.example"}, allow_redirects=False)
    assert other.status == 403 and pools(hub.db) == before
    for role in ("shop", "agency"):  # a token is no office session: the login page, nothing moved
        secret, _ = tokens.create_token(hub.db, f"Fremd {role}", role)
        response = await (await aiohttp_client(make_app(hub.db))).post(
            page + "/move", data={f"sel_{plan}": seats, "to": desk}, allow_redirects=False,
            headers={"Authorization": f"Bearer {secret}"})
        assert response.status in (303, 403) and pools(hub.db) == before


async def test_hostile_or_wrong_input_is_refused_with_nothing_moved(hub, tmp_path, aiohttp_client):
    desk = await desk_of(hub, tmp_path)
    clerk = await clerk_of(aiohttp_client, hub, "admin")
    prod = product(hub, RING)
    page = f"/office/ring-pools/{prod}"
    html = await (await clerk.get(page)).text()
    plan = re.search(r'name="sel_([0-9a-f-]+)"', html).group(1)
    seat = seat_id(hub.db, "Parkett", "2", "1")
    studio = hub.db.execute("SELECT id FROM seats WHERE plan_id = ? LIMIT 1",
                            (hub.ids["plans"]["Studio"],)).fetchone()["id"]
    before = pools(hub.db)
    cases = [({f"sel_{plan}": seat, "to": "blocked"}, 400, "Bitte ein Ziel"),
             ({f"sel_{plan}": seat, "to": "node:00000000-0000-0000-0000-000000000000"}, 400, "Bitte ein Ziel"),
             ({"to": desk}, 400, "Keine Plätze"),
             ({f"sel_{plan}": studio, "to": desk}, 422, "Nichts verschoben"),
             ({f"sel_{plan}": "<script>", "to": desk}, 422, "Nichts verschoben")]
    for fields, status, words in cases:
        response = await post_form(clerk, page, page + "/move", fields)
        assert (response.status, words in await response.text()) == (status, True), fields
    many = [r["id"] for r in hub.db.execute("SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id "
                                            "WHERE c.name = '1. Rang' ORDER BY s.id LIMIT 45")]
    too_many = await post_form(clerk, page, page, {f"sel_{plan}": ",".join(many), "r_section": f"{plan}|Parkett",
                                                   "r_row": "3", "r_from": "1", "r_to": "12", "action": "range"})
    assert too_many.status == 400 and "Höchstens 50 " in await too_many.text()
    assert pools(hub.db) == before
    voucher = await clerk.get(f"/office/ring-pools/{product(hub, 'Wahlgutschein 6er')}")
    assert voucher.status == 422 and "keine Plätze" in await voucher.text()
    assert (await clerk.get("/office/ring-pools/nope")).status in (404, 422)
    shot = await clerk.get(page + "?lang=en")
    assert "Contingents / pools" in await shot.text() and desk in await shot.text()


# --- in Chromium --------------------------------------------------------------------------------------------

WORDS = {"de": {"moved": "6 Ringplätze sind jetzt im Pool von Kasse Foyer", "pending": "ausstehend",
                "refused": "Nichts verschoben"},
         "en": {"moved": "6 ring seats are now in the pool of Kasse Foyer", "pending": "pending",
                "refused": "Nothing moved"}}


def _sell_one_date(db) -> None:
    """Parkett row 3 seat 5 sold at the hub on the third date of Abo-Ring A (before the hub serves)."""
    from core.catalog import resource
    from core.catalog.subscriptions import Subscriptions
    prod = db.execute("SELECT id FROM subscription_products WHERE name = ?", (RING,)).fetchone()["id"]
    dates = resource.get(db, Subscriptions(), prod, "internal")["performance_ids"]
    sell_at_hub(db, dates[2], seat_id(db, "Parkett", "3", "5"))


def _legend_of(page) -> dict[str, tuple[str, str]]:
    return legend(page.content())


def _pick(page, seat: str, keyboard: bool = False) -> None:
    """A click on the seat (or focus and Space): the page comes back with it selected."""
    target = f'g[data-seat-id="{seat}"]'
    if keyboard:
        page.focus(target)
        page.keyboard.press("Space")
    else:
        page.click(target)
    page.wait_for_selector(f'{target}[data-state="selected"]')


@pytest.mark.slow
def test_move_six_ring_seats_recall_two_and_a_refusal_in_chromium(tmp_path):
    """One walk, German then English (one hub and one browser instead of a walk per language):
    the move in German, the recall and the refused range in English."""
    from tests.test_sync_kill import run

    lang = "de"
    w = WORDS[lang]
    with office_in_chromium(tmp_path, lang=lang, prepare=_sell_one_date) as served:
        page, db = served.page, connect(served.hub_dir / DB_NAME)
        code = run("hub", "enroll", "--data", str(served.hub_dir), "--node", "Kasse Foyer", "--role",
                   "cashdesk").split()[-1]
        run("edge", "enroll", "--data", str(tmp_path / "desk"), "--code", code, "--hub", served.hub.url)
        desk = "node:" + db.execute("SELECT node_id FROM node_scopes WHERE role = 'cashdesk'").fetchone()["node_id"]
        prod, dates = served.ids["subscriptions"][RING], served.ids["rings"]["A"]
        page.goto(f"{served.hub.url}/office/catalog?lang={lang}")
        page.click(f"#pools-{prod}")
        page.wait_for_selector("#legend")
        start = _legend_of(page)
        assert start[desk] == ("0", "–") and start["taken"][0] == "1"
        page.screenshot(path=SHOTS / f"ring-pools-1-start-{lang}.png")

        seats = [seat_id(db, "Parkett", "1", str(n)) for n in range(1, 7)]
        for k, seat in enumerate(seats):
            _pick(page, seat, keyboard=k == 5)  # the last one with the keyboard
        page.select_option("#to", desk)
        page.click("#check")
        page.wait_for_selector("#confirm")
        assert page.locator("#seats li").count() == 6 and "Kasse Foyer" in page.inner_text("#what")
        page.screenshot(path=SHOTS / f"ring-pools-2-confirm-{lang}.png")
        page.click("#confirm")
        page.wait_for_selector("#note")
        assert w["moved"] in page.inner_text("#note")
        moved = _legend_of(page)
        assert moved[desk] == ("6", str(6 * len(dates)))
        assert int(moved["hub"][0]) == int(start["hub"][0]) - 6
        assert all(page.get_attribute(f'g[data-seat-id="{s}"]', "data-zone") == desk for s in seats)
        page.locator(f'g[data-seat-id="{seats[0]}"]').scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / f"ring-pools-3-moved-{lang}.png")
        page.locator("#map-1 svg .legend").scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / f"ring-pools-3-legend-{lang}.png")

        lang, w = "en", WORDS["en"]  # the rest of the walk in English
        page.goto(f"{served.hub.url}/office/catalog?lang={lang}")
        page.click(f"#pools-{prod}")
        page.wait_for_selector("#legend")
        assert _legend_of(page) == moved
        for seat in seats[:2]:  # back to the hub: pending until the desk answers
            _pick(page, seat)
        page.select_option("#to", "hub")
        page.click("#check")
        page.click("#confirm")
        page.wait_for_selector("#note")
        recalled = _legend_of(page)
        assert recalled["pending:" + desk][0] == "2" and recalled[desk][0] == "4"
        assert page.locator('#recalls tr[data-state="requested"]').count() == 2
        assert w["pending"] in page.inner_text("#recalls")
        assert all(page.get_attribute(f'g[data-seat-id="{s}"]', "data-state") == "other_pool" for s in seats[:2])
        page.screenshot(path=SHOTS / f"ring-pools-4-pending-{lang}.png")
        page.locator(f'g[data-seat-id="{seats[0]}"]').scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / f"ring-pools-4-pending-map-{lang}.png")

        before = pools(db)  # a range with a seat sold on one date: refused, named, nothing moved
        page.fill("#r_row", "3")
        page.fill("#r_from", "1")
        page.fill("#r_to", "12")
        page.click("#range-add")
        page.wait_for_selector(f'g[data-seat-id="{seat_id(db, "Parkett", "3", "1")}"][data-state="selected"]')
        assert "12" in page.inner_text("#chosen")
        page.select_option("#to", desk)
        page.click("#check")
        page.click("#confirm")
        page.wait_for_selector("#error")
        error = page.inner_text("#error")
        assert w["refused"] in error and "Parkett row 3 seat 5" in error and "is sold" in error
        assert pools(db) == before
        page.screenshot(path=SHOTS / f"ring-pools-5-refused-{lang}.png")
        db.close()
