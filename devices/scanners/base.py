"""The scanner interface the gate uses, simulated scanners, and `open_scanner` (profile -> driver).

Why one interface: the gate loop only needs "give me the next code" and "stop"; whether the code came
from a grabbed HID device, a USB-CDC port, stdin in the demo or a test's queue is the profile's business.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
from collections.abc import AsyncIterator
from typing import IO, Protocol, runtime_checkable

from devices.errors import DeviceError
from devices.profiles import ScannerProfile, load_scanner

__all__ = ["QueueScanner", "Scanner", "StdinScanner", "open_scanner"]


@runtime_checkable
class Scanner(Protocol):
    """What the gate needs from a scanner."""

    def codes(self) -> AsyncIterator[str]:
        """Yield each scanned code (non-empty text). Ends after `close()`; DeviceError if the device fails."""
        ...

    def close(self) -> None:
        """Release the device. Safe to call twice."""
        ...


def _pollable(fd: int) -> bool:
    """Whether the event loop can watch *fd*: a pipe, a socket or a terminal. Asking
    `connect_read_pipe` is not enough: it accepts /dev/null, and epoll's refusal comes later,
    as a traceback from a callback."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


class StdinScanner:
    """Demo scanner: each non-empty line typed on stdin (or written to `stream`) is a scanned code.

    Pipes and terminals are read through the event loop (`connect_read_pipe`); anything that cannot be
    polled (a regular file, /dev/null) is read by a daemon thread, which cannot hold up shutdown."""

    def __init__(self, profile: ScannerProfile | None = None, stream: IO[bytes] | IO[str] | None = None) -> None:
        self.profile = profile
        self._stream = stream if stream is not None else sys.stdin
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._transport: asyncio.BaseTransport | None = None
        self._closed = False

    async def codes(self) -> AsyncIterator[str]:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        fd = self._stream.fileno()
        reader = asyncio.StreamReader()
        try:
            if not _pollable(fd):  # /dev/null is a character device that epoll refuses, late
                raise ValueError("not a pipe, socket or terminal")
            # a dup, so closing our transport does not close the process's stdin
            pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
            try:
                self._transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
            except (ValueError, OSError):
                pipe.close()
                raise
            task = asyncio.ensure_future(self._pump_stream(reader))
        except (ValueError, OSError):  # not pollable
            self._start_thread(loop, fd)
            task = None
        try:
            while (line := await self._queue.get()) is not None:
                yield line
        finally:
            if task is not None:
                task.cancel()
            self.close()

    async def _pump_stream(self, reader: asyncio.StreamReader) -> None:
        while raw := await reader.readline():
            self._put(raw)
        self._queue.put_nowait(None)

    def _put(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").strip()
        if line:
            self._queue.put_nowait(line)

    def _start_thread(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        def run() -> None:
            with os.fdopen(os.dup(fd), "rb") as file:
                for raw in file:
                    if self._closed:
                        return
                    loop.call_soon_threadsafe(self._put, raw)
            loop.call_soon_threadsafe(self._queue.put_nowait, None)

        threading.Thread(target=run, name="stdin-scanner", daemon=True).start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._transport is not None:
            self._transport.close()
        self._queue.put_nowait(None)


class QueueScanner:
    """In-process simulated scanner: `scan(code)` makes `codes()` yield it (tests, the demo's web UI)."""

    def __init__(self, profile: ScannerProfile | None = None) -> None:
        self.profile = profile
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._closed = False

    def scan(self, code: str) -> None:
        """Simulate one scan."""
        if self._closed:
            raise DeviceError("scanner is closed")
        self._queue.put_nowait(code)

    async def codes(self) -> AsyncIterator[str]:
        while (code := await self._queue.get()) is not None:
            yield code

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)


def open_scanner(profile: ScannerProfile | str, device: str | None = None) -> Scanner:
    """The scanner for a profile (or profile name/path). `device` is the input device path (HID) or serial
    port (serial); without it a HID scanner is found by the profile's usb_id and a serial one uses the
    profile's port. Raises ProfileError for a bad profile, DeviceError when the device cannot be opened."""
    if isinstance(profile, str):
        profile = load_scanner(profile)
    if profile.interface == "hid":
        from devices.scanners.hid import HidScanner  # evdev exists on Linux only: import it when a HID scanner is used

        return HidScanner(profile, device)
    if profile.interface == "serial":
        from devices.scanners.usb_cdc import SerialScanner

        return SerialScanner(profile, device)
    return StdinScanner(profile)
