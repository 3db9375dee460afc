"""Annual-ticket orders in core (A4-A8): a desk sells annual tickets and vouchers offline,
counters exchange vouchers, and the hub receives everything exactly once over real sync.
The voucher rule is the interesting one: two counters that are both offline can exchange
the same voucher; the first exchange to reach the hub wins and the other card is revoked,
so exactly one card survives, and gates refuse the other after their next sync."""

from __future__ import annotations

import datetime as dt
import functools

import pytest

from core.base.clock import LOCAL_TZ, iso, utcnow
from core.base.errors import Conflict, ValidationError
from core.base.ids import uuid7
from core.cards import cardcode, cards, fulfilment
from core.cards.access import Access, GateRules
from core.cards.trusted_time import TrustedClock
from core.catalog import operators
from core.printing import print_queue
from core.sales import orders
from core.sales.orders import HolderIn, LineIn, OrderIn
from tests.test_pins import desk_key
from tests.test_sync import enrolled

VERBUND, STADTMUSEUM_CARD = 0, 1  # sample products: 12 months from purchase / from first entry


def node_of(db) -> dict:
    return db.execute("SELECT * FROM node").fetchone()


def desk_order(hub, *, holders=("Erika Mustermann",), vouchers=1, given=20_000) -> OrderIn:
    product = hub.ids["annual_products"][VERBUND]
    lines = []
    if holders:
        lines.append(LineIn(product_id=product, quantity=len(holders), holders=[HolderIn(name=n) for n in holders]))
    if vouchers:
        lines.append(LineIn(product_id=product, kind="voucher", quantity=vouchers))
    return OrderIn(lines=lines, payment_method="cash", given_cents=given, operator="Anna")


def kinds_in_outbox(db) -> list[str]:
    return [r["kind"] for r in db.execute("SELECT kind FROM outbox ORDER BY node_seq")]


async def test_a_desk_sells_an_annual_ticket_and_a_voucher_offline(hub, tmp_path):
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        signer = cards.load_signer(db, folder)
        order = orders.place_order(db, node_of(db), signer, desk_order(hub), channel="cashdesk", now=utcnow())
        annual, voucher = (item["card"] for item in order["items"])
        assert order["total_cents"] == 2 * hub.db.execute("SELECT price_cents FROM annual_products WHERE id = ?",
                                                          (annual["product_id"],)).fetchone()["price_cents"]
        assert (annual["kind"], annual["holder_name"], annual["fulfilment"], annual["delivery"]) == \
            ("annual", "Erika Mustermann", "personalized", "counter")
        assert (voucher["kind"], voucher["holder_name"], voucher["fulfilment"]) == ("voucher", None, None)
        assert cardcode.decode(voucher["code"]).payload.kind == "voucher"
        # print data for the annual card only (the voucher is printed on the receipt)
        assert [(j["kind"], j["ref_id"]) for j in print_queue.open_jobs(db)] == [("card", annual["id"])]
        assert kinds_in_outbox(db) == ["card.issued", "card.issued", "order.placed"]
        # the desk's card numbers are its own series: never the hub's
        assert annual["number"].startswith("C" + node_of(db)["id"].replace("-", "")[-6:].upper())

        result = await client.round()
        assert result.rejected == 0
        at_hub = orders.order_view(hub.db, order["id"])
        assert at_hub["operator"] == "Anna" and [i["card"]["id"] for i in at_hub["items"]] == \
            [annual["id"], voucher["id"]]
        db.execute("UPDATE sync_state SET pushed_seq = 0")  # everything again: duplicates only
        await client.round()
        assert hub.db.execute("SELECT count(*) AS n FROM orders").fetchone()["n"] == 1
    finally:
        await client.close()


