"""A TCP fault-injection proxy for the sync tests (asyncio, stdlib only).

The kernel the tests run on has no netem, so faults between an edge and the hub are injected
here: point the edge at ``proxy.url`` instead of the hub and switch faults on and off at runtime.

    async with FaultProxy("127.0.0.1", hub_port, seed=7) as proxy:
        proxy.cut_response_after = 300
        ...  # the edge syncs through proxy.url
        assert proxy.stats.cuts == 1

Bytes are forwarded unchanged, both directions, chunk by chunk. The faults are plain attributes:

``down``
    Not listening: connects are refused (ECONNREFUSED) and open connections are aborted. Setting it
    back to False listens again on the same port.
``blackhole``
    A hung hub. New connections are accepted but never reach the target; on open connections
    nothing more is forwarded, either way, for good. The proxy keeps reading (and discarding) what
    the client sends, so only the client's own timeout ends the wait.
``drop_rate``
    Per new connection: with probability p, close it before forwarding anything.
``delay_s``, ``request_delay_s``, ``response_delay_s``
    Latency added to every chunk; "request" is client->target, "response" target->client, and the
    per-direction value adds to ``delay_s``. It is latency, not a bandwidth cap: chunks are
    pipelined and each is delivered ``delay`` after it arrived, in order.
``cut_request_after``, ``cut_response_after``
    Per connection, read when it is accepted: once N bytes have been forwarded in that direction,
    close both sides (N=0 cuts when the first byte arrives). N counts from the start of the
    connection, so with keep-alive it spans several requests. Cutting the request while the client
    is still sending may reach the client as a reset rather than an EOF (unread data on close).
``cut_rate`` (with ``cut_span``, ``cut_direction``)
    Per new connection: with probability p, cut at an offset drawn from ``range(cut_span)`` in
    ``cut_direction`` ("request", "response", or None: drawn too). If that direction carries fewer
    bytes than the offset, nothing happens and ``stats.cuts`` does not count it.
``reset``
    Cuts and drops close with RST (SO_LINGER 0, after flushing what was forwarded) instead of FIN,
    so both peers see ECONNRESET rather than an early end of stream.
``duplicate_rate``
    Per HTTP request: with probability p, once the original exchange has finished (its response
    forwarded in full, or the connection ended), the request's exact bytes are sent to the target
    once more on a fresh connection; that second response is read and discarded.

Duplication is per *request*, not per connection, and works with keep-alive and pipelining: the
proxy frames (but never alters) the HTTP/1.x messages going each way, bodies by Content-Length or
chunked, responses also by HEAD/1xx/204/304 or end of connection. Only requests that were
forwarded complete are replayed. A stream that stops parsing as HTTP (an upgrade, CONNECT, garbage)
is still forwarded, but nothing on that connection is duplicated any more (``stats.unparsed``).
Replays run in the background: ``await proxy.wait_idle()`` waits for the ones scheduled so far;
with keep-alive the replay of an unanswered request waits for its connection to end. Nothing is
replayed while ``down`` or ``blackhole`` is on, or once ``close()`` has begun.

Clients retry: aiohttp resends an idempotent request (GET, PUT, DELETE, ...) once on a fresh
connection after a disconnect, so one dropped or cut GET shows up as two connections. Use POST,
or count on ``stats``, when the number of attempts matters.

Determinism: one ``random.Random(seed)`` (``proxy.rng``). It is drawn only for modes that are on,
in this order: per connection the drop, then the cut (direction, offset); per complete request the
duplicate. A client doing one thing at a time gets the same faults for the same seed; concurrent
connections draw in the order the event loop happens to serve them.

``stats`` counts what really happened, so tests can assert that a fault was injected.
``close()`` aborts every open connection and cancels pending replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import deque
from dataclasses import dataclass, fields

REQUEST = "request"  # client -> target
RESPONSE = "response"  # target -> client

_CHUNK = 64 * 1024
_QUEUE = 16  # chunks read ahead per direction (delay pipeline), so at most ~1 MiB buffered
_MAX_HEAD = 64 * 1024
_MAX_LINE = 8 * 1024


@dataclass
class ProxyStats:
    connections: int = 0  # client connections accepted
    bytes_to_target: int = 0  # client -> target, forwarded (replays not included)
    bytes_to_client: int = 0  # target -> client, forwarded
    drops: int = 0  # connections closed before forwarding anything (drop_rate)
    cuts: int = 0  # connections cut after N bytes (cut_*_after, cut_rate)
    blackholed: int = 0  # connections hung by blackhole
    discarded_bytes: int = 0  # bytes swallowed on hung connections
    requests: int = 0  # complete HTTP requests forwarded
    responses: int = 0  # complete final HTTP responses forwarded
    duplicates: int = 0  # requests replayed to the target
    duplicate_errors: int = 0  # replays that could not be sent or timed out
    upstream_errors: int = 0  # target unreachable when a client connected
    unparsed: int = 0  # connections whose stream stopped parsing as HTTP (no more duplication)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _HttpFramer:
    """Finds HTTP/1.x message boundaries in a byte stream fed in arbitrary pieces; observes only.

    Requests: ``on_head(method)`` when a request head is complete, ``on_message(raw)`` with the
    request's exact bytes when it is complete. Responses: ``on_message(None)`` when a final
    response is complete; ``method_of()`` names the request being answered (HEAD has no body).
    Anything it cannot follow sets ``broken`` and it stops.
    """

    def __init__(self, is_request: bool, on_message, on_head=None, method_of=None):
        self.is_request = is_request
        self.on_message = on_message
        self.on_head = on_head
        self.method_of = method_of
        self.broken = False
        self.state = "head"  # head, body, chunk_size, chunk_data, trailers, eof
        self.remaining = 0
        self.head = bytearray()
        self.line = bytearray()
        self.raw = bytearray() if is_request else None  # the current request's bytes

    def feed(self, data: bytes) -> None:
        try:
            self._feed(data)
        except (ValueError, IndexError, UnicodeDecodeError):
            self.broken = True

    def _feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n and not self.broken:
            state = self.state
            end_of_message = False
            if state == "head":
                before = len(self.head)
                self.head += data[i:]
                k = self.head.find(b"\r\n\r\n", max(0, before - 3))
                if k < 0:
                    if len(self.head) > _MAX_HEAD:
                        self.broken = True
                    new_i = n
                else:
                    new_i = i + (k + 4 - before)
                    head = bytes(self.head[: k + 4])
                    self.head.clear()
                    end_of_message = self._parse_head(head)
            elif state in ("body", "chunk_data"):
                take = min(self.remaining, n - i)
                self.remaining -= take
                new_i = i + take
                if self.remaining == 0:
                    if state == "body":
                        end_of_message = True
                    else:
                        self.state = "chunk_size"
            elif state in ("chunk_size", "trailers"):
                line, new_i = self._take_line(data, i)
                if line is not None:
                    if state == "chunk_size":
                        size = int(line.split(b";", 1)[0].strip(), 16)
                        if size < 0:
                            raise ValueError("negative chunk size")
                        if size:
                            self.state, self.remaining = "chunk_data", size + 2  # data + CRLF
                        else:
                            self.state = "trailers"
                    elif not line:
                        end_of_message = True
            else:  # eof: a response delimited by the end of the connection
                new_i = n
            if self.raw is not None:
                self.raw += data[i:new_i]
            i = new_i
            if end_of_message:
                self._end()

    def _take_line(self, data: bytes, i: int) -> tuple[bytes | None, int]:
        j = data.find(b"\n", i)
        if j < 0:
            self.line += data[i:]
            if len(self.line) > _MAX_LINE:
                self.broken = True
            return None, len(data)
        line = bytes(self.line) + data[i:j]
        self.line.clear()
        return line.rstrip(b"\r"), j + 1

    def _parse_head(self, head: bytes) -> bool:
        """Set the body state from a complete head; True if the message ends with its head."""
        lines = head[:-4].split(b"\r\n")
        start = lines[0].decode("latin-1").split(" ", 2)
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError("bad header line")
            headers[name.strip().lower()] = value.strip()
        if self.is_request:
            method, version = start[0], start[2]
            if not version.startswith("HTTP/1.") or method == "CONNECT":
                self.broken = True
                return False
            if self.on_head:
                self.on_head(method)
            no_body = False
        else:
            if not start[0].startswith("HTTP/1."):
                raise ValueError("not a response")
            status = int(start[1])
            if status == 101:
                self.broken = True
                return False
            if 100 <= status < 200:  # interim (100 Continue): not the answer, no body
                return False
            no_body = status in (204, 304) or (self.method_of is not None and self.method_of() == "HEAD")
        coding = headers.get(b"transfer-encoding", b"").lower()
        if no_body:
            return True
        if coding:
            if coding.rsplit(b",", 1)[-1].strip() != b"chunked":
                if self.is_request:
                    raise ValueError("request body without a length")
                self.state = "eof"
                return False
            self.state = "chunk_size"
            return False
        if b"content-length" in headers:
            length = int(headers[b"content-length"])
            if length < 0:
                raise ValueError("negative length")
            if length == 0:
                return True
            self.state, self.remaining = "body", length
            return False
        if self.is_request:
            return True
        self.state = "eof"
        return False

    def _end(self) -> None:
        self.state = "head"
        raw = None
        if self.raw is not None:
            raw, self.raw = bytes(self.raw), bytearray()
        self.on_message(raw)


class _Exchange:
    """One request on a connection, from its head to its response."""

    __slots__ = ("method", "raw", "duplicate")

    def __init__(self, method: str):
        self.method = method
        self.raw: bytes | None = None  # set when the request was forwarded complete
        self.duplicate = False


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.client_reader, self.client_writer = reader, writer
        self.target_reader: asyncio.StreamReader | None = None
        self.target_writer: asyncio.StreamWriter | None = None
        self.sent = {REQUEST: 0, RESPONSE: 0}
        self.cut: dict[str, int | None] = {REQUEST: None, RESPONSE: None}
        self.hung = False
        self.closed = False
        self.exchanges: deque[_Exchange] = deque()  # requests whose response is not complete yet
        self.request: _Exchange | None = None  # the request being received
        self.framers: dict[str, _HttpFramer] = {}

    def writers(self):
        return [w for w in (self.client_writer, self.target_writer) if w is not None]

    def close(self) -> None:
        """FIN both sides, after what was already written."""
        self.closed = True
        for w in self.writers():
            w.close()

    def abort(self) -> None:
        self.closed = True
        for w in self.writers():
            w.transport.abort()

    async def reset(self) -> None:
        """RST both sides, after flushing what was already written (within a second)."""
        self.closed = True
        writers = self.writers()
        for w in writers:
            w.transport.set_write_buffer_limits(0)
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            async with asyncio.timeout(1.0):
                for w in writers:
                    await w.drain()
        for w in writers:
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()


class FaultProxy:
    """Forwards TCP connections from ``listen_host:listen_port`` to the target, injecting faults.

    Fault attributes (see the module docstring) may be set in the constructor or at any time.
    """

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1",
                 listen_port: int = 0, *, seed: int | None = 0, rng: random.Random | None = None,
                 drop_rate: float = 0.0, delay_s: float = 0.0, request_delay_s: float = 0.0,
                 response_delay_s: float = 0.0, cut_request_after: int | None = None,
                 cut_response_after: int | None = None, cut_rate: float = 0.0, cut_span: int = 4096,
                 cut_direction: str | None = None, reset: bool = False, duplicate_rate: float = 0.0,
                 blackhole: bool = False, down: bool = False, connect_timeout: float = 5.0,
                 duplicate_timeout: float = 10.0):
        self.target_host, self.target_port = target_host, target_port
        self.listen_host = listen_host
        self._port = listen_port
        self.rng = rng if rng is not None else random.Random(seed)
        self.drop_rate = drop_rate
        self.delay_s, self.request_delay_s, self.response_delay_s = delay_s, request_delay_s, response_delay_s
        self.cut_request_after, self.cut_response_after = cut_request_after, cut_response_after
        self.cut_rate, self.cut_span, self.cut_direction = cut_rate, cut_span, cut_direction
        self.reset = reset
        self.duplicate_rate = duplicate_rate
        self.blackhole = blackhole
        self.connect_timeout, self.duplicate_timeout = connect_timeout, duplicate_timeout
        self.stats = ProxyStats()
        self.errors: list[Exception] = []  # unexpected exceptions in connection handlers
        self._down = down
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task] = set()  # connection handlers
        self._replays: set[asyncio.Task] = set()
        self._closing = False

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"http://{host}:{self._port}"

    async def start(self) -> FaultProxy:
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._listen()  # even when down, to fix the port
        if self._down:
            self._stop_listening()
        return self

    async def close(self) -> None:
        """Stop listening, abort every open connection, cancel pending replays; returns promptly."""
        self._closing = True
        self._stop_listening()
        self.drop_connections()
        tasks = [*self._tasks, *self._replays]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def down(self) -> bool:
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        value = bool(value)
        if value == self._down:
            return
        self._down = value
        if self._loop is None or self._closing:
            return
        if value:
            self._stop_listening()
            self.drop_connections()
        else:
            self._listen()

    def drop_connections(self) -> None:
        """Abort every open client connection (and its target side), e.g. so that new fault
        settings apply to the client's next connection instead of a kept-alive one."""
        for conn in list(self._conns):
            conn.abort()

    def reset_stats(self) -> None:
        self.stats = ProxyStats()

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until the replays scheduled so far (duplicate_rate) have finished."""
        async with asyncio.timeout(timeout):
            while self._replays:
                await asyncio.gather(*list(self._replays), return_exceptions=True)

    def _listen(self) -> None:
        family = socket.AF_INET6 if ":" in self.listen_host else socket.AF_INET
        sock = socket.create_server((self.listen_host, self._port), family=family, backlog=128)
        sock.setblocking(False)
        self._port = sock.getsockname()[1]
        self._sock = sock
        self._loop.add_reader(sock.fileno(), self._on_acceptable)

    def _stop_listening(self) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _on_acceptable(self) -> None:
        for _ in range(64):
            if self._sock is None:
                return
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of file descriptors: leave it in the backlog
                return
            sock.setblocking(False)
            task = self._loop.create_task(self._handle(sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- one connection -----------------------------------------------------------------------

    async def _handle(self, sock: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=sock)
        except OSError:
            sock.close()
            return
        conn = _Conn(reader, writer)
        self._conns.add(conn)
        self.stats.connections += 1
        try:
            if self._down:
                conn.abort()
            else:
                await self._serve(conn)
        except asyncio.CancelledError:
            conn.abort()
            raise
        except Exception as exc:  # a bug here, not a network fault: kept for the tests to see
            self.errors.append(exc)
            conn.abort()
        finally:
            self._conns.discard(conn)
            if not conn.closed:
                conn.close()
            self._flush_duplicates(conn)

    async def _serve(self, conn: _Conn) -> None:
        if self.blackhole:
            self._hang(conn)
            await self._swallow(conn.client_reader)
            return
        if self.drop_rate > 0 and self.rng.random() < self.drop_rate:
            self.stats.drops += 1
            await self._end(conn)
            return
        conn.cut[REQUEST], conn.cut[RESPONSE] = self.cut_request_after, self.cut_response_after
        if self.cut_rate > 0 and self.rng.random() < self.cut_rate:
            direction = self.cut_direction or self.rng.choice((REQUEST, RESPONSE))
            offset = self.rng.randrange(self.cut_span)
            current = conn.cut[direction]
            conn.cut[direction] = offset if current is None else min(current, offset)
        try:
            async with asyncio.timeout(self.connect_timeout):
                conn.target_reader, conn.target_writer = await asyncio.open_connection(
                    self.target_host, self.target_port)
        except (OSError, TimeoutError):
            self.stats.upstream_errors += 1
            conn.close()
            return
        if conn.closed:  # aborted (down, drop_connections) while connecting
            conn.abort()
            return
        conn.framers[REQUEST] = _HttpFramer(
            True, lambda raw: self._request_done(conn, raw), on_head=lambda m: self._request_head(conn, m))
        conn.framers[RESPONSE] = _HttpFramer(
            False, lambda _: self._response_done(conn),
            method_of=lambda: conn.exchanges[0].method if conn.exchanges else None)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._pump(conn, conn.client_reader, conn.target_writer, REQUEST))
            tg.create_task(self._pump(conn, conn.target_reader, conn.client_writer, RESPONSE))

    async def _end(self, conn: _Conn) -> None:
        """A drop or a cut: FIN, or RST if self.reset."""
        if self.reset:
            await conn.reset()
        else:
            conn.close()

    def _hang(self, conn: _Conn) -> None:
        if not conn.hung:
            conn.hung = True
            self.stats.blackholed += 1

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                self.stats.discarded_bytes += len(data)

    async def _pump(self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    direction: str) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(_QUEUE)

        async def read_ahead() -> None:
            try:
                while True:
                    data = await reader.read(_CHUNK)
                    await queue.put((loop.time(), data))
                    if not data:
                        return
            except OSError:
                await queue.put(None)

        feeder = asyncio.create_task(read_ahead())
        try:
            await self._deliver(conn, queue, writer, direction)
        except (OSError, RuntimeError):
            conn.abort()
        finally:
            feeder.cancel()
            await asyncio.wait([feeder])

    async def _deliver(self, conn: _Conn, queue: asyncio.Queue, writer: asyncio.StreamWriter,
                       direction: str) -> None:
        loop = asyncio.get_running_loop()
        stat = "bytes_to_target" if direction == REQUEST else "bytes_to_client"
        while True:
            item = await queue.get()
            if item is None:  # read error (reset)
                conn.abort()
                return
            arrived, data = item
            delay = self.delay_s + (self.request_delay_s if direction == REQUEST else self.response_delay_s)
            if delay > 0:
                wait = arrived + delay - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            if self.blackhole:
                self._hang(conn)
            if conn.hung:
                if data:
                    self.stats.discarded_bytes += len(data)
                    continue
                if direction == REQUEST:  # the client gave up
                    conn.close()
                return  # a hung target side never closes towards the client
            if conn.closed:
                return
            if not data:  # EOF: pass the half-close on
                if writer.can_write_eof() and not writer.is_closing():
                    writer.write_eof()
                return
            limit, cut = conn.cut[direction], False
            if limit is not None and conn.sent[direction] + len(data) >= limit:
                data, cut = data[: limit - conn.sent[direction]], True
            if data:
                writer.write(data)
                conn.sent[direction] += len(data)
                setattr(self.stats, stat, getattr(self.stats, stat) + len(data))
                self._observe(conn, direction, data)
            if cut:
                self.stats.cuts += 1
                await self._end(conn)
                return
            await writer.drain()

    # -- HTTP framing and duplication ---------------------------------------------------------

    def _observe(self, conn: _Conn, direction: str, data: bytes) -> None:
        framer = conn.framers.get(direction)
        if framer is None or framer.broken:
            return
        framer.feed(data)
        if framer.broken:
            self.stats.unparsed += 1
            for f in conn.framers.values():
                f.broken = True
            conn.exchanges.clear()

    def _request_head(self, conn: _Conn, method: str) -> None:
        conn.request = _Exchange(method)
        conn.exchanges.append(conn.request)

    def _request_done(self, conn: _Conn, raw: bytes) -> None:
        """A request was forwarded complete. (If the target answered before it was complete, the
        exchange is already gone from conn.exchanges and the mark below has no effect.)"""
        self.stats.requests += 1
        exchange, conn.request = conn.request, None
        if exchange is not None and self.duplicate_rate > 0 and self.rng.random() < self.duplicate_rate:
            exchange.raw, exchange.duplicate = raw, True

    def _response_done(self, conn: _Conn) -> None:
        self.stats.responses += 1
        if conn.exchanges:
            self._replay_later(conn.exchanges.popleft())

    def _flush_duplicates(self, conn: _Conn) -> None:
        """The connection ended: requests that went through but were not (fully) answered are
        replayed too."""
        while conn.exchanges:
            self._replay_later(conn.exchanges.popleft())

    def _replay_later(self, exchange: _Exchange) -> None:
        if (not exchange.duplicate or exchange.raw is None or self._closing or self._loop is None
                or self._down or self.blackhole):
            return
        task = self._loop.create_task(self._replay(exchange.method, exchange.raw))
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)

    async def _replay(self, method: str, raw: bytes) -> None:
        writer, sent = None, False
        try:
            async with asyncio.timeout(self.duplicate_timeout):
                reader, writer = await asyncio.open_connection(self.target_host, self.target_port)
                writer.write(raw)
                await writer.drain()
                self.stats.duplicates += 1
                sent = True
                answered = []
                framer = _HttpFramer(False, answered.append, method_of=lambda: method)
                while not answered and not framer.broken:
                    data = await reader.read(_CHUNK)
                    if not data:
                        break
                    framer.feed(data)
        except (OSError, TimeoutError):
            if not sent:  # a replay that went out and then timed out waiting for its answer still counts
                self.stats.duplicate_errors += 1
        finally:
            if writer is not None:
                writer.transport.abort()
