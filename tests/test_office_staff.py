"""The office Staff screen (/office/staff, admins only): add with a setup link shown once, a new
link for a forgotten password, deactivate (sessions end at once) and reactivate, the last-admin
and self rules, another admin's TOTP off; CSRF and the office role refused with nothing changed.

Real hub database, real HTTP on loopback, real Argon2id; the office clock instead of sleeping.
The Chromium test serves the hub as a process.
"""

from __future__ import annotations

import re

import pyotp
import pytest

from core.base.clock import LOCAL_TZ
from hub.services import staff
from tests.office import (
    PASSWORD,
    SHOTS,
    Clock,
    form_token,
    log_in,
    office_in_chromium,
    post_form,
    set_password,
    signed_in,
)

PAGE = "/office/staff"


def accounts(client) -> list[tuple]:
    return [tuple(r.values()) for r in client.hub.db.execute(
        "SELECT id, user_name, role, active, password_hash, totp_secret FROM staff ORDER BY user_name")]


def links(client) -> list[tuple]:
    return [tuple(r.values()) for r in client.hub.db.execute("SELECT * FROM staff_setup_links ORDER BY created_at")]


def staff_id(client, user: str) -> str:
    return client.hub.db.execute("SELECT id FROM staff WHERE user_name = ?", (user,)).fetchone()["id"]


@pytest.fixture
async def admin(aiohttp_client, empty_hub):
    return await signed_in(aiohttp_client, empty_hub, clock=Clock())


async def second_browser(aiohttp_client, admin, user: str):
    """Another browser on the same hub and clock, logged in as *user* (password set already)."""
    from hub.app import make_app
    from hub.web import office
    app = make_app(admin.hub.db)
    app[office.CLOCK] = admin.clock
    client = await aiohttp_client(app)
    client.hub, client.clock = admin.hub, admin.clock
    assert (await log_in(client, user)).status == 303
    return client


async def add(client, user: str, role: str = "office"):
    return await post_form(client, PAGE, PAGE + "/add", {"user": user, "role": role})


