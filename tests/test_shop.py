"""The shop order API (A2) end to end: real HTTP on loopback, a real SMTP server (aiosmtpd),
the mail worker the hub runs, and the personalization page the mailed link leads to (A3)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import FormData
from hypothesis import event, given, note
from hypothesis import strategies as st
from PIL import Image

from core.base import sql
from core.base.clock import iso, utcnow
from core.cards import cardcode, cards
from hub.app import make_app
from hub.services import mail, tokens
from tests import test_fuzz_api as fuzz
from tests.conftest import Hub
from tests.helpers import async_wait_until, wait_until, write_hub_toml
from tests.test_mail import Smtp, body, free_port

PREFIX = "/api/v1"
ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"https?://[^\s/]+/p/[A-Za-z0-9_-]{43}")
PROBLEM = "urn:tessera:problem:"


@dataclass
class Shop:
    client: object
    hub: Hub
    smtp: Smtp
    token: str  # role shop

    def headers(self, key: str | None = "order-1", token: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def product(self, n: int) -> str:
        """0 Verbund (from purchase), 1 Stadtmuseum (first entry), 2 ermäßigt (not online), 3 2027 (fixed)."""
        return self.hub.ids["annual_products"][n]

    def count(self, table: str) -> int:
        return self.hub.db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]

    async def post(self, order: dict, key: str | None = "order-1", token: str | None = None):
        return await self.client.post(f"{PREFIX}/shop/orders", json=order, headers=self.headers(key, token))

    async def mails(self, n: int = 1, timeout: float = 5.0) -> list:
        """Wait until the SMTP server holds *n* messages; the parsed messages."""
        deadline = time.monotonic() + timeout
        while len(self.smtp.inbox.received) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(self.smtp.inbox.received) == n, "mail did not arrive"
        return [self.smtp.inbox.parsed(i) for i in range(n)]


PUBLIC_URL = "https://shop.museum.example"  # where customers reach the hub (mailed links)


def write_settings(hub: Hub, smtp_port: int, shop: str = "") -> None:
    shop = shop or f'[shop]\npublic_url = "{PUBLIC_URL}"\n'
    write_hub_toml(hub.dir, f'[mail]\nhost = "127.0.0.1"\nport = {smtp_port}\n'
                   f'from = "Museumsverbund <tickets@museum.example>"\ntimeout = 3\n{shop}')


def local(shop, link: str):
    """A mailed link, opened on the test server (the public URL is a name the test has not got)."""
    assert link.startswith(PUBLIC_URL + "/p/"), link
    return shop.client.make_url(link.removeprefix(PUBLIC_URL))


@pytest.fixture
async def shop_factory(aiohttp_client, sample_hub: Hub):
    """Build the shop test bed: SMTP server (started or not), hub.toml, shop token, app."""
    servers: list[Smtp] = []
    clients = []

    async def build(*, smtp_up: bool = True, shop_settings: str = "") -> Shop:
        smtp = Smtp(free_port())
        servers.append(smtp)
        if smtp_up:
            smtp.start()
        write_settings(sample_hub, smtp.port, shop_settings)
        secret, _ = tokens.create_token(sample_hub.db, "Webshop", "shop")
        client = await aiohttp_client(make_app(sample_hub.db))
        clients.append(client)
        return Shop(client, sample_hub, smtp, secret)

    yield build
    for client in clients:  # the hub (and its mail worker) first: no send is cut off mid-way
        await client.close()
    for server in servers:
        server.stop()


@pytest.fixture
async def shop(shop_factory) -> Shop:
    return await shop_factory()


def customer(**changes) -> dict:
    return {"first_name": "Anna", "last_name": "Müller", "email": "anna@example.org", "street": "Am Wall 1",
            "postcode": "28195", "town": "Bremen", **changes}


def order_body(shop: Shop, *, lines: list | None = None, **changes) -> dict:
    return {"customer": customer(), "lines": lines or [{"product_id": shop.product(0), "quantity": 2},
                                                       {"product_id": shop.product(3)}],
            "delivery": "mail", "payment_reference": "PSP-4711", **changes}


def png_bytes(size: tuple[int, int] = (900, 1200), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (200, 120, 40) if mode == "RGB" else 128).save(out, "PNG")
    return out.getvalue()


async def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["type"] == PROBLEM + slug, problem
    return problem


# --- the whole way: order, mail, link, card ------------------------------------------------------------


async def test_order_mails_a_link_per_card_and_each_link_issues_a_signed_card_with_photo(shop: Shop):
    response = await shop.post(order_body(shop))
    assert response.status == 201, await response.text()
    assert "Idempotent-Replayed" not in response.headers
    order = await response.json()
    assert order["channel"] == "shop" and order["payment_method"] == "online"
    assert order["payment_reference"] == "PSP-4711" and order["total_cents"] == 2 * 6500 + 5500
    assert [i["product"] for i in order["items"]] == ["Jahreskarte Verbund"] * 2 + ["Kalenderjahreskarte 2027"]
    assert all(i["personalization"]["state"] == "open" and i["card"] is None for i in order["items"])
    assert "token" not in str(order)

    (msg,) = await shop.mails()
    assert msg["To"] == "anna@example.org"
    assert "personalisieren" in msg["Subject"] and "Personalize" in msg["Subject"]
    text = body(msg, "plain")
    assert "Guten Tag Anna Müller" in text and "Hello Anna Müller" in text and order["number"] in text
    links = list(dict.fromkeys(LINK.findall(text)))
    assert len(links) == 3 and all(link.startswith(PUBLIC_URL + "/p/") for link in links)
    assert text.count("Kalenderjahreskarte 2027") == 2  # German and English part
    stored = shop.hub.db.execute("SELECT token_hash, expires_at FROM personalization_links").fetchall()
    assert len(stored) == 3 and not any(link.rsplit("/", 1)[1] in str(stored) for link in links)

    page = await shop.client.session.get(local(shop, links[0]), headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert page.status == 200
    assert "Jahreskarte Verbund" in await page.text()

    form = FormData()
    form.add_field("name", "Anna Müller")
    form.add_field("birth_date", "1980-05-17")
    form.add_field("photo", png_bytes(), filename="anna.png", content_type="image/png")
    done = await shop.client.session.post(local(shop, links[0]), data=form)
    html = await done.text()
    assert done.status == 201, html
    assert "Anna Müller" in html and "<svg" in html

    item_id = shop.hub.db.execute("SELECT item_id FROM personalization_links WHERE used_at IS NOT NULL"
                                  ).fetchone()["item_id"]
    card = shop.hub.db.execute("SELECT * FROM cards WHERE order_item_id = ?", (item_id,)).fetchone()
    assert card["number"] in html
    assert (card["holder_name"], card["holder_birth_date"], card["has_photo"]) == ("Anna Müller", "1980-05-17", 1)
    assert (card["fulfilment"], card["delivery"], card["kind"]) == ("personalized", "mail", "annual")
    signed = cardcode.decode(card["code"])
    assert signed.payload.card_id == card["id"] and signed.payload.kind == "annual"
    signer = cards.load_signer(shop.hub.db, shop.hub.dir)
    signer.private.public_key().verify(signed.signature, signed.message)  # raises if forged
    jobs = shop.hub.db.execute("SELECT kind FROM print_jobs WHERE ref_id = ? ORDER BY kind", (card["id"],)).fetchall()
    assert [j["kind"] for j in jobs] == ["card", "carrier"]
    photo = shop.hub.db.execute("SELECT * FROM card_photos WHERE card_id = ?", (card["id"],)).fetchone()
    assert photo["media_type"] == "image/jpeg"
    with Image.open(io.BytesIO(photo["data"])) as image:
        assert image.format == "JPEG" and max(image.size) == 600

    view = await (await shop.client.get(f"{PREFIX}/shop/orders/{order['id']}", headers=shop.headers())).json()
    states = {i["id"]: i["personalization"]["state"] for i in view["items"]}
    assert states[item_id] == "used" and sorted(states.values()) == ["open", "open", "used"]
    (issued,) = [i for i in view["items"] if i["card"]]
    assert issued["card"]["number"] == card["number"] and issued["card"]["has_photo"] is True


# --- idempotency ---------------------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_returns_the_first_answer_and_places_one_order(shop: Shop):
    first = await shop.post(order_body(shop), key="basket-77")
    assert first.status == 201
    again = await shop.post(order_body(shop), key="basket-77")
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == await first.json()
    assert shop.count("orders") == 1 and shop.count("order_lines") == 3 and shop.count("customers") > 0
    assert shop.count("mail_queue") == 1 and shop.count("personalization_links") == 3
    stored = shop.hub.db.execute("SELECT * FROM idempotency_keys").fetchone()
    assert stored["key"] == "basket-77" and stored["status"] == 201 and len(stored["request_hash"]) == 64

    # the key belongs to the token: another shop may use the same key for its own order
    other, _ = tokens.create_token(shop.hub.db, "Second shop", "shop")
    assert (await shop.post(order_body(shop), key="basket-77", token=other)).status == 201
    assert shop.count("orders") == 2


async def test_the_same_key_with_another_body_is_refused(shop: Shop):
    assert (await shop.post(order_body(shop), key="k1")).status == 201
    changed = order_body(shop, delivery="pickup")
    problem = await assert_problem(await shop.post(changed, key="k1"), 422, "idempotency-key-reused")
    assert problem["field"] == "Idempotency-Key"
    assert shop.count("orders") == 1


@pytest.mark.parametrize(("key", "slug"), [(None, "idempotency-key-missing"), ("", "invalid-idempotency-key"),
                                           ("has space", "invalid-idempotency-key"),
                                           ("x" * 101, "invalid-idempotency-key")])
async def test_an_order_without_a_usable_key_is_refused_and_writes_nothing(shop: Shop, key, slug):
    before = sql.generation(shop.hub.db)
    await assert_problem(await shop.post(order_body(shop), key=key), 400, slug)
    assert shop.count("orders") == 0 and sql.generation(shop.hub.db) == before


# --- mail ----------------------------------------------------------------------------------------------


async def test_smtp_down_at_order_time_keeps_the_mail_until_the_server_is_back(shop_factory):
    shop = await shop_factory(smtp_up=False)
    assert (await shop.post(order_body(shop))).status == 201
    deadline = time.monotonic() + 5  # the worker tries at once and fails
    while shop.hub.db.execute("SELECT attempts FROM mail_queue").fetchone()["attempts"] == 0:
        assert time.monotonic() < deadline, "the worker never tried"
        await asyncio.sleep(0.02)
    queued = shop.hub.db.execute("SELECT * FROM mail_queue").fetchone()
    assert queued["sent_at"] is None and str(shop.smtp.port) in queued["last_error"]

    shop.smtp.start()
    worker = shop.client.app[mail.WORKER]
    worker.clock = lambda: utcnow() + dt.timedelta(seconds=mail.BACKOFF_FIRST_S + 1)  # the retry is due
    worker.wake()
    (msg,) = await shop.mails()
    assert len(LINK.findall(body(msg, "plain"))) == 6  # 3 cards, German and English
    # the SMTP server has the mail before the worker records it as sent: wait for that commit
    await async_wait_until(lambda: shop.hub.db.execute("SELECT sent_at FROM mail_queue").fetchone()["sent_at"],
                           what="the mail worker recording the mail as sent")


async def test_mailed_links_never_take_the_request_host(shop_factory):
    """Issue 11: the link base was the request's Host when [shop] public_url was unset, so whoever
    sent the request (or a proxy forwarding it) chose where customers' tokens go."""
    shop = await shop_factory(shop_settings="[shop]\nlink_days = 9\n")  # no public_url
    counts = {t: shop.count(t) for t in COUNTED}
    resp = await shop.client.post(SHOP_ORDERS, json=order_body(shop),
                                  headers={**shop.headers(), "Idempotency-Key": "h-1", "Host": "evil.example"})
    assert resp.status == 409 and (await resp.json())["type"].endswith("no-public-url")
    assert {t: shop.count(t) for t in COUNTED} == counts
    configured = await shop_factory()
    resp = await configured.client.post(SHOP_ORDERS, json=order_body(configured),
                                        headers={**configured.headers(), "Idempotency-Key": "h-2",
                                                 "Host": "evil.example"})
    assert resp.status == 201
    (msg,) = await configured.mails()
    assert "evil.example" not in body(msg, "plain")
    assert all(link.startswith(PUBLIC_URL + "/p/") for link in LINK.findall(body(msg, "plain")))


