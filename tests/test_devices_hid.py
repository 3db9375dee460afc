"""HID (keyboard-wedge) scanners: the pure decoder driven by real `evdev.InputEvent` objects, keymaps in
both directions, and the adapter's device lookup.

This machine has no /dev/input and no /dev/uinput, so no event device can be created: the lookup is
tested for real where the OS can answer (no devices at all, a missing path, a file that is not an input
device) and with small stand-in device objects for matching by USB id and for the read loop."""

from __future__ import annotations

import asyncio
import string
from collections import namedtuple

import pytest
from evdev import InputEvent, ecodes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.errors import DeviceError, DeviceNotFound
from devices.profiles import load_scanner
from devices.scanners.base import open_scanner
from devices.scanners.hid import GARBLED, HidDecoder, HidScanner, find_hid_device, keystrokes, open_hid_device
from devices.scanners.keymaps import KEYMAPS
from tests.helpers import async_wait_until

E = ecodes


class Typist:
    """Builds raw key events with explicit timestamps, 2 ms apart unless told otherwise."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t
        self.events: list[InputEvent] = []

    def key(self, code: int, value: int, after: float = 0.002) -> Typist:
        self.t += after
        sec, usec = divmod(round(self.t * 1_000_000), 1_000_000)
        self.events.append(InputEvent(sec, usec, E.EV_KEY, code, value))
        return self

    def tap(self, code: int, after: float = 0.002) -> Typist:
        return self.key(code, 1, after).key(code, 0)

    def syn(self) -> Typist:
        sec, usec = divmod(round(self.t * 1_000_000), 1_000_000)
        self.events.append(InputEvent(sec, usec, E.EV_SYN, E.SYN_REPORT, 0))
        return self


def run(decoder: HidDecoder, events: list[InputEvent]) -> list[str]:
    return [line for line in (decoder.feed(ev) for ev in events) if line is not None]


def decode(events: list[InputEvent], keymap: str = "us", timeout: float = 0.05) -> list[str]:
    return run(HidDecoder(keymap, timeout), events)


# --- the decoder ---------------------------------------------------------------------------------------


def test_letters_digits_and_enter():
    t = Typist()
    for code in (E.KEY_A, E.KEY_B, E.KEY_C, E.KEY_1, E.KEY_2, E.KEY_0):
        t.tap(code).syn()
    t.tap(E.KEY_ENTER)
    assert decode(t.events) == ["abc120"]


def test_keypad_enter_ends_a_code_and_keypad_digits_type():
    t = Typist().tap(E.KEY_KP4).tap(E.KEY_KP2).tap(E.KEY_KPDOT).tap(E.KEY_KP5).tap(E.KEY_KPENTER)
    assert decode(t.events, "us") == ["42.5"]
    assert decode(t.events, "de") == ["42,5"]  # the German keypad decimal key is a comma


def test_left_and_right_shift_and_shift_release():
    t = Typist()
    t.key(E.KEY_LEFTSHIFT, 1).tap(E.KEY_A).tap(E.KEY_1).key(E.KEY_LEFTSHIFT, 0)
    t.tap(E.KEY_A)
    t.key(E.KEY_RIGHTSHIFT, 1).tap(E.KEY_B).key(E.KEY_RIGHTSHIFT, 0)
    t.tap(E.KEY_B).tap(E.KEY_ENTER)
    assert decode(t.events) == ["A!aBb"]


def test_one_shift_released_while_the_other_is_held_keeps_shift():
    t = Typist().key(E.KEY_LEFTSHIFT, 1).key(E.KEY_RIGHTSHIFT, 1).key(E.KEY_LEFTSHIFT, 0)
    t.tap(E.KEY_Q).key(E.KEY_RIGHTSHIFT, 0).tap(E.KEY_Q).tap(E.KEY_ENTER)
    assert decode(t.events) == ["Qq"]


def test_repeats_and_releases_do_not_type():
    t = Typist().key(E.KEY_X, 1)
    for _ in range(5):
        t.key(E.KEY_X, 2)  # auto-repeat of a held key
    t.key(E.KEY_X, 0).key(E.KEY_Y, 0).key(E.KEY_ENTER, 2).key(E.KEY_Z, 1).key(E.KEY_Z, 0)
    t.key(E.KEY_ENTER, 0)  # an Enter *release* does not end the code
    t.tap(E.KEY_ENTER)
    assert decode(t.events) == ["xz"]


def test_shift_repeat_does_not_toggle_shift():
    t = Typist().key(E.KEY_LEFTSHIFT, 1).key(E.KEY_LEFTSHIFT, 2).key(E.KEY_LEFTSHIFT, 2).tap(E.KEY_M)
    t.key(E.KEY_LEFTSHIFT, 0).tap(E.KEY_M).tap(E.KEY_ENTER)
    assert decode(t.events) == ["Mm"]


def test_non_key_events_are_ignored():
    t = Typist().tap(E.KEY_A)
    t.events.append(InputEvent(100, 500, E.EV_MSC, E.MSC_SCAN, 0x70004))
    t.events.append(InputEvent(100, 500, E.EV_LED, E.LED_NUML, 1))
    t.events.append(InputEvent(100, 500, E.EV_REL, E.REL_X, 1))
    t.tap(E.KEY_ENTER)
    assert decode(t.events) == ["a"]


def test_empty_enter_gives_nothing():
    assert decode(Typist().tap(E.KEY_ENTER).tap(E.KEY_KPENTER).events) == []


def test_gap_longer_than_timeout_discards_partial_code():
    t = Typist().tap(E.KEY_1).tap(E.KEY_2).tap(E.KEY_3)
    t.tap(E.KEY_4, after=0.2).tap(E.KEY_5).tap(E.KEY_ENTER)
    assert decode(t.events) == ["45"]


def test_gap_before_enter_discards_everything():
    t = Typist().tap(E.KEY_1).tap(E.KEY_2).tap(E.KEY_ENTER, after=0.06)
    assert decode(t.events, timeout=0.05) == []


def test_gap_just_under_timeout_is_fine():
    # key-down to key-down: 2 ms held + 47 ms pause = 49 ms
    t = Typist().tap(E.KEY_1).tap(E.KEY_2, after=0.047).tap(E.KEY_ENTER, after=0.047)
    assert decode(t.events, timeout=0.05) == ["12"]


def test_release_timestamps_do_not_count_as_typing():
    # key-downs 100 ms apart are too slow even if releases in between fill the gap
    t = Typist().key(E.KEY_1, 1).key(E.KEY_1, 0, after=0.05).key(E.KEY_2, 1, after=0.05).key(E.KEY_2, 0)
    t.tap(E.KEY_ENTER)
    assert decode(t.events, timeout=0.06) == ["2"]


def test_clock_jumping_backwards_far_is_also_a_gap():
    t = Typist(t=500.0).tap(E.KEY_1)
    t.t = 100.0
    t.tap(E.KEY_2).tap(E.KEY_ENTER)
    assert decode(t.events) == ["2"]


def test_unknown_keys_mark_the_code_garbled():
    t = Typist().tap(E.KEY_A).tap(E.KEY_F1).tap(E.KEY_B).tap(E.KEY_ESC).tap(E.KEY_ENTER)
    assert decode(t.events) == [f"a{GARBLED}b{GARBLED}"]


def test_ctrl_held_marks_garbled_instead_of_typing_the_letter():
    t = Typist().key(E.KEY_LEFTCTRL, 1).tap(E.KEY_M).key(E.KEY_LEFTCTRL, 0).tap(E.KEY_M).tap(E.KEY_ENTER)
    assert decode(t.events) == [f"{GARBLED}m"]


def test_overlong_code_is_cut_and_marked():
    decoder = HidDecoder("us", 0.05, max_length=8)
    assert run(decoder, keystrokes("1234567890", "us")) == ["12345678" + GARBLED]
    assert run(decoder, keystrokes("123", "us")) == ["123"]  # the next code is unaffected


def test_consecutive_codes_and_syn_events():
    events = keystrokes("ABC", "us") + keystrokes("def", "us", start=1000.5, enter=E.KEY_KPENTER)
    assert decode(events) == ["ABC", "def"]


# --- keymaps and keystrokes() --------------------------------------------------------------------------

ASCII = string.digits + string.ascii_letters + string.punctuation + " "


@pytest.mark.parametrize("keymap", ["us", "de"])
def test_round_trip_all_printable_ascii(keymap):
    assert decode(keystrokes(ASCII, keymap), keymap) == [ASCII]


def test_round_trip_german_extras_and_dead_keys():
    text = "äöüÄÖÜß€§°µ² ^a `b ´ âêîôû áéí àèù ÂÉ"
    assert decode(keystrokes(text, "de"), "de") == [text]


def test_german_is_qwertz():
    assert decode(Typist().tap(E.KEY_Y).tap(E.KEY_Z).tap(E.KEY_ENTER).events, "de") == ["zy"]
    # and the scanner presses the keys accordingly
    codes = [ev.code for ev in keystrokes("zy", "de", enter=None, syn=False) if ev.value == 1]
    assert codes == [E.KEY_Y, E.KEY_Z]


def test_german_altgr_symbols_use_right_alt():
    events = keystrokes("@", "de", enter=None, syn=False)
    assert [(ev.code, ev.value) for ev in events] == [
        (E.KEY_RIGHTALT, 1),
        (E.KEY_Q, 1),
        (E.KEY_Q, 0),
        (E.KEY_RIGHTALT, 0),
    ]


def test_dead_key_then_space_and_dead_key_at_end_of_code():
    t = Typist().tap(E.KEY_GRAVE).tap(E.KEY_SPACE).tap(E.KEY_A).tap(E.KEY_GRAVE).tap(E.KEY_ENTER)
    assert decode(t.events, "de") == ["^a^"]
    t = Typist().tap(E.KEY_GRAVE).tap(E.KEY_GRAVE).tap(E.KEY_X).tap(E.KEY_ENTER)
    assert decode(t.events, "de") == ["^^x"]  # nothing composes with x: both stand for themselves


def test_characters_a_layout_cannot_type_are_refused():
    with pytest.raises(ValueError, match="cannot be typed"):
        keystrokes("ä", "us")
    with pytest.raises(ValueError, match="unknown keymap"):
        keystrokes("a", "fr")


def test_german_scanner_read_with_us_keymap_gives_different_characters():
    """The classic misconfiguration: scanner set to German, gate profile says US. Exactly what comes out."""
    misread = {
        "Z": "Y",
        "z": "y",
        "Y": "Z",
        "y": "z",
        '"': "@",
        "§": "#",
        "&": "^",
        "/": "&",
        "(": "*",
        ")": "(",
        "=": ")",
        "?": "_",
        "-": "/",
        "_": "?",
        ":": ">",
        ";": "<",
        "#": "\\",
        "+": "]",
        "*": "}",
        "ä": "'",
        "ö": ";",
        "Ü": "{",
        "@": GARBLED,  # AltGr is plain Alt on `us`: Alt+Q is not a character
    }
    for typed, seen in misread.items():
        assert decode(keystrokes(typed, "de"), "us") == [seen], typed
    assert decode(keystrokes("https://x.de/a-b", "de"), "us") == ["https>&&x.de&a/b"]


def test_design_alphabet_survives_any_layout_mixup():
    """DESIGN 5: digits and upper-case letters without I, O, Y, Z read the same whatever the layouts."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWX"
    for scanner in KEYMAPS:
        for gate in KEYMAPS:
            assert decode(keystrokes(alphabet, scanner), gate) == [alphabet]


