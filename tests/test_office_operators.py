"""The office app's Operators screen: add, deactivate/reactivate, reset a PIN, all through the API.

Real hub database (the sample), the office app over loopback HTTP, real scrypt PIN hashes, and a
real desk data folder provisioned from the hub (`hub.services.provisioning`): the PIN typed into
the office form opens a session at the desk's own login (`POST /api/login`), after the desk
took the hub's data (`provisioning.refresh`, the same feed the sync carries).
"""

from __future__ import annotations

import pytest

from hub.app import make_app
from hub.services import provisioning
from tests.helpers import call
from tests.office import post_form, signed_in
from tests.test_pins import desk_login, provision

PAGE = "/office/operators"
FOREIGN = {"Origin": "https://evil.example"}


def rows(client) -> list[tuple]:
    return [tuple(r.values()) for r in client.hub.db.execute("SELECT * FROM operators ORDER BY id")]


def pins(client) -> list[tuple]:
    return [tuple(r.values()) for r in client.hub.db.execute("SELECT * FROM operator_pins ORDER BY operator_id")]


def operator(client, name: str) -> dict:
    return client.hub.db.execute("SELECT * FROM operators WHERE name = ?", (name,)).fetchone()


async def add(client, name: str, pin: str, pin2: str | None = None, lang: str = "en", **headers: str):
    return await post_form(client, f"{PAGE}?lang={lang}", PAGE, {"name": name, "pin": pin,
                                                                  "pin2": pin if pin2 is None else pin2}, **headers)


@pytest.fixture(params=["admin", "office"])
async def staff_client(request, aiohttp_client, sample_hub):
    """Both staff roles may manage operators (the API's STAFF)."""
    return await signed_in(aiohttp_client, sample_hub, role=request.param)


async def test_an_added_operator_logs_in_at_a_desk_with_the_pin_typed_in_the_office(
        staff_client, aiohttp_client, tmp_path):
    response = await add(staff_client, "Bruno", "24680")
    assert response.status == 303 and response.headers["Location"] == PAGE + "?done=added"
    page = await (await staff_client.get(response.headers["Location"] + "&lang=en")).text()
    assert "Bruno" in page and "Operator added." in page and "24680" not in page
    bruno = operator(staff_client, "Bruno")
    assert bruno["active"] == 1
    desk = provision(staff_client.hub, tmp_path, "Kasse-1")
    assert await desk_login(aiohttp_client, desk, bruno["id"], "24680") == 200
    assert await desk_login(aiohttp_client, desk, bruno["id"], "24681") == 401


async def test_a_duplicate_name_is_a_409_message_and_changes_nothing(staff_client):
    assert (await add(staff_client, "Bruno", "1234")).status == 303
    before, hashes = rows(staff_client), pins(staff_client)
    response = await add(staff_client, "Bruno", "9999")
    assert response.status == 409
    assert "An operator named “Bruno” exists already." in await response.text()
    german = await add(staff_client, "Bruno", "9999", lang="de")
    assert german.status == 409 and "Eine Bedienung namens „Bruno“ gibt es schon." in await german.text()
    assert rows(staff_client) == before and pins(staff_client) == hashes


@pytest.mark.parametrize(("pin", "pin2", "status", "message"), [
    ("1234", "1235", 422, "The two PINs differ."),
    ("123", "123", 422, "The PIN must be 4 to 8 digits."),
    ("12ab", "12ab", 422, "The PIN must be 4 to 8 digits."),
    ("123456789", "123456789", 422, "The PIN must be 4 to 8 digits."),
])
async def test_a_bad_pin_gets_a_message_and_adds_nobody(staff_client, pin, pin2, status, message):
    before = rows(staff_client)
    response = await add(staff_client, "Carla", pin, pin2)
    page = await response.text()
    assert response.status == status and message in page
    assert f'value="{pin}"' not in page  # the PIN is not put back into the form
    assert 'value="Carla"' in page  # the name is, so the user types only the PINs again
    assert rows(staff_client) == before


