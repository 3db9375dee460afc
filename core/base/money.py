"""Money is integer euro cents, everywhere. Never a float.

Rounding is commercial (half away from zero), as a German box office prints it.
"""

from __future__ import annotations

MAX_CENTS = 100_000_000  # one million euro: any price above is a typing error


def percent_off(cents: int, percent: int) -> int:
    """Price after *percent* % discount, rounded half-up to the cent."""
    if not 0 <= percent <= 100:
        raise ValueError("percent must be within 0..100")
    kept = cents * (100 - percent)
    return (kept + 50) // 100


def format_eur(cents: int) -> str:
    """`1234` -> `12,34 €` (German notation, used on receipts and reports)."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    grouped = f"{euros:,}".replace(",", ".")
    return f"{sign}{grouped},{rest:02d} €"