async def test_the_staff_list_shows_user_role_active_last_login_and_totp(admin):
    page = await (await admin.get(PAGE)).text()
    row = re.search(r'<tr data-user="admin">(.*?)</tr>', page, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert cells[:5] == ["admin", "Administrator/in", "ja", admin.clock.now.astimezone(LOCAL_TZ).strftime(
        "%d.%m.%Y %H:%M"), "aus"]


async def test_adding_staff_shows_the_setup_link_once_and_it_works(admin):
    response = await add(admin, "clerk")
    assert response.status == 201
    html = await response.text()
    link = re.search(r'id="link">[^<]*/office/setup/([\w-]+)<', html).group(1)
    assert "clerk" in html
    listed = await (await admin.get(PAGE)).text()
    assert link not in listed  # shown once: the list never repeats it
    assert (await set_password(admin, link)).status == 303
    assert staff.login(admin.hub.db, "clerk", PASSWORD, admin.clock())[1].role == "office"


async def test_hostile_or_duplicate_names_are_refused_with_a_message_and_escaped(admin):
    before = accounts(admin)
    dup = await add(admin, "ADMIN", "office")
    assert dup.status == 409 and "gibt es schon" in await dup.text()
    long = await add(admin, "x" * 101)
    assert long.status == 422
    bad_role = await add(admin, "eve", "root")
    assert bad_role.status == 422
    assert accounts(admin) == before
    html_name = await add(admin, "<b>mallory</b>")
    assert html_name.status == 201
    text = await (await admin.get(PAGE)).text()
    assert "&lt;b&gt;mallory&lt;/b&gt;" in text and "<b>mallory</b>" not in text


async def test_a_new_link_for_a_forgotten_password_kills_the_old_one(admin):
    first = re.search(r"/office/setup/([\w-]+)<", await (await add(admin, "clerk")).text()).group(1)
    response = await post_form(admin, PAGE, f"{PAGE}/{staff_id(admin, 'clerk')}/link")
    assert response.status == 201
    second = re.search(r"/office/setup/([\w-]+)<", await response.text()).group(1)
    assert (await admin.get(f"/office/setup/{first}")).status == 410
    assert (await admin.get(f"/office/setup/{second}")).status == 200
    unknown = await post_form(admin, PAGE, f"{PAGE}/no-such-id/link")
    assert unknown.status == 404


async def test_deactivating_ends_the_sessions_at_once_and_reactivating_lets_them_back(aiohttp_client, admin):
    link = re.search(r"/office/setup/([\w-]+)<", await (await add(admin, "clerk")).text()).group(1)
    assert (await set_password(admin, link)).status == 303
    clerk = await second_browser(aiohttp_client, admin, "clerk")
    assert (await clerk.get("/office/", allow_redirects=False)).status == 200
    done = await post_form(admin, PAGE, f"{PAGE}/{staff_id(admin, 'clerk')}/deactivate")
    assert done.status == 200 and "Sitzungen sind beendet" in await done.text()
    assert (await clerk.get("/office/", allow_redirects=False)).status == 303  # no clock move: at once
    assert (await log_in(clerk, "clerk")).status == 401
    assert (await post_form(admin, PAGE, f"{PAGE}/{staff_id(admin, 'clerk')}/reactivate")).status == 200
    assert (await log_in(clerk, "clerk")).status == 303


async def test_an_admin_cannot_deactivate_themself_or_the_last_active_admin(aiohttp_client, admin):
    before = accounts(admin)
    me = await post_form(admin, PAGE, f"{PAGE}/{staff_id(admin, 'admin')}/deactivate")
    assert me.status == 409 and "eigene Konto" in await me.text()
    assert accounts(admin) == before
    link = re.search(r"/office/setup/([\w-]+)<", await (await add(admin, "boss", "admin")).text()).group(1)
    assert (await set_password(admin, link)).status == 303
    boss = await second_browser(aiohttp_client, admin, "boss")
    assert (await post_form(boss, PAGE, f"{PAGE}/{staff_id(admin, 'admin')}/deactivate")).status == 200
    with pytest.raises(Exception, match="last active admin"):  # the service rule, under the page
        staff.deactivate(admin.hub.db, "someone", staff_id(admin, "boss"), admin.clock())
    assert [a[3] for a in accounts(admin) if a[1] == "boss"] == [1]


async def test_an_admin_turns_another_admins_totp_off(aiohttp_client, admin):
    link = re.search(r"/office/setup/([\w-]+)<", await (await add(admin, "boss", "admin")).text()).group(1)
    assert (await set_password(admin, link)).status == 303
    boss = staff_id(admin, "boss")
    secret, _ = staff.totp_start(admin.hub.db, boss)
    staff.totp_confirm(admin.hub.db, boss, pyotp.TOTP(secret).at(admin.clock()), admin.clock())
    page = await (await admin.get(PAGE)).text()
    assert re.search(r'<tr data-user="boss">.*?>an<', page, re.S)
    assert secret not in page
    assert (await post_form(admin, PAGE, f"{PAGE}/{boss}/totp-off")).status == 200
    assert [a[5] for a in accounts(admin) if a[1] == "boss"] == [None]


async def test_staff_posts_without_the_token_or_from_elsewhere_change_nothing(admin):
    before, before_links = accounts(admin), links(admin)
    token = await form_token(admin, PAGE)
    target = staff_id(admin, "admin")
    for action in ("/add", f"/{target}/link", f"/{target}/deactivate", f"/{target}/totp-off"):
        no_token = await admin.post(PAGE + action, data={"user": "eve", "role": "admin"}, allow_redirects=False)
        foreign = await admin.post(PAGE + action, data={"csrf": token, "user": "eve", "role": "admin"},
                                   allow_redirects=False, headers={"Origin": "https://evil.example"})
        assert (no_token.status, foreign.status) == (403, 403), action
    assert (accounts(admin), links(admin)) == (before, before_links)


async def test_the_office_role_cannot_see_or_change_staff(aiohttp_client, empty_hub):
    clerk = await signed_in(aiohttp_client, empty_hub, role="office", clock=Clock())
    before, before_links = accounts(clerk), links(clerk)
    assert (await clerk.get(PAGE)).status == 403
    token = await form_token(clerk, "/office/")
    me = staff_id(clerk, "office")
    for action in ("/add", f"/{me}/link", f"/{me}/deactivate", f"/{me}/reactivate", f"/{me}/totp-off"):
        response = await clerk.post(PAGE + action, data={"csrf": token, "user": "eve", "role": "admin"},
                                    allow_redirects=False)
        assert response.status == 403, action
    assert (accounts(clerk), links(clerk)) == (before, before_links)
    nav = await (await clerk.get("/office/")).text()
    assert 'href="/office/staff"' not in nav


async def test_the_staff_screen_needs_a_login(aiohttp_client, empty_hub):
    from hub.app import make_app
    client = await aiohttp_client(make_app(empty_hub.db))
    response = await client.get(PAGE, allow_redirects=False)
    assert response.headers["Location"].startswith("/office/login")
    response = await client.post(PAGE + "/add", data={"user": "eve", "role": "admin"}, allow_redirects=False)
    assert response.headers["Location"].startswith("/office/login")
    assert empty_hub.db.execute("SELECT count(*) AS n FROM staff").fetchone()["n"] == 0


async def test_changing_ones_own_password_needs_the_old_one(aiohttp_client, admin):
    other = await second_browser(aiohttp_client, admin, "admin")
    wrong = await post_form(admin, "/office/account", "/office/account/password",
                            {"old": "not the password", "new": "a brand new password", "new2": "a brand new password"})
    assert wrong.status == 422 and "bisherige Passwort" in await wrong.text()
    assert (await log_in(other, "admin")).status == 303
    right = await post_form(admin, "/office/account", "/office/account/password",
                            {"old": PASSWORD, "new": "a brand new password", "new2": "a brand new password"})
    assert right.status == 200
    assert (await admin.get("/office/", allow_redirects=False)).status == 200  # this session stays
    assert (await other.get("/office/", allow_redirects=False)).status == 303  # the others end
    assert (await log_in(other, "admin", "a brand new password")).status == 303


# --- in Chromium ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_staff_screen_in_chromium(tmp_path):
    """German, then English on one hub (instead of a hub and browser per language)."""
    with office_in_chromium(tmp_path, sample=False, lang="de") as served:
        page = served.page
        for lang, user in (("de", "<b>clerk</b>"), ("en", "<b>clerk-en</b>")):
            page.goto(served.hub.url + f"/office/staff?lang={lang}")
            page.fill("#user", user)
            page.click("#add-user")
            page.wait_for_selector("#new-link")
            assert "/office/setup/" in page.inner_text("#link")
            page.screenshot(path=str(SHOTS / f"staff-1-added-{lang}.png"), full_page=True)
            page.goto(served.hub.url + "/office/staff")
            page.click(f'tr[data-user="{user}"] button.danger')
            page.wait_for_selector("#done")
            page.screenshot(path=str(SHOTS / f"staff-2-deactivated-{lang}.png"), full_page=True)
