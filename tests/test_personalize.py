"""The customer's personalization page /p/<token> (A3) over real HTTP: languages, the form
and its checks, photos opened with Pillow, used/expired/unknown links, the rate limit."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from aiohttp import FormData
from PIL import Image

from core.base.clock import LOCAL_TZ, iso, utcnow
from core.base.node import this_node
from core.base.storage import transaction
from core.cards import cards
from core.sales import orders
from hub.app import make_app
from hub.services import personalization
from hub.web import personalize
from hub.web.personalize import PhotoRefused, RateLimiter, prepare_photo
from tests.conftest import Hub
from tests.test_shop import png_bytes

VERBUND, STADTMUSEUM, CALENDAR = 0, 1, 3  # from purchase, from first entry, fixed (sample products)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def page(aiohttp_client, sample_hub: Hub):
    """The hub app with a hand-moved clock for the rate limit."""
    app = make_app(sample_hub.db)
    clock = Clock()
    app[personalize.LIMITER].clock = clock
    client = await aiohttp_client(app)
    client.hub, client.clock = sample_hub, clock
    return client


def shop_order(hub: Hub, product: int = VERBUND, quantity: int = 1) -> list[str]:
    """A paid shop order placed through core, with its links; returns the tokens."""
    db = hub.db
    customer = db.execute("SELECT id FROM customers WHERE email IS NOT NULL LIMIT 1").fetchone()["id"]
    order_in = orders.OrderIn(lines=[orders.LineIn(product_id=hub.ids["annual_products"][product],
                                                   quantity=quantity)],
                              customer_id=customer, delivery="pickup", payment_method="online",
                              payment_reference="PSP-1")
    with transaction(db):
        order = orders.place_order(db, this_node(db), None, order_in, channel="shop", now=utcnow())
        tokens = personalization.create_links(db, [i["id"] for i in order["items"]], utcnow())
    return [tokens[i["id"]] for i in order["items"]]


def form(name: str = "Jonas Weber", *, photo: bytes | None = None, filename: str = "me.png",
         content_type: str = "image/png", **fields: str) -> FormData:
    data = FormData()
    data.add_field("name", name)
    for key, value in fields.items():
        data.add_field(key, value)
    if photo is not None:
        data.add_field("photo", photo, filename=filename, content_type=content_type)
    return data


def cards_issued(hub: Hub) -> int:
    return hub.db.execute("SELECT count(*) AS n FROM cards WHERE order_item_id IS NOT NULL").fetchone()["n"]


# --- language and layout -------------------------------------------------------------------------------


async def test_the_page_speaks_german_or_english_and_works_on_a_phone(page):
    token = shop_order(page.hub)[0]
    german = await page.get(f"/p/{token}", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.8"})
    html = await german.text()
    assert german.status == 200 and german.content_type == "text/html"
    assert '<html lang="de">' in html and "Jahreskarte personalisieren" in html and "Karte ausstellen" in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert f'href="/p/{token}?lang=en"' in html  # the switch
    assert not re.search(r"(src|href)=\"https?://", html)  # nothing from other hosts
    assert german.headers["Cache-Control"] == "no-store" and german.headers["Referrer-Policy"] == "no-referrer"

    english = await page.get(f"/p/{token}", headers={"Accept-Language": "en-GB,en;q=0.9,de;q=0.5"})
    text = await english.text()
    assert '<html lang="en">' in text and "Personalize your annual ticket" in text and "Issue card" in text
    assert f'href="/p/{token}?lang=de"' in text
    switched = await (await page.get(f"/p/{token}?lang=en", headers={"Accept-Language": "de"})).text()
    assert "Issue card" in switched and 'action="?lang=en"' in switched
    assert "Karte ausstellen" in await (await page.get(f"/p/{token}")).text()  # default German


@pytest.mark.parametrize(("product", "offered"), [(VERBUND, True), (STADTMUSEUM, False), (CALENDAR, False)])
async def test_a_start_day_is_offered_only_for_cards_valid_from_purchase(page, product, offered):
    html = await (await page.get(f"/p/{shop_order(page.hub, product)[0]}")).text()
    assert ('name="valid_from"' in html) is offered


async def test_a_chosen_start_day_starts_the_card(page):
    token = shop_order(page.hub, VERBUND)[0]
    start = utcnow().astimezone(LOCAL_TZ).date() + dt.timedelta(days=10)
    done = await page.post(f"/p/{token}?lang=en", data=form(valid_from=start.isoformat()))
    assert done.status == 201, await done.text()
    card = page.hub.db.execute("SELECT * FROM cards WHERE order_item_id IS NOT NULL").fetchone()
    assert dt.datetime.fromisoformat(card["valid_from"]).astimezone(LOCAL_TZ).date() == start
    assert card["has_photo"] == 0 and card["holder_birth_date"] is None


async def test_a_start_day_too_far_ahead_is_a_form_error(page):
    token = shop_order(page.hub, VERBUND)[0]
    far = utcnow().astimezone(LOCAL_TZ).date() + dt.timedelta(days=orders.START_AHEAD_DAYS + 5)
    response = await page.post(f"/p/{token}?lang=en", data=form(valid_from=far.isoformat()))
    html = await response.text()
    assert response.status == 422
    assert f"between today and {orders.START_AHEAD_DAYS} days ahead" in html and far.isoformat() in html
    assert cards_issued(page.hub) == 0
    assert page.hub.db.execute("SELECT used_at FROM personalization_links").fetchone()["used_at"] is None


# --- the form's checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("birth", "message"), [
    ("2999-01-01", "must be in the past"), ("1850-06-01", "more than 120 years"), ("17.05.1980", "YYYY-MM-DD"),
    ("tomorrow", "YYYY-MM-DD"),
])
async def test_a_bad_birth_date_is_shown_with_the_entered_values_and_nothing_is_issued(page, birth, message):
    token = shop_order(page.hub)[0]
    if birth == "tomorrow":
        birth = (utcnow().astimezone(LOCAL_TZ).date() + dt.timedelta(days=1)).isoformat()
        message = "must be in the past"
    response = await page.post(f"/p/{token}?lang=en", data=form("Jonas <b>Weber</b>", birth_date=birth))
    html = await response.text()
    assert response.status == 422
    assert message in html and 'aria-invalid="true"' in html
    assert 'value="Jonas &lt;b&gt;Weber&lt;/b&gt;"' in html and f'value="{birth}"' in html  # kept, escaped
    assert cards_issued(page.hub) == 0


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "Bell\x07Name"])
async def test_a_name_is_required(page, name):
    response = await page.post(f"/p/{shop_order(page.hub)[0]}?lang=de", data=form(name))
    assert response.status == 422
    assert "Bitte geben Sie einen Namen an" in await response.text()
    assert cards_issued(page.hub) == 0


def bomb(side: int) -> bytes:
    """A tiny PNG that would decode to side x side pixels."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(("photo", "filename", "message"), [
    (b"Dear museum, this is not a photo.\n" * 10, "me.png", "must be a JPEG or PNG image"),
    (None, "me.jpg", "must be a JPEG or PNG image"),  # a GIF renamed to .jpg
    ("big", "me.png", "larger than 5 MB"),
    ("bomb", "me.png", "too many pixels"),  # beyond Pillow's own bomb limit
    ("big picture", "me.png", "too many pixels"),  # within Pillow's limit, beyond ours
    ("cut", "me.png", "damaged"),
])
async def test_a_photo_that_is_no_usable_image_is_a_form_error(page, photo, filename, message):
    if photo is None:
        out = io.BytesIO()
        Image.new("RGB", (50, 50)).save(out, "GIF")
        photo = out.getvalue()
    elif photo == "big":
        photo = png_bytes() + b"\0" * (personalize.MAX_PHOTO + 1)
    elif photo == "bomb":
        photo = bomb(10_000)
    elif photo == "big picture":
        photo = bomb(7_500)
    elif photo == "cut":
        photo = png_bytes()[:3000]
    token = shop_order(page.hub)[0]
    response = await page.post(f"/p/{token}?lang=en", data=form("Jonas Weber", photo=photo, filename=filename))
    html = await response.text()
    assert response.status == 422, html
    assert message in html and 'value="Jonas Weber"' in html
    assert cards_issued(page.hub) == 0
    assert page.hub.db.execute("SELECT count(*) AS n FROM card_photos").fetchone()["n"] == 0


