"""The cash desk's subscription endpoints (issue 14) on a real cash desk enrolled against a real
hub over loopback: ring, choice and combi seats moved into the desk's pool at the hub and
pulled, then the hub stopped and everything sold offline from the desk's pool: products on sale
through the cashdesk channel, availability and seat map counting only this desk's pool, the
variant steps of "Abo-Ring A" (two plan variants), a quote, sales of a ring with a replacement
seat, a choice of N dates, a combi and a party of two, cash with change and card with the
terminal's reference; the receipt and the single tickets read back from the simulated receipt
printer (QR codes decoded from the printed raster with zxingcpp), passes printed by the simulated
card printer; hostile and wrong input refused with nothing changed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from core.base.clock import utcnow
from core.sales import contingents
from core.subscriptions import offers, ring_pools
from tests.helpers import table_counts
from tests.test_desk_api import enrolled_edge, expect, files, login, pdf_codes
from tests.test_subscription_sale import house, pit_and_parkett, product, seat, tier

# A simulated folder receipt printer that sends QR codes as raster images (not the printer's own
# GS ( k command), so the test can decode what was really printed.
IMAGE_QR_PRINTER = """kind = "printer"
model = "Simulated ESC/POS printer (folder, image QR)"
escpos_profile = "TM-T20II"

[paper]
width_mm = 80
columns = 48
codepage = "CP858"
native_qr = false

[connection]
type = "folder"
folder = "var/printer-out"
"""
LEDGER = ("orders", "order_lines", "payments", "subscriptions", "tickets", "cards", "print_jobs", "outbox")


class Seats:
    """The seats moved into the desk's pool at the hub, by purpose."""

    def __init__(self, hub) -> None:
        db = hub.db
        self.pit, self.parkett = pit_and_parkett(hub)
        plan = house(hub)
        self.ring_a = [self.pit["id"], self.parkett["id"], seat(db, plan, "Parkett", "3", "10")["id"],
                       seat(db, plan, "Parkett", "3", "11")["id"], seat(db, plan, "Parkett", "3", "12")["id"]]
        studio = hub.ids["plans"]["Studio"]
        self.choice = [seat(db, studio, "Saal", "2", str(n))["id"] for n in (5, 6)]
        self.combi_house = seat(db, plan, "Parkett", "4", "9")["id"]
        self.combi_studio = seat(db, studio, "Saal", "3", "5")["id"]


def move_into(hub, node_id: str) -> Seats:
    seats = Seats(hub)
    pool = contingents.node_pool(node_id)
    ring_pools.move_ring_seats(hub.db, product(hub, "Abo-Ring A"), seats.ring_a, pool, utcnow())
    ring_pools.move_ring_seats(hub.db, product(hub, "Wahl-Abo Studio 5 aus 8"), seats.choice, pool, utcnow())
    ring_pools.move_ring_seats(hub.db, product(hub, "Kombi-Ticket Klassiker"),
                               [seats.combi_house, seats.combi_studio], pool, utcnow())
    return seats


async def offline_desk(hub, tmp_path, aiohttp_client, printer: str = IMAGE_QR_PRINTER):
    """A logged-in cash desk with ring, choice and combi seats in its pool, the hub stopped."""
    (tmp_path / "receipt-printer.toml").write_text(printer)
    edge = await enrolled_edge(hub, tmp_path,
                               desk_toml=f'[printers]\nreceipt = "{tmp_path / "receipt-printer.toml"}"\n')
    edge.seats = move_into(hub, edge.node["id"])
    await edge.client.round()
    await hub.server.close()  # from here on the desk is offline
    client = await aiohttp_client(edge.app())
    client.edge = edge
    await login(client)
    return client


@pytest.fixture
async def desk(hub, tmp_path, aiohttp_client):
    client = await offline_desk(hub, tmp_path, aiohttp_client)
    yield client
    await client.edge.close()


def ledger(edge) -> dict[str, int]:
    counts = table_counts(edge.db)
    return {t: counts[t] for t in LEDGER}


