"""A desk-sold seat cancelled at the hub goes back to the desk's pool (issue 16): the office cancels
the line of a ticket a cash desk sold; with its next pull the desk (and only that desk) hears of
it, cancels its own copy of the ticket, and sells the seat again; the hub takes that sale. Real
enrolled desks and the real hub app on loopback (the contingents scenario's house)."""

from __future__ import annotations

import pytest

from core.base.clock import utcnow
from core.base.errors import Conflict
from core.cards import cards
from core.payments import cancellations
from core.sales import contingents
from core.sales.tickets import SaleIn, sell
from tests.test_contingents_scenario import _sold, by_place, house, house_template  # noqa: F401 - fixtures


def _sell(desk, performance: str, seat: str) -> dict:
    return sell(desk.db, desk.node, SaleIn(performance_id=performance, seat_ids=[seat], payment_method="cash"),
                pool=desk.pool, channel="cashdesk", now=utcnow())


async def test_a_seat_cancelled_at_the_hub_is_sold_again_by_the_desk_that_sold_it(house, tmp_path):  # noqa: F811
    a, b = house.desks["A"], house.desks["B"]
    performance = house.ids["performances"][-1]  # the season's last: not begun
    seat = by_place(house.db, performance)[0]
    contingents.move_seats(house.db, performance, [seat], a.pool, utcnow())
    await a.client.round()
    sold = _sell(a, performance, seat)
    assert (await a.client.round()).rejected == 0  # the sale reaches the hub
    line = house.db.execute("SELECT line_id FROM tickets WHERE id = ?", (sold["tickets"][0]["id"],)).fetchone()
    signer = cards.load_signer(house.db, tmp_path / "house" / "hub")
    done = cancellations.cancel(house.db, signer, house.node, sold["id"], cancellations.LinesCancelIn(
        line_ids=[line["line_id"]], reason="Kundin krank"), now=utcnow())
    assert [(r["method"], r["amount_cents"]) for r in done["refunds"]] == [("cash", sold["total_cents"])]
    assert seat not in _sold(house.db, performance)

    assert seat in _sold(a.db, performance)  # the desk does not know yet
    await a.client.round()
    await b.client.round()
    assert seat not in _sold(a.db, performance)  # released to the desk that sold it
    assert a.db.execute("SELECT count(*) AS n FROM seat_releases").fetchone()["n"] == 1
    assert b.db.execute("SELECT count(*) AS n FROM seat_releases").fetchone()["n"] == 0  # addressed to A only

    again = _sell(a, performance, seat)  # free in A's pool again
    result = await a.client.round()
    assert result.rejected == 0
    assert house.db.execute("SELECT status FROM tickets WHERE id = ?", (again["tickets"][0]["id"],)).fetchone()[
        "status"] == "sold"
    with pytest.raises(Conflict, match="not in this desk's contingent"):
        _sell(b, performance, seat)
