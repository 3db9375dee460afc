"""Confirming a season rollover (S15): the held seats become next season's subscriptions.

The seed's order: "Nach der Übernahme werden Rechnungen erzeugt und Zahlungen verbucht;
anschließend erfolgt der Druck". Per subscriber and new product (a couple side by side stays one
order), in ONE transaction:

1. the order through the ledger's one sale store (`sale.store_sale` -> `orders.store_order`): a
   line, a `subscriptions` row (new number from the `ABO` series) and the seat tickets per
   member, priced by the catalog (`sale.price`, the tier matched by name in the plan), channel
   `phone` (the office's); the run's holds on those seats go in the same transaction;
2. the invoice (`invoices.issue`);
3. the payment: where the customer has an active recurring SEPA mandate with the organizer the
   order is owed by direct debit and the debit is created (`debits.create_from_order`, due on
   the invoice's due date); the pain.008 export sends it RCUR when the mandate already collected
   its FRST (`mandates`); otherwise the invoice is paid by transfer;
4. the cards and their print jobs (`passes.issue_subscription_cards`: pass and/or single tickets).

Only `held` items of outcome kept or moved are confirmed (paused ones stay held until resumed or
the deadline passes). Groups are committed 500 at a time, each in a savepoint of its own: a
group that fails (its hold expired and the seat was sold meanwhile) is rolled back alone and its
items are marked `failed` with the reason; every confirmed item names
its new subscription, order, invoice and debit, so a second confirmation does nothing twice.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.sql import json_values
from core.base.storage import transaction
from core.cards.cards import NodeSigner
from core.catalog import pricing, resource
from core.catalog.subscriptions import Subscriptions
from core.payments import debits, invoices
from core.subscriptions import holds, passes, rollover_run
from core.subscriptions.rollover_run import Progress, _quiet
from core.subscriptions.sale import Booked, MemberIn, SubscriptionSaleIn, fresh_ids, price, store_sale

OPERATOR = "Saisonübernahme"
CHUNK = 500  # orders per commit: one fsync per 500 orders, not per order (a group fails alone)


def _groups(items: list[dict]) -> list[list[dict]]:
    """Items by (customer, new product), in order of sale of their first subscription."""
    out: dict[tuple[str, str], list[dict]] = {}
    for item in items:
        out.setdefault((item["customer_id"], item["to_product_id"]), []).append(item)
    return list(out.values())


def selected(db: sqlite3.Connection, run_id: str, customer_numbers: Sequence[str] | None) -> list[dict]:
    """The run's items to confirm: held, kept or moved; of the customers named (numbers), or all."""
    items = [i for i in rollover_run.items_of(db, run_id)
             if i["state"] == "held" and i["outcome"] in ("kept", "moved")]
    if customer_numbers:
        wanted = {n.strip().upper() for n in customer_numbers}
        known = {r["number"] for r in db.execute("SELECT number FROM customers WHERE number IN "
                                                 f"({', '.join('?' * len(wanted))})", sorted(wanted))}
        unknown = sorted(wanted - known)
        if unknown:
            raise NotFound(f"no customer {unknown[0]}", field="subscribers", detail_de=f"Kein Kunde {unknown[0]}")
        items = [i for i in items if i["customer_number"] in wanted]
    return items


def check_planned(run_row: dict) -> None:
    """Confirm only a run whose planning got to its end (one cut short: run it again first)."""
    if run_row["state"] == "planning":
        raise Conflict("the rollover is still being planned: run it to the end first",
                       detail_de="Die Übernahme ist noch nicht fertig geplant: erst zu Ende laufen lassen")


