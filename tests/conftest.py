"""Shared fixtures: real hub databases in temporary folders, the real aiohttp app on a
loopback test server, and a sample catalog built once per session and copied per test.

The hub fixtures (`empty_hub`, `sample_hub`, `hub`, `api`, `empty_api`) run on SQLite, or on
PostgreSQL (docs/postgresql.md): `--backend=postgresql` runs every test that uses them on
PostgreSQL, `--backend=both` on both, and the modules of BOTH_BACKENDS (or marked `pytestmark =
pytest.mark.both_backends`) run on both in the normal run. On PostgreSQL each test gets a
fresh database of the worker's throwaway cluster (tests/pg.py): the sample catalog is built
once per worker into a template database and copied (`CREATE DATABASE ... TEMPLATE`), with a
copy of the key files folder whose hub.toml names the copy. `sample_template` (the folder
that served-hub tests copy and start as a process) stays SQLite. A test about the SQLite hub
itself (its file, a backup of it, a migration from it) says `pytest.mark.sqlite_only(reason)`:
never parametrized to PostgreSQL, skipped with its reason by `--backend=postgresql`.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sqlite3
import sys
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.base.storage import connect
from hub import sample
from hub.app import DB_NAME, init_hub, make_app
from hub.client import LocalClient
from hub.settings import SETTINGS_FILE

# Every `tessera` and `hub serve` the tests start compiles the whole project afresh when the
# environment says PYTHONDONTWRITEBYTECODE (this machine's does): ~0.35 s of CPU per process,
# hundreds of processes per run. The tests let Python keep its bytecode (__pycache__/, ignored
# by git); set when this file loads, before the workers and any subprocess start.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

pytest_plugins = ("tests.pg",)  # the PostgreSQL cluster fixtures (started only when a test asks)
BACKENDS = ("sqlite", "postgresql")
# The hub's in-process API/service modules that run on both backends in every run (the CI lane):
# chosen to cover seats, holds, orders, money (payments, refunds, bank, invoices), cards, auth
# and the rollover within ~150 s of worker time on PostgreSQL (docs/postgresql.md has the
# figures). A module may also say `pytestmark = pytest.mark.both_backends`.
BOTH_BACKENDS = frozenset({
    "test_agency_subscriptions", "test_auth", "test_bank_take_back", "test_card_api", "test_invoice_api",
    "test_office_api_call", "test_payment_states", "test_refund_sums", "test_ring_pools", "test_rollover_api",
    "test_seat_holds", "test_seats",
})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--backend", choices=(*BACKENDS, "both"), default="sqlite",
                     help="the hub fixtures' database: sqlite (default), postgresql, or both (parametrized)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_backends: the module's hub fixtures run on SQLite and on PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only(reason): the test is about the SQLite hub itself (its file, a "
                            "backup of it, a migration from it): its hub fixtures are never PostgreSQL, and "
                            "--backend=postgresql skips it")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests on a hub fixture run once per backend when `--backend=both` or their module is
    marked both_backends or named in BOTH_BACKENDS (`--backend=postgresql` alone wins:
    PostgreSQL only). A test marked sqlite_only runs on SQLite only (and is skipped by
    `--backend=postgresql`)."""
    if "backend" not in metafunc.fixturenames or any(
            "backend" in _names(mark.args[0]) for mark in metafunc.definition.iter_markers("parametrize")):
        return  # no hub fixture, or the test names its backend itself
    chosen = metafunc.config.getoption("backend")
    if metafunc.definition.get_closest_marker("sqlite_only"):
        if chosen == "both":
            metafunc.parametrize("backend", ["sqlite"], indirect=True)
        return  # --backend=postgresql: skipped (pytest_collection_modifyitems)
    both = metafunc.definition.get_closest_marker("both_backends") or metafunc.module.__name__.rsplit(".", 1)[-1] \
        in BOTH_BACKENDS
    if chosen == "both" or (chosen == "sqlite" and both):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


