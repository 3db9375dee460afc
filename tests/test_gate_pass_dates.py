"""The dates a season pass admits (`pass_performances`) and the immediate cancellation of a
subscription (Storno) at the gate (S9, issue 14).

A choice subscriber's pass admits the N dates chosen, not all M the product offers. A Storno
revokes the pass and the single tickets and frees the seats of the dates not yet begun; a gate
refuses the cards after a real pull over HTTP from the hub, and still after the hub is gone.
Real sample hub, real SQLite, real signatures, the real API on loopback."""

from __future__ import annotations

import datetime as dt

import pytest

from core.base.clock import parse_iso, utcnow
from core.base.node import NODE_DB, this_node
from core.base.storage import connect
from core.cards import cards
from core.cards.access import MESSAGES, Access, GateRules
from core.sales.contingents import HUB
from core.sales.tickets import SaleIn, sell
from core.subscriptions.passes import issue_subscription_cards
from core.subscriptions.sale import sell_subscription
from core.subscriptions.seat_loader import load_performances
from edge.sync import enroll as enrolling
from edge.sync.client import SyncClient
from hub.app import make_app
from hub.services import tokens
from hub.sync import enrollment
from tests.cardkit import make_kit
from tests.helpers import table_counts
from tests.test_subscription_sale import GENERAL, house, product, sale, seat

CHOICE = "Wahl-Abo Studio 5 aus 8"


def starts(db, performance_id: str) -> dt.datetime:
    return parse_iso(db.execute("SELECT starts_at FROM performances WHERE id = ?",
                                (performance_id,)).fetchone()["starts_at"])


def venue_of(db, performance_id: str) -> str:
    return db.execute("SELECT venue_id FROM performances WHERE id = ?", (performance_id,)).fetchone()["venue_id"]


def pass_dates(db, card_id: str) -> set[str]:
    return {r["performance_id"] for r in db.execute("SELECT performance_id FROM pass_performances WHERE card_id = ?",
                                                    (card_id,))}


def gate_at(gate_dir, venue_id: str) -> Access:
    db = connect(gate_dir / NODE_DB, edge=True)
    return Access(db, GateRules(venue_id=venue_id), signer=cards.load_signer(db, gate_dir))


# --- a choice pass admits its chosen dates only ----------------------------------------------------------


def sell_choice_pass(hub) -> tuple[dict, list[str], str]:
    """A choice (5 of 8 Studio dates) sold with a pass: the sample prints this product as single
    tickets, so its print options are widened to both first, as the office may. Returns the pass,
    the chosen dates and a later date it did not choose."""
    db = hub.db
    choice = product(hub, CHOICE)
    db.execute("UPDATE subscription_products SET print_options = 'both' WHERE id = ?", (choice,))
    offered = [r["performance_id"] for r in db.execute(
        "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position", (choice,))]
    later = [p for p in offered if starts(db, p) > utcnow() + dt.timedelta(days=2)]
    assert len(later) >= 3, "the sample needs three Studio dates after today"
    skipped = later[1]  # between two chosen dates: inside the pass's signed validity
    chosen = [later[0], later[-1], *[p for p in offered if p not in (later[0], later[-1], skipped)][:3]]
    sold = sell_subscription(db, this_node(db), sale(choice, hub.ids["first_customer"], form="pass",
                                                     performance_ids=chosen,
                                                     seat_ids=[seat(db, hub.ids["plans"]["Studio"], "Saal", "3",
                                                                    "3")["id"]]),
                             channel="phone", now=GENERAL)
    issued = issue_subscription_cards(db, cards.load_signer(db, hub.dir), sold["id"], utcnow())
    return next(c for c in issued if c["kind"] == "subscription"), chosen, skipped


