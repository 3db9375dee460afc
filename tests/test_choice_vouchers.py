"""Choice vouchers (Wahlgutscheine, issue 15 part 1, S5/S10) at the hub: the phone sale of the sample's
"Wahlgutschein 6er" makes six signed vouchers with the buyer's tier; vouchers redeemed per ticket under
the value rule (two for a dearer ticket: the rest paid; one for a cheaper ticket: the rest lapses) and
the payment rule; refusals that change nothing; the shop redeems by code only, an agency not at all;
two racing redemptions of one voucher; the voucher's PDF with a QR that scans back to its code.
Real SQLite files (a copy of the sample hub), the real app over HTTP on loopback."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import msgspec
import pypdfium2 as pdfium
import pytest
import zxingcpp

from core.base.clock import parse_iso, utcnow
from core.base.errors import Conflict
from core.base.node import this_node
from core.cards import cardcode
from core.subscriptions import voucher_redemption as redeem
from hub.app import make_app, open_database
from hub.services import tokens
from hub.web.clock import CLOCK
from tests.helpers import table_counts
from tests.office import Clock
from tests.test_subscription_sale import product, tier

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "choice-vouchers"
VOUCHER = "Wahlgutschein 6er"
DISABLED = "Schwerbehinderte (GdB ab 50)"
PRICE = {"1": 5800, "2": 4600, "3": 3400, "4": 2200}  # the sample's house prices per zone
LEDGER = ("orders", "order_lines", "tickets", "payments", "choice_vouchers", "choice_voucher_redemptions")


class Client:
    """The hub over HTTP with a clock the test moves."""

    def __init__(self, http, hub, clock: Clock) -> None:
        self.http, self.hub, self.clock = http, hub, clock

    async def req(self, method: str, path: str, body=None, *, token: str | None = None, key: str | None = None,
                  params: dict | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token or self.hub.token}"}
        if key:
            headers["Idempotency-Key"] = key
        resp = await self.http.request(method, "/api/v1" + path, json=body, headers=headers, params=params)
        return resp.status, await resp.json(content_type=None)


@pytest.fixture
async def hub(aiohttp_client, sample_hub) -> Client:
    app = make_app(sample_hub.db)
    app[CLOCK] = Clock(utcnow())
    return Client(await aiohttp_client(app), sample_hub, app[CLOCK])


def counts(db) -> dict[str, int]:
    found = table_counts(db)
    return {t: found[t] for t in LEDGER}


def customer(db) -> str:
    return db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]


async def sell(hub: Client, tier_name: str | None = DISABLED, key: str = "v1") -> dict:
    db = hub.hub.db
    body = {"product_id": product(hub.hub, VOUCHER), "customer_id": customer(db), "payment_method": "transfer"}
    if tier_name:
        body["tier_id"] = tier(db, product(hub.hub, VOUCHER), tier_name)
    status, sold = await hub.req("POST", "/subscriptions", body, key=key)
    assert status == 201, sold
    status, listed = await hub.req("GET", f"/subscriptions/{sold['id']}/choice-vouchers")
    assert status == 200, listed
    return {"subscription": sold, "vouchers": listed["items"]}


def ahead(hub: Client) -> list[str]:
    """The offer's performances in the house (ring C) that have not begun, by date."""
    db = hub.hub.db
    rows = db.execute("SELECT p.id FROM subscription_performances sp JOIN performances p ON p.id = sp.performance_id "
                      "WHERE sp.product_id = ? AND p.starts_at > ? AND p.venue_id = (SELECT venue_id FROM "
                      "seating_plans WHERE id = ?) ORDER BY p.starts_at",
                      (product(hub.hub, VOUCHER), hub.clock().isoformat(), hub.hub.ids["plans"]["Großes Haus"]))
    return [r["id"] for r in rows]