def _names(argnames: str | list[str] | tuple[str, ...]) -> list[str]:
    return [n.strip() for n in argnames.split(",")] if isinstance(argnames, str) else list(argnames)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """"sqlite" or "postgresql": the database of this test's hub fixtures."""
    return getattr(request, "param", None) or request.config.getoption("backend")


@dataclass
class Hub:
    dir: Path
    db: sqlite3.Connection
    token: str  # admin
    ids: dict

    def headers(self, token: str | None = None) -> dict:
        return {"Authorization": f"Bearer {token or self.token}"}


@pytest.fixture
def empty_hub(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Hub]:
    """A private hub as `hub init` leaves it: on SQLite a copy of `empty_template` (one identity
    per test process, as the sample's copies share theirs), on PostgreSQL `init_hub` on a new
    database."""
    if backend == "postgresql":
        db, token = init_hub(tmp_path / "hub", database=_pg_database(request, ""))
    else:
        src, token = request.getfixturevalue("empty_template")
        db = _open_copy(src, tmp_path / "hub", None)
    yield Hub(tmp_path / "hub", db, token, {})
    db.close()


@pytest.fixture(scope="session")
def empty_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`init_hub` once per test process (a migrated database: ~0.13 s of CPU and ~0.5 s of
    fsyncs), copied by each `empty_hub`: its folder and the first admin's token."""
    folder = tmp_path_factory.mktemp("empty") / "hub"
    db, token = init_hub(folder)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return folder, token


@pytest.fixture(scope="session")
def sample_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    folder = tmp_path_factory.mktemp("sample") / "hub"
    db, token = init_hub(folder)
    ids = sample.build(LocalClient(make_app(db)))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return folder, token, ids


@pytest.fixture(scope="session")
def pg_sample_template(tmp_path_factory: pytest.TempPathFactory, pg_cluster) -> tuple[Path, str, dict, str]:
    """The sample hub on PostgreSQL, built once per worker: its folder (keys, hub.toml), admin
    token, ids and the URL of its database (a template: nothing connects to it afterwards)."""
    folder = tmp_path_factory.mktemp("pg_sample") / "hub"
    url = pg_cluster.create_database(pg_cluster.hub_template())
    db, token = init_hub(folder, database=url)
    ids = sample.build(LocalClient(make_app(db)))
    db.close()
    return folder, token, ids, url


def _pg_database(request: pytest.FixtureRequest, template_url: str) -> str:
    """A new database of the worker's cluster, a copy of *template_url* ("" for the hub's empty
    schema), dropped after the test."""
    cluster = request.getfixturevalue("pg_cluster")
    template = urllib.parse.urlsplit(template_url).path.lstrip("/") or cluster.hub_template()
    url = cluster.create_database(template)
    request.addfinalizer(lambda: cluster.drop_database(url))
    return url


def _open_copy(src: Path, folder: Path, template_url: str | None, url: str | None = None):
    """*src* (a hub folder) copied to *folder* and its database opened: on SQLite the file is
    copied with the folder; on PostgreSQL *url* (a copy of *template_url*) is named in the copy's
    hub.toml."""
    shutil.copytree(src, folder)  # database or hub.toml, and key files (modes kept)
    if template_url is None:
        return connect(folder / DB_NAME)
    from core.base import pg  # psycopg: the extra tessera[postgresql]

    settings = folder / SETTINGS_FILE
    settings.write_text(settings.read_text().replace(json.dumps(template_url), json.dumps(url)))
    return pg.connect(url, data_dir=folder)


@pytest.fixture
def sample_hub(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Hub]:
    """A private copy of the sample hub: tests may change it freely."""
    if backend == "postgresql":
        src, token, ids, template_url = request.getfixturevalue("pg_sample_template")
        db = _open_copy(src, tmp_path / "hub", template_url, _pg_database(request, template_url))
    else:
        src, token, ids = request.getfixturevalue("sample_template")
        db = _open_copy(src, tmp_path / "hub", None)
    yield Hub(tmp_path / "hub", db, token, ids)
    db.close()


