"""What a sold subscription prints (S9): season passes (card kind 2) and single tickets (kind 3).

Subscriptions are written straight into a copy of the sample hub (the 0018 schema: an order, its
`subscription` line, seat tickets on that line, the subscription row), then issued with the hub's
real key; the cards' PDFs are rendered with pypdfium2 into test-output/subscriptions/*.png (looked
at by hand), their QR codes decoded with zxing-cpp and parsed by core.cards.cardcode."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from core.base.clock import LOCAL_TZ, day_end, day_start, iso, parse_iso, utcnow
from core.base.errors import Conflict, NotFound
from core.base.ids import uuid7
from core.cards import cardcode, cards
from core.printing.card_layout import CardFace, DateLine, date_rows, load_layout, render_carrier_sheets, render_pages
from core.subscriptions import print_data
from core.subscriptions.passes import issue_subscription_cards, subscription_cards
from tests.helpers import call, table_counts

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "subscriptions"
PT_PER_MM = 72 / 25.4
_serial = itertools.count(1)


# --- a subscription, inserted as the sale writes it (0018) ------------------------------------------------


def seat_in(db, performance_id: str, section: str, row: str, label: str) -> dict:
    return db.execute(
        "SELECT s.id, s.zone_id FROM seats s JOIN plan_sections sec ON sec.id = s.section_id "
        "JOIN performances p ON p.id = ? JOIN plan_variants v ON v.id = p.variant_id "
        "WHERE s.plan_id = v.plan_id AND sec.name = ? AND s.row_label = ? AND s.label = ? AND s.variant_id IS NULL",
        (performance_id, section, row, label)).fetchone()


def insert_subscription(hub, product: str, performances: list[str], *, form: str, delivery: str | None = "mail",
                        tier: str | None = None, holder: str | None = None, state: str = "active",
                        seat: tuple[str, str, str] = ("Parkett", "5", "7")) -> str:
    db, now, n = hub.db, iso(utcnow()), next(_serial)
    product_id = hub.ids["subscriptions"][product]
    tier_id = db.execute("SELECT id FROM discount_tiers WHERE product_id = ? AND name = ?",
                         (product_id, tier)).fetchone()["id"] if tier else None
    customer = hub.ids["first_customer"]
    order_id, line_id, sub_id = uuid7(), uuid7(), uuid7()
    node = db.execute("SELECT id FROM node").fetchone()["id"]
    with db:
        db.execute("INSERT INTO orders (id, number, node_id, channel, customer_id, delivery, total_cents, created_at) "
                   "VALUES (?, ?, ?, 'phone', ?, ?, 29400, ?)", (order_id, f"T-{n}", node, customer, delivery, now))
        db.execute("INSERT INTO order_lines (id, order_id, position, kind, product_id, price_cents, vat_code) "
                   "VALUES (?, ?, 1, 'subscription', ?, 29400, 'exempt')", (line_id, order_id, product_id))
        for performance in performances:
            chosen = seat_in(db, performance, *seat)
            db.execute("INSERT INTO tickets (id, order_id, line_id, performance_id, seat_id, zone_id, price_cents, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                       (uuid7(), order_id, line_id, performance, chosen["id"], chosen["zone_id"], now))
        db.execute("INSERT INTO subscriptions (id, number, order_id, line_id, customer_id, product_id, tier_id, form, "
                   "state, holder_name, channel, price_cents, created_at, updated_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'phone', 29400, ?, ?)",
                   (sub_id, f"ABO-2026-{n:06d}", order_id, line_id, customer, product_id, tier_id, form, state,
                    holder, now, now))
    return sub_id


@pytest.fixture
def hub(sample_hub):
    sample_hub.signer = cards.load_signer(sample_hub.db, sample_hub.dir)
    return sample_hub


def ring(hub, name: str = "A") -> list[str]:
    return hub.ids["rings"][name]


def starts(db, performance_id: str) -> dt.datetime:
    return parse_iso(db.execute("SELECT starts_at FROM performances WHERE id = ?",
                                (performance_id,)).fetchone()["starts_at"])


def jobs(db, card_id: str) -> list[str]:
    return sorted(r["kind"] for r in db.execute("SELECT kind FROM print_jobs WHERE ref_id = ? AND state = 'queued'",
                                                (card_id,)))


# --- rendering helpers --------------------------------------------------------------------------------------


def render_png(pdf: bytes, name: str, dpi: int = 300) -> list[Image.Image]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    images = [page.render(scale=dpi / 72).to_pil() for page in pdfium.PdfDocument(pdf)]
    for i, image in enumerate(images):
        image.save(SHOTS / (f"{name}.png" if len(images) == 1 else f"{name}-{i + 1}.png"))
    return images


def qr(image: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]


def page_text(pdf: bytes, index: int = 0) -> tuple[str, object]:
    textpage = pdfium.PdfDocument(pdf)[index].get_textpage()
    return textpage.get_text_range(), textpage


def right_edge(textpage, text: str, fragment: str) -> float:
    start = text.index(fragment)
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    return max(textpage.get_charbox(i)[2] for i in range(start, end) if text[i] not in "\r\n")


# --- issuing --------------------------------------------------------------------------------------------------


def test_the_pass_form_issues_one_signed_personalized_pass_with_its_print_jobs(hub):
    dates = ring(hub)
    sub = insert_subscription(hub, "Abo-Ring A", dates, form="pass", holder="Erika Mustermann")
    now = utcnow()
    (card,) = issue_subscription_cards(hub.db, hub.signer, sub, now)
    product = hub.ids["subscriptions"]["Abo-Ring A"]
    first, last = starts(hub.db, dates[0]), starts(hub.db, dates[-1])
    assert (card["kind"], card["product_id"], card["holder_name"]) == ("subscription", product, "Erika Mustermann")
    assert card["valid_from"] == iso(day_start(first.astimezone(LOCAL_TZ).date()))
    assert card["valid_until"] == iso(day_end(last.astimezone(LOCAL_TZ).date()))
    assert (card["fulfilment"], card["delivery"]) == ("personalized", "mail")
    line = hub.db.execute("SELECT line_id FROM subscriptions WHERE id = ?", (sub,)).fetchone()["line_id"]
    assert card["order_item_id"] == line
    assert jobs(hub.db, card["id"]) == ["card", "carrier"]  # by mail: the pass glued on its carrier sheet

    payload = cardcode.decode(card["code"]).payload  # kind 2, the subscription product's card code
    code = hub.db.execute("SELECT code, kind FROM card_products WHERE product_id = ?", (product,)).fetchone()
    assert (payload.kind, payload.product_code, code["kind"]) == ("subscription", code["code"], "subscription")
    assert payload.valid_from * 60 == int(parse_iso(card["valid_from"]).timestamp())
    assert payload.valid_until == int(parse_iso(card["valid_until"]).timestamp()) // 60
    assert hub.signer.private.public_key().verify(cardcode.decode(card["code"]).signature,
                                                  cardcode.decode(card["code"]).message) is None


def test_the_single_tickets_form_issues_a_ticket_per_performance_in_its_entry_window(hub):
    dates = ring(hub, "B")
    sub = insert_subscription(hub, "Abo-Ring B", dates, form="single_tickets", delivery="pickup")
    issued = issue_subscription_cards(hub.db, hub.signer, sub, utcnow())
    assert [c["kind"] for c in issued] == ["single"] * len(dates)
    assert {c["product_id"] for c in issued} == set(dates)
    codes = set()
    for card in issued:
        begin = starts(hub.db, card["product_id"])
        assert (card["valid_from"], card["valid_until"]) == (iso(begin - cards.ENTRY_BEFORE),
                                                             iso(begin + cards.ENTRY_AFTER))
        assert card["holder_name"] is None  # a ticket is not personalized (transferable products)
        payload = cardcode.decode(card["code"]).payload
        assert payload.kind == "single"
        codes.add(payload.product_code)
        assert jobs(hub.db, card["id"]) == ["card"]  # pickup: no carrier sheet
    assert len(codes) == len(dates)  # each performance has its own card code


def test_both_forms_and_a_second_call_issues_nothing_more(hub):
    dates = ring(hub, "C")
    sub = insert_subscription(hub, "Abo-Ring C", dates, form="both", delivery="mail")
    issued = issue_subscription_cards(hub.db, hub.signer, sub, utcnow())
    assert sorted(c["kind"] for c in issued) == ["single"] * 8 + ["subscription"]
    assert sum(len(jobs(hub.db, c["id"])) for c in issued) == 9 + 1  # nine cards, one carrier (the pass's)
    before = table_counts(hub.db)
    assert issue_subscription_cards(hub.db, hub.signer, sub, utcnow()) == []
    assert table_counts(hub.db) == before
    assert [c["kind"] for c in subscription_cards(hub.db, sub)] == ["subscription"] + ["single"] * 8


def test_a_changed_form_or_a_given_up_date_revokes_the_cards_no_longer_called_for(hub):
    dates = ring(hub, "C")
    sub = insert_subscription(hub, "Abo-Ring C", dates, form="both")
    issued = issue_subscription_cards(hub.db, hub.signer, sub, utcnow())
    the_pass = next(c for c in issued if c["kind"] == "subscription")
    dropped = next(c for c in issued if c["product_id"] == dates[3])
    with hub.db:
        hub.db.execute("UPDATE subscriptions SET form = 'single_tickets' WHERE id = ?", (sub,))
        hub.db.execute("UPDATE tickets SET status = 'cancelled' WHERE performance_id = ? AND line_id = "
                       "(SELECT line_id FROM subscriptions WHERE id = ?)", (dates[3], sub))
    assert issue_subscription_cards(hub.db, hub.signer, sub, utcnow()) == []
    for card in (the_pass, dropped):
        row = cards.get_card(hub.db, card["id"])
        assert row["revoked_at"] and "no longer part of subscription" in row["revoke_reason"]
        assert jobs(hub.db, card["id"]) == []  # its open print jobs are gone: it will not be printed
    assert len(subscription_cards(hub.db, sub)) == 7


@pytest.mark.parametrize("change, error, message", [
    ("paused", Conflict, "is paused"),
    ("form", Conflict, "is not offered by its product"),
    ("no seats", Conflict, "holds no seats"),
    ("unknown", NotFound, "does not exist"),
])
def test_a_subscription_that_cannot_have_cards_is_refused_and_nothing_changes(hub, change, error, message):
    product = "Wahl-Abo Studio 5 aus 8" if change == "form" else "Abo-Ring A"
    dates = [] if change == "no seats" else ring(hub)
    if change == "form":  # the choice product prints single tickets only; a pass is not offered
        studio = hub.db.execute("SELECT performance_id FROM subscription_performances WHERE product_id = ? "
                                "ORDER BY position LIMIT 5", (hub.ids["subscriptions"][product],)).fetchall()
        dates = [r["performance_id"] for r in studio]
    sub = insert_subscription(hub, product, dates, form="pass", state="paused" if change == "paused" else "active",
                              seat=("Saal", "3", "4") if change == "form" else ("Parkett", "5", "7"))
    before = table_counts(hub.db)
    with pytest.raises(error, match=message):
        issue_subscription_cards(hub.db, hub.signer, "0190-no-such-subscription" if change == "unknown" else sub,
                                 utcnow())
    assert table_counts(hub.db) == before


def test_the_discount_label_carries_the_subscription_name(hub):
    reduced = insert_subscription(hub, "Abo-Ring A", ring(hub)[:2], form="single_tickets", tier="Schüler/Studierende")
    full = insert_subscription(hub, "Abo-Ring A", ring(hub)[:2], form="single_tickets", seat=("Parkett", "6", "1"))
    labels = {}
    for sub in (reduced, full):
        card = issue_subscription_cards(hub.db, hub.signer, sub, utcnow())[0]
        face = print_data.face_for_card(hub.db, card)
        labels[sub] = face.discount
        text, _ = page_text(render_pages([(face, load_layout("subscription-ticket"))]))
        assert face.discount in text
    assert labels == {reduced: "Schüler/Studierende (Abo-Ring A)", full: "Vollpreis (Abo-Ring A)"}


# --- print data: PDF -> PNG -> QR ---------------------------------------------------------------------------


def test_the_longest_sample_ring_prints_readably_on_the_pass_and_its_qr_decodes(hub):
    longest = max(hub.ids["rings"].values(), key=len)
    sub = insert_subscription(hub, "Abo-Ring A", longest, form="pass", holder="Jürgen Müller-Weiß")
    (card,) = issue_subscription_cards(hub.db, hub.signer, sub, utcnow())
    face = print_data.face_for_card(hub.db, card)
    layout = load_layout("subscription-pass")
    assert len(face.dates) == len(longest) == 8 and date_rows(layout.dates, 8) == (1, 10, 8)
    pdf = render_pages([(face, layout)])
    width, height = pdfium.PdfDocument(pdf)[0].get_size()
    assert (round(width / PT_PER_MM, 1), round(height / PT_PER_MM, 1)) == (85.6, 54.0)
    text, textpage = page_text(pdf)
    assert "Jürgen Müller-Weiß" in text and "Abo-Ring A" in text and "Großes Haus" in text
    assert "Theater Nordstadt gGmbH" in text and card["number"] in text
    block_right = (layout.dates.x_mm + layout.dates.width_mm) * PT_PER_MM + 0.5
    for date in face.dates:  # every date with its seat, inside the dates block (left of the QR code)
        when = date.starts_at.strftime("%d.%m.%y %H:%M")
        assert when in text and right_edge(textpage, text, when) <= block_right
    assert text.count("Parkett R5 P7") == 8
    (image,) = render_png(pdf, "pass-longest-ring", dpi=600)
    assert qr(image) == [card["code"]]
    assert cardcode.decode(qr(image)[0]).payload.kind == "subscription"


def test_more_dates_than_the_pass_holds_go_to_two_columns_then_a_more_line_and_the_carrier_lists_all():
    layout = load_layout("subscription-pass")
    base = dt.datetime(2026, 9, 19, 19, 30, tzinfo=LOCAL_TZ)
    code = "0" * cardcode.TEXT_LENGTH
    pages = []
    for count in (14, 25):
        dates = tuple(DateLine(base + dt.timedelta(days=7 * i), f"Vorstellung {i + 1}", f"1. Rang R{i + 1} P12")
                      for i in range(count))
        face = CardFace(number=f"C-2026-0000{count}", holder_name="Clara Schneider", product="Abo-Ring Lang",
                        valid_from=base.date(), valid_until=dates[-1].starts_at.date(), organizer="Theater",
                        code=code, venue="Großes Haus", reference="ABO-2026-000001", dates=dates)
        pages.append(face)
    pdf = render_pages([(face, layout) for face in pages])
    render_png(pdf, "pass-overflow")
    fourteen, _ = page_text(pdf, 0)
    assert all(f"R{i} P12" in fourteen for i in range(1, 15)) and "Vorstellung" not in fourteen  # compact lines
    twenty_five, textpage = page_text(pdf, 1)
    assert "+ 6 weitere (s. Begleitblatt)" in twenty_five and "R19 P12" in twenty_five and "R20 P12" not in twenty_five
    page_right = layout.page.width_mm * PT_PER_MM
    assert right_edge(textpage, twenty_five, "+ 6 weitere") <= page_right
    carrier = render_carrier_sheets([(pages[1], ("Clara Schneider", "Am Markt 1", "28195 Bremen"), layout)])
    sheet, _ = page_text(carrier)
    assert all(f"Vorstellung {i}" in sheet for i in range(1, 26)) and "Ihre Abo-Termine" in sheet
    render_png(carrier, "pass-overflow-carrier", dpi=100)


def test_a_single_ticket_prints_as_an_a6_ticket_that_scans(hub):
    dates = ring(hub)
    sub = insert_subscription(hub, "Abo-Ring A", dates[:1], form="single_tickets", tier="Schüler/Studierende",
                              seat=("1. Rang", "3", "12"))
    (card,) = issue_subscription_cards(hub.db, hub.signer, sub, utcnow())
    face = print_data.face_for_card(hub.db, card)
    pdf = render_pages([(face, load_layout("subscription-ticket"))])
    width, height = pdfium.PdfDocument(pdf)[0].get_size()
    assert (round(width / PT_PER_MM), round(height / PT_PER_MM)) == (105, 148)
    text, _ = page_text(pdf)
    begin = starts(hub.db, dates[0]).astimezone(LOCAL_TZ)
    weekday = ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So")[begin.weekday()]
    for shown in (face.performance, f"{weekday} {begin:%d.%m.%Y, %H:%M} Uhr", "Großes Haus",
                  "1. Rang · Reihe 3 · Platz 12", "Schüler/Studierende (Abo-Ring A)", card["number"]):
        assert shown in text, shown
    (image,) = render_png(pdf, "ticket-a6")
    assert qr(image) == [card["code"]]
    payload = cardcode.decode(qr(image)[0]).payload
    product = hub.db.execute("SELECT code FROM card_products WHERE product_id = ?", (dates[0],)).fetchone()["code"]
    assert (payload.kind, payload.product_code) == ("single", product)


HOSTILE = {
    "rtl": "שרה כהן‏ مريم الأحمد",
    "long": "Maximiliane " + "Hohenzollern-Sigmaringen-" * 8,
    "html": '<script>alert("x")</script><b>Ada</b> & "Lovelace"',
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_holder_names_stay_in_their_box_and_the_pass_still_scans(hub, kind):
    name = HOSTILE[kind]
    if kind == "long":
        name = (name + "x" * 200)[:200]
        assert len(name) == 200
    sub = insert_subscription(hub, "Abo-Ring A", ring(hub), form="pass", holder=name)
    (card,) = issue_subscription_cards(hub.db, hub.signer, sub, utcnow())
    assert card["holder_name"] == name  # stored as given; only the print is fitted
    layout = load_layout("subscription-pass")
    field = next(f for f in layout.fields if f.source == "holder_name")
    pdf = render_pages([(print_data.face_for_card(hub.db, card), layout)])
    text, textpage = page_text(pdf)
    first_line = text.split("\n")[1] if kind != "html" else next(line for line in text.split("\n") if "script" in line)
    assert right_edge(textpage, text, first_line.strip()) <= (field.x_mm + field.max_width_mm) * PT_PER_MM + 0.5
    if kind == "long":
        assert first_line.strip().endswith("…") and first_line.startswith("Maximiliane")
    if kind == "html":
        assert '<script>alert("x")</script>' in text  # printed as the letters it is, nothing interprets it
    if kind == "rtl":
        assert "?" in first_line and "ש" not in text  # outside WinAnsi: a visible '?', not a blank or an error
    (image,) = render_png(pdf, f"pass-hostile-{kind}", dpi=600)
    assert qr(image) == [card["code"]]


# --- the hub's print batches ----------------------------------------------------------------------------------


async def test_a_hub_batch_prints_passes_and_tickets_in_their_own_layouts_and_marks_them_printed(api):
    hub = api.hub
    hub.signer = cards.load_signer(hub.db, hub.dir)
    sub = insert_subscription(hub, "Abo-Ring A", ring(hub)[:3], form="both", delivery="mail",
                              tier="Schwerbehinderte (GdB ab 50)")
    issued = issue_subscription_cards(hub.db, hub.signer, sub, utcnow())
    batch = await call(api, "POST", "/print-batches", {"kind": "card"}, status=201)
    assert (batch["jobs"], batch["failed"]) == (4, 0), batch
    pdf = Path(batch["target"]).read_bytes()
    doc = pdfium.PdfDocument(pdf)
    sizes = sorted({(round(page.get_size()[0] / PT_PER_MM), round(page.get_size()[1] / PT_PER_MM)) for page in doc})
    assert sizes == [(86, 54), (105, 148)]  # the pass on CR80, the tickets on A6
    images = render_png(pdf, "hub-batch", dpi=200)
    assert sorted(code for image in images for code in qr(image)) == sorted(c["code"] for c in issued)
    assert {cards.get_card(hub.db, c["id"])["fulfilment"] for c in issued} == {"printed"}
    carrier = await call(api, "POST", "/print-batches", {"kind": "carrier"}, status=201)
    assert (carrier["jobs"], carrier["failed"]) == (1, 0), carrier
    sheet = Path(carrier["target"]).read_bytes()
    text, _ = page_text(sheet)
    assert "Ihre Abo-Termine und Plätze" in text and text.count("Parkett R5 P7") >= 3
    render_png(sheet, "hub-batch-carrier", dpi=100)


# --- the signed codes: vectors and a real gate ---------------------------------------------------------------


def test_the_published_pass_and_ticket_vectors_parse_as_kinds_2_and_3():
    import json
    committed = json.loads((ROOT / "docs" / "card-vectors.json").read_text())
    for kind, key, name in (("subscription", "fields_of_the_subscription_pass", "subscription pass (kind 2)"),
                            ("single", "fields_of_the_single_ticket", "single ticket (kind 3)")):
        vector = next(v for v in committed["vectors"] if v["name"].startswith(name))
        raw = bytes.fromhex(vector["payload_hex"])
        assert raw[25] == cardcode.KIND_CODES[kind] == {"subscription": 2, "single": 3}[kind]
        payload = cardcode.decode(vector["code"]).payload
        fields = committed[key]
        assert {f: getattr(payload, f) for f in ("key_id", "card_id", "product_code", "kind", "valid_from",
                                                 "valid_until", "issue")} == {f: fields[f] for f in (
                                                     "key_id", "card_id", "product_code", "kind", "valid_from",
                                                     "valid_until", "issue")}
        assert payload.valid_from * 60 == int(parse_iso(fields["valid_from_utc"]).timestamp())


def test_an_issued_ticket_opens_the_theatre_only_in_its_entry_window_and_the_pass_on_its_dates(hub, tmp_path):
    from core.base.node import NODE_DB
    from core.base.storage import connect
    from core.cards.access import Access, GateRules
    from tests.cardkit import make_kit
    dates = ring(hub)
    sub = insert_subscription(hub, "Abo-Ring A", dates, form="both", holder="Greta Wolf")
    issued = issue_subscription_cards(hub.db, hub.signer, sub, utcnow())
    kit = make_kit(hub, tmp_path)
    kit.sync()
    venue = hub.db.execute("SELECT venue_id FROM performances WHERE id = ?", (dates[1],)).fetchone()["venue_id"]
    theatre = Access(connect(kit.gate_dir / NODE_DB, edge=True), GateRules(venue_id=venue))
    ticket = next(c for c in issued if c["product_id"] == dates[1])
    the_pass = next(c for c in issued if c["kind"] == "subscription")
    begin = starts(hub.db, dates[1])
    assert theatre.decide(ticket["code"], begin - dt.timedelta(minutes=30)).admitted
    assert theatre.decide(ticket["code"], begin - dt.timedelta(hours=3)).reason == "NOT_YET_VALID"
    assert theatre.decide(ticket["code"], begin + dt.timedelta(minutes=61)).reason == "EXPIRED"
    assert theatre.decide(the_pass["code"], begin).admitted
    assert theatre.decide(the_pass["code"], starts(hub.db, dates[-1]) + dt.timedelta(days=1)).reason == "EXPIRED"
    assert theatre.decide(the_pass["code"], starts(hub.db, dates[0]) - dt.timedelta(days=1)).reason == "NOT_YET_VALID"


# --- the receipt-printer variant (ESC/POS) ------------------------------------------------------------------


@pytest.mark.parametrize("profile_name", ["receipt-epson-tm-t20iii", "receipt-zjiang-pos5890-usb"])
def test_single_tickets_print_on_a_receipt_printer_one_slip_each_with_their_qr(hub, profile_name):
    from core.base.documents import Line, Qr
    from core.printing.ticket_slips import tickets_document
    from devices.printers.receipt import _qr_image, columns, load_printer, render
    sub = insert_subscription(hub, "Abo-Ring A", ring(hub)[:2], form="single_tickets", tier="Schüler/Studierende",
                              seat=("1. Rang", "3", "12"))
    issued = issue_subscription_cards(hub.db, hub.signer, sub, utcnow())
    faces = [print_data.face_for_card(hub.db, card) for card in issued]
    profile = load_printer(profile_name)
    document = tickets_document(faces, columns(profile))
    assert len(document.slips) == 2
    for slip, face, card in zip(document.slips, faces, issued, strict=True):
        lines = [part.text for part in slip if isinstance(part, Line)]
        assert all(len(text) <= columns(profile) for text in lines)
        joined = " ".join(lines)
        for shown in (face.performance, "1. Rang · Reihe 3 · Platz 12", card["number"]):
            assert shown in joined, shown
        assert "Schüler/Studierende" in joined and "(Abo-Ring A)" in joined
        assert [part.payload for part in slip if isinstance(part, Qr)] == [card["code"]]
        assert qr(_qr_image(card["code"], 6).convert("L")) == [card["code"]]  # what an image-QR printer gets
    data = render(document, profile)
    assert b"Die Zauberfl" in data and data.count(b"Reihe 3") == 2  # ESC/POS bytes with the text of both
    with pytest.raises(ValueError, match="at least 24"):
        tickets_document(faces, 20)
