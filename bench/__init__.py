"""Tessera benchmarks (DESIGN.md section 9): `python -m bench [NAME...]`.

Each benchmark is a module with `run() -> None` that prints its figures as JSON lines via
`bench.report`. The registry lives in `bench.__main__` so that helper scripts started as
subprocesses (`python -m bench.loadgen`, `bench/bare_server.py`) do not import every
benchmark, and with it the whole hub, just to start.
"""
