"""Shop orders (A2, A3): the online shop sells annual tickets through the hub.

`POST /shop/orders` takes the paid basket (the shop's payment reference is required: the
hub does not take payments itself), creates the customer if the shop sends one inline,
places the order with `core.sales.orders.place_order(channel="shop")`, makes one personalization
link per card and queues one e-mail with all links - all in one transaction, so an order
never exists without its links and mail, and a refused order leaves nothing behind.
Every request must carry an `Idempotency-Key`; a retry gets the first answer again
(`hub/services/idempotency.py`). The mail worker is woken after the commit.

Settings: an optional `[shop]` section in `hub.toml` in the hub's data folder::

    [shop]
    link_days = 60                                  # how long a personalization link works
    public_url = "https://tickets.example.org"      # base of the mailed links: required, never
                                                    # taken from a request's Host header

hub.toml is read once, when the app is made (`hub/settings.py`; `SECTION` declares `[shop]` there).
A broken `[shop]` section refuses shop orders (409 shop-not-configured) with its message.
"""

from __future__ import annotations

import datetime as dt
import typing
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base.clock import LOCAL_TZ, utcnow
from core.base.errors import ValidationError
from core.base.node import this_node
from core.base.storage import retried, transaction
from core.catalog import resource
from core.catalog.common import Address, Body, Country, Id, Name, ShortText
from core.catalog.customers import CustomerIn, Customers, Email, Phone
from core.sales import orders
from hub.services import checkout, idempotency, mail, personalization
from hub.settings import SETTINGS_FILE, Section, context
from hub.web.api import Api, Ctx, Param
from hub.web.problems import ApiError

SHOP = ("shop", "admin")
READERS = ("shop", "admin", "office")
MAX_LINK_DAYS = 730
_ADDRESS = typing.get_type_hints(Address, include_extras=True)
Street, Postcode = _ADDRESS["street"], _ADDRESS["postcode"]
CUSTOMERS = Customers()


# --- settings -------------------------------------------------------------------------------------------


class ShopConfigError(ValueError):
    """The `[shop]` section of hub.toml is unusable; the message names file and key."""


@dataclass(frozen=True, slots=True)
class ShopSettings:
    link_days: int = personalization.LINK_DAYS
    public_url: str | None = None


def settings_from_dict(section: object | None, source: str = SETTINGS_FILE) -> ShopSettings:
    """`[shop]` of hub.toml; defaults when the file or the section is absent (None)."""
    if section is None:
        return ShopSettings()
    if not isinstance(section, dict) or set(section) - {"link_days", "public_url"}:
        raise ShopConfigError(f"{source}: [shop] knows only link_days and public_url")
    days = section.get("link_days", personalization.LINK_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_LINK_DAYS:
        raise ShopConfigError(f"{source}: [shop] link_days must be a whole number 1..{MAX_LINK_DAYS}")
    url = section.get("public_url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise ShopConfigError(f"{source}: [shop] public_url must start with http:// or https://")
    return ShopSettings(days, url.rstrip("/") if url else None)


SECTION = Section("shop", settings_from_dict, ShopConfigError)


# --- input and output -----------------------------------------------------------------------------------


class ShopCustomerIn(Body, kw_only=True):
    """A new customer, checked by the same rules as POST /customers; the e-mail address is
    required because the personalization links go there."""

    salutation: ShortText = ""
    first_name: Name
    last_name: Name
    email: Email
    phone: Phone | None = None
    street: Street
    postcode: Postcode
    town: Name
    country: Country = "DE"


class ShopLineIn(Body, kw_only=True):
    product_id: Id
    quantity: Annotated[int, Meta(ge=1, le=20)] = 1
    kind: Literal["annual"] = "annual"


class ShopOrderIn(Body, kw_only=True):
    customer_id: Id | None = None
    customer: ShopCustomerIn | None = None
    lines: Annotated[list[ShopLineIn], Meta(min_length=1, max_length=20)]
    delivery: Literal["mail", "pickup"]
    payment_reference: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"\S",
                                           description="the payment service provider's reference")]


class Personalization(msgspec.Struct, kw_only=True):
    state: Literal["open", "used", "expired"]
    expires_at: str
    used_at: str | None


