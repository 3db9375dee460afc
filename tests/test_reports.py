"""Reports (S14): every list against figures computed by hand from a small dataset made through the
real services on a copy of the sample hub (three customers: a ring with notice given, a ring at the
student tier paid cash by an operator, a ring voided, a voucher subscription with one voucher
redeemed, three seats blocked); sort and filter by any column; the German and plain CSV checked
byte by byte; the XLSX opened (frozen pane, autofilter, formats); the PDF rendered and looked at;
hostile input refused with nothing changed; an agency token gets no personal data; the CLI.
The API over real HTTP on loopback."""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import msgspec
import pypdfium2 as pdfium
import pytest

from core.base.node import this_node
from core.cards.cards import load_signer
from core.sales import contingents
from core.subscriptions import records
from core.subscriptions import voucher_redemption as redeem
from core.subscriptions.passes import issue_subscription_cards
from core.subscriptions.sale import SubscriptionSaleIn, sell_subscription
from hub.app import make_app
from hub.services import tokens
from tests.conftest import prepared_sample_hub
from tests.helpers import table_counts

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "test-output" / "reports"
NOW = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)  # general sale of the sample's products (12:00 in Bremen)
RING_B, RING_A, VOUCHER = "Abo-Ring B", "Abo-Ring A", "Wahlgutschein 6er"


def _seat(db, plan_id: str, section: str, row: str, label: str) -> str:
    return db.execute("SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id WHERE s.plan_id = ? "
                      "AND c.name = ? AND s.row_label = ? AND s.label = ?", (plan_id, section, row, label)
                      ).fetchone()["id"]


def _sell(hub, name: str, customer: str, **kw) -> dict:
    db = hub.db
    body = msgspec.convert({"product_id": hub.ids["subscriptions"][name], "customer_id": customer,
                            "payment_method": "transfer", **kw}, SubscriptionSaleIn)
    sub = sell_subscription(db, this_node(db), body, channel="phone", now=NOW)
    issue_subscription_cards(db, load_signer(db, hub.dir), sub["id"], NOW)
    return sub


def build(hub) -> dict:
    """The dataset; what each step adds is in the comments, the tests add it up by hand."""
    db = hub.db
    house = hub.ids["plans"]["Großes Haus"]
    people = [r["id"] for r in db.execute("SELECT id FROM customers ORDER BY number LIMIT 3")]
    a, b, c = people
    student = db.execute("SELECT id FROM discount_tiers WHERE product_id = ? AND name = 'Schüler/Studierende'",
                         (hub.ids["subscriptions"][RING_B],)).fetchone()["id"]
    # A: ring B, Parkett 3/9 (zone I, 368,00 EUR), by transfer; notice given (runs to the season's end)
    sa = _sell(hub, RING_B, a, seat_ids=[_seat(db, house, "Parkett", "3", "9")])
    records.set_state(db, sa["id"], "cancelled", NOW)
    # B: ring B, Parkett 3/10 at the student tier (50 %: 184,00 EUR), cash, sold by operator Anna
    sb = _sell(hub, RING_B, b, seat_ids=[_seat(db, house, "Parkett", "3", "10")], tier_id=student,
               payment_method="cash", given_cents=20000, operator="Anna")
    # C: ring A, Parkett 3/11 (368,00 EUR), voided at once: its 8 tickets cancelled, cards revoked
    sc = _sell(hub, RING_A, c, seat_ids=[_seat(db, house, "Parkett", "3", "11")])
    records.cancel_now(db, load_signer(db, hub.dir), sc["id"], NOW, reason="Umzug")
    # B: six choice vouchers of 25,00 EUR for 120,00 EUR; voucher 1 redeemed for a studio seat in zone II
    # (19,00 EUR: 19,00 used, 6,00 lapse)
    sv = _sell(hub, VOUCHER, b)
    voucher = db.execute("SELECT * FROM choice_vouchers WHERE subscription_id = ? AND position = 1",
                         (sv["id"],)).fetchone()
    studio = db.execute("SELECT p.id FROM subscription_performances sp JOIN performances p ON p.id = sp.performance_id "
                        "WHERE sp.product_id = ? AND p.venue_id = (SELECT venue_id FROM seating_plans WHERE id = ?) "
                        "ORDER BY p.starts_at LIMIT 1", (voucher["product_id"], hub.ids["plans"]["Studio"])
                        ).fetchone()["id"]
    chair = _seat(db, hub.ids["plans"]["Studio"], "Saal", "8", "4")  # zone II
    request = msgspec.convert({"vouchers": [{"number": voucher["number"]}], "performance_id": studio,
                               "seat_id": chair}, redeem.RedemptionIn)
    redeemed = redeem.redeem(db, this_node(db), request, channel="phone", now=NOW)
    # three seats of ring B's first performance blocked
    first_b = hub.ids["rings"]["B"][0]
    blocked = [_seat(db, house, "Parkett", "20", str(n)) for n in (1, 2, 3)]
    contingents.move_seats(db, first_b, blocked, contingents.BLOCKED, NOW)
    number = {r["id"]: r["number"] for r in db.execute("SELECT id, number FROM customers")}
    return {"a": number[a], "b": number[b], "c": number[c], "sa": sa, "sb": sb, "sc": sc, "sv": sv,
            "voucher": voucher["number"], "studio": studio, "first_b": first_b, "redeemed": redeemed}