async def test_a_deactivated_operators_pin_opens_no_desk_after_sync_until_reactivated(
        staff_client, aiohttp_client, tmp_path):
    """What the code supports: `active` replicates to desks and `operators.login` refuses an
    inactive operator, so after the desk's next sync the PIN opens no session."""
    await add(staff_client, "Dora", "5555")
    dora = operator(staff_client, "Dora")
    desk = provision(staff_client.hub, tmp_path, "Kasse-2")
    assert await desk_login(aiohttp_client, desk, dora["id"], "5555") == 200
    response = await post_form(staff_client, PAGE, f"{PAGE}/{dora['id']}/active", {"active": "0"})
    assert response.status == 303 and response.headers["Location"].endswith("done=inactive")
    assert operator(staff_client, "Dora")["active"] == 0
    provisioning.refresh(desk, staff_client.hub.dir)
    assert await desk_login(aiohttp_client, desk, dora["id"], "5555") == 401
    # reactivated: the PIN (kept, never asked for) works again after the next sync
    response = await post_form(staff_client, PAGE, f"{PAGE}/{dora['id']}/active", {"active": "1"})
    assert response.status == 303
    provisioning.refresh(desk, staff_client.hub.dir)
    assert await desk_login(aiohttp_client, desk, dora["id"], "5555") == 200


async def test_a_reset_pin_opens_the_desk_and_the_old_one_no_longer(staff_client, aiohttp_client, tmp_path):
    await add(staff_client, "Emil", "1111")
    emil = operator(staff_client, "Emil")
    desk = provision(staff_client.hub, tmp_path, "Kasse-3")
    mismatch = await post_form(staff_client, f"{PAGE}?lang=en", f"{PAGE}/{emil['id']}/pin",
                               {"pin": "2222", "pin2": "2223"})
    assert mismatch.status == 422 and "The two PINs differ." in await mismatch.text()
    response = await post_form(staff_client, PAGE, f"{PAGE}/{emil['id']}/pin", {"pin": "2222", "pin2": "2222"})
    assert response.status == 303 and response.headers["Location"].endswith("done=pin")
    provisioning.refresh(desk, staff_client.hub.dir)
    assert await desk_login(aiohttp_client, desk, emil["id"], "1111") == 401
    assert await desk_login(aiohttp_client, desk, emil["id"], "2222") == 200


async def test_the_api_put_without_a_pin_keeps_it(aiohttp_client, sample_hub, tmp_path):
    """The API change this screen needs, over HTTP with a bearer token: a PUT that leaves out the
    PIN deactivates without resetting it (before, PUT demanded a PIN: 400 `pin` missing)."""
    api = await aiohttp_client(make_app(sample_hub.db))
    api.hub = sample_hub
    made = await call(api, "POST", "/operators", {"name": "Fritz", "pin": "7777"}, status=201)
    hashes = [tuple(r.values()) for r in sample_hub.db.execute("SELECT * FROM operator_pins")]
    changed = await call(api, "PUT", f"/operators/{made['id']}", {"name": "Fritz", "active": False}, status=200)
    assert changed["active"] is False
    assert [tuple(r.values()) for r in sample_hub.db.execute("SELECT * FROM operator_pins")] == hashes
    await call(api, "PUT", f"/operators/{made['id']}", {"name": "Fritz", "pin": "12"}, status=422)


async def test_hostile_and_foreign_posts_change_nothing(aiohttp_client, sample_hub):
    client = await signed_in(aiohttp_client, sample_hub, role="office")
    await add(client, "Gina", "4321")
    gina = operator(client, "Gina")
    before, hashes = rows(client), pins(client)
    # another origin, or no form token: 403
    assert (await add(client, "Hans", "1234", **FOREIGN)).status == 403
    assert (await client.post(PAGE, data={"name": "Hans", "pin": "1234", "pin2": "1234"})).status == 403
    assert (await post_form(client, PAGE, f"{PAGE}/{gina['id']}/active", {"active": "0"}, **FOREIGN)).status == 403
    assert (await client.post(f"{PAGE}/{gina['id']}/pin", data={"pin": "1234", "pin2": "1234"})).status == 403
    # unknown operator, unknown action, over-long name
    unknown = await post_form(client, PAGE, f"{PAGE}/01900000-0000-7000-8000-000000000000/pin",
                              {"pin": "1234", "pin2": "1234"})
    assert unknown.status == 404
    assert (await post_form(client, PAGE, f"{PAGE}/{gina['id']}/active", {"active": "maybe"})).status == 422
    assert (await add(client, "x" * 300, "1234")).status == 422
    assert rows(client) == before and pins(client) == hashes
    # HTML in a name is shown as text
    assert (await add(client, "<script>alert(1)</script>", "1234")).status == 303
    page = await (await client.get(PAGE)).text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_without_login_the_screen_is_the_login_page(aiohttp_client, sample_hub):
    client = await aiohttp_client(make_app(sample_hub.db))
    for response in (await client.get(PAGE, allow_redirects=False),
                     await client.post(PAGE, data={"name": "X", "pin": "1234", "pin2": "1234"},
                                       allow_redirects=False)):
        assert response.status == 303 and response.headers["Location"].startswith("/office/login")
    assert sample_hub.db.execute("SELECT count(*) AS n FROM operators WHERE name = 'X'").fetchone()["n"] == 0


