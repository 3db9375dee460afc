"""The confirmation mail of a subscription order (issue 13): what the customer bought, when and where.

An annual-ticket shop order mails its customer (hub/web/areas/shop.py); a subscription order
does the same, whichever way it was sold (shop, agency, office phone sale). `confirm_order()`
is called once per order, inside the sale's transaction, after the sale is stored: the mail is
queued with `mail.enqueue()` in that transaction, so a sale that fails or is rolled back mails
nobody, and a sale that commits always has its mail (sent by the mail worker, retried while
the mail server is down). A customer without an e-mail address gets no mail and the sale goes
on; so does one whose stored address is unusable (logged), since the box office has sold it.

The mail lists, per subscription of the order: its number, product, holder, discount tier, form
(season pass / single tickets), every date with venue and seat in the house's local time; then
the total, the payment (a transfer: "we send an invoice") and the delivery (post or pickup at
the box office). German first, then English, as the annual mail. Everything in it is read from
the hub's database, nothing from the request; the subject holds only the order number, so no
name can reach a header; the HTML part escapes every name (customers, holders, products, venues
are typed by people).
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import sqlite3
from dataclasses import dataclass

from aiohttp import web

from core.base.errors import ValidationError
from core.base.money import format_eur
from core.sales import orders
from core.subscriptions import print_data
from core.subscriptions.print_data import Seat
from hub.services import checkout, mail

log = logging.getLogger("tessera.mail")

WEEKDAYS_DE = ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So")
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FORMS = {"pass": ("Abo-Ausweis für die ganze Spielzeit", "season pass for the whole season"),
         "single_tickets": ("Einzeltickets je Termin", "single tickets for each date"),
         "both": ("Abo-Ausweis und Einzeltickets je Termin", "season pass and single tickets for each date")}
PAYMENTS = {"transfer": ("per Überweisung: Sie erhalten von uns eine Rechnung.",
                         "by bank transfer: we send you an invoice."),
            "sepa": ("per Lastschrift: Der Betrag wird von Ihrem Konto eingezogen.",
                     "by direct debit: the amount is collected from your account."),
            "online": ("online, bereits bezahlt.", "online, already paid."),
            "cash": ("bar, bezahlt.", "in cash, paid."),
            "card": ("mit Karte, bezahlt.", "by card, paid."),
            "none": ("keine Zahlung fällig.", "nothing to pay.")}
DELIVERIES = {"mail": ("Ihre Karten senden wir Ihnen per Post.", "We send your tickets by post."),
              "pickup": ("Ihre Karten liegen zur Abholung an der Theaterkasse bereit.",
                         "Your tickets are ready for pickup at the box office.")}
AGENCY_PAYMENT = ("bei Ihrer Vorverkaufsstelle {agency}; sie rechnet mit uns ab.",
                  "to your booking agency {agency}, which settles with us.")
FULL_PRICE = ("Vollpreis", "full price")


@dataclass(frozen=True, slots=True)
class Item:
    """One subscription of the order, as the mail shows it."""

    number: str
    product: str
    organizer: str
    holder: str
    tier: str | None
    form: str
    price_cents: int
    seats: list[Seat]
    agency: str | None  # the agency's name when an agency sold it: the customer pays there


@dataclass(frozen=True, slots=True)
class Confirmation:
    to: str
    subject: str
    text: str
    html: str


# --- reading -------------------------------------------------------------------------------------------


def items_of(db: sqlite3.Connection, order_id: str, sent: sqlite3.Cursor | None = None) -> list[Item]:
    """The order's subscriptions in number order, each with its sold seats in date order (*sent*:
    `_subscriptions_sent`, if the caller asked it already)."""
    subs = (sent if sent is not None else _subscriptions_sent(db, order_id)).fetchall()
    out = []
    for found in subs:
        seats = print_data.seats_sent(db, found["line_id"])  # goes with the next question
        sub = print_data.subscription_row(db, found["id"])
        out.append(Item(sub["number"], print_data.product_label(sub), sub["organizer"], print_data.holder_name(sub),
                        sub["tier_name"], sub["form"], sub["price_cents"], print_data.seats_of(seats),
                        _agency_name(db, sub["agency_token"])))
    return out


def _subscriptions_sent(db: sqlite3.Connection, order_id: str) -> sqlite3.Cursor:
    return db.execute("SELECT id, line_id FROM subscriptions WHERE order_id = ? ORDER BY number, id", (order_id,))


def _agency_name(db: sqlite3.Connection, token_id: str | None) -> str | None:
    if token_id is None:
        return None
    found = db.execute("SELECT name FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
    return found["name"] if found else ""


def compose(db: sqlite3.Connection, order_id: str) -> Confirmation | None:
    """The order's confirmation, or None when there is nobody to mail it to (no subscription in
    the order, a customer without an e-mail address, or the order's confirmation is in the mail
    queue already)."""
    subs = _subscriptions_sent(db, order_id)  # goes with the order's questions
    order = orders.order_view(db, order_id)
    if not order["customer_id"]:
        return None
    asked = checkout.customer_sent(db, order["customer_id"])  # these two go with the items' seats
    queued = _queued_sent(db, subject_of(order))
    items = items_of(db, order_id, subs)
    if not items:
        return None
    customer = checkout.customer_of(asked, order["customer_id"])
    if not (customer["email"] or "").strip():
        return None
    organizer = items[0].organizer
    name = f"{customer['first_name']} {customer['last_name']}".strip()
    if queued.fetchone() is not None:
        return None
    return Confirmation(customer["email"], subject_of(order), text_body(name, organizer, order, items),
                        html_body(name, organizer, order, items))


# --- words ---------------------------------------------------------------------------------------------


def when_de(at: dt.datetime) -> str:
    return f"{WEEKDAYS_DE[at.weekday()]} {at:%d.%m.%Y}, {at:%H:%M} Uhr"


def when_en(at: dt.datetime) -> str:
    return f"{WEEKDAYS_EN[at.weekday()]} {at.day} {MONTHS_EN[at.month - 1]} {at.year}, {at:%H:%M}"


def eur_en(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    return f"{sign}€{euros:,}.{rest:02d}"


def seat_de(seat: Seat) -> str:
    return f"{seat.venue}, {seat.section}, Reihe {seat.row}, Platz {seat.label}"


def seat_en(seat: Seat) -> str:
    return f"{seat.venue}, {seat.section}, row {seat.row}, seat {seat.label}"


def _lang(de: bool) -> dict:
    """The words of one language block; index 0 German, 1 English."""
    i = 0 if de else 1
    return {"i": i, "when": when_de if de else when_en, "seat": seat_de if de else seat_en,
            "eur": format_eur if de else eur_en}


LABELS = {
    "hello": ("Guten Tag", "Hello"),
    "thanks": ("vielen Dank für Ihre Abo-Bestellung {number} bei {organizer}.",
               "thank you for your subscription order {number} with {organizer}."),
    "sub": ("Abonnement", "Subscription"),
    "holder": ("Inhaber/in", "Holder"),
    "tier": ("Rabattstufe", "Discount tier"),
    "form": ("Form", "Form"),
    "price": ("Preis", "Price"),
    "dates": ("Termine", "Dates"),
    "total": ("Summe", "Total"),
    "payment": ("Zahlung", "Payment"),
    "delivery": ("Zustellung", "Delivery"),
    "bye": ("Wir freuen uns auf Ihren Besuch.", "We look forward to seeing you."),
}


def _word(key: str, i: int) -> str:
    return LABELS[key][i]


def _facts(item: Item, w: dict) -> list[tuple[str, str]]:
    """(label, value) of one subscription, in one language."""
    i = w["i"]
    return [(_word("holder", i), item.holder), (_word("tier", i), item.tier or FULL_PRICE[i]),
            (_word("form", i), FORMS.get(item.form, (item.form, item.form))[i]),
            (_word("price", i), w["eur"](item.price_cents))]


def _payment(order: dict, items: list[Item], i: int) -> str:
    """How the order is paid; an agency's customer pays the agency (its transfer to us is not theirs)."""
    agency = next((item.agency for item in items if item.agency is not None), None)
    if agency is not None:
        return " ".join(AGENCY_PAYMENT[i].format(agency=agency).split())
    method = order["payment_method"] or "none"
    return PAYMENTS.get(method, (method, method))[i]


