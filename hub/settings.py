"""The hub's context: its database, its data folder and its settings (`hub.toml`), found once.

The data folder is where the hub's database file lives (keys, `hub.toml`, print output);
`data_dir_of()` is the one way to find it from a connection, and the `HubContext` on the app
(`context(app)`) carries it for every handler.

`hub.toml` in the data folder is read once, when the app is made (`hub.app.make_app`), so a
change takes effect when the hub is restarted. It holds one table per area, and each area
owns its table: the settings type and the rules that check it stay with the area (`[mail]`
in hub/services/mail.py, `[print]` in hub/services/print_batches.py, `[shop]` in hub/web/areas/shop.py), declared
as a `Section`. `read()` is strict:

- what is wrong with the file as a whole (unreadable, not UTF-8, not TOML, a section no area
  declares, a key outside any section) is a `SettingsError` at once, naming the file and the
  key, so the hub does not start on a file it does not understand;
- what is wrong inside a section is the area's own error with the area's own message, kept
  and raised when the area asks for its settings: a broken `[print]` answers 409 on print
  batches while the rest of the hub serves, a broken `[shop]` refuses shop orders, a broken
  `[mail]` stops the hub at startup (its mail worker asks then).

Without the file every area gets its defaults.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from aiohttp import web

from core.base import storage, tomlfiles

SETTINGS_FILE = "hub.toml"
T = TypeVar("T")


class SettingsError(ValueError):
    """hub.toml as a whole is unusable; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Section(Generic[T]):
    """The `[name]` table of hub.toml and the area that owns it. *parse* gets the table (None
    when the file or the section is absent) and the file's name for messages, and returns the
    area's settings or raises *error*, the area's own error class."""

    name: str
    parse: Callable[[Any, str], T]
    error: type[Exception]


class HubSettings:
    """hub.toml as read: the settings of each declared section, or the error it gave."""

    def __init__(self, source: str, values: dict[str, Any], errors: dict[str, Exception]) -> None:
        self.source = source
        self._values = values
        self._errors = errors

    def get(self, section: Section[T]) -> T:
        """The section's settings; its error (naming file and key) if the section is unusable."""
        error = self._errors.get(section.name)
        if error is not None:
            raise error.with_traceback(None)
        if section.name not in self._values:
            raise LookupError(f"[{section.name}] was not declared when {self.source} was read")
        return self._values[section.name]


def read(data_dir: Path, sections: Iterable[Section[Any]]) -> HubSettings:
    """Read `hub.toml` in *data_dir* once and hand each declared section its table."""
    path = Path(data_dir) / SETTINGS_FILE
    source = tomlfiles.shown(path)
    declared = {section.name: section for section in sections}
    document = tomlfiles.read(path, "settings", SettingsError) if path.exists() else {}
    known = ", ".join(f"[{name}]" for name in sorted(declared))
    for key, value in document.items():
        if key not in declared:
            what = f"section [{key}]" if isinstance(value, dict) else f"key {key} outside any section"
            raise SettingsError(f"{source}: unknown {what}; known sections: {known}")
    values: dict[str, Any] = {}
    errors: dict[str, Exception] = {}
    for name, section in declared.items():
        try:
            values[name] = section.parse(document.get(name), source)
        except section.error as exc:
            errors[name] = exc
    return HubSettings(source, values, errors)


# [storage] connections: a PostgreSQL hub process's pooled sessions and executor threads. Writers
# queue on one write lock, so more threads mostly wait; enough that a few writers waiting for the
# lock (or a slow report's reads) leave threads for the reads and the token lookups of other requests.
DEFAULT_CONNECTIONS = 8
MAX_CONNECTIONS = 64
STORAGE_KEYS = ("synchronous", "database", "connections")


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """`[storage]`: how the hub's database commits. `synchronous = "full"` (the default) syncs
    the write-ahead log at every commit, so a push the hub has answered survives a power cut;
    `"normal"` commits faster but may lose the last commits on power loss (edges then push
    them again only if they still hold them: see docs/sync.md, "Backups and restore").
    `database = "postgresql://..."`: the hub's database is that PostgreSQL database instead of
    the SQLite file in the data folder (set by `tessera hub init --database`; docs/postgresql.md).
    `connections = 8`: on PostgreSQL, the sessions of each hub process's pool and the threads of
    its executor that run the database work off the event loop (docs/rush.md); SQLite ignores it."""

    synchronous: str = "FULL"
    database: str | None = None
    connections: int = DEFAULT_CONNECTIONS


def _storage(table: Any, source: str) -> StorageSettings:
    if table is None:
        return StorageSettings()
    if not isinstance(table, dict):
        raise SettingsError(f"{source}: [storage] must be a table")
    for key in table:
        if key not in STORAGE_KEYS:
            raise SettingsError(f"{source}: unknown key storage.{key}; known: {', '.join(STORAGE_KEYS)}")
    value = table.get("synchronous", "full")
    if not isinstance(value, str) or value.upper() not in storage.SYNCHRONOUS:
        choices = ", ".join(f'"{level.lower()}"' for level in storage.SYNCHRONOUS)
        raise SettingsError(f"{source}: storage.synchronous must be one of {choices}, not {value!r}")
    database = table.get("database")
    if database is not None and not is_postgresql_url(database):
        raise SettingsError(f"{source}: storage.database must be a postgresql:// URL")
    connections = table.get("connections", DEFAULT_CONNECTIONS)
    if isinstance(connections, bool) or not isinstance(connections, int) or not 2 <= connections <= MAX_CONNECTIONS:
        raise SettingsError(f"{source}: storage.connections must be a whole number from 2 to {MAX_CONNECTIONS} "
                            f"(database sessions per hub process), not {connections!r}")
    return StorageSettings(value.upper(), database, connections)


def is_postgresql_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://")) and len(value) <= 2000


STORAGE = Section("storage", _storage, SettingsError)


def apply_storage(db: sqlite3.Connection, chosen: StorageSettings) -> None:
    """Set the hub connection's commit durability as hub.toml chose (connect() opens with FULL).
    A PostgreSQL hub's durability is the server's (`synchronous_commit`): nothing to set."""
    if isinstance(db, sqlite3.Connection):
        db.execute(f"PRAGMA synchronous = {chosen.synchronous}")  # one of storage.SYNCHRONOUS, checked above


def data_dir_of(db: sqlite3.Connection) -> Path:
    """The hub's data folder: where its database file lives (on PostgreSQL, the folder the
    connection was opened for: `core.base.pg.connection.Connection.data_dir`)."""
    if not isinstance(db, sqlite3.Connection):
        if db.data_dir is None:
            raise RuntimeError("this PostgreSQL connection was opened without the hub's data folder")
        return Path(db.data_dir)
    return Path(db.execute("PRAGMA database_list").fetchone()["file"]).parent


@dataclass(frozen=True, slots=True)
class HubContext:
    """What the hub's handlers and workers share: the database, the data folder and the
    settings read from its hub.toml when the app was made."""

    db: sqlite3.Connection
    data_dir: Path
    settings: HubSettings

    def section(self, section: Section[T]) -> T:
        return self.settings.get(section)


CONTEXT = web.AppKey("hub_context", HubContext)


def context(app: web.Application) -> HubContext:
    """The hub's context, set on the app by make_app (handlers reach it via ctx.app / request.app)."""
    return app[CONTEXT]
