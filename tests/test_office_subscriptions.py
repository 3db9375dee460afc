"""The office's subscriptions (issue 13) over real HTTP on loopback against the sample hub: the
phone sale of a ring (across two plan variants), a choice (N of M) and a combi on the seat map,
staff seat holds, a seat lost meanwhile, prices from the catalog only, forged and hostile
posts; the subscriber list, a subscription's page, its changes and seat change; and the sale
in Chromium (slow)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.helpers import table_counts
from tests.office import form_token, post_form, signed_in

NEW = "/office/subscriptions/new"
LIST = "/office/subscriptions"
WATCHED = ("orders", "order_lines", "payments", "subscriptions", "tickets", "seat_holds", "cards", "customers")
PIT = "Orchestergraben überbaut"
STANDARD = "Standard (Orchestergraben offen)"


def counts(db) -> dict[str, int]:
    every = table_counts(db)
    return {t: every[t] for t in WATCHED}


@pytest.fixture
async def office(aiohttp_client, sample_hub):
    return await signed_in(aiohttp_client, sample_hub, role="office")


class _Fields(HTMLParser):
    """What a browser would post of the sale form: hidden and text inputs, checked boxes and
    radios, the selected option of each select (the first without one), no buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.inside = False
        self.select: str | None = None
        self.first: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == "subsale"
        if not self.inside or not a.get("name"):
            if tag == "option" and self.inside and self.select:
                self._option(a)
            return
        if tag == "input" and a.get("type") in ("checkbox", "radio"):
            if "checked" in a:
                self.fields[a["name"]] = a.get("value", "on")
        elif tag == "input":
            self.fields[a["name"]] = a.get("value") or ""
        elif tag == "select":
            self.select, self.first = a["name"], None

    def _option(self, a: dict) -> None:
        if self.first is None:
            self.first = a.get("value", "")
            self.fields.setdefault(self.select, self.first)
        if "selected" in a:
            self.fields[self.select] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        if tag == "select":
            self.select = None


def hidden(html: str) -> dict[str, str]:
    """The fields of the sale form as a browser posts them (what the page carries onwards)."""
    parser = _Fields()
    parser.feed(html)
    found = parser.fields
    found.pop("csrf", None)
    return {k: v for k, v in found.items() if v}


async def step(client, fields: dict[str, str], lang: str = "de", status: int = 200) -> str:
    response = await post_form(client, NEW, f"{NEW}?lang={lang}", fields)
    text = await response.text()
    assert response.status == status, re.findall(r'role="alert">(.*?)</p>', text, re.S) or text[-2000:]
    return text


def ids(client) -> dict:
    return client.hub.ids


def product_id(client, name: str) -> str:
    return ids(client)["subscriptions"][name]


def variant(db, name: str) -> str:
    return db.execute("SELECT id FROM plan_variants WHERE name = ?", (name,)).fetchone()["id"]


def house_plan(client) -> str:
    return ids(client)["plans"]["Großes Haus"]


def seat(db, row: str, label: str, section: str = "Parkett", plan: str | None = None) -> str:
    return db.execute("SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id "
                      "WHERE c.name = ? AND s.row_label = ? AND s.label = ? AND (? IS NULL OR s.plan_id = ?)",
                      (section, row, label, plan, plan)).fetchone()["id"]


def customer(db) -> dict:
    return db.execute("SELECT id, number, last_name FROM customers ORDER BY number LIMIT 1").fetchone()


def nonce_of(html: str) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', html).group(1)


async def confirm(client, nonce: str, **headers: str):
    token = await form_token(client, NEW)
    return await client.post(NEW + "/confirm", data={"csrf": token, "nonce": nonce}, allow_redirects=False,
                             headers=headers)