def states(svg: str) -> dict[str, str]:
    return dict(re.findall(r'data-seat-id="([^"]+)"[^>]*data-state="([^"]+)"', svg))


def escpos_qr_codes(data: bytes) -> list[str]:
    """The QR codes of every raster image (GS v 0) in ESC/POS bytes, decoded with zxingcpp."""
    codes, at = [], 0
    while (at := data.find(b"\x1dv0", at)) >= 0:
        width, height = data[at + 4] + 256 * data[at + 5], data[at + 6] + 256 * data[at + 7]
        raster = data[at + 8: at + 8 + width * height]
        image = Image.frombytes("1", (width * 8, height), bytes(b ^ 0xFF for b in raster)).convert("L")
        border = Image.new("L", (image.width + 40, image.height + 40), 255)
        border.paste(image, (20, 20))
        codes += [r.text for r in zxingcpp.read_barcodes(border) if r.format == zxingcpp.BarcodeFormat.QRCode]
        at += 8 + width * height
    return codes


def receipts(edge) -> list[Path]:
    return files(edge.data_dir / "var" / "printer-out", "*.escpos")


def lead_and_other(edge, ring: str = "Abo-Ring A") -> tuple[str, str]:
    """The ring's lead variant (its first date's) and its other one."""
    ids = product_perfs(edge, ring)
    by_id = {p["id"]: p["variant_id"] for p in edge.db.execute("SELECT id, variant_id FROM performances")}
    lead = by_id[ids[0]]
    return lead, next(by_id[p] for p in ids if by_id[p] != lead)


def product_perfs(edge, name: str) -> list[str]:
    return list(offers.product(edge.db, product_id(edge, name))["performance_ids"])


def product_id(edge, name: str) -> str:
    return edge.db.execute("SELECT id FROM subscription_products WHERE name = ?", (name,)).fetchone()["id"]


def customer(edge) -> str:
    return edge.db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]


# --- reading -------------------------------------------------------------------------------------------


async def test_products_on_sale_at_the_desk_and_free_seats_count_only_its_pool(desk):
    edge = desk.edge
    data = await expect(await desk.get("/api/subscription-products"), 200)
    by_name = {p["name"]: p for p in data["products"]}
    assert set(by_name) == {"Abo-Ring A", "Abo-Ring B", "Abo-Ring C", "Wahl-Abo Studio 5 aus 8",
                            "Kombi-Ticket Klassiker", "Wahlgutschein 6er"}  # vouchers: test_desk_voucher_sale.py
    ring = by_name["Abo-Ring A"]
    assert ring["kind"] == "ring" and ring["forms"] == ["pass", "single_tickets", "both"]
    assert len(ring["performances"]) == 8 and {"venue_name", "variant_id", "plan_id"} <= set(ring["performances"][0])
    assert [t["name"] for t in ring["tiers"]][:2] == ["Schüler/Studierende", "Schwerbehinderte (GdB ab 50)"]
    assert {z["price_cents"] for z in ring["zones"]} == {36800, 29400, 21600, 14000}
    # five ring seats are the desk's, but the pit seat exists only where the pit is covered; the first
    # date (the lead variant) is an opera with the pit open: four seats may be picked there
    lead, _ = lead_and_other(edge)
    assert edge.seats.pit["variant_id"] != lead and ring["free_in_pool"] == 4
    assert by_name["Abo-Ring B"]["free_in_pool"] == 0  # nothing of ring B is this desk's
    assert by_name["Wahl-Abo Studio 5 aus 8"]["free_in_pool"] == 2
    assert by_name["Wahl-Abo Studio 5 aus 8"]["forms"] == ["single_tickets"]
    assert by_name["Kombi-Ticket Klassiker"]["zones"] is None and by_name["Kombi-Ticket Klassiker"]["free_in_pool"] == 1

    # a product whose cashdesk window is closed is not listed (only the online one open)
    edge.db.execute("DELETE FROM sale_windows WHERE channel = 'cashdesk' AND product_id = ?",
                    (product_id(edge, "Abo-Ring C"),))
    data = await expect(await desk.get("/api/subscription-products"), 200)
    assert "Abo-Ring C" not in {p["name"] for p in data["products"]}

    avail = await expect(await desk.get(f"/api/subscription-products/{ring['id']}/availability"), 200)
    (group,) = avail["groups"]
    free = {s for v in group["variants"] for s in v["free_seat_ids"]}
    assert free <= set(edge.seats.ring_a) and edge.seats.parkett["id"] in free  # only the desk's pool


