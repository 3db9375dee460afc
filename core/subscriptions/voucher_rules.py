"""The arithmetic of redeeming choice vouchers for one ticket (S10). Pure, no database, so the
rule can be checked over all prices and values (tests/test_voucher_rules_props.py).

Vouchers are used in the order given: each pays what is still open of the ticket, up to its
value. What a voucher cannot use lapses (never paid out); what the vouchers leave open the
customer pays. A voucher that would pay nothing is refused: it would lapse whole, and the
customer keeps it for another ticket instead. So for every redemption

    ticket price = sum(used) + paid          sum(value) = sum(used) + sum(lapsed)

with every part >= 0, and at most the last voucher lapses anything.

Both rules (`value`, `payment`) split the same way; they differ in the ticket's price and label
(see `core.subscriptions.voucher_redemption`).
"""

from __future__ import annotations

from dataclasses import dataclass


class VoucherNotNeeded(ValueError):
    """A voucher beyond what the ticket costs: it would pay nothing."""

    def __init__(self, index: int) -> None:
        super().__init__(f"voucher {index + 1} is not needed: the vouchers before it already pay the ticket")
        self.index = index


@dataclass(frozen=True)
class Split:
    """How one ticket is paid: per voucher the value used and the value lapsing, and the rest paid."""

    price_cents: int
    used: tuple[int, ...]
    lapsed: tuple[int, ...]
    paid_cents: int


def split(price_cents: int, values: list[int]) -> Split:
    """Vouchers of *values* (in order) against a ticket of *price_cents*."""
    if price_cents < 0 or any(v < 0 for v in values):
        raise ValueError("prices and values are never negative")
    if not values:
        raise ValueError("at least one voucher")
    open_cents, used, lapsed = price_cents, [], []
    for index, value in enumerate(values):
        if open_cents == 0 and index > 0:
            raise VoucherNotNeeded(index)
        part = min(value, open_cents)
        used.append(part)
        lapsed.append(value - part)
        open_cents -= part
    return Split(price_cents, tuple(used), tuple(lapsed), open_cents)
