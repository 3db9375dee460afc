"""The choice-voucher figure of `python -m bench claims` (issue 15): two desks on one LAN with
the hub down redeeming one choice voucher; how soon the second refuses.

Set-up, real, while the hub serves (as bench/cashdesk_ring.py does, on the hub's database): the
office sells "Wahlgutschein 6er" packages on the phone (the one sale rule, the vouchers issued and
signed with the hub's card key) and moves seats of one offered performance into the desks' pools:
one per round into Kasse 1's, one into Kasse 2's (a refusal stores nothing, so Kasse 2's seat stays
free). Both desks pull vouchers and seats with their own sync loops. Then, with the hub stopped,
per round one voucher is redeemed at Kasse 1 (`POST /api/voucher-redemptions`, a rest paid cash)
and, as soon as Kasse 1 answers, the same voucher at Kasse 2, which must refuse it (409) naming
Kasse 1:

- `second_desk_choice_refusal_ms_p50/p99`: from Kasse 1's answer to Kasse 2's refusal; budget p99
  <= 1,000 ms, as for the annual-ticket voucher.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import msgspec

from bench.procs import BenchError
from core.base.clock import iso, utcnow
from core.base.node import NODE_DB, this_node
from core.base.storage import connect, transaction
from core.cards import cards
from core.sales import contingents
from core.subscriptions import desk_redemption
from core.subscriptions.passes import issue_subscription_cards
from core.subscriptions.sale import SubscriptionSaleIn, sell_subscriptions
from hub.app import DB_NAME

PRODUCT = "Wahlgutschein 6er"
PULL_TIMEOUT_S = 120.0


def prepare(hub_dir: Path, desk_dirs: list[Path], rounds: int) -> dict:
    """At the hub: enough vouchers for *rounds*, *rounds* seats for the first desk and one for the
    second, of the offered performance ahead with the most free seats. Returns the performance,
    the vouchers' codes and numbers and each desk's seats."""
    node_ids = []
    for folder in desk_dirs:
        desk = connect(folder / NODE_DB, edge=True)
        node_ids.append(desk.execute("SELECT id FROM node").fetchone()["id"])
        desk.close()
    db = connect(hub_dir / DB_NAME)
    try:
        now = utcnow()
        product = db.execute("SELECT id, voucher_count FROM subscription_products WHERE name = ?",
                             (PRODUCT,)).fetchone()
        customer = db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]
        signer = cards.load_signer(db, hub_dir)
        vouchers = []
        for _ in range(math.ceil(rounds / product["voucher_count"])):
            body = msgspec.convert({"product_id": product["id"], "customer_id": customer,
                                    "payment_method": "transfer", "operator": "Bench"}, SubscriptionSaleIn)
            with transaction(db):
                sold = sell_subscriptions(db, this_node(db), body, channel="phone", now=now)
                sub = sold["subscriptions"][0]["id"]
                issue_subscription_cards(db, signer, sub, now)
            vouchers += db.execute("SELECT number, code FROM choice_vouchers WHERE subscription_id = ? "
                                   "ORDER BY position", (sub,)).fetchall()
        perf, free = _roomiest(db, product["id"], now)
        if len(free) < rounds + 1:
            raise BenchError(f"only {len(free)} free seats for {rounds} choice-voucher rounds")
        seats = {node_ids[0]: free[:rounds], node_ids[1]: free[rounds:rounds + 1]}
        for node_id, ids in seats.items():
            contingents.move_seats(db, perf, ids, contingents.node_pool(node_id), now)
    finally:
        db.close()
    return {"performance_id": perf, "vouchers": vouchers[:rounds], "seats": list(seats.values())}


def _roomiest(db, product_id: str, now) -> tuple[str, list[str]]:
    offer = db.execute("SELECT p.id FROM subscription_performances sp JOIN performances p ON p.id = sp.performance_id "
                       "WHERE sp.product_id = ? AND p.starts_at > ?", (product_id, iso(now))).fetchall()
    if not offer:
        raise BenchError(f"{PRODUCT} offers no performance ahead")
    free = {r["id"]: [s["seat_id"] for s in desk_redemption.free_seats(db, r["id"], contingents.HUB)]
            for r in offer}
    perf = max(free, key=lambda p: len(free[p]))
    return perf, free[perf]


def wait_for_pull(client, prepared: dict, seats: list[str]) -> None:
    """The desk holds the last voucher and its seats (pulled by its own sync loop)."""
    deadline = time.monotonic() + PULL_TIMEOUT_S
    last = prepared["vouchers"][-1]["number"]
    while time.monotonic() < deadline:
        try:
            client.call("GET", f"/api/choice-vouchers?number={last}")
            free = client.call("GET", f"/api/voucher-redemptions/seats?performance_id={prepared['performance_id']}")
            if {s["seat_id"] for s in free["seats"]} >= set(seats):
                return
        except BenchError:
            pass
        time.sleep(0.5)
    raise BenchError("a desk did not receive the choice vouchers and its seats from the hub")


def round_(desk1, desk2, prepared: dict, k: int) -> float:
    """Voucher *k* at Kasse 1 (its seat *k*), then at Kasse 2: the ms from Kasse 1's answer to the 409."""
    body = {"vouchers": [{"code": prepared["vouchers"][k]["code"]}], "performance_id": prepared["performance_id"],
            "payment_method": "cash", "given_cents": 100_00}
    desk1.call("POST", "/api/voucher-redemptions", {**body, "seat_id": prepared["seats"][0][k]})
    answered = time.perf_counter()
    try:
        desk2.call("POST", "/api/voucher-redemptions", {**body, "seat_id": prepared["seats"][1][0]})
    except BenchError as exc:
        if ": 409 " not in str(exc) or "Kasse 1" not in str(exc):
            raise
        return (time.perf_counter() - answered) * 1000
    raise BenchError("Kasse 2 redeemed a choice voucher Kasse 1 had redeemed already")