def free_seats(db, performance_id: str, zone_id: str, count: int = 1) -> list[str]:
    """Free seats of the hub's pool in the zone, offered by the performance's variant."""
    rows = db.execute(
        "SELECT s.id FROM seats s JOIN performances p ON p.id = ? JOIN plan_variants v ON v.id = p.variant_id "
        "WHERE s.plan_id = v.plan_id AND s.zone_id = ? AND s.active = 1 AND (s.variant_id IS NULL OR "
        "s.variant_id = v.id) AND s.id NOT IN (SELECT seat_id FROM variant_removed_seats WHERE variant_id = v.id) "
        "AND s.id NOT IN (SELECT seat_id FROM tickets WHERE performance_id = p.id AND status = 'sold') "
        "AND s.id NOT IN (SELECT seat_id FROM seat_pools WHERE performance_id = p.id AND pool <> 'hub') "
        "AND s.wheelchair = 0 AND s.companion = 0 ORDER BY s.id LIMIT ?", (performance_id, zone_id, count))
    return [r["id"] for r in rows]


def free_seat(hub: Client, performance_id: str, zone_code: str) -> str:
    return free_seats(hub.hub.db, performance_id, hub.hub.ids["zones"][zone_code])[0]


def payments_of(db, order_id: str) -> list[tuple[str, int]]:
    return [(r["method"], r["amount_cents"]) for r in
            db.execute("SELECT method, amount_cents FROM payments WHERE order_id = ? ORDER BY created_at, method DESC, "
                       "amount_cents DESC", (order_id,))]


# --- the sale ------------------------------------------------------------------------------------------


async def test_a_phone_sale_makes_six_signed_vouchers_with_the_buyers_tier(hub):
    db = hub.hub.db
    before = counts(db)
    sold = await sell(hub)
    sub, vouchers = sold["subscription"], sold["vouchers"]
    assert sub["price_cents"] == 8400 and sub["order_total_cents"] == 8400  # 120 EUR less 30 % (S7)
    assert sub["seats"] == []
    after = counts(db)
    assert {t: after[t] - before[t] for t in LEDGER} == {"orders": 1, "order_lines": 1, "tickets": 0, "payments": 1,
                                                          "choice_vouchers": 6, "choice_voucher_redemptions": 0}
    assert [v["position"] for v in vouchers] == [1, 2, 3, 4, 5, 6]
    assert len({v["number"] for v in vouchers}) == 6 and all(v["number"].startswith("WG") for v in vouchers)
    season_end = parse_iso(vouchers[0]["valid_until"])
    assert season_end.astimezone(dt.timezone(dt.timedelta(hours=2))).date() == dt.date(2027, 7, 15)
    hub_key = this_node(db)["key_id"]
    for v in vouchers:
        assert (v["value_cents"], v["tier_name"], v["state"]) == (2500, DISABLED, "open")
        payload = cardcode.decode(v["code"]).payload
        assert (payload.kind, payload.card_id, payload.key_id) == ("choice_voucher", v["id"], hub_key)
    status, read = await hub.req("GET", "/choice-vouchers", params={"number": vouchers[2]["number"]})
    assert status == 200 and read["id"] == vouchers[2]["id"] and read["offer"] == vouchers[2]["offer"]
    status, read = await hub.req("GET", "/choice-vouchers", params={"code": vouchers[2]["code"].lower()})
    assert status == 200 and read["number"] == vouchers[2]["number"]


@pytest.mark.parametrize("role", ["shop", "agency"])
async def test_the_shop_and_agencies_sell_voucher_subscriptions_without_a_hold(hub, role):
    db = hub.hub.db
    secret, token = tokens.create_token(db, f"Verkauf {role}", role)
    prod = product(hub.hub, VOUCHER)
    pupil = tier(db, prod, "Schüler/Studierende")
    body = {"product_id": prod, "customer_id": customer(db), "tier_id": pupil, "delivery": "mail",
            "payment_reference": "ref-77"}
    before = counts(db)
    for bad in ({"hold_id": "00000000-0000-7000-8000-000000000000"}, {"tier_id": tier(db, prod, "Ehrenkarte")}):
        status, refused = await hub.req("POST", "/shop/subscription-orders", {**body, **bad}, token=secret,
                                        key=f"bad-{len(bad)}-{sorted(bad)[0]}")
        assert status in (404, 422), refused
    assert counts(db) == before
    status, sold = await hub.req("POST", "/shop/subscription-orders", body, token=secret, key="v-1")
    assert status == 201, sold
    assert sold["price_cents"] == 6000 and sold["channel"] == role  # 120 EUR less 50 %
    assert (sold["agency_token"] is not None) == (role == "agency")
    vouchers = db.execute("SELECT * FROM choice_vouchers WHERE subscription_id = ?", (sold["id"],)).fetchall()
    assert len(vouchers) == 6 and {v["tier_name"] for v in vouchers} == {"Schüler/Studierende"}


