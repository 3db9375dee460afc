"""Net and VAT from gross prices, to the cent (DESIGN §3: VAT 19, 7 or exempt under §4 Nr. 20a UStG).

Prices in Tessera are gross (what the customer pays). An invoice shows, per VAT rate, the net
amount and the tax (§14 Abs. 4 Nr. 7 and 8 UStG). The rounding rule, chosen to be §14-safe:

- the tax is computed **once per rate** from the sum of that rate's gross lines,
  `vat = round(gross * rate / (100 + rate))`, rounded half away from zero to the cent, and the
  net is the rest, `net = gross - vat`;
- so per rate net + VAT = gross exactly, the invoice total is exactly the sum of its lines, and
  rounding happens once per rate (never per line, whose small errors would add up and make
  the printed tax differ from the tax of the printed net; UStAE 14.5 Abs. 19 allows the tax
  per rate).

A cancellation invoice negates every figure of the original, so it cancels it to the cent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

VatCode = Literal["19", "7", "exempt"]
RATES: dict[str, int] = {"19": 19, "7": 7, "exempt": 0}
ORDER = ("19", "7", "exempt")  # how the rates are listed on an invoice


def split(gross_cents: int, code: str) -> tuple[int, int]:
    """(net, vat) of *gross_cents* at VAT *code*; net + vat == gross, signs follow gross."""
    rate = RATES[code]
    base = 100 + rate
    vat = (abs(gross_cents) * rate * 2 + base) // (2 * base)  # half away from zero
    vat = -vat if gross_cents < 0 else vat
    return gross_cents - vat, vat


def breakdown(lines: Iterable[tuple[int, str]]) -> list[dict]:
    """Per VAT code used by (gross_cents, vat_code) *lines*: gross, net and vat, in ORDER."""
    gross: dict[str, int] = {}
    for cents, code in lines:
        if code not in RATES:
            raise ValueError(f"unknown VAT code {code!r}")
        gross[code] = gross.get(code, 0) + cents
    out = []
    for code in ORDER:
        if code in gross:
            net, vat = split(gross[code], code)
            out.append({"vat_code": code, "rate": RATES[code], "gross_cents": gross[code], "net_cents": net,
                        "vat_cents": vat})
    return out
