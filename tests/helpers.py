"""Small helpers for tests: API calls (call, expect a status, get JSON) and waits with a deadline."""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from core.base.sql import table_names

T = TypeVar("T")

ADDRESS = {"street": "Theaterstraße 1", "postcode": "28195", "town": "Bremen", "country": "DE"}


async def call(client, method: str, path: str, body: Any = None, *, status: int | None = None,
               token: str | None = None, **kw) -> Any:
    headers = kw.pop("headers", None) or client.hub.headers(token)
    resp = await client.request(method, "/api/v1" + path, json=body, headers=headers, **kw)
    data = await resp.json(content_type=None)
    if status is not None:
        assert resp.status == status, f"{method} {path}: {resp.status} {data}"
    return data


async def problem(client, method: str, path: str, body: Any = None, *, status: int, slug: str, **kw) -> dict:
    """Expect an RFC 9457 problem with a given status and stable type."""
    headers = kw.pop("headers", None) or client.hub.headers(kw.pop("token", None))
    resp = await client.request(method, "/api/v1" + path, json=body, headers=headers, **kw)
    data = await resp.json(content_type=None)
    assert resp.status == status, f"{method} {path}: {resp.status} {data}"
    assert resp.content_type == "application/problem+json"
    assert data["type"] == f"urn:tessera:problem:{slug}", data
    assert data["status"] == status and data["title"] and data["detail"]
    return data


def write_hub_toml(folder: Path, text: str) -> None:
    """hub.toml in the hub folder *folder* says *text*, plus the `[storage] database` it said
    before (a PostgreSQL hub's database: without it a `tessera hub serve` finds no hub)."""
    path = Path(folder) / "hub.toml"
    database = (tomllib.loads(path.read_text(encoding="utf-8")).get("storage", {}).get("database")
                if path.exists() else None)
    if database and "[storage]" not in text:
        separator = "" if not text or text.endswith("\n") else "\n"
        text = f"{text}{separator}[storage]\ndatabase = {json.dumps(database)}\n"
    path.write_text(text, encoding="utf-8")


def table_counts(db) -> dict[str, int]:
    tables = table_names(db)  # on SQLite or PostgreSQL
    return {t: db.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in tables}


# --- waiting: poll a condition until a deadline, instead of sleeping a fixed time -------------------------
#
# A fixed sleep followed by an assertion fails whenever a loaded machine is slower than the sleep, and
# slows every run where it is faster. These poll often and give up only at a generous deadline; the
# deadline is a bound for a broken test, not a latency figure (measure latency separately, loosely).


def _reason(what: str | Callable[[], str], timeout: float) -> str:
    return f"{what() if callable(what) else what} (not reached within {timeout} s)"


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, *, interval: float = 0.01,
               what: str | Callable[[], str] = "condition") -> T:
    """Call *predicate* until it returns something true (which is returned); AssertionError after
    *timeout* seconds. *what* (a string or a function giving one) says what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_reason(what, timeout))
        time.sleep(interval)


async def async_wait_until(predicate: Callable[[], T], timeout: float = 10.0, *, interval: float = 0.01,
                           what: str | Callable[[], str] = "condition") -> T:
    """`wait_until` for the event loop: sleeps between polls, so the code under test runs meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_reason(what, timeout))
        await asyncio.sleep(interval)
