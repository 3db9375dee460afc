"""Money benchmarks (issue 16): a list of figures, each a function that measures and reports.

- `sepa_pain008`: one pain.008.001.08 file with 20,000 debits (budget 20 s), written by
  `core.payments.sepa.render` exactly as an export writes it (sepaxml, batches per sequence type
  and collection date, amendments, names transliterated) *including* the XSD validation of the
  whole file; as context the debits per second. The debits are spread over FRST and RCUR and two
  collection dates (four batches); one in fifty carries an amendment. One warm-up file of 50 debits
  first (imports, the XSD parsed once per process by xmlschema's cache is not assumed: each render
  loads it, as an export does).

Add a figure by appending a function to FIGURES (the invoice PDFs follow here).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from bench.money_invoices import measure_invoices  # 1,000 invoice PDFs, ms per invoice (budget 20 ms)
from bench.report import figure
from core.payments import sepa
from core.payments.sepa import Creditor, Item

NAME = "money"
DEBITS = 20_000
SEPA_BUDGET_S = 20.0
NAMES = ["Erika Mustermann", "Jürgen Müller-Lüdenscheidt", "Zoë Schäfer", "Hans-Peter Groß", "Özlem Öztürk"]
IBANS = ["DE02120300000000202051", "DE89370400440532013000", "DE03120300001001234564"]


def creditor() -> Creditor:
    return Creditor("bench", "Theater Nordstadt gGmbH", "DE98ZZZ09999999999", "DE89370400440532013000", None,
                    "Theaterstrasse 1", "28195", "Bremen", "DE")


def items(count: int) -> list[Item]:
    days = (dt.date(2026, 6, 2), dt.date(2026, 6, 15))
    out = []
    for i in range(count):
        amended = i % 50 == 0
        out.append(Item(f"d{i}", f"E2E{i:012d}", 1000 + i % 9000, "FRST" if i % 3 == 0 else "RCUR", days[i % 2],
                        f"m{i}", f"ABO-2026-{i:06d}", dt.date(2025, 9, 1), NAMES[i % len(NAMES)],
                        IBANS[i % len(IBANS)], None, f"Abonnement 2026/27 Rate {i % 10 + 1} Bestellung A-{i:06d}",
                        amendment="account" if amended else None,
                        amended_from_iban=IBANS[(i + 1) % len(IBANS)] if amended else None))
    return out


def measure_sepa(count: int = DEBITS) -> list[dict]:
    sepa.render(items(50), creditor(), "TSWARMUP", dt.datetime.now(dt.UTC))
    batch = items(count)
    started = time.perf_counter()
    xml = sepa.render(batch, creditor(), "TSBENCH", dt.datetime.now(dt.UTC))
    seconds = time.perf_counter() - started
    return [figure(NAME, f"pain008_{count}_debits_with_xsd_s", seconds, "s",
                   SEPA_BUDGET_S if count == DEBITS else None),
            figure(NAME, "pain008_debits_per_s", count / seconds, "debits/s"),
            figure(NAME, "pain008_bytes_per_debit", len(xml) / count, "bytes")]


FIGURES: list[Callable[[], list[dict]]] = [measure_sepa, measure_invoices]


def run() -> list[dict]:
    results: list[dict] = []
    for measure in FIGURES:
        results.extend(measure())
    return results
