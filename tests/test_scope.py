"""What a node may see (core/sync/scope.py): per role and replicated table, and the change
feed (hub/sync/feed.py) and the snapshot copy (core/replica.copy_snapshot) agree row for row."""

from __future__ import annotations

import msgspec
import pytest

from core.base import sql
from core.base.clock import utcnow
from core.base.ids import uuid7
from core.base.node import init_node
from core.base.storage import connect, transaction
from core.cards import cards
from core.catalog import operators
from core.sales import contingents
from core.sync import scope
from core.sync.messages import Change
from core.sync.replica import REPLICATED, apply_changes, copy_snapshot
from core.sync.scope import NodeScope
from hub.sync import feed
from tests.test_pins import desk_key

DESKS = ("cashdesk", "counter")
ROLES = (*DESKS, "gate")
ME, OTHER = uuid7(), uuid7()

# The rule, written out: what each role gets of each replicated table.
ALL, NONE, ADDRESSED = "all", "none", "addressed"
SALES_ONLY = {"cashdesk": ALL, "counter": ALL, "gate": NONE}  # seating, prices, windows: a gate checks cards
SPECIAL = {
    "organizers": {"gate": ("tax_number", "vat_id", "sepa_creditor_id")},
    **{table: SALES_ONLY for table in ("price_zones", "plan_sections", "seats", "variant_removed_seats",
                                       "performance_prices", "subscription_zone_prices", "combi_prices",
                                       "sale_windows", "discount_tiers")},
    "customers": {"cashdesk": ALL, "counter": ALL, "gate": NONE},
    "operators": {"cashdesk": ALL, "counter": ALL, "gate": NONE},  # desks log cashiers in
    # a desk's own sealed PIN key and PIN verifiers (core/catalog/pins.py)
    "node_pin_keys": {"cashdesk": ADDRESSED, "counter": ADDRESSED, "gate": NONE},
    "pin_verifiers": {"cashdesk": ADDRESSED, "counter": ADDRESSED, "gate": NONE},
    "cards": {"cashdesk": ALL, "counter": ALL, "gate": ("customer_id", "holder_birth_date", "order_item_id",
                                                         "delivery", "fulfilment", "fulfilment_at")},
    "voucher_redemptions": {"cashdesk": ("operator",), "counter": ("operator",), "gate": NONE},
    "seat_pools": {"cashdesk": ALL, "counter": NONE, "gate": NONE},  # only a cash desk sells seats
    "recalls": {"cashdesk": ADDRESSED, "counter": NONE, "gate": NONE},
    # choice vouchers: desks refuse used ones offline; no printable code on a desk; a gate never sees them
    "choice_vouchers": {"cashdesk": ("code",), "counter": ("code",), "gate": NONE},
    "choice_voucher_redemptions": {"cashdesk": ("operator",), "counter": ("operator",), "gate": NONE},
    # a desk-sold ticket cancelled at the hub: to the desk that sold it, no one else
    "seat_releases": {"cashdesk": ADDRESSED, "counter": NONE, "gate": NONE},
}
EXPECTED = {role: {table: SPECIAL.get(table, {}).get(role, ALL) for table in REPLICATED} for role in ROLES}


def test_every_replicated_table_has_a_rule_and_nothing_else_does():
    assert set(scope.RULES) == set(REPLICATED)
    assert set(ROLES) == scope.ROLES


def test_a_table_without_a_rule_is_seen_by_nobody(monkeypatch):
    monkeypatch.setitem(REPLICATED, "scratch_items", ("id",))
    for role in ROLES:
        assert not scope.sees_table(NodeScope(role, ME), "scratch_items")
        assert scope.view(NodeScope(role, ME), "scratch_items", {"id": "1"}) is None
    assert not scope.sees_table(NodeScope("cashdesk", ME), "orders")  # not replicated at all


@pytest.mark.parametrize("bad", [{"role": "hub", "node_id": ME}, {"role": "admin", "node_id": ME},
                                 {"role": "", "node_id": ME}, {"role": None, "node_id": ME},
                                 {"role": "gate", "node_id": ""}, {"role": "Gate", "node_id": ME}])
