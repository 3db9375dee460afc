"""Payment providers, an order's payment state and the open items (S11, Offene Posten).

An order is open, partly paid, paid, overpaid or refunded from its payment rows alone; an open
item is due the payment term of its method after the order day. The office reads the open items
overall and per customer, and the order view carries the payment state. Hostile input to the
endpoints is a clear 4xx.
"""

from __future__ import annotations

import datetime as dt

import pytest

from core.base.errors import ValidationError
from core.payments import providers, states
from core.sales import payments as ledger
from hub.app import make_app
from hub.services import tokens
from tests.money_orders import customer, invoice, order

DAY = "2026-03-01T10:00:00Z"
LATER = "2026-03-05T10:00:00Z"
TODAY = dt.date(2026, 3, 20)


# --- providers ---------------------------------------------------------------------------------------------


def test_cash_takes_what_was_handed_over_and_gives_change():
    taken = providers.get("cash").take(1250, given_cents=2000)
    assert (taken.state, taken.change_cents, taken.given_cents) == ("paid", 750, 2000)
    assert providers.get("cash").take(1250).change_cents == 0


def test_cash_handed_over_below_the_amount_is_refused_in_both_languages():
    with pytest.raises(ValidationError) as caught:
        providers.get("cash").take(1250, given_cents=1000)
    assert caught.value.field == "given_cents" and "Bargeld" in caught.value.extra["detail_de"]


def test_a_card_payment_needs_the_terminal_reference_and_only_cash_is_handed_over():
    with pytest.raises(ValidationError) as caught:
        providers.get("card").take(1000, reference="  ")
    assert caught.value.field == "reference" and "Kartenterminal" in caught.value.extra["detail_de"]
    with pytest.raises(ValidationError):
        providers.get("card").take(1000, reference="4711", given_cents=2000)
    assert providers.get("card").take(1000, reference=" 4711 ").reference == "4711"


def test_transfer_and_sepa_stay_pending_with_a_term_and_the_rest_settle_at_once():
    assert providers.get("transfer").take(5000).state == "pending"
    assert providers.get("sepa").term_days == 14 and providers.get("transfer").term_days == 14
    for method in ("cash", "card", "online", "voucher"):
        assert providers.get(method).settles_at_once and providers.get(method).term_days == 0


def test_the_providers_agree_with_the_ledger_about_desks_and_settling():
    """The registry reads those two facts from core/sales/payments.py: one rule, one place."""
    assert sorted(p.method for p in providers.all_providers() if p.at_desk) == sorted(ledger.DESK_PAYMENTS)
    for provider in providers.all_providers():
        assert provider.settles_at_once == (ledger.state_at_order(provider.method) == "paid")


def test_an_unknown_method_is_the_clients_error():
    with pytest.raises(ValidationError) as caught:
        providers.get("bitcoin")
    assert caught.value.field == "payment_method"
    with pytest.raises(RuntimeError):
        providers.register(providers.Provider("cash", "Cash", "Bargeld"))


# --- states from rows ---------------------------------------------------------------------------------------


def _state(total: int, *rows: tuple[str, int, str]) -> dict:
    order_row = {"total_cents": total, "created_at": DAY}
    return states.summary(order_row, [{"method": m, "amount_cents": a, "state": s} for m, a, s in rows], TODAY)


def test_a_transfer_owed_is_open_and_overdue_after_its_term():
    state = _state(5000, ("transfer", 5000, "pending"))
    assert state["state"] == "open" and state["open_cents"] == 5000 and state["pending_cents"] == 5000
    assert state["due_date"] == "2026-03-15" and state["days_overdue"] == 5


def test_a_partial_payment_leaves_the_rest_open():
    state = _state(5000, ("transfer", 3000, "pending"), ("transfer", 2000, "paid"))  # as the bank import splits
    assert (state["state"], state["paid_cents"], state["open_cents"]) == ("partly_paid", 2000, 3000)


def test_paid_in_full_and_overpaid():
    assert _state(5000, ("cash", 5000, "paid"))["state"] == "paid"
    over = _state(5000, ("cash", 5000, "paid"), ("transfer", 100, "paid"))
    assert over["state"] == "overpaid" and over["open_cents"] == 0 and over["due_date"] is None


def test_a_refund_row_or_a_refunded_row_makes_the_order_refunded():
    assert _state(5000, ("card", 5000, "paid"), ("card", -5000, "paid"))["state"] == "refunded"
    assert _state(5000, ("card", 5000, "refunded"))["refunded_cents"] == 5000
    assert _state(5000, ("card", 5000, "refunded"))["state"] == "refunded"


def test_a_returned_debit_with_its_bank_fee_is_open_for_both():
    """core/payments/debits.py puts the debit back to pending and adds the fee as a pending row."""
    state = _state(5000, ("sepa", 5000, "pending"), ("transfer", 300, "pending"))
    assert (state["state"], state["open_cents"]) == ("open", 5300)
    state = _state(5000, ("sepa", 5000, "paid"), ("transfer", 300, "pending"))
    assert (state["state"], state["open_cents"]) == ("partly_paid", 300)


def test_a_failed_debit_counts_for_nothing_and_an_order_of_nothing_is_paid():
    assert _state(5000, ("sepa", 5000, "failed"))["state"] == "open"
    assert _state(0, ("none", 0, "paid"))["state"] == "paid"


# --- open items in a hub ------------------------------------------------------------------------------------


