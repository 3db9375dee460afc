"""The office app's Devices screen: the node list, enrolling a device with a one-time code shown
once, revoking a node; only admins act, every POST passes the CSRF rule.

Real hub database, real HTTP on loopback: the code the page shows is used by the edge's own
enrollment (`edge.sync.enroll.enroll`, SPAKE2) against the same server, and the revocation is
checked through the API. The Playwright test serves the hub as a process and uses Chromium.
"""

from __future__ import annotations

import asyncio
import html
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.base.clock import utcnow
from core.base.node import NODE_DB
from core.base.storage import connect
from edge.sync import enroll as enrolling
from edge.sync.client import SyncClient, SyncError
from hub.app import make_app
from hub.web import office
from tests.helpers import call
from tests.office import PASSWORD, SHOTS, Clock, csrf_of, log_in, ready

FOREIGN = {"Origin": "https://evil.example"}


async def client_as(aiohttp_client, hub, role: str):
    """The hub's app on loopback with staff `boss` of *role* logged in; `client.url` is its address."""
    app = make_app(hub.db)
    clock = Clock()
    clock.now = utcnow()  # codes expire by the real clock at the enrollment endpoint
    app[office.CLOCK] = clock
    client = await aiohttp_client(app)
    client.hub, client.clock = hub, clock
    client.url = str(client.make_url("")).rstrip("/")
    await ready(client, "boss", role)
    assert (await log_in(client, "boss")).status == 303
    return client


@pytest.fixture
async def admin(aiohttp_client, empty_hub):
    return await client_as(aiohttp_client, empty_hub, "admin")


async def page_token(client) -> str:
    response = await client.get("/office/devices", params={"lang": "en"})
    assert response.status == 200, await response.text()
    return csrf_of(await response.text())


async def make_code(client, name: str = "Kasse 3", role: str = "cashdesk", **headers: str):
    return await client.post("/office/devices/enroll", headers=headers,
                             data={"csrf": await page_token(client), "name": name, "role": role, "venues": ""})


def shown_code(page: str) -> str:
    return html.unescape(re.search(r'id="code" data-code="([^"]+)"', page).group(1))


def state(client) -> dict:
    """What enrolling or revoking would change: the codes, certificates and revocations."""
    return {table: [tuple(row.values()) for row in client.hub.db.execute(f"SELECT * FROM {table}")]
            for table in ("enrollment_codes", "node_certs", "node_revocations")}


async def enrolled(client, tmp_path, name: str = "Kasse 3") -> dict:
    """A device enrolled with the code the page showed."""
    response = await make_code(client, name)
    assert response.status == 201, await response.text()
    return await enrolling.enroll(tmp_path / name.replace(" ", "-"), shown_code(await response.text()),
                                  [client.url])


async def nodes_api(client) -> list[dict]:
    return await call(client, "GET", "/nodes", status=200)


# --- only for staff, acting only for admins ------------------------------------------------------------------


async def test_the_devices_screen_needs_a_login(aiohttp_client, empty_hub):
    client = await aiohttp_client(make_app(empty_hub.db))
    for method, path in (("GET", "/office/devices"), ("POST", "/office/devices/enroll"),
                         ("POST", "/office/devices/x/revoke")):
        response = await client.request(method, path, allow_redirects=False, data={"name": "x", "role": "gate"})
        assert (response.status, response.headers["Location"]) == (303, "/office/login"), path
    assert empty_hub.db.execute("SELECT count(*) AS n FROM enrollment_codes").fetchone()["n"] == 0


async def test_the_office_role_sees_the_list_but_cannot_enroll_or_revoke(aiohttp_client, empty_hub, tmp_path):
    boss = await client_as(aiohttp_client, empty_hub, "admin")
    node = await enrolled(boss, tmp_path)
    clerk = await aiohttp_client(make_app(empty_hub.db))
    clerk.hub, clerk.clock = empty_hub, boss.clock
    await ready(clerk, "clerk", "office")
    assert (await log_in(clerk, "clerk")).status == 303
    page = await clerk.get("/office/devices", params={"lang": "en"})
    text = await page.text()
    assert page.status == 200 and "Kasse 3" in text and node["id"] in text
    assert 'id="enroll"' not in text and "/revoke" not in text
    before = state(clerk)
    token = csrf_of(text)
    refused = await clerk.post("/office/devices/enroll", data={"csrf": token, "name": "Tor 9", "role": "gate"})
    assert refused.status == 403 and "Only administrators" in await refused.text()
    for confirm in ("", "yes"):
        refused = await clerk.post(f"/office/devices/{node['id']}/revoke",
                                   data={"csrf": token, "reason": "lost", "confirm": confirm})
        assert refused.status == 403
    assert state(clerk) == before
    assert not any(n["revoked_at"] for n in await nodes_api(clerk))