def confirm(db: sqlite3.Connection, node: dict, signer: NodeSigner, run_id: str, now: dt.datetime, *,
            customer_numbers: Sequence[str] | None = None, progress: Progress = _quiet) -> dict:
    """Confirm the held items (of *customer_numbers*, or all): orders, invoices, debits, prints."""
    current = rollover_run.get(db, run_id)
    check_planned(current)
    groups = _groups(selected(db, run_id, customer_numbers))
    total = sum(len(g) for g in groups)
    rollover_run.set_progress(db, run_id, "confirming", total, 0, now)
    progress("confirm", 0, total)
    done, catalog = 0, Catalog(db)
    for start in range(0, len(groups), CHUNK):
        chunk = groups[start:start + CHUNK]
        with transaction(db):  # a chunk per commit; each group its own savepoint inside it
            facts = Facts.read(db, current["id"], [i for g in chunk for i in g], now)
            for group in chunk:
                try:
                    _confirm_group(db, node, signer, current, group, now, catalog, facts)
                except (Conflict, ValidationError, NotFound) as exc:
                    _fail(db, run_id, group, exc.detail, now)
            done += sum(len(g) for g in chunk)
            rollover_run.set_progress(db, run_id, "confirming", total, done, now)
        progress("confirm", done, total)
    left = db.execute("SELECT count(*) AS n FROM rollover_items WHERE run_id = ? AND state = 'held' "
                      "AND outcome <> 'paused'", (run_id,)).fetchone()["n"]
    rollover_run.set_progress(db, run_id, "held" if left else "done", total, total, now)
    return rollover_run.result(db, run_id)


def _fail(db: sqlite3.Connection, run_id: str, group: list[dict], why: str, now: dt.datetime) -> None:
    with transaction(db):
        db.executemany("UPDATE rollover_items SET state = 'failed', error = ?, updated_at = ? "
                       "WHERE run_id = ? AND subscription_id = ?",
                       [(why[:500], iso(now), run_id, i["subscription_id"]) for i in group])


