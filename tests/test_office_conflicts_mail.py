"""The office app's work screens: conflicts (listed, shown escaped, resolved through the form,
refused without the form token or from another site) and the mail outbox; only for staff.

Real sample hub served on loopback; the conflict comes from a real refused push of an enrolled
node (signed sync over HTTP), the mail from the real mail queue. The Playwright run at the end
serves the hub as a process and takes the screenshots in German and English.
"""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest

from core.base.clock import iso, utcnow
from core.base.storage import transaction
from hub.app import make_app
from hub.services import mail
from tests import test_mail
from tests.helpers import call
from tests.office import csrf_of, log_in, ready, signed_in
from tests.test_office_lists import listed
from tests.test_sync import enrolled
from tests.test_trust_no_device import inject

smtp = test_mail.smtp  # a local SMTP server (fixture)
UNKNOWN = "01900000-0000-7000-8000-000000000000"
HOSTILE = "<script>alert('x')</script>"


async def office_on(aiohttp_client, hub):
    """A browser-like client of the served hub, staff `admin` logged in."""
    client = await aiohttp_client(hub.server)
    client.hub, client.clock = hub, utcnow
    await ready(client)
    assert (await log_in(client)).status == 303
    return client


async def refused_push(hub, api, tmp_path) -> dict:
    """A cash desk pushes an op the hub cannot take (a sale with a hostile, shapeless body):
    the hub keeps it as a conflict. Returns the conflict as the API lists it."""
    _, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        inject(db, "sale.completed", {"note": HOSTILE, "lines": "none"})
        await client.push()
    finally:
        await client.close()
    found = await call(api, "GET", "/conflicts", status=200)
    assert len(found) == 1
    return found[0]


@pytest.fixture
async def api(aiohttp_client, hub):
    """The API client of the served hub (bearer token), used to check what the API says."""
    client = await aiohttp_client(hub.server)
    client.hub = hub
    return client


async def test_every_work_page_needs_a_login(aiohttp_client, sample_hub):
    client = await aiohttp_client(make_app(sample_hub.db))
    for path in ("/office/conflicts", "/office/conflicts.csv", f"/office/conflicts/{UNKNOWN}",
                 "/office/mail", "/office/mail.csv", f"/office/mail/{UNKNOWN}"):
        response = await client.get(path, allow_redirects=False)
        assert (response.status, response.headers.get("Location")) == (303, "/office/login"), path
    refused = await client.post(f"/office/conflicts/{UNKNOWN}/resolve", data={"note": "x"}, allow_redirects=False)
    assert (refused.status, refused.headers.get("Location")) == (303, "/office/login")


async def test_a_refused_push_is_listed_shown_escaped_and_resolved_through_the_form(aiohttp_client, hub, api,
                                                                                     tmp_path):
    conflict = await refused_push(hub, api, tmp_path)
    office = await office_on(aiohttp_client, hub)
    rows = await listed(office, "/office/conflicts")
    name = hub.db.execute("SELECT name FROM node_certs WHERE node_id = ?", (conflict["node_id"],)).fetchone()["name"]
    assert len(rows) == 1 and rows[0][1:3] == [name, "sale.completed"]  # the node's name, not its id
    assert rows[0][3] == conflict["reason"] and rows[0][4] == "offen"
    page = await office.get(f"/office/conflicts/{conflict['id']}")
    text = await page.text()
    assert page.status == 200 and "<script>" not in text
    body = re.search(r'<pre id="body"[^>]*>(.*?)</pre>', text, re.S).group(1)
    assert "&lt;script&gt;" in body and HOSTILE in html.unescape(body)
    resolved = await office.post(f"/office/conflicts/{conflict['id']}/resolve", allow_redirects=False,
                                 data={"csrf": csrf_of(text), "note": "Erstattet, Beleg 17"})
    assert (resolved.status, resolved.headers["Location"]) == (303, f"/office/conflicts/{conflict['id']}")
    assert await listed(office, "/office/conflicts") == []
    assert [r[4] for r in await listed(office, "/office/conflicts", state="resolved")] == ["gelöst"]
    assert await call(api, "GET", "/conflicts", status=200) == []
    [done] = await call(api, "GET", "/conflicts?all=1", status=200)
    assert done["id"] == conflict["id"] and done["resolution"] == "Erstattet, Beleg 17" and done["resolved_at"]
    again = await office.post(f"/office/conflicts/{conflict['id']}/resolve",
                              data={"csrf": csrf_of(text), "note": "nochmal"})
    assert again.status == 409
    csv = await (await office.get("/office/conflicts.csv?state=all&lang=en")).text()
    assert "sale.completed" in csv and f",{name}," in csv