def test_only_node_roles_have_a_scope(bad):
    with pytest.raises(ValueError):
        NodeScope.of(bad)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("table", list(REPLICATED))
def test_what_each_role_sees_of_each_table(sample_hub, role, table):
    columns = sql.column_names(sample_hub.db, table)
    mine = {c: f"{c}-value" for c in columns} | ({"node_id": ME} if "node_id" in columns else {})
    others = {**mine, "node_id": OTHER} if "node_id" in columns else mine
    me = NodeScope(role, ME)
    expected = EXPECTED[role][table]
    if expected == NONE:
        assert not scope.sees_table(me, table) and table not in scope.tables(me)
        assert scope.view(me, table, mine) is None
        return
    assert scope.sees_table(me, table) and table in scope.tables(me)
    if expected == ALL:
        assert scope.view(me, table, mine) == mine and scope.view(me, table, others) == others
    elif expected == ADDRESSED:
        assert scope.view(me, table, mine) == mine and scope.view(me, table, others) is None
    else:
        assert scope.view(me, table, mine) == {c: (None if c in expected else v) for c, v in mine.items()}


def test_tables_come_parents_first():
    for role in ROLES:
        seen = scope.tables(NodeScope(role, ME))
        assert seen == [t for t in REPLICATED if t in seen]


# -- the feed and the snapshot agree ---------------------------------------------------------

@pytest.fixture
def hub(sample_hub):
    """The sample hub with what scope is about: a customer's card with a birth date, an
    operator with a PIN, recalls to two desks, a voucher redemption, a seat released to each of two desks."""
    db, now = sample_hub.db, utcnow()
    signer = cards.load_signer(db, sample_hub.dir)
    customer = db.execute("SELECT id FROM customers ORDER BY id LIMIT 1").fetchone()["id"]
    card = cards.issue_card(db, signer, product_id=sample_hub.ids["annual_products"][0], kind="annual", now=now,
                            customer_id=customer, holder_name="Erika Mustermann",
                            details={"holder_birth_date": "1990-04-01"})
    operator = operators.create(db, operators.OperatorIn(name="Anna", pin="2468"), now)
    sample_hub.desk_keys = {node: desk_key(sample_hub, node) for node in (ME, OTHER)}  # PIN verifiers: one each
    performance = db.execute("SELECT id FROM performances ORDER BY id LIMIT 1").fetchone()["id"]
    seats = sorted(contingents.seats_of(db, performance))[:2]
    with transaction(db):
        contingents.request_recall(db, ME, performance, seats[:1], "hub", now)
        contingents.request_recall(db, OTHER, performance, seats[1:], "hub", now)
        db.execute("INSERT INTO voucher_redemptions (voucher_id, card_id, node_id, operator, redeemed_at) "
                   "VALUES (?, ?, ?, 'Anna', ?)", (uuid7(), card["id"], OTHER, now.isoformat()))
        for node, seat in zip((ME, OTHER), seats, strict=True):  # a seat each desk sold, cancelled at the hub
            db.execute("INSERT INTO seat_releases (ticket_id, node_id, order_id, performance_id, seat_id, "
                       "released_at) VALUES (?, ?, ?, ?, ?, ?)", (uuid7(), node, uuid7(), performance, seat,
                                                                  now.isoformat()))
    sample_hub.card, sample_hub.operator = card, operator
    return sample_hub


def node_db(path, role):
    db = connect(path, edge=True)
    init_node(db, role, f"{role} node", node_id=ME)
    return db


def pull_all(hub_db, node, role) -> int:
    """Pull the whole feed as the sync does: pages, over JSON, applied one page at a time."""
    after, more, pulled = 0, True, 0
    while more:
        changes, after, more = feed.page(hub_db, {"node_id": ME, "role": role, "venue_ids": []}, after, 500)
        wire = msgspec.json.decode(msgspec.json.encode(changes), type=list[Change])
        pulled += apply_changes(node, wire, "SELECT ?", (after,))
    return pulled


