"""`open_relay`: the relay driver a profile names."""

from __future__ import annotations

from devices.profiles import RelayProfile, load_relay
from devices.relays.base import Relay
from devices.relays.dtr import DtrRtsRelay
from devices.relays.lcus import LcusRelay
from devices.relays.simulated import LogRelay

__all__ = [
    "open_relay",
]


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
