"""Keyboard-wedge (HID) scanners through evdev: a pure decoder (key events -> codes) and a thin adapter.

Why evdev and `grab()`: the gate has no X and no focused text field; reading the input device directly
and grabbing it keeps scanned codes out of the console login and out of any other reader.

The decoder follows DESIGN 6: key-down events only (repeats and releases are ignored, except releases
of modifiers, which end Shift/AltGr), Enter or keypad Enter ends a code, and a gap between key-downs
longer than the profile's `char_timeout_ms` (judged on the events' own timestamps, so a busy event loop
cannot fake a gap) discards the partial code: a scanner types a whole code in one burst, so a gap means
a half-read code or a person at a keyboard. A key the layout does not know is kept as U+FFFD, so the
gate rejects the code as unreadable instead of accepting a shortened one.
"""

from __future__ import annotations

import asyncio
import errno
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import evdev
from evdev import InputEvent, ecodes

from devices.errors import DeviceError, DeviceNotFound
from devices.profiles import ScannerProfile
from devices.scanners.keymaps import ALTGR_KEY, COMBINING, ENTER_KEYS, OTHER_MODIFIERS, SHIFT_KEYS, get_keymap

__all__ = ["GARBLED", "HidDecoder", "HidScanner", "find_hid_device", "keystrokes", "open_hid_device"]

GARBLED = "\ufffd"  # stands for a key press we could not turn into a character

KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2


class HidDecoder:
    """Feed evdev events one by one; `feed` returns a complete code when Enter ends one, else None."""

    def __init__(self, keymap: str, char_timeout_s: float = 0.05, max_length: int = 2048) -> None:
        self.keymap = get_keymap(keymap)
        self.char_timeout_s = char_timeout_s
        self.max_length = max_length
        self._shift: set[int] = set()
        self._altgr = False
        self._other: set[int] = set()
        self._reset_code()

    def _reset_code(self) -> None:
        self._chars: list[str] = []
        self._dead: str | None = None  # pending dead key (German ^ ´ `)
        self._overflow = False
        self._last_down: float | None = None

    @property
    def partial(self) -> str:
        """What has been typed of the current code so far (for diagnostics)."""
        return "".join(self._chars)

    def reset(self) -> None:
        """Forget the partial code and modifier state (e.g. after the device was reopened)."""
        self._shift.clear()
        self._other.clear()
        self._altgr = False
        self._reset_code()

    def feed(self, event: InputEvent) -> str | None:
        """Consume one event; return the finished code (never empty) when it was Enter, else None."""
        if event.type != ecodes.EV_KEY or event.value not in (KEY_UP, KEY_DOWN):
            return None  # SYN/MSC/LED events, auto-repeat (2) and nonsense values
        code = event.code
        if event.value == KEY_UP:
            self._release(code)
            return None
        now = event.timestamp()
        if self._last_down is not None and abs(now - self._last_down) > self.char_timeout_s:
            self._reset_code()  # too slow to be one scan; modifiers still held stay held
        self._last_down = now
        if self._press_modifier(code):
            return None
        if code in ENTER_KEYS:
            return self._finish()
        self._type(code)
        return None

    def _release(self, code: int) -> None:
        self._shift.discard(code)
        self._other.discard(code)
        if code == ALTGR_KEY:
            self._altgr = False

    def _press_modifier(self, code: int) -> bool:
        if code in SHIFT_KEYS:
            self._shift.add(code)
        elif code == ALTGR_KEY and self.keymap.has_altgr:
            self._altgr = True
        elif code in OTHER_MODIFIERS or code == ALTGR_KEY:  # on `us` right Alt is plain Alt
            self._other.add(code)
        else:
            return False
        return True

    def _type(self, code: int) -> None:
        level = 2 if self._altgr else 1 if self._shift else 0
        char = None if self._other else self.keymap.char(code, level)
        if char is not None and (code, level) in self.keymap.dead:
            if self._dead is not None:
                self._append(self._dead)  # two dead keys in a row: the first stands for itself
            self._dead = char
            return
        if char is None:
            char = GARBLED
        if self._dead is not None:
            char = self._compose(self._dead, char)
            self._dead = None
        self._append(char)

    @staticmethod
    def _compose(dead: str, char: str) -> str:
        if char == " ":
            return dead
        composed = unicodedata.normalize("NFC", char + COMBINING[dead])
        return composed if len(composed) == 1 else dead + char

    def _append(self, text: str) -> None:
        if len(self._chars) >= self.max_length:
            self._overflow = True
        else:
            self._chars.append(text)

    def _finish(self) -> str | None:
        if self._dead is not None:
            self._append(self._dead)
        text = "".join(self._chars)
        if self._overflow:
            text += GARBLED  # too long to be ours: keep it visibly broken rather than silently cut
        self._reset_code()
        return text or None


