"""LCUS-type USB relay boards (CH340 + MCU): 4-byte on/off frames from the profile or the channel."""

from __future__ import annotations

import logging
from typing import Any

from devices.errors import DeviceError
from devices.profiles import LcusSettings, RelayProfile, parse_hex
from devices.relays.base import ThreadedRelay, open_link

__all__ = [
    "LcusRelay",
    "lcus_frame",
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


class LcusRelay(ThreadedRelay):
    """LCUS-type USB relay: writes the profile's on/off frames (9600 8N1 by default).

    `port` is a device path (opened with the profile's settings) or an already open pyserial-like object.
    On open it sends the off frame once, so a gate restarted mid-pulse does not leave the door open."""

    def __init__(self, profile: RelayProfile, port: str | Any | None = None) -> None:
        owns = port is None or isinstance(port, str)
        super().__init__(profile, open_link(profile, port) if owns else port, owns)
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
