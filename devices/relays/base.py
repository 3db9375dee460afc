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

from devices.errors import DeviceError
from devices.profiles import RelayProfile, RelaySerialSettings
from devices.serial_port import open_serial

__all__ = [
    "PulseResult",
    "Relay",
]


log = logging.getLogger("tessera.relay")


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


class ThreadedRelay(Relay):
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


def open_link(profile: RelayProfile, port: str | None, **extra: object) -> Any:
    settings = profile.serial or RelaySerialSettings()
    path = port or settings.port
    if not path:
        raise DeviceError(f"relay profile {profile.name!r} names no serial port: give one (e.g. /dev/ttyUSB0)")
    return open_serial(path, settings, timeout=0, write_timeout=settings.write_timeout_ms / 1000, **extra)
