"""Hypothesis over ticket prices, voucher values and tiers for the redemption rules (S10,
core/subscriptions/voucher_rules.py and the tier a voucher is sold with, core/catalog/pricing.py).

For every ticket price and list of voucher values the split balances to the cent:
  - dearer ticket (value rule): ticket price = voucher value used + difference paid, nothing lapses;
  - cheaper ticket (value rule): ticket price = voucher value - lapsed value, nothing paid;
  - payment rule: ticket price = voucher part + rest paid, a rest of voucher value lapses;
never a negative part, lapsed value never paid out (paid is 0 whenever anything lapses), and a
voucher that would pay nothing is refused rather than lapsing whole. The tier a voucher was bought
with decides the package price only (a percent, fixed or complimentary tier is never negative and
never dearer than the full price), never the split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.catalog.pricing import apply_tier
from core.subscriptions import voucher_rules as rules

CENTS = st.integers(min_value=0, max_value=1_000_000)
VALUES = st.lists(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=10)
TIERS = st.one_of(
    st.none(),
    st.builds(lambda v: {"kind": "percent", "value": v}, st.integers(min_value=1, max_value=100)),
    st.builds(lambda v: {"kind": "fixed", "value": v}, st.integers(min_value=1, max_value=100_000_000)),
    st.just({"kind": "complimentary", "value": 0}),
)


def _split_or_refused(price: int, values: list[int]) -> rules.Split | None:
    try:
        return rules.split(price, values)
    except rules.VoucherNotNeeded as exc:
        assert exc.index >= 1 and sum(values[:exc.index]) >= price
        return None


@given(price=CENTS, values=VALUES)
def test_every_split_balances_to_the_cent(price, values):
    split = _split_or_refused(price, values)
    if split is None:
        return
    assert all(part >= 0 for part in (*split.used, *split.lapsed, split.paid_cents))
    assert price == sum(split.used) + split.paid_cents  # ticket = voucher part + rest paid
    assert sum(values) == sum(split.used) + sum(split.lapsed)  # value = used + lapsed
    assert all(u + lapsed == v for u, lapsed, v in zip(split.used, split.lapsed, values, strict=True))
    if sum(split.lapsed):
        assert split.paid_cents == 0  # a lapsing value is never paid out nor set off against money owed
        assert price == sum(values) - sum(split.lapsed)  # ticket = voucher value - lapsed
    assert all(lapsed == 0 for lapsed in split.lapsed[:-1])  # only the last voucher can lapse anything


@given(price=CENTS, value=st.integers(min_value=0, max_value=200_000))
def test_one_voucher_dearer_or_cheaper(price, value):
    split = rules.split(price, [value])
    if price >= value:
        assert (split.used, split.lapsed, split.paid_cents) == ((value,), (0,), price - value)
    else:
        assert (split.used, split.lapsed, split.paid_cents) == ((price,), (value - price,), 0)


@given(price=CENTS, value=st.integers(min_value=0, max_value=200_000), count=st.integers(min_value=1, max_value=12),
       tier=TIERS, package=CENTS)
def test_the_tier_prices_the_package_and_never_the_split(price, value, count, tier, package):
    """The buyer's tier discounts what the vouchers cost (never below 0, never above the full
    price, 0 when complimentary); a voucher bought at any tier is worth its full value at the
    ticket, so the money the customer hands over for a ticket is the same for every tier."""
    paid_for_vouchers = apply_tier(package, tier)
    assert 0 <= paid_for_vouchers <= package
    if tier and tier["kind"] == "complimentary":
        assert paid_for_vouchers == 0
    split = _split_or_refused(price, [value] * count)
    if split is not None:
        assert split.paid_cents == max(0, price - value * count)


@given(values=st.lists(st.integers(min_value=1, max_value=200_000), min_size=2, max_size=10))
def test_a_voucher_beyond_the_price_is_refused(values):
    price = sum(values[:-1])
    with pytest.raises(rules.VoucherNotNeeded) as refused:
        rules.split(price, values)
    assert refused.value.index == len(values) - 1


def test_negative_input_is_refused():
    with pytest.raises(ValueError):
        rules.split(-1, [100])
    with pytest.raises(ValueError):
        rules.split(100, [-1])
    with pytest.raises(ValueError):
        rules.split(100, [])
