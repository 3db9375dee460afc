"""`kill -9` of a cash desk in the middle of ring sales (issue 14, E2, S17): a real `tessera edge
serve` sells "Abo-Ring A" subscriptions from its pool over its own HTTP API in a loop while a
thread kills it at a seeded random moment, several times. After every kill the desk's file is
sound and nothing is half-stored there (a subscription has a ticket in each of the ring's eight
dates, every sale has its `subscription.sold` op and every op its sale). Once the desk is back and
synced, every ring it acknowledged (201) is at the hub exactly once with all its tickets, and the
seat of an attempt cut by the kill is either sold completely (all eight dates, one subscription)
or free in every date, at the desk and at the hub.

Real processes as a user runs them (`tessera hub serve`, `tessera hub enroll`, `tessera edge
enroll`, `tessera edge serve`); the office moves the ring seats into the desk's pool at the hub.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from core.base.clock import utcnow
from core.base.node import NODE_DB
from core.base.storage import connect
from core.sales import contingents
from core.subscriptions import ring_pools
from hub.app import DB_NAME
from tests.test_sync_kill import PIN, Process, call, log_in, run_here

pytestmark = pytest.mark.slow  # kill -9 rounds of a real tessera edge

SEED = 14
ROUNDS = 4
POOL_SEATS = 90  # ring seats in the desk's pool (rows 3 to 8 of the Parkett, every variant has them)
PER_LIFE = POOL_SEATS // (ROUNDS + 2)  # sales one life of the desk may make: a fast machine never empties the pool
RING = "Abo-Ring A"
CARDS = {"pass": ["subscription"], "single_tickets": ["single"] * 8, "both": ["single"] * 8 + ["subscription"]}


def ring_seats(db, plan_id: str, rng: random.Random) -> list[str]:
    rows = db.execute("SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id WHERE s.plan_id = ? "
                      "AND c.name = 'Parkett' AND s.variant_id IS NULL AND s.row_label IN ('3','4','5','6','7','8') "
                      "ORDER BY s.row_label, CAST(s.label AS INTEGER)", (plan_id,)).fetchall()
    return rng.sample([r["id"] for r in rows], POOL_SEATS)


def open_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30)
    db.row_factory = sqlite3.Row
    return db


def sold_lines(db: sqlite3.Connection, ring: list[str], seat_id: str) -> dict[str, list[str]]:
    """line id -> the dates of the ring the seat is sold in on that line."""
    marks = ",".join("?" * len(ring))
    out: dict[str, list[str]] = {}
    for r in db.execute(f"SELECT line_id, performance_id FROM tickets WHERE seat_id = ? AND status = 'sold' "
                        f"AND performance_id IN ({marks})", (seat_id, *ring)):
        out.setdefault(r["line_id"], []).append(r["performance_id"])
    return out


def whole_or_free(db: sqlite3.Connection, ring: list[str], seat_id: str) -> str:
    lines = sold_lines(db, ring, seat_id)
    if not lines:
        return "free"
    assert len(lines) == 1 and sorted(next(iter(lines.values()))) == sorted(ring), (seat_id, lines)
    return "sold"


def check_desk(path: Path, ring: list[str], acked: dict[str, dict]) -> None:
    """After a kill: the file is sound; every acknowledged ring is there; nothing half-stored."""
    db = open_db(path)
    try:
        assert [r[0] for r in db.execute("PRAGMA integrity_check")] == ["ok"]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        orders = {r["id"] for r in db.execute("SELECT id FROM orders")}
        assert set(acked) <= orders, f"acknowledged rings lost: {set(acked) - orders}"
        ops = {json.loads(r["body"])["order_id"] for r in db.execute(
            "SELECT body FROM outbox WHERE kind = 'subscription.sold'")}
        assert ops == orders, "a sale without its op, or an op without its sale"
        card_ops = {json.loads(r["body"])["id"] for r in db.execute(
            "SELECT body FROM outbox WHERE kind = 'card.issued'")}
        for sub in db.execute("SELECT id, line_id, order_id, form FROM subscriptions"):
            dates = [r["performance_id"] for r in db.execute("SELECT performance_id FROM tickets WHERE line_id = ? "
                                                             "AND status = 'sold'", (sub["line_id"],))]
            assert sorted(dates) == sorted(ring), f"subscription {sub['id']} without all its tickets"
            cards = db.execute("SELECT id, kind FROM cards WHERE order_item_id = ?", (sub["line_id"],)).fetchall()
            assert sorted(c["kind"] for c in cards) == CARDS[sub["form"]], (sub["form"], cards)
            assert {c["id"] for c in cards} <= card_ops, "a card without its op"
        receipts = {r["ref_id"] for r in db.execute("SELECT ref_id FROM print_jobs WHERE kind = 'receipt'")}
        assert receipts == orders, "a sale without its receipt job"
        assert db.execute("SELECT count(*) AS n FROM orders o WHERE NOT EXISTS (SELECT 1 FROM subscriptions s "
                          "WHERE s.order_id = o.id)").fetchone()["n"] == 0
        assert db.execute("SELECT count(*) AS n FROM tickets t WHERE NOT EXISTS (SELECT 1 FROM subscriptions s "
                          "WHERE s.line_id = t.line_id)").fetchone()["n"] == 0
        for answer in acked.values():
            for sub in answer["subscriptions"]:
                got = {(r["performance_id"], r["seat_id"]) for r in db.execute(
                    "SELECT performance_id, seat_id FROM tickets WHERE line_id = (SELECT line_id FROM subscriptions "
                    "WHERE id = ?)", (sub["id"],))}
                assert got == {(t["performance_id"], t["seat_id"]) for t in sub["tickets"]}
    finally:
        db.close()


class Seller:
    """The cashier's loop at one life of the desk: a ring on a fresh seat per request, until the
    desk dies or `PER_LIFE` rings are sold in this life. A 409 before the first pull brought the
    pool puts the seat back."""

    def __init__(self, rng: random.Random, product: str, customer: str, fresh: list[str]) -> None:
        self.rng, self.product, self.customer, self.fresh = rng, product, customer, fresh
        self.acked: dict[str, dict] = {}
        self.cut: list[str] = []  # seats of requests the kill cut: sold or not, the desk decides

    def body(self, seat: str) -> dict:
        form = self.rng.choice(("pass", "single_tickets", "both"))
        pay = ({"payment_method": "card", "payment_reference": "TID 7"} if self.rng.random() < 0.5
               else {"payment_method": "cash", "given_cents": 400_00})
        return {"product_id": self.product, "customer_id": self.customer, "seat_ids": [seat], "form": form,
                "holder_name": "Erika Muster", **pay}

    def loop(self, edge: Process, cookie: str, killer: threading.Timer) -> None:
        sold = 0
        while (killer.is_alive() or edge.proc.poll() is None) and self.fresh and sold < PER_LIFE:
            seat = self.fresh.pop()
            try:
                status, answer = call(edge.url, "POST", "/api/subscriptions", self.body(seat), timeout=10,
                                      cookie=cookie)
            except ConnectionRefusedError:  # dead before the request went out: never sent
                self.fresh.append(seat)
                return
            except (OSError, http.client.HTTPException, json.JSONDecodeError):
                self.cut.append(seat)  # cut mid-request: sold or not, the desk decides
                return
            if status == 201:
                self.acked[answer["order"]["id"]] = answer
                sold += 1
            else:
                assert status == 409, answer  # the pool has not arrived yet
                self.fresh.append(seat)
                time.sleep(0.05)


def wait_synced(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        status, body = call(url, "GET", "/api/status")
        if status == 200 and body.get("ops_waiting") == 0 and body.get("conflicts", 0) == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the desk did not sync: {body}")


def test_kill_9_mid_ring_sales_loses_no_acknowledged_ring_and_half_stores_nothing(tmp_path, sample_template):
    rng = random.Random(SEED)
    hub_dir, desk_dir, log = tmp_path / "hub", tmp_path / "desk", tmp_path / "log.txt"
    shutil.copytree(sample_template[0], hub_dir)
    ids = sample_template[2]
    ring, product = ids["rings"]["A"], ids["subscriptions"][RING]
    run_here("hub", "operator", "add", "--data", str(hub_dir), "--name", "Kim", "--pin", PIN)
    hub = Process(log, "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise",
                  ready=r"hub API on (http://127\.0\.0\.1:\d+)/api/v1")
    edge: Process | None = None
    try:
        code = run_here("hub", "enroll", "--data", str(hub_dir), "--node", "Kasse R", "--role", "cashdesk").split()[-1]
        out = run_here("edge", "enroll", "--data", str(desk_dir), "--code", code, "--hub", hub.url)
        node_id = re.search(r"\(([0-9a-f-]{36})\)", out).group(1)
        office = connect(hub_dir / DB_NAME)  # the office moves the ring seats into the desk's pool
        try:
            pool = ring_seats(office, ids["plans"]["Großes Haus"], rng)
            ring_pools.move_ring_seats(office, product, pool, contingents.node_pool(node_id), utcnow())
            customer = office.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]
        finally:
            office.close()
        seller = Seller(rng, product, customer, list(pool))
        serve = ("edge", "serve", "--data", str(desk_dir), "--port", "0", "--sync-seconds", "1")
        ready = r"on (http://127\.0\.0\.1:\d+)/api/status"
        for _ in range(ROUNDS):
            edge = Process(log, *serve, ready=ready)
            cookie = log_in(edge.url)
            killer = threading.Timer(rng.uniform(0.1, 1.5), edge.kill9)
            killer.start()
            seller.loop(edge, cookie, killer)
            killer.join()
            check_desk(desk_dir / NODE_DB, ring, seller.acked)
        assert len(seller.acked) >= ROUNDS and seller.fresh, (len(seller.acked), len(seller.fresh))

        edge = Process(log, *serve, ready=ready)
        wait_synced(edge.url, time.monotonic() + 60)
        edge.stop()
        check_at_hub(hub_dir / DB_NAME, desk_dir / NODE_DB, ring, seller)
    finally:
        if edge:
            edge.ensure_gone()
        hub.stop()


def check_at_hub(hub_path: Path, desk_path: Path, ring: list[str], seller: Seller) -> None:
    """Every acknowledged ring at the hub once, with its eight tickets; no conflict; the seat of a cut
    attempt sold completely or free, the same at the desk and the hub."""
    hub, desk = open_db(hub_path), open_db(desk_path)
    try:
        assert hub.execute("SELECT kind, reason FROM conflicts").fetchall() == []
        for order_id, answer in seller.acked.items():
            assert hub.execute("SELECT count(*) AS n FROM orders WHERE id = ?", (order_id,)).fetchone()["n"] == 1
            for sub in answer["subscriptions"]:
                got = sorted((r["performance_id"], r["seat_id"]) for r in hub.execute(
                    "SELECT performance_id, seat_id FROM tickets WHERE line_id = (SELECT line_id FROM subscriptions "
                    "WHERE id = ?) AND status = 'sold'", (sub["id"],)))
                assert got == sorted((t["performance_id"], t["seat_id"]) for t in sub["tickets"])
                assert sorted(p for p, _ in got) == sorted(ring)
        desk_orders = {r["id"] for r in desk.execute("SELECT id FROM orders")}
        hub_orders = {r["id"] for r in hub.execute("SELECT id FROM orders WHERE channel = 'cashdesk'")}
        assert desk_orders == hub_orders  # what the desk kept of cut attempts reached the hub too
        fates = [whole_or_free(desk, ring, seat) for seat in seller.cut]
        assert fates == [whole_or_free(hub, ring, seat) for seat in seller.cut]
        at_hub = sorted(r["kind"] for r in hub.execute(
            "SELECT c.kind FROM cards c JOIN subscriptions s ON s.line_id = c.order_item_id WHERE s.order_id IN "
            f"({','.join('?' * len(desk_orders))}) AND c.revoked_at IS NULL", sorted(desk_orders)))
        assert at_hub == sorted(k for r in desk.execute("SELECT form FROM subscriptions") for k in CARDS[r["form"]])
        print(f"\nseed {SEED}: {len(seller.acked)} rings acknowledged, {len(desk_orders)} at the hub, "
              f"cut attempts {fates}")
        twice = hub.execute("SELECT performance_id, seat_id FROM tickets WHERE status = 'sold' "
                            "GROUP BY performance_id, seat_id HAVING count(*) > 1").fetchall()
        assert twice == []
    finally:
        hub.close()
        desk.close()
