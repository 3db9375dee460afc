"""The office app's API tokens screen: create (secret shown once), use, revoke; admins only.

Real hub database, the office app and the API on the same loopback server: the secret the page
shows is used as a bearer token on /api/v1, and after the revoke through the page the API
answers 401.
"""

from __future__ import annotations

import html
import re

import pytest

from hub.app import make_app
from tests.office import form_token, post_form, signed_in

PAGE = "/office/tokens"
FOREIGN = {"Origin": "https://evil.example"}


def tokens(client) -> list[tuple]:
    return [tuple(r.values()) for r in client.hub.db.execute("SELECT * FROM api_tokens ORDER BY id")]


def shown_secret(page: str) -> str:
    return html.unescape(re.search(r'id="secret" readonly value="([^"]+)"', page).group(1))


async def create(client, name: str, role: str, lang: str = "en", **headers: str):
    return await post_form(client, f"{PAGE}?lang={lang}", PAGE, {"name": name, "role": role}, **headers)


@pytest.fixture
async def admin(aiohttp_client, sample_hub):
    return await signed_in(aiohttp_client, sample_hub, role="admin")


async def bearer(client, secret: str, path: str, method: str = "GET"):
    return await client.request(method, "/api/v1" + path, headers={"Authorization": f"Bearer {secret}"})


async def test_a_created_token_is_shown_once_works_with_its_role_and_is_refused_once_revoked(admin):
    response = await create(admin, "Webshop", "shop")
    page = await response.text()
    assert response.status == 201 and "This token is shown only now" in page
    secret = shown_secret(page)
    assert secret.startswith("tsr_")
    # the list page (and the page of a later create) never holds it again
    assert secret not in await (await admin.get(PAGE)).text()
    assert secret not in await (await create(admin, "Other", "agency")).text()
    row = admin.hub.db.execute("SELECT * FROM api_tokens WHERE name = 'Webshop'").fetchone()
    assert secret not in str(tuple(row.values()))  # the hub keeps only its hash
    # its role: the shop may read annual products, but not list tokens nor customers
    assert (await bearer(admin, secret, "/annual-ticket-products")).status == 200
    assert (await bearer(admin, secret, "/tokens")).status == 403
    assert (await bearer(admin, secret, "/customers")).status == 403
    # revoke: first a confirmation page (nothing changed yet), then done
    before = tokens(admin)
    confirm = await post_form(admin, PAGE, f"{PAGE}/{row['id']}/revoke")
    assert confirm.status == 200 and 'name="confirm" value="yes"' in await confirm.text()
    assert tokens(admin) == before
    done = await post_form(admin, PAGE, f"{PAGE}/{row['id']}/revoke", {"confirm": "yes"})
    assert done.status == 303 and done.headers["Location"] == PAGE
    assert (await bearer(admin, secret, "/annual-ticket-products")).status == 401


async def test_an_admin_token_made_in_the_office_lists_tokens(admin):
    secret = shown_secret(await (await create(admin, "Zweiter Admin", "admin")).text())
    listed = await (await bearer(admin, secret, "/tokens")).json()
    assert {t["name"] for t in listed} >= {"Zweiter Admin"}


async def test_the_office_role_gets_403_on_the_page_and_every_post_and_nothing_changes(aiohttp_client, sample_hub):
    client = await signed_in(aiohttp_client, sample_hub, role="office")
    some = sample_hub.db.execute("SELECT id FROM api_tokens").fetchone()["id"]
    before = tokens(client)
    response = await client.get(PAGE, params={"lang": "en"})
    assert response.status == 403 and "Only administrators may do this." in await response.text()
    token = await form_token(client, "/office/")
    assert (await client.post(PAGE, data={"csrf": token, "name": "X", "role": "admin"})).status == 403
    for fields in ({"csrf": token}, {"csrf": token, "confirm": "yes"}):
        assert (await client.post(f"{PAGE}/{some}/revoke", data=fields)).status == 403
    assert tokens(client) == before
    nav = await (await client.get("/office/")).text()
    assert 'href="/office/tokens"' not in nav and 'href="/office/operators"' in nav


