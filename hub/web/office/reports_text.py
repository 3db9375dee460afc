"""The office app's words for the report screens (S14), German and English."""

from __future__ import annotations

TEXT: dict[str, dict[str, str]] = {
    "de": {
        "title": "Berichte", "hint": "Jede Liste ist nach jeder Spalte sortierbar, filterbar und als Datei "
                                     "herunterzuladen.",
        "open": "Öffnen", "filters": "Filter", "column": "Spalte", "op": "Bedingung", "value": "Wert",
        "op_eq": "ist", "op_has": "enthält", "op_ge": "ab / mindestens", "op_le": "bis / höchstens",
        "apply": "Anwenden", "reset": "Filter leeren", "download": "Herunterladen:",
        "csv_de": "CSV (Excel, deutsch)", "csv": "CSV (einfach)", "xlsx": "Excel (XLSX)", "pdf": "PDF zum Drucken",
        "rows": "{n} Zeilen", "page_of": "Seite {p} von {n}", "prev": "zurück", "next": "weiter",
        "no_rows": "Keine Zeilen für diese Filter.", "sort_by": "Nach {c} sortieren", "back": "Alle Berichte",
        "refused": "Nicht möglich: {a}", "value_hint": "Beträge wie 12,50 · Daten wie 01.10.2026",
    },
    "en": {
        "title": "Reports", "hint": "Every list sorts by any column, filters, and downloads as a file.",
        "open": "Open", "filters": "Filters", "column": "Column", "op": "Condition", "value": "Value",
        "op_eq": "is", "op_has": "contains", "op_ge": "from / at least", "op_le": "until / at most",
        "apply": "Apply", "reset": "Clear filters", "download": "Download:",
        "csv_de": "CSV (German Excel)", "csv": "CSV (plain)", "xlsx": "Excel (XLSX)", "pdf": "PDF for printing",
        "rows": "{n} rows", "page_of": "Page {p} of {n}", "prev": "previous", "next": "next",
        "no_rows": "No rows for these filters.", "sort_by": "Sort by {c}", "back": "All reports",
        "refused": "Not possible: {a}", "value_hint": "Amounts like 12.50 · dates like 2026-10-01",
    },
}
