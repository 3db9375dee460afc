"""The hub trusts no device (DESIGN §4, §12): each case an enrolled device could try, over
real signed HTTP against the real hub app. An operation is a request: the hub re-derives
what it stores from its own catalog and rules, and anything else becomes a conflict that
changes nothing but the op log and the conflict list."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import msgspec
import pytest

from core.base import sql
from core.base.clock import iso, parse_iso, utcnow
from core.base.ids import uuid7
from core.base.storage import transaction
from core.cards import cardcode, cards
from core.cards.access import Access, GateRules
from core.cards.trust import sign
from core.sales import contingents, orders
from core.sales.orders import HolderIn, LineIn, OrderIn
from core.sales.tickets import SaleIn, sell
from tests.test_sync import enrolled

PRODUCT = 0  # sample: Museumsverbund annual card, 12 months from purchase


# --- helpers ----------------------------------------------------------------------------------------------

# Bookkeeping of the push itself (when a node last pushed, its clock) is not state a rule guards.
PUSH_BOOKKEEPING = {"node_scopes": ("last_push_at", "last_pull_at", "pulled_seq", "clock_skew_s")}
LOGS = {"sync_ops", "conflicts", "sync_nonces"}  # sync_nonces: the nonces of accepted requests


def digest(db) -> dict[str, str]:
    """A hash of every hub table but the op log and the conflicts, one per table."""
    out = {}
    tables = sql.table_names(db)
    for table in tables:
        if table in LOGS or table.startswith("customers_search"):
            continue
        rows = db.execute(f"SELECT * FROM {table}").fetchall()
        skip = PUSH_BOOKKEEPING.get(table, ())
        text = sorted(json.dumps({k: v for k, v in r.items() if k not in skip}, sort_keys=True, default=repr)
                      for r in rows)
        out[table] = hashlib.sha256("\n".join(text).encode()).hexdigest()
    return out


def card_row(card: dict) -> dict:
    """A card as a desk's card op carries it."""
    return {k: v for k, v in card.items() if k not in ("created_at", "updated_at")}


def inject(db, kind: str, body) -> None:
    """Put an op into the node's outbox as a tampered or hostile device would."""
    with transaction(db):
        db.execute("INSERT INTO outbox (id, kind, body, wall_time, mono_ns, boot_id) VALUES (?, ?, ?, ?, 0, 'x')",
                   (uuid7(), kind, json.dumps(body), iso(utcnow())))


def tamper(db, kind: str, change) -> None:
    """Rewrite the last waiting op of *kind* with *change(body)*."""
    row = db.execute("SELECT node_seq, body FROM outbox WHERE kind = ? ORDER BY node_seq DESC LIMIT 1",
                     (kind,)).fetchone()
    body = json.loads(row["body"])
    change(body)
    db.execute("UPDATE outbox SET body = ? WHERE node_seq = ?", (json.dumps(body), row["node_seq"]))


def results(db) -> list[str]:
    return [r["result"] for r in db.execute("SELECT result FROM outbox ORDER BY node_seq")]


def conflicts(hub) -> list[dict]:
    return hub.db.execute("SELECT kind, reason FROM conflicts ORDER BY created_at, node_seq").fetchall()


def desk_sale(hub, holders=("Erika Mustermann",), vouchers=0, **kw) -> OrderIn:
    product = hub.ids["annual_products"][PRODUCT]
    lines = [LineIn(product_id=product, quantity=len(holders), holders=[HolderIn(name=n) for n in holders])]
    if vouchers:
        lines.append(LineIn(product_id=product, kind="voucher", quantity=vouchers))
    return OrderIn(lines=lines, payment_method=kw.pop("payment_method", "cash"), **kw)


async def hub_card(hub) -> dict:
    signer = cards.load_signer(hub.db, hub.dir)
    return cards.issue_card(hub.db, signer, product_id=hub.ids["annual_products"][PRODUCT], kind="annual",
                            now=utcnow(), holder_name="Clara Echt")


# --- cards ------------------------------------------------------------------------------------------------