class Catalog:
    """The new products and their prices, read once per confirmation (the same few products and
    zones for thousands of subscribers): `sale.price` per product, tier and seats' zones, kept."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._products: dict[str, dict] = {}
        self._prices: dict[tuple, tuple[int, dict[str, int], str | None]] = {}

    def product(self, product_id: str) -> dict:
        if product_id not in self._products:
            self._products[product_id] = resource.get(self.db, Subscriptions(), product_id)
        return self._products[product_id]

    def price(self, prod: dict, booked: list[Booked], tier_id: str | None) -> tuple[int, dict[str, int], str | None]:
        if prod["kind"] == "voucher":
            return pricing.subscription_price(self.db, prod["id"], None, tier_id)["price_cents"], {}, None
        key = (prod["id"], tier_id, tuple((b.performance_id, b.zone_id) for b in booked))
        if key not in self._prices:
            self._prices[key] = price(self.db, prod, booked, tier_id, None, "internal")
        return self._prices[key]


@dataclass
class Facts:
    """What a chunk's groups need from the database, read in a few statements for the whole chunk
    (in its transaction, so nothing changes under it): the old subscriptions (form, pass name,
    delivery), the seats each hold still has, the seats' zones, and the customers' mandates."""

    old: dict[str, dict]
    held: dict[str, int]
    zones: dict[str, str]
    mandates: dict[tuple[str, str], dict]

    @classmethod
    def read(cls, db: sqlite3.Connection, run_id: str, items: list[dict], now: dt.datetime) -> Facts:
        def ids(values) -> str:
            return json.dumps(sorted(set(values)))

        old = {r["id"]: r for r in db.execute(
            "SELECT s.id, s.form, s.holder_name, o.delivery FROM subscriptions s JOIN orders o ON o.id = s.order_id "
            f"WHERE s.id IN ({json_values()})", (ids(i["subscription_id"] for i in items),))}
        held = {r["hold_id"]: r["n"] for r in db.execute(
            f"SELECT hold_id, count(*) AS n FROM seat_holds WHERE hold_id IN ({json_values()}) AND holder = ? "
            "AND expires_at > ? GROUP BY hold_id", (ids(i["hold_id"] for i in items if i["hold_id"]),
                                                    rollover_run.holder_of(run_id), iso(now)))}
        zones = {r["id"]: r["zone_id"] for r in db.execute(
            f"SELECT id, zone_id FROM seats WHERE id IN ({json_values()})",
            (ids(seat for i in items for _, seat in i["seats"]),))}
        mandates: dict[tuple[str, str], dict] = {}
        for r in db.execute(f"SELECT * FROM sepa_mandates WHERE customer_id IN ({json_values()}) AND state = 'active' "
                            "AND kind = 'recurring' ORDER BY signed_on DESC, id DESC",
                            (ids(i["customer_id"] for i in items),)):
            mandates.setdefault((r["organizer_id"], r["customer_id"]), r)  # the newest per creditor
        return cls(old, held, zones, mandates)


def _confirm_group(db: sqlite3.Connection, node: dict, signer: NodeSigner, run_row: dict, group: list[dict],
                   now: dt.datetime, catalog: Catalog, facts: Facts) -> None:
    holder = rollover_run.holder_of(run_row["id"])
    with transaction(db):
        prod = catalog.product(group[0]["to_product_id"])
        old = [facts.old[i["subscription_id"]] for i in group]
        bookings = [[(p, s) for p, s in item["seats"]] for item in group]
        _check_held(facts, group, bookings)
        holds.release_seats(db, holder, [b for seats in bookings for b in seats])
        party = [_member(facts, catalog, prod, item, old_sub, seats)
                 for item, old_sub, seats in zip(group, old, bookings, strict=True)]
        total = sum(priced[0] for _, _, priced in party)
        mandate = facts.mandates.get((prod["organizer_id"], group[0]["customer_id"])) if total else None
        body = SubscriptionSaleIn(product_id=prod["id"], customer_id=group[0]["customer_id"],
                                  delivery="mail" if old[0]["delivery"] == "mail" else "pickup",
                                  payment_method="sepa" if mandate else ("transfer" if total else "none"),
                                  operator=OPERATOR)
        form = old[0]["form"] if prod["print_options"] == "both" or prod["print_options"] == old[0]["form"] \
            else prod["print_options"]
        sold = store_sale(db, node, prod, body, party, fresh_ids(db, node, party, now), form=form, channel="phone",
                          agency_token=None, now=now)
        invoice = invoices.issue(db, node, sold["order_id"], invoices.InvoiceIn(), now=now, operator=OPERATOR)
        debit = None
        if mandate:
            due = dt.date.fromisoformat(invoice["due_on"]) if invoice["due_on"] else None
            debit = debits.create_from_order(db, debits.DebitIn(order_id=sold["order_id"], mandate_id=mandate["id"],
                                                                due_on=due), now)
        for item, sub in zip(group, sold["subscriptions"], strict=True):
            passes.issue_subscription_cards(db, signer, sub["id"], now)
            db.execute("UPDATE rollover_items SET state = 'confirmed', new_subscription_id = ?, order_id = ?, "
                       "invoice_id = ?, debit_id = ?, error = NULL, updated_at = ? WHERE run_id = ? AND "
                       "subscription_id = ?", (sub["id"], sold["order_id"], invoice["id"],
                                               debit["id"] if debit else None, iso(now), run_row["id"],
                                               item["subscription_id"]))


def _check_held(facts: Facts, group: list[dict], bookings: list[list[tuple[str, str]]]) -> None:
    """Every seat still held by the run (the renewal deadline not passed)."""
    for item, seats in zip(group, bookings, strict=True):
        if seats and facts.held.get(item["hold_id"], 0) != len(seats):
            raise Conflict(f"the renewal deadline of subscription {item['number']} has passed: its seats are no "
                           "longer held", detail_de=f"Die Verlängerungsfrist von Abo {item['number']} ist "
                                                    "abgelaufen: die Plätze sind nicht mehr reserviert")


def _member(facts: Facts, catalog: Catalog, prod: dict, item: dict, old: dict,
            seats: list[tuple[str, str]]) -> tuple[MemberIn, list[Booked], tuple[int, dict[str, int], str | None]]:
    """One member of the order as `store_sale` takes it: its tier and pass name, seats, and price."""
    booked = [Booked(perf, seat, facts.zones[seat]) for perf, seat in seats]
    return MemberIn(tier_id=item["tier_id"], holder_name=old["holder_name"]), booked, \
        catalog.price(prod, booked, item["tier_id"])
