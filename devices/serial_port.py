"""Opening a serial port from a profile's line settings, with errors an operator can act on.

Why a helper: scanners and relays both open ports, and pyserial's failures ("could not open port
/dev/ttyUSB0: [Errno 13] ...") should become one line that says what to do (group `dialout`). It also
sets every setting, including DTR/RTS, *before* opening, because pyserial asserts both lines at open
by default and a relay hanging on one of them would click on every start.
"""

from __future__ import annotations

import errno

import serial

from .errors import DeviceError, DeviceNotFound
from .profiles import SerialPort

__all__ = ["open_serial"]

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD, "M": serial.PARITY_MARK,
           "S": serial.PARITY_SPACE}  # fmt: skip
_STOPBITS = {1.0: serial.STOPBITS_ONE, 1.5: serial.STOPBITS_ONE_POINT_FIVE, 2.0: serial.STOPBITS_TWO}


def open_serial(port: str, settings: SerialPort, **extra: object) -> serial.Serial:
    """Open `port` with a profile's line settings; DeviceError (one line) instead of SerialException.

    `extra` are pyserial attributes set before opening (timeouts, initial `dtr`/`rts`), so the lines
    come up in the caller's state rather than pyserial's default (both asserted)."""
    port_obj = serial.Serial()
    port_obj.port = port
    port_obj.baudrate = settings.baudrate
    port_obj.bytesize = settings.bytesize
    port_obj.parity = _PARITY[settings.parity]
    port_obj.stopbits = _STOPBITS[float(settings.stopbits)]
    port_obj.exclusive = True  # flock: a second gate process must not drive the same relay or scanner
    for key, value in extra.items():
        setattr(port_obj, key, value)
    try:
        port_obj.open()
    except serial.SerialException as exc:
        code = getattr(exc, "errno", None)
        if code == errno.ENOENT:
            raise DeviceNotFound(f"{port}: no such serial port (unplugged?)") from None
        if code in (errno.EACCES, errno.EPERM):
            raise DeviceError(f"{port}: permission denied (the gate user needs to be in group 'dialout')") from None
        raise DeviceError(f"{port}: cannot open serial port: {exc}") from None
    return port_obj