@pytest.fixture
def dataset_hub(request, tmp_path, backend):
    """A private copy of the sample hub with the dataset on it (built once per test process)."""
    hub, data = prepared_sample_hub(request, tmp_path, backend, "reports", build)
    hub.data = data
    return hub


@pytest.fixture
async def reports(aiohttp_client, dataset_hub):
    client = await aiohttp_client(make_app(dataset_hub.db))
    client.hub, client.data = dataset_hub, dataset_hub.data
    return client


async def rows(client, name: str, token: str | None = None, **params) -> dict:
    resp = await client.get(f"/api/v1/reports/{name}", params={"limit": "1000", **params},
                            headers=client.hub.headers(token))
    body = await resp.json()
    assert resp.status == 200, body
    return body


# --- every report against figures by hand ----------------------------------------------------------------


async def test_setup_lists_every_date_with_its_package_and_single_price_per_zone(reports):
    body = await rows(reports, "setup", filter=f"product={RING_A};zone=Preiskategorie I")
    # ring A: 8 performances; zone I: package 368,00, single ticket 58,00 (hub/sample.py)
    assert body["total"] == 8
    assert {(r["package_cents"], r["single_cents"], r["venue"]) for r in body["items"]} == {
        (36800, 5800, "Großes Haus")}
    # 3 rings x 8 dates x 4 zones + choice 8 x 2 + voucher 11 x 1 + combi 2 x 4 + 1 x 2
    assert (await rows(reports, "setup", limit="1"))["total"] == 96 + 16 + 11 + 10
    combi = await rows(reports, "setup", filter="kind=combi;zone=Preiskategorie II", sort="-package_cents")
    assert [r["package_cents"] for r in combi["items"]] == [4100, 4100, 1700]


async def test_revenue_per_ring_counts_notice_and_voided_apart(reports):
    body = await rows(reports, "revenue")
    by = {r["product"]: r for r in body["items"]}
    assert {k: by[RING_B][k] for k in ("sold", "active", "notice", "storno", "complimentary", "revenue_cents")} == \
        {"sold": 2, "active": 1, "notice": 1, "storno": 0, "complimentary": 0, "revenue_cents": 36800 + 18400}
    assert {k: by[RING_A][k] for k in ("sold", "storno", "revenue_cents")} == {"sold": 1, "storno": 1,
                                                                               "revenue_cents": 0}
    assert (by[VOUCHER]["sold"], by[VOUCHER]["revenue_cents"]) == (1, 12000)
    assert by["Abo-Ring C"]["sold"] == 0 and len(body["items"]) == 6
    top = await rows(reports, "revenue", sort="-revenue_cents", limit="2")
    assert [r["product"] for r in top["items"]] == [RING_B, VOUCHER]
    assert [r["product"] for r in (await rows(reports, "revenue", filter="revenue_cents>=120,00"))["items"]] == \
        [RING_B, VOUCHER]  # default sort: product


async def test_booking_list_has_every_sold_seat_and_no_voided_one(reports):
    d = reports.data
    body = await rows(reports, "bookings")
    # ring B: 8 dates x 2 subscribers; ring A voided (0); the voucher's studio ticket: 1
    assert body["total"] == 17
    # ring B opens on 27.09.2026; a ring ticket carries an eighth of the ring's price (368,00 / 8, 184,00 / 8)
    first = await rows(reports, "bookings", filter="starts_at=27.09.2026;venue=Großes Haus", sort="seat")
    assert [(r["seat_row"], r["seat"], r["customer_number"], r["price_cents"]) for r in first["items"]] == [
        ("3", "10", d["b"], 2300), ("3", "9", d["a"], 4600)]  # text sort: "10" before "9"
    studio = await rows(reports, "bookings", filter="venue=studio")
    assert [(r["sale"], r["seat_row"], r["seat"], r["customer_number"]) for r in studio["items"]] == [
        (studio["items"][0]["sale"], "8", "4", d["b"])]


