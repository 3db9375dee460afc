"""Relays that open a door or release a turnstile: frames from the profile, pulses that never hang.

Why the care: the gate loop must stay responsive (next scan, LAN peers, watchdog) whatever a cheap USB
relay board does. So every device write runs in the relay's own single worker thread, with pyserial
write timeouts, and `pulse()` waits at most `pulse_ms + margin_ms`: a pulse that cannot finish in time
returns a failed `PulseResult` and marks the relay faulty instead of raising or hanging. The single
worker plus a lock mean two pulses never interleave their frames (on, on, off, off would shorten the
second opening); while a stuck operation still occupies the worker, further pulses fail at once rather
than queueing up behind it. The next pulse that succeeds clears the fault.

Drivers: `LcusRelay` (LCUS-1/2/4/8 boards: CH340 + MCU, 4-byte frames), `DtrRtsRelay` (relay transistor on
a modem-control line), `LogRelay` (simulated, for the demo and tests).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .errors import DeviceError
from .profiles import DtrRtsSettings, LcusSettings, RelayProfile, RelaySerialSettings, load_relay, parse_hex
from .serial_port import open_serial

__all__ = [
    "DtrRtsRelay",
    "LcusRelay",
    "LogRelay",
    "PulseResult",
    "Relay",
    "lcus_frame",
    "open_relay",
    "relay_frames",
]

log = logging.getLogger("tessera.relay")


def lcus_frame(channel: int, on: bool) -> bytes:
    """LCUS protocol frame: `A0 <channel> <state> <sum>`, sum = (0xA0 + channel + state) & 0xFF.

    >>> lcus_frame(1, True).hex(" ").upper()
    'A0 01 01 A2'
    """
    if not 1 <= channel <= 0xFF:
        raise ValueError(f"LCUS channel must be 1..255, got {channel}")
    state = 1 if on else 0
    return bytes([0xA0, channel, state, (0xA0 + channel + state) & 0xFF])


def relay_frames(profile: RelayProfile) -> tuple[bytes, bytes]:
    """(on, off) frames of an LCUS profile: the profile's own hex frames win, else computed from channel."""
    lcus = profile.lcus or LcusSettings()
    on = parse_hex(lcus.on) if lcus.on else lcus_frame(lcus.channel, True)
    off = parse_hex(lcus.off) if lcus.off else lcus_frame(lcus.channel, False)
    return on, off


@dataclass(frozen=True)
class PulseResult:
    """The outcome of one pulse. `ok` False means the door may not have opened (or closed): show it."""

    ok: bool
    elapsed_s: float
    relay: str
    error: str = ""


class Relay(ABC):
    """A relay the gate pulses once per admitted entry."""

    def __init__(self, profile: RelayProfile) -> None:
        self.profile = profile
        self.name = profile.name or profile.model
        self.pulse_s = profile.relay.pulse_ms / 1000
        self.deadline_s = (profile.relay.pulse_ms + profile.relay.margin_ms) / 1000
        self.faulty = False
        self.last_error = ""
        self.closed = False
        self._lock = asyncio.Lock()

    async def pulse(self) -> PulseResult:
        """Switch on, wait pulse_ms, switch off. Never raises for device trouble and never takes longer than
        pulse_ms + margin_ms (plus a pulse still running before it: pulses are done one after the other)."""
        async with self._lock:
            started = time.monotonic()
            if self.closed:
                error: str | None = "relay is closed"
            else:
                try:
                    error = await asyncio.wait_for(self._pulse(), self.deadline_s)
                except TimeoutError:
                    error = f"no answer within {self.deadline_s * 1000:.0f} ms (relay stuck or unplugged?)"
                except Exception as exc:  # a driver bug must not take the gate down either
                    log.exception("relay %s: pulse failed", self.name)
                    error = f"{type(exc).__name__}: {exc}"
            result = PulseResult(ok=error is None, elapsed_s=time.monotonic() - started, relay=self.name,
                                 error=error or "")  # fmt: skip
            self.faulty = not result.ok
            self.last_error = result.error
            if error:
                log.warning("relay %s: pulse failed: %s", self.name, error)
            return result

    @property
    def busy(self) -> bool:
        """True while a device operation (perhaps one already reported failed) is still running."""
        return False

    @abstractmethod
    async def _pulse(self) -> str | None:
        """Do one pulse; return None on success or a one-line reason. `pulse()` cancels it at the deadline."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; later pulses fail. Safe to call twice."""