def keystrokes(
    text: str,
    keymap: str,
    *,
    start: float = 1_000.0,
    interval: float = 0.002,
    enter: int | None = ecodes.KEY_ENTER,
    syn: bool = True,
) -> list[InputEvent]:
    """The events a scanner configured for `keymap` sends to type `text` (then Enter, unless None).

    The inverse of `HidDecoder`, used by tests and to simulate a scanner. Each key event is `interval`
    seconds after the previous one and followed by a SYN_REPORT like a real device's; modifiers are
    pressed around the key that needs them. ValueError if a character cannot be typed on the layout."""
    layout = get_keymap(keymap)
    presses = [press for char in text for press in layout.sequence(char)]
    events: list[InputEvent] = []
    t_us = round(start * 1_000_000)
    step_us = max(1, round(interval * 1_000_000))

    def emit(code: int, value: int) -> None:
        nonlocal t_us
        sec, usec = divmod(t_us, 1_000_000)
        events.append(InputEvent(sec, usec, ecodes.EV_KEY, code, value))
        if syn:
            events.append(InputEvent(sec, usec, ecodes.EV_SYN, ecodes.SYN_REPORT, 0))
        t_us += step_us

    for code, level in presses:
        modifier = {0: None, 1: ecodes.KEY_LEFTSHIFT, 2: ALTGR_KEY}[level]
        if modifier is not None:
            emit(modifier, KEY_DOWN)
        emit(code, KEY_DOWN)
        emit(code, KEY_UP)
        if modifier is not None:
            emit(modifier, KEY_UP)
    if enter is not None:
        emit(enter, KEY_DOWN)
        emit(enter, KEY_UP)
    return events


# --- the adapter -----------------------------------------------------------------------------------------

Opener = Callable[[str], Any]


def _open_path(path: str, open_device: Opener) -> Any:
    try:
        return open_device(path)
    except FileNotFoundError:
        raise DeviceNotFound(f"{path}: no such input device (unplugged?)") from None
    except PermissionError:
        raise DeviceError(f"{path}: permission denied (the gate user needs to be in group 'input')") from None
    except OSError as exc:
        raise DeviceError(f"{path}: not an evdev input device ({exc.strerror or exc})") from None


def _types_enter(device: Any) -> bool:
    """A scanner exposes several event nodes (keyboard, consumer keys...); we want the one that can type."""
    try:
        keys = device.capabilities().get(ecodes.EV_KEY, [])
    except OSError:
        return False
    return ecodes.KEY_ENTER in keys or ecodes.KEY_KPENTER in keys