async def test_bad_orders_change_nothing(hub, tmp_path):
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        signer, node = cards.load_signer(db, folder), node_of(db)
        before = kinds_in_outbox(db)
        product = hub.ids["annual_products"][VERBUND]
        bad = [
            (OrderIn(lines=[LineIn(product_id=product, quantity=2, holders=[HolderIn(name="Eine")])],
                     payment_method="cash"), ValidationError, "one holder per card"),
            (desk_order(hub, given=100), ValidationError, "cover the total"),
            (OrderIn(lines=[LineIn(product_id=product, kind="voucher", holders=[HolderIn(name="X")])],
                     payment_method="cash"), ValidationError, "no holder"),
            (OrderIn(lines=[LineIn(product_id=product, holders=[HolderIn(name="X", valid_from=dt.date(2020, 1, 1))])],
                     payment_method="card", payment_reference="T-1"), ValidationError, "start day"),
            (OrderIn(lines=[LineIn(product_id=hub.ids["annual_products"][STADTMUSEUM_CARD],
                                   holders=[HolderIn(name="X", valid_from=dt.date.today())])],
                     payment_method="card", payment_reference="T-1"), ValidationError, "no choosable start"),
            (OrderIn(lines=[LineIn(product_id=product, holders=[HolderIn(name="X")])], payment_method="transfer"),
             ValidationError, "cash or card"),
            (OrderIn(lines=[LineIn(product_id=product, holders=[HolderIn(name="X")])], payment_method="card",
                     payment_reference="  "), ValidationError, "terminal's reference"),
        ]
        for order, error, words in bad:
            with pytest.raises(error, match=words):
                orders.place_order(db, node, signer, order, channel="cashdesk", now=utcnow())
        assert kinds_in_outbox(db) == before
        assert db.execute("SELECT count(*) AS n FROM orders").fetchone()["n"] == 0
        assert db.execute("SELECT count(*) AS n FROM cards WHERE issued_by = ?", (node["id"],)).fetchone()["n"] == 0
    finally:
        await client.close()


async def test_a_chosen_start_day_sets_the_validity(hub, tmp_path):
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        start = utcnow().astimezone(LOCAL_TZ).date() + dt.timedelta(days=10)
        order = OrderIn(lines=[LineIn(product_id=hub.ids["annual_products"][VERBUND],
                                      holders=[HolderIn(name="Max", valid_from=start,
                                                        birth_date=dt.date(1990, 5, 1))])], payment_method="card",
                        payment_reference="TERM-4711")
        card = orders.place_order(db, node_of(db), cards.load_signer(db, folder), order, channel="cashdesk",
                                  now=utcnow())["items"][0]["card"]
        payload = cardcode.decode(card["code"]).payload
        first = dt.datetime.fromtimestamp(payload.valid_from * 60, dt.UTC).astimezone(LOCAL_TZ)
        last = dt.datetime.fromtimestamp(payload.valid_until * 60, dt.UTC).astimezone(LOCAL_TZ)
        assert first.date() == start and last.date() == start.replace(year=start.year + 1) - dt.timedelta(days=1)
        assert card["holder_birth_date"] == "1990-05-01"
    finally:
        await client.close()


def access_for(db, venue: str | None = None) -> Access:
    return Access(db, GateRules(venue_id=venue), TrustedClock(db))


async def test_a_voucher_is_exchanged_once_even_by_two_offline_counters(hub, tmp_path):
    desk_dir, desk, desk_sync = await enrolled(hub, tmp_path, "cashdesk", "Kasse 1")
    a_dir, counter_a, a_sync = await enrolled(hub, tmp_path, "counter", "Theke A")
    b_dir, counter_b, b_sync = await enrolled(hub, tmp_path, "counter", "Theke B")
    try:
        for client in (desk_sync, a_sync, b_sync):
            await client.round()
        order = orders.place_order(desk, node_of(desk), cards.load_signer(desk, desk_dir),
                                   desk_order(hub, holders=(), vouchers=1), channel="cashdesk", now=utcnow())
        code = order["items"][0]["card"]["code"]
        # both counters are offline: neither has even heard of the voucher, its signature is enough
        signer_a, signer_b = cards.load_signer(counter_a, a_dir), cards.load_signer(counter_b, b_dir)
        card_a = orders.redeem_voucher(counter_a, signer_a, access_for(counter_a), code,
                                       HolderIn(name="Anna Alt"), utcnow(), operator="Uwe")
        with pytest.raises(Conflict, match="already exchanged"):  # the same counter knows at once
            orders.redeem_voucher(counter_a, signer_a, access_for(counter_a), code, HolderIn(name="Wer"), utcnow())
        card_b = orders.redeem_voucher(counter_b, signer_b, access_for(counter_b), code.lower(),
                                       HolderIn(name="Bernd Bauer"), utcnow())
        assert card_a["kind"] == card_b["kind"] == "annual" and card_a["id"] != card_b["id"]

        assert (await a_sync.round()).rejected == 0  # A reaches the hub first: A wins
        result = await b_sync.round()
        assert result.rejected == 1
        conflict = hub.db.execute("SELECT * FROM conflicts WHERE kind = 'voucher.redeemed'").fetchone()
        assert "already exchanged" in conflict["reason"] and card_a["number"] in conflict["reason"]
        assert hub.db.execute("SELECT card_id FROM voucher_redemptions").fetchall() == [{"card_id": card_a["id"]}]
        assert hub.db.execute("SELECT revoked_at FROM cards WHERE id = ?", (card_b["id"],)).fetchone()["revoked_at"]
        await desk_sync.round()  # the voucher card itself arrives last: nothing breaks
        await b_sync.round()  # B learns: its card is revoked, and the voucher is used
        assert counter_b.execute("SELECT revoked_at FROM cards WHERE id = ?", (card_b["id"],)).fetchone()["revoked_at"]
        with pytest.raises(Conflict, match="already exchanged"):
            orders.check_voucher(counter_b, access_for(counter_b), code)

        venue = hub.ids["museum_venues"]["Stadtmuseum"]
        gate = access_for(hub.db, venue)
        assert gate.decide(card_a["code"]).reason == "ADMITTED"
        assert gate.decide(card_b["code"]).reason == "REVOKED"
        assert gate.decide(code).reason == "WRONG_VENUE"  # a voucher never opens a gate
    finally:
        for client in (desk_sync, a_sync, b_sync):
            await client.close()


