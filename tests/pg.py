"""The PostgreSQL tests' fixtures: one throwaway cluster (core/base/pg/cluster.py) per pytest
process (each xdist worker has its own), started once and stopped at the end, and a fresh
database per test: `pg_empty_url` empty, `pg_url` a copy of one with the hub's schema, `pg`
that database opened as a hub's.

Not a test module: tests/conftest.py loads it as a plugin (`pytest_plugins`), for the hub
fixtures on PostgreSQL (`--backend`, BOTH_BACKENDS) and for `tests/test_postgresql_*.py`.
The cluster starts only when a test asks for one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.base import pg as postgresql
from core.base.node import init_node
from core.base.pg.cluster import Cluster, running_cluster
from core.base.pg.connection import Connection


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


@pytest.fixture
def pg(pg_url: str) -> Iterator[Connection]:
    """A hub database on PostgreSQL with its node row (role hub: the change feed records)."""
    db = postgresql.connect(pg_url)
    init_node(db, "hub", "hub")
    yield db
    db.close()