async def test_subscribers_with_seats_and_one_customer_across_subscriptions(reports):
    d = reports.data
    subs = await rows(reports, "subscribers", sort="subscription")
    assert len(subs["items"]) == 4
    by = {r["subscription"]: r for r in subs["items"]}
    a = by[d["sa"]["number"]]
    assert (a["product"], a["state"], a["seats"], a["tickets"], a["price_cents"], a["customer_number"]) == (
        RING_B, "cancelled", "Parkett 3/9", 8, 36800, d["a"])
    b = by[d["sb"]["number"]]
    assert (b["tier"], b["seats"], b["price_cents"]) == ("Schüler/Studierende", "Parkett 3/10", 18400)
    assert by[d["sc"]["number"]]["tickets"] == 0  # voided: its tickets cancelled
    one = await rows(reports, "customer", filter=f"customer_number={d['b']}")
    assert sorted((r["product"], r["price_cents"], r["open_vouchers"]) for r in one["items"]) == [
        (RING_B, 18400, 0), (VOUCHER, 12000, 5)]
    assert {r["email"] != "" for r in one["items"]} == {True}


async def test_vouchers_redeemed_and_unredeemed(reports):
    d = reports.data
    body = await rows(reports, "vouchers")
    assert body["total"] == 6
    open_ = await rows(reports, "vouchers", filter="state=open")
    assert open_["total"] == 5 and {r["value_cents"] for r in open_["items"]} == {2500}
    used = await rows(reports, "vouchers", filter="state=redeemed")
    [row] = used["items"]
    assert (row["voucher"], row["used_cents"], row["lapsed_cents"], row["customer_number"]) == (
        d["voucher"], 1900, 600, d["b"])


async def test_stock_distribution_per_pool_adds_up_to_the_house(reports):
    db, d = reports.hub.db, reports.data
    from core.sales.contingents import seats_of
    house = len(seats_of(db, d["first_b"]))
    starts = db.execute("SELECT starts_at FROM performances WHERE id = ?", (d["first_b"],)).fetchone()["starts_at"]
    body = await rows(reports, "stock", filter=f"starts_at>={starts[:10]};starts_at<={starts[:10]};venue=Großes Haus")
    pools = {r["pool"]: (r["seats"], r["sold"], r["free"]) for r in body["items"]}
    assert pools == {"hub": (house - 3, 2, house - 5), "blocked": (3, 0, 3)}


async def test_unprinted_orders_and_day_closing_from_the_payment_rows(reports):
    db, d = reports.hub.db, reports.data
    unprinted = await rows(reports, "unprinted")
    by = {r["order_number"]: r for r in unprinted["items"]}
    order = {k: db.execute("SELECT number FROM orders WHERE id = ?", (d[k]["order_id"],)).fetchone()["number"]
             for k in ("sa", "sb", "sc", "sv")}
    # ring B as single tickets: 8 cards each, personalized and queued; the voided ring's are revoked
    assert (by[order["sa"]]["cards"], by[order["sa"]]["to_print"]) == (8, 8)
    assert by[order["sb"]]["cards"] == 8 and order["sc"] not in by
    closing = await rows(reports, "day-closing", filter="day=2026-06-01")
    got = {(r["operator"], r["method"], r["state"]): (r["sales"], r["total_cents"]) for r in closing["items"]}
    assert got[("Anna", "cash", "paid")] == (1, 18400)
    # two rings (A, C) and the vouchers by transfer: 368,00 + 368,00 + 120,00
    assert got[("-", "transfer", "pending")][1] + got.get(("-", "transfer", "refunded"), (0, 0))[1] >= 36800 + 12000


# --- sort and filter by any column; hostile input -------------------------------------------------------


