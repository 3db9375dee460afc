"""What every office-app test needs: a movable clock, staff with a password, a logged-in
client, the page's form token, and a served hub with Chromium logged in.

Not a test module (no `test_` prefix): the office tests import from here, so a login is
written once. Real parts throughout: the hub's own app on loopback, real Argon2id, and for
browser tests a `tessera hub serve` process and Debian's Chromium.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import datetime as dt
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from core.base.clock import utcnow
from core.base.storage import connect
from hub.app import DB_NAME, make_app
from hub.services import staff
from hub.web import office
from hub.web.office import views

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "office"


class Clock:
    """The office app's "now", moved by hand."""

    def __init__(self, now: dt.datetime | None = None) -> None:
        self.now = now or dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def move(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def form_token(client, path: str) -> str:
    """The form token of the page at *path* (the session's once logged in)."""
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return csrf_of(await response.text())


def new_staff(client, user: str = "admin", role: str = "admin") -> str:
    return staff.add(client.hub.db, user, role, client.clock())[1]


async def set_password(client, link: str, password: str = PASSWORD, repeat: str | None = None):
    token = await form_token(client, f"/office/setup/{link}")
    return await client.post(f"/office/setup/{link}", allow_redirects=False,
                             data={"csrf": token, "password": password, "password2": repeat or password})


async def log_in(client, user: str = "admin", password: str = PASSWORD, **headers: str):
    token = await form_token(client, "/office/login")
    return await client.post("/office/login", data={"csrf": token, "user": user, "password": password},
                             allow_redirects=False, headers=headers)


async def ready(client, user: str = "admin", role: str = "admin") -> None:
    """Staff *user* of *role* exists with PASSWORD."""
    assert (await set_password(client, new_staff(client, user, role))).status == 303


def staff_session(user: str, role: str) -> Callable[[Any], str]:
    """A `prepare` for tests.conftest.prepared_sample_hub: staff *user* of *role* with PASSWORD,
    logged in (by the services the office views call); returns the session's cookie secret, for
    `signed_in(..., session=)`. The Argon2id hashes of a setup and a login (~0.3-0.5 s) are then
    paid once per test process, not per test; tests/test_office_login.py walks both over HTTP."""
    def prepare(hub) -> str:
        now = utcnow()
        staff.set_password(hub.db, staff.add(hub.db, user, role, now)[1], PASSWORD, now)
        return staff.login(hub.db, user, PASSWORD, now)[0]
    return prepare


async def signed_in(aiohttp_client, hub, role: str = "admin", user: str | None = None,
                    clock: Callable[[], dt.datetime] | None = None, served: bool = False,
                    session: str | None = None):
    """A browser-like client of *hub* with staff *user* (default: the role's name) logged in.

    `served=True` uses the hub's running server (`hub.server`, as the sync tests serve it);
    otherwise a fresh app on *hub.db* with the office clock *clock* (default: a `Clock` at the
    real time, so that codes and mails dated by the real clock agree). The client carries
    `hub`, `clock` and `url` (its address). With *session* (the cookie secret of a login on a
    prepared copy of the hub, `staff_session`) the account is not made and the login form not
    posted: the client carries the cookie, and the start page greets *user* (which marks the
    session seen at the client's clock, as a login at that time would have)."""
    if served:
        client = await aiohttp_client(hub.server)
        client.clock = utcnow
    else:
        app = make_app(hub.db)
        app[office.CLOCK] = clock or Clock(utcnow())
        client = await aiohttp_client(app)
        client.clock = app[office.CLOCK]
    client.hub = hub
    client.url = str(client.make_url("")).rstrip("/")
    name = user or role
    if session:
        cookie = SimpleCookie()
        cookie[views.COOKIE] = session
        cookie[views.COOKIE]["path"] = "/office"
        client.session.cookie_jar.update_cookies(cookie, client.make_url("/office/"))
        response = await client.get("/office/", allow_redirects=False)
        assert response.status == 200, response.status
        assert name in re.search(r'id="me"[^>]*>([^<]*)<', await response.text()).group(1)
        return client
    await ready(client, name, role)
    assert (await log_in(client, name)).status == 303
    return client


async def post_form(client, page: str, action: str, fields: dict[str, str] | None = None, **headers: str):
    """POST *fields* to *action* with the form token of *page* (as the browser would)."""
    token = await form_token(client, page)
    return await client.post(action, data={"csrf": token, **(fields or {})}, allow_redirects=False,
                             headers=headers)


# --- in Chromium ---------------------------------------------------------------------------------------------


@dataclass
class Served:
    """A `tessera hub serve` process with a logged-in Chromium page."""

    hub: Any  # tests.test_sync_kill.Process
    page: Any  # playwright Page
    token: str  # the admin API token `hub init` printed
    hub_dir: Path
    ids: dict  # the sample's ids (empty without sample data)


_HUBS: dict[bool, tuple[Path, str, dict]] = {}  # with the sample? -> (hub folder, admin token, ids)


def hub_template(sample: bool) -> tuple[Path, str, dict]:
    """`hub init` (+ the sample museum and theatre), the first admin's password set: made once per
    test process and copied by each browser test (the init process and the sample cost seconds,
    a copy milliseconds). Returns the folder, the admin API token `hub init` printed, the ids."""
    if sample not in _HUBS:
        from tests.test_sync_kill import run

        folder = Path(tempfile.mkdtemp(prefix="tessera-office-"))
        atexit.register(shutil.rmtree, folder, True)
        hub_dir = folder / "hub"
        printed = run("hub", "init", "--data", str(hub_dir))
        link = re.search(r"/office/setup/([\w-]+) on the hub", printed).group(1)
        db = connect(hub_dir / DB_NAME)
        ids: dict = {}
        if sample:
            from hub import sample as sample_data
            from hub.client import LocalClient
            ids = sample_data.build(LocalClient(make_app(db)))
        staff.set_password(db, link, PASSWORD, utcnow())
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        _HUBS[sample] = (hub_dir, printed.split()[-1], ids)
    return _HUBS[sample]


@contextlib.contextmanager
def office_in_chromium(tmp_path: Path, sample: bool = True, lang: str = "de",
                       prepare: Callable[[Any], None] | None = None,
                       prepare_sample: Callable[[Any, Path, dict], None] | None = None) -> Iterator[Served]:
    """`hub init` (+ the sample museum and theatre), the first admin's password set (a copy of
    `hub_template`), `hub serve` as a process, and the process's shared Chromium (tests/browsers.py)
    with a new context at 1366x768 logged in as `admin` on the start page.
    *prepare(db)* may add data before the hub starts; *prepare_sample(db, hub_dir, ids)* too, knowing
    the sample's ids (e.g. a next season and sold subscriptions for the rollover)."""
    from tests.browsers import chromium
    from tests.test_desk_browser import HUB_READY
    from tests.test_sync_kill import Process

    template, token, template_ids = hub_template(sample)
    hub_dir = tmp_path / "hub"
    shutil.copytree(template, hub_dir, dirs_exist_ok=True)  # a test may have made the folder (empty)
    ids = copy.deepcopy(template_ids)
    db = connect(hub_dir / DB_NAME)
    if prepare:
        prepare(db)
    if prepare_sample:
        prepare_sample(db, hub_dir, ids)
    db.close()
    hub = Process(tmp_path / "log.txt", "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise",
                  ready=HUB_READY)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with chromium() as browser:
            locale = "de-DE" if lang == "de" else "en-GB"
            page = browser.new_context(viewport={"width": 1366, "height": 768}, locale=locale).new_page()
            page.set_default_timeout(10_000)
            page.goto(hub.url + "/office/login")
            page.fill("#user", "admin")
            page.fill("#password", PASSWORD)
            page.click("#submit")
            page.wait_for_selector("#me")
            yield Served(hub, page, token, hub_dir, ids)
    finally:
        hub.stop()