async def test_foreign_or_tokenless_posts_and_bad_input_change_nothing(admin):
    some = admin.hub.db.execute("SELECT id FROM api_tokens").fetchone()["id"]
    before = tokens(admin)
    assert (await create(admin, "Evil", "admin", **FOREIGN)).status == 403
    assert (await admin.post(PAGE, data={"name": "Evil", "role": "admin"})).status == 403
    assert (await post_form(admin, PAGE, f"{PAGE}/{some}/revoke", {"confirm": "yes"}, **FOREIGN)).status == 403
    assert (await admin.post(f"{PAGE}/{some}/revoke", data={"confirm": "yes"})).status == 403
    bad_role = await create(admin, "Root", "root")
    assert bad_role.status == 422 and "Please choose one of the roles offered." in await bad_role.text()
    german = await create(admin, "Root", "root", lang="de")
    assert "Bitte eine der angebotenen Rollen wählen." in await german.text()
    too_long = await create(admin, "x" * 300, "shop")
    assert too_long.status == 422 and "Please give a name" in await too_long.text()
    unknown = await post_form(admin, PAGE, f"{PAGE}/01900000-0000-7000-8000-000000000000/revoke", {"confirm": "yes"})
    assert unknown.status == 404
    # the last admin token cannot go (the API's rule), with its message
    last = await post_form(admin, PAGE, f"{PAGE}/{some}/revoke", {"confirm": "yes"})
    assert last.status == 409 and "last admin token" in await last.text()
    assert tokens(admin) == before
    # HTML in a name is text
    assert (await create(admin, "<img src=x onerror=alert(1)>", "agency")).status == 201
    page = await (await admin.get(PAGE)).text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


async def test_without_login_the_tokens_screen_is_the_login_page(aiohttp_client, sample_hub):
    client = await aiohttp_client(make_app(sample_hub.db))
    before = [tuple(r.values()) for r in sample_hub.db.execute("SELECT * FROM api_tokens")]
    for response in (await client.get(PAGE, allow_redirects=False),
                     await client.post(PAGE, data={"name": "X", "role": "admin"}, allow_redirects=False)):
        assert response.status == 303 and response.headers["Location"].startswith("/office/login")
    assert [tuple(r.values()) for r in sample_hub.db.execute("SELECT * FROM api_tokens")] == before


@pytest.mark.slow
def test_tokens_in_chromium_create_and_revoke(tmp_path):
    """Create a token (shown once), use it, revoke it after the confirmation page; German then English."""
    import urllib.error
    import urllib.request

    from playwright.sync_api import expect

    from tests.office import SHOTS, office_in_chromium

    def status(url: str, secret: str) -> int:
        request = urllib.request.Request(url + "/api/v1/annual-ticket-products",
                                         headers={"Authorization": f"Bearer {secret}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    for old in SHOTS.glob("tokens-*.png"):
        old.unlink(missing_ok=True)
    with office_in_chromium(tmp_path, sample=False) as served:
        page, url = served.page, served.hub.url
        page.click("#nav >> text=API-Tokens")
        page.fill("#tk-name", "Webshop <Test>")
        page.select_option("#tk-role", "shop")
        page.click("#create-token")
        expect(page.locator("#new-token")).to_be_visible()
        secret = page.locator("#secret").input_value()
        page.screenshot(path=SHOTS / "tokens-1-shown-once-de.png")
        assert status(url, secret) == 200
        page.goto(url + "/office/tokens?lang=en")
        assert secret not in page.content()
        page.locator("#tokens tr", has_text="Webshop <Test>").locator("button.danger").click()
        expect(page.locator("#confirm")).to_contain_text("Revoke the token Webshop <Test> (role shop)?")
        page.screenshot(path=SHOTS / "tokens-2-confirm-en.png")
        page.click("#confirm-revoke")
        expect(page.locator("#tokens tr", has_text="Webshop <Test>")).to_contain_text("revoked")
        page.screenshot(path=SHOTS / "tokens-3-revoked-en.png")
        assert status(url, secret) == 401


async def test_the_token_list_pages_sorts_filters_and_downloads_as_csv_without_secrets(admin, aiohttp_client):
    from hub.services import tokens as token_service

    secrets = [token_service.create_token(admin.hub.db, f"Kasse {n:02}", "shop")[0] for n in range(30)]
    first = await (await admin.get(PAGE, params={"q": "kasse", "sort": "name", "lang": "en"})).text()
    assert "Kasse 00" in first and "Kasse 24" in first and "Kasse 25" not in first and "Page 1 of 2" in first
    second = await (await admin.get(PAGE, params={"q": "kasse", "sort": "name", "page": "2", "lang": "en"})).text()
    assert "Kasse 25" in second and "Kasse 00" not in second
    newest = await (await admin.get(PAGE, params={"sort": "-name"})).text()
    assert newest.index("Kasse 29") < newest.index("Kasse 28")
    only = await (await admin.get(PAGE, params={"q": "kasse 07"})).text()
    assert "Kasse 07" in only and "Kasse 08" not in only
    response = await admin.get(PAGE + ".csv", params={"lang": "en"})
    body = (await response.read()).decode("utf-8")
    assert response.status == 200 and body.startswith("\ufeffName,Role,Created,State")
    assert body.count("Kasse") == 30 and not any(s in body for s in secrets)
    office = await signed_in(aiohttp_client, admin.hub, role="office")
    assert (await office.get(PAGE + ".csv")).status == 403