def test_keystrokes_timestamps_advance_and_look_like_a_device():
    events = keystrokes("Ab", "us", start=12.5, interval=0.003)
    key_events = [ev for ev in events if ev.type == E.EV_KEY]
    assert [ev.timestamp() for ev in key_events] == pytest.approx([12.5 + 0.003 * i for i in range(len(key_events))])
    assert all(ev.type == E.EV_SYN for ev in events[1::2])
    assert (key_events[0].code, key_events[0].value) == (E.KEY_LEFTSHIFT, 1)


@pytest.mark.parametrize("keymap", ["us", "de"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_round_trip_property(keymap, data):
    typeable = sorted(KEYMAPS[keymap].reverse)
    text = data.draw(st.text(st.sampled_from(typeable), min_size=1, max_size=40))
    assert decode(keystrokes(text, keymap), keymap) == [text]


# --- random event streams never break the decoder ------------------------------------------------------

KEY_CODES = st.one_of(st.sampled_from(sorted({code for code, _ in KEYMAPS["de"].keys})), st.integers(-5, 0x300))
EVENTS = st.builds(
    InputEvent,
    st.integers(0, 2**40),
    st.integers(0, 999_999),
    st.one_of(st.just(E.EV_KEY), st.integers(-1, 0x20)),
    st.one_of(KEY_CODES, st.sampled_from([E.KEY_ENTER, E.KEY_KPENTER, E.KEY_LEFTSHIFT, E.KEY_RIGHTALT])),
    st.integers(-2, 3),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(EVENTS, max_size=80), keymap=st.sampled_from(["us", "de"]))
def test_random_event_streams_never_raise(events, keymap):
    decoder = HidDecoder(keymap, 0.05, max_length=32)
    for ev in events:
        line = decoder.feed(ev)
        assert line is None or (isinstance(line, str) and line and len(line) <= 33)


@settings(max_examples=100, deadline=None)
@given(
    sec=st.integers(0, 2**31),
    ticks=st.lists(st.integers(0, 200).filter(lambda ms: not 45 <= ms <= 51), min_size=1, max_size=30),
)
def test_random_timing_keeps_only_the_last_fast_run(sec, ticks):
    """Digits typed with random pauses: the code is exactly the digits after the last key-down that came
    more than 50 ms after the previous key-down (pause + the 2 ms the key was held)."""
    t = Typist(t=float(sec))
    typed = ""
    for i, gap in enumerate(ticks):
        digit = str(i % 10)
        t.tap(getattr(E, f"KEY_{digit}"), after=gap / 1000)
        typed = digit if gap + 2 > 50 and i else typed + digit
    t.tap(E.KEY_ENTER, after=0.001)
    assert decode(t.events) == [typed]


# --- the adapter: device lookup ------------------------------------------------------------------------

Info = namedtuple("Info", "bustype vendor product version")


class FakeInputDevice:
    """Stand-in for evdev.InputDevice (no input devices exist here): info, capabilities, grab, read loop."""

    def __init__(self, path, vendor, product, keys=(E.KEY_ENTER, E.KEY_A), events=()):
        self.path = path
        self.info = Info(3, vendor, product, 1)
        self._keys = list(keys)
        self.events = list(events)
        self.closed = self.grabbed = False
        self.grabs = 0

    def capabilities(self):
        return {E.EV_SYN: [0], E.EV_KEY: self._keys}

    def grab(self):
        self.grabbed = True
        self.grabs += 1

    def ungrab(self):
        self.grabbed = False

    def close(self):
        self.closed = True

    async def async_read_loop(self):
        for ev in self.events:
            yield ev


def test_no_input_devices_on_this_machine_gives_a_clear_error():
    with pytest.raises(DeviceNotFound, match=r"no input device with USB id 0c2e:0b61 .*looked at 0"):
        find_hid_device("0c2e:0b61")
    with pytest.raises(DeviceNotFound, match="0c2e:0b61"):
        open_scanner("honeywell-1250g-us")


def test_opening_a_path_that_is_missing_or_not_an_input_device(tmp_path):
    profile = load_scanner("honeywell-1250g-us")
    with pytest.raises(DeviceNotFound, match="no such input device"):
        open_hid_device(profile, str(tmp_path / "event7"))
    with pytest.raises(DeviceError, match="not an evdev input device"):
        open_hid_device(profile, "/dev/null")  # the real evdev ioctl fails on it


def test_profile_without_usb_id_needs_a_path():
    with pytest.raises(DeviceError, match="no hid.usb_id"):
        open_hid_device(load_scanner("datalogic-quickscan-de"))


def test_lookup_matches_usb_id_and_enter_key_and_closes_the_rest():
    devices = {
        "/dev/input/event0": FakeInputDevice("/dev/input/event0", 0x046D, 0xC52B),  # a mouse receiver
        "/dev/input/event3": FakeInputDevice("/dev/input/event3", 0x0C2E, 0x0B61, keys=[E.KEY_VOLUMEUP]),
        "/dev/input/event4": FakeInputDevice("/dev/input/event4", 0x0C2E, 0x0B61),
        "/dev/input/event5": FakeInputDevice("/dev/input/event5", 0x0C2E, 0x0B61),
    }

    def opener(path):
        if path == "/dev/input/event9":
            raise PermissionError(13, "Permission denied")
        return devices[path]

    found = find_hid_device("0C2E:0B61", [*devices, "/dev/input/event9"], opener)
    assert found is devices["/dev/input/event4"]  # the first that can type Enter, in path order
    assert all(dev.closed for path, dev in devices.items() if path != "/dev/input/event4")
    assert not found.closed
    with pytest.raises(DeviceNotFound, match=r"looked at 2 input device\(s\); 1 could not be opened"):
        find_hid_device("05e0:1200", ["/dev/input/event0", "/dev/input/event9"], opener)


async def test_scanner_grabs_reads_decodes_and_releases():
    events = keystrokes("ZY12", "de") + keystrokes("AB", "de", start=1001.0)
    device = FakeInputDevice("/dev/input/event4", 0x05F9, 0x2206, events=events)
    scanner = HidScanner(load_scanner("datalogic-quickscan-de"), "/dev/input/event4", lambda path: device)
    seen = []
    async for code in scanner.codes():
        assert device.grabbed
        seen.append(code)
    assert seen == ["ZY12", "AB"]
    assert not device.grabbed
    scanner.close()
    scanner.close()
    assert device.closed


async def test_scanner_reports_a_busy_device():
    class Busy(FakeInputDevice):
        def grab(self):
            raise OSError(16, "Device or resource busy")

    scanner = HidScanner(load_scanner("honeywell-1250g-us"), "/x", lambda path: Busy(path, 1, 2))
    with pytest.raises(DeviceError, match="another program has grabbed it"):
        async for _ in scanner.codes():
            pass


async def test_close_ends_a_running_read_and_unplugging_is_reported():
    class Idle(FakeInputDevice):
        async def async_read_loop(self):
            await asyncio.Event().wait()  # a scanner nobody uses
            yield  # pragma: no cover

    device = Idle("/dev/input/event4", 0x0C2E, 0x0B61)
    scanner = HidScanner(load_scanner("honeywell-1250g-us"), "/dev/input/event4", lambda path: device)
    task = asyncio.create_task(anext(scanner.codes(), "ended"))
    await async_wait_until(lambda: device.grabbed, what="the scanner grabbing the device")
    scanner.close()
    assert await asyncio.wait_for(task, 1) == "ended"
    assert device.closed and not device.grabbed

    class Unplugged(FakeInputDevice):
        async def async_read_loop(self):
            for ev in keystrokes("OK", "us"):
                yield ev
            raise OSError(19, "No such device")

    device = Unplugged("/dev/input/event4", 0x0C2E, 0x0B61)
    scanner = HidScanner(load_scanner("honeywell-1250g-us"), "/dev/input/event4", lambda path: device)
    seen = []
    with pytest.raises(DeviceError, match="event4: scanner lost \\(No such device\\)"):
        async for code in scanner.codes():
            seen.append(code)
    assert seen == ["OK"] and not device.grabbed
    scanner.close()