def test_a_counter_does_not_sell_voucher_subscriptions(sample_hub):
    """A cash desk sells them offline (tests/test_desk_voucher_sale.py); a counter does not: refused, nothing
    stored."""
    from core.base.errors import ValidationError
    from core.subscriptions.sale import SubscriptionSaleIn, sell_subscription
    db = sample_hub.db
    body = msgspec.convert({"product_id": product(sample_hub, VOUCHER), "customer_id": customer(db),
                            "payment_method": "cash"}, SubscriptionSaleIn)
    before = counts(db)
    with pytest.raises(ValidationError, match="a counter does not sell voucher subscriptions"):
        sell_subscription(db, this_node(db), body, channel="counter", now=utcnow())
    assert counts(db) == before


async def test_a_voucher_never_admits_at_a_gate(hub):
    from core.cards.access import Access, GateRules
    vouchers = (await sell(hub))["vouchers"]
    venue = hub.hub.db.execute("SELECT venue_id FROM performances WHERE id = ?", (ahead(hub)[0],)).fetchone()
    result = Access(hub.hub.db, GateRules(venue_id=venue["venue_id"])).decide(vouchers[0]["code"])
    assert not result.admitted and result.reason == "WRONG_VENUE"


# --- redemption ------------------------------------------------------------------------------------------


async def test_two_vouchers_pay_a_dearer_ticket_and_the_rest_is_paid(hub):
    db = hub.hub.db
    vouchers = (await sell(hub))["vouchers"]
    perf = ahead(hub)[0]
    body = {"vouchers": [{"code": vouchers[0]["code"]}, {"number": vouchers[1]["number"]}], "performance_id": perf,
            "seat_id": free_seat(hub, perf, "1"), "payment_method": "cash"}
    status, done = await hub.req("POST", "/voucher-redemptions", body)
    assert status == 201, done
    assert (done["total_cents"], done["used_cents"], done["paid_cents"], done["lapsed_cents"]) == (5800, 5000, 800, 0)
    assert done["ticket"]["discount_label"] == f"{DISABLED} – {VOUCHER}"
    assert payments_of(db, done["order_id"]) == [("voucher", 2500), ("voucher", 2500), ("cash", 800)]
    assert db.execute("SELECT total_cents, channel FROM orders WHERE id = ?", (done["order_id"],)).fetchone() == \
        {"total_cents": 5800, "channel": "phone"}
    ticket = db.execute("SELECT * FROM tickets WHERE id = ?", (done["ticket"]["id"],)).fetchone()
    assert (ticket["price_cents"], ticket["status"], ticket["seat_id"]) == (5800, "sold", body["seat_id"])
    for v in vouchers[:2]:
        status, read = await hub.req("GET", "/choice-vouchers", params={"number": v["number"]})
        assert read["state"] == "redeemed" and read["redemption"]["ticket_id"] == ticket["id"]
        assert read["redemption"]["discount_label"] == f"{DISABLED} – {VOUCHER}"


async def test_a_cheaper_ticket_lets_the_difference_lapse(hub):
    db = hub.hub.db
    vouchers = (await sell(hub))["vouchers"]
    perf = ahead(hub)[1]
    body = {"vouchers": [{"number": vouchers[0]["number"]}], "performance_id": perf,
            "seat_id": free_seat(hub, perf, "4")}
    status, done = await hub.req("POST", "/voucher-redemptions", body)
    assert status == 201, done
    assert (done["total_cents"], done["paid_cents"], done["lapsed_cents"]) == (2200, 0, 300)
    assert payments_of(db, done["order_id"]) == [("voucher", 2200)]  # nothing paid out, nothing else owed
    row = db.execute("SELECT * FROM choice_voucher_redemptions WHERE voucher_id = ?", (vouchers[0]["id"],)).fetchone()
    assert (row["rule"], row["value_cents"], row["used_cents"], row["lapsed_cents"]) == ("value", 2500, 2200, 300)


