"""The customer's photo (issue 11): decoded only after the token, the origin and every field
passed, in a worker thread, with a pixel limit read from the header. Real hub app over HTTP
on loopback, real Pillow; decodes are counted by the service's own counter
(`personalization.DECODES`), not by a mock."""

from __future__ import annotations

import io
import threading

from PIL import Image

from hub.services import personalization
from tests.test_personalize import cards_issued, form, page, shop_order  # noqa: F401 (fixture)
from tests.test_shop import png_bytes


def bomb(width: int, height: int) -> bytes:
    """A small PNG file whose header promises width x height pixels."""
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, "PNG", optimize=True)
    return out.getvalue()


def photos_stored(hub) -> int:
    return hub.db.execute("SELECT count(*) AS n FROM card_photos").fetchone()["n"]


def link_open(hub) -> bool:
    return hub.db.execute("SELECT count(*) AS n FROM personalization_links WHERE used_at IS NULL").fetchone()["n"] == 1


async def test_a_decompression_bomb_is_refused_from_its_header_and_nothing_is_stored(page):  # noqa: F811
    """7000 x 7000 = 49 megapixels in a file of a few kilobytes: under the old limit of 50 MP
    it was decoded in full (on the event loop); now MAX_PIXELS (40 MP) refuses it."""
    for photo in (bomb(7000, 7000), bomb(20_000, 20_000)):
        assert len(photo) < 200_000
        token = shop_order(page.hub)[0]
        response = await page.post(f"/p/{token}?lang=en", data=form("Jonas Weber", photo=photo))
        html = await response.text()
        assert response.status == 422, html
        assert "too many pixels" in html and 'value="Jonas Weber"' in html
    assert cards_issued(page.hub) == 0 and photos_stored(page.hub) == 0
    assert page.hub.db.execute("SELECT count(*) AS n FROM personalization_links WHERE used_at IS NOT NULL"
                               ).fetchone()["n"] == 0


async def test_a_form_refused_for_anything_else_never_decodes_its_photo(page):  # noqa: F811
    """Fails on the code before: a form with a wrong name still had its photo decoded (a
    decode for every bad form, on the event loop)."""
    photo = png_bytes((1200, 1600))
    token = shop_order(page.hub)[0]
    before = personalization.DECODES.count
    refused = [
        await page.post(f"/p/{token}?lang=en", data=form("", photo=photo)),  # no name
        await page.post(f"/p/{token}?lang=en", data=form("Jonas", photo=photo, birth_date="1.2.1980")),
        await page.post(f"/p/{token}?lang=en", data=form("Jonas", photo=photo),
                        headers={"Origin": "http://evil.example"}),  # another site
        await page.post("/p/" + "x" * 43, data=form("Jonas", photo=photo)),  # unknown link
    ]
    assert [r.status for r in refused] == [422, 422, 403, 404]
    assert personalization.DECODES.count == before
    assert cards_issued(page.hub) == 0 and photos_stored(page.hub) == 0 and link_open(page.hub)


async def test_a_good_photo_is_decoded_once_off_the_event_loop(page):  # noqa: F811
    token = shop_order(page.hub)[0]
    before = personalization.DECODES.count
    personalization.DECODES.threads.clear()
    response = await page.post(f"/p/{token}?lang=en", data=form("Jonas Weber", photo=png_bytes()))
    assert response.status == 201, await response.text()
    assert personalization.DECODES.count == before + 1
    assert personalization.DECODES.threads and threading.get_ident() not in personalization.DECODES.threads
    assert photos_stored(page.hub) == 1
