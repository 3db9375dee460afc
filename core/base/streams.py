"""Reading a request body up to a limit, for every HTTP door we have (hub sync, enrollment,
peer endpoints on edges).

`read(n)` on an aiohttp stream returns what has arrived so far, not the whole body, so a
body is read to its end in a loop; the loop stops as soon as the body grows past the limit,
so a sender that announces nothing (chunked) and never stops costs at most the limit.
Duck-typed on `read(n)` so core needs no HTTP library.
"""

from __future__ import annotations

from typing import Protocol


class Readable(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


async def read_capped(stream: Readable, limit: int) -> bytes | None:
    """The whole body, or None once it grows past *limit* bytes (the rest is not read)."""
    chunks, size = [], 0
    while chunk := await stream.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)