class ShopCard(msgspec.Struct, kw_only=True):
    id: str
    number: str
    holder_name: str | None
    valid_from: str
    valid_until: str
    fulfilment: str | None
    delivery: str | None
    has_photo: bool


class ShopOrderItem(msgspec.Struct, kw_only=True):
    id: str
    position: int
    product_id: str
    product: str | None
    kind: str
    price_cents: int
    vat_code: str
    card_id: str | None
    card: ShopCard | None
    personalization: Personalization | None


class ShopOrder(msgspec.Struct, kw_only=True):
    id: str
    number: str
    channel: str
    customer_id: str | None
    delivery: str
    payment_method: str
    payment_reference: str | None
    total_cents: int
    created_at: str
    items: list[ShopOrderItem]


# --- the order ------------------------------------------------------------------------------------------


def shop_order(db, order_id: str, now: dt.datetime) -> ShopOrder:
    """`core.sales.orders.order_view` plus each item's link state (never the token or its hash)."""
    view = orders.order_view(db, order_id)
    links = personalization.links_of_order(db, order_id)
    for item in view["items"]:
        link = links.get(item["id"])
        item["personalization"] = {**link, "state": personalization.link_state(link, now)} if link else None
        if item["card"] is not None:
            item["card"] = {**item["card"], "has_photo": bool(item["card"]["has_photo"])}
    return msgspec.convert(view, ShopOrder)


def _customer(db, body: ShopOrderIn, *, stored: bool = True) -> dict:
    """The order's customer: an existing one (must have an e-mail address) or a new one; a new
    one as stored (the row) or, not *stored*, as created (its id without reading it again)."""
    if (body.customer_id is None) == (body.customer is None):
        raise ValidationError("give either customer_id or customer", field="customer")
    if body.customer_id is not None:
        row = resource.require(db, "customers", body.customer_id, "customer", "customer_id")
        if not row["email"]:
            raise ValidationError("this customer has no e-mail address for the personalization links",
                                  field="customer_id")
        return row
    given = body.customer
    _check_address(given.email)
    data = CustomerIn(salutation=given.salutation, first_name=given.first_name, last_name=given.last_name,
                      email=given.email, phone=given.phone,
                      address=Address(street=given.street, postcode=given.postcode, town=given.town,
                                      country=given.country))
    try:
        created = resource.create(db, CUSTOMERS, data)
    except ValidationError as exc:  # address rules name address.*; the shop sent them flat
        field = "customer." + (exc.field or "").removeprefix("address.") if exc.field else "customer"
        raise ValidationError(exc.detail, field=field) from None
    return checkout.customer(db, created["id"]) if stored else created


def _check_address(email: str) -> None:
    try:
        mail.normalise_address(email)
    except ValidationError as exc:
        raise ValidationError(exc.detail, field="customer.email") from None


def _link_base(ctx: Ctx, settings: ShopSettings) -> str:
    """Where customers reach the hub: the configured public URL. Never the request's Host
    header, which whoever sends the request (or a proxy that forwards it) chooses: a link
    to another host would hand the customer's personalization token to that host."""
    if not settings.public_url:
        raise ApiError(409, "no-public-url", "No public URL",
                       "set [shop] public_url in hub.toml: mailed links never take the request's host name")
    return settings.public_url.rstrip("/")


def _mail_text(customer: dict, order: dict, links: list[tuple[str, str]], expires: dt.date) -> str:
    """German first, then English; one numbered link per card with its product."""
    until = expires.strftime("%d.%m.%Y")
    lines = "\n".join(f"  {n}. {product}\n     {url}" for n, (product, url) in enumerate(links, 1))
    name = f"{customer['first_name']} {customer['last_name']}"
    how_de = "per Post" if order["delivery"] == "mail" else "zur Abholung im Museum"
    how_en = "by mail" if order["delivery"] == "mail" else "for pickup at the museum"
    return (
        f"Guten Tag {name},\n\n"
        f"vielen Dank für Ihre Bestellung {order['number']}. Bitte personalisieren Sie jede Jahreskarte "
        f"über ihren eigenen Link (gültig bis {until}):\n\n{lines}\n\n"
        f"Danach steht Ihre Karte sofort auf dem Handy bereit; die gedruckte Karte erhalten Sie {how_de}.\n\n"
        "-- English --\n\n"
        f"Hello {name},\n\n"
        f"thank you for your order {order['number']}. Please personalize each annual ticket with its own "
        f"link (valid until {until}):\n\n{lines}\n\n"
        f"Your card is then ready on your phone at once; the printed card comes {how_en}.\n")