class _ThreadedRelay(Relay):
    """A relay driven by blocking calls (pyserial) in one worker thread of its own, with a deadline."""

    def __init__(self, profile: RelayProfile, link: Any, owns_link: bool) -> None:
        super().__init__(profile)
        self.link = link  # a pyserial Serial, or anything with the same attributes (tests)
        self._owns_link = owns_link
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"relay-{self.name}")
        self._running: Future[None] | None = None

    @property
    def busy(self) -> bool:
        return self._running is not None and not self._running.done()

    async def _pulse(self) -> str | None:
        if self.busy:
            return "relay busy: a previous operation is still stuck in the driver"
        abandoned = threading.Event()
        job = self._worker.submit(self._pulse_blocking, abandoned)
        self._running = job
        try:
            await asyncio.wrap_future(job)
        except asyncio.CancelledError:  # the deadline in pulse() (or shutdown): switch off as soon as we can
            abandoned.set()
            raise
        except DeviceError as exc:
            return str(exc)
        except Exception as exc:  # SerialException, OSError, ValueError from a closed port...
            return f"{type(exc).__name__}: {exc}"
        return None

    def _pulse_blocking(self, abandoned: threading.Event) -> None:
        """On, sleep, off, in the worker thread. If 'on' failed, still try 'off': a half-written frame must
        not leave the door open. If 'on' only got through after the caller gave up (reported failure), switch
        off at once: the door must not open a full pulse long, seconds after the visitor was turned away."""
        try:
            self._switch(True)
        except Exception:
            try:
                self._switch(False)
            except Exception:
                pass
            raise
        abandoned.wait(self.pulse_s)
        try:
            self._switch(False)
        except Exception as exc:
            raise DeviceError(f"switching off failed, relay may still be ON: {exc}") from exc

    @abstractmethod
    def _switch(self, on: bool) -> None:
        """Blocking: set the relay on or off (bounded by the port's write timeout)."""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._worker.shutdown(wait=False, cancel_futures=True)
        if self._owns_link:
            try:
                self.link.close()
            except Exception:
                pass


def _open_link(profile: RelayProfile, port: str | None, **extra: object) -> Any:
    settings = profile.serial or RelaySerialSettings()
    path = port or settings.port
    if not path:
        raise DeviceError(f"relay profile {profile.name!r} names no serial port: give one (e.g. /dev/ttyUSB0)")
    return open_serial(path, settings, timeout=0, write_timeout=settings.write_timeout_ms / 1000, **extra)


class LcusRelay(_ThreadedRelay):
    """LCUS-type USB relay: writes the profile's on/off frames (9600 8N1 by default).

    `port` is a device path (opened with the profile's settings) or an already open pyserial-like object.
    On open it sends the off frame once, so a gate restarted mid-pulse does not leave the door open."""

    def __init__(self, profile: RelayProfile, port: str | Any | None = None) -> None:
        owns = port is None or isinstance(port, str)
        super().__init__(profile, _open_link(profile, port) if owns else port, owns)
        self.on_frame, self.off_frame = relay_frames(profile)
        try:
            self._write(self.off_frame)
        except Exception as exc:
            self.faulty = True
            self.last_error = f"initial off frame failed: {exc}"
            log.warning("relay %s: %s", self.name, self.last_error)

    def _write(self, frame: bytes) -> None:
        written = self.link.write(frame)
        if written is not None and written != len(frame):
            raise DeviceError(f"short write: {written} of {len(frame)} bytes")

    def _switch(self, on: bool) -> None:
        self._write(self.on_frame if on else self.off_frame)


class DtrRtsRelay(_ThreadedRelay):
    """Relay transistor on DTR or RTS of a USB-serial adapter: the pulse asserts (or de-asserts) that line.

    The line starts idle (set before the port is opened). Note that closing a tty drops both lines
    (HUPCL), which switches an `active_high = false` board on: prefer active-high wiring."""

    def __init__(self, profile: RelayProfile, port: str | Any | None = None) -> None:
        settings = profile.dtr_rts or DtrRtsSettings()
        self.line = settings.line
        self.active = settings.active_high
        owns = port is None or isinstance(port, str)
        idle = {"dtr": False, "rts": False, self.line: not self.active}
        super().__init__(profile, _open_link(profile, port, **idle) if owns else port, owns)
        if not owns:
            setattr(self.link, self.line, not self.active)  # an open port given to us: make it idle now

    def _switch(self, on: bool) -> None:
        setattr(self.link, self.line, self.active if on else not self.active)


class LogRelay(Relay):
    """Simulated relay for the demo and tests: logs each pulse and keeps (start, end) monotonic times."""

    def __init__(self, profile: RelayProfile) -> None:
        super().__init__(profile)
        self.pulses: list[tuple[float, float]] = []

    async def _pulse(self) -> str | None:
        start = time.monotonic()
        log.info("relay %s: ON (simulated)", self.name)
        await asyncio.sleep(self.pulse_s)
        log.info("relay %s: OFF after %d ms (simulated)", self.name, self.profile.relay.pulse_ms)
        self.pulses.append((start, time.monotonic()))
        return None

    def close(self) -> None:
        self.closed = True


def open_relay(profile: RelayProfile | str, port: str | None = None) -> Relay:
    """The relay for a profile (or profile name/path): `port` overrides the profile's serial port.

    Raises ProfileError for a bad profile and DeviceError when the port cannot be opened."""
    if isinstance(profile, str):
        profile = load_relay(profile)
    if profile.driver == "lcus":
        return LcusRelay(profile, port)
    if profile.driver == "dtr_rts":
        return DtrRtsRelay(profile, port)
    return LogRelay(profile)
