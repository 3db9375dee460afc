"""TOTP (RFC 6238) for office admins: enrolment confirmed by a code, the login's second step,
one use per code, the ±1 step window, lockout on wrong codes, turning it off.

Real hub database, real HTTP on loopback, real Argon2id and pyotp. Time moves by the office
clock (`hub.web.office.CLOCK`), never by sleeping. The Chromium test at the end serves the hub
as a process, reads the secret from the page and computes the code with pyotp.
"""

from __future__ import annotations

import re
import time

import pyotp
import pytest

from core.catalog import lockouts
from hub.services import staff
from tests.office import PASSWORD, SHOTS, Clock, form_token, log_in, office_in_chromium, post_form, signed_in


def row(client, user: str = "admin") -> dict:
    return client.hub.db.execute("SELECT * FROM staff WHERE user_name = ?", (user,)).fetchone()


def failures(client, user: str = "admin") -> int:
    found = client.hub.db.execute("SELECT failures FROM login_failures WHERE operator_id = ? AND screen = ?",
                                  (row(client, user)["id"], staff.SCREEN)).fetchone()
    return found["failures"] if found else 0


def code_at(secret: str, clock: Clock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(int(clock.now.timestamp()) + 30 * steps)


async def start_totp(client) -> str:
    response = await post_form(client, "/office/account", "/office/account/totp/start")
    assert response.status == 200, await response.text()
    return re.search(r'data-secret="([A-Z2-7]+)"', await response.text()).group(1)


async def turn_on(client) -> str:
    secret = await start_totp(client)
    response = await post_form(client, "/office/account", "/office/account/totp/confirm",
                               {"code": code_at(secret, client.clock)})
    assert response.status == 200 and "TOTP ist eingeschaltet" in await response.text()
    return secret


async def log_out(client) -> None:
    assert (await post_form(client, "/office/", "/office/logout")).status == 303


async def send_code(client, code: str):
    token = await form_token(client, "/office/login/code")
    return await client.post("/office/login/code", data={"csrf": token, "code": code}, allow_redirects=False)


@pytest.fixture
async def admin(aiohttp_client, empty_hub):
    return await signed_in(aiohttp_client, empty_hub, clock=Clock())


async def test_a_wrong_code_at_enrolment_leaves_totp_off(admin):
    secret = await start_totp(admin)
    wrong = f"{(int(code_at(secret, admin.clock)) + 1) % 1_000_000:06d}"
    response = await post_form(admin, "/office/account", "/office/account/totp/confirm", {"code": wrong})
    assert response.status == 422 and "Der Code stimmt nicht" in await response.text()
    assert row(admin)["totp_secret"] is None
    assert (await log_in(admin)).headers["Location"] == "/office/"  # still a one-step login


async def test_the_secret_is_shown_once_and_a_right_code_turns_totp_on(admin):
    secret = await turn_on(admin)
    assert row(admin)["totp_secret"] == secret and row(admin)["totp_pending"] is None
    page = await (await admin.get("/office/account")).text()
    assert secret not in page and "TOTP ist an" in page


async def test_login_needs_the_code_and_a_code_works_once(admin):
    secret = await turn_on(admin)
    await log_out(admin)
    admin.clock.move(seconds=30)
    first = await log_in(admin)
    assert (first.status, first.headers["Location"]) == (303, "/office/login/code")
    assert (await admin.get("/office/", allow_redirects=False)).status == 303  # no session yet
    wrong = await send_code(admin, "000000" if code_at(secret, admin.clock) != "000000" else "111111")
    assert wrong.status == 401 and "Der Code stimmt nicht" in await wrong.text()
    assert failures(admin) == 1
    code = code_at(secret, admin.clock)
    right = await send_code(admin, code)
    assert (right.status, right.headers["Location"]) == (303, "/office/")
    assert (await admin.get("/office/", allow_redirects=False)).status == 200
    assert failures(admin) == 0
    await log_out(admin)
    assert (await log_in(admin)).headers["Location"] == "/office/login/code"
    replay = await send_code(admin, code)  # the same code, same 30 s step: refused
    assert replay.status == 401
    assert (await admin.get("/office/", allow_redirects=False)).status == 303


async def test_the_code_of_one_step_either_side_is_accepted_two_steps_are_not(admin):
    secret = await turn_on(admin)
    await log_out(admin)
    admin.clock.move(minutes=2)
    assert (await log_in(admin)).headers["Location"] == "/office/login/code"
    assert (await send_code(admin, code_at(secret, admin.clock, -2))).status == 401
    assert (await send_code(admin, code_at(secret, admin.clock, +2))).status == 401
    assert (await send_code(admin, code_at(secret, admin.clock, -1))).status == 303
    await log_out(admin)
    assert (await log_in(admin)).headers["Location"] == "/office/login/code"
    assert (await send_code(admin, code_at(secret, admin.clock, +1))).status == 303


async def test_wrong_codes_lock_the_account_like_wrong_passwords(admin):
    secret = await turn_on(admin)
    await log_out(admin)
    admin.clock.move(seconds=30)
    assert (await log_in(admin)).headers["Location"] == "/office/login/code"
    bad = "000000" if code_at(secret, admin.clock) != "000000" else "111111"
    for _ in range(lockouts.MAX_FAILURES - 1):
        assert (await send_code(admin, bad)).status == 401
    locked = await send_code(admin, bad)
    assert locked.status == 401 and "gesperrt bis" in await locked.text()
    right = await send_code(admin, code_at(secret, admin.clock))  # locked: even the right code is refused
    assert right.status == 401 and "gesperrt bis" in await right.text()
    assert (await admin.get("/office/", allow_redirects=False)).status == 303


def test_the_password_alone_opens_no_session_for_a_totp_account(empty_hub):
    clock = Clock()
    link = staff.add(empty_hub.db, "boss", "admin", clock())[1]
    staff.set_password(empty_hub.db, link, PASSWORD, clock())
    boss = empty_hub.db.execute("SELECT id FROM staff WHERE user_name = 'boss'").fetchone()["id"]
    secret, uri = staff.totp_start(empty_hub.db, boss)
    assert uri.startswith("otpauth://totp/Tessera:boss?") and "issuer=Tessera" in uri
    staff.totp_confirm(empty_hub.db, boss, pyotp.TOTP(secret).at(clock()), clock())
    with pytest.raises(staff.CodeNeeded):
        staff.login(empty_hub.db, "boss", PASSWORD, clock())
    assert empty_hub.db.execute("SELECT count(*) AS n FROM staff_sessions").fetchone()["n"] == 0


async def test_turning_ones_own_totp_off_needs_a_current_code(admin):
    secret = await turn_on(admin)
    admin.clock.move(seconds=30)
    bad = "000000" if code_at(secret, admin.clock) != "000000" else "111111"
    refused = await post_form(admin, "/office/account", "/office/account/totp/off", {"code": bad})
    assert refused.status == 422 and row(admin)["totp_secret"] == secret
    done = await post_form(admin, "/office/account", "/office/account/totp/off", {"code": code_at(secret, admin.clock)})
    assert done.status == 200 and row(admin)["totp_secret"] is None


async def test_totp_forms_without_the_token_or_from_elsewhere_change_nothing(admin):
    token = await form_token(admin, "/office/account")
    no_token = await admin.post("/office/account/totp/start", data={}, allow_redirects=False)
    foreign = await admin.post("/office/account/totp/start", data={"csrf": token}, allow_redirects=False,
                               headers={"Origin": "https://evil.example"})
    assert (no_token.status, foreign.status) == (403, 403)
    assert row(admin)["totp_pending"] is None


async def test_the_office_role_cannot_turn_totp_on(aiohttp_client, empty_hub):
    clerk = await signed_in(aiohttp_client, empty_hub, role="office", clock=Clock())
    response = await post_form(clerk, "/office/account", "/office/account/totp/start")
    assert response.status == 403
    assert row(clerk, "office")["totp_pending"] is None


async def test_the_code_step_without_a_password_step_goes_back_to_the_login(aiohttp_client, empty_hub):
    from hub.app import make_app
    from hub.web import office
    app = make_app(empty_hub.db)
    app[office.CLOCK] = Clock()
    client = await aiohttp_client(app)
    assert (await client.get("/office/login/code", allow_redirects=False)).headers["Location"] == "/office/login"


# --- in Chromium ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_admin_turns_totp_on_and_logs_in_with_a_code_in_chromium(tmp_path):
    with office_in_chromium(tmp_path, sample=False, lang="en") as served:
        page = served.page
        page.click("#me")
        page.click("#totp-start")
        secret = page.get_attribute("#secret", "data-secret")
        page.screenshot(path=str(SHOTS / "totp-1-setup.png"), full_page=True)
        page.fill("#code", pyotp.TOTP(secret).now())
        page.click("#totp-confirm")
        page.wait_for_selector("#done")
        page.screenshot(path=str(SHOTS / "totp-2-on.png"), full_page=True)
        page.click("#logout")
        page.fill("#user", "admin")
        page.fill("#password", PASSWORD)
        page.click("#submit")
        page.wait_for_selector("#code")
        page.screenshot(path=str(SHOTS / "totp-3-code-step.png"), full_page=True)
        later = (int(time.time()) // 30 + 1) * 30  # a later step than the one used to enrol
        page.fill("#code", pyotp.TOTP(secret).at(later))
        page.click("#submit")
        page.wait_for_selector("#me")
        assert page.url.endswith("/office/")