@pytest.mark.slow
def test_operators_in_chromium_add_and_reset_a_pin(tmp_path):
    """Add an operator and reset a PIN with mouse and keyboard, German then English."""
    from playwright.sync_api import expect

    from tests.office import SHOTS, office_in_chromium

    for old in SHOTS.glob("operators-*.png"):
        old.unlink(missing_ok=True)
    with office_in_chromium(tmp_path, sample=False) as served:
        page = served.page
        page.click("#nav >> text=Bedienungen")
        page.fill("#op-name", "Anna Kasse")
        page.fill("#op-pin", "4711")
        page.fill("#op-pin2", "4712")
        page.click("#add")
        expect(page.locator("#error")).to_have_text("Die beiden PINs stimmen nicht überein.")
        expect(page.locator("#op-name")).to_have_value("Anna Kasse")
        page.screenshot(path=SHOTS / "operators-1-mismatch-de.png")
        page.fill("#op-pin", "4711")
        page.fill("#op-pin2", "4711")
        page.click("#add")
        expect(page.locator("#notice")).to_have_text("Bedienung angelegt.")
        expect(page.locator("#operators")).to_contain_text("Anna Kasse")
        page.screenshot(path=SHOTS / "operators-2-added-de.png")
        page.goto(served.hub.url + "/office/operators?lang=en")
        row = page.locator("#operators tr", has_text="Anna Kasse")
        row.locator("input[name=pin]").fill("8520")
        row.locator("input[name=pin2]").fill("8520")
        row.locator("form.pinreset button").click()
        expect(page.locator("#notice")).to_have_text("PIN changed: the old PIN no longer works.")
        page.locator("#operators tr", has_text="Anna Kasse").locator("button.toggle").click()
        expect(page.locator("#operators tr", has_text="Anna Kasse")).to_contain_text("deactivated")
        page.screenshot(path=SHOTS / "operators-3-reset-deactivated-en.png", full_page=True)
        assert "4711" not in page.content() and "8520" not in page.content()


async def test_the_operator_list_filters_sorts_and_downloads_as_csv_without_pins(aiohttp_client, sample_hub):
    client = await signed_in(aiohttp_client, sample_hub, role="office")
    for name, pin in (("Zoe", "1357"), ("Adam", "2468"), ("=HYPERLINK(1)", "9753")):
        assert (await add(client, name, pin)).status == 303
    await post_form(client, PAGE, f"{PAGE}/{operator(client, 'Adam')['id']}/active", {"active": "0"})
    page = await (await client.get(PAGE, params={"sort": "-name", "lang": "en"})).text()
    assert page.index("Zoe") < page.index("Adam")
    page = await (await client.get(PAGE, params={"sort": "state; DROP TABLE operators", "lang": "en"})).text()
    assert page.index("Adam") < page.index("Zoe")  # an unknown sort key: the default, by name
    filtered = await (await client.get(PAGE, params={"q": "zo"})).text()
    assert "Zoe" in filtered and "Adam" not in filtered
    response = await client.get(PAGE + ".csv", params={"lang": "de", "sort": "name"})
    body = (await response.read()).decode("utf-8")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    lines = body.removeprefix("\ufeff").splitlines()
    assert lines[0] == "Name;Zustand;Angelegt"
    assert lines[1].startswith("'=HYPERLINK(1);aktiv") and lines[2].startswith("Adam;deaktiviert")
    assert not any(pin in body for pin in ("1357", "2468", "9753"))
    anonymous = await aiohttp_client(make_app(sample_hub.db))
    assert (await anonymous.get(PAGE + ".csv", allow_redirects=False)).status == 303


async def test_a_form_field_longer_than_the_office_takes_is_refused_whole_never_cut(aiohttp_client, sample_hub):
    """A field over views.MAX_FIELD refuses the whole form: cut, a list of ids would reach the API as
    other ids (here: a name of 2001 characters is neither stored cut nor stored at all)."""
    client = await signed_in(aiohttp_client, sample_hub, role="office")
    response = await add(client, "N" * 2001, "2468")
    assert response.status == 403
    assert client.hub.db.execute("SELECT count(*) AS n FROM operators WHERE name LIKE 'NNN%'").fetchone()["n"] == 0
    assert (await add(client, "Nora", "2468")).status in (200, 303)
    assert operator(client, "Nora") is not None
