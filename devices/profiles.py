"""Device models described by TOML files in `firmware_profiles/` (E8: adding a model is adding a file).

Why TOML + msgspec: the files are written by hand by whoever installs a gate, so every mistake must come
back as one line naming the file and the field (`lcus-1.toml: relay.pulse_ms: Expected int, got str`)
instead of a traceback at 6 a.m. when the first visitor scans. msgspec checks types, ranges and unknown
keys (`forbid_unknown_fields`, so a typo such as `pulse_msec` is an error, not a silently ignored line);
the few cross-field rules (which table goes with which interface, hex frames) are checked here after it.

This module only reads and validates; it opens no device and imports no driver.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from core.base import tomlfiles

__all__ = [
    "DtrRtsSettings",
    "HidSettings",
    "LcusSettings",
    "ProfileError",
    "RelayProfile",
    "RelaySerialSettings",
    "RelaySettings",
    "ScannerProfile",
    "ScannerSerialSettings",
    "SerialPort",
    "list_profiles",
    "load_profile",
    "load_relay",
    "load_scanner",
    "parse_hex",
    "profiles_dir",
]

PROFILES_ENV = "TESSERA_PROFILES"
_USB_ID_RE = re.compile(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{4}")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})(?:[ :]?[0-9a-fA-F]{2})*")


class ProfileError(ValueError):
    """A profile file is missing, not TOML, or does not describe a valid device: one line, file and field."""


# --- building blocks -------------------------------------------------------------------------------------

Ms = Annotated[int, Meta(ge=1, le=60_000)]  # any duration in a profile: 1 ms .. 1 min


class HidSettings(Struct, forbid_unknown_fields=True, frozen=True):
    """A keyboard-wedge scanner: which layout the scanner was configured for, and how fast it types."""

    keymap: Literal["us", "de"]  # required: the wrong keymap is the classic wedge bug, never guess it
    char_timeout_ms: Ms = 50  # gap between key-downs after which a partial code is discarded
    usb_id: str | None = None  # "vvvv:pppp" (hex) to find the device without a path
    max_length: Annotated[int, Meta(ge=1, le=65_536)] = 2048


class SerialPort(Struct, forbid_unknown_fields=True, frozen=True):
    """Line settings shared by serial scanners and relays (pyserial names and meanings)."""

    port: str | None = None  # default device path; `--port`/`--device` on the command line wins
    baudrate: Annotated[int, Meta(ge=50, le=4_000_000)] = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: float = 1  # 1, 1.5 or 2 (checked below; msgspec Literal has no floats)


class ScannerSerialSettings(SerialPort, frozen=True):
    """A scanner that sends each code as a line over a (USB-CDC or RS-232) serial port."""

    terminator: Literal["CR", "LF", "CRLF"] = "CR"
    read_timeout_ms: Ms = 500  # a partial line idle this long is dropped (a scanner sends a code in one burst)
    max_length: Annotated[int, Meta(ge=1, le=65_536)] = 2048


class RelaySerialSettings(SerialPort, frozen=True):
    """Serial settings for relay boards; writes are bounded so a stuck board cannot stall the gate."""

    write_timeout_ms: Ms = 200


class RelaySettings(Struct, forbid_unknown_fields=True, frozen=True):
    """What a pulse is: how long the door/turnstile contact is closed, and how late is too late."""

    pulse_ms: Ms = 500
    margin_ms: Ms = 300  # a pulse not finished by pulse_ms + margin_ms is reported failed (relay faulty)


class LcusSettings(Struct, forbid_unknown_fields=True, frozen=True):
    """LCUS-type boards (CH340 + MCU): 4-byte frames `A0 <channel> <state> <sum>`."""

    channel: Annotated[int, Meta(ge=1, le=255)] = 1
    on: str | None = None  # hex, e.g. "A0 01 01 A2"; computed from the channel when absent
    off: str | None = None


class DtrRtsSettings(Struct, forbid_unknown_fields=True, frozen=True):
    """Boards whose relay transistor hangs on a modem-control line of a USB-serial adapter."""

    line: Literal["dtr", "rts"] = "dtr"
    # true: the relay is on while the line is asserted (pyserial `dtr = True`; note a TTL adapter pin is
    # then LOW). false: on while de-asserted.
    active_high: bool = True


class ScannerProfile(Struct, forbid_unknown_fields=True, frozen=True):
    """A scanner model. `name`/`path` are filled in by the loader, never written in the file."""

    kind: Literal["scanner"]
    model: str
    interface: Literal["hid", "serial", "stdin"]
    vendor: str = ""
    notes: str = ""
    hid: HidSettings | None = None
    serial: ScannerSerialSettings | None = None
    name: str = ""
    path: str = ""


class RelayProfile(Struct, forbid_unknown_fields=True, frozen=True):
    """A relay model. Frames and pulse length come from here, never from code (DESIGN 6)."""

    kind: Literal["relay"]
    model: str
    driver: Literal["lcus", "dtr_rts", "log"]
    vendor: str = ""
    notes: str = ""
    relay: RelaySettings = RelaySettings()
    serial: RelaySerialSettings | None = None
    lcus: LcusSettings | None = None
    dtr_rts: DtrRtsSettings | None = None
    name: str = ""
    path: str = ""


# --- locating files --------------------------------------------------------------------------------------


def profiles_dir() -> Path:
    """The profile folder: `$TESSERA_PROFILES`, else `firmware_profiles/` next to the `devices` package."""
    env = os.environ.get(PROFILES_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "firmware_profiles"


def _resolve(name_or_path: str | os.PathLike[str]) -> Path:
    return tomlfiles.resolve(name_or_path, profiles_dir(), "profile", ProfileError)


def parse_hex(text: str) -> bytes:
    """`"A0 01 01 A2"` (spaces or colons between bytes optional) -> bytes; ValueError if not hex bytes."""
    stripped = text.strip()
    if not _HEX_RE.fullmatch(stripped):
        raise ValueError(f"not hex bytes: {text!r} (expected e.g. \"A0 01 01 A2\")")
    return bytes.fromhex(stripped.replace(":", " "))


# --- loading ---------------------------------------------------------------------------------------------


def load_profile(name_or_path: str | os.PathLike[str], kind: str, cls: type[Any],
                 check: Callable[[Any], tuple[str, str] | None] | None = None, *, path: Path | None = None) -> Any:
    """The one way a device profile file is read: TOML, `kind` checked, converted to *cls*
    strictly, then *check* (field, message) for rules across fields; every mistake is one
    ProfileError naming the file and the field. Printer modules use it with their own
    structs (and *path* when they look in a subfolder)."""
    path = path or _resolve(name_or_path)
    shown = tomlfiles.shown(path)
    data = tomlfiles.read(path, "profile", ProfileError)
    for reserved in ("name", "path"):
        if reserved in data:
            raise ProfileError(f"{shown}: {reserved}: unknown field (set from the file name, not in the file)")
    found = data.get("kind")
    if found != kind:
        what = "missing" if found is None else f"is {found!r}"
        raise ProfileError(f"{shown}: kind: {what}, expected {kind!r}")
    profile = tomlfiles.convert(data, cls, path, ProfileError)
    problem = check(profile) if check else None
    if problem:
        raise ProfileError(f"{shown}: {problem[0]}: {problem[1]}")
    return msgspec.structs.replace(profile, name=path.stem, path=str(path))


def _check_serial(prefix: str, serial: SerialPort | None) -> tuple[str, str] | None:
    if serial is not None and serial.stopbits not in (1, 1.5, 2):
        return f"{prefix}.stopbits", f"must be 1, 1.5 or 2, got {serial.stopbits:g}"
    return None


def _only_for(profile: Any, selector: str, tables: dict[str, str]) -> tuple[str, str] | None:
    """Each optional table belongs to one interface/driver: a table for another one is a mistake."""
    chosen = getattr(profile, selector)
    for table, owner in tables.items():
        if getattr(profile, table) is not None and owner != chosen:
            return table, f'only allowed with {selector} = "{owner}" (this profile has {selector} = "{chosen}")'
    return None


def _check_scanner(p: ScannerProfile) -> tuple[str, str] | None:
    wrong = _only_for(p, "interface", {"hid": "hid", "serial": "serial"})
    if wrong:
        return wrong
    if p.interface == "hid":
        if p.hid is None:
            return "hid", 'missing table [hid] (required with interface = "hid"; at least keymap)'
        if p.hid.usb_id is not None and not _USB_ID_RE.fullmatch(p.hid.usb_id):
            return "hid.usb_id", f'expected "vvvv:pppp" in hex (as lsusb prints it), got {p.hid.usb_id!r}'
    if p.interface == "serial" and p.serial is None:
        return "serial", 'missing table [serial] (required with interface = "serial")'
    return _check_serial("serial", p.serial)


def _check_relay(p: RelayProfile) -> tuple[str, str] | None:
    wrong = _only_for(p, "driver", {"lcus": "lcus", "dtr_rts": "dtr_rts"})
    if wrong:
        return wrong
    if p.driver == "log" and p.serial is not None:
        return "serial", 'not used with driver = "log" (a simulated relay has no port)'
    if p.lcus is not None:
        for field in ("on", "off"):
            frame = getattr(p.lcus, field)
            if frame is not None:
                try:
                    parse_hex(frame)
                except ValueError as exc:
                    return f"lcus.{field}", str(exc)
    return _check_serial("serial", p.serial)


def load_scanner(name_or_path: str | os.PathLike[str]) -> ScannerProfile:
    """Load and validate a scanner profile by name (file stem in the profile folder) or .toml path."""
    return load_profile(name_or_path, "scanner", ScannerProfile, _check_scanner)


def load_relay(name_or_path: str | os.PathLike[str]) -> RelayProfile:
    """Load and validate a relay profile by name (file stem in the profile folder) or .toml path."""
    return load_profile(name_or_path, "relay", RelayProfile, _check_relay)


def list_profiles() -> dict[str, str]:
    """Every profile in the folder: name -> kind ("scanner", "relay", ...), or "invalid: <reason>" if a
    scanner/relay file does not load, so a listing shows a broken file instead of hiding it or failing
    as a whole. Kinds this module does not own (printers) are listed unchecked."""
    found: dict[str, str] = {}
    folder = profiles_dir()
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.toml")):
        try:
            kind = tomlfiles.read(path, "profile", ProfileError).get("kind")
            if kind == "scanner":
                load_scanner(path)
            elif kind == "relay":
                load_relay(path)
            elif not isinstance(kind, str):
                raise ProfileError(f"{tomlfiles.shown(path)}: kind: missing")
            found[path.stem] = kind  # other kinds (printers) are validated by their own loader
        except ProfileError as exc:
            found[path.stem] = f"invalid: {exc}"
    return found
