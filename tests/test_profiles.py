"""Device profiles: every shipped file loads, and every kind of mistake in a hand-written file comes back
as one ProfileError line naming the file and the field."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from devices.profiles import (
    ProfileError,
    RelayProfile,
    ScannerProfile,
    list_profiles,
    load_relay,
    load_scanner,
    profiles_dir,
)

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "firmware_profiles").glob("*.toml"))

LCUS = """\
kind = "relay"
model = "LCUS-1"
driver = "lcus"
[serial]
baudrate = 9600
[relay]
pulse_ms = 500
[lcus]
channel = 1
on = "A0 01 01 A2"
off = "A0 01 00 A1"
"""

HID = """\
kind = "scanner"
model = "Voyager 1250g"
interface = "hid"
[hid]
keymap = "us"
usb_id = "0c2e:0b61"
"""

SERIAL = """\
kind = "scanner"
model = "DS2208"
interface = "serial"
[serial]
baudrate = 9600
terminator = "CR"
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An empty profile folder selected through TESSERA_PROFILES."""
    path = tmp_path / "profiles"
    path.mkdir()
    monkeypatch.setenv("TESSERA_PROFILES", str(path))
    return path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error(loader, name_or_path) -> str:
    with pytest.raises(ProfileError) as info:
        loader(name_or_path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- shipped profiles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_profile_loads(path):
    kind = tomllib.loads(path.read_text())["kind"]
    if kind == "printer":  # receipt printers have their own loader (devices/printers/receipt.py)
        from devices.printers.receipt import load_printer
        assert load_printer(path).model
        return
    profile = load_scanner(path) if kind == "scanner" else load_relay(path)
    assert profile.name == path.stem and profile.model and profile.path == str(path)


def test_default_folder_and_listing(monkeypatch):
    monkeypatch.delenv("TESSERA_PROFILES", raising=False)
    assert profiles_dir() == SHIPPED[0].parent
    listing = list_profiles()
    assert set(listing) == {p.stem for p in SHIPPED}
    assert not [name for name, kind in listing.items() if kind.startswith("invalid")]
    scanners = {n for n, k in listing.items() if k == "scanner"}
    relays = {n for n, k in listing.items() if k == "relay"}
    assert {"sim-stdin"} <= scanners and len(scanners - {"sim-stdin"}) >= 3
    assert {"sim-log"} <= relays and len(relays - {"sim-log"}) >= 2


def test_shipped_models_cover_the_interfaces():
    by_name = {p.stem: p for p in SHIPPED}
    assert load_scanner("honeywell-1250g-us").hid.keymap == "us"
    assert load_scanner("datalogic-quickscan-de").hid.keymap == "de"
    assert load_scanner("zebra-ds2208-cdc").serial.terminator == "CR"
    assert load_scanner("sim-stdin").interface == "stdin"
    lcus = load_relay("lcus-1")
    assert (lcus.serial.baudrate, lcus.serial.bytesize, lcus.serial.parity, lcus.serial.stopbits) == (9600, 8, "N", 1)
    assert (lcus.lcus.on, lcus.lcus.off) == ("A0 01 01 A2", "A0 01 00 A1")
    assert load_relay("ft232-dtr-relay").dtr_rts.line == "dtr"
    assert load_relay("sim-log").driver == "log"
    assert "lcus-1" in by_name


# --- loading by name and path --------------------------------------------------------------------------


def test_env_folder_name_and_path(folder):
    path = write(folder, "gate-relay", LCUS)
    write(folder, "gate-scanner", HID)
    write(folder, "broken", LCUS.replace("pulse_ms = 500", "pulse_ms = 'x'"))
    write(folder, "printer", 'kind = "printer"\nmodel = "TM-T20III"\n')
    assert isinstance(load_relay("gate-relay"), RelayProfile)
    assert isinstance(load_scanner("gate-scanner"), ScannerProfile)
    assert load_relay(path).name == "gate-relay"
    assert load_relay(str(path)).relay.pulse_ms == 500
    listing = list_profiles()
    assert listing["gate-relay"] == "relay" and listing["gate-scanner"] == "scanner"
    assert listing["printer"] == "printer"  # not ours to validate
    assert listing["broken"].startswith("invalid: ") and "relay.pulse_ms" in listing["broken"]


def test_defaults_apply(folder):
    write(folder, "minimal", 'kind = "relay"\nmodel = "LCUS-1"\ndriver = "lcus"\n')
    profile = load_relay("minimal")
    assert profile.relay.pulse_ms == 500 and profile.serial is None and profile.lcus is None


# --- one clear error per mistake -----------------------------------------------------------------------


def test_error_names_file_and_field_like_an_operator_reads_it(tmp_path, monkeypatch):
    (tmp_path / "firmware_profiles").mkdir()
    write(tmp_path / "firmware_profiles", "lcus-1", LCUS.replace("pulse_ms = 500", 'pulse_ms = "500"'))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TESSERA_PROFILES", "firmware_profiles")
    assert error(load_relay, "lcus-1") == "firmware_profiles/lcus-1.toml: relay.pulse_ms: Expected int, got str"


@pytest.mark.parametrize(
    ("text", "field", "detail"),
    [
        (LCUS + "colour = 'blue'\n", "lcus.colour", "unknown field"),  # lands in the [lcus] table
        ('flavour = "x"\n' + LCUS, "flavour", "unknown field"),
        (LCUS.replace("[relay]", "[relay]\npulse_msec = 3"), "relay.pulse_msec", "unknown field"),
        (LCUS.replace("pulse_ms = 500", "pulse_ms = 0"), "relay.pulse_ms", "Expected int >= 1"),
        (LCUS.replace("pulse_ms = 500", "pulse_ms = 5.5"), "relay.pulse_ms", "Expected int, got float"),
        (LCUS.replace("baudrate = 9600", "baudrate = true"), "serial.baudrate", "Expected int, got bool"),
        (LCUS.replace("channel = 1", "channel = '1'"), "lcus.channel", "Expected int, got str"),
        (LCUS.replace('on = "A0 01 01 A2"', 'on = "A0 01 01 G2"'), "lcus.on", "not hex bytes"),
        (LCUS.replace('off = "A0 01 00 A1"', 'off = "A0 1 00 A1"'), "lcus.off", "not hex bytes"),
        (LCUS.replace('off = "A0 01 00 A1"', 'off = ""'), "lcus.off", "not hex bytes"),
        (LCUS.replace("[serial]", "[serial]\nstopbits = 3"), "serial.stopbits", "must be 1, 1.5 or 2"),
        (LCUS.replace("[serial]", "[serial]\nparity = 'X'"), "serial.parity", "Invalid enum value 'X'"),
        (LCUS.replace('driver = "lcus"', 'driver = "gpio"'), "driver", "Invalid enum value 'gpio'"),
        (LCUS.replace('model = "LCUS-1"\n', ""), "model", "missing required field"),
        (LCUS + "[dtr_rts]\nline = 'dtr'\n", "dtr_rts", 'only allowed with driver = "dtr_rts"'),
        (LCUS.replace('driver = "lcus"', 'driver = "log"').replace("[lcus]\nchannel = 1\n", "")
         .replace('on = "A0 01 01 A2"\noff = "A0 01 00 A1"\n', ""), "serial", 'not used with driver = "log"'),
        ("relay = 5\n" + LCUS.replace("[relay]\npulse_ms = 500\n", ""), "relay", "Expected object, got int"),
        (LCUS + 'name = "x"\n', "lcus.name", "unknown field"),
        ('name = "x"\n' + LCUS, "name", "unknown field"),
        (LCUS.replace('kind = "relay"', 'kind = "scanner"'), "kind", "is 'scanner', expected 'relay'"),
        (LCUS.replace('kind = "relay"\n', ""), "kind", "missing, expected 'relay'"),
    ],
)
def test_relay_mistakes(folder, text, field, detail):
    path = write(folder, "bad", text)
    message = error(load_relay, "bad")
    assert message.startswith(f"{path}: {field}: "), message
    assert detail in message


@pytest.mark.parametrize(
    ("text", "field", "detail"),
    [
        (HID.replace('keymap = "us"', 'keymap = "fr"'), "hid.keymap", "Invalid enum value 'fr'"),
        (HID.replace('keymap = "us"\n', ""), "hid.keymap", "missing required field"),
        (HID.replace('usb_id = "0c2e:0b61"', 'usb_id = "0c2e-0b61"'), "hid.usb_id", 'expected "vvvv:pppp"'),
        (HID.replace("[hid]", "[hid]\nchar_timeout_ms = -1"), "hid.char_timeout_ms", "Expected int >= 1"),
        (HID.replace('interface = "hid"', 'interface = "bluetooth"'), "interface", "Invalid enum value"),
        (HID.replace('interface = "hid"', 'interface = "serial"'), "hid", 'only allowed with interface = "hid"'),
        (HID.split("[hid]")[0], "hid", "missing table [hid]"),
        (HID.replace('interface = "hid"', 'interface = "serial"').split("[hid]")[0], "serial", "missing table"),
        (HID + "[serial]\nterminator = 'CR'\n", "serial", 'only allowed with interface = "serial"'),
        (SERIAL.replace('"CR"', '"NUL"'), "serial.terminator", "Invalid enum value 'NUL'"),
        (SERIAL.replace("baudrate = 9600", "baudrate = 10"), "serial.baudrate", "Expected int >= 50"),
        (HID.replace('model = "Voyager 1250g"', "model = 1250"), "model", "Expected str, got int"),
    ],
)
def test_scanner_mistakes(folder, text, field, detail):
    path = write(folder, "bad", text)
    message = error(load_scanner, path)
    assert message.startswith(f"{path}: {field}: "), message
    assert detail in message


def test_missing_file_unreadable_toml_and_bad_names(folder):
    assert error(load_relay, "nope") == f"{folder / 'nope.toml'}: no such profile file"
    assert error(load_scanner, folder / "sub" / "x.toml") == f"{folder / 'sub' / 'x.toml'}: no such profile file"
    write(folder, "syntax", 'kind = "relay"\nmodel = \n')
    assert error(load_relay, "syntax").startswith(f"{folder / 'syntax.toml'}: invalid TOML: ")
    (folder / "latin1.toml").write_bytes('model = "K\xfchl"\n'.encode("latin-1"))
    assert error(load_relay, "latin1") == f"{folder / 'latin1.toml'}: not UTF-8 text"
    assert "not a profile name" in error(load_relay, "..")
    (folder / "dir.toml").mkdir()
    assert error(load_relay, "dir").startswith(f"{folder / 'dir.toml'}: cannot read")