async def test_what_a_counter_refuses(hub, tmp_path):
    folder, db, client = await enrolled(hub, tmp_path, "counter", "Theke")
    try:
        await client.round()
        signer, access = cards.load_signer(db, folder), access_for(db)
        hub_signer = cards.load_signer(hub.db, hub.dir)
        product = hub.ids["annual_products"][VERBUND]
        voucher = cards.issue_card(hub.db, hub_signer, product_id=product, kind="voucher", now=utcnow())
        annual = cards.issue_card(hub.db, hub_signer, product_id=product, kind="annual", now=utcnow(), holder_name="X")
        forged = voucher["code"][:-3] + ("000" if voucher["code"][-3:] != "000" else "111")
        for code, words in ((forged, "forged|Unreadable"), (voucher["code"][:40], "Unreadable"),
                            (annual["code"], "not a voucher"), ("hello", "Unreadable")):
            with pytest.raises(ValidationError, match=words):
                orders.redeem_voucher(db, signer, access, code, HolderIn(name="Y"), utcnow())
        cards.revoke_card(hub.db, hub_signer, voucher["id"], "refunded", utcnow())
        await client.round()
        with pytest.raises(Conflict, match="revoked"):
            orders.redeem_voucher(db, signer, access, voucher["code"], HolderIn(name="Y"), utcnow())
        assert db.execute("SELECT count(*) AS n FROM voucher_redemptions").fetchone()["n"] == 0
    finally:
        await client.close()


async def test_printing_and_fulfilment_reach_the_hub(hub, tmp_path):
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        node, signer = node_of(db), cards.load_signer(db, folder)
        order = orders.place_order(db, node, signer, desk_order(hub, vouchers=0), channel="cashdesk", now=utcnow())
        card = order["items"][0]["card"]
        job = print_queue.open_jobs(db)[0]
        print_queue.mark_failed(db, [job["id"]], "out of paper")
        assert print_queue.counts(db) == {"queued": 0, "failed": 1}
        assert db.execute("SELECT fulfilment FROM cards WHERE id = ?", (card["id"],)).fetchone()["fulfilment"] \
            == "personalized"
        print_queue.retry(db)
        print_queue.mark_printed(db, node, [job["id"]], utcnow())
        fulfilment.set_fulfilment(db, node, [card["id"]], "handed_over", utcnow())
        await client.round()
        assert hub.db.execute("SELECT fulfilment FROM cards WHERE id = ?", (card["id"],)).fetchone()["fulfilment"] \
            == "handed_over"
        assert hub.db.execute("SELECT count(*) AS n FROM conflicts").fetchone()["n"] == 0
    finally:
        await client.close()


