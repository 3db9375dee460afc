"""Row ids: UUIDv7 strings, made wherever a row is born.

Time-ordered ids keep SQLite B-tree inserts append-mostly and let offline nodes create
rows without asking anyone; 74 random bits make collisions between nodes negligible.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7(at_ms: int | None = None) -> str:
    """A UUIDv7 string; monotonic within this process even within one millisecond.

    *at_ms* stamps the id with a given time instead of the system clock: a card's id
    carries its signing time, which must come from trusted time (B7).
    """
    if at_ms is not None:
        return _make(at_ms, int.from_bytes(os.urandom(2), "big") & 0xFFF)
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # 12-bit sequence exhausted: borrow the next millisecond
                ms += 1
                _counter = 0
        else:
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
        _last_ms = ms
        counter = _counter
    return _make(ms, counter)


def _make(ms: int, counter: int) -> str:
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand
    return str(uuid.UUID(int=value))



def uuid7_ms(text: str) -> int:
    """The millisecond time stamp inside a UUIDv7."""
    return int(text.replace("-", "")[:12], 16)


_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_uuid(text: object) -> bool:
    """True if *text* is a canonical (lower-case, hyphenated) UUID string, any version."""
    return isinstance(text, str) and _CANONICAL.fullmatch(text) is not None


_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def is_uuid7(text: object) -> bool:
    """True if *text* is a canonical UUIDv7 string (version 7, RFC 4122 variant): what our nodes
    make for the rows they create, so the hub refuses any other id in a pushed row."""
    return isinstance(text, str) and _UUID7.fullmatch(text) is not None
