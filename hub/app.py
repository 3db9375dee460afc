"""The hub's aiohttp application and its data folder.

`make_app` finds the hub's context once (`hub/settings.py`: database, data folder, and
hub.toml read strictly with the sections of `SECTIONS`) and puts it on the app; handlers and
workers take it from there.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

from aiohttp import web

from core.base.node import init_node
from core.base.storage import connect
from core.catalog import pins
from hub import settings
from hub.services import backup, hold_sweeper, mail, nodes, print_batches, tokens
from hub.sync import routes as sync_routes
from hub.web import client_address, office, offload, personalize, routes
from hub.web.api import API, CACHE, DB, OPENAPI, Operation
from hub.web.areas import accounting, shop
from hub.web.cache import ReadCache
from hub.web.openapi import build_document
from hub.web.problems import MAX_BODY_BYTES, problem_middleware

DB_NAME = "hub.sqlite"
# the tables of hub.toml; each area owns its section (type and rules)
SECTIONS = (mail.SECTION, print_batches.SECTION, shop.SECTION, client_address.SECTION, settings.STORAGE,
            accounting.SECTION)


class NotInitialised(Exception):
    pass


def db_path(data_dir: Path) -> Path:
    return Path(data_dir) / DB_NAME


def init_hub(data_dir: Path, name: str = "hub", database: str | None = None) -> tuple[sqlite3.Connection, str]:
    """Create a hub data folder: database, node identity, first admin token (returned).
    With *database* (a `postgresql://` URL of an empty database) the hub's data is kept there,
    as hub.toml `[storage] database` says; keys and hub.toml stay in the folder."""
    data_dir = Path(data_dir)
    if db_path(data_dir).exists() or (database and (data_dir / settings.SETTINGS_FILE).exists()):
        raise FileExistsError(f"{data_dir} already holds a hub; use `tessera hub serve --data {data_dir}`")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = _init_postgresql(data_dir, database) if database else connect(db_path(data_dir))
    init_node(db, "hub", name)
    nodes.init_trust(data_dir, db)
    secret, _ = tokens.create_token(db, "first admin (hub init)", "admin")
    return db, secret


def _init_postgresql(data_dir: Path, url: str) -> sqlite3.Connection:
    """The hub's schema in the (empty) PostgreSQL database at *url*, and hub.toml naming it."""
    if not settings.is_postgresql_url(url):
        raise ValueError("--database must be a postgresql:// URL")
    from core.base import pg  # psycopg: only for a hub on PostgreSQL (the extra tessera[postgresql])

    db = pg.connect(url, data_dir=data_dir)
    if db.execute("SELECT 1 FROM node").fetchone():
        db.close()
        raise FileExistsError("that PostgreSQL database already holds a hub")
    (data_dir / settings.SETTINGS_FILE).write_text(f"[storage]\ndatabase = {json.dumps(url)}\n", encoding="utf-8")
    backup.epoch(db)  # the hub's epoch from the start, as migration 0014 gives a SQLite hub (not at its first sync)
    return db


def open_hub(data_dir: Path) -> sqlite3.Connection:
    """The hub's database: the SQLite file in *data_dir*, or (no file there) the PostgreSQL
    database that hub.toml `[storage] database` names."""
    db = open_database(data_dir)
    nodes.init_trust(Path(data_dir), db)
    pins.issue(db)  # PIN verifiers missing for a desk key (e.g. hashes moved by migration 0015)
    return db


def open_database(data_dir: Path, *, migrate: bool = True) -> sqlite3.Connection:
    """The hub's database as it is, without starting the hub (no key rotation finished, no PIN
    verifiers issued): the SQLite file in *data_dir*, or the PostgreSQL database hub.toml names.
    What a command or a test that reads the hub's rows opens, never `hub.sqlite` itself."""
    path = db_path(Path(data_dir))
    return connect(path, migrate=migrate) if path.exists() else _open_postgresql(Path(data_dir), migrate=migrate)


def _open_postgresql(data_dir: Path, *, migrate: bool = True) -> sqlite3.Connection:
    database = None
    if (data_dir / settings.SETTINGS_FILE).exists():
        database = read_settings(data_dir).get(settings.STORAGE).database
    if not database:
        raise NotInitialised(f"{data_dir} holds no hub; run `tessera hub init --data {data_dir}` first")
    from core.base import pg  # psycopg: only for a hub on PostgreSQL (the extra tessera[postgresql])

    return pg.connect(database, data_dir=data_dir, migrate=migrate)


def read_settings(data_dir: Path) -> settings.HubSettings:
    """hub.toml in *data_dir* with every section the hub knows (what make_app reads)."""
    return settings.read(data_dir, SECTIONS)


_OPERATION_FIELDS = [f for f in dataclasses.fields(Operation) if f.name != "handler"]
_DOCUMENTS: dict[tuple, dict] = {}  # what the document is written from -> the document


def _document(api) -> dict:
    """The OpenAPI document of *api*, written once per process for the same routes (~50 ms each:
    a test process makes thousands of apps). Keyed by the version and every field of every
    operation, the handler by its name and the rest by their repr: a type by its qualified name
    (`routes.build` makes some, such as a list's page, anew each time, from the same code). The
    document is only ever served, never changed."""
    key = (routes.VERSION, tuple((op.operation_id, *(repr(getattr(op, f.name)) for f in _OPERATION_FIELDS))
                                 for op in api.operations))
    if key not in _DOCUMENTS:
        _DOCUMENTS[key] = build_document(api, routes.VERSION)
    return _DOCUMENTS[key]


def make_app(db: sqlite3.Connection, *, read_cache: bool = True) -> web.Application:
    """The hub's app; reads hub.toml now (a file the hub does not understand: SettingsError)."""
    data_dir = settings.data_dir_of(db)
    hub = settings.HubContext(db, data_dir, read_settings(data_dir))
    settings.apply_storage(db, hub.section(settings.STORAGE))  # [storage] synchronous (default FULL)
    hub.section(client_address.SECTION)  # a broken [web] (trusted proxies) stops the hub here
    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_BODY_BYTES)
    api = routes.build()
    api.install(app)
    app[settings.CONTEXT] = hub
    app[DB] = db
    app[API] = api
    app[OPENAPI] = _document(api)
    if read_cache:
        app[CACHE] = ReadCache()
    sync_routes.install(app)
    print_batches.install(app, hub)  # print batches; a PrintWorker if [print] auto_batch_seconds > 0 (A7)
    personalize.install(app)  # customer pages at /p/<token> (A3)
    office.install(app)  # the office web app at /office/ (staff login, start page)
    mail.install_worker(app, hub)
    hold_sweeper.install(app, db)  # expired seat holds deleted once a minute (issue 13)
    # PostgreSQL: requests' database work in an executor on pooled sessions, off the event loop (issue 18)
    offload.install(app, db, hub.section(settings.STORAGE).connections)
    return app