async def ring_with_pit_seat(client, lang: str = "de") -> tuple[str, dict]:
    """Ring A up to the held seats: the pit seat A8 picked on the pit variant's map, the page
    stepping through the standard variant (which lacks it) with a suggested replacement."""
    db = client.hub.db
    ring, plan = product_id(client, "Abo-Ring A"), house_plan(client)
    html = await step(client, {"action": "product", "product_id": ring}, lang)
    assert html.count('class="seatmap"') == 1 and f"tab-{variant(db, PIT)}" in html
    pit_seat = seat(db, "A", "8", plan=plan)
    html = await step(client, {**hidden(html), "action": "pick", f"view_{plan}": variant(db, PIT),
                               f"seat_{plan}": pit_seat}, lang)
    fields = hidden(html)
    standard = variant(db, STANDARD)
    assert f'id="step-{standard}"' in html and fields[f"repl_{standard}"]  # the step, a suggestion filled in
    return html, fields


# --- the sale ---------------------------------------------------------------------------------------------


async def test_a_ring_is_sold_across_two_plan_variants_with_a_replacement_at_the_catalog_price(office):
    db = office.hub.db
    before = counts(db)
    html, fields = await ring_with_pit_seat(office)
    plan, standard = house_plan(office), variant(db, STANDARD)
    assert counts(db) == before  # looking and picking store nothing
    replacement = seat(db, "1", "10", plan=plan)  # the clerk picks another replacement than the suggestion
    html = await step(office, {**fields, "action": "pick", f"repl_{standard}": replacement})
    fields = hidden(html)
    assert fields[f"repl_{standard}"] == replacement
    html = await step(office, {**fields, "action": "hold"})
    fields = hidden(html)
    assert fields["hold_id"] and 'id="held"' in html
    held = db.execute("SELECT performance_id, seat_id FROM seat_holds").fetchall()
    assert len(held) == 8
    assert html.count("<tr><td class=\"nowrap\">") >= 8  # the seat per date, read back
    assert "Parkett · Reihe A · Platz 8" in html and "Parkett · Reihe 1 · Platz 10" in html
    tier = db.execute("SELECT id FROM discount_tiers WHERE product_id = ? AND name = 'Schüler/Studierende'",
                      (product_id(office, "Abo-Ring A"),)).fetchone()["id"]
    # the tier list shows the catalog's prices for zone I: 368,00 full, 184,00 for students
    assert "Vollpreis · 368,00 €" in html and "Schüler/Studierende · 184,00 €" in html
    html = await step(office, {**fields, "action": "check", "customer_id": customer(db)["id"], "tier_id": tier,
                               "form": "both", "delivery": "mail", "payment_method": "transfer",
                               "price_cents": "1", "total_cents": "1", "price": "0,01"})
    assert 'id="price">Summe: 184,00 €' in html
    response = await confirm(office, nonce_of(html))
    assert response.status == 303, await response.text()
    sub_id = response.headers["Location"].rsplit("/", 1)[1]
    sub = db.execute("SELECT * FROM subscriptions WHERE id = ?", (sub_id,)).fetchone()
    assert sub["price_cents"] == 18400 and sub["tier_id"] == tier and sub["form"] == "both"
    seats = db.execute("SELECT t.seat_id, f.variant_id FROM tickets t JOIN performances f ON f.id = t.performance_id "
                       "WHERE t.line_id = ? AND t.status = 'sold'", (sub["line_id"],)).fetchall()
    assert len(seats) == 8
    assert {s["seat_id"] for s in seats if s["variant_id"] == standard} == {replacement}
    assert {s["seat_id"] for s in seats if s["variant_id"] != standard} == {seat(db, "A", "8", plan=plan)}
    assert db.execute("SELECT count(*) AS n FROM seat_holds").fetchone()["n"] == 0  # the hold became the sale
    again = await confirm(office, nonce_of(html))  # a double click: the same subscription, nothing more
    assert again.status == 303 and again.headers["Location"] == response.headers["Location"]
    assert db.execute("SELECT count(*) AS n FROM subscriptions").fetchone()["n"] == 1
    page = await office.get(response.headers["Location"])
    text = await page.text()
    assert page.status == 200 and sub["number"] in text and text.count('data-performance="') == 8