async def test_a_body_over_6_mb_is_refused(page):
    token = shop_order(page.hub)[0]
    response = await page.post(f"/p/{token}", data=form(photo=b"\0" * (personalize.MAX_BODY + 1)))
    assert response.status == 413 and "höchstens 6 MB" in await response.text()
    assert cards_issued(page.hub) == 0


def test_photos_are_re_encoded_as_upright_jpeg_of_at_most_600_px():
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # taken rotated: the viewer turns it 90 degrees
    Image.new("RGB", (1600, 1200), "red").save(out, "JPEG", exif=exif)
    with Image.open(io.BytesIO(prepare_photo(out.getvalue()))) as image:
        assert image.format == "JPEG" and image.size == (450, 600) and not image.getexif()
    transparent = io.BytesIO()
    Image.new("RGBA", (300, 200), (0, 0, 0, 0)).save(transparent, "PNG")
    with Image.open(io.BytesIO(prepare_photo(transparent.getvalue()))) as image:
        assert image.mode == "RGB" and image.size == (300, 200) and image.getpixel((5, 5)) == (255, 255, 255)
    with pytest.raises(PhotoRefused):
        prepare_photo(b"%PDF-1.4 not an image")


# --- links that no longer work -------------------------------------------------------------------------


async def test_a_form_posted_from_another_site_issues_nothing(page):
    """Issue 11 (DESIGN §12): the hub's browser-facing pages take a form only from themselves:
    a hostile page that learnt a customer's link cannot personalize the card in their name."""
    token = shop_order(page.hub)[0]
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = await page.post(f"/p/{token}?lang=en", data=form("Mallory"), headers=headers)
        assert response.status == 403 and "did not come from this page" in await response.text()
    assert cards_issued(page.hub) == 0
    own = f"http://{page.server.host}:{page.server.port}"
    done = await page.post(f"/p/{token}?lang=en", data=form("Jonas Weber"),
                           headers={"Origin": own, "Sec-Fetch-Site": "same-origin"})
    assert done.status == 201 and cards_issued(page.hub) == 1