def test_a_choice_pass_is_admitted_at_a_chosen_date_and_refused_at_a_date_it_did_not_choose(sample_hub, tmp_path):
    hub, db = sample_hub, sample_hub.db
    the_pass, chosen, skipped = sell_choice_pass(hub)
    assert pass_dates(db, the_pass["id"]) == set(chosen)
    kit = make_kit(hub, tmp_path)
    kit.sync()
    studio = venue_of(db, chosen[0])
    gate = gate_at(kit.gate_dir, studio)
    assert pass_dates(gate.db, the_pass["id"]) == set(chosen)  # replicated to the gate
    at_chosen = gate.decide(the_pass["code"], starts(db, chosen[0]) - dt.timedelta(minutes=30))
    assert at_chosen.admitted and at_chosen.extra["performance_id"] == chosen[0]
    refused = gate.decide(the_pass["code"], starts(db, skipped) - dt.timedelta(minutes=30))
    assert (refused.reason, refused.message_de, refused.message_en) == (
        "WRONG_PERFORMANCE", "Keine Vorstellung dieser Karte hier und jetzt", "No performance of this card here now")
    assert (refused.message_de, refused.message_en) == MESSAGES["WRONG_PERFORMANCE"]
    # the recorded dates are what refuses it: a pass without rows (as a desk's, issued offline)
    # falls back to the product's dates
    gate.db.execute("DELETE FROM pass_performances WHERE card_id = ?", (the_pass["id"],))
    assert gate.decide(the_pass["code"], starts(db, skipped) - dt.timedelta(minutes=30)).admitted


def test_issuing_again_rewrites_the_dates_of_the_pass_and_a_revoked_pass_keeps_none(sample_hub):
    hub, db = sample_hub, sample_hub.db
    the_pass, chosen, _ = sell_choice_pass(hub)
    line = db.execute("SELECT order_item_id FROM cards WHERE id = ?", (the_pass["id"],)).fetchone()["order_item_id"]
    db.execute("UPDATE tickets SET status = 'cancelled' WHERE line_id = ? AND performance_id = ?", (line, chosen[1]))
    sub = db.execute("SELECT id FROM subscriptions WHERE line_id = ?", (line,)).fetchone()["id"]
    assert issue_subscription_cards(db, cards.load_signer(db, hub.dir), sub, utcnow()) == []  # nothing new
    assert pass_dates(db, the_pass["id"]) == set(chosen) - {chosen[1]}  # the date given up admits nobody
    cards.revoke_card(db, cards.load_signer(db, hub.dir), the_pass["id"], "lost", utcnow())
    from core.subscriptions.passes import record_pass_dates
    assert record_pass_dates(db, the_pass["id"], line) == [] and pass_dates(db, the_pass["id"]) == set()


# --- the Storno: over the API, a real pull, the gate refuses ---------------------------------------------


@pytest.fixture
async def served(sample_hub, aiohttp_server):
    server = await aiohttp_server(make_app(sample_hub.db))
    sample_hub.url = str(server.make_url("")).rstrip("/")
    sample_hub.server = server
    return sample_hub


def sell_ring(hub) -> tuple[dict, dict, dict[str, dict]]:
    """Abo-Ring A in form both (a pass and a ticket per date), Parkett 5/7, cards issued."""
    db = hub.db
    parkett = seat(db, house(hub), "Parkett", "5", "7")
    sold = sell_subscription(db, this_node(db), sale(hub.ids["subscriptions"]["Abo-Ring A"], hub.ids["first_customer"],
                                                     form="both", seat_ids=[parkett["id"]], holder_name="Greta Wolf"),
                             channel="phone", now=GENERAL)
    issued = issue_subscription_cards(db, cards.load_signer(db, hub.dir), sold["id"], utcnow())
    return sold, next(c for c in issued if c["kind"] == "subscription"), {
        c["product_id"]: c for c in issued if c["kind"] == "single"}


async def pulled_gate(hub, tmp_path, venue_id: str) -> tuple[SyncClient, object]:
    folder = tmp_path / "tor"
    code = enrollment.create_code(hub.db, name="Tor 1", role="gate", venue_ids=[venue_id], now=utcnow())
    await enrolling.enroll(folder, code, [hub.url])
    db = connect(folder / NODE_DB, edge=True)
    client = SyncClient(db, folder)
    while await client.pull():
        pass
    return client, folder