async def test_seat_map_shows_the_pool_and_variant_steps_for_the_pit_seat(desk):
    edge, seats = desk.edge, desk.edge.seats
    ring = product_id(edge, "Abo-Ring A")
    lead, other = lead_and_other(edge)
    resp = await desk.get(f"/api/subscription-products/{ring}/seat-map.svg?selected={seats.ring_a[2]}")
    assert resp.status == 200 and resp.content_type == "image/svg+xml"
    svg = await resp.text()
    assert "<script" not in svg
    got = states(svg)
    assert got[seats.parkett["id"]] == "free" and got[seats.ring_a[2]] == "selected"
    assert got[seat(edge.db, house_of(edge), "Parkett", "7", "7")["id"]] == "other_pool"  # the hub's
    pit_variant = seats.pit["variant_id"]
    assert pit_variant in (lead, other)
    svg = await (await desk.get(f"/api/subscription-products/{ring}/seat-map.svg?variant_id={pit_variant}")).text()
    assert states(svg)[seats.pit["id"]] == "free"

    data = await expect(await desk.get(f"/api/subscription-products/{ring}/variant-steps?seat_ids="
                                       f"{seats.pit['id']}"), 200)
    (step,) = data["steps"]
    assert step["missing_seat_id"] == seats.pit["id"]
    assert step["variant_id"] != pit_variant and set(step["free_seat_ids"]) <= set(seats.ring_a)
    assert step["suggestion"] in step["free_seat_ids"]


def house_of(edge) -> str:
    return edge.db.execute("SELECT id FROM seating_plans WHERE name = 'Großes Haus'").fetchone()["id"]


# --- selling -------------------------------------------------------------------------------------------


async def test_ring_with_a_replacement_cash_with_change_receipt_and_ticket_slips_printed(desk):
    edge, seats = desk.edge, desk.edge.seats
    ring = product_id(edge, "Abo-Ring A")
    step = (await expect(await desk.get(f"/api/subscription-products/{ring}/variant-steps?seat_ids="
                                        f"{seats.pit['id']}"), 200))["steps"][0]
    student = tier(edge.db, ring, "Schüler/Studierende")
    body = {"product_id": ring, "customer_id": customer(edge), "seat_ids": [seats.pit["id"]], "tier_id": student,
            "replacements": [{"variant_id": step["variant_id"], "seat_id": seats.parkett["id"]}],
            "form": "single_tickets", "holder_name": "Greta Wolf", "payment_method": "cash"}
    quote = await expect(await desk.post("/api/subscription-quote", json=body), 200)
    assert quote == {"total_cents": 18400, "members": [{"price_cents": 18400, "zone_id": seats.pit["zone_id"]}]}
    before = ledger(edge)
    sold = await expect(await desk.post("/api/subscriptions", json={**body, "given_cents": 20000}), 201)
    assert sold["order"]["total_cents"] == 18400 and sold["change_cents"] == 1600
    (sub,) = sold["subscriptions"]
    assert sub["form"] == "single_tickets" and sub["holder_name"] == "Greta Wolf" and sub["tier_id"] == student
    assert len(sub["tickets"]) == 8 and {t["seat_id"] for t in sub["tickets"]} == {seats.pit["id"],
                                                                                      seats.parkett["id"]}
    assert all(re.fullmatch(r".+, Reihe \w+, Platz \w+", t["seat"]) for t in sub["tickets"])
    assert sold["receipt"]["state"] == "printed"
    assert [o["state"] for o in sold["printing"]] == ["printed"] * 9  # the receipt and 8 ticket slips
    after = ledger(edge)
    assert {k: after[k] - before[k] for k in ("orders", "subscriptions", "tickets", "cards", "payments")} == \
        {"orders": 1, "subscriptions": 1, "tickets": 8, "cards": 8, "payments": 1}
    (op,) = edge.db.execute("SELECT body FROM outbox WHERE kind = 'subscription.sold'").fetchall()  # for the hub
    assert '"given_cents":20000' in op["body"] and sold["order"]["id"] in op["body"]
    printed = b"".join(p.read_bytes() for p in receipts(edge))
    assert sold["order"]["number"].encode() in printed and b"184,00" in printed and b"16,00" in printed
    assert b"Greta Wolf" in printed and sub["number"].encode() in printed
    codes = edge.db.execute("SELECT code FROM cards WHERE kind = 'single' AND order_item_id = "
                            "(SELECT line_id FROM subscriptions WHERE id = ?)", (sub["id"],)).fetchall()
    assert sorted(escpos_qr_codes(printed)) == sorted(c["code"] for c in codes)
    assert edge.db.execute("SELECT count(*) AS n FROM cards WHERE fulfilment = 'printed' AND kind = 'single'"
                           ).fetchone()["n"] == 8
    # taken now in every date, on the map too
    svg = await (await desk.get(f"/api/subscription-products/{ring}/seat-map.svg")).text()
    assert states(svg)[seats.parkett["id"]] == "taken"


