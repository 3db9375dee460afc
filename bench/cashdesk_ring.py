"""The ring sale at the cash desk (issue 14), a part of `python -m bench cashdesk`.

Set-up, real: the office moves ring seats of the sample's "Abo-Ring A" (eight dates in the
Großes Haus on two plan variants) into the enrolled desk's pool at the hub (the same core call
as `POST /subscription-products/{id}/pools`, on the hub's database while the hub serves), and
the desk pulls them with its own sync loop. Then one ring after another is sold at the desk with
`POST /api/subscriptions`, each on its own ring seat (one that every variant has, so no
replacement step), cash with change. The answer arrives once the sale, its eight seat tickets,
its cards and the receipt job are committed and the receipt bytes are written to the simulated
receipt printer, so request to answer is "committed sale + receipt bytes":

- `sale_ring_pass_ms_p50/p99`: form `pass` (receipt printed, the pass queued for the card
  printer's worker); budget p99 <= 50 ms.
- `sale_ring_tickets_ms_p50/p99`: form `single_tickets`: the receipt and eight ticket slips with
  their QR codes printed before the answer; same budget.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.procs import BenchError
from core.base.clock import utcnow
from core.base.node import NODE_DB
from core.base.storage import connect
from core.sales import contingents
from core.subscriptions import ring_pools
from hub.app import DB_NAME

RING = "Abo-Ring A"
RING_SALES = 200
RING_WARMUP = 10
FORMS = ("pass", "single_tickets")


def seats_needed() -> int:
    return len(FORMS) * (RING_SALES + RING_WARMUP)


def move_ring_seats(hub_dir: Path, desk_dir: Path, count: int) -> None:
    """Ring seats of every variant (no wheelchair or companion places) into the desk's pool."""
    desk = connect(desk_dir / NODE_DB, edge=True)
    node_id = desk.execute("SELECT id FROM node").fetchone()["id"]
    desk.close()
    db = connect(hub_dir / DB_NAME)
    try:
        product = db.execute("SELECT id FROM subscription_products WHERE name = ?", (RING,)).fetchone()["id"]
        rows = db.execute(
            "SELECT s.id FROM seats s JOIN seating_plans p ON p.id = s.plan_id WHERE p.name = 'Großes Haus' "
            "AND s.variant_id IS NULL AND s.active = 1 AND s.wheelchair = 0 AND s.companion = 0 "
            "AND s.id NOT IN (SELECT seat_id FROM variant_removed_seats) ORDER BY s.id LIMIT ?", (count,)).fetchall()
        if len(rows) < count:
            raise BenchError(f"only {len(rows)} ring seats for {count} ring sales")
        ring_pools.move_ring_seats(db, product, [r["id"] for r in rows], contingents.node_pool(node_id), utcnow())
    finally:
        db.close()


def wait_for_seats(client, count: int, timeout_s: float = 120.0) -> dict:
    """The desk has pulled the moved seats: its product list counts them free in its pool."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ring = next(p for p in client.call("GET", "/api/subscription-products")["products"] if p["name"] == RING)
        if ring["free_in_pool"] >= count:
            return ring
        time.sleep(0.5)
    raise BenchError(f"the desk did not receive {count} ring seats of {RING} in its pool")


def time_ring_sales(client, ring: dict, customer_id: str, form: str) -> list[float]:
    """Sell RING_WARMUP then RING_SALES rings one at a time, each on the next free seat of the
    desk's pool; the times of the measured ones."""
    times = []
    for k in range(RING_WARMUP + RING_SALES):
        avail = client.call("GET", f"/api/subscription-products/{ring['id']}/availability")
        lead = avail["groups"][0]["variants"][0]["free_seat_ids"]
        if not lead:
            raise BenchError("the desk's ring seats ran out")
        body = {"product_id": ring["id"], "customer_id": customer_id, "seat_ids": [lead[0]], "form": form,
                "payment_method": "cash", "given_cents": 400_00}
        started = time.perf_counter()
        answer = client.call("POST", "/api/subscriptions", body)
        elapsed = (time.perf_counter() - started) * 1000
        if answer["receipt"]["state"] != "printed" or answer["change_cents"] != 400_00 - answer["order"]["total_cents"]:
            raise BenchError(f"ring sale not printed or change wrong: {answer['receipt']}")
        if k >= RING_WARMUP:
            times.append(elapsed)
    return times


def first_customer(hub_dir: Path) -> str:
    db = connect(hub_dir / DB_NAME)
    try:
        return db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]
    finally:
        db.close()