async def test_after_a_storno_and_a_pull_the_gate_refuses_the_pass_and_tickets_even_offline_and_the_seats_sell(
        served, tmp_path, aiohttp_client):
    hub, db = served, served.db
    sold, the_pass, tickets = sell_ring(hub)
    ahead = [p for p in tickets if starts(db, p) > utcnow() + dt.timedelta(days=2)]
    begun = [p for p in tickets if starts(db, p) <= utcnow()]
    date = ahead[0]
    client, folder = await pulled_gate(hub, tmp_path, venue_of(db, date))
    try:
        gate = gate_at(folder, venue_of(db, date))
        at = starts(db, date) - dt.timedelta(minutes=20)
        assert gate.decide(the_pass["code"], at).admitted and gate.decide(tickets[date]["code"], at).admitted
        api = await aiohttp_client(make_app(db))
        response = await api.patch(f"/api/v1/subscriptions/{sold['id']}", json={"state": "cancelled",
                                                                                 "effective": "now"},
                                   headers=hub.headers())
        assert response.status == 200, await response.text()
        record = await response.json()
        assert record["state"] == "cancelled" and record["cancelled_at"]
        assert {s["performance_id"] for s in record["seats"]} == set(begun)  # the dates begun keep their seats
        assert pass_dates(db, the_pass["id"]) == set()
        await client.pull()
        gate.refresh(force=True)
        for code in (the_pass["code"], tickets[date]["code"], tickets[ahead[-1]]["code"]):
            refused = gate.decide(code, at)
            assert (refused.reason, refused.message_de, refused.message_en) == ("REVOKED", *MESSAGES["REVOKED"])
            assert "cancelled" in refused.detail
    finally:
        await client.close()
    await hub.server.close()  # the hub is gone: a gate started now decides from what it pulled
    offline = gate_at(folder, venue_of(db, date))
    assert offline.decide(the_pass["code"], at).reason == "REVOKED"
    assert offline.decide(tickets[date]["code"], at).reason == "REVOKED"
    # the seat is free again in every date not yet begun: free in the hub's pool, and sold to another
    parkett = seat(db, house(hub), "Parkett", "5", "7")["id"]
    for perf in load_performances(db, ahead, pool=HUB):
        assert parkett in perf.plan.ids(perf.free), perf.performance_id
    again = sell(db, this_node(db), SaleIn(performance_id=date, seat_ids=[parkett], payment_method="transfer"),
                 pool=HUB, channel="phone", now=utcnow())
    assert again["tickets"][0]["seat_id"] == parkett


async def test_a_storno_sent_twice_changes_nothing_the_second_time(api):
    hub, db = api.hub, api.hub.db
    sold, the_pass, _ = sell_ring(hub)
    body = {"state": "cancelled", "effective": "now"}
    first = await api.patch(f"/api/v1/subscriptions/{sold['id']}", json=body, headers=hub.headers())
    assert first.status == 200, await first.text()
    before = table_counts(db), db.execute("SELECT max(seq) AS n FROM changes").fetchone()["n"]
    cards_before = db.execute("SELECT id, revoked_at, revoke_reason, updated_at FROM cards WHERE order_item_id = ? "
                              "ORDER BY id", (sold["line_id"],)).fetchall()
    second = await api.patch(f"/api/v1/subscriptions/{sold['id']}", json=body, headers=hub.headers())
    assert second.status == 200 and (await second.json()) == (await first.json())
    assert (table_counts(db), db.execute("SELECT max(seq) AS n FROM changes").fetchone()["n"]) == before
    assert db.execute("SELECT id, revoked_at, revoke_reason, updated_at FROM cards WHERE order_item_id = ? "
                      "ORDER BY id", (sold["line_id"],)).fetchall() == cards_before
    assert all(c["revoked_at"] for c in cards_before) and the_pass["id"] in {c["id"] for c in cards_before}


async def test_a_storno_after_a_cancellation_to_the_season_end_still_revokes_and_a_mixed_patch_is_refused(api):
    hub, db = api.hub, api.hub.db
    sold, the_pass, _ = sell_ring(hub)
    url = f"/api/v1/subscriptions/{sold['id']}"
    mixed = await api.patch(url, json={"state": "paused", "effective": "now"}, headers=hub.headers())
    assert mixed.status in (400, 422), await mixed.text()
    assert (await api.patch(url, json={"state": "cancelled"}, headers=hub.headers())).status == 200
    assert cards.get_card(db, the_pass["id"])["revoked_at"] is None  # a Kündigung: valid to the season's end
    now = await api.patch(url, json={"state": "cancelled", "effective": "now"}, headers=hub.headers())
    assert now.status == 200 and (await now.json())["cancelled_at"]
    assert cards.get_card(db, the_pass["id"])["revoked_at"] is not None


