"""A cheap HTTP/1.1 keep-alive load generator on raw asyncio protocols.

The machines have two cores: the server under test takes one, this client the other. The
aiohttp client costs several times more CPU per request than a bare aiohttp server, so it
would measure itself; this one does per response only a header search, a status and a
Content-Length parse and one write. Each connection sends the same request, reads the
whole response and sends the next (no pipelining), for a warm-up and then a fixed window.

Run as `python -m bench.loadgen HOST PORT [--connections N] [--warmup S] [--duration S]`
with the complete request bytes on stdin; prints one JSON object:
`{"requests", "all_requests", "seconds", "rps", "cpu", "statuses", "errors"}`. `all_requests`
includes the warm-up, for callers that meter the server over the whole run; `cpu` is this
process's CPU time over the window divided by its length (1.0 = one core busy: then the
client, not the server, may be the limit). Exits 1 if any response was not 200 or a connection failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter

HEADER_END = b"\r\n\r\n"
LENGTH_HEADER = b"\r\ncontent-length:"


class Tally:
    """Responses counted by status; the window counters are snapshots taken at its start and end."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.total = 0
        self.errors: list[str] = []
        self.stopping = False

    def record(self, status: int) -> None:
        self.statuses[status] += 1
        self.total += 1


class Connection(asyncio.Protocol):
    """One keep-alive connection sending *request* again as soon as a full response is in."""

    def __init__(self, request: bytes, tally: Tally, closed: asyncio.Future[None]) -> None:
        self.request, self.tally, self.closed = request, tally, closed
        self.buffer = bytearray()
        self.response_end: int | None = None  # buffer offset where the current response ends, once known
        self.status = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._take_response():
            self.tally.record(self.status)
            if self.tally.stopping:
                assert self.transport is not None
                self.transport.close()
                return
            assert self.transport is not None
            self.transport.write(self.request)

    def _take_response(self) -> bool:
        """Consume one complete response from the buffer if there is one."""
        if self.response_end is None:
            head_end = self.buffer.find(HEADER_END)
            if head_end < 0:
                return False
            head = bytes(self.buffer[:head_end]).lower()
            self.status = int(head[9:12])
            at = head.find(LENGTH_HEADER)
            if at < 0:
                raise ConnectionError("response without Content-Length; this client needs one")
            line_end = head.find(b"\r\n", at + 2)
            length = int(head[at + len(LENGTH_HEADER):line_end if line_end >= 0 else None])
            self.response_end = head_end + len(HEADER_END) + length
        if len(self.buffer) < self.response_end:
            return False
        del self.buffer[:self.response_end]
        self.response_end = None
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.tally.stopping:
            self.tally.errors.append(f"connection closed by the server: {exc or 'EOF'}")
        if not self.closed.done():
            self.closed.set_result(None)


async def generate(host: str, port: int, request: bytes, connections: int, warmup: float,
                   duration: float) -> dict:
    """Keep *connections* busy for warm-up + window; count only responses inside the window."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    closed: list[asyncio.Future[None]] = []
    for _ in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(lambda d=done: Connection(request, tally, d), host, port)
        closed.append(done)
    await asyncio.sleep(warmup)
    start_count, start_wall, start_cpu = tally.total, time.perf_counter(), time.process_time()
    statuses_before = Counter(tally.statuses)
    await asyncio.sleep(duration)
    count, wall, cpu = tally.total - start_count, time.perf_counter() - start_wall, time.process_time() - start_cpu
    statuses = tally.statuses - statuses_before
    tally.stopping = True
    await asyncio.wait(closed, timeout=5.0)
    return {"requests": count, "all_requests": tally.total, "seconds": round(wall, 3), "rps": round(count / wall, 1),
            "cpu": round(cpu / wall, 3), "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "errors": tally.errors[:5]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before counting starts")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds counted")
    args = parser.parse_args(argv)
    request = sys.stdin.buffer.read()
    if not request.endswith(HEADER_END):
        parser.error("stdin must hold one complete HTTP request without a body")
    result = asyncio.run(generate(args.host, args.port, request, args.connections, args.warmup, args.duration))
    print(json.dumps(result), flush=True)
    ok = not result["errors"] and set(result["statuses"]) <= {"200"} and result["requests"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