async def test_a_gate_cannot_rewrite_or_revoke_a_card(hub, tmp_path):
    """Today's main took a card op from any node whose key signed the code, and made the
    body's keys the columns of an UPDATE: a gate at an entrance could rewrite every card."""
    victim = await hub_card(hub)
    venue = hub.ids["museum_venues"]["Stadtmuseum"]
    folder, db, client = await enrolled(hub, tmp_path, role="gate", name="Tor 1", venues=[venue])
    try:
        await client.round()
        gate = cards.load_signer(db, folder)
        forged = cards.sign_card(gate, card_id=victim["id"], code=cardcode.decode(victim["code"]).payload.product_code,
                                 kind="annual", valid_from=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                                 valid_until=dt.datetime(2099, 1, 1, tzinfo=dt.UTC), issue=victim["issue"] + 1)
        row = card_row(victim) | {"holder_name": "Mallory", "code": forged,
                                                              "issue": victim["issue"] + 1, "key_id": gate.key_id}
        before = digest(hub.db)
        for kind in ("card.issued", "card.reissued", "card.revoked"):
            inject(db, kind, row | ({"revoked_at": iso(utcnow()), "revoke_reason": "x"} if kind == "card.revoked"
                                    else {}))
        await client.push()
        assert all(r.startswith("rejected: a gate node may not send card.") for r in results(db)), results(db)
        assert digest(hub.db) == before
        assert hub.db.execute("SELECT holder_name, revoked_at, issue FROM cards WHERE id = ?",
                              (victim["id"],)).fetchone() == {"holder_name": "Clara Echt", "revoked_at": None,
                                                              "issue": 1}
    finally:
        await client.close()


async def test_body_keys_never_become_sql_and_a_desk_cannot_overwrite_a_card(hub, tmp_path):
    """A desk signs a code for another card's id and pushes it as a new card, with a column
    list of its own choosing: unknown keys are refused by the body type, the id is taken."""
    victim = await hub_card(hub)
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        desk = cards.load_signer(db, folder)
        code = cards.sign_card(desk, card_id=victim["id"], code=cardcode.decode(victim["code"]).payload.product_code,
                               kind="annual", valid_from=parse_iso(victim["valid_from"]),
                               valid_until=parse_iso(victim["valid_until"]), issue=1)
        row = card_row(victim) | {"code": code, "key_id": desk.key_id,
                                                              "holder_name": "Mallory", "issued_by": desk.node_id}
        before = digest(hub.db)
        inject(db, "card.issued", row | {"holder_name = 'Mallory', revoked_at": None})
        inject(db, "card.issued", row)
        await client.push()
        first, second = results(db)
        assert first.startswith("rejected: malformed card.issued") and "unknown field" in first
        assert second == f"rejected: card {victim['id']} exists already"
        assert digest(hub.db) == before
    finally:
        await client.close()


async def test_a_card_a_desk_issues_is_stored_as_the_hub_derives_it(hub, tmp_path):
    """Fields the code does not carry are set by the hub: the issuing node, the time, the
    delivery; a validity the product does not give is refused even when signed."""
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        signer = cards.load_signer(db, folder)
        product = hub.ids["annual_products"][PRODUCT]
        good = cards.issue_card(db, signer, product_id=product, kind="annual", now=utcnow(), holder_name="A")
        tamper(db, "card.issued", lambda b: b.update(issued_by=uuid7(), delivery="mail",
                                                     fulfilment="handed_over", has_photo=1))
        # a signed card valid for 10 years: the product gives 12 months
        long = cards.issue_card(db, signer, product_id=product, kind="annual", now=utcnow(), holder_name="B",
                                valid_from=utcnow(), valid_until=utcnow() + dt.timedelta(days=3650))
        await client.push()
        assert results(db)[0] == "applied"
        assert results(db)[1].startswith("rejected: validity ")
        stored = hub.db.execute("SELECT * FROM cards WHERE id = ?", (good["id"],)).fetchone()
        assert (stored["issued_by"], stored["delivery"], stored["fulfilment"], stored["has_photo"]) == \
            (signer.node_id, "counter", "personalized", 0)
        assert hub.db.execute("SELECT 1 FROM cards WHERE id = ?", (long["id"],)).fetchone() is None
    finally:
        await client.close()


