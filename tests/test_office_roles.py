"""Every office screen that changes state refuses the office role where the screen or the API
operation behind it is admin only: the router's POST routes under /office/ are enumerated (a new
one must be put in one of the tables below), each is posted by a logged-in office-role user with
a valid form token and real ids, and an admin-only one must answer 403 with the database unchanged.
Any other that answers 403 must also have changed nothing.

Real hub database (the sample), real HTTP on loopback, real sessions.
"""

from __future__ import annotations

import re

import pytest

from core.base import sql
from hub.services import staff
from tests.office import Clock, csrf_of, signed_in

# The screens (and API operations) only admins may use.
ADMIN_ONLY = {
    "/office/devices/enroll", "/office/devices/{id}/revoke", "/office/devices/rotate",
    "/office/staff/add", "/office/staff/{id}/link", "/office/staff/{id}/deactivate",
    "/office/staff/{id}/reactivate", "/office/staff/{id}/totp-off",
    "/office/tokens", "/office/tokens/{id}/revoke",
}
# Not a staff member's action: the login steps, the setup link, logout.
ANONYMOUS = {"/office/login", "/office/login/code", "/office/setup/{token}", "/office/logout"}
FIELDS = {"confirm": "yes", "reason": "lost", "name": "Tor 9", "role": "admin", "user": "eve", "code": "123456",
          "note": "done", "venue": "", "state": "printed", "kind": "card", "pin": "123456", "active": "0"}


def post_routes(app) -> list[str]:
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if route.method == "POST" and path.startswith("/office/"):
            found.append(path)
    return found


def snapshot(db) -> dict[str, list[tuple]]:
    """Every table's rows (the sessions' last-seen marks aside)."""
    tables = [t for t in sql.table_names(db) if not t.startswith("sqlite_") and t != "staff_sessions"]
    return {t: sorted(tuple(map(str, row.values())) for row in db.execute(f'SELECT * FROM "{t}"')) for t in tables}


def real_ids(db) -> dict[str, str]:
    """An id that exists, per screen, so that an allowed POST would really change something."""
    def first(sql: str) -> str:
        row = db.execute(sql).fetchone()
        return next(iter(row.values())) if row else "unknown"
    return {"staff": first("SELECT id FROM staff WHERE user_name = 'victim'"),
            "devices": first("SELECT node_id FROM node_certs ORDER BY issued_at DESC"),
            "tokens": first("SELECT id FROM api_tokens"), "cards": first("SELECT id FROM cards"),
            "operators": first("SELECT id FROM operators"), "orders": first("SELECT id FROM orders"),
            "conflicts": "unknown"}


@pytest.fixture
async def clerk(aiohttp_client, sample_hub):
    clock = Clock()
    client = await signed_in(aiohttp_client, sample_hub, role="office", clock=clock)
    staff.add(sample_hub.db, "victim", "office", clock())
    return client


async def test_every_admin_only_office_post_refuses_the_office_role_and_changes_nothing(clerk):
    routes = post_routes(clerk.app)
    unknown = [p for p in routes if p not in ADMIN_ONLY | ANONYMOUS and not p.startswith(
        ("/office/orders", "/office/conflicts", "/office/cards", "/office/print", "/office/operators",
         "/office/account", "/office/subscriptions",
         "/office/ring-pools", "/office/voucher-redemptions", "/office/invoices", "/office/sepa", "/office/bank",
         "/office/refunds",
         "/office/customers"))]  # these: by the API's staff roles
    assert unknown == [], "new office POST routes: put them in ADMIN_ONLY or name them as open to staff"
    token = csrf_of(await (await clerk.get("/office/")).text())
    ids = real_ids(clerk.hub.db)
    checked = 0
    for path in routes:
        if path in ANONYMOUS:
            continue
        screen = path.split("/")[2]
        url = re.sub(r"\{(id|item)\}", ids.get(screen, "unknown"), path)
        before = snapshot(clerk.hub.db)
        response = await clerk.post(url, data={"csrf": token, **FIELDS}, allow_redirects=False)
        if path in ADMIN_ONLY:
            assert response.status == 403, (path, response.status)
            checked += 1
        elif path == "/office/account/password":  # the token is good: an open form answers on its merits
            assert response.status == 422, await response.text()
        if response.status == 403:
            assert snapshot(clerk.hub.db) == before, path
    assert checked >= 8  # the devices and staff screens at least (tokens when present)
