"""Keyboard layouts for keyboard-wedge (HID) scanners: evdev key code + modifier level -> character.

Why we need our own: a wedge scanner does not send characters, it sends the key *positions* a person
would press on a keyboard of the layout the scanner was configured for. The kernel reports positions
(evdev codes named after the US layout), so the gate must apply the same layout the scanner assumed:
a scanner set to German QWERTZ types 'z' by pressing the key evdev calls KEY_Y. We do not ask X/xkb
(there is no X on the gate); the tables below are the xkb `us` and `de` (basic) layouts for every
character a ticket code or URL can contain, and the inverse (`sequence`) is what a scanner configured
for that layout sends.

Levels: 0 plain, 1 Shift, 2 AltGr (KEY_RIGHTALT; only the German layout has one). Dead keys (German
`^`, `´`, `` ` ``) produce nothing by themselves: the next key either is Space (-> the accent itself)
or a letter it combines with (`^` + `a` -> `â`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from evdev import ecodes as e

__all__ = ["COMBINING", "KEYMAPS", "Keymap", "get_keymap"]

# key rows by position, named as evdev (i.e. US) names them
_ROW1 = [e.KEY_GRAVE, e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_4, e.KEY_5, e.KEY_6, e.KEY_7, e.KEY_8, e.KEY_9, e.KEY_0,
         e.KEY_MINUS, e.KEY_EQUAL]  # fmt: skip
_ROW2 = [e.KEY_Q, e.KEY_W, e.KEY_E, e.KEY_R, e.KEY_T, e.KEY_Y, e.KEY_U, e.KEY_I, e.KEY_O, e.KEY_P,
         e.KEY_LEFTBRACE, e.KEY_RIGHTBRACE, e.KEY_BACKSLASH]  # fmt: skip
_ROW3 = [e.KEY_A, e.KEY_S, e.KEY_D, e.KEY_F, e.KEY_G, e.KEY_H, e.KEY_J, e.KEY_K, e.KEY_L, e.KEY_SEMICOLON,
         e.KEY_APOSTROPHE]  # fmt: skip
_ROW4 = [e.KEY_Z, e.KEY_X, e.KEY_C, e.KEY_V, e.KEY_B, e.KEY_N, e.KEY_M, e.KEY_COMMA, e.KEY_DOT, e.KEY_SLASH]

# The keypad types the same on both layouts (NumLock on, as scanners in "keypad" mode assume), except
# the decimal key, which is ',' on German keyboards. Shift is ignored there.
_KEYPAD = {e.KEY_KP0: "0", e.KEY_KP1: "1", e.KEY_KP2: "2", e.KEY_KP3: "3", e.KEY_KP4: "4", e.KEY_KP5: "5",
           e.KEY_KP6: "6", e.KEY_KP7: "7", e.KEY_KP8: "8", e.KEY_KP9: "9", e.KEY_KPMINUS: "-",
           e.KEY_KPPLUS: "+", e.KEY_KPASTERISK: "*", e.KEY_KPSLASH: "/"}  # fmt: skip

KEYPAD_KEYS = frozenset({*_KEYPAD, e.KEY_KPDOT})

# dead key character -> combining mark it applies to the next letter
COMBINING = {"^": "\u0302", "´": "\u0301", "`": "\u0300"}

SHIFT_KEYS = frozenset({e.KEY_LEFTSHIFT, e.KEY_RIGHTSHIFT})
ALTGR_KEY = e.KEY_RIGHTALT
# Held while a character key goes down, these make the result something other than the character
# (Ctrl+M is not "m"); the decoder marks the code garbled instead of guessing.
OTHER_MODIFIERS = frozenset({e.KEY_LEFTCTRL, e.KEY_RIGHTCTRL, e.KEY_LEFTALT, e.KEY_LEFTMETA, e.KEY_RIGHTMETA})
ENTER_KEYS = frozenset({e.KEY_ENTER, e.KEY_KPENTER})


@dataclass(frozen=True)
class Keymap:
    """One layout: (code, level) -> character, which of those are dead keys, and the inverse."""

    name: str
    keys: Mapping[tuple[int, int], str]
    dead: frozenset[tuple[int, int]]
    has_altgr: bool
    # character -> (code, level, is_dead) chosen to type it; filled in __post_init__
    reverse: dict[str, tuple[int, int, bool]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # first definition wins, lower levels first: a US scanner types '<' as Shift+comma, not the ISO key
        # and never the keypad (scanners in keypad mode are configured as such and rare)
        for level in (0, 1, 2):
            for (code, lvl), char in self.keys.items():
                if lvl == level and char not in self.reverse and code not in KEYPAD_KEYS:
                    self.reverse[char] = (code, lvl, (code, lvl) in self.dead)

    def char(self, code: int, level: int) -> str | None:
        """The character at a key position and level, or None if the layout has none there."""
        if code in KEYPAD_KEYS:
            return self.keys.get((code, 0))
        return self.keys.get((code, level))

    def sequence(self, char: str) -> list[tuple[int, int]]:
        """Key presses (code, level) that type `char` on this layout; ValueError if it cannot be typed.

        Accented letters without a key of their own go through a dead key (`â` = `^` then `a`); a dead
        key's own character is the dead key followed by Space."""
        hit = self.reverse.get(char)
        if hit is not None:
            code, level, is_dead = hit
            return [(code, level), (e.KEY_SPACE, 0)] if is_dead else [(code, level)]
        decomposed = unicodedata.normalize("NFD", char)
        if len(decomposed) == 2:
            base, mark = decomposed
            for accent, combining in COMBINING.items():
                dead = self.reverse.get(accent)
                if combining == mark and dead is not None and dead[2] and base in self.reverse:
                    return [(dead[0], dead[1]), *self.sequence(base)]
        raise ValueError(f"{char!r} cannot be typed on the {self.name!r} keymap")


