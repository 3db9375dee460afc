"""The office web app's foundation: setup links, login, lockout, sessions, CSRF, start page.

Real hub database, real HTTP on loopback (aiohttp test server), real Argon2id. Time moves by
the app's clock (`hub.web.office.CLOCK`), never by sleeping. The Playwright test at the end
runs `tessera hub init` and `tessera hub serve` as processes and logs in through Chromium.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import time

import pytest

from core.base.clock import iso, utcnow
from core.base.ids import uuid7
from core.base.storage import connect, transaction
from hub.app import DB_NAME, make_app
from hub.services import mail, staff
from hub.web import office
from tests.conftest import Hub
from tests.office import PASSWORD, SHOTS, Clock, csrf_of, form_token, log_in, new_staff, ready, set_password


@pytest.fixture
async def office_app(aiohttp_client, empty_hub: Hub):
    app = make_app(empty_hub.db)
    clock = Clock()
    app[office.CLOCK] = clock
    client = await aiohttp_client(app)
    client.hub, client.clock = empty_hub, clock
    return client


async def logged_in(client) -> tuple[int, str]:
    response = await client.get("/office/", allow_redirects=False)
    return response.status, response.headers.get("Location", "")


def sessions(client) -> int:
    return client.hub.db.execute("SELECT count(*) AS n FROM staff_sessions").fetchone()["n"]


def password_hash(client, user: str = "admin") -> str | None:
    return client.hub.db.execute("SELECT password_hash FROM staff WHERE user_name = ?", (user,)).fetchone()[
        "password_hash"]


# --- setup links ------------------------------------------------------------------------------------------


async def test_a_setup_link_sets_the_password_once(office_app):
    link = new_staff(office_app)
    response = await set_password(office_app, link)
    assert (response.status, response.headers["Location"]) == (303, "/office/login?done=1")
    stored = password_hash(office_app)
    assert stored.startswith("$argon2id$")
    again = await office_app.get(f"/office/setup/{link}")
    assert again.status == 410
    token = await form_token(office_app, "/office/login")
    second = await office_app.post(f"/office/setup/{link}", allow_redirects=False,
                                   data={"csrf": token, "password": "another long password", "password2":
                                         "another long password"})
    assert second.status == 410
    assert password_hash(office_app) == stored
    assert (await log_in(office_app)).status == 303


async def test_a_setup_link_expires_after_24_hours(office_app):
    link = new_staff(office_app)
    office_app.clock.move(hours=24)
    assert (await office_app.get(f"/office/setup/{link}")).status == 410
    assert password_hash(office_app) is None


@pytest.mark.parametrize("password, repeat", [("short pass", None), ("x" * 11, None),
                                              (PASSWORD, PASSWORD + "!")])
async def test_a_short_or_mistyped_password_is_refused_and_the_link_stays_open(office_app, password, repeat):
    link = new_staff(office_app)
    response = await set_password(office_app, link, password, repeat)
    assert response.status == 422
    assert 'class="error"' in await response.text()
    assert password_hash(office_app) is None
    assert (await set_password(office_app, link)).status == 303


def test_the_setup_token_is_stored_only_as_a_hash(empty_hub):
    _, link = staff.add(empty_hub.db, "anna", "office", utcnow())
    (row,) = empty_hub.db.execute("SELECT * FROM staff_setup_links").fetchall()
    assert link not in str(row) and row["token_hash"] == hashlib.sha256(link.encode()).hexdigest()
    with pytest.raises(Exception, match="exists already"):
        staff.add(empty_hub.db, "ANNA", "office", utcnow())


def test_hub_init_and_staff_add_print_setup_links_that_work(tmp_path, capsys):
    from cli.main import main
    from hub.app import open_hub

    folder = tmp_path / "hub"
    assert main(["hub", "init", "--data", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert printed.split()[-1].startswith("tsr_")  # the API token stays the last word
    admin_link = re.search(r"/office/setup/([\w-]+) on the hub", printed).group(1)
    assert main(["hub", "staff", "add", "--data", str(folder), "--user", "Anna", "--role", "office"]) == 0
    anna_link = re.search(r"/office/setup/([\w-]+)", capsys.readouterr().out).group(1)
    assert main(["hub", "staff", "add", "--data", str(folder), "--user", "anna", "--role", "office"]) != 0
    db = open_hub(folder)
    try:
        now = utcnow()
        assert staff.set_password(db, admin_link, PASSWORD, now) == {"user_name": "admin", "role": "admin"}
        assert staff.set_password(db, anna_link, PASSWORD, now) == {"user_name": "Anna", "role": "office"}
        assert staff.login(db, "anna", PASSWORD, now)[1].role == "office"
        for _ in range(5):
            with pytest.raises(staff.LoginRefused):
                staff.login(db, "anna", "wrong password!", now)
        with pytest.raises(staff.LoginRefused, match="too many"):
            staff.login(db, "anna", PASSWORD, now)
        # a forgotten password or a lockout: a new link from the hub's machine
        assert main(["hub", "staff", "link", "--data", str(folder), "--user", "anna"]) == 0
        new_link = re.search(r"/office/setup/([\w-]+)", capsys.readouterr().out).group(1)
        staff.set_password(db, new_link, "a new long password", now)
        assert staff.login(db, "anna", "a new long password", now)[1].user_name == "Anna"
    finally:
        db.close()


def test_staff_tables_are_never_replicated():
    from core.migrations.feed_triggers import REPLICATED

    assert not {"staff", "staff_setup_links", "staff_sessions", "login_failures"} & set(REPLICATED)


# --- login, logout, lockout, idle ---------------------------------------------------------------------------


async def test_login_opens_the_start_page_and_logout_ends_the_session(office_app):
    await ready(office_app)
    assert await logged_in(office_app) == (303, "/office/login")
    response = await log_in(office_app)
    assert (response.status, response.headers["Location"]) == (303, "/office/")
    cookie = response.cookies["tessera_office"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
    page = await office_app.get("/office/")
    assert page.status == 200 and "admin" in await page.text()
    token = csrf_of(await page.text())
    out = await office_app.post("/office/logout", data={"csrf": token}, allow_redirects=False)
    assert (out.status, out.headers["Location"]) == (303, "/office/login")
    assert sessions(office_app) == 0
    office_app.session.cookie_jar.update_cookies({"tessera_office": cookie.value})  # the old cookie again
    assert (await logged_in(office_app))[0] == 303


async def test_the_cookie_is_secure_when_the_public_url_is_https(aiohttp_client, empty_hub: Hub):
    (empty_hub.dir / "hub.toml").write_text('[shop]\npublic_url = "https://tickets.example.org"\n')
    client = await aiohttp_client(make_app(empty_hub.db))
    staff.set_password(empty_hub.db, staff.add(empty_hub.db, "admin", "admin", utcnow())[1], PASSWORD, utcnow())
    page = await client.get("/office/login")
    assert page.cookies["tessera_office_form"]["secure"]
    token = csrf_of(await page.text())  # the client sends no Secure cookie over http: by hand, as a proxy would
    response = await client.post("/office/login", data={"csrf": token, "user": "admin", "password": PASSWORD},
                                 headers={"Cookie": f"tessera_office_form={token}"}, allow_redirects=False)
    assert response.status == 303 and response.cookies["tessera_office"]["secure"]


async def test_five_wrong_passwords_lock_the_user_30_s_then_doubling(office_app):
    await ready(office_app)
    for _ in range(4):
        assert (await log_in(office_app, password="wrong password!")).status == 401
    locked = await log_in(office_app, password="wrong password!")
    assert locked.status == 401 and "gesperrt" in await locked.text()
    # the right password does not help while locked
    assert (await log_in(office_app)).status == 401
    assert sessions(office_app) == 0
    office_app.clock.move(seconds=30)
    for _ in range(5):
        assert (await log_in(office_app, password="wrong password!")).status == 401
    office_app.clock.move(seconds=59)
    assert (await log_in(office_app)).status == 401  # the second lock lasts 60 s
    office_app.clock.move(seconds=1)
    assert (await log_in(office_app)).status == 303


async def test_wrong_passwords_sent_at_the_same_time_are_all_counted(office_app):
    await ready(office_app)
    token = await form_token(office_app, "/office/login")
    answers = await asyncio.gather(*(office_app.post("/office/login", allow_redirects=False, data={
        "csrf": token, "user": "admin", "password": f"wrong password {n}"}) for n in range(5)))
    assert [a.status for a in answers] == [401] * 5
    assert (await log_in(office_app)).status == 401  # locked
    assert sessions(office_app) == 0


async def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(office_app):
    await ready(office_app)
    unknown = await log_in(office_app, user="nobody")
    wrong = await log_in(office_app, password="wrong password!")
    assert unknown.status == wrong.status == 401
    assert re.search(r'id="error"[^>]*>([^<]+)', await unknown.text()).group(1) == \
        re.search(r'id="error"[^>]*>([^<]+)', await wrong.text()).group(1)


async def test_a_session_ends_after_30_idle_minutes_but_not_while_used(office_app):
    await ready(office_app)
    await log_in(office_app)
    for _ in range(3):  # 3 x 20 minutes with a request each time: still in
        office_app.clock.move(minutes=20)
        assert (await logged_in(office_app))[0] == 200
    office_app.clock.move(minutes=30)
    assert await logged_in(office_app) == (303, "/office/login?expired=1")
    assert sessions(office_app) == 0


# --- CSRF and the API boundary ---------------------------------------------------------------------------------


async def test_a_post_without_the_form_token_or_from_another_site_changes_nothing(office_app):
    await ready(office_app)
    # login: no token, a wrong token, a foreign Origin (with the right token and password)
    token = await form_token(office_app, "/office/login")
    for data, headers in (({"user": "admin", "password": PASSWORD}, {}),
                          ({"csrf": "x" * 43, "user": "admin", "password": PASSWORD}, {}),
                          ({"csrf": token, "user": "admin", "password": PASSWORD},
                           {"Origin": "https://evil.example"}),
                          ({"csrf": token, "user": "admin", "password": PASSWORD}, {"Sec-Fetch-Site": "cross-site"})):
        refused = await office_app.post("/office/login", data=data, headers=headers, allow_redirects=False)
        assert refused.status == 403, data
    assert sessions(office_app) == 0
    # logout: no token, a foreign Origin
    await log_in(office_app)
    page_token = csrf_of(await (await office_app.get("/office/")).text())
    assert (await office_app.post("/office/logout", data={}, allow_redirects=False)).status == 403
    foreign = await office_app.post("/office/logout", data={"csrf": page_token}, allow_redirects=False,
                                    headers={"Origin": "https://evil.example"})
    assert foreign.status == 403
    assert sessions(office_app) == 1 and (await logged_in(office_app))[0] == 200
    # setup: a foreign Origin does not set a password
    link = new_staff(office_app, "ben", "office")
    setup_token = await form_token(office_app, f"/office/setup/{link}")
    foreign = await office_app.post(f"/office/setup/{link}", headers={"Origin": "https://evil.example"},
                                    data={"csrf": setup_token, "password": PASSWORD, "password2": PASSWORD})
    assert foreign.status == 403 and password_hash(office_app, "ben") is None


async def test_an_api_token_is_no_session_and_a_session_opens_no_api(office_app):
    await ready(office_app)
    office_app.session.cookie_jar.update_cookies({"tessera_office": office_app.hub.token})
    assert (await logged_in(office_app))[0] == 303
    response = await log_in(office_app)
    cookie = response.cookies["tessera_office"].value
    assert (await logged_in(office_app))[0] == 200
    for path in ("/api/v1/tokens", "/api/v1/nodes"):
        answer = await office_app.get(path, headers={"Cookie": f"tessera_office={cookie}"})
        assert answer.status == 401, path
        answer = await office_app.get(path, headers={"Authorization": f"Bearer {cookie}"})
        assert answer.status == 401, path


# --- the start page ---------------------------------------------------------------------------------------------


def fill_start_page_data(hub: Hub, now: dt.datetime) -> None:
    """Two shop orders and a desk sale today, one yesterday; a queued print job, a waiting mail, an
    open and a resolved conflict, a device seen a minute ago and one seen an hour ago."""
    db = hub.db
    with transaction(db):
        for n, (channel, cents, when) in enumerate((("shop", 2500, now), ("shop", 1000, now),
                                                    ("cashdesk", 700, now),
                                                    ("shop", 9900, now - dt.timedelta(days=1)))):
            db.execute("INSERT INTO orders (id, number, node_id, channel, total_cents, created_at) "
                       "VALUES (?, ?, 'n', ?, ?, ?)", (uuid7(), f"T-{n}", channel, cents, iso(when)))
        db.execute("INSERT INTO print_jobs (id, kind, ref_id, created_at) VALUES (?, 'card', 'c', ?)",
                   (uuid7(), iso(now)))
        db.execute("INSERT INTO print_jobs (id, kind, ref_id, state, created_at) VALUES (?, 'card', 'd', "
                   "'printed', ?)", (uuid7(), iso(now)))
        for node, name, seen in (("n1", "Kasse 1", now - dt.timedelta(minutes=1)),
                                 ("n2", "Einlass 2", now - dt.timedelta(hours=1))):
            db.execute("INSERT INTO node_scopes (node_id, name, role, enrolled_at, last_pull_at) "
                       "VALUES (?, ?, 'cashdesk', ?, ?)", (node, name, iso(now), iso(seen)))
        for seq, resolved in ((1, None), (2, iso(now))):
            db.execute("INSERT INTO conflicts (id, node_id, node_seq, kind, body, reason, created_at, resolved_at) "
                       "VALUES (?, 'n1', ?, 'sale', '{}', 'sold out', ?, ?)", (uuid7(), seq, iso(now), resolved))
    mail.enqueue(db, to="a@example.org", subject="Hallo", text="Text", now=now)


async def test_the_start_page_shows_todays_sales_devices_and_waiting_work(office_app):
    fill_start_page_data(office_app.hub, office_app.clock())
    await ready(office_app, "clara", "office")
    await log_in(office_app, "clara")
    html = await (await office_app.get("/office/?lang=de")).text()

    def cell(html: str, ident: str) -> str:
        return re.search(rf'id="{ident}">([^<]*)<', html).group(1)

    assert (cell(html, "orders-total"), cell(html, "cents-total")) == ("3", "42,00 €")
    shop_row = re.search(r'data-channel="shop">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'class="num">([^<]*)<', shop_row) == ["2", "35,00 €"]
    assert (cell(html, "open-conflicts"), cell(html, "print-waiting"), cell(html, "mail-waiting")) == ("1", "1", "1")
    assert re.search(r"Kasse 1</td><td>Kasse</td>\s*<td class=\"online\">online", html)  # roles as words
    assert re.search(r"Einlass 2</td><td>Kasse</td>\s*<td class=\"offline\">offline", html)
    english = await (await office_app.get("/office/?lang=en")).text()
    assert re.search(r"Kasse 1</td><td>Cash desk</td>", english)
    assert cell(english, "cents-total") == "€42.00" and "Sales today" in english


# --- in a browser --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_first_login_in_chromium_via_the_setup_link_of_hub_init(tmp_path):
    from playwright.sync_api import expect

    from tests.browsers import chromium
    from tests.test_desk_browser import HUB_READY
    from tests.test_sync_kill import Process, run

    started = time.monotonic()
    hub_dir = tmp_path / "hub"
    printed = run("hub", "init", "--data", str(hub_dir))
    link = re.search(r"(/office/setup/[\w-]+) on the hub", printed).group(1)
    db = connect(hub_dir / DB_NAME)
    fill_start_page_data(Hub(hub_dir, db, "", {}), utcnow())
    db.close()
    hub = Process(tmp_path / "log.txt", "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise",
                  ready=HUB_READY)
    SHOTS.mkdir(parents=True, exist_ok=True)  # shared with the list screens' test: each writes its own files
    for old in SHOTS.glob("[1-5]-*.png"):
        old.unlink(missing_ok=True)
    try:
        with chromium() as browser:
            page = browser.new_context(viewport={"width": 1366, "height": 768}, locale="de-DE").new_page()
            page.set_default_timeout(10_000)
            page.goto(hub.url + link)
            page.screenshot(path=SHOTS / "1-setup-de.png")
            page.fill("#password", PASSWORD)
            page.fill("#password2", PASSWORD)
            page.keyboard.press("Enter")
            expect(page.locator("#note")).to_contain_text("Passwort gespeichert")
            page.fill("#user", "admin")
            page.fill("#password", PASSWORD)
            page.screenshot(path=SHOTS / "2-login-de.png")
            page.click("#submit")
            expect(page.locator("#me")).to_contain_text("admin")
            expect(page.locator("#cents-total")).to_have_text("42,00 €")
            page.screenshot(path=SHOTS / "3-start-de.png")
            page.click("#lang")
            expect(page.locator("#h-sales")).to_have_text("Sales today")
            page.screenshot(path=SHOTS / "4-start-en.png")
            page.click("#logout")
            expect(page.locator("#submit")).to_have_text("Log in")
            page.screenshot(path=SHOTS / "5-login-en.png")
            page.goto(hub.url + link)  # the link is used up
            expect(page.locator("#message")).to_contain_text("used already")
    finally:
        hub.stop()
    print(f"office login in Chromium: {time.monotonic() - started:.1f} s; screenshots in {SHOTS}")