async def test_a_pass_is_queued_to_and_printed_by_the_card_printer_card_payment(desk):
    edge, seats = desk.edge, desk.edge.seats
    ring = product_id(edge, "Abo-Ring A")
    body = {"product_id": ring, "customer_id": customer(edge), "seat_ids": [seats.ring_a[2]], "form": "pass",
            "payment_method": "card", "payment_reference": "TID 4711-0815"}
    sold = await expect(await desk.post("/api/subscriptions", json=body), 201)
    assert sold["change_cents"] is None and sold["order"]["total_cents"] == 36800
    assert [o["state"] for o in sold["printing"]] == ["printed", "queued"]
    the_pass = edge.db.execute("SELECT * FROM cards WHERE kind = 'subscription'").fetchone()
    assert the_pass["fulfilment"] == "personalized" and files(edge.data_dir / "var" / "card-out", "*.pdf") == []
    assert [(o.kind, o.state) for o in await edge.printing.print_queued()] == [("card", "printed")]  # the worker
    (pdf,) = files(edge.data_dir / "var" / "card-out", "*.pdf")
    assert pdf_codes(pdf) == [the_pass["code"]]
    assert edge.db.execute("SELECT fulfilment FROM cards WHERE id = ?", (the_pass["id"],)).fetchone()["fulfilment"] \
        == "printed"
    printed = receipts(edge)[0].read_bytes()
    assert b"TID 4711-0815" in printed and b"Karte" in printed
    # a pass the printer spoiled is printed again from the card lookup, as an annual card is
    again = await expect(await desk.post(f"/api/cards/{the_pass['id']}/reprint", json={}), 201)
    assert [(o["kind"], o["state"]) for o in again["printing"]] == [("card", "printed")]
    assert [pdf_codes(p) for p in files(edge.data_dir / "var" / "card-out", "*.pdf")] == [[the_pass["code"]]] * 2


