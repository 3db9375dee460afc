"""Refunds add up, whatever the order (hypothesis over amounts, methods, fees and which lines).

For any order of seat-ticket lines paid in parts by cash, card, online and transfer, with a
transfer still owed, cancelling any lines with any fee: the claims dropped and the refunds made
bring the order to exactly what it still owes (its total less the credit), to the cent; no refund
goes back by a method beyond what came in by it; no claim goes below zero; after the refunds are
paid out nothing is due and the payment state is what the sums say."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.base.node import this_node
from core.cards import cards
from core.payments import cancellations, refunds, states
from core.sales import payments as ledger
from hub.app import init_hub
from tests.money_orders import order

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 3, 2)
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refunds") / "hub"
    db, _ = init_hub(folder)
    yield db, cards.load_signer(db, folder)
    db.close()


prices = st.lists(st.integers(0, 50_000), min_size=1, max_size=5)
parts = st.lists(st.tuples(st.sampled_from(["cash", "card", "online", "transfer"]), st.integers(1, 30_000)),
                 max_size=4)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=prices, paid=parts, pick=st.data(), method=st.sampled_from(["original", "cash", "transfer"]))
def test_claims_dropped_and_refunds_bring_the_order_to_what_it_still_owes(hub, lines, paid, pick, method):
    db, signer = hub
    total = sum(lines)
    received = min(sum(a for _, a in paid), total)  # the parts as paid, never beyond the total
    rows, left = [], received
    for m, amount in paid:
        take = min(amount, left)
        if take:
            rows.append((m, take, "paid", "2026-03-01T10:00:00Z"))
        left -= take
    if total - received:
        rows.append(("transfer", total - received, "pending", "2026-03-01T10:00:00Z"))
    oid = order(db, f"H-2026-{next(_numbers):06d}", [(p, "7") for p in lines], rows)
    ids = [r["id"] for r in db.execute("SELECT id FROM order_lines WHERE order_id = ? ORDER BY position", (oid,))]
    chosen = pick.draw(st.lists(st.sampled_from(ids), min_size=1, unique=True))
    worth = sum(p for i, p in zip(ids, lines, strict=True) if i in chosen)
    fee = pick.draw(st.integers(0, worth))

    done = cancellations.cancel(db, signer, this_node(db), oid, cancellations.LinesCancelIn(
        line_ids=chosen, reason="test", fee_cents=fee, refund_method=method), now=NOW)
    owes = total - (worth - fee)
    assert done["credit_cents"] == worth - fee
    assert done["released_cents"] == min(total - received, worth - fee)
    assert done["refund_cents"] == max(received - owes, 0)
    by_method: dict[str, int] = {}
    for r in done["refunds"]:
        by_method[r["method"]] = by_method.get(r["method"], 0) + r["amount_cents"]
    if method == "original":
        came = {m: sum(a for mm, a, s, _ in rows if mm == m and s == "paid") for m in ("cash", "card", "online",
                                                                                      "transfer")}
        assert all(amount <= came[m] for m, amount in by_method.items())
    assert all(r["amount_cents"] >= 0 for r in ledger.of_order(db, oid) if r["state"] == "pending"
               and r["cancellation_id"] is None)

    for r in done["refunds"]:
        refunds.pay_out(db, r["id"], refunds.PayOutIn(reference="R-1"), node_id=this_node(db)["id"], operator=None,
                        now=NOW)
    state = states.state_of_order(db, oid, TODAY)
    assert state["refund_due_cents"] == 0 and state["credited_cents"] == worth - fee
    assert state["paid_cents"] == min(received, owes)
    assert state["open_cents"] == max(owes - received, 0) == state["pending_cents"]
    expected = "paid" if received >= owes else ("partly_paid" if min(received, owes) > 0 else "open")
    if received > owes and owes == 0:
        expected = "refunded"
    assert state["state"] == expected