def _closing(order: dict, items: list[Item], w: dict) -> list[tuple[str, str]]:
    i = w["i"]
    return [(_word("total", i), w["eur"](order["total_cents"])),
            (_word("payment", i), _payment(order, items, i)),
            (_word("delivery", i), DELIVERIES.get(order["delivery"], (order["delivery"],) * 2)[i])]


# --- text ----------------------------------------------------------------------------------------------


def text_block(name: str, organizer: str, order: dict, items: list[Item], *, de: bool) -> str:
    w = _lang(de)
    i = w["i"]
    out = [f"{_word('hello', i)} {name},", "",
           _word("thanks", i).format(number=order["number"], organizer=organizer), ""]
    for item in items:
        out.append(f"{_word('sub', i)} {item.number}: {item.product}")
        out += [f"  {label}: {value}" for label, value in _facts(item, w)]
        out.append(f"  {_word('dates', i)}:")
        for seat in item.seats:
            out += [f"    {w['when'](seat.starts_at)}  {seat.title}", f"      {w['seat'](seat)}"]
        out.append("")
    out += [f"{label}: {value}" for label, value in _closing(order, items, w)]
    out += ["", _word("bye", i), organizer]
    return "\n".join(out) + "\n"


def text_body(name: str, organizer: str, order: dict, items: list[Item]) -> str:
    """German first, then English, as the annual mail."""
    return (text_block(name, organizer, order, items, de=True) + "\n-- English --\n\n"
            + text_block(name, organizer, order, items, de=False))