async def test_choice_of_five_dates_combi_and_a_party_of_two(desk):
    edge, seats = desk.edge, desk.edge.seats
    choice = product_id(edge, "Wahl-Abo Studio 5 aus 8")
    dates = product_perfs(edge, "Wahl-Abo Studio 5 aus 8")[1:6]
    chosen = ",".join(dates)
    avail = await expect(await desk.get(f"/api/subscription-products/{choice}/availability?performance_ids={chosen}"),
                         200)
    assert {s for g in avail["groups"] for v in g["variants"] for s in v["free_seat_ids"]} == set(seats.choice)
    party = {"product_id": choice, "customer_id": customer(edge), "performance_ids": dates, "payment_method": "cash",
             "members": [{"seat_ids": [seats.choice[0]], "holder_name": "Ada"},
                         {"seat_ids": [seats.choice[1]], "holder_name": "Bo",
                          "tier_id": tier(edge.db, choice, "Schüler/Studierende")}]}
    quote = await expect(await desk.post("/api/subscription-quote", json=party), 200)
    assert [m["price_cents"] for m in quote["members"]] == [10000, 5000] and quote["total_cents"] == 15000
    sold = await expect(await desk.post("/api/subscriptions", json={**party, "given_cents": 15000}), 201)
    assert sold["change_cents"] == 0 and [s["holder_name"] for s in sold["subscriptions"]] == ["Ada", "Bo"]
    assert all(len(s["tickets"]) == 5 for s in sold["subscriptions"])
    assert len(sold["printing"]) == 1 + 10  # the receipt, 5 tickets each

    combi = product_id(edge, "Kombi-Ticket Klassiker")
    perfs = product_perfs(edge, "Kombi-Ticket Klassiker")
    studio = perfs[2]
    body = {"product_id": combi, "customer_id": customer(edge), "payment_method": "card", "payment_reference": "T-1",
            "seats": [{"performance_id": p, "seat_id": seats.combi_studio if p == studio else seats.combi_house}
                      for p in perfs]}
    quote = await expect(await desk.post("/api/subscription-quote", json=body), 200)
    sold = await expect(await desk.post("/api/subscriptions", json=body), 201)
    assert sold["order"]["total_cents"] == quote["total_cents"] > 0 and len(sold["subscriptions"][0]["tickets"]) == 3
    svg = await (await desk.get(f"/api/subscription-products/{combi}/seat-map.svg?performance_ids={studio}")).text()
    assert states(svg)[seats.combi_studio] == "taken"
    data = await expect(await desk.get("/api/subscription-products"), 200)
    assert {p["name"]: p["free_in_pool"] for p in data["products"]}["Kombi-Ticket Klassiker"] == 0


async def test_a_receipt_printer_fault_keeps_the_sale_and_a_retry_prints_each_ticket(hub, tmp_path, aiohttp_client):
    blocker = tmp_path / "share"  # a file where the printer's folder should be: every write fails
    blocker.write_text("not a folder")
    missing = blocker / "printer-out"
    desk = await offline_desk(hub, tmp_path, aiohttp_client,
                              IMAGE_QR_PRINTER.replace('"var/printer-out"', f'"{missing}"'))
    edge = desk.edge
    try:
        body = {"product_id": product_id(edge, "Abo-Ring A"), "customer_id": customer(edge), "form": "single_tickets",
                "seat_ids": [edge.seats.ring_a[4]], "payment_method": "cash", "given_cents": 40000}
        before = ledger(edge)
        sold = await expect(await desk.post("/api/subscriptions", json=body), 201)  # the sale stands
        assert [o["state"] for o in sold["printing"]] == ["failed"] * 9 and sold["receipt"]["error"]
        assert ledger(edge)["subscriptions"] == before["subscriptions"] + 1
        assert (await expect(await desk.get("/api/status"), 200))["printer_errors"]["receipt"]
        blocker.unlink()  # the printer is back
        retried = await expect(await desk.post("/api/print-jobs/retry", json={}), 200)
        assert [o["state"] for o in retried["printing"]] == ["printed"] * 9 and retried["counts"]["failed"] == 0
        printed = b"".join(p.read_bytes() for p in files(missing, "*.escpos"))
        codes = [c["code"] for c in edge.db.execute("SELECT code FROM cards WHERE kind = 'single'")]
        assert sorted(escpos_qr_codes(printed)) == sorted(codes) and len(codes) == 8
    finally:
        await edge.close()


# --- refusals ------------------------------------------------------------------------------------------


