"""A relay transistor on the DTR or RTS line of a USB-serial adapter."""

from __future__ import annotations

from typing import Any

from devices.profiles import DtrRtsSettings, RelayProfile
from devices.relays.base import ThreadedRelay, open_link

__all__ = [
    "DtrRtsRelay",
]


class DtrRtsRelay(ThreadedRelay):
    """Relay transistor on DTR or RTS of a USB-serial adapter: the pulse asserts (or de-asserts) that line.

    The line starts idle (set before the port is opened). Note that closing a tty drops both lines
    (HUPCL), which switches an `active_high = false` board on: prefer active-high wiring."""

    def __init__(self, profile: RelayProfile, port: str | Any | None = None) -> None:
        settings = profile.dtr_rts or DtrRtsSettings()
        self.line = settings.line
        self.active = settings.active_high
        owns = port is None or isinstance(port, str)
        idle = {"dtr": False, "rts": False, self.line: not self.active}
        super().__init__(profile, open_link(profile, port, **idle) if owns else port, owns)
        if not owns:
            setattr(self.link, self.line, not self.active)  # an open port given to us: make it idle now

    def _switch(self, on: bool) -> None:
        setattr(self.link, self.line, self.active if on else not self.active)