async def test_the_payment_rule_keeps_the_normal_price_and_no_discount_type(hub):
    db = hub.hub.db
    vouchers = (await sell(hub))["vouchers"]
    perf = ahead(hub)[0]
    body = {"vouchers": [{"number": vouchers[3]["number"]}], "performance_id": perf, "rule": "payment",
            "seat_id": free_seat(hub, perf, "2"), "payment_method": "card", "payment_reference": "T-991"}
    status, done = await hub.req("POST", "/voucher-redemptions", body)
    assert status == 201, done
    assert done["rule"] == "payment" and done["ticket"]["discount_label"] is None
    assert (done["total_cents"], done["used_cents"], done["paid_cents"]) == (4600, 2500, 2100)
    assert payments_of(db, done["order_id"]) == [("voucher", 2500), ("card", 2100)]


async def test_a_rest_without_a_payment_method_and_a_voucher_not_needed_are_refused(hub):
    db = hub.hub.db
    vouchers = (await sell(hub))["vouchers"]
    perf = ahead(hub)[0]
    before = counts(db)
    status, refused = await hub.req("POST", "/voucher-redemptions", {
        "vouchers": [{"number": vouchers[0]["number"]}], "performance_id": perf, "seat_id": free_seat(hub, perf, "1")})
    assert status == 422 and refused["field"] == "payment_method" and "zu zahlen" in refused["detail_de"]
    status, refused = await hub.req("POST", "/voucher-redemptions", {
        "vouchers": [{"number": v["number"]} for v in vouchers[:2]], "performance_id": perf,
        "seat_id": free_seat(hub, perf, "4")})
    assert status == 422 and "not needed" in refused["detail"] and "nicht gebraucht" in refused["detail_de"]
    assert counts(db) == before


# --- refusals change nothing -----------------------------------------------------------------------------


def forged(code: str) -> str:
    """The code with one symbol of its signature changed."""
    k = len(code) - 10
    return code[:k] + ("0" if code[k] != "0" else "1") + code[k + 1:]


@pytest.mark.parametrize("case", ["outside-offer", "expired", "used", "forged", "cancelled", "twice-named",
                                  "seat-sold", "malformed"])
async def test_refusals_change_nothing(hub, case):
    db = hub.hub.db
    sold = await sell(hub)
    vouchers = sold["vouchers"]
    perf = ahead(hub)[0]
    ref = {"number": vouchers[0]["number"]}
    seat_id = free_seat(hub, perf, "2")
    body = {"vouchers": [ref], "performance_id": perf, "seat_id": seat_id, "payment_method": "cash"}
    if case == "outside-offer":
        ring_a = hub.hub.ids["rings"]["A"]
        body["performance_id"] = next(p for p in ring_a if p not in vouchers[0]["offer"]
                                      and db.execute("SELECT starts_at FROM performances WHERE id = ?", (p,))
                                      .fetchone()["starts_at"] > hub.clock().isoformat())
    elif case == "expired":
        hub.clock.now = parse_iso(vouchers[0]["valid_until"]) + dt.timedelta(minutes=1)
    elif case == "used":
        status, _ = await hub.req("POST", "/voucher-redemptions", {**body, "seat_id": free_seat(hub, perf, "3")})
        assert status == 201
    elif case == "forged":
        body["vouchers"] = [{"code": forged(vouchers[0]["code"])}]
    elif case == "malformed":
        body["vouchers"] = [{"code": "NOT-A-CODE"}]
    elif case == "cancelled":
        status, _ = await hub.req("PATCH", f"/subscriptions/{sold['subscription']['id']}",
                                  {"state": "cancelled", "effective": "now"})
        assert status == 200
    elif case == "twice-named":
        body["vouchers"] = [ref, {"code": vouchers[0]["code"]}]
    elif case == "seat-sold":
        other = {**body, "vouchers": [{"number": vouchers[5]["number"]}]}
        status, _ = await hub.req("POST", "/voucher-redemptions", other)
        assert status == 201
    before = counts(db)
    status, refused = await hub.req("POST", "/voucher-redemptions", body)
    expected = {"outside-offer": (422, "nicht für diese Vorstellung"), "expired": (409, "abgelaufen"),
                "used": (409, "bereits am"), "forged": (422, "Gefälschter"), "cancelled": (409, "storniert"),
                "twice-named": (422, "doppelt"), "seat-sold": (409, "schon verkauft"),
                "malformed": (422, "kein Gutschein")}[case]
    assert status == expected[0], refused
    assert expected[1] in refused["detail_de"], refused
    assert counts(db) == before