def test_fulfilment_moves_only_forward_along_the_delivery(sample_hub):
    signer = cards.load_signer(sample_hub.db, sample_hub.dir)
    node = node_of(sample_hub.db)
    made = {}
    for delivery in ("mail", "pickup"):
        customer = sample_hub.db.execute("SELECT id FROM customers LIMIT 1").fetchone()["id"]
        order = OrderIn(lines=[LineIn(product_id=sample_hub.ids["annual_products"][VERBUND],
                                      holders=[HolderIn(name=f"Per {delivery}")])], customer_id=customer,
                        delivery=delivery, payment_method="transfer")
        made[delivery] = orders.place_order(sample_hub.db, node, signer, order, channel="phone",
                                            now=utcnow())["items"][0]["card"]
    mail, pickup = made["mail"], made["pickup"]
    kinds = sorted(j["kind"] for j in print_queue.open_jobs(sample_hub.db) if j["ref_id"] == mail["id"])
    assert kinds == ["card", "carrier"]  # a mailed card also gets its address carrier
    with pytest.raises(Conflict, match="from personalized to dispatched"):
        fulfilment.set_fulfilment(sample_hub.db, node, [mail["id"]], "dispatched", utcnow())
    fulfilment.set_fulfilment(sample_hub.db, node, [mail["id"], pickup["id"]], "printed", utcnow())
    with pytest.raises(Conflict, match="goes by mail"):  # all or nothing
        fulfilment.set_fulfilment(sample_hub.db, node, [pickup["id"], mail["id"]], "deposited", utcnow())
    assert sample_hub.db.execute("SELECT fulfilment FROM cards WHERE id = ?", (pickup["id"],)).fetchone() == \
        {"fulfilment": "printed"}
    fulfilment.set_fulfilment(sample_hub.db, node, [pickup["id"]], "deposited", utcnow())
    fulfilment.set_fulfilment(sample_hub.db, node, [pickup["id"]], "handed_over", utcnow())
    fulfilment.set_fulfilment(sample_hub.db, node, [mail["id"]], "dispatched", utcnow())
    # a late, stale move from a desk changes nothing
    fulfilment.apply_fulfilment(sample_hub.db, fulfilment.FulfilmentOp(id=mail["id"], issue=1, fulfilment="printed",
                                                               at="2026-01-01T00:00:00Z"), utcnow())
    assert sample_hub.db.execute("SELECT fulfilment FROM cards WHERE id = ?", (mail["id"],)).fetchone() == \
        {"fulfilment": "dispatched"}

    # lost: a new issue, back to personalized, a new print job; the old job no longer prints it
    old_jobs = [j["id"] for j in print_queue.open_jobs(sample_hub.db) if j["ref_id"] == pickup["id"]]
    replaced = orders.replace_lost_card(sample_hub.db, signer, pickup["id"], utcnow())
    assert (replaced["issue"], replaced["fulfilment"]) == (2, "personalized")
    print_queue.mark_printed(sample_hub.db, node, old_jobs, utcnow())
    assert sample_hub.db.execute("SELECT fulfilment FROM cards WHERE id = ?", (pickup["id"],)).fetchone() == \
        {"fulfilment": "personalized"}
    venue = sample_hub.ids["museum_venues"]["Stadtmuseum"]
    assert access_for(sample_hub.db, venue).decide(pickup["code"]).reason == "SUPERSEDED"


def test_operators_log_in_with_a_pin_and_are_locked_out(sample_hub):
    db, now = sample_hub.db, utcnow()
    anna = operators.create(db, operators.OperatorIn(name="Anna", pin="4711"), now)
    assert "pin_hash" not in anna and "4711" not in str(db.execute("SELECT * FROM operator_pins").fetchall())
    # a PIN is checked with a desk's own key and verifier (core/catalog/pins.py)
    login = functools.partial(operators.login, db, node_key=desk_key(sample_hub, uuid7()))
    assert login(anna["id"], "4711", now)["name"] == "Anna"
    for left in (4, 3, 2, 1):
        with pytest.raises(operators.LoginRefused, match=f"{left} tries left"):
            login(anna["id"], "0000", now)
    with pytest.raises(operators.LoginRefused, match="locked for 30 seconds"):
        login(anna["id"], "0000", now)
    with pytest.raises(operators.LoginRefused, match="locked until"):  # even the right PIN, for a while
        login(anna["id"], "4711", now + dt.timedelta(seconds=10))
    # another screen (the till, while someone on the LAN guesses) is not locked out
    assert login(anna["id"], "4711", now, screen="192.0.2.9")["name"] == "Anna"
    # five more wrong PINs after the lock: locked twice as long, and so on up to MAX_LOCK
    later = now + dt.timedelta(seconds=31)
    for _ in range(4):
        with pytest.raises(operators.LoginRefused, match="tries left"):
            login(anna["id"], "0000", later)
    with pytest.raises(operators.LoginRefused, match="locked for 1 minutes"):
        login(anna["id"], "0000", later)
    for lockouts in range(2, 10):  # a persistent guesser: 2, 4, 8, ... minutes, never more than 15
        later += operators.MAX_LOCK + dt.timedelta(seconds=1)
        for _ in range(4):
            with pytest.raises(operators.LoginRefused):
                login(anna["id"], "0000", later)
        with pytest.raises(operators.LoginRefused) as refused:
            login(anna["id"], "0000", later)
        expected = min(operators.FIRST_LOCK * 2 ** lockouts, operators.MAX_LOCK)
        assert refused.value.extra["locked_until"] == iso(later + expected)
    assert login(anna["id"], "4711", later + operators.MAX_LOCK)["name"] == "Anna"
    # the right PIN starts afresh: the next lockout is short again
    for _ in range(4):
        with pytest.raises(operators.LoginRefused):
            login(anna["id"], "0000", later + operators.MAX_LOCK)
    with pytest.raises(operators.LoginRefused, match="30 seconds"):
        login(anna["id"], "0000", later + operators.MAX_LOCK)
    with pytest.raises(ValidationError):
        login(anna["id"], "12ab", now)
    with pytest.raises(Conflict, match="exists already"):
        operators.create(db, operators.OperatorIn(name="Anna", pin="1234"), now)