async def test_the_pages_own_form_is_taken_although_the_browser_sends_origin_null(page):
    """Issue 12: under the page's `Referrer-Policy: no-referrer` Chromium sends `Origin: null`
    with the form, which was refused as foreign: no card could be issued in a real browser.
    A null origin counts only with `Sec-Fetch-Site: same-origin` (a sandboxed frame on a
    hostile page also sends null, but cross-site)."""
    token = shop_order(page.hub)[0]
    for headers in ({"Origin": "null"}, {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
                    {"Origin": "null", "Sec-Fetch-Site": "same-site"}):
        response = await page.post(f"/p/{token}?lang=en", data=form("Mallory"), headers=headers)
        assert response.status == 403, headers
    assert cards_issued(page.hub) == 0
    done = await page.post(f"/p/{token}?lang=en", data=form("Jonas Weber"),
                           headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert done.status == 201 and cards_issued(page.hub) == 1


async def test_a_link_issues_one_card_only(page):
    token = shop_order(page.hub)[0]
    first = await page.post(f"/p/{token}?lang=en", data=form("Jonas <script>alert(1)</script>"))
    html = await first.text()
    assert first.status == 201
    assert "Jonas &lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    number = page.hub.db.execute("SELECT number FROM cards WHERE order_item_id IS NOT NULL").fetchone()["number"]

    again = await page.post(f"/p/{token}?lang=en", data=form("Someone Else"))
    text = await again.text()
    assert again.status == 409 and "already been personalized" in text and number in text
    assert "Someone Else" not in text and "Jonas &lt;script&gt;" in text  # the card as issued, not the new form
    shown = await page.get(f"/p/{token}")
    assert shown.status == 200 and "bereits personalisiert" in await shown.text()
    assert cards_issued(page.hub) == 1


def card_of(hub: Hub) -> dict:
    return hub.db.execute("SELECT * FROM cards WHERE order_item_id IS NOT NULL").fetchone()


@pytest.mark.parametrize("lang", ["de", "en"])
async def test_a_used_link_shows_the_card_again_with_its_qr_code_and_validity(page, lang):
    """Issue 12: reopening the link from the mail showed only "already personalized"."""
    token = shop_order(page.hub, VERBUND)[0]
    assert (await page.post(f"/p/{token}?lang={lang}", data=form("Jonas Weber"))).status == 201
    card = card_of(page.hub)
    reopened = await page.get(f"/p/{token}?lang={lang}")
    html = await reopened.text()
    assert reopened.status == 200 and reopened.headers["Cache-Control"] == "no-store"
    assert card["number"] in html and "Jonas Weber" in html and "<svg" in html
    until = "bis" if lang == "de" else "until"
    today = utcnow().astimezone(LOCAL_TZ).date()  # the venue's day, not the UTC date of local midnight
    last = today.replace(year=today.year + 1) - dt.timedelta(days=1)
    assert f'<dd id="validity">{today:%d.%m.%Y} {until} {last:%d.%m.%Y}</dd>' in html
    assert qr_of(card) in html  # the card's own code


def qr_of(card: dict) -> str:
    """The QR code the page shows for *card* (read back from a screenshot in the browser test)."""
    return personalize.qr_svg(card)


async def test_a_used_link_shows_a_lost_cards_new_issue_and_a_revocation(page):
    token = shop_order(page.hub, VERBUND)[0]
    await page.post(f"/p/{token}?lang=en", data=form("Jonas Weber"))
    first = card_of(page.hub)
    signer = cards.load_signer(page.hub.db, page.hub.dir)
    cards.reissue_card(page.hub.db, signer, first["id"], utcnow())
    second = card_of(page.hub)
    html = await (await page.get(f"/p/{token}?lang=en")).text()
    assert second["code"] != first["code"] and qr_of(second) in html and qr_of(first) not in html
    cards.revoke_card(page.hub.db, signer, first["id"], "stolen", utcnow())
    revoked = await page.get(f"/p/{token}?lang=en")
    text = await revoked.text()
    assert revoked.status == 410 and "revoked" in text and second["number"] in text and "<svg" not in text


async def test_a_card_valid_from_its_first_entry_shows_the_months_until_then(page):
    token = shop_order(page.hub, STADTMUSEUM)[0]
    done = await page.post(f"/p/{token}?lang=en", data=form("Jonas Weber"))
    assert "12 months from the first visit" in await done.text()
    assert "12 months from the first visit" in await (await page.get(f"/p/{token}?lang=en")).text()


async def test_the_header_names_the_organizer_not_tessera(page):
    token = shop_order(page.hub)[0]
    for response in (await page.get(f"/p/{token}"), await page.post(f"/p/{token}", data=form())):
        html = await response.text()
        assert '<span class="organizer" id="organizer">Museumsverbund Nordstadt e.V.</span>' in html
        assert "Tessera" not in html


async def test_an_expired_link_is_gone(page):
    token = shop_order(page.hub)[0]
    page.hub.db.execute("UPDATE personalization_links SET expires_at = ?", (iso(utcnow() - dt.timedelta(seconds=1)),))
    for response in (await page.get(f"/p/{token}?lang=en"), await page.post(f"/p/{token}?lang=en", data=form())):
        assert response.status == 410 and "This link has expired" in await response.text()
    assert cards_issued(page.hub) == 0


@pytest.mark.parametrize("token", ["A" * 43, "short", "..%2F..%2Fetc", "x" * 500])
async def test_an_unknown_link_is_a_404_page(page, token):
    shop_order(page.hub)
    response = await page.get(f"/p/{token}")
    assert response.status == 404 and response.content_type == "text/html"
    assert "Link unbekannt" in await response.text()
    assert (await page.post(f"/p/{token}", data=form())).status == 404


# --- rate limit ----------------------------------------------------------------------------------------


async def test_more_than_30_requests_a_minute_get_429_until_the_window_moves_on(page):
    token = shop_order(page.hub)[0]
    for _ in range(personalize.RATE_LIMIT):
        assert (await page.get("/p/" + "B" * 43)).status == 404
    refused = await page.get(f"/p/{token}?lang=en")
    assert refused.status == 429 and refused.headers["Retry-After"] == "60"
    assert "Too many requests" in await refused.text()
    assert (await page.post(f"/p/{token}", data=form())).status == 429
    assert cards_issued(page.hub) == 0
    page.clock.now += 30
    assert (await page.get(f"/p/{token}")).headers["Retry-After"] == "30"
    page.clock.now += 31
    assert (await page.get(f"/p/{token}")).status == 200


def test_the_rate_limit_counts_per_client_and_forgets_old_hits(empty_hub):
    """The hits live in the database (shared by every hub process on it); those older than the
    window are deleted as new ones come, so the table stays one window long."""
    clock, db = Clock(), empty_hub.db
    limiter = RateLimiter(limit=2, window_s=10, clock=clock)
    assert [limiter.take(db, "a").wait for _ in range(3)] == [None, None, 10]
    assert limiter.take(db, "b").allowed
    clock.now += 11
    for client in ("c", "d", "e"):
        assert limiter.take(db, client).allowed
    kept = db.execute("SELECT client FROM rate_hits WHERE scope = 'personalize' ORDER BY client").fetchall()
    assert [r["client"] for r in kept] == ["c", "d", "e"]
