"""Shared fixtures: real hub databases in temporary folders, the real aiohttp app on a
loopback test server, and a sample catalog built once per session and copied per test."""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.base.storage import connect
from hub import sample
from hub.app import DB_NAME, init_hub, make_app
from hub.client import LocalClient


@dataclass
class Hub:
    dir: Path
    db: sqlite3.Connection
    token: str  # admin
    ids: dict

    def headers(self, token: str | None = None) -> dict:
        return {"Authorization": f"Bearer {token or self.token}"}


@pytest.fixture
def empty_hub(tmp_path: Path) -> Hub:
    db, token = init_hub(tmp_path / "hub")
    yield Hub(tmp_path / "hub", db, token, {})
    db.close()


@pytest.fixture(scope="session")
def sample_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    folder = tmp_path_factory.mktemp("sample") / "hub"
    db, token = init_hub(folder)
    ids = sample.build(LocalClient(make_app(db)))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return folder, token, ids


@pytest.fixture
def sample_hub(tmp_path: Path, sample_template: tuple[Path, str, dict]) -> Hub:
    """A private copy of the sample hub: tests may change it freely."""
    src, token, ids = sample_template
    folder = tmp_path / "hub"
    shutil.copytree(src, folder)  # database and key files (modes kept)
    db = connect(folder / DB_NAME)
    yield Hub(folder, db, token, ids)
    db.close()


@pytest.fixture
async def hub(sample_hub: Hub, aiohttp_server) -> Hub:
    """The sample hub served over real HTTP on loopback, for nodes to enroll and sync with:
    `hub.url`, and `hub.server` to stop and start it (a hub that goes away)."""
    server = await aiohttp_server(make_app(sample_hub.db))
    sample_hub.url = str(server.make_url("")).rstrip("/")
    sample_hub.server = server
    return sample_hub


@pytest.fixture
async def api(aiohttp_client, sample_hub: Hub):
    """A test client bound to the sample hub over real HTTP on loopback."""
    client = await aiohttp_client(make_app(sample_hub.db))
    client.hub = sample_hub
    return client


@pytest.fixture
async def empty_api(aiohttp_client, empty_hub: Hub):
    client = await aiohttp_client(make_app(empty_hub.db))
    client.hub = empty_hub
    return client


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with slow tests first (in their usual order), the quick ones after: with `--dist
    loadfile` the two workers then finish on short files together, instead of one of them
    waiting alone on a 30-second kill test that happened to sort last."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
