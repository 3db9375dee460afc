"""The PostgreSQL tests' fixtures: one throwaway cluster (core/base/pg/cluster.py) per pytest
process (each xdist worker has its own), started once and stopped at the end, and a fresh
database per test: `pg_empty_url` empty, `pg_url` a copy of one with the hub's schema.

Not a test module: `tests/test_postgresql_*.py` import the fixtures from here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.base.pg.cluster import Cluster, running_cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_empty_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a fresh, empty database on the worker's cluster."""
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url)


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a fresh database with the hub's schema (and no rows) on the worker's cluster."""
    url = pg_cluster.create_database(pg_cluster.hub_template())
    yield url
    pg_cluster.drop_database(url)