async def test_link_lifetime_and_base_url_come_from_hub_toml(shop_factory):
    shop = await shop_factory(shop_settings='\n[shop]\nlink_days = 7\npublic_url = "https://tickets.example.org/"\n')
    before = utcnow().replace(microsecond=0)  # stored times have whole seconds
    order = await (await shop.post(order_body(shop))).json()
    (msg,) = await shop.mails()
    assert all(link.startswith("https://tickets.example.org/p/") for link in LINK.findall(body(msg, "plain")))
    expires = dt.datetime.fromisoformat(order["items"][0]["personalization"]["expires_at"])
    assert before + dt.timedelta(days=7) <= expires <= utcnow() + dt.timedelta(days=7)


# --- what is refused -----------------------------------------------------------------------------------


async def test_a_product_not_on_sale_online_is_refused_and_leaves_nothing_behind(shop: Shop):
    customers = shop.count("customers")
    body_ = order_body(shop, lines=[{"product_id": shop.product(0)}, {"product_id": shop.product(2)}])
    problem = await assert_problem(await shop.post(body_), 409, "conflict")
    assert problem["field"] == "lines[1].product_id" and "(shop)" in problem["detail"]
    assert shop.count("customers") == customers  # the inline customer was rolled back with the order
    assert shop.count("orders") == shop.count("mail_queue") == shop.count("idempotency_keys") == 0
    assert (await shop.post(order_body(shop))).status == 201  # the key was not used up by the refusal


