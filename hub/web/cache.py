"""A cache of rendered catalog reads, valid only while the database is unchanged.

When presale opens, the shop asks for the same catalog pages thousands of times a
minute; rendering each from SQLite costs far more than sending bytes. Every cached body
is tagged with the database *generation* (`core.base.sql.generation`): a version that changes
when any other connection or process commits, and this connection's `total_changes`
(changes with our own writes). A request first checks the generation, so a read never sees data older than
the last commit. Authentication and query validation still run on every request; only
the rendering is skipped.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict

from core.base import sql


def generation(db: sqlite3.Connection) -> tuple[int, int]:
    return sql.generation(db)


class ReadCache:
    """LRU of response bodies keyed by (operation, path, query, audience)."""

    def __init__(self, max_entries: int = 1024, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._generation: tuple[int, int] | None = None
        self.hits = self.misses = 0
        # on PostgreSQL requests use the cache from the executor's threads (hub/web/offload.py);
        # the generation is read outside the lock (a round trip), the entries changed inside it
        self._lock = threading.Lock()

    def get(self, db: sqlite3.Connection, key: tuple) -> bytes | None:
        current = generation(db)
        with self._lock:
            if current != self._generation:
                self.clear()
                self._generation = current
                self.misses += 1
                return None
            body = self._entries.get(key)
            if body is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return body

    def put(self, db: sqlite3.Connection, key: tuple, body: bytes) -> None:
        """Store *body* if nothing was written since `get()` looked (else it may be stale)."""
        current = generation(db)
        with self._lock:
            if current != self._generation or len(body) > self.max_bytes // 8:
                return
            self._entries[key] = body
            self._bytes += len(body)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, old = self._entries.popitem(last=False)
                self._bytes -= len(old)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