async def test_the_days_summary_per_operator_and_payment(hub, tmp_path):
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        node, signer = node_of(db), cards.load_signer(db, folder)
        now = utcnow()
        for operator, method in (("Anna", "cash"), ("Anna", "cash"), ("Ben", "card")):
            order = desk_order(hub, vouchers=0, given=None)
            order.operator, order.payment_method = operator, method
            order.payment_reference = "T-4711" if method == "card" else None
            orders.place_order(db, node, signer, order, channel="cashdesk", now=now)
        summary = orders.day_summary(db, node["id"], now.astimezone(LOCAL_TZ).date())
        price = hub.db.execute("SELECT price_cents FROM annual_products WHERE id = ?",
                               (hub.ids["annual_products"][VERBUND],)).fetchone()["price_cents"]
        assert summary == [{"operator": "Anna", "payment_method": "cash", "sales": 2, "total_cents": 2 * price},
                           {"operator": "Ben", "payment_method": "card", "sales": 1, "total_cents": price}]
        assert [c["holder_name"] for c in orders.find_cards(db, "muster")] == ["Erika Mustermann"] * 3
        orders.place_order(db, node, signer, desk_order(hub, holders=("Özlem Ölbaum",), vouchers=0, given=None),
                           channel="cashdesk", now=now)
        for query in ("ölbaum", "ÖLBAUM", "özlem öl"):  # not only ASCII folds
            assert [c["holder_name"] for c in orders.find_cards(db, query)] == ["Özlem Ölbaum"]
        assert orders.find_cards(db, "%") == [] and orders.find_cards(db, "_") == []
    finally:
        await client.close()


async def test_a_local_change_made_while_a_pull_is_on_its_way_is_not_overwritten(hub, tmp_path):
    """The counter prints a card (personalized -> printed) while the sync client waits for a
    page that still holds the hub's older row: the page must not undo the local change."""
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        node, signer = node_of(db), cards.load_signer(db, folder)
        card = orders.place_order(db, node, signer, desk_order(hub, vouchers=0), channel="cashdesk",
                                  now=utcnow())["items"][0]["card"]
        await client.round()  # the hub now holds the card as personalized
        hub.db.execute("UPDATE cards SET holder_name = holder_name WHERE id = ?", (card["id"],))  # in the next page
        real_request = client.request

        async def request(method, path, body=None):
            answer = await real_request(method, path, body) if body is not None else await real_request(method, path)
            if path.startswith("/pull") and not request.printed:
                request.printed = True
                job = print_queue.open_jobs(db)[0]
                print_queue.mark_printed(db, node, [job["id"]], utcnow())
            return answer

        request.printed = False
        client.request = request
        await client.round()
        assert db.execute("SELECT fulfilment FROM cards WHERE id = ?", (card["id"],)).fetchone() == \
            {"fulfilment": "printed"}
        assert hub.db.execute("SELECT fulfilment FROM cards WHERE id = ?", (card["id"],)).fetchone() == \
            {"fulfilment": "printed"}
        fulfilment.set_fulfilment(db, node, [card["id"]], "handed_over", utcnow())
    finally:
        await client.close()