_PREPARED: dict[tuple[str, str], tuple[Path, str, dict, str | None, Any]] = {}  # (name, backend) -> built


def prepared_sample_hub(request: pytest.FixtureRequest, tmp_path: Path, backend: str, name: str,
                        prepare: Callable[[Hub], Any]) -> tuple[Hub, Any]:
    """A private copy of the sample hub after *prepare(hub)* ran on it, and a deep copy of what
    *prepare* returned (plain data: ids). *prepare* runs once per test process, backend and
    *name*, on a copy of its own; each test gets a copy of that hub (a file copy, or `CREATE
    DATABASE ... TEMPLATE`: milliseconds where *prepare* takes seconds). For a module's
    `sample_hub` override (a fixture asking for `tmp_path` and `backend`): its `api`, `hub`
    and the test then share the prepared hub. Closed (and on PostgreSQL dropped) after the test."""
    if (name, backend) not in _PREPARED:
        folder = request.getfixturevalue("tmp_path_factory").mktemp(f"{name}-{backend}") / "hub"
        if backend == "postgresql":
            src, token, ids, template_url = request.getfixturevalue("pg_sample_template")
            cluster = request.getfixturevalue("pg_cluster")
            url = cluster.create_database(urllib.parse.urlsplit(template_url).path.lstrip("/"))  # kept: a template
            db = _open_copy(src, folder, template_url, url)
        else:
            (src, token, ids), url = request.getfixturevalue("sample_template"), None
            db = _open_copy(src, folder, None)
        built = Hub(folder, db, token, copy.deepcopy(ids))
        try:
            made = prepare(built)
            if url is None:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        _PREPARED[name, backend] = (folder, token, built.ids, url, made)
    src, token, ids, template_url, made = _PREPARED[name, backend]
    url = _pg_database(request, template_url) if template_url else None
    db = _open_copy(src, tmp_path / "hub", template_url, url)
    request.addfinalizer(db.close)  # before the database is dropped (finalizers run last first)
    return Hub(tmp_path / "hub", db, token, copy.deepcopy(ids)), copy.deepcopy(made)


# CLOSED_FIRST: a served app is closed by the fixture that served it, not by aiohttp_client's
# or aiohttp_server's own teardown: that runs after the hub fixture's (set up before it), when
# the database is closed and, on PostgreSQL, dropped, while the app's pool (hub/web/offload.py)
# still held a session in it.
@pytest.fixture
async def hub(sample_hub: Hub, aiohttp_server) -> AsyncIterator[Hub]:
    """The sample hub served over real HTTP on loopback, for nodes to enroll and sync with:
    `hub.url`, and `hub.server` to stop and start it (a hub that goes away)."""
    server = await aiohttp_server(make_app(sample_hub.db))
    sample_hub.url = str(server.make_url("")).rstrip("/")
    sample_hub.server = server
    yield sample_hub
    await server.close()  # before sample_hub closes the database (CLOSED_FIRST)


@pytest.fixture
async def api(aiohttp_client, sample_hub: Hub):
    """A test client bound to the sample hub over real HTTP on loopback."""
    client = await aiohttp_client(make_app(sample_hub.db))
    client.hub = sample_hub
    yield client
    await client.close()  # before sample_hub closes the database (CLOSED_FIRST)


@pytest.fixture
async def empty_api(aiohttp_client, empty_hub: Hub):
    client = await aiohttp_client(make_app(empty_hub.db))
    client.hub = empty_hub
    yield client
    await client.close()  # before empty_hub closes the database (CLOSED_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with slow tests first (in their usual order), the quick ones after: with `--dist
    loadfile` the workers then finish on short files together, instead of one of them
    waiting alone on a 30-second kill test that happened to sort last."""
    if config.getoption("backend") == "postgresql":
        for item in items:
            mark = item.get_closest_marker("sqlite_only")
            if mark and "backend" in getattr(item, "fixturenames", ()):
                reason = mark.args[0] if mark.args else "about the SQLite hub itself"
                item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
