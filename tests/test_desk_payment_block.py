"""The desk's cash-or-card block is written once: `templates/payment.html` is the markup and
`static/payment.js` (PaymentBlock) its behaviour, for the annual sale (`/sell`), the subscription
sale (`/subscriptions`) and the choice-voucher redemption (`/vouchers`). Each of those pages loads
payment.js before desk.js (desk.js starts the sell screen as it loads), and no screen script
touches the block's fields itself, so the change, the "not enough" warning and the payment
problem have one place. The block's behaviour in a browser is walked by the screens' Chromium
tests (`test_desk_browser.py`, `test_desk_subscriptions_browser.py`,
`test_desk_vouchers_browser.py`, `test_desk_first_hour.py`)."""

from __future__ import annotations

import re
from pathlib import Path

from edge.desk import web
from tests.test_desk_api import enrolled_edge, login

STATIC = Path(web.__file__).resolve().parent / "static"
SCREENS = ("desk.js", "subscriptions.js", "vouchers.js")
# the block's own elements: only payment.js reads or writes them
BLOCK_IDS = ("pay-cash", "pay-card", "cash-fields", "card-fields", "given", "given-exact", "change",
             "change-warning", "terminal-ref")


async def test_every_sale_screen_loads_the_block_script_before_desk_js(hub, tmp_path, aiohttp_client):
    edge = await enrolled_edge(hub, tmp_path)
    try:
        desk = await aiohttp_client(edge.app())
        desk.edge = edge
        await login(desk)
        for path in ("/sell", "/subscriptions", "/vouchers"):
            html = await (await desk.get(path)).text()
            assert html.count('src="/static/payment.js"') == 1, path
            assert html.index("/static/payment.js") < html.index("/static/desk.js"), path
        script = await desk.get("/static/payment.js")
        assert script.status == 200 and "window.PaymentBlock" in await script.text()
        cards = await (await desk.get("/cards")).text()
        assert "/static/payment.js" not in cards  # only where the block is
    finally:
        await edge.close()


def test_no_screen_script_touches_the_payment_fields_itself():
    for name in SCREENS:
        script = (STATIC / name).read_text()
        assert "PaymentBlock(" in script, name
        touched = {i for i in BLOCK_IDS if re.search(rf'\$\("{i}"\)', script)}
        assert touched == set(), (name, touched)
    block = (STATIC / "payment.js").read_text()
    assert all(re.search(rf'\$\("{i}"\)', block) for i in BLOCK_IDS)