async def test_a_revocation_at_the_hub_is_sticky(hub, tmp_path):
    """The office revokes a card while the desk that sold it is offline; the desk then
    replaces it as lost. Today's main let the desk's row overwrite the revocation. Now the
    re-issue is a conflict, the card stays revoked, and the new code is refused at a gate."""
    folder, db, client = await enrolled(hub, tmp_path)
    venue = hub.ids["museum_venues"]["Stadtmuseum"]
    try:
        await client.round()
        signer = cards.load_signer(db, folder)
        card = cards.issue_card(db, signer, product_id=hub.ids["annual_products"][PRODUCT], kind="annual",
                                now=utcnow(), holder_name="Gestohlen")
        await client.round()
        cards.revoke_card(hub.db, cards.load_signer(hub.db, hub.dir), card["id"], "stolen", utcnow())
        replaced = orders.replace_lost_card(db, signer, card["id"], utcnow())  # the desk has not pulled yet
        assert replaced["issue"] == 2
        await client.push()
        assert results(db)[-1].startswith(f"rejected: card {card['number']} was revoked at the hub")
        at_hub = hub.db.execute("SELECT issue, revoked_at FROM cards WHERE id = ?", (card["id"],)).fetchone()
        assert at_hub["issue"] == 1 and at_hub["revoked_at"]
        await client.round()  # the hub's row comes back to the desk
        assert db.execute("SELECT revoked_at FROM cards WHERE id = ?", (card["id"],)).fetchone()["revoked_at"]
        gate = Access(hub.db, GateRules(venue_id=venue))
        assert gate.decide(replaced["code"]).reason == "REVOKED"
    finally:
        await client.close()


async def test_a_desk_replacing_a_lost_hub_card_is_applied_and_old_print_jobs_go(hub, tmp_path):
    """The sound case: a desk re-issues a card the hub sold by phone; the hub takes the new
    issue (signed by the desk) and drops its own unprinted jobs of the old issue."""
    from core.base.node import this_node
    from core.printing import print_queue
    signer = cards.load_signer(hub.db, hub.dir)
    order = orders.place_order(hub.db, this_node(hub.db), signer, OrderIn(
        lines=[LineIn(product_id=hub.ids["annual_products"][PRODUCT], holders=[HolderIn(name="Verloren")])],
        customer_id=hub.ids["first_customer"], delivery="mail", payment_method="transfer"), channel="phone",
        now=utcnow())
    card = order["items"][0]["card"]
    assert {j["card_issue"] for j in print_queue.open_jobs(hub.db) if j["ref_id"] == card["id"]} == {1}
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        replaced = orders.replace_lost_card(db, cards.load_signer(db, folder), card["id"], utcnow())
        await client.push()
        assert results(db)[-1] == "applied"
        at_hub = hub.db.execute("SELECT issue, code, issued_by FROM cards WHERE id = ?", (card["id"],)).fetchone()
        assert at_hub == {"issue": 2, "code": replaced["code"], "issued_by": replaced["issued_by"]}
        assert [j for j in print_queue.open_jobs(hub.db) if j["ref_id"] == card["id"]] == []
    finally:
        await client.close()


# --- orders and sales -------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, reason", [
    (lambda b: b["items"][0].update(price_cents=0) or b.update(total_cents=0), "costs"),
    (lambda b: b.update(channel="shop"), "channel"),
    (lambda b: b.update(payment_method="none"), "cash or card"),
    (lambda b: b.update(total_cents=1), "total"),
    (lambda b: b["items"][0].update(vat_code="7" if b["items"][0]["vat_code"] == "19" else "19"), "VAT"),
    (lambda b: b.update(delivery="mail"), "handed over"),
    (lambda b: b.update(number="A000000-2026-000001"), "series"),
])
async def test_an_order_is_stored_at_the_hubs_prices_channel_and_payment_rule(hub, tmp_path, change, reason):
    """Today's main stored an `order.placed` with the price, total, VAT, channel and payment
    the device sent: an annual ticket at 0 cents, channel shop, payment none was applied."""
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        order = orders.place_order(db, db.execute("SELECT * FROM node").fetchone(), cards.load_signer(db, folder),
                                   desk_sale(hub), channel="cashdesk", now=utcnow())
        tamper(db, "order.placed", change)
        await client.push()
        assert results(db)[:-1] == ["applied"]  # the card
        assert results(db)[-1].startswith("rejected:") and reason in results(db)[-1], results(db)[-1]
        assert hub.db.execute("SELECT 1 FROM orders WHERE id = ?", (order["id"],)).fetchone() is None
        assert conflicts(hub)[-1]["kind"] == "order.placed"
    finally:
        await client.close()