async def test_refusals_change_nothing(desk, hub, tmp_path, aiohttp_client):
    edge, seats = desk.edge, desk.edge.seats
    ring = product_id(edge, "Abo-Ring A")
    good = {"product_id": ring, "customer_id": customer(edge), "seat_ids": [seats.ring_a[3]], "payment_method": "cash"}
    before = ledger(edge)

    async def refused(status: int, body: dict, path: str = "/api/subscriptions") -> dict:
        problem = await expect(await desk.post(path, json=body), status)
        assert ledger(edge) == before, problem
        return problem

    other = seat(edge.db, house_of(edge), "Parkett", "7", "7")["id"]  # the hub's pool
    assert "Parkett row 7 seat 7" in (await refused(409, {**good, "seat_ids": [other]}))["detail"]
    await refused(409, {**good, "seat_ids": [other]}, "/api/subscription-quote")
    await refused(422, {**good, "seat_ids": [seats.ring_a[3], seats.ring_a[3]]})  # a seat twice
    await refused(422, {**good, "members": [{"seat_ids": [seats.ring_a[3]]}, {"seat_ids": [seats.ring_a[3]]}],
                        "seat_ids": []})
    assert (await refused(422, {**good, "given_cents": 100}))["field"] == "given_cents"  # too little
    await refused(422, {**good, "payment_method": "card", "given_cents": 40000})
    await refused(422, {**good, "payment_method": "card"})  # no terminal reference
    await refused(422, {**good, "price_cents": 1})  # a forged price: unknown field
    await refused(422, {**good, "operator": "Mallory"})
    await refused(422, {**good, "delivery": "mail"})
    await refused(422, {**good, "product_id": "not-an-id"})
    await refused(404, {**good, "customer_id": "0190a0a0-0000-7000-8000-000000000000"})
    resp = await desk.post("/api/subscriptions", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400 and ledger(edge) == before
    for path in ("/api/subscription-products/nope/availability", "/api/subscription-products/nope/seat-map.svg",
                 f"/api/subscription-products/{ring}/variant-steps?seat_ids=x,y",
                 f"/api/subscription-products/{ring}/seat-map.svg?selected=1;drop",
                 f"/api/subscription-products/{ring}/seat-map.svg?lang=fr"):
        await expect(await desk.get(path), 400)
    assert ledger(edge) == before

    await desk.post("/api/logout", json={})
    for method, path in (("GET", "/api/subscription-products"), ("POST", "/api/subscriptions"),
                         ("POST", "/api/subscription-quote"),
                         ("GET", f"/api/subscription-products/{ring}/seat-map.svg")):
        await expect(await desk.request(method, path, json=good if method == "POST" else None), 401)
    assert ledger(edge) == before


@pytest.mark.parametrize("role", ["counter", "gate"])
async def test_a_counter_or_gate_may_not_sell_subscriptions(sample_hub, aiohttp_server, tmp_path, aiohttp_client,
                                                              role):
    from hub.app import make_app

    server = await aiohttp_server(make_app(sample_hub.db))
    sample_hub.url = str(server.make_url("")).rstrip("/")
    edge = await enrolled_edge(sample_hub, tmp_path, role=role, name=f"Node {role}")
    try:
        client = await aiohttp_client(edge.app())
        client.edge = edge
        if role == "counter":
            await login(client)
        else:  # a gate keeps no PINs: a session as if one had got through, to reach the role check
            operator = edge.db.execute("SELECT id, name FROM operators WHERE name = 'Anna'").fetchone()
            client.session.cookie_jar.update_cookies({"tessera_desk": edge.sessions.create(operator)})
        before = ledger(edge)
        ring = product(sample_hub, "Abo-Ring A")
        await expect(await client.get("/api/subscription-products"), 403)
        await expect(await client.get(f"/api/subscription-products/{ring}/availability"), 403)
        body = {"product_id": ring, "customer_id": sample_hub.ids["first_customer"], "seat_ids": [],
                "payment_method": "cash"}
        await expect(await client.post("/api/subscriptions", json=body), 403)
        await expect(await client.post("/api/subscription-quote", json=body), 403)
        assert ledger(edge) == before
    finally:
        await edge.close()

