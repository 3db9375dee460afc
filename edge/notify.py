"""systemd readiness notification and a watchdog that proves the gate loop is alive.

Stdlib only, so it works on any edge and imports nothing of hub/ or cli/.

- `SdNotify` speaks the sd_notify(3) datagram protocol to `$NOTIFY_SOCKET` (a filesystem
  path, or an abstract name written with a leading '@'). Outside systemd the variable is
  absent and every call is a no-op. A failed send is logged (once per outage) and never
  raised: a gate keeps admitting people even if the notify socket is gone.
- `watchdog_interval()` reads `$WATCHDOG_USEC` / `$WATCHDOG_PID` (set by `WatchdogSec=`)
  and gives the feeding period: half the watchdog timeout, as sd_watchdog_enabled(3)
  recommends.
- `Heartbeat` is beaten by the scanner loop on every iteration (the scanner read has a
  timeout, so an idle loop still beats every few seconds).
- `feed_watchdog()` sends `WATCHDOG=1` only while the heartbeat is fresh. A hung scanner
  loop therefore stops the feeding even though the event loop itself still runs, and
  systemd kills and restarts the process (`Restart=always`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

__all__ = ["SdNotify", "Heartbeat", "watchdog_interval", "feed_watchdog"]

log = logging.getLogger(__name__)


def _address(value: str) -> str | None:
    """`$NOTIFY_SOCKET` -> an AF_UNIX address, or None if unusable."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]  # abstract namespace (Linux)
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is not an AF_UNIX path or @abstract name; not notifying systemd", value)
    return None


def _clean(value: object) -> str:
    # The protocol is one KEY=value per line: a newline in a value would forge another field.
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value).replace("\r", " ").replace("\n", " ")


class SdNotify:
    """Sends sd_notify messages; a no-op when not started by systemd with a notify socket.

    `path` overrides `$NOTIFY_SOCKET`; `env` replaces `os.environ` (for tests).
    """

    def __init__(self, path: str | None = None, *, env: Mapping[str, str] | None = None) -> None:
        if path is None:
            path = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
        self.address = _address(path)
        self._sock: socket.socket | None = None
        self._failing = False  # a warning was logged for the current outage

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: object) -> bool:
        """Send `KEY=value` lines, e.g. `send(STATUS="ok", READY=1)`. True if delivered.

        Never raises on a socket error; the first failure of an outage is logged as a
        warning, the following ones at debug level, until a send succeeds again.
        """
        if self.address is None or not fields:
            return False
        message = "".join(f"{key}={_clean(value)}\n" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)  # never stall the event loop on a full queue
                self._sock = sock
            self._sock.sendto(message, self.address)
        except OSError as exc:
            if not self._failing:
                self._failing = True
                log.warning("sd_notify to %r failed (%s); carrying on without systemd notifications",
                            self.address.replace("\0", "@"), exc)
            else:
                log.debug("sd_notify failed again: %s", exc)
            return False
        if self._failing:
            self._failing = False
            log.info("sd_notify works again")
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup finished (for `Type=notify`)."""
        return self.send(READY=1, STATUS=status) if status is not None else self.send(READY=1)

    def status(self, text: str) -> bool:
        """A one-line status shown by `systemctl status`."""
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        """Feed the watchdog (`WatchdogSec=`)."""
        return self.send(WATCHDOG=1)

    def stopping(self) -> bool:
        """Shutdown has begun."""
        return self.send(STOPPING=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SdNotify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between `WATCHDOG=1` messages (half of `WatchdogSec=`), or None if the
    watchdog is off, malformed, or meant for another process (`$WATCHDOG_PID`)."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 2 / 1_000_000


class Heartbeat:
    """Proof of life from the scanner loop. Creating it counts as the first beat.

    `beat()` is a single float store, so a scanner thread may call it while the event
    loop reads `alive()`.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()

    def age(self) -> float:
        """Seconds since the last beat."""
        return self._clock() - self._last

    def alive(self, max_age_s: float) -> bool:
        return self.age() <= max_age_s


async def feed_watchdog(notifier: SdNotify, heartbeat: Heartbeat, interval_s: float | None,
                        max_age_s: float) -> None:
    """Feed systemd's watchdog every `interval_s` while `heartbeat.alive(max_age_s)`.

    When the heartbeat goes stale, feeding stops and a STATUS line says why, so systemd
    restarts the process once `WatchdogSec=` passes. Should the loop beat again before
    that, feeding resumes. Runs until cancelled; returns at once if there is no watchdog
    (`interval_s` None) or no notify socket.

    Choose `max_age_s` above the scanner read timeout (idle beat period); a hang is
    then detected within about `max_age_s + interval_s + WatchdogSec`.
    """
    if interval_s is None or not notifier.enabled:
        return
    if interval_s <= 0 or max_age_s <= 0:
        raise ValueError("interval_s and max_age_s must be positive")
    stale = False
    while True:
        if heartbeat.alive(max_age_s):
            if stale:
                stale = False
                log.warning("gate loop is beating again; feeding the watchdog")
                notifier.status("gate loop alive again")
            notifier.watchdog()
        elif not stale:
            stale = True
            why = (f"watchdog: gate loop silent for {heartbeat.age():.1f} s "
                   f"(limit {max_age_s:g} s); no longer feeding the watchdog, expecting a restart")
            log.error("%s", why)
            notifier.status(why)
        await asyncio.sleep(interval_s)
