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
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.base.clock import utcnow
from core.base.node import NODE_DB
from core.base.storage import connect
from edge.sync import enroll as enrolling
from edge.sync.client import SyncClient, SyncError
from hub.app import DB_NAME, make_app
from hub.services import staff
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


# --- in Chromium ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_devices_in_chromium_enroll_and_revoke(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from tests.test_desk_browser import CHROMIUM, HUB_READY
    from tests.test_sync_kill import Process, run

    started = time.monotonic()
    hub_dir = tmp_path / "hub"
    printed = run("hub", "init", "--data", str(hub_dir))
    link = re.search(r"/office/setup/([\w-]+) on the hub", printed).group(1)
    db = connect(hub_dir / DB_NAME)
    staff.set_password(db, link, PASSWORD, utcnow())
    db.close()
    hub = Process(tmp_path / "log.txt", "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise",
                  ready=HUB_READY)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("devices-*.png"):
        old.unlink()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
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
                browser.close()
    finally:
        hub.stop()
    print(f"office devices in Chromium: {time.monotonic() - started:.1f} s; screenshots in {SHOTS}")