def local_counts(db) -> dict[str, int]:
    """Rows per table outside REPLICATED (the search index aside: the node's triggers fill it)."""
    tables = [t for t in sql.table_names(db) if not t.startswith("customers_search")]
    return {t: db.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in tables if t not in REPLICATED}


def replicated_contents(db) -> dict[str, list]:
    return {t: sorted((tuple(r.values()) for r in db.execute(f"SELECT * FROM {t}")), key=repr) for t in REPLICATED}


@pytest.mark.parametrize("role", ROLES)
def test_the_feed_and_the_snapshot_give_a_node_the_same_rows(hub, tmp_path, role):
    fed, copied = node_db(tmp_path / "fed.sqlite", role), node_db(tmp_path / "copied.sqlite", role)
    assert pull_all(hub.db, fed, role) > 0
    local_before = local_counts(copied)
    counts = copy_snapshot(hub.db, copied, NodeScope(role, ME))
    assert replicated_contents(fed) == replicated_contents(copied)
    seen = replicated_contents(copied)
    assert {t for t, rows in seen.items() if rows} == set(counts)
    hub_rows = replicated_contents(hub.db)
    for table, expected in EXPECTED[role].items():
        if expected == NONE:
            assert seen[table] == [], table
        elif expected == ALL:
            assert seen[table] == hub_rows[table], table
        elif expected == ADDRESSED:
            assert len(hub_rows[table]) == 2 and [r[1] for r in seen[table]] == [ME], table
        else:
            assert len(seen[table]) == len(hub_rows[table]), table
    # nothing outside REPLICATED reaches a node: the hub's tokens, op log, codes, sales, mail stay
    assert local_counts(copied) == local_before
    assert {t for t, n in local_counts(hub.db).items() if n} >= {"api_tokens", "node"}  # there was something


def test_a_gate_gets_no_customer_data_and_no_pin_material(hub, tmp_path):
    for name, fill in (("fed", lambda db: pull_all(hub.db, db, "gate")),
                       ("copied", lambda db: copy_snapshot(hub.db, db, NodeScope("gate", ME)))):
        gate = node_db(tmp_path / f"{name}.sqlite", "gate")
        fill(gate)
        assert gate.execute("SELECT count(*) AS n FROM customers").fetchone()["n"] == 0
        assert gate.execute("SELECT count(*) AS n FROM customers_search").fetchone()["n"] == 0
        assert gate.execute("SELECT count(*) AS n FROM operators").fetchone()["n"] == 0
        card = gate.execute("SELECT * FROM cards WHERE id = ?", (hub.card["id"],)).fetchone()
        assert card["customer_id"] is None and card["holder_birth_date"] is None
        assert card["holder_name"] == "Erika Mustermann" and card["code"] == hub.card["code"]  # it can still check
        assert gate.execute("SELECT count(*) AS n FROM cards WHERE customer_id IS NOT NULL "
                            "OR holder_birth_date IS NOT NULL").fetchone()["n"] == 0


# What each role was sent before issue 11 and is not now (a stolen node gives away no more than its role needs):
# (table, column or None for the whole table) -> checked on the hub (something to leave out) and at the node.
NO_LONGER_SENT = {
    "cashdesk": [("voucher_redemptions", "operator")],
    "counter": [("voucher_redemptions", "operator"), ("seat_pools", None), ("recalls", None)],
    "gate": [("seats", None), ("performance_prices", None), ("seat_pools", None), ("voucher_redemptions", None),
             ("organizers", "vat_id"), ("organizers", "tax_number"), ("cards", "delivery")],
}