def _queue_mail(db, ctx: Ctx, settings: ShopSettings, customer: dict, order: dict, now: dt.datetime) -> None:
    """One link per item and one mail with all of them, in the caller's transaction."""
    tokens = personalization.create_links(db, [i["id"] for i in order["items"]], now, settings.link_days)
    base = _link_base(ctx, settings)
    links = [(item["product"], f"{base}/p/{tokens[item['id']]}") for item in order["items"]]
    expires = (now + dt.timedelta(days=settings.link_days)).astimezone(LOCAL_TZ).date()
    plural = len(links) > 1
    subject = (f"Ihre Jahreskarte{'n' if plural else ''} personalisieren / Personalize your annual "
               f"ticket{'s' if plural else ''} ({order['number']})")
    mail.enqueue(db, to=customer["email"], subject=subject, text=_mail_text(customer, order, links, expires),
                 now=now)


@retried  # a deadlock or serialization failure on PostgreSQL: run again
def create_shop_order(ctx: Ctx):
    body: ShopOrderIn = ctx.body
    key = idempotency.require_key(ctx.headers)
    digest = idempotency.body_hash(body)
    settings = _settings(ctx)
    now = utcnow()
    db = ctx.db
    with transaction(db):
        earlier = idempotency.replay(db, ctx.token["id"], key, digest)
        if earlier is not None:
            ctx.response_headers[idempotency.REPLAYED_HEADER] = "true"
            return earlier.status, msgspec.Raw(earlier.response)
        customer = _customer(db, body)
        order_in = orders.OrderIn(
            lines=[orders.LineIn(product_id=line.product_id, quantity=line.quantity, kind="annual")
                   for line in body.lines],
            customer_id=customer["id"], delivery=body.delivery, payment_method="online",
            payment_reference=body.payment_reference.strip())
        order = orders.place_order(db, this_node(db), None, order_in, channel="shop", now=now)
        checkout.mark_placed_by(db, order["id"], ctx.token["id"])
        _queue_mail(db, ctx, settings, customer, order, now)
        answer = msgspec.json.encode(shop_order(db, order["id"], now))
        idempotency.remember(db, ctx.token["id"], key, digest, 201, answer, now)
    mail.wake_worker(ctx.app)
    return 201, msgspec.Raw(answer)


def _settings(ctx: Ctx) -> ShopSettings:
    try:
        return context(ctx.app).section(SECTION)
    except ShopConfigError as exc:
        raise ApiError(409, "shop-not-configured", "Shop settings unusable", str(exc)) from None


def get_shop_order(ctx: Ctx):
    order_id = ctx.path("id")
    checkout.require_shop_order(ctx.db, order_id, ctx.token)  # a shop sees its own
    return shop_order(ctx.db, order_id, utcnow())


def register(api: Api) -> None:
    """Installs the shop's operations."""
    api.add("POST", "/shop/orders", create_shop_order, summary="Place a paid shop order", tag="Shop", offload=True,
            roles=SHOP, body=ShopOrderIn, response=ShopOrder, status=201,
            headers=[Param(idempotency.HEADER, "str", "unique per order; a retry sends the same key",
                           max_length=idempotency.MAX_KEY, required=True)],
            description="Annual tickets of products on sale online. Requires the header `Idempotency-Key` "
                        "(1-100 visible characters, unique per order): a retry with the same key and body "
                        "returns the first answer with `Idempotent-Replayed: true` and places nothing; the "
                        "same key with another body is refused (422 idempotency-key-reused). The customer "
                        "gets one e-mail with a personalization link per card.")
    api.add("GET", "/shop/orders/{id}", get_shop_order, summary="Read a shop order", tag="Shop", roles=READERS,
            response=ShopOrder, cacheable=False,
            description="With each card (once personalized) and each personalization link's state "
                        "(open, used, expired).")