@pytest.mark.parametrize(("change", "status", "field"), [
    ({"customer": customer(postcode="123")}, 422, "customer.postcode"),
    ({"customer": customer(email="not-an-address")}, 422, "customer.email"),
    ({"customer": customer(email="müller@example.org")}, 422, "customer.email"),
    ({"customer": None}, 422, "customer"),
    ({"customer_id": "0190a0a0-0000-7000-8000-000000000000"}, 422, "customer_id"),
    ({"payment_reference": " "}, 422, "payment_reference"),
    ({"delivery": "counter"}, 422, "delivery"),
    ({"lines": [{"product_id": "0190a0a0-0000-7000-8000-000000000000"}]}, 404, "lines[0].product_id"),
    ({"lines": [{"product_id": "0190a0a0-0000-7000-8000-000000000000", "kind": "voucher"}]}, 422, "lines[0].kind"),
])
async def test_bad_orders_get_a_problem_naming_the_field(shop: Shop, change, status, field):
    body_ = {**order_body(shop), **change}
    if body_.get("customer") is None or "customer_id" in change:
        body_.pop("customer")
    response = await shop.post(body_)
    assert response.status == status, await response.text()
    problem = await response.json()
    assert problem["field"] == field, problem
    assert shop.count("orders") == 0


async def test_an_existing_customer_is_used_and_needs_an_e_mail_address(shop: Shop):
    admin = shop.hub.headers()
    address = {"street": "Am Wall 2", "postcode": "28195", "town": "Bremen"}
    with_mail = await (await shop.client.post(f"{PREFIX}/customers", headers=admin, json={
        "first_name": "Bea", "last_name": "Bauer", "address": address, "email": "bea@example.org"})).json()
    without = await (await shop.client.post(f"{PREFIX}/customers", headers=admin, json={
        "first_name": "Carl", "last_name": "Clausen", "address": address})).json()
    lines = [{"product_id": shop.product(1)}]
    ok = await shop.post({"customer_id": with_mail["id"], "lines": lines, "delivery": "pickup",
                          "payment_reference": "PSP-1"}, key="a")
    assert ok.status == 201 and (await ok.json())["customer_id"] == with_mail["id"]
    (msg,) = await shop.mails()
    assert msg["To"] == "bea@example.org" and "zur Abholung im Museum" in body(msg, "plain")
    problem = await assert_problem(await shop.post({"customer_id": without["id"], "lines": lines,
                                                    "delivery": "pickup", "payment_reference": "PSP-2"}, key="b"),
                                   422, "validation-failed")
    assert problem["field"] == "customer_id" and "e-mail" in problem["detail"]