async def test_an_order_sold_before_a_price_change_keeps_its_price(hub, tmp_path):
    """An offline desk sold at the price of its time; the office raised the price before the
    desk came back. The hub checks against the price as of the order, not today's."""
    folder, db, client = await enrolled(hub, tmp_path)
    product = hub.ids["annual_products"][PRODUCT]
    try:
        await client.round()
        order = orders.place_order(db, db.execute("SELECT * FROM node").fetchone(), cards.load_signer(db, folder),
                                   desk_sale(hub), channel="cashdesk", now=utcnow() - dt.timedelta(minutes=5))
        hub.db.execute("UPDATE annual_products SET price_cents = price_cents + 1000, updated_at = ? WHERE id = ?",
                       (iso(utcnow()), product))
        await client.push()
        assert results(db) == ["applied", "applied"]
        assert hub.db.execute("SELECT total_cents FROM orders WHERE id = ?", (order["id"],)).fetchone() == \
            {"total_cents": order["total_cents"]}
    finally:
        await client.close()


@pytest.mark.parametrize("change, reason", [
    (lambda b: b["tickets"][0].update(price_cents=0) or b.update(total_cents=b["total_cents"]
                                                                  - b["tickets"][0]["price_cents"]), "costs"),
    (lambda b: b.update(channel="online"), "channel"),
    (lambda b: b.update(payment_method="none"), "cash or card"),
    (lambda b: b.update(total_cents=0), "total"),
])
async def test_a_seat_sale_is_stored_at_the_hubs_prices(hub, tmp_path, change, reason):
    folder, db, client = await enrolled(hub, tmp_path)
    node = db.execute("SELECT * FROM node").fetchone()
    performance = hub.ids["performances"][0]
    seats = list(contingents.seats_of(hub.db, performance))[:2]
    contingents.move_seats(hub.db, performance, seats, contingents.node_pool(node["id"]), utcnow())
    try:
        await client.round()
        sale = sell(db, node, SaleIn(performance_id=performance, seat_ids=seats, payment_method="cash"),
                    pool=contingents.node_pool(node["id"]), channel="cashdesk", now=utcnow())
        tamper(db, "sale.completed", change)
        await client.push()
        assert results(db)[-1].startswith("rejected:") and reason in results(db)[-1], results(db)[-1]
        assert hub.db.execute("SELECT 1 FROM orders WHERE id = ?", (sale["id"],)).fetchone() is None
    finally:
        await client.close()


async def test_a_holder_born_in_2999_is_refused_on_every_channel(hub, api, tmp_path):
    """The customer's web form refused it; the phone-order API and the desk accepted it."""
    product = api.hub.ids["annual_products"][PRODUCT]
    customer = api.hub.ids["first_customer"]
    response = await api.post("/api/v1/orders", headers=api.hub.headers(), json={
        "lines": [{"product_id": product, "holders": [{"name": "Zukunft", "birth_date": "2999-01-01"}]}],
        "customer_id": customer, "delivery": "mail", "payment_method": "transfer"})
    assert response.status == 422 and (await response.json())["field"] == "lines[0].holders[0].birth_date"
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        with pytest.raises(Exception, match="birth date 2999-01-01"):
            orders.place_order(db, db.execute("SELECT * FROM node").fetchone(), cards.load_signer(db, folder),
                               OrderIn(lines=[LineIn(product_id=product, holders=[
                                   HolderIn(name="Zukunft", birth_date=dt.date(2999, 1, 1))])],
                                       payment_method="cash"), channel="cashdesk", now=utcnow())
        assert db.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"] == 0
        # and a device that sends one anyway
        card = cards.issue_card(db, cards.load_signer(db, folder), product_id=product, kind="annual", now=utcnow(),
                                holder_name="Zukunft")
        tamper(db, "card.issued", lambda b: b.update(holder_birth_date="2999-01-01"))
        await client.push()
        assert "birth date 2999-01-01" in results(db)[-1]
        assert hub.db.execute("SELECT 1 FROM cards WHERE id = ?", (card["id"],)).fetchone() is None
    finally:
        await client.close()


# --- vouchers and recalls ---------------------------------------------------------------------------------