# --- enroll --------------------------------------------------------------------------------------------------


async def test_an_admin_enrolls_a_device_with_the_code_shown_once(admin, tmp_path):
    response = await make_code(admin, "Kasse 3")
    page = await response.text()
    assert response.status == 201 and "<svg" in page and 'id="qr"' in page
    code = shown_code(page)
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{1,4})+", code)
    again = await (await admin.get("/office/devices")).text()
    assert code not in again and code.split("-")[1] not in again  # shown once: the list has no secret
    node = await enrolling.enroll(tmp_path / "kasse", code, [admin.url])
    assert node["role"] == "cashdesk"
    listed = await (await admin.get("/office/devices", params={"lang": "en"})).text()
    assert node["id"] in listed and "used" in listed
    assert [n["name"] for n in await nodes_api(admin) if n["node_id"] == node["id"]] == ["Kasse 3"]


async def test_a_bad_enroll_form_says_why_and_makes_no_code(admin):
    before = state(admin)
    response = await make_code(admin, "Kasse", role="printer")
    assert response.status == 422 and "role must be one of" in await response.text()
    response = await make_code(admin, "  ")
    assert response.status == 422
    assert state(admin) == before


# --- revoke --------------------------------------------------------------------------------------------------


async def test_an_admin_revokes_a_node_after_confirming_and_its_next_sync_is_refused(admin, tmp_path):
    node = await enrolled(admin, tmp_path)
    db = connect(tmp_path / "Kasse-3" / NODE_DB, edge=True)
    client = SyncClient(db, tmp_path / "Kasse-3")
    try:
        await client.round()  # syncs while enrolled
        await revoke_through_the_page(admin, node)
        with pytest.raises(SyncError, match="403"):
            await client.round()
    finally:
        await client.close()
        db.close()


async def revoke_through_the_page(admin, node: dict) -> None:
    token = await page_token(admin)
    asked = await admin.post(f"/office/devices/{node['id']}/revoke", data={"csrf": token, "reason": "lost"})
    assert asked.status == 200 and 'id="confirm-revoke"' in await asked.text()
    assert state(admin)["node_revocations"] == []
    done = await admin.post(f"/office/devices/{node['id']}/revoke", allow_redirects=False,
                            data={"csrf": token, "reason": "lost", "confirm": "yes"})
    assert (done.status, done.headers["Location"]) == (303, "/office/devices")
    (api_node,) = [n for n in await nodes_api(admin) if n["node_id"] == node["id"]]
    assert api_node["revoked_at"] and api_node["revoke_reason"] == "lost"
    listed = await (await admin.get("/office/devices", params={"lang": "en"})).text()
    assert "revoked (lost)" in listed


async def test_a_revoke_without_a_known_reason_changes_nothing(admin, tmp_path):
    node = await enrolled(admin, tmp_path)
    before = state(admin)
    response = await admin.post(f"/office/devices/{node['id']}/revoke",
                                data={"csrf": await page_token(admin), "reason": "because", "confirm": "yes"})
    assert response.status == 422 and state(admin) == before


# --- CSRF ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", ["no-token", "wrong-token", "foreign-origin"])
async def test_a_forged_post_changes_nothing(admin, tmp_path, attack):
    node = await enrolled(admin, tmp_path)
    token = await page_token(admin)
    fields = {"csrf": {"no-token": "", "wrong-token": "x" * 43}.get(attack, token)}
    headers = FOREIGN if attack == "foreign-origin" else {}
    before = state(admin)
    enroll = await admin.post("/office/devices/enroll", headers=headers,
                              data={**fields, "name": "Tor 9", "role": "gate"})
    revoke = await admin.post(f"/office/devices/{node['id']}/revoke", headers=headers,
                              data={**fields, "reason": "compromised", "confirm": "yes"})
    assert (enroll.status, revoke.status) == (403, 403)
    assert state(admin) == before
    assert not any(n["revoked_at"] for n in await nodes_api(admin))


# --- rotating the hub key, the hub's own row, venues by name (issue 12, staff and devices) ------------------


def hub_key(client) -> int:
    return client.hub.db.execute("SELECT key_id FROM node").fetchone()["key_id"]


