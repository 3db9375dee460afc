"""The cost of one order on PostgreSQL against SQLite (issue 18: "the per-order cost on
PostgreSQL within 2x of SQLite"), measured in the same run.

The same rule, `core.sales.orders.place_order` (a personalized annual card and a voucher, both
signed, gapless numbers, payment, change feed), on one connection: first on a SQLite hub
file (synchronous=FULL), then on a throwaway PostgreSQL cluster (core/base/pg/cluster.py;
fsync off, unix socket). Both get the same warm-up first.

- `sqlite_order_ms`, `postgresql_order_ms`: wall time per order; the PostgreSQL figure's
  budget is twice the SQLite figure of the same run.
- `sqlite_order_cpu_ms`, `postgresql_order_client_cpu_ms`: this process's CPU per order
  (PostgreSQL's own CPU is not counted there; context, no budget).

This is the single-connection cost; the presale rush across hub processes (`bench rush`)
is a later step of issue 18.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path

from bench.report import figure
from core.base import pg, storage
from core.base.clock import utcnow
from core.base.node import init_node, this_node
from core.base.pg.cluster import Cluster, running_cluster
from core.cards import cards
from core.catalog import resource
from core.catalog.annual import AnnualProductIn, AnnualProducts
from core.catalog.common import Address
from core.catalog.organizers import OrganizerIn, Organizers, VenueIn, Venues
from core.sales import orders
from core.sales.orders import HolderIn, LineIn, OrderIn
from hub.services import nodes

NAME = "postgresql"
ORDERS = 300
WARM_UP = 20
BUDGET_FACTOR = 2.0


def run(count: int = ORDERS, cluster: Cluster | None = None) -> list[dict]:
    """Per-order figures on both backends; PostgreSQL on *cluster* if given (the smoke test passes
    the test session's), else on a cluster started for the run."""
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-postgresql-"))
    try:
        (work / "sqlite").mkdir()
        (work / "postgresql").mkdir()
        lite = storage.connect(work / "sqlite" / "hub.db")
        try:
            lite_wall, lite_cpu = per_order(lite, work / "sqlite", count)
        finally:
            lite.close()
        with contextlib.nullcontext(cluster) if cluster is not None else running_cluster() as cluster:
            url = cluster.create_database(cluster.hub_template())  # the schema copied, not generated
            db = pg.connect(url)
            try:
                pg_wall, pg_cpu = per_order(db, work / "postgresql", count)
            finally:
                db.close()
                cluster.drop_database(url)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [
        figure(NAME, "sqlite_order_ms", lite_wall, "ms"),
        figure(NAME, "postgresql_order_ms", pg_wall, "ms", budget=BUDGET_FACTOR * lite_wall),
        figure(NAME, "sqlite_order_cpu_ms", lite_cpu, "ms"),
        figure(NAME, "postgresql_order_client_cpu_ms", pg_cpu, "ms"),
    ]


def per_order(db, folder: Path, count: int) -> tuple[float, float]:
    """Wall and CPU milliseconds per order, after the warm-up."""
    init_node(db, "hub", "hub")
    signer, order = annual_desk_sale(db, folder)
    node = this_node(db)
    for _ in range(WARM_UP):
        orders.place_order(db, node, signer, order, channel="cashdesk", now=utcnow())
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        orders.place_order(db, node, signer, order, channel="cashdesk", now=utcnow())
    return (time.perf_counter() - wall) / count * 1000, (time.process_time() - cpu) / count * 1000


def annual_desk_sale(db, folder: Path) -> tuple[cards.NodeSigner, OrderIn]:
    """On a hub database (its node made): keys in *folder*, one annual product on sale at
    the desk and online, and a desk order of a personalized card and a voucher for it.
    (tests/test_postgresql_connection.py places the same order.)"""
    nodes.init_trust(folder, db)
    address = Address(street="Museumsweg 1", postcode="10115", town="Berlin", country="DE")
    organizer = resource.create(db, Organizers(), OrganizerIn(name="Museen", address=address))
    venue = resource.create(db, Venues(), VenueIn(organizer_id=organizer["id"], name="Stadtmuseum", kind="museum",
                                                  address=address))
    product = resource.create(db, AnnualProducts(), AnnualProductIn(
        organizer_id=organizer["id"], name="Jahreskarte", validity_mode="from_purchase", months=12,
        price_cents=6000, channels=["cashdesk", "online"], venue_ids=[venue["id"]]))
    order = OrderIn(lines=[LineIn(product_id=product["id"], holders=[HolderIn(name="Erika Mustermann")]),
                           LineIn(product_id=product["id"], kind="voucher")],
                    payment_method="cash", given_cents=20_000)
    return cards.load_signer(db, folder), order