@pytest.mark.parametrize("role", ["shop", "agency"])
async def test_a_shop_or_agency_token_may_not_cancel_a_subscription_now(api, role):
    hub, db = api.hub, api.hub.db
    sold, _, _ = sell_ring(hub)
    secret, _ = tokens.create_token(db, f"Fremd {role}", role)
    before = table_counts(db)
    response = await api.patch(f"/api/v1/subscriptions/{sold['id']}", json={"state": "cancelled", "effective": "now"},
                               headers={"Authorization": f"Bearer {secret}"})
    assert response.status == 403, await response.text()
    assert table_counts(db) == before
    assert db.execute("SELECT state, cancelled_at FROM subscriptions WHERE id = ?", (sold["id"],)).fetchone() == {
        "state": "active", "cancelled_at": None}


# --- the office: the action behind a confirmation page, in Chromium ------------------------------------


@pytest.mark.slow
def test_the_office_cancels_a_subscription_now_behind_a_confirmation_page_in_chromium(tmp_path):
    from playwright.sync_api import expect

    from hub.app import DB_NAME
    from tests.office import SHOTS, office_in_chromium

    for old in SHOTS.glob("storno-*.png"):
        old.unlink(missing_ok=True)
    with office_in_chromium(tmp_path) as served:
        page, url = served.page, served.hub.url
        db = connect(served.hub_dir / DB_NAME)
        try:
            parkett = db.execute("SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id WHERE "
                                 "s.plan_id = ? AND c.name = 'Parkett' AND s.row_label = '5' AND s.label = '7'",
                                 (served.ids["plans"]["Großes Haus"],)).fetchone()["id"]
            buyer = db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]
            sold = sell_subscription(db, this_node(db), sale(served.ids["subscriptions"]["Abo-Ring A"], buyer,
                                                             form="both", seat_ids=[parkett],
                                                             holder_name="Greta Wolf"),
                                     channel="phone", now=GENERAL)
            issue_subscription_cards(db, cards.load_signer(db, served.hub_dir), sold["id"], utcnow())
            live = db.execute("SELECT count(*) AS n FROM cards WHERE order_item_id = ? AND revoked_at IS NULL",
                              (sold["line_id"],)).fetchone()["n"]
            page.goto(f"{url}/office/subscriptions/{sold['id']}?lang=de")
            page.click("#storno")
            expect(page.locator("#confirm h1")).to_contain_text(f"Abonnement {sold['number']} sofort stornieren")
            expect(page.locator("#what")).to_contain_text(f"{live} Karten (Ausweis und Tickets) werden gesperrt")
            page.screenshot(path=SHOTS / "storno-1-confirm-de.png")
            page.click("#cancel")  # back: nothing happened
            expect(page.locator("#storno")).to_be_visible()
            assert db.execute("SELECT cancelled_at FROM subscriptions WHERE id = ?",
                              (sold["id"],)).fetchone()["cancelled_at"] is None
            page.goto(f"{url}/office/subscriptions/{sold['id']}?lang=en")
            page.click("#storno")
            expect(page.locator("#confirm h1")).to_contain_text(f"Cancel subscription {sold['number']} now")
            expect(page.locator("#what")).to_contain_text(f"{live} cards (pass and tickets) are revoked")
            page.screenshot(path=SHOTS / "storno-2-confirm-en.png")
            page.click("#confirm-storno")
            expect(page.locator("#stornoed")).to_contain_text("Cancelled with immediate effect on")
            expect(page.locator("#state")).to_contain_text("cancelled")
            page.screenshot(path=SHOTS / "storno-3-done-en.png")
            assert db.execute("SELECT count(*) AS n FROM cards WHERE order_item_id = ? AND revoked_at IS NULL",
                              (sold["line_id"],)).fetchone()["n"] == 0
            assert db.execute("SELECT cancelled_at FROM subscriptions WHERE id = ?",
                              (sold["id"],)).fetchone()["cancelled_at"]
        finally:
            db.close()