async def test_an_admin_rotates_the_hub_key_after_confirming_and_an_edge_keeps_syncing(admin, tmp_path):
    node = await enrolled(admin, tmp_path)
    db = connect(tmp_path / "Kasse-3" / NODE_DB, edge=True)
    client = SyncClient(db, tmp_path / "Kasse-3")
    try:
        await client.round()
        old = hub_key(admin)
        token = await page_token(admin)
        asked = await admin.post("/office/devices/rotate", data={"csrf": token})
        assert asked.status == 200 and 'id="confirm-rotate"' in await asked.text()
        assert hub_key(admin) == old  # the first POST only asks
        done = await admin.post("/office/devices/rotate", data={"csrf": token, "confirm": "yes"})
        text = await done.text()
        assert done.status == 200 and f"{hub_key(admin):08x}" in text and hub_key(admin) != old
        retired = [n for n in await nodes_api(admin) if n["key_id"] == f"{old:08x}"]
        assert retired and retired[0]["revoke_reason"] == "rotated"
        await client.round()  # the edge verifies the hub's answers under the new key
        await client.round()
        assert db.execute("SELECT count(*) AS n FROM node_certs WHERE key_id = ?", (hub_key(admin),)
                          ).fetchone()["n"] == 1  # the edge has learnt the hub's new certificate
    finally:
        await client.close()
        db.close()
    assert node["id"] in await (await admin.get("/office/devices")).text()


async def test_a_forged_or_office_role_rotation_changes_nothing(aiohttp_client, admin):
    old, token = hub_key(admin), await page_token(admin)
    no_token = await admin.post("/office/devices/rotate", data={"confirm": "yes"})
    foreign = await admin.post("/office/devices/rotate", data={"csrf": token, "confirm": "yes"}, headers=FOREIGN)
    assert (no_token.status, foreign.status) == (403, 403)
    clerk = await aiohttp_client(make_app(admin.hub.db))
    clerk.hub, clerk.clock = admin.hub, admin.clock
    await ready(clerk, "clerk", "office")
    assert (await log_in(clerk, "clerk")).status == 303
    text = await (await clerk.get("/office/devices")).text()
    assert 'action="/office/devices/rotate"' not in text
    refused = await clerk.post("/office/devices/rotate", data={"csrf": csrf_of(text), "confirm": "yes"})
    assert refused.status == 403
    assert hub_key(admin) == old


async def test_the_hub_is_not_an_offline_device_and_roles_are_words(admin, tmp_path):
    await enrolled(admin, tmp_path)
    listed = await (await admin.get("/office/devices", params={"lang": "en"})).text()
    hub_row = re.search(r'<tr data-node="[^"]+"><td>[^<]*</td><td>Hub</td>.*?</tr>', listed, re.S).group(0)
    assert "this hub" in hub_row and "offline" not in hub_row
    assert "<td>Cash desk</td>" in listed and "<td>cashdesk</td>" not in listed
    start = await (await admin.get("/office/", params={"lang": "en"})).text()
    devices = re.search(r'<table id="devices">.*?</table>', start, re.S).group(0)
    assert "Kasse 3" in devices and "<td>Hub</td>" not in devices and "Cash desk" in devices


async def test_enrolling_for_venues_ticks_them_by_name(aiohttp_client, sample_hub, tmp_path):
    admin = await client_as(aiohttp_client, sample_hub, "admin")
    venues = sample_hub.db.execute("SELECT id, name FROM venues ORDER BY name").fetchall()
    page = await (await admin.get("/office/devices")).text()
    for venue in venues:
        assert f'name="venue" value="{venue["id"]}"> {html.escape(venue["name"])}</label>' in page
    assert 'id="venues" name="venues"' not in page  # no ids typed by hand
    token = csrf_of(page)
    before = state(admin)
    unknown = await admin.post("/office/devices/enroll", data={"csrf": token, "name": "Tor 1", "role": "gate",
                                                               "venue": "not-a-venue"})
    assert unknown.status == 422 and state(admin) == before
    response = await admin.post("/office/devices/enroll", data={"csrf": token, "name": "Tor 1", "role": "gate",
                                                                "venue": venues[0]["id"]})
    assert response.status == 201
    node = await enrolling.enroll(tmp_path / "tor", shown_code(await response.text()), [admin.url])
    listed = await (await admin.get("/office/devices", params={"lang": "en"})).text()
    row = re.search(rf'<tr data-node="{node["id"]}">.*?</tr>', listed, re.S).group(0)
    assert f"<td>Gate</td><td>{html.escape(venues[0]['name'])}</td>" in row