# --- who may redeem --------------------------------------------------------------------------------------


async def test_the_shop_redeems_by_code_only_and_an_agency_not_at_all(hub):
    db = hub.hub.db
    shop, _ = tokens.create_token(db, "Webshop", "shop")
    agency, _ = tokens.create_token(db, "Vorverkauf", "agency")
    vouchers = (await sell(hub))["vouchers"]
    perf = ahead(hub)[0]
    body = {"vouchers": [{"number": vouchers[0]["number"]}], "performance_id": perf,
            "seat_id": free_seat(hub, perf, "4")}
    before = counts(db)
    status, refused = await hub.req("GET", "/choice-vouchers", params={"number": vouchers[0]["number"]}, token=shop)
    assert status == 403, refused
    status, refused = await hub.req("POST", "/voucher-redemptions", body, token=shop)
    assert status == 422 and "code" in refused["detail"], refused
    for path, kw in (("/choice-vouchers", {"params": {"code": vouchers[0]["code"]}}),
                     ("/voucher-redemptions", {"body": {**body, "vouchers": [{"code": vouchers[0]["code"]}]}})):
        status, _ = await hub.req("POST" if "body" in kw else "GET", path, kw.get("body"), params=kw.get("params"),
                                  token=agency)
        assert status == 403
    status, _ = await hub.req("GET", f"/subscriptions/{vouchers[0]['subscription_id']}/choice-vouchers", token=shop)
    assert status == 403
    assert counts(db) == before
    status, read = await hub.req("GET", "/choice-vouchers", params={"code": vouchers[0]["code"]}, token=shop)
    assert status == 200 and read["code"] is None and read["state"] == "open"
    dearer = {"vouchers": [{"code": vouchers[0]["code"]}], "performance_id": perf,
              "seat_id": free_seat(hub, perf, "1"), "payment_method": "cash"}
    status, refused = await hub.req("POST", "/voucher-redemptions", dearer, token=shop)
    assert status == 422 and refused["field"] == "payment_method"  # the shop pays the rest online
    status, done = await hub.req("POST", "/voucher-redemptions",
                                 {**dearer, "payment_method": "online", "payment_reference": "psp-1"}, token=shop)
    assert status == 201, done
    assert db.execute("SELECT channel FROM orders WHERE id = ?", (done["order_id"],)).fetchone()["channel"] == "shop"


# --- never twice -----------------------------------------------------------------------------------------