@pytest.mark.parametrize("role", ROLES)
def test_what_a_role_is_no_longer_sent(hub, tmp_path, role):
    """Through the real feed: each field or table below reached this role before and does not now."""
    with transaction(hub.db):
        hub.db.execute("UPDATE organizers SET vat_id = 'DE123456789', tax_number = '60/123/45678'")
        hub.db.execute("UPDATE cards SET delivery = 'counter' WHERE id = ?", (hub.card["id"],))
    performance = hub.db.execute("SELECT id FROM performances ORDER BY id DESC LIMIT 1").fetchone()["id"]
    contingents.move_seats(hub.db, performance, sorted(contingents.seats_of(hub.db, performance))[:3], "blocked",
                           utcnow())
    node = node_db(tmp_path / "node.sqlite", role)
    pull_all(hub.db, node, role)
    for table, column in NO_LONGER_SENT[role]:
        what = column or "count(*)"
        at_hub = hub.db.execute(f"SELECT {what} AS v FROM {table} WHERE {column or 1} IS NOT NULL").fetchall()
        assert at_hub and at_hub[0]["v"], (table, column)  # the hub holds something the old rule sent
        here = node.execute(f"SELECT count(*) AS n FROM {table} WHERE {column or 1} IS NOT NULL").fetchone()["n"]
        assert here == 0, (role, table, column)
        if column is not None:  # the rows themselves still arrive, without the field
            assert node.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] > 0, (table, column)


@pytest.mark.parametrize("role", DESKS)
def test_a_desk_gets_its_operators_and_logs_a_cashier_in_by_pin(hub, tmp_path, role):
    for name, fill in (("fed", lambda db: pull_all(hub.db, db, role)),
                       ("copied", lambda db: copy_snapshot(hub.db, db, NodeScope(role, ME)))):
        desk = node_db(tmp_path / f"{name}.sqlite", role)
        fill(desk)
        mine = hub.desk_keys[ME]
        assert operators.login(desk, hub.operator["id"], "2468", utcnow(), node_key=mine)["name"] == "Anna"
        with pytest.raises(operators.LoginRefused):
            operators.login(desk, hub.operator["id"], "1357", utcnow(), node_key=mine)
        card = desk.execute("SELECT * FROM cards WHERE id = ?", (hub.card["id"],)).fetchone()
        assert card["customer_id"] == hub.card["customer_id"] and card["holder_birth_date"] == "1990-04-01"
        assert desk.execute("SELECT count(*) AS n FROM customers").fetchone()["n"] > 0


def test_a_gate_does_not_hear_of_deleted_rows_it_may_not_see(hub):
    after = feed.head(hub.db)
    with transaction(hub.db):
        hub.db.execute("DELETE FROM operators WHERE id = ?", (hub.operator["id"],))
    gate, _, _ = feed.page(hub.db, {"node_id": ME, "role": "gate", "venue_ids": []}, after, 100)
    desk, _, _ = feed.page(hub.db, {"node_id": ME, "role": "cashdesk", "venue_ids": []}, after, 100)
    assert gate == []
    assert [(c.table, c.key, c.row) for c in desk] == [("operators", [hub.operator["id"]], None)]


def test_copying_again_keeps_a_desks_customer_search_true(hub, tmp_path):
    desk = node_db(tmp_path / "desk.sqlite", "cashdesk")
    copy_snapshot(hub.db, desk, NodeScope("cashdesk", ME))
    customer = hub.card["customer_id"]
    old_name = hub.db.execute("SELECT last_name FROM customers WHERE id = ?", (customer,)).fetchone()["last_name"]
    with transaction(hub.db):
        hub.db.execute("UPDATE customers SET last_name = 'Zwiebelhuber' WHERE id = ?", (customer,))
    copy_snapshot(hub.db, desk, NodeScope("cashdesk", ME))  # REPLACE: the old index entries go too

    def search(text: str) -> list:
        return [r["id"] for r in desk.execute(
            "SELECT c.id FROM customers_search s LEFT JOIN customers c ON c.rowid = s.rowid "
            "WHERE customers_search MATCH ?", (f'"{text}"',))]

    assert search("Zwiebelhuber") == [customer]
    assert customer not in search(old_name) and None not in search(old_name)