def _rows(*rows: tuple[list[int], str, str]) -> dict[tuple[int, int], str]:
    keys: dict[tuple[int, int], str] = {}
    for codes, plain, shifted in rows:
        assert len(codes) == len(plain) == len(shifted), (plain, shifted)
        for code, lo, hi in zip(codes, plain, shifted, strict=True):
            keys[(code, 0)] = lo
            keys[(code, 1)] = hi
    return keys


def _common(keys: dict[tuple[int, int], str], kp_dot: str) -> dict[tuple[int, int], str]:
    keys[(e.KEY_SPACE, 0)] = keys[(e.KEY_SPACE, 1)] = " "
    keys[(e.KEY_TAB, 0)] = keys[(e.KEY_TAB, 1)] = "\t"
    for code, char in _KEYPAD.items():
        keys[(code, 0)] = char
    keys[(e.KEY_KPDOT, 0)] = kp_dot
    return keys


_US = _common(
    _rows(
        (_ROW1, "`1234567890-=", "~!@#$%^&*()_+"),
        (_ROW2, "qwertyuiop[]\\", "QWERTYUIOP{}|"),
        (_ROW3, "asdfghjkl;'", 'ASDFGHJKL:"'),
        (_ROW4, "zxcvbnm,./", "ZXCVBNM<>?"),
        ([e.KEY_102ND], "<", ">"),  # the ISO key left of Z, as xkb's pc105 `us` defines it
    ),
    kp_dot=".",
)

# German QWERTZ (xkb `de`, basic). Positions are evdev's: KEY_Y is the German 'z' key, KEY_SEMICOLON 'ö'.
_DE = _common(
    _rows(
        (_ROW1, "^1234567890ß´", '°!"§$%&/()=?`'),
        (_ROW2, "qwertzuiopü+#", "QWERTZUIOPÜ*'"),
        (_ROW3, "asdfghjklöä", "ASDFGHJKLÖÄ"),
        ([e.KEY_102ND, *_ROW4], "<yxcvbnm,.-", ">YXCVBNM;:_"),
    ),
    kp_dot=",",
)
_DE.update(
    {
        (e.KEY_Q, 2): "@",
        (e.KEY_E, 2): "€",
        (e.KEY_2, 2): "²",
        (e.KEY_3, 2): "³",
        (e.KEY_7, 2): "{",
        (e.KEY_8, 2): "[",
        (e.KEY_9, 2): "]",
        (e.KEY_0, 2): "}",
        (e.KEY_MINUS, 2): "\\",
        (e.KEY_RIGHTBRACE, 2): "~",
        (e.KEY_102ND, 2): "|",
        (e.KEY_M, 2): "µ",
    }
)

KEYMAPS: dict[str, Keymap] = {
    "us": Keymap("us", _US, frozenset(), has_altgr=False),
    "de": Keymap("de", _DE, frozenset({(e.KEY_GRAVE, 0), (e.KEY_EQUAL, 0), (e.KEY_EQUAL, 1)}), has_altgr=True),
}


def get_keymap(name: str) -> Keymap:
    """The keymap called `name` ("us", "de"); ValueError names the known ones."""
    try:
        return KEYMAPS[name]
    except KeyError:
        raise ValueError(f"unknown keymap {name!r} (known: {', '.join(sorted(KEYMAPS))})") from None