async def test_roles_and_reading_an_order(shop: Shop):
    order = await (await shop.post(order_body(shop))).json()
    office, _ = tokens.create_token(shop.hub.db, "Office", "office")
    agency, _ = tokens.create_token(shop.hub.db, "Agency", "agency")
    assert (await shop.post(order_body(shop), key="o", token=office)).status == 403
    assert (await shop.post(order_body(shop), key="x", token=agency)).status == 403
    url = f"{PREFIX}/shop/orders/{order['id']}"
    for token in (shop.token, office, shop.hub.token):
        response = await shop.client.get(url, headers=shop.headers(token=token))
        assert response.status == 200 and (await response.json())["number"] == order["number"]
    assert (await shop.client.get(url, headers=shop.headers(token=agency))).status == 403
    other_shop, _ = tokens.create_token(shop.hub.db, "Another shop", "shop")  # sees only its own orders
    await assert_problem(await shop.client.get(url, headers=shop.headers(token=other_shop)), 404, "not-found")
    await assert_problem(await shop.client.get(f"{PREFIX}/shop/orders/nope", headers=shop.headers()), 404,
                         "not-found")


async def test_an_expired_link_shows_as_expired_in_the_order(shop: Shop):
    order = await (await shop.post(order_body(shop))).json()
    shop.hub.db.execute("UPDATE personalization_links SET expires_at = ?", (iso(utcnow() - dt.timedelta(minutes=1)),))
    view = await (await shop.client.get(f"{PREFIX}/shop/orders/{order['id']}", headers=shop.headers())).json()
    assert {i["personalization"]["state"] for i in view["items"]} == {"expired"}