async def test_a_resolve_without_the_form_token_or_from_another_site_changes_nothing(aiohttp_client, hub, api,
                                                                                      tmp_path):
    conflict = await refused_push(hub, api, tmp_path)
    office = await office_on(aiohttp_client, hub)
    token = csrf_of(await (await office.get(f"/office/conflicts/{conflict['id']}")).text())
    path = f"/office/conflicts/{conflict['id']}/resolve"
    for data, headers in (({"note": "ohne Token"}, {}), ({"csrf": "x" * 43, "note": "falsch"}, {}),
                          ({"csrf": token, "note": "fremd"}, {"Origin": "https://evil.example"}),
                          ({"csrf": token, "note": "fremd"}, {"Sec-Fetch-Site": "cross-site"})):
        refused = await office.post(path, data=data, headers=headers, allow_redirects=False)
        assert refused.status == 403, (data, headers)
    empty = await office.post(path, data={"csrf": token, "note": "   "}, allow_redirects=False)
    assert empty.status == 400
    assert [c["id"] for c in await call(api, "GET", "/conflicts", status=200)] == [conflict["id"]]
    assert len(await listed(office, "/office/conflicts")) == 1


async def test_the_mail_outbox_lists_a_queued_mail_and_shows_its_text_escaped(aiohttp_client, hub):
    office = await office_on(aiohttp_client, hub)
    # due in an hour: the served apps' mail workers (the office's starts now) must not try it meanwhile
    mail_id = mail.enqueue(hub.db, to="greta@example.org", subject="Ihre Jahreskarte <b>2027</b>",
                           text="Hallo Greta,\n<script>x()</script>\nIhre Karte: https://t.example/p/abc",
                           now=utcnow() + dt.timedelta(hours=1))
    rows = await listed(office, "/office/mail")
    assert [r[1:] for r in rows if r[1] == "greta@example.org"] == [
        ["greta@example.org", "Ihre Jahreskarte <b>2027</b>", "wartet", "0"]]
    assert "greta@example.org" not in [r[1] for r in await listed(office, "/office/mail", state="sent")]
    page = await office.get(f"/office/mail/{mail_id}?lang=en")
    text = await page.text()
    assert page.status == 200 and "<script>x()" not in text and "<b>2027" not in text
    shown = html.unescape(re.search(r'<pre id="text"[^>]*>(.*?)</pre>', text, re.S).group(1))
    assert shown == "Hallo Greta,\n<script>x()</script>\nIhre Karte: https://t.example/p/abc"
    assert ">waiting<" in text
    assert (await office.get(f"/office/mail/{UNKNOWN}")).status == 404
    csv = await (await office.get("/office/mail.csv?q=greta&lang=de")).text()
    assert "greta@example.org" in csv and "wartet" in csv


async def test_the_navigation_bar_leads_to_conflicts_and_mail(aiohttp_client, hub):
    office = await office_on(aiohttp_client, hub)
    page = await (await office.get("/office/mail?lang=en")).text()
    nav = re.search(r'<nav class="main" id="nav">(.*?)</nav>', page, re.S).group(1)
    assert {"/office/conflicts", "/office/mail"} <= set(re.findall(r'href="([^"]+)"', nav))
    assert 'href="/office/mail" aria-current="page">Mail' in nav


async def test_a_sent_mail_shows_as_sent_with_its_personal_link_redacted(aiohttp_client, hub, smtp):
    link = "https://tickets.example.org/p/" + "Tok3n_abcdefghijklmnopqrst"
    # the served hub's own mail worker (no SMTP server configured) would race this test's send
    # for the mail: on PostgreSQL its round runs in a thread and may claim the mail first
    await hub.server.app[mail.WORKER].stop()
    mail_id = mail.enqueue(hub.db, to="ute@example.org", subject="Ihre Karte", text=f"Hier: {link}\n",
                           now=utcnow())
    assert await mail.send_due(hub.db, test_mail.settings_for(smtp.port), utcnow()) == (1, 0)
    assert link in smtp.inbox.parsed().get_body(("plain",)).get_content()  # the customer's mail keeps it
    office = await office_on(aiohttp_client, hub)
    assert [r[3:] for r in await listed(office, "/office/mail", state="sent") if r[1] == "ute@example.org"] == [
        ["gesendet", "1"]]
    text = await (await office.get(f"/office/mail/{mail_id}")).text()
    shown = html.unescape(re.search(r'<pre id="text"[^>]*>(.*?)</pre>', text, re.S).group(1))
    assert shown == f"Hier: https://tickets.example.org/p/{mail.REDACTED}\n" and "Tok3n" not in text


# --- in a browser ---------------------------------------------------------------------------------------------