# --- HTML ----------------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def html_block(name: str, organizer: str, order: dict, items: list[Item], *, de: bool) -> str:
    w = _lang(de)
    i = w["i"]
    out = [f'<div lang="{"de" if de else "en"}">', f"<p>{_e(_word('hello', i))} {_e(name)},</p>",
           f"<p>{_e(_word('thanks', i).format(number=order['number'], organizer=organizer))}</p>"]
    for item in items:
        out.append(f"<h3>{_e(_word('sub', i))} {_e(item.number)}: {_e(item.product)}</h3>")
        out.append("<ul>" + "".join(f"<li>{_e(label)}: {_e(value)}</li>" for label, value in _facts(item, w))
                   + "</ul>")
        rows = "".join(f"<tr><td>{_e(w['when'](s.starts_at))}</td><td>{_e(s.title)}</td><td>{_e(w['seat'](s))}</td>"
                       "</tr>" for s in item.seats)
        out.append(f"<table><caption>{_e(_word('dates', i))}</caption>{rows}</table>")
    out.append("<p>" + "<br>".join(f"{_e(label)}: {_e(value)}" for label, value in _closing(order, items, w)) + "</p>")
    out.append(f"<p>{_e(_word('bye', i))}<br>{_e(organizer)}</p></div>")
    return "\n".join(out)


def html_body(name: str, organizer: str, order: dict, items: list[Item]) -> str:
    return ('<!doctype html><html><head><meta charset="utf-8"></head><body>\n'
            + html_block(name, organizer, order, items, de=True) + "\n<hr>\n"
            + html_block(name, organizer, order, items, de=False) + "\n</body></html>\n")


# --- queueing ------------------------------------------------------------------------------------------


def subject_of(order: dict) -> str:
    return f"Ihre Abo-Bestellung {order['number']} / Your subscription order {order['number']}"


def queue_confirmation(db: sqlite3.Connection, order_id: str, now: dt.datetime) -> str | None:
    """Queue the order's confirmation in the caller's transaction (the sale's); the mail's id, or
    None when nothing is mailed (no address, an address the mail queue refuses: logged, or the
    order's confirmation is queued already)."""
    if not db.in_transaction:
        raise RuntimeError("subscription_mail.queue_confirmation() must run inside the sale's transaction")
    found = compose(db, order_id)
    if found is None:
        return None
    try:
        return mail.enqueue(db, to=found.to, subject=found.subject, text=found.text, html=found.html, now=now)
    except ValidationError as exc:  # a stored address that cannot be mailed: the sale stands
        log.warning("order %s: no confirmation mail: %s", order_id, exc.detail)
        return None


def _queued_sent(db: sqlite3.Connection, subject: str) -> sqlite3.Cursor:
    """Whether the order's confirmation is queued already (a row, or none), asked and not read yet.
    An order is confirmed once, even if a sale path calls twice (once per subscription of a
    party): the subject holds the order's number, unique in the ledger."""
    return db.execute("SELECT 1 FROM mail_queue WHERE subject = ? LIMIT 1", (subject,))


def confirm_order(app: web.Application, db: sqlite3.Connection, order_id: str, now: dt.datetime) -> str | None:
    """The one call after a subscription sale is stored (inside its transaction): queue the
    confirmation and wake the mail worker. The worker runs on the event loop, so it sends only
    after the request's handler (and its commit) has returned; a rollback leaves nothing to send."""
    mail_id = queue_confirmation(db, order_id, now)
    if mail_id is not None:
        mail.wake_worker(app)
    return mail_id