def find_hid_device(usb_id: str, paths: Iterable[str] | None = None, open_device: Opener = evdev.InputDevice) -> Any:
    """Open the input device whose USB vendor:product is `usb_id` ("0c2e:0b61") and that has an Enter key.

    `paths` defaults to `evdev.list_devices()` (/dev/input/event*); `open_device` is how a path is
    opened (evdev.InputDevice; tests pass a stand-in since this machine has no input devices).
    DeviceNotFound says how many devices were looked at and how many could not be opened, because
    "not found" on a gate is nearly always a missing group membership."""
    vendor, product = (int(part, 16) for part in usb_id.split(":"))
    all_paths = sorted(evdev.list_devices() if paths is None else paths)
    unopened = 0
    chosen = None
    for path in all_paths:
        try:
            device = open_device(path)
        except OSError:
            unopened += 1
            continue
        if chosen is None and (device.info.vendor, device.info.product) == (vendor, product) and _types_enter(device):
            chosen = device
        else:
            device.close()
    if chosen is None:
        hint = f"; {unopened} could not be opened (permission? group 'input')" if unopened else ""
        looked = f"looked at {len(all_paths)} input device(s){hint}"
        raise DeviceNotFound(f"no input device with USB id {usb_id} and an Enter key ({looked})")
    return chosen


def open_hid_device(
    profile: ScannerProfile, device_path: str | None = None, open_device: Opener = evdev.InputDevice
) -> Any:
    """The device for a HID scanner profile: `device_path` if given, else found by the profile's usb_id."""
    if profile.hid is None:
        raise DeviceError(f"profile {profile.name or profile.model!r} is not a HID scanner")
    if device_path is not None:
        return _open_path(device_path, open_device)
    if profile.hid.usb_id is None:
        raise DeviceError(f"profile {profile.name!r} has no hid.usb_id: give the device path (/dev/input/event*)")
    return find_hid_device(profile.hid.usb_id, open_device=open_device)


class HidScanner:
    """A wedge scanner read exclusively (grabbed) through evdev; `codes()` yields what it scans.

    Events are read by a small task of ours around evdev's `async_read_loop()` and handed over through a
    queue, so `close()` ends a running `codes()` at once (evdev alone would leave it waiting forever)."""

    def __init__(
        self, profile: ScannerProfile, device_path: str | None = None, open_device: Opener = evdev.InputDevice
    ) -> None:
        self.profile = profile
        self.device = open_hid_device(profile, device_path, open_device)
        self.path = str(getattr(self.device, "path", device_path or "?"))
        hid = profile.hid
        assert hid is not None  # open_hid_device checked it
        self.decoder = HidDecoder(hid.keymap, hid.char_timeout_ms / 1000, hid.max_length)
        self._grabbed = False
        self._closed = False
        self._queue: asyncio.Queue[str | DeviceError | None] | None = None
        self._pump: asyncio.Task[None] | None = None

    async def codes(self) -> AsyncIterator[str]:
        """Grab the device and yield each scanned code until `close()`. DeviceError when the device goes away."""
        if self._closed:
            return
        try:
            self.device.grab()
        except OSError as exc:
            why = "another program has grabbed it" if exc.errno == errno.EBUSY else exc.strerror
            raise DeviceError(f"{self.path}: cannot grab the scanner ({why})") from None
        self._grabbed = True
        self.decoder.reset()
        self._queue = queue = asyncio.Queue()
        self._pump = asyncio.create_task(self._read_events(queue), name=f"hid-scanner {self.path}")
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, DeviceError):
                    raise item
                yield item
        finally:
            self._pump.cancel()
            self._ungrab()

    async def _read_events(self, queue: asyncio.Queue[str | DeviceError | None]) -> None:
        try:
            async for event in self.device.async_read_loop():
                code = self.decoder.feed(event)
                if code is not None:
                    queue.put_nowait(code)
        except OSError as exc:  # ENODEV: unplugged
            queue.put_nowait(DeviceError(f"{self.path}: scanner lost ({exc.strerror or exc})"))
            return
        queue.put_nowait(None)

    def _ungrab(self) -> None:
        if self._grabbed:
            self._grabbed = False
            try:
                self.device.ungrab()
            except OSError:
                pass  # already gone

    def close(self) -> None:
        """Stop reading, release and close the device; a running `codes()` ends. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._pump is not None:
            self._pump.cancel()
        if self._queue is not None:
            self._queue.put_nowait(None)
        self._ungrab()
        self.device.close()  # evdev also removes its reader from the loop here
