"""The hub's own API on PostgreSQL: the sample catalog (two organizers, seating plans,
performances, annual tickets, subscriptions, 250 customers) built through the same
operations as on SQLite, then the office's list endpoints read over real HTTP on loopback
and compared with the SQLite sample hub.

And `tessera hub init --database` / `hub serve` as real processes, and `hub backup` refused
for a hub on PostgreSQL. The rest of the hub's suite runs on PostgreSQL through the hub
fixtures (tests/conftest.py: the both_backends marker, `--backend=postgresql`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import main as cli_main
from core.base import pg as postgresql
from core.base import storage
from core.base.node import init_node
from hub import sample
from hub.app import make_app
from hub.client import HttpClient, LocalClient
from hub.services import nodes, tokens
from tests.test_cli import Server, run

pytest_plugins = ("tests.pg",)  # the PostgreSQL fixtures: pg_cluster, pg_url, pg_empty_url, pg
TABLES = ("organizers", "venues", "price_zones", "seating_plans", "seats", "seasons", "performances",
          "annual_products", "subscription_products", "discount_tiers", "customers", "card_products")
LISTS = ("/annual-ticket-products", "/bank-statements", "/cards", "/conflicts", "/customers", "/invoices",
         "/nodes", "/operators", "/orders", "/print-jobs", "/reports", "/seasons", "/seating-plans",
         "/sepa-debits", "/subscription-products", "/subscriptions", "/open-items", "/refunds", "/bank-entries",
         "/bank-entries?state=unmatched", "/agency-sales", "/customers?q=SCHMI", "/customers?q=m%C3%BCller",
         "/customers?q=M%C3%BC")


class PgHub:
    def __init__(self, db: postgresql.connection.Connection, token: str) -> None:
        self.db, self.token = db, token


@pytest.fixture
def pg_sample(pg_url: str, tmp_path: Path) -> Iterator[PgHub]:
    """A hub on PostgreSQL as `tessera hub init` would make it (node, keys, first admin
    token), with the sample catalog built through its API."""
    db = postgresql.connect(pg_url, data_dir=tmp_path)
    init_node(db, "hub", "hub")
    nodes.init_trust(tmp_path, db)
    token, _ = tokens.create_token(db, "first admin (test)", "admin")
    sample.build(LocalClient(make_app(db)))
    yield PgHub(db, token)
    db.close()


def counted(body: object) -> tuple[int, int | None]:
    """How many items a list answer holds (and its total, for a page of a longer list)."""
    if isinstance(body, dict) and "items" in body:
        return len(body["items"]), body.get("total")
    assert isinstance(body, list), body
    return len(body), None


@pytest.mark.slow
async def test_the_sample_catalog_is_built_and_listed_on_postgresql_as_on_sqlite(pg_sample, sample_hub, aiohttp_client):
    for table in TABLES:
        query = f"SELECT count(*) AS n FROM {table}"
        assert pg_sample.db.execute(query).fetchone()["n"] == sample_hub.db.execute(query).fetchone()["n"], table
    on_pg = await aiohttp_client(make_app(pg_sample.db))
    on_sqlite = await aiohttp_client(make_app(sample_hub.db))
    for path in LISTS:
        answers = []
        for client, token in ((on_sqlite, sample_hub.token), (on_pg, pg_sample.token)):
            response = await client.get("/api/v1" + path, headers={"Authorization": f"Bearer {token}"})
            assert response.status == 200, (path, await response.text())
            answers.append(counted(await response.json()))
        assert answers[0] == answers[1], path
    assert answers[0] != (0, 0)  # the last list (customers matching "Mü") is not empty
    performance = pg_sample.db.execute("SELECT id FROM performances ORDER BY starts_at, id LIMIT 1").fetchone()["id"]
    response = await on_pg.get(f"/api/v1/performances/{performance}/seat-map",
                               headers={"Authorization": f"Bearer {pg_sample.token}"})
    assert response.status == 200
    assert pg_sample.db.execute("SELECT count(*) AS n FROM changes").fetchone()["n"] > 1000  # the feed recorded it


@pytest.mark.slow
def test_tessera_hub_init_and_serve_on_postgresql(pg_empty_url, tmp_path):
    """`tessera hub init --database URL` keeps the hub's data in PostgreSQL (hub.toml says so,
    keys stay in the folder), `tessera hub serve` serves it, and the sample catalog is set up
    over HTTP as on SQLite."""
    folder = tmp_path / "hub"
    token = run("hub", "init", "--data", str(folder), "--database", pg_empty_url).stdout.split()[-1]
    assert not (folder / "hub.sqlite").exists()
    assert "postgresql://" in (folder / "hub.toml").read_text()
    again = run("hub", "init", "--data", str(tmp_path / "other"), "--database", pg_empty_url, check=False)
    assert again.returncode != 0 and "already holds a hub" in again.stderr
    server = Server("hub", "serve", "--data", str(folder), "--no-advertise")
    try:
        client = HttpClient(server.url, token)
        health = client.call("GET", "/health")
        assert health["status"] == "ok" and health["schema_version"] == len(storage.migrations())
        ids = sample.build(client)
        assert len(ids["performances"]) == 32 and ids["customers"] == 250
        plans = client.call("GET", "/seating-plans")["items"]
        counts = {p["name"]: sorted(v["seat_count"] for v in p["variants"]) for p in plans}
        assert counts == {"Großes Haus": [760, 800, 832], "Studio": [199]}
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_backup_of_a_hub_on_postgresql_is_refused_naming_pg_dump_and_the_keys_folder(empty_hub, backend, tmp_path,
                                                                                     capsys, monkeypatch):
    """`tessera hub backup` copies a SQLite file: for a hub on PostgreSQL it says to use
    pg_dump and where the keys are, before asking for a passphrase, and writes nothing."""
    monkeypatch.setenv("HUB_BACKUP_PASS", "a long enough passphrase for the test")
    out = tmp_path / "hub.tbk"
    assert cli_main(["hub", "backup", "--data", str(empty_hub.dir), "--out", str(out),
                     "--passphrase-env", "HUB_BACKUP_PASS"]) != 0
    said = capsys.readouterr().err
    assert "pg_dump" in said and str(empty_hub.dir) in said, said
    assert not out.exists() and sorted(p.name for p in empty_hub.dir.iterdir() if p.name.startswith(".backup"))== []
