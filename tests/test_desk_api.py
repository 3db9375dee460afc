"""The cash desk's JSON API and screens (A4, A5, A8, E6) on a real edge data folder enrolled
against a real hub over loopback: operators and lockout, a sale of a personalized annual
card and a voucher paid cash (receipt and card really printed to the simulated folder
printers and read back), the counter exchanging the voucher, card lookup, reprint and lost
card, the day summary, and every screen in German and English."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp

from core.base.clock import utcnow
from core.base.storage import connect
from core.cards.access import Access, GateRules
from core.catalog import operators
from edge.desk.server import Edge
from edge.sync import enroll as enrolling
from hub.sync import enrollment

PIN = "4711"


async def enrolled_edge(hub, tmp_path: Path, role: str = "cashdesk", name: str = "Kasse 1",
                        desk_toml: str | None = None) -> Edge:
    """A node enrolled at the hub (one-time code, real HTTP), its catalog pulled, two operators."""
    folder = tmp_path / name.replace(" ", "-")
    code = enrollment.create_code(hub.db, name=name, role=role, venue_ids=[], now=utcnow())
    await enrolling.enroll(folder, code, [hub.url])
    if desk_toml is not None:
        (folder / "desk.toml").write_text(desk_toml)
    edge = Edge(folder)
    await edge.client.round()
    for who in ("Anna", "Ben"):
        operators.create(edge.db, operators.OperatorIn(name=who, pin=PIN), utcnow())
    return edge


@pytest.fixture
async def desk(hub, tmp_path, aiohttp_client):
    edge = await enrolled_edge(hub, tmp_path)
    client = await aiohttp_client(edge.app())
    client.edge = edge
    yield client
    await edge.close()


def operator_id(edge: Edge, name: str) -> str:
    return edge.db.execute("SELECT id FROM operators WHERE name = ?", (name,)).fetchone()["id"]


async def login(client, name: str = "Anna", pin: str = PIN) -> None:
    resp = await client.post("/api/login", json={"operator_id": operator_id(client.edge, name), "pin": pin})
    assert resp.status == 200, await resp.text()


async def expect(resp, status: int) -> dict:
    data = await resp.json(content_type=None)
    assert resp.status == status, data
    if status >= 400:
        assert resp.content_type == "application/problem+json" and data["detail"], data
    return data


def product(hub, n: int = 0) -> str:
    return hub.ids["annual_products"][n]


def sale_body(hub, holder: str = "Jürgen Müller-Weiß", given: int | None = 15000, vouchers: int = 1) -> dict:
    lines = [{"product_id": product(hub), "kind": "annual", "quantity": 1, "holders": [{"name": holder}]}]
    if vouchers:
        lines.append({"product_id": product(hub), "kind": "voucher", "quantity": vouchers})
    body = {"lines": lines, "payment_method": "cash"}
    if given is not None:
        body["given_cents"] = given
    return body


def files(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern)) if folder.exists() else []


def pdf_codes(path: Path) -> list[str]:
    doc = pdfium.PdfDocument(path.read_bytes())
    return [r.text for page in doc for r in zxingcpp.read_barcodes(page.render(scale=300 / 72).to_pil())
            if r.format == zxingcpp.BarcodeFormat.QRCode]


def venue_of(edge: Edge, product_id: str) -> str:
    return edge.db.execute("SELECT venue_id FROM annual_product_venues WHERE product_id = ? ORDER BY venue_id",
                           (product_id,)).fetchone()["venue_id"]


# --- login ---------------------------------------------------------------------------------------------------


async def test_login_wrong_pin_lockout_and_unauthenticated(desk):
    ops = await expect(await desk.get("/api/operators"), 200)
    assert [o["name"] for o in ops] == ["Anna", "Ben"] and set(ops[0]) == {"id", "name"}
    for path in ("/api/products", "/api/cards?q=x", "/api/print-jobs", "/api/summary", "/api/session"):
        problem = await expect(await desk.get(path), 401)
        assert problem["type"] == "urn:tessera:problem:unauthorized"
    await expect(await desk.post("/api/orders", json={}), 401)

    anna = operator_id(desk.edge, "Anna")
    for tries_left in (4, 3, 2, 1):
        problem = await expect(await desk.post("/api/login", json={"operator_id": anna, "pin": "0000"}), 401)
        assert problem["tries_left"] == tries_left and "wrong PIN" in problem["detail"]
        assert problem["detail_de"].startswith(f"Falsche PIN (noch {tries_left} Versuch")  # the cashier's language
    problem = await expect(await desk.post("/api/login", json={"operator_id": anna, "pin": "0000"}), 401)
    assert "locked" in problem["detail"] and problem["locked_until"] and "gesperrt" in problem["detail_de"]
    problem = await expect(await desk.post("/api/login", json={"operator_id": anna, "pin": PIN}), 401)
    assert "locked until" in problem["detail"] and "gesperrt bis" in problem["detail_de"]
    await expect(await desk.get("/api/session"), 401)

    resp = await desk.post("/api/login", json={"operator_id": operator_id(desk.edge, "Ben"), "pin": PIN})
    assert (await expect(resp, 200))["operator"]["name"] == "Ben"
    cookie = resp.cookies["tessera_desk"]
    assert cookie["httponly"] and cookie.value and len(cookie.value) >= 40
    assert (await expect(await desk.get("/api/session"), 200))["operator"]["name"] == "Ben"
    await expect(await desk.post("/api/logout", json={}), 200)
    await expect(await desk.get("/api/session"), 401)
    await expect(await desk.post("/api/login", json={"operator_id": "nobody", "pin": PIN}), 422)


# --- selling ---------------------------------------------------------------------------------------------------


async def test_sell_personalized_card_and_voucher_cash(desk, hub):
    edge = desk.edge
    await login(desk)
    products = await expect(await desk.get("/api/products"), 200)
    assert product(hub) in {p["id"] for p in products}
    assert all("cashdesk" in edge.db.execute("SELECT channels FROM annual_products WHERE id = ?",
                                             (p["id"],)).fetchone()["channels"] for p in products)
    seq_before = edge.db.execute("SELECT coalesce(max(node_seq), 0) AS n FROM outbox").fetchone()["n"]

    data = await expect(await desk.post("/api/orders", json=sale_body(hub)), 201)
    order = data["order"]
    assert order["operator"] == "Anna" and order["channel"] == "cashdesk" and order["total_cents"] == 13000
    assert data["change_cents"] == 2000
    # the receipt is printed before the answer; the card goes to the print worker
    assert data["receipt"]["state"] == "printed" and [o["state"] for o in data["printing"]] == ["printed", "queued"]
    annual, voucher = order["items"]
    assert annual["card"]["holder_name"] == "Jürgen Müller-Weiß" and annual["card"]["fulfilment"] == "personalized"
    assert [o.state for o in await edge.printing.print_queued()] == ["printed"]  # the worker's next round
    assert edge.db.execute("SELECT fulfilment FROM cards WHERE id = ?", (annual["card"]["id"],)).fetchone() == \
        {"fulfilment": "printed"}
    assert voucher["kind"] == "voucher" and voucher["card"]["kind"] == "voucher"

    stored = edge.db.execute("SELECT * FROM orders WHERE id = ?", (order["id"],)).fetchone()
    paid = edge.db.execute("SELECT * FROM payments WHERE order_id = ?", (order["id"],)).fetchall()
    assert stored["operator"] == "Anna" and [(p["method"], p["given_cents"], p["state"]) for p in paid] == \
        [("cash", 15000, "paid")]
    kinds = [r["kind"] for r in edge.db.execute("SELECT kind FROM outbox WHERE node_seq > ? ORDER BY node_seq",
                                                (seq_before,))]
    assert kinds.count("order.placed") == 1 and kinds.count("card.issued") == 2

    receipt = files(edge.data_dir / "var" / "printer-out", "*.escpos")
    assert len(receipt) == 1
    escpos = receipt[0].read_bytes()
    assert order["number"].encode() in escpos and b"130,00" in escpos and b"Bediener: Anna" in escpos
    assert b"GUTSCHEIN" in escpos and voucher["card"]["code"].encode() in escpos  # QR data (GS ( k)
    assert b"\x1d(k" in escpos

    pdfs = files(edge.data_dir / "var" / "card-out", "*.pdf")
    assert len(pdfs) == 1
    text = pdfium.PdfDocument(pdfs[0].read_bytes())[0].get_textpage().get_text_range()
    assert "Jürgen Müller-Weiß" in text and annual["card"]["number"] in text
    codes = pdf_codes(pdfs[0])
    assert codes == [annual["card"]["code"]]
    gate = Access(edge.db, GateRules(venue_id=venue_of(edge, product(hub))), edge.clock)
    verdict = gate.decide(codes[0])
    assert verdict.admitted, verdict.line()
    assert gate.decide(voucher["card"]["code"]).reason == "WRONG_VENUE"  # a voucher is no ticket

    # the hub gets the order with its operator, exactly once
    result = await edge.client.round()
    assert result.rejected == 0
    at_hub = hub.db.execute("SELECT * FROM orders WHERE id = ?", (order["id"],)).fetchone()
    assert at_hub["operator"] == "Anna" and at_hub["total_cents"] == 13000


async def test_card_payment_and_refusals(desk, hub):
    await login(desk, "Ben")
    body = sale_body(hub, given=None, vouchers=0)
    body.update(payment_method="card")
    problem = await expect(await desk.post("/api/orders", json=body), 422)
    assert problem["field"] == "payment_reference"
    body["payment_reference"] = "TID 4711-0815"
    data = await expect(await desk.post("/api/orders", json=body), 201)
    assert data["order"]["payment_method"] == "card" and data["change_cents"] == 0
    escpos = files(desk.edge.data_dir / "var" / "printer-out", "*.escpos")[0].read_bytes()
    assert b"TID 4711-0815" in escpos and b"Karte" in escpos
    # the operator comes from the login, never from the body
    problem = await expect(await desk.post("/api/orders", json={**sale_body(hub), "operator": "Mallory"}), 422)
    assert problem["field"] == "operator"
    problem = await expect(await desk.post("/api/orders", json={**sale_body(hub), "payment_method": "sepa"}), 422)
    assert problem["field"] == "payment_method"
    problem = await expect(await desk.post("/api/orders", json=sale_body(hub, given=100)), 422)
    assert problem["field"] == "given_cents"
    missing = sale_body(hub, vouchers=0)
    del missing["lines"][0]["holders"]
    await expect(await desk.post("/api/orders", json=missing), 422)
    await expect(await desk.post("/api/orders", data=b"{not json", headers={"Content-Type": "application/json"}), 400)
    assert desk.edge.db.execute("SELECT count(*) AS n FROM orders").fetchone()["n"] == 1


# --- the counter ----------------------------------------------------------------------------------------------


async def test_counter_exchanges_a_voucher_once(desk, hub, tmp_path, aiohttp_client):
    await login(desk)
    sold = await expect(await desk.post("/api/orders", json=sale_body(hub, vouchers=1)), 201)
    voucher = sold["order"]["items"][1]["card"]
    await desk.edge.client.round()  # the sale reaches the hub

    counter_edge = await enrolled_edge(hub, tmp_path, role="counter", name="Theke 1")
    try:
        counter = await aiohttp_client(counter_edge.app())
        counter.edge = counter_edge
        await expect(await counter.get(f"/api/vouchers/check?code={voucher['code']}"), 401)
        await login(counter, "Ben")
        check = await expect(await counter.get(f"/api/vouchers/check?code={voucher['code']}"), 200)
        assert check["voucher_id"] == voucher["id"] and check["product_id"] == product(hub)

        body = {"code": voucher["code"], "holder": {"name": "Erika Mustermann", "birth_date": "1980-02-29"}}
        made = await expect(await counter.post("/api/vouchers/redeem", json=body), 201)
        card = made["card"]
        assert card["holder_name"] == "Erika Mustermann" and card["fulfilment"] == "printed"
        assert [o["state"] for o in made["printing"]] == ["printed"]
        redemption = counter_edge.db.execute("SELECT * FROM voucher_redemptions").fetchone()
        assert redemption["operator"] == "Ben" and redemption["card_id"] == card["id"]
        pdfs = files(counter_edge.data_dir / "var" / "card-out", "*.pdf")
        assert len(pdfs) == 1 and pdf_codes(pdfs[0]) == [card["code"]]
        gate = Access(counter_edge.db, GateRules(venue_id=venue_of(counter_edge, product(hub))), counter_edge.clock)
        assert gate.decide(card["code"]).admitted

        handed = await expect(await counter.post(f"/api/cards/{card['id']}/handed-over", json={}), 200)
        assert handed["card"]["fulfilment"] == "handed_over"

        again = await expect(await counter.post("/api/vouchers/redeem", json=body), 409)
        assert "already exchanged" in again["detail"] and card["number"] in again["detail"]
        assert again["detail_de"].startswith("Gutschein wurde schon am") and card["number"] in again["detail_de"]
        await expect(await counter.get(f"/api/vouchers/check?code={voucher['code']}"), 409)
        # the spent voucher scanned in the card lookup is named as spent, not "ok" (before: "ok")
        looked = (await expect(await counter.get("/api/cards", params={"q": voucher["code"]}), 200))["scan"]
        assert (looked["level"], looked["reason"]) == ("refused", "REDEEMED")
        assert looked["message_de"].startswith("Gutschein wurde schon am") and card["number"] in looked["message_en"]
        truncated = await expect(await counter.post("/api/vouchers/redeem",
                                                    json={**body, "code": voucher["code"][:-7]}), 422)
        assert truncated["field"] == "code"
        last = voucher["code"][-1]
        forged = voucher["code"][:-1] + ("2" if last != "2" else "3")
        problem = await expect(await counter.post("/api/vouchers/redeem", json={**body, "code": forged}), 422)
        assert problem["field"] == "code"
        await expect(await counter.get(f"/api/vouchers/check?code={card['code']}"), 422)  # a card, not a voucher
        assert counter_edge.db.execute("SELECT count(*) AS n FROM voucher_redemptions").fetchone()["n"] == 1

        result = await counter_edge.client.round()
        assert result.rejected == 0
        assert hub.db.execute("SELECT card_id FROM voucher_redemptions WHERE voucher_id = ?",
                              (voucher["id"],)).fetchone()["card_id"] == card["id"]
    finally:
        await counter_edge.close()


# --- cards ----------------------------------------------------------------------------------------------------


async def test_lookup_reprint_and_replace_a_lost_card(desk, hub):
    edge = desk.edge
    await login(desk)
    sold = await expect(await desk.post("/api/orders", json=sale_body(hub, holder="Zoë Ölbaum", vouchers=0)), 201)
    card = sold["order"]["items"][0]["card"]
    await edge.printing.print_queued()  # the worker prints the card
    by_scan = (await expect(await desk.get("/api/cards", params={"q": card["code"]}), 200))["cards"]
    by_number = (await expect(await desk.get("/api/cards", params={"q": card["number"]}), 200))["cards"]
    by_name = (await expect(await desk.get("/api/cards", params={"q": "zoë"}), 200))["cards"]
    assert [c["id"] for c in by_scan] == [c["id"] for c in by_number] == [card["id"]]
    assert card["id"] in [c["id"] for c in by_name] and by_scan[0]["print_state"] == "printed"
    assert await expect(await desk.get("/api/cards", params={"q": "nobody-here"}), 200) == {"cards": [], "scan": None}

    again = await expect(await desk.post(f"/api/cards/{card['id']}/reprint", json={}), 201)
    assert [o["state"] for o in again["printing"]] == ["printed"] and again["card"]["issue"] == 1
    assert len(files(edge.data_dir / "var" / "card-out", "*.pdf")) == 2

    new = await expect(await desk.post(f"/api/cards/{card['id']}/replace", json={}), 201)
    assert new["card"]["issue"] == 2 and new["card"]["code"] != card["code"]
    assert new["card"]["fulfilment"] == "printed"
    newest = files(edge.data_dir / "var" / "card-out", "*.pdf")
    assert len(newest) == 3 and new["card"]["code"] in [c for p in newest for c in pdf_codes(p)]
    gate = Access(edge.db, GateRules(venue_id=venue_of(edge, product(hub))), edge.clock)
    assert gate.decide(card["code"]).reason == "SUPERSEDED"
    assert gate.decide(new["card"]["code"]).admitted
    await expect(await desk.post("/api/cards/0190a0a0-0000-7000-8000-000000000000/replace", json={}), 404)
    voucher = (await expect(await desk.post("/api/orders", json=sale_body(hub)), 201))["order"]["items"][1]["card"]
    await expect(await desk.post(f"/api/cards/{voucher['id']}/reprint", json={}), 409)


# --- summary and status ---------------------------------------------------------------------------------------


async def test_day_summary_per_operator_and_payment(desk, hub):
    await login(desk, "Anna")
    await expect(await desk.post("/api/orders", json=sale_body(hub, vouchers=0)), 201)
    await expect(await desk.post("/api/orders", json=sale_body(hub, vouchers=2, given=None)), 201)
    await desk.post("/api/logout", json={})
    await login(desk, "Ben")
    card_sale = {**sale_body(hub, given=None, vouchers=0), "payment_method": "card", "payment_reference": "T-1"}
    await expect(await desk.post("/api/orders", json=card_sale), 201)
    day = utcnow().astimezone(dt.timezone(dt.timedelta(hours=1))).date()
    summary = await expect(await desk.get("/api/summary"), 200)
    rows = {(r["operator"], r["payment_method"]): (r["sales"], r["total_cents"]) for r in summary["rows"]}
    assert rows == {("Anna", "cash"): (2, 6500 + 3 * 6500), ("Ben", "card"): (1, 6500)}
    assert summary["total_cents"] == 5 * 6500 and summary["by_method"] == {"cash": 26000, "card": 6500}
    assert summary["day"] in {day.isoformat(), (day - dt.timedelta(days=1)).isoformat(),
                              (day + dt.timedelta(days=1)).isoformat()}
    empty = await expect(await desk.get("/api/summary?day=2001-01-01"), 200)
    assert empty["rows"] == [] and empty["total_cents"] == 0
    await expect(await desk.get("/api/summary?day=yesterday"), 422)


async def test_status_keeps_its_fields_and_adds_printing(desk, hub):
    status = await expect(await desk.get("/api/status"), 200)
    for key in ("node_id", "name", "role", "online", "ops_waiting", "conflicts", "last_push_at", "clock"):
        assert key in status
    assert status["print_queue"] == {"queued": 0, "failed": 0} and status["printer_errors"] == {}
    assert status["operator"] is None and status["online"] is True and status["last_sync_at"]
    await login(desk)
    assert (await expect(await desk.get("/api/status"), 200))["operator"] == "Anna"


# --- screens ---------------------------------------------------------------------------------------------------

SCREENS = ("/sell", "/counter", "/cards", "/print-queue", "/summary")


async def test_screens_render_in_german_and_english(desk, hub):
    resp = await desk.get("/", allow_redirects=False)
    html = await resp.text()
    assert resp.status == 200 and 'id="status-bar"' in html and 'data-testid="operator-tile"' in html
    assert "Wer sind Sie?" in html and 'id="pin-key-0"' in html
    for path in SCREENS:
        resp = await desk.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/"
    await login(desk)
    await expect(await desk.post("/api/orders", json=sale_body(hub)), 201)
    expected = {"de": {"/sell": "Verkaufen", "/counter": "Karte erstellen", "/cards": "Nachdrucken",
                       "/print-queue": "Alles gedruckt.", "/summary": "Tagesabschluss"},
                "en": {"/sell": ">Sell<", "/counter": "Create card", "/cards": "Search",
                       "/print-queue": "Everything printed.", "/summary": "Day summary"}}
    for lang in ("de", "en"):
        for path in SCREENS:
            resp = await desk.get(path, params={"lang": lang})
            html = await resp.text()
            assert resp.status == 200 and resp.content_type == "text/html", path
            assert 'id="status-bar"' in html and 'id="status-online"' in html and "Kasse 1" in html
            assert "Anna" in html and f'<html lang="{lang}">' in html, path
            assert expected[lang][path] in html, (lang, path)
    assert "Jahreskarte Verbund" in await (await desk.get("/sell")).text()  # language kept by cookie: en
    assert '<html lang="en">' in await (await desk.get("/summary")).text()
    summary = await (await desk.get("/summary", params={"lang": "de"})).text()
    assert 'data-operator="Anna"' in summary and "130,00 €" in summary
    static = await desk.get("/static/desk.js")
    assert static.status == 200 and "initSell" in await static.text()
    assert (await desk.get("/static/desk.css")).status == 200


async def test_a_second_edge_database_sees_the_sale(desk, hub):
    """The desk commits before answering: another connection (another process) sees the order."""
    await login(desk)
    data = await expect(await desk.post("/api/orders", json=sale_body(hub)), 201)
    other = connect(desk.edge.data_dir / "node.sqlite", edge=True)
    try:
        assert other.execute("SELECT operator FROM orders WHERE id = ?", (data["order"]["id"],)).fetchone() \
            == {"operator": "Anna"}
    finally:
        other.close()


async def test_a_sale_can_name_its_customer_found_at_the_desk(desk, hub):
    """The optional customer: searched in the desk's replica with the hub's search rule, also
    after the hub renamed the customer (the replica's search index follows)."""
    edge = desk.edge
    await expect(await desk.get("/api/customers", params={"q": "Müller"}), 401)
    await login(desk)
    found = await expect(await desk.get("/api/customers", params={"q": "Müller"}), 200)
    assert found and all("Müller" in c["last_name"] for c in found) and "iban" not in found[0]
    assert await expect(await desk.get("/api/customers", params={"q": "M"}), 200) == []  # too short to search
    chosen = found[0]
    data = await expect(await desk.post("/api/orders", json={**sale_body(hub, vouchers=0),
                                                             "customer_id": chosen["id"]}), 201)
    assert data["order"]["customer_id"] == chosen["id"]
    assert data["order"]["items"][0]["card"]["id"] in \
        [r["id"] for r in edge.db.execute("SELECT id FROM cards WHERE customer_id = ?", (chosen["id"],))]
    unknown = {**sale_body(hub, vouchers=0), "customer_id": "01900000-0000-7000-8000-000000000000"}
    await expect(await desk.post("/api/orders", json=unknown), 404)

    # the office renames the customer at the hub; after a sync the desk finds the new name only
    hub.db.execute("UPDATE customers SET last_name = 'Quastenflosser', updated_at = updated_at WHERE id = ?",
                   (chosen["id"],))
    await edge.client.round()
    renamed = await expect(await desk.get("/api/customers", params={"q": "Quastenflosser"}), 200)
    assert [c["id"] for c in renamed] == [chosen["id"]]
    assert chosen["id"] not in [c["id"] for c in await expect(await desk.get("/api/customers",
                                                                             params={"q": chosen["last_name"]}), 200)]
    assert edge.db.execute("INSERT INTO customers_search(customers_search, rank) VALUES ('integrity-check', 1)")


async def test_with_the_hub_up_a_second_counter_is_refused_before_it_prints(desk, hub, tmp_path, aiohttp_client):
    """Two counters, both online, one voucher (a copy of the receipt at each counter, at the same
    moment): the second counter has not pulled the first one's exchange yet, but it asks the hub
    before printing, so only one card is ever printed."""
    await login(desk)
    sold = await expect(await desk.post("/api/orders", json=sale_body(hub, vouchers=1)), 201)
    voucher = sold["order"]["items"][1]["card"]
    await desk.edge.client.round()
    first_edge = await enrolled_edge(hub, tmp_path, role="counter", name="Theke A")
    second_edge = await enrolled_edge(hub, tmp_path, role="counter", name="Theke B")  # pulled before A exchanges
    try:
        first, second = (await aiohttp_client(first_edge.app()), await aiohttp_client(second_edge.app()))
        first.edge, second.edge = first_edge, second_edge
        await login(first, "Ben")
        await login(second, "Anna")
        body = {"code": voucher["code"], "holder": {"name": "Erika Mustermann"}}
        made = await expect(await first.post("/api/vouchers/redeem", json=body), 201)
        assert first_edge.db.execute("SELECT result FROM outbox WHERE kind = 'voucher.redeemed'").fetchone() == \
            {"result": "applied"}  # asked the hub before printing

        refused = await expect(await second.post("/api/vouchers/redeem", json={**body,
                                                                                "holder": {"name": "Eve Copy"}}), 409)
        assert "already exchanged" in refused["detail"] and made["card"]["number"] in refused["detail"]
        assert refused["detail_de"].startswith("Gutschein wurde bereits an einer anderen Theke")
        assert files(second_edge.data_dir / "var" / "card-out", "*.pdf") == []  # nothing printed
        assert second_edge.db.execute("SELECT count(*) AS n FROM print_jobs WHERE kind = 'card'").fetchone()["n"] == 0
        lost = second_edge.db.execute("SELECT * FROM cards WHERE holder_name = 'Eve Copy'").fetchone()
        assert lost["revoked_at"] and hub.db.execute("SELECT revoked_at FROM cards WHERE id = ?",
                                                     (lost["id"],)).fetchone()["revoked_at"]
        assert [r["card_id"] for r in hub.db.execute("SELECT card_id FROM voucher_redemptions")] == \
            [made["card"]["id"]]
        # after its next round the second counter knows the voucher is used and refuses it itself
        await second_edge.client.round()
        again = await expect(await second.post("/api/vouchers/redeem", json=body), 409)
        assert again["detail_de"].startswith("Gutschein wurde schon am")
        assert second_edge.db.execute("SELECT count(*) AS n FROM outbox WHERE kind = 'voucher.redeemed'"
                                      ).fetchone()["n"] == 1
    finally:
        await first_edge.close()
        await second_edge.close()
