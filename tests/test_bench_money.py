"""Smoke test for `python -m bench money` at a tiny size: the SEPA figure renders a valid file
of the debits it claims and reports well-formed figures. No timing assertions."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import sepaxml
import xmlschema

from bench import money
from bench.__main__ import BENCHMARKS
from core.payments import sepa

NS = "{urn:iso:std:iso:20022:tech:xsd:pain.008.001.08}"


def test_the_money_benchmark_is_registered_as_a_list_of_figures():
    assert BENCHMARKS["money"] is money and money.measure_sepa in money.FIGURES


def test_the_sepa_figure_writes_a_valid_file_of_its_debits(capsys):
    xml = sepa.render(money.items(120), money.creditor(), "TSSMOKE", money.dt.datetime.now(money.dt.UTC))
    xmlschema.XMLSchema(os.path.join(os.path.dirname(sepaxml.__file__), "schemas", "pain.008.001.08.xsd")
                        ).validate(xml.decode())
    doc = ET.fromstring(xml)
    assert doc.findtext(f"{NS}CstmrDrctDbtInitn/{NS}GrpHdr/{NS}NbOfTxs") == "120"
    assert len(doc.findall(f"{NS}CstmrDrctDbtInitn/{NS}PmtInf")) == 4  # FRST/RCUR x two dates
    results = money.measure_sepa(60)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines == results and all(r["bench"] == "money" and r["value"] > 0 for r in results)
    assert money.SEPA_BUDGET_S == 20.0 and money.DEBITS == 20_000