async def _push_a_refused_op(folder, code: str, url: str) -> None:
    """Enroll a cash desk at the served hub and push an op it refuses (a conflict)."""
    from core.base.node import NODE_DB
    from core.base.storage import connect
    from edge.sync import enroll as enrolling
    from edge.sync.client import SyncClient

    await enrolling.enroll(folder, code, [url])
    db = connect(folder / NODE_DB, edge=True)
    client = SyncClient(db, folder)
    try:
        await client.round()
        inject(db, "sale.completed", {"note": HOSTILE, "lines": "none", "total_cents": 4200})
        await client.push()
    finally:
        await client.close()
        db.close()


@pytest.mark.slow
def test_conflicts_and_mail_in_chromium_de_and_en(tmp_path):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from playwright.sync_api import expect

    from hub.sync import enrollment
    from tests.office import SHOTS, office_in_chromium

    made: dict[str, str] = {}

    def prepare(db) -> None:
        """A desk's enrollment code and a queued mail, before the hub starts."""
        made["code"] = enrollment.create_code(db, name="Kasse 1", role="cashdesk", venue_ids=[], now=utcnow())
        mail.enqueue(db, to="greta.mueller@example.org", subject="Ihre Jahreskarte 2027",
                     text="Hallo Frau Müller,\n\nIhre Jahreskarte ist bereit: https://tickets.example.org/p/abc\n"
                          "<b>Viel Freude!</b>", now=utcnow())

    with office_in_chromium(tmp_path, prepare=prepare) as served:
        page = served.page
        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
            pool.submit(asyncio.run, _push_a_refused_op(tmp_path / "desk", made["code"], served.hub.url)).result()
        page.click("#nav >> text=Konflikte")
        expect(page.locator("#rows tbody tr")).to_have_count(1)
        page.screenshot(path=SHOTS / "conflicts-1-list-de.png")
        page.locator("#rows tbody tr a").first.click()
        expect(page.locator("#body")).to_contain_text(HOSTILE)  # shown as text, not run
        page.screenshot(path=SHOTS / "conflicts-2-detail-de.png")
        page.fill("#note", "Verkauf an der Kasse storniert, Geld zurück")
        page.click("#resolve button")
        expect(page.locator("#state")).to_contain_text("gelöst")
        page.screenshot(path=SHOTS / "conflicts-3-resolved-de.png")
        page.click("#lang")
        expect(page.locator("#state")).to_contain_text("resolved")
        page.screenshot(path=SHOTS / "conflicts-4-resolved-en.png")
        page.click("#nav >> text=Conflicts")
        page.select_option("#state", "all")
        page.click("#apply")
        expect(page.locator("#rows tbody tr")).to_have_count(1)
        page.screenshot(path=SHOTS / "conflicts-5-all-en.png")
        page.click("#nav >> text=Mail")
        expect(page.locator("#rows")).to_contain_text("greta.mueller@example.org")
        page.screenshot(path=SHOTS / "mail-1-list-en.png")
        page.locator("#rows tbody tr a").first.click()  # the first cell (the time) links to the mail
        expect(page.locator("#text")).to_contain_text("<b>Viel Freude!</b>")
        page.screenshot(path=SHOTS / "mail-2-detail-en.png")
        page.click("#lang")
        expect(page.locator("#title")).to_have_text("Ihre Jahreskarte 2027")
        page.screenshot(path=SHOTS / "mail-3-detail-de.png")
        page.click("#nav >> text=E-Mails")
        page.screenshot(path=SHOTS / "mail-4-list-de.png")


async def test_with_a_test_inbox_a_sent_mail_points_there_for_its_links(aiohttp_client, sample_hub):
    """The demo sets `[mail] inbox_url`: the outbox cannot show a sent mail's link, so it names
    the inbox where the mail can be read with it (nothing for a mail still waiting)."""
    (sample_hub.dir / "hub.toml").write_text('[mail]\nhost = "127.0.0.1"\ninbox_url = "http://127.0.0.1:8084/"\n')
    office = await signed_in(aiohttp_client, sample_hub)
    waiting = mail.enqueue(sample_hub.db, to="ute@example.org", subject="Karte", text="x", now=utcnow())
    assert 'id="inbox"' not in await (await office.get(f"/office/mail/{waiting}")).text()
    with transaction(sample_hub.db):
        sample_hub.db.execute("UPDATE mail_queue SET sent_at = ? WHERE id = ?", (iso(utcnow()), waiting))
    page = await (await office.get(f"/office/mail/{waiting}", params={"lang": "en"})).text()
    assert '<a href="http://127.0.0.1:8084/" id="inbox-link">' in page and "test inbox" in page
