"""The simulated relay of the demo and the tests: logs each pulse."""

from __future__ import annotations

import asyncio
import logging
import time

from devices.profiles import RelayProfile
from devices.relays.base import Relay

__all__ = [
    "LogRelay",
]


log = logging.getLogger("tessera.relay")


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