# --- hostile input with a key (the API fuzzer sends none, so it stops at the missing key) --------------

SHOP_ORDERS = PREFIX + "/shop/orders"
COUNTED = ("orders", "order_lines", "customers", "personalization_links", "mail_queue", "idempotency_keys", "cards")
KEYS = st.sampled_from(["k1", "k2", "k3"]) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                                                    blacklist_characters="\x7f"),
                                                      max_size=120)
TEXT = st.sampled_from(fuzz.HOSTILE_STRINGS) | st.text(max_size=40)


def counts(hub) -> dict[str, int]:
    return {t: hub.observer.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}


def mostly(valid) -> st.SearchStrategy:
    """The valid value four times in five, else something hostile: so whole orders pass sometimes."""
    return st.one_of(*[st.just(valid)] * 4, TEXT)


@st.composite
def plausible_orders(draw, products: list[str]) -> dict:
    """Bodies that decode, aimed at the rules: real and unknown products, odd customers."""
    line = st.fixed_dictionaries({"product_id": st.sampled_from(products)},
                                 optional={"quantity": st.integers(-1, 25), "kind": st.sampled_from(["annual", "x"])})
    person = st.fixed_dictionaries(
        {"first_name": mostly("Anna"), "last_name": mostly("Müller"), "email": mostly("anna@example.org"),
         "street": mostly("Am Wall 1"), "postcode": mostly("28195"), "town": mostly("Bremen")},
        optional={"country": st.sampled_from(["DE", "AT", "NL", "de", "XX"])})
    order = {"lines": draw(st.lists(line, min_size=0, max_size=3)),
             "delivery": draw(st.sampled_from(["mail", "pickup", "mail", "pickup", "counter", ""])),
             "payment_reference": draw(mostly("PSP-1"))}
    who = draw(st.sampled_from(["inline", "inline", "inline", "id", "both", "none"]))
    if who in ("inline", "both"):
        order["customer"] = draw(person)
    if who in ("id", "both"):
        order["customer_id"] = draw(st.sampled_from(products) | st.uuids().map(str))
    return order