def test_two_racing_redemptions_of_one_voucher_exactly_one_wins(sample_hub):
    """Two threads, each with its own SQLite connection to the hub's file, redeem the same voucher for
    two different seats at the same moment: one ticket, one redemption; the other is a Conflict."""
    from core.cards.cards import load_signer
    from core.subscriptions.passes import issue_subscription_cards
    from core.subscriptions.sale import SubscriptionSaleIn, sell_subscription
    db, now = sample_hub.db, utcnow()
    body = msgspec.convert({"product_id": product(sample_hub, VOUCHER), "customer_id": customer(db),
                            "payment_method": "transfer"}, SubscriptionSaleIn)
    sub = sell_subscription(db, this_node(db), body, channel="phone", now=now)
    issue_subscription_cards(db, load_signer(db, sample_hub.dir), sub["id"], now)
    voucher = db.execute("SELECT * FROM choice_vouchers WHERE subscription_id = ? AND position = 1",
                         (sub["id"],)).fetchone()
    perf = db.execute("SELECT p.id FROM subscription_performances sp JOIN performances p ON p.id = sp.performance_id "
                      "WHERE sp.product_id = ? AND p.starts_at > ? AND p.venue_id = (SELECT venue_id FROM "
                      "seating_plans WHERE id = ?) ORDER BY p.starts_at LIMIT 1",
                      (voucher["product_id"], now.isoformat(), sample_hub.ids["plans"]["Großes Haus"])).fetchone()["id"]
    seats = free_seats(db, perf, sample_hub.ids["zones"]["2"], 2)
    gate, results = threading.Barrier(2), []

    def attempt(seat_id: str) -> None:
        conn = open_database(sample_hub.dir)
        request = msgspec.convert({"vouchers": [{"code": voucher["code"]}], "performance_id": perf,
                                   "seat_id": seat_id, "payment_method": "cash"}, redeem.RedemptionIn)
        gate.wait(timeout=30)
        try:
            results.append(redeem.redeem(conn, this_node(conn), request, channel="phone", now=now))
        except Conflict as exc:
            results.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=attempt, args=(s,)) for s in seats]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert len(won) == 1 and len(lost) == 1, results
    assert "already redeemed" in lost[0].detail or "meanwhile" in lost[0].detail
    assert db.execute("SELECT count(*) AS n FROM choice_voucher_redemptions WHERE voucher_id = ?",
                      (voucher["id"],)).fetchone()["n"] == 1
    assert db.execute("SELECT count(*) AS n FROM tickets WHERE performance_id = ? AND seat_id IN (?, ?) "
                      "AND status = 'sold'", (perf, *seats)).fetchone()["n"] == 1


# --- printing --------------------------------------------------------------------------------------------


async def test_a_voucher_prints_as_a_pdf_whose_qr_scans_back_to_its_code(hub):
    vouchers = (await sell(hub))["vouchers"]
    resp = await hub.http.get(f"/api/v1/choice-vouchers/{vouchers[0]['id']}/pdf", headers=hub.hub.headers())
    assert resp.status == 200 and resp.content_type == "application/pdf"
    pdf = await resp.read()
    document = pdfium.PdfDocument(pdf)
    assert len(document) == 1
    text = document[0].get_textpage().get_text_range()
    assert "WAHLGUTSCHEIN" in text and vouchers[0]["number"] in text and "25,00" in text and DISABLED in text
    image = document[0].render(scale=300 / 72).to_pil()
    SHOTS.mkdir(parents=True, exist_ok=True)
    image.save(SHOTS / "voucher.png")
    width, height = image.size
    assert image.crop((0, int(height * 0.78), width, height)).convert("L").getextrema()[0] < 100  # number printed
    found = [r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]
    assert found == [vouchers[0]["code"]]


# --- what replicates -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["cashdesk", "counter", "gate"])
async def test_desks_get_vouchers_and_redemptions_without_code_and_operator_and_gates_nothing(hub, tmp_path, role):
    """Through the real feed: a desk can refuse a used voucher offline (it has the redemption), but a
    stolen desk's copy holds no printable voucher code and no operator; a gate gets neither table."""
    from tests.test_scope import node_db, pull_all
    db = hub.hub.db
    vouchers = (await sell(hub))["vouchers"]
    perf = ahead(hub)[1]
    status, _ = await hub.req("POST", "/voucher-redemptions", {
        "vouchers": [{"number": vouchers[0]["number"]}], "performance_id": perf,
        "seat_id": free_seat(hub, perf, "4"), "operator": "Kasse Anna"})
    assert status == 201
    node = node_db(tmp_path / "node.sqlite", role)
    pull_all(db, node, role)
    got = node.execute("SELECT * FROM choice_vouchers ORDER BY position").fetchall()
    used = node.execute("SELECT * FROM choice_voucher_redemptions").fetchall()
    if role == "gate":
        assert got == [] and used == []
        return
    assert [v["number"] for v in got] == [v["number"] for v in vouchers]
    assert {v["code"] for v in got} == {None} and got[0]["state"] == "redeemed" and got[0]["tier_name"] == DISABLED
    assert [(r["voucher_id"], r["operator"], r["lapsed_cents"]) for r in used] == [(vouchers[0]["id"], None, 300)]
