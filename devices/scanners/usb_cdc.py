"""Serial scanners (USB-CDC "virtual COM port" mode, or RS-232): a pure line decoder and a thin adapter.

Why serial mode when a scanner can be a keyboard: no keymap to get wrong and no grab needed; the
scanner sends the code's bytes followed by a terminator. We end a line on CR or LF whatever the profile
says (a scanner reconfigured from CR to CRLF must not stop the gate), which is safe because empty
lines are dropped. A partial line idle for longer than the profile's read timeout is dropped, and a line
longer than the cap is cut and marked with U+FFFD, so noise from a wrong baud rate shows up as an
unreadable code instead of filling memory or gluing itself to the next scan.

The adapter reads with `loop.add_reader` on the port's file descriptor: no thread, never blocking the
event loop, and closing is immediate.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Literal

from devices.errors import DeviceError
from devices.profiles import ScannerProfile, ScannerSerialSettings
from devices.serial_port import open_serial

__all__ = ["GARBLED", "LineDecoder", "SerialScanner"]

GARBLED = "\ufffd"
_ENDS = (0x0D, 0x0A)  # CR, LF


class LineDecoder:
    """Bytes in, complete non-empty lines out. Pure: time is passed in (`now`) when a timeout is used."""

    def __init__(
        self,
        terminator: Literal["CR", "LF", "CRLF"] = "CR",
        max_length: int = 2048,
        idle_timeout_s: float | None = None,
        encoding: str = "utf-8",
    ) -> None:
        if terminator not in ("CR", "LF", "CRLF"):
            raise ValueError(f"terminator must be CR, LF or CRLF, not {terminator!r}")
        self.terminator = terminator  # expected one; any CR or LF ends a line (see module doc)
        self.max_length = max_length
        self.idle_timeout_s = idle_timeout_s
        self.encoding = encoding
        self._buf = bytearray()
        self._overflow = False
        self._last: float | None = None

    def feed(self, data: bytes, now: float | None = None) -> list[str]:
        """Add received bytes; return the lines they complete (terminator removed, empty lines dropped)."""
        if (
            self.idle_timeout_s is not None
            and now is not None
            and self._last is not None
            and (self._buf or self._overflow)
            and now - self._last > self.idle_timeout_s
        ):
            self._drop()  # the rest of that line never came
        if now is not None:
            self._last = now
        lines: list[str] = []
        for byte in data:
            if byte in _ENDS:
                line = self._take()
                if line:
                    lines.append(line)
            elif len(self._buf) < self.max_length:
                self._buf.append(byte)
            else:
                self._overflow = True
        return lines

    def _take(self) -> str:
        text = self._buf.decode(self.encoding, errors="replace")
        if self._overflow:
            text += GARBLED
        self._drop()
        return text

    def _drop(self) -> None:
        self._buf.clear()
        self._overflow = False


class SerialScanner:
    """A scanner on a serial port; `codes()` yields each scanned line. DeviceError if the port goes away."""

    def __init__(self, profile: ScannerProfile, port: str | None = None) -> None:
        if profile.serial is None:
            raise DeviceError(f"profile {profile.name or profile.model!r} is not a serial scanner")
        settings: ScannerSerialSettings = profile.serial
        path = port or settings.port
        if not path:
            raise DeviceError(f"profile {profile.name!r} names no serial port: give one (e.g. /dev/ttyACM0)")
        self.profile = profile
        self.port = path
        self.decoder = LineDecoder(settings.terminator, settings.max_length, settings.read_timeout_ms / 1000)
        self._serial = open_serial(path, settings, timeout=0)
        self._fd = self._serial.fileno()
        self._closed = False
        self._queue: asyncio.Queue[str | BaseException | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _on_readable(self) -> None:
        assert self._queue is not None
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: USB-CDC device unplugged (or the pty's far end closed)
            self._stop_reading()
            self._queue.put_nowait(DeviceError(f"{self.port}: scanner lost ({exc.strerror or exc})"))
            return
        if not data:
            self._stop_reading()
            self._queue.put_nowait(DeviceError(f"{self.port}: scanner lost (end of file)"))
            return
        for line in self.decoder.feed(data, time.monotonic()):
            self._queue.put_nowait(line)

    def _stop_reading(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None

    async def codes(self) -> AsyncIterator[str]:
        """Yield each scanned line until `close()` (then it ends) or the port fails (DeviceError)."""
        if self._closed:
            return
        self._queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._on_readable)
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop_reading()

    def close(self) -> None:
        """Stop reading and close the port; a running `codes()` ends. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop_reading()
        if self._queue is not None:
            self._queue.put_nowait(None)
        self._serial.close()
