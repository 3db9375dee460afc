"""Reports (S14): the registry (`registry`: query, typed columns, sort and filter) and the lists
(`lists`; import it before asking the registry for a report, as `hub/web/areas/reports.py` and
the CLI do). The writers for CSV, XLSX and PDF are the hub's (`hub/exporters/`)."""