def test_open_items_list_what_is_owed_oldest_due_first_per_customer_and_overall(empty_hub):
    db = empty_hub.db
    anna = customer(db, "Anna", "Müller", "K-1")
    ben = customer(db, "Ben", "Schulz", "K-2")
    late = order(db, "H-2026-000001", [(5000, "7")], [("transfer", 5000, "pending", DAY)], customer_id=anna)
    part = order(db, "H-2026-000002", [(3000, "19")], [("transfer", 2000, "pending", LATER),
                                                          ("transfer", 1000, "paid", LATER)],
                 created_at=LATER, customer_id=ben)
    order(db, "H-2026-000003", [(2000, "7")], [("cash", 2000, "paid", DAY)], customer_id=anna)  # paid
    order(db, "H-2026-000004", [(2000, "7")], [("card", 2000, "paid", DAY), ("card", -2000, "paid", LATER)],
          customer_id=anna)  # refunded
    items = states.open_items(db, TODAY)
    assert [i["order_id"] for i in items] == [late, part]
    assert items[0]["customer_name"] == "Anna Müller" and items[0]["customer_number"] == "K-1"
    assert (items[0]["due_date"], items[0]["days_overdue"], items[0]["open_cents"]) == ("2026-03-15", 5, 5000)
    assert (items[1]["state"], items[1]["open_cents"], items[1]["days_overdue"]) == ("partly_paid", 2000, 1)
    assert [i["order_id"] for i in states.open_items(db, TODAY, customer_id=ben)] == [part]
    fee = order(db, "H-2026-000005", [(2000, "7")], [("sepa", 2000, "paid", DAY), ("transfer", 300, "pending", LATER)],
                customer_id=ben)
    assert [(i["order_id"], i["open_cents"]) for i in states.open_items(db, TODAY, customer_id=ben)] == \
        [(fee, 300), (part, 2000)]


@pytest.fixture
async def money_api(aiohttp_client, empty_hub):
    db = empty_hub.db
    empty_hub.ids["anna"] = customer(db, "Anna", "Müller", "K-1")
    empty_hub.ids["owed"] = order(db, "H-2026-000001", [(5000, "7")], [("transfer", 5000, "pending", DAY)],
                                  customer_id=empty_hub.ids["anna"])
    empty_hub.ids["paid"] = order(db, "H-2026-000002", [(2000, "7")], [("cash", 2000, "paid", DAY)])
    client = await aiohttp_client(make_app(db))
    client.hub = empty_hub
    return client


async def test_the_api_lists_open_items_and_the_order_view_shows_its_payment_state(money_api):
    hub, headers = money_api.hub, money_api.hub.headers()
    found = await (await money_api.get("/api/v1/open-items", headers=headers)).json()
    assert found["total"] == 1 and found["open_cents"] == 5000 and found["items"][0]["order_number"] == "H-2026-000001"
    assert found["overdue_cents"] == 5000  # the term ended in March 2026
    mine = await (await money_api.get(f"/api/v1/customers/{hub.ids['anna']}/open-items", headers=headers)).json()
    assert [i["order_id"] for i in mine["items"]] == [hub.ids["owed"]]
    view = await (await money_api.get(f"/api/v1/orders/{hub.ids['owed']}", headers=headers)).json()
    assert view["payment_state"]["state"] == "open" and view["payment_state"]["open_cents"] == 5000
    state = await (await money_api.get(f"/api/v1/orders/{hub.ids['paid']}/payment-state", headers=headers)).json()
    assert state["state"] == "paid" and state["due_date"] is None


@pytest.mark.parametrize("path", [
    "/api/v1/open-items?customer_id=not-a-uuid",
    "/api/v1/open-items?limit=0",
    "/api/v1/open-items?limit=abc",
    "/api/v1/open-items?offset=-1",
    "/api/v1/open-items?sort=due' OR 1=1",
])
async def test_hostile_open_item_queries_are_clear_400s(money_api, path):
    response = await money_api.get(path, headers=money_api.hub.headers())
    assert response.status == 400


async def test_unknown_customers_and_orders_are_404_and_a_shop_token_is_refused(money_api):
    headers = money_api.hub.headers()
    unknown = "0190f0f0-0000-7000-8000-000000000000"
    assert (await money_api.get(f"/api/v1/customers/{unknown}/open-items", headers=headers)).status == 404
    assert (await money_api.get(f"/api/v1/orders/{unknown}/payment-state", headers=headers)).status == 404
    assert (await money_api.get("/api/v1/open-items")).status == 401
    shop, _ = tokens.create_token(money_api.hub.db, "shop", "shop")
    assert (await money_api.get("/api/v1/open-items", headers=money_api.hub.headers(shop))).status == 403


def test_an_invoiced_order_is_due_when_its_invoice_says_until_the_invoice_is_cancelled(empty_hub):
    db = empty_hub.db
    anna = customer(db, "Anna", "Müller", "K-1")
    owed = order(db, "H-2026-000001", [(5000, None)], [("transfer", 5000, "pending", DAY)], customer_id=anna)
    first = invoice(db, owed, "RE-2026-000001", due_on="2026-04-30", kassenzeichen="2026-000001",
                    vat_codes={1: "exempt"})
    [item] = states.open_items(db, TODAY)
    assert (item["due_date"], item["days_overdue"]) == ("2026-04-30", 0)
    assert (item["invoice_number"], item["kassenzeichen"]) == ("RE-2026-000001", "2026-000001")
    assert states.order_state(db, {"id": owed, "total_cents": 5000, "created_at": DAY}, TODAY)["due_date"] == \
        "2026-04-30"
    invoice(db, owed, "RE-2026-000002", due_on=None, kassenzeichen="2026-000002", vat_codes={}, cancels=first)
    [item] = states.open_items(db, TODAY)
    assert (item["due_date"], item["invoice_number"]) == ("2026-03-15", None)
