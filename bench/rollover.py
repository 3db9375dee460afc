"""`python -m bench rollover` (S15, DESIGN §9): 20,000 subscriptions rolled over into the next season
including their invoices and the pain.008 file, budget 60 s.

A real hub database in a temporary folder: the sample theatre, plus 26 eight-date rings in the
Großes Haus (pass only, one price zone per seat) sold to 20,000 customers, one subscription each
(set up through the ledger's sale store, `sale.store_sale`; not measured), half of them with an
active recurring SEPA mandate; the next season made as the office would (`hub.sample_next_season`).
Measured, as the office runs it: the run (plan both passes, hold every seat: `rollover_run.run`),
the confirmation (an order, an invoice, a debit where there is a mandate, the pass and its print
job per subscriber: `rollover_confirm.confirm`), and the pain.008 export of the debits
(`sepa.export`, XSD-validated). The figure with the budget is the sum; the parts are context.
A progress bar on stderr (the CLI's), JSON lines on stdout.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

from bench.procs import BenchError
from bench.report import figure
from cli.hub_rollover import ProgressBar
from core.base.clock import LOCAL_TZ
from core.base.node import this_node
from core.base.storage import transaction
from core.cards import cards
from core.catalog import pricing
from core.payments import mandates, sepa
from core.subscriptions import rollover_run
from core.subscriptions.sale import Booked, MemberIn, SubscriptionSaleIn, fresh_ids, store_sale
from hub.services import rollover_confirm

NAME = "rollover"
SUBSCRIPTIONS = 20_000
RINGS = 26  # 26 x 796 sellable seats of the Großes Haus (no wheelchair or companion seat) >= 20,000
BUDGET_S = 60.0
SOLD_AT = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2027, 3, 1, 10, 0, tzinfo=dt.UTC)
CREDITOR_IBAN = "DE89370400440532013000"
DEBTOR_IBAN = "DE02120300000000202051"


def _catalog(db, folder: Path, count: int) -> tuple[dict, dict]:
    """The sample (with 20,000 customers) and 26 bench rings in 2026/27; then season 2027/28."""
    from hub import sample, sample_next_season
    from hub.app import make_app
    from hub.client import LocalClient

    client = LocalClient(make_app(db))
    ids = sample.build(client, scale=-(-count // sample.BASE_CUSTOMERS), performances=8)
    house = client.call("GET", f"/seating-plans/{ids['plans']['Großes Haus']}")
    covered = next(v["id"] for v in house["variants"] if v["name"] == "Orchestergraben überbaut")
    prices = [{"zone_id": z, "price_cents": 2000 + 1000 * k} for k, z in enumerate(ids["zones"].values())]
    bench_ids = {"theatre_organizer": ids["theatre_organizer"], "plans": ids["plans"], "performances": [],
                 "subscriptions": {}}
    for r in range(RINGS):
        perfs = []
        for i in range(8):
            day = dt.date(2026, 9, 20) + dt.timedelta(days=r + 35 * i)
            starts = dt.datetime(day.year, day.month, day.day, 19, 30, tzinfo=LOCAL_TZ).isoformat()
            perfs.append(client.call("POST", "/performances", {
                "venue_id": house["venue_id"], "variant_id": covered, "season_id": ids["season"],
                "title": f"Bench {r + 1:02d}/{i + 1}", "starts_at": starts,
                "prices": [{"zone_id": z, "price_cents": 3000} for z in ids["zones"].values()]})["id"])
        name = f"Bench-Ring {r + 1:02d}"
        bench_ids["subscriptions"][name] = client.call("POST", "/subscription-products", {
            "organizer_id": ids["theatre_organizer"], "season_id": ids["season"], "name": name, "title": name,
            "kind": "ring", "print_options": "pass", "performance_ids": perfs, "zone_prices": prices})["id"]
        bench_ids["performances"] += perfs
    new = sample_next_season.build(client, bench_ids)
    return ids, new


def _sell(db, ids: dict, count: int) -> None:
    """*count* pass subscriptions, one per customer, through the ledger's sale store (not measured)."""
    node = this_node(db)
    customers = [r["id"] for r in db.execute("SELECT id FROM customers ORDER BY number LIMIT ?", (count,))]
    if len(customers) < count:
        raise BenchError(f"the sample has {len(customers)} customers, {count} needed")
    products = [r for r in db.execute("SELECT id, vat_code, print_options, transferable, organizer_id, kind, name "
                                      "FROM subscription_products WHERE name LIKE 'Bench-Ring %' AND season_id = ? "
                                      "ORDER BY name", (ids["season"],))]
    seats = [r for r in db.execute("SELECT id, zone_id FROM seats WHERE plan_id = ? AND variant_id IS NULL AND "
                                   "wheelchair = 0 AND companion = 0 AND active = 1 ORDER BY id",
                                   (ids["plans"]["Großes Haus"],))]
    sold = 0
    with transaction(db):
        for prod in products:
            perfs = [r["performance_id"] for r in db.execute(
                "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position",
                (prod["id"],))]
            for seat in seats[:count - sold]:
                total = pricing.subscription_price(db, prod["id"], seat["zone_id"], None)["price_cents"]
                booked = [Booked(p, seat["id"], seat["zone_id"]) for p in perfs]
                party = [(MemberIn(), booked, (total, pricing.spread(total, [(p, 1) for p in perfs]),
                                               seat["zone_id"]))]
                body = SubscriptionSaleIn(product_id=prod["id"], customer_id=customers[sold],
                                          payment_method="transfer", delivery="mail")
                store_sale(db, node, prod, body, party, fresh_ids(db, node, party, SOLD_AT), form="pass",
                           channel="phone", agency_token=None, now=SOLD_AT)
                sold += 1
            if sold == count:
                return


