"""Errors the device layer raises to its callers (the gate loop, the CLI).

Why a type of our own: the gate must tell "the scanner is unplugged / busy / misconfigured" (show it,
retry later) from a bug, and print it as one line; evdev and pyserial raise a zoo of OSError and
SerialException subclasses that callers should not have to know.
"""

from __future__ import annotations

__all__ = ["DeviceError", "DeviceNotFound"]


class DeviceError(Exception):
    """A device is missing, busy, unsupported or failed. The message is one line for the operator."""


class DeviceNotFound(DeviceError):
    """No device matches the given path or USB id (unplugged, wrong profile, or no permission)."""