async def test_every_column_of_every_report_sorts_both_ways(reports):
    resp = await reports.get("/api/v1/reports", headers=reports.hub.headers())
    listed = (await resp.json())["items"]
    assert {r["name"] for r in listed} == {"setup", "bookings", "subscribers", "revenue", "stock", "unprinted",
                                           "vouchers", "customer", "day-closing"}
    for report in listed:
        extra = {"filter": f"customer_number={reports.data['b']}"} if report["required_filters"] else {}
        for col in report["columns"]:
            for sort in (col["name"], "-" + col["name"]):
                body = await rows(reports, report["name"], sort=sort, **extra)
                values = [r[col["name"]] for r in body["items"] if r[col["name"]] is not None]
                key = (lambda v: v.casefold()) if col["kind"] == "text" else (lambda v: v)
                assert values == sorted(values, key=key, reverse=sort.startswith("-")), (report["name"], sort)


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/api/v1/reports/nope", {}, 404),
    ("/api/v1/reports/revenue", {"sort": "revenue_cents; DROP TABLE orders"}, 422),
    ("/api/v1/reports/revenue", {"sort": "id"}, 422),
    ("/api/v1/reports/revenue", {"filter": "product=x' OR 1=1 --"}, 200),
    ("/api/v1/reports/revenue", {"filter": "product) OR (1=1"}, 422),
    ("/api/v1/reports/revenue", {"filter": "sold~1"}, 422),
    ("/api/v1/reports/revenue", {"filter": "revenue_cents>=lots"}, 422),
    ("/api/v1/reports/stock", {"filter": "starts_at>=31.02.2026"}, 422),
    ("/api/v1/reports/revenue", {"limit": "1000000000000"}, 400),
    ("/api/v1/reports/revenue", {"limit": "5000"}, 400),
    ("/api/v1/reports/revenue", {"format": "docx"}, 400),
    ("/api/v1/reports/revenue", {"format": "csv", "lang": "fr"}, 400),
    ("/api/v1/reports/revenue", {"filter": ";".join(["sold=1"] * 11)}, 422),
    ("/api/v1/reports/revenue", {"filter": "x" * 2001}, 400),
    ("/api/v1/reports/customer", {}, 422),
    ("/api/v1/reports/revenue", {"bogus": "1"}, 400),
])
async def test_hostile_input_is_a_clear_4xx_and_changes_nothing(reports, path, params, status):
    before = table_counts(reports.hub.db)
    resp = await reports.get(path, params=params, headers=reports.hub.headers())
    body = await resp.json(content_type=None)
    assert resp.status == status, body
    if status != 200:
        assert resp.content_type == "application/problem+json" and body["detail"]
    else:
        assert body["items"] == []  # the quote is a value, bound as a parameter: no product has that name
    assert table_counts(reports.hub.db) == before


# --- roles: customer data only for those who may read customers -----------------------------------------


async def test_an_agency_token_gets_no_personal_data_and_a_shop_token_nothing(reports):
    db = reports.hub.db
    agency, _ = tokens.create_token(db, "Vorverkauf Nord", "agency")
    shop, _ = tokens.create_token(db, "Webshop", "shop")
    listed = await (await reports.get("/api/v1/reports", headers=reports.hub.headers(agency))).json()
    assert "customer" not in {r["name"] for r in listed["items"]}
    assert not any(c["personal"] for r in listed["items"] for c in r["columns"])
    body = await rows(reports, "bookings", token=agency)
    assert body["total"] == 17 and not {"customer", "customer_number"} & set(body["columns"])
    assert all("customer" not in row for row in body["items"])
    text = await (await reports.get("/api/v1/reports/subscribers", params={"format": "csv"},
                                    headers=reports.hub.headers(agency))).text()
    surnames = [r["last_name"] for r in db.execute("SELECT last_name FROM customers c WHERE EXISTS "
                                                   "(SELECT 1 FROM subscriptions s WHERE s.customer_id = c.id)")]
    assert surnames and not any(name in text for name in surnames) and "Parkett 3/9" in text
    for params in ({"filter": f"customer_number={reports.data['a']}"}, {"sort": "customer"}):
        resp = await reports.get("/api/v1/reports/bookings", params=params, headers=reports.hub.headers(agency))
        assert resp.status == 422  # a personal column is no column for this role: no probing by filter
    resp = await reports.get("/api/v1/reports/customer", params={"filter": f"customer_number={reports.data['a']}"},
                             headers=reports.hub.headers(agency))
    assert resp.status == 403
    resp = await reports.get("/api/v1/reports/revenue", headers=reports.hub.headers(shop))
    assert resp.status == 403
    resp = await reports.get("/api/v1/reports/revenue")
    assert resp.status == 401


def test_the_roles_that_see_personal_columns_are_those_that_read_customers():
    from hub.web import routes
    from hub.web.areas import reports as area
    api = routes.build()
    op, _ = api.find("GET", "/customers")
    assert set(op.roles) == set(area.CUSTOMER_READERS)


# --- files -----------------------------------------------------------------------------------------------