@pytest.fixture(scope="module")
def live(tmp_path_factory, sample_template):
    """A hub served from its own thread, as the API fuzzer runs it (with its id pools)."""
    yield from fuzz._serve_sample_copy(tmp_path_factory, sample_template)


@fuzz.FUZZ_SETTINGS
@given(data=st.data())
def test_hostile_shop_orders_with_a_key_never_get_5xx_and_refusals_write_nothing(live, data):
    products = [r[0] for r in live.observer.execute("SELECT id FROM annual_products")]
    if data.draw(st.booleans()):
        body_bytes, media = json.dumps(data.draw(plausible_orders(products))).encode(), "application/json"
    else:
        body_bytes, media = fuzz.body_for(data, live.pools, fuzz.DOCUMENT["paths"][SHOP_ORDERS]["post"])
    headers = {**live.auth(data.draw(st.sampled_from(["shop", "admin"]))), "Idempotency-Key": data.draw(KEYS)}
    if media is not None:
        headers["Content-Type"] = media
    before = counts(live)
    reply = live.send("POST", SHOP_ORDERS, headers, body_bytes)
    note(f"{headers!r}\n{body_bytes!r}\n-> {reply.status} {reply.body[:500]!r}")
    event(f"status {reply.status}")
    assert reply.status < 500
    if reply.status >= 400:
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert json.loads(reply.body)["type"].startswith(PROBLEM)
        assert counts(live) == before
    else:
        assert reply.status == 201 and json.loads(reply.body)["channel"] == "shop"


@pytest.mark.slow  # a real tessera hub process
def test_tessera_hub_serve_runs_the_mail_worker(sample_hub: Hub):
    """The worker is part of the app, so the real `tessera hub serve` sends shop mail."""
    smtp = Smtp(free_port())
    smtp.start()
    write_settings(sample_hub, smtp.port)
    secret, _ = tokens.create_token(sample_hub.db, "Webshop", "shop")
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "hub", "serve", "--data", str(sample_hub.dir),
                             "--host", "127.0.0.1", "--port", "0", "--no-advertise"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = re.fullmatch(r"hub API on (\S+)/api/v1\n", proc.stdout.readline()).group(1)
        order = {"customer": customer(), "lines": [{"product_id": sample_hub.ids["annual_products"][0]}],
                 "delivery": "pickup", "payment_reference": "PSP-9"}
        request = urllib.request.Request(url + SHOP_ORDERS, data=json.dumps(order).encode(), method="POST", headers={
            "Authorization": f"Bearer {secret}", "Idempotency-Key": "serve-1", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
        wait_until(lambda: smtp.inbox.received, what="the shop mail at the SMTP server")
        assert len(smtp.inbox.received) == 1
        assert LINK.findall(body(smtp.inbox.parsed(), "plain"))[0].startswith(PUBLIC_URL + "/p/")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.stderr.read()
        smtp.stop()


def test_the_api_document_names_the_idempotency_header():
    from hub.web import routes
    from hub.web.openapi import build_document

    doc = build_document(routes.build(), routes.VERSION)
    params = doc["paths"]["/api/v1/shop/orders"]["post"]["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in params] == [("Idempotency-Key", "header", True)]
