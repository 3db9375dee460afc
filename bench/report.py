"""One JSON line per figure, in the format DESIGN.md section 9 fixes.

The ratio is always written so that <= 1 meets the budget, whichever way the figure points:
value/budget for a cost (time, memory), budget/value for a rate or any "at least" figure.
Figures without a budget (context, such as absolute rates that drift on shared machines)
carry `budget: null` and `ratio: null`.
"""

from __future__ import annotations

import json
import math
from typing import Literal

Direction = Literal["cost", "at_least"]


def tidy(number: float | int | None) -> float | int | None:
    """Round to what the measurement can support: whole numbers from 100 up, else 3 significant digits."""
    if number is None or isinstance(number, int):
        return number
    if not math.isfinite(number):
        raise ValueError(f"cannot report a non-finite figure: {number}")
    if abs(number) >= 100:
        return round(number)
    return float(f"{number:.3g}")


def ratio(value: float, budget: float | None, direction: Direction) -> float | None:
    """How the value stands against its budget; <= 1 meets it, > 1 misses it."""
    if budget is None:
        return None
    if direction == "cost":
        return value / budget
    if value <= 0:
        raise ValueError(f"an 'at least' figure must be positive to compare with its budget, got {value}")
    return budget / value


def figure(bench: str, name: str, value: float | int, unit: str, budget: float | None = None,
           direction: Direction = "cost") -> dict:
    """Print one figure as a JSON line (flushed at once, so long runs show progress) and return it."""
    line = {"bench": bench, "figure": name, "value": tidy(value), "unit": unit, "budget": tidy(budget),
            "ratio": tidy(ratio(value, budget, direction))}
    print(json.dumps(line, ensure_ascii=False, allow_nan=False), flush=True)
    return line