async def _file(client, name: str, fmt: str, **params) -> tuple[bytes, str]:
    resp = await client.get(f"/api/v1/reports/{name}", params={"format": fmt, **params},
                            headers=client.hub.headers())
    body = await resp.read()
    assert resp.status == 200, body[:300]
    assert f"tessera-{name}." in resp.headers["Content-Disposition"]
    return body, resp.headers["Content-Type"]


async def test_german_and_plain_csv_byte_by_byte(reports):
    german, kind = await _file(reports, "revenue", "csv-de", filter=f"product={RING_B}")
    assert kind.startswith("text/csv") and german.startswith(b"\xef\xbb\xbf")
    lines = german.decode("utf-8-sig").split("\r\n")
    assert lines[0] == "Saison;Abo;Art;Verkauft;Aktiv;Pausiert;Gekündigt;Storniert;Ehrenkarten;Umsatz"
    assert lines[1] == "2026/27;Abo-Ring B;ring;2;1;0;1;0;0;552,00" and lines[2] == ""
    plain, _ = await _file(reports, "revenue", "csv", filter=f"product={RING_B}", lang="en")
    assert plain == (b"Season,Subscription product,Kind,Sold,Active,Paused,Notice given,Voided,Complimentary,Revenue"
                     b"\r\n2026/27,Abo-Ring B,ring,2,1,0,1,0,0,552.00\r\n")
    stock_de, _ = await _file(reports, "stock", "csv-de", filter="pool=blocked")
    row = stock_de.decode("utf-8-sig").split("\r\n")[1].split(";")
    assert row[0] == "27.09.2026 18:00"  # 16:00 UTC in local time, German
    stock, _ = await _file(reports, "stock", "csv", filter="pool=blocked")
    assert list(csv.reader(io.StringIO(stock.decode())))[1][0].endswith("Z")  # ISO 8601 as stored


async def test_a_formula_in_a_customer_name_stays_text_in_csv(reports):
    db, d = reports.hub.db, reports.data
    db.execute("UPDATE customers SET last_name = '=HYPERLINK(\"http://x\")' WHERE number = ?", (d["a"],))
    german, _ = await _file(reports, "subscribers", "csv-de", filter=f"customer_number={d['a']}")
    assert "'=HYPERLINK" in german.decode("utf-8-sig")


async def test_xlsx_has_frozen_header_autofilter_money_and_date_formats(reports):
    body, kind = await _file(reports, "bookings", "xlsx")
    assert kind == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bookings.xlsx").write_bytes(body)
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        styles = z.read("xl/styles.xml").decode()
    assert '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>' in sheet
    assert '<autoFilter ref="A1:N18"/>' in sheet  # 14 columns, header + 17 rows
    assert 'formatCode="#,##0.00 &quot;€&quot;"' in styles and 'formatCode="dd.mm.yyyy hh:mm"' in styles
    assert '<col min="1" max="1" width=' in sheet


async def test_pdf_is_a4_landscape_with_page_numbers(reports):
    body, kind = await _file(reports, "bookings", "pdf", lang="de")
    assert kind == "application/pdf"
    OUT.mkdir(parents=True, exist_ok=True)
    pdf = pdfium.PdfDocument(body)
    page = pdf[0]
    width, height = page.get_size()
    assert width > height and round(width) == 842
    text = page.get_textpage().get_text_range()
    assert "Buchungsliste" in text and "Seite 1 von 1" in text and "Parkett" in text and "46,00 €" in text
    page.render(scale=1.5).to_pil().save(OUT / "bookings.png")


# --- the command line ------------------------------------------------------------------------------------


def test_cli_writes_a_report_and_refuses_an_unknown_column(dataset_hub, tmp_path):
    target = tmp_path / "revenue.xlsx"
    done = subprocess.run([sys.executable, "-m", "cli.main", "report", "revenue", "--data", str(dataset_hub.dir),
                           "--format", "xlsx", "--sort=-revenue_cents", "-o", str(target)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert zipfile.ZipFile(target).namelist() and "6 rows" in done.stderr
    done = subprocess.run([sys.executable, "-m", "cli.main", "report", "revenue", "--data", str(dataset_hub.dir),
                           "--filter", "product~ring", "--format", "csv"], capture_output=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0 and len(done.stdout.decode().strip().split("\r\n")) == 1 + 3
    done = subprocess.run([sys.executable, "-m", "cli.main", "report", "revenue", "--data", str(dataset_hub.dir),
                           "--sort", "nope"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1 and done.stderr.startswith("tessera: error: report revenue has no column 'nope'")
    assert "Traceback" not in done.stderr