async def test_a_refused_exchange_never_revokes_another_nodes_card(hub, tmp_path):
    """Today's main revoked the `card_id` of any refused voucher exchange: a counter could
    name any card and have it revoked by sending a bad voucher."""
    victim = await hub_card(hub)
    folder, db, client = await enrolled(hub, tmp_path, role="counter", name="Theke")
    try:
        await client.round()
        inject(db, "voucher.redeemed", {"voucher_id": uuid7(), "card_id": victim["id"],
                                        "node_id": db.execute("SELECT id FROM node").fetchone()["id"],
                                        "operator": None, "redeemed_at": iso(utcnow()), "voucher_code": victim["code"]})
        await client.push()
        assert results(db)[-1].startswith("rejected: voucher code does not match")
        assert hub.db.execute("SELECT revoked_at FROM cards WHERE id = ?", (victim["id"],)).fetchone() == \
            {"revoked_at": None}
    finally:
        await client.close()


async def test_seats_kept_as_sold_must_be_sold_by_that_desk(hub, tmp_path):
    """Today's main believed a desk's list of seats it 'kept sold' in a recall answer: a
    desk could keep any recalled seat. Now such an answer is a conflict and the hub settles
    the recall itself: seats this desk sold stay, the rest go where the recall sends them."""
    folder, db, client = await enrolled(hub, tmp_path)
    node = db.execute("SELECT * FROM node").fetchone()
    pool = contingents.node_pool(node["id"])
    performance = hub.ids["performances"][0]
    seats = list(contingents.seats_of(hub.db, performance))[:4]
    contingents.move_seats(hub.db, performance, seats, pool, utcnow())
    try:
        await client.round()
        sell(db, node, SaleIn(performance_id=performance, seat_ids=seats[:1], payment_method="cash"), pool=pool,
             channel="cashdesk", now=utcnow())
        await client.push()  # the hub knows seat 0 is sold (and keeps it out of any recall)
        contingents.move_seats(hub.db, performance, seats[1:], "hub", utcnow())
        assert await client.pull() is not None
        contingents.answer_recalls(db, node["id"], utcnow())
        tamper(db, "pool.released", lambda b: b.update(released=seats[1:2], kept_sold=seats[2:]))
        await client.push()
        assert "kept as sold were not sold by this desk" in results(db)[-1]
        assert [contingents.pool_of(hub.db, performance, s) for s in seats] == [pool, "hub", "hub", "hub"]
        assert hub.db.execute("SELECT state FROM recalls").fetchone() == {"state": "done"}
    finally:
        await client.close()


# --- entries ----------------------------------------------------------------------------------------------

async def test_entry_records_are_verified_at_the_hub(hub, tmp_path):
    """Today's main stored pushed entries without checking signature, venue or time. Each
    bad record below is a conflict; the good one is stored."""
    card = await hub_card(hub)
    venues = hub.ids["museum_venues"]
    folder, db, client = await enrolled(hub, tmp_path, role="gate", name="Tor 1", venues=[venues["Stadtmuseum"]])
    other, other_db, other_client = await enrolled(hub, tmp_path, role="gate", name="Tor 2",
                                                   venues=[venues["Stadtmuseum"]])
    try:
        await client.round()
        gate, foreign = cards.load_signer(db, folder), cards.load_signer(other_db, other)
        now = utcnow()

        def record(signer=gate, at=now, venue=venues["Stadtmuseum"], **change) -> str:
            body = {"v": 1, "id": uuid7(int(at.timestamp() * 1000)), "card_id": card["id"], "card_issue": 1,
                    "venue_id": venue, "node_id": signer.node_id, "direction": "in", "at": iso(at)} | change
            return sign(signer.private, "entry", body, signer.key_id)

        good = record()
        env = json.loads(good)
        bad_signature = json.dumps(env | {"s": ("0" * 128)})
        cases = {
            "bad signature": bad_signature,
            "other gate's key": record(signer=foreign),
            "venue outside scope": record(venue=venues[next(v for v in venues if v != "Stadtmuseum")]),
            "ahead of the push": record(at=now + dt.timedelta(hours=1)),
            "before the card": record(at=parse_iso(card["valid_from"]) - dt.timedelta(days=1)),
            "time not its id's": record(id=uuid7(int((now - dt.timedelta(hours=2)).timestamp() * 1000))),
            "not a record": "{}",
        }
        before = hub.db.execute("SELECT count(*) AS n FROM entries").fetchone()["n"]
        for text in cases.values():
            inject(db, "entry.recorded", {"record": text})
        inject(db, "entry.recorded", {"record": good})
        await client.push()
        outcome = dict(zip([*cases, "good"], results(db), strict=True))
        assert outcome.pop("good") == "applied"
        assert all(r.startswith("rejected:") for r in outcome.values()), outcome
        assert "does not verify" in outcome["bad signature"]
        assert "outside this gate's venues" in outcome["venue outside scope"]
        assert hub.db.execute("SELECT count(*) AS n FROM entries").fetchone()["n"] == before + 1
    finally:
        await client.close()
        await other_client.close()