def _mandates(db, organizer: str, count: int) -> None:
    """A recurring mandate for every second subscriber (their renewal is debited)."""
    mandates.set_creditor_account(db, organizer, mandates.CreditorAccountIn(iban=CREDITOR_IBAN, bic="COBADEFFXXX"),
                                  SOLD_AT)
    customers = [r["id"] for r in db.execute("SELECT id FROM customers ORDER BY number LIMIT ?", (count,))]
    with transaction(db):
        for k, customer in enumerate(customers[::2]):
            mandates.create(db, mandates.MandateIn(organizer_id=organizer, customer_id=customer,
                                                   reference=f"ABO-BENCH-{k:06d}", iban=DEBTOR_IBAN,
                                                   signed_on=SOLD_AT.date()), SOLD_AT)


def measure(count: int = SUBSCRIPTIONS) -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="tessera-bench-rollover-")) / "hub"
    try:
        from hub.app import init_hub

        db, _ = init_hub(folder)
        ids, new = _catalog(db, folder, count)
        _sell(db, ids, count)
        _mandates(db, ids["theatre_organizer"], count)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        bar, node, signer = ProgressBar(), this_node(db), cards.load_signer(db, folder)
        started = time.perf_counter()
        out = rollover_run.run(db, ids["season"], new["season"], NOW, progress=bar)
        run_s = time.perf_counter() - started
        if out["counts"]["kept"] != count:
            raise BenchError(f"expected {count} subscriptions kept, got {out['counts']}")
        started = time.perf_counter()
        done = rollover_confirm.confirm(db, node, signer, out["run"]["id"], NOW, progress=bar)
        confirm_s = time.perf_counter() - started
        if done["states"]["confirmed"] != count:
            raise BenchError(f"expected {count} confirmed, got {done['states']}")
        due = max(r["due_on"] for r in db.execute("SELECT due_on FROM sepa_debits"))
        started = time.perf_counter()
        exported = sepa.export(db, ids["theatre_organizer"], dt.datetime.fromisoformat(due + "T08:00:00+00:00"))
        sepa_s = time.perf_counter() - started
        debits = exported["debits"]
        db.close()
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)
    total = run_s + confirm_s + sepa_s
    return [figure(NAME, f"rollover_{count}_with_invoices_and_pain008_s", total, "s",
                   BUDGET_S if count == SUBSCRIPTIONS else None),
            figure(NAME, "plan_and_hold_s", run_s, "s"),
            figure(NAME, "confirm_orders_invoices_debits_prints_s", confirm_s, "s"),
            figure(NAME, "confirm_per_subscription_ms", confirm_s * 1000 / count, "ms"),
            figure(NAME, f"pain008_{debits}_debits_s", sepa_s, "s")]


def run() -> list[dict]:
    return measure()