# --- in Chromium ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_devices_in_chromium_enroll_and_revoke(tmp_path):
    from playwright.sync_api import expect

    from tests.browsers import chromium
    from tests.office import hub_template
    from tests.test_desk_browser import HUB_READY
    from tests.test_sync_kill import Process

    started = time.monotonic()
    hub_dir = tmp_path / "hub"
    shutil.copytree(hub_template(sample=False)[0], hub_dir)  # `hub init`, the admin's password set
    hub = Process(tmp_path / "log.txt", "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise",
                  ready=HUB_READY)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("devices-[1-4]-*.png"):  # its own four; the venues test writes 5 to 9
        old.unlink(missing_ok=True)
    try:
        with chromium() as browser:
            page = browser.new_context(viewport={"width": 1366, "height": 768}, locale="de-DE").new_page()
            page.set_default_timeout(10_000)
            page.goto(hub.url + "/office/login")
            page.fill("#user", "admin")
            page.fill("#password", PASSWORD)
            page.click("#submit")
            page.click("#nav >> text=Geräte")
            page.fill("#name", "Kasse Foyer")
            page.select_option("#role", "cashdesk")
            page.click("#make-code")
            expect(page.locator("#qr svg")).to_be_visible()
            code = page.locator("#code").get_attribute("data-code")
            page.screenshot(path=SHOTS / "devices-1-code-de.png")
            with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
                node = pool.submit(asyncio.run, enrolling.enroll(tmp_path / "kasse", code, [hub.url])).result()
            page.goto(hub.url + "/office/devices?lang=en")
            expect(page.locator("#nodes")).to_contain_text("Kasse Foyer")
            page.screenshot(path=SHOTS / "devices-2-list-en.png")
            page.click(f"tr[data-node='{node['id']}'] button")
            expect(page.locator("#confirm")).to_contain_text("Kasse Foyer")
            page.screenshot(path=SHOTS / "devices-3-confirm-en.png")
            page.click("#confirm-revoke")
            expect(page.locator("#nodes")).to_contain_text("revoked")
            page.goto(hub.url + "/office/devices?lang=de")
            expect(page.locator("#nodes")).to_contain_text("gesperrt")
            page.screenshot(path=SHOTS / "devices-4-revoked-de.png")
    finally:
        hub.stop()
    print(f"office devices in Chromium: {time.monotonic() - started:.1f} s; screenshots in {SHOTS}")


async def test_the_conflicts_list_names_the_node_or_shows_its_id_if_unknown(admin, tmp_path):
    node = await enrolled(admin, tmp_path)
    stranger = "01900000-0000-7000-8000-000000000000"  # never certified by this hub
    for node_id, seq in ((node["id"], 1), (stranger, 1)):
        admin.hub.db.execute("INSERT INTO conflicts (id, node_id, node_seq, kind, body, reason, created_at) "
                             "VALUES (?, ?, ?, 'sale.completed', '{}', 'test', ?)",
                             (f"c-{seq}-{node_id[-4:]}", node_id, seq, "2026-12-02T09:00:00.000000Z"))
    listed = await (await admin.get("/office/conflicts", params={"lang": "en"})).text()
    assert "<td>Kasse 3</td>" in listed and f"<td>{stranger}</td>" in listed
    assert f"<td>{node['id']}</td>" not in listed
    found = await (await admin.get("/office/conflicts", params={"q": "kasse"})).text()
    assert "Kasse 3" in found and stranger not in found  # the name is searchable too


@pytest.mark.slow
def test_devices_in_chromium_venues_by_name_role_words_and_hub_key_rotation(tmp_path):
    from playwright.sync_api import expect

    from tests.office import office_in_chromium

    with office_in_chromium(tmp_path, sample=True, lang="de") as served:
        page, url = served.page, served.hub.url
        page.goto(url + "/office/devices")
        venue = page.locator("#venues label.check").first
        name = venue.inner_text().strip()
        venue.locator("input").check()
        page.fill("#name", "Tor Nord")
        page.select_option("#role", "gate")
        page.screenshot(path=SHOTS / "devices-5-venues-de.png", full_page=True)
        page.click("#make-code")
        code = page.locator("#code").get_attribute("data-code")
        with ThreadPoolExecutor(1) as pool:
            node = pool.submit(asyncio.run, enrolling.enroll(tmp_path / "tor", code, [url])).result()
        page.goto(url + "/office/devices")
        row = page.locator(f"tr[data-node='{node['id']}']")
        expect(row).to_contain_text("Einlass")
        expect(row).to_contain_text(name)
        expect(page.locator("#nodes")).to_contain_text("dieser Hub")
        page.screenshot(path=SHOTS / "devices-6-list-de.png", full_page=True)
        page.click("#rotate")
        expect(page.locator("#confirm")).to_be_visible()
        page.screenshot(path=SHOTS / "devices-7-rotate-confirm-de.png")
        page.click("#confirm-rotate")
        expect(page.locator("#done")).to_contain_text("Neuer Hub-Schlüssel")
        page.screenshot(path=SHOTS / "devices-8-rotated-de.png", full_page=True)
        page.goto(url + "/office/")
        expect(page.locator("#devices")).to_contain_text("Einlass")
        expect(page.locator("#devices")).not_to_contain_text("Hub")
        page.screenshot(path=SHOTS / "devices-9-start-de.png", full_page=True)