# --- roles ------------------------------------------------------------------------------------------------

async def test_an_op_outside_the_nodes_role_is_a_conflict_even_with_a_sound_body(hub, tmp_path):
    """A desk's real, valid ops, replayed by a gate and a counter: refused by role."""
    desk_folder, desk, desk_client = await enrolled(hub, tmp_path)
    venue = hub.ids["museum_venues"]["Stadtmuseum"]
    _, gate, gate_client = await enrolled(hub, tmp_path, role="gate", name="Tor 1", venues=[venue])
    _, counter, counter_client = await enrolled(hub, tmp_path, role="counter", name="Theke")
    node = desk.execute("SELECT * FROM node").fetchone()
    performance = hub.ids["performances"][0]
    seats = list(contingents.seats_of(hub.db, performance))[:2]
    contingents.move_seats(hub.db, performance, seats, contingents.node_pool(node["id"]), utcnow())
    try:
        await desk_client.round()
        orders.place_order(desk, node, cards.load_signer(desk, desk_folder), desk_sale(hub), channel="cashdesk",
                           now=utcnow())
        sell(desk, node, SaleIn(performance_id=performance, seat_ids=seats, payment_method="cash"),
             pool=contingents.node_pool(node["id"]), channel="cashdesk", now=utcnow())
        ops = desk.execute("SELECT kind, body FROM outbox ORDER BY node_seq").fetchall()
        before = digest(hub.db)
        for edge_db, client, refused in ((gate, gate_client, {"card.issued", "order.placed", "sale.completed"}),
                                         (counter, counter_client, {"sale.completed"})):
            for op in ops:
                if op["kind"] in refused:
                    inject(edge_db, op["kind"], json.loads(op["body"]))
            await client.push()
            assert results(edge_db) and all("node may not send" in r for r in results(edge_db)), results(edge_db)
        assert digest(hub.db) == before
        await desk_client.push()
        assert results(desk) == ["applied"] * len(ops)
    finally:
        for client in (desk_client, gate_client, counter_client):
            await client.close()


def test_every_recorded_op_kind_is_registered_with_a_strict_body():
    """Every op kind core records is in the registry, and every body refuses unknown fields."""
    import pathlib
    import re

    import hub.sync.apply  # noqa: F401 - the hub imports every room that registers op kinds
    from core.sync.ops import REGISTRY
    root = pathlib.Path(__file__).resolve().parents[1] / "core"
    recorded = set()
    for path in root.rglob("*.py"):
        recorded |= set(re.findall(r"""record\([^,]+,\s*["']([a-z]+\.[a-z_]+)["']""", path.read_text()))
    recorded |= {"card.issued", "card.reissued", "card.revoked"}  # recorded through cards._record(kind)
    assert recorded == set(REGISTRY)
    for kind in REGISTRY.values():
        assert kind.body.__struct_config__.forbid_unknown_fields, kind.kind
        assert kind.roles and kind.roles <= {"cashdesk", "counter", "gate"}
        assert (kind.apply is None) != (kind.row is None), kind.kind
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"record": "x", "extra": 1}, REGISTRY["entry.recorded"].body)


def test_the_sync_docs_list_every_op_kind_with_its_roles_and_rederivation():
    import pathlib

    from core.sync.ops import REGISTRY
    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "sync.md").read_text()
    for kind in REGISTRY.values():
        assert f"| `{kind.kind}` | {', '.join(sorted(kind.roles))} | {kind.rederives} |" in text, kind.kind
