"""The desk's choice-voucher screen (`/vouchers`, issue 15) as pages: a cash desk shows it in its
navigation, in German and English with the shared payment block and the screen's script; a
counter (no seats, no redemption) neither lists nor opens it; without a login it is the login.
Real enrolled nodes (SQLite files, the hub on loopback), the desk's own app over HTTP. The walk
through the screen itself is `tests/test_desk_vouchers_browser.py` (Chromium)."""

from __future__ import annotations

from edge.desk.voucher_texts import VOUCHER_TEXT
from tests.test_desk_api import enrolled_edge, login


async def test_a_cash_desk_lists_and_shows_the_screen_in_both_languages(hub, tmp_path, aiohttp_client):
    edge = await enrolled_edge(hub, tmp_path)
    try:
        desk = await aiohttp_client(edge.app())
        desk.edge = edge
        first = await desk.get("/vouchers", allow_redirects=False)
        assert first.status == 303 and first.headers["Location"] == "/"  # the login first
        await login(desk)
        for lang, words in (("de", ("Wahlgutscheine", "Hinzufügen", "Rest zu zahlen", "Passend")),
                            ("en", ("Choice vouchers", "Add", "Rest to pay", "Exact"))):
            html = await (await desk.get("/vouchers", params={"lang": lang})).text()
            assert all(w in html for w in words), lang
            assert 'id="nav-vouchers"' in html and 'id="pay-cash"' in html and "/static/vouchers.js" in html
        sell = await (await desk.get("/sell")).text()
        assert 'id="nav-vouchers"' in sell
        script = await desk.get("/static/vouchers.js")
        assert script.status == 200 and "voucher-redemptions/quote" in await script.text()
    finally:
        await edge.close()


async def test_a_counter_neither_lists_nor_opens_the_screen(hub, tmp_path, aiohttp_client):
    edge = await enrolled_edge(hub, tmp_path, role="counter", name="Schalter 1")
    try:
        counter = await aiohttp_client(edge.app())
        counter.edge = edge
        await login(counter)
        page = await (await counter.get("/counter")).text()
        assert 'id="nav-vouchers"' not in page and 'id="nav-counter"' in page
        opened = await counter.get("/vouchers", allow_redirects=False)
        assert opened.status == 303 and opened.headers["Location"] == "/counter"
    finally:
        await edge.close()


def test_every_word_of_the_screen_is_in_both_languages():
    assert set(VOUCHER_TEXT["de"]) == set(VOUCHER_TEXT["en"])
    assert all(VOUCHER_TEXT["de"][k] and VOUCHER_TEXT["en"][k] for k in VOUCHER_TEXT["de"])
