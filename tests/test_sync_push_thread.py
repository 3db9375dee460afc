"""The push thread's connection is used by that thread alone (a CI run crashed with a
segmentation fault: a push was cancelled while its thread read the outbox, and `close()`
closed the thread's SQLite connection from the event loop's thread at the same moment).

Real hub on loopback, a real enrolled edge with a long outbox; pushes are cancelled while the
thread reads, and the client is closed at once, many times over. Each close must wait for the
read in flight: no crash, no "closed database" error in the thread, the outbox intact."""

from __future__ import annotations

import asyncio
import json

from core.base.clock import iso, utcnow
from core.base.ids import uuid7
from core.base.storage import transaction
from edge.sync.client import SyncClient
from tests.test_sync import enrolled

WAITING = 2_000
BODY = 20_000  # bytes per op: each batch read takes the thread a while


def fill_outbox(db, n: int) -> None:
    body = json.dumps({"note": "x" * BODY})
    with transaction(db):
        db.executemany("INSERT INTO outbox (id, kind, body, wall_time, mono_ns, boot_id) VALUES (?, ?, ?, ?, 0, 'x')",
                       [(uuid7(), "sale.completed", body, iso(utcnow())) for _ in range(n)])


async def test_closing_while_a_cancelled_push_still_reads_waits_for_the_read(hub, tmp_path):
    folder, db, client = await enrolled(hub, tmp_path)
    await client.round()
    await client.close()
    fill_outbox(db, WAITING)
    errors: list[BaseException] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: errors.append(context.get("exception")))
    for _ in range(25):
        client = SyncClient(db, folder)
        push = asyncio.create_task(client.push())
        while client._reader is None and not push.done():  # until the push thread has its connection
            await asyncio.sleep(0)
        push.cancel()
        await client.close()  # before the fix: closed the reader under the thread's feet
        assert client._reader is None
        await asyncio.gather(push, return_exceptions=True)
    assert errors == []
    assert db.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"] >= WAITING
