"""systemd units: hardened, restarted, and starting a command that exists."""

import configparser
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = sorted((Path(__file__).resolve().parents[1] / "systemd").glob("*.service"))


def load(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(path)
    return unit


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_units_are_hardened_and_restart(path):
    service = load(path)["Service"]
    assert service["Restart"] in ("always", "on-failure")
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                       "ProtectHome": "yes"}.items():
        assert service.get(key) == value, key
    assert service.get("User") and service.get("User") != "root"


@pytest.mark.slow  # runs the real tessera command
@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_unit_commands_exist(path):
    argv = shlex.split(load(path)["Service"]["ExecStart"])
    assert argv[0].endswith("/tessera")
    proc = subprocess.run([sys.executable, "-m", "cli.main", *argv[1:3], "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert proc.returncode == 0, proc.stderr
    for flag in [a for a in argv[3:] if a.startswith("--")]:
        assert flag in proc.stdout, flag


def test_there_is_a_hub_unit():
    assert "tessera-hub.service" in [p.name for p in UNITS]


def unit_lines(path: Path) -> list[tuple[str, str]]:
    """(key, value) for every assignment, keeping repeated keys (DeviceAllow=) that configparser drops."""
    pairs = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    return pairs


def test_notify_units_have_a_watchdog():
    notify_units = [p for p in UNITS if load(p)["Service"].get("Type") == "notify"]
    assert notify_units  # at least the gate
    for path in notify_units:
        service = load(path)["Service"]
        assert service.get("WatchdogSec"), f"{path.name}: Type=notify without WatchdogSec="
        assert service.get("NotifyAccess") in ("main", "exec", "all"), path.name


def test_gate_unit_restarts_always_and_reaches_only_its_devices():
    path = next((p for p in UNITS if p.name == "tessera-gate.service"), None)
    assert path is not None, "no tessera-gate.service"
    unit = load(path)
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "always"
    assert unit["Unit"].get("StartLimitIntervalSec") == "0"  # never gives up restarting
    assert service.get("PrivateDevices", "no") == "no"
    assert service.get("DevicePolicy") == "closed"
    allowed = {value for key, value in unit_lines(path) if key == "DeviceAllow"}
    assert allowed == {"char-input rw", "char-ttyUSB rw", "char-ttyACM rw"}
    assert set(service["SupplementaryGroups"].split()) == {"input", "dialout"}
    assert {"AF_INET", "AF_NETLINK", "AF_UNIX"} <= set(service["RestrictAddressFamilies"].split())


def seconds(value: str) -> float:
    """A systemd time span such as `20s`, `1min 30s` or `500ms` in seconds (the forms we use)."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for part in value.split():
        number = part.rstrip("abcdefghijklmnopqrstuvwxyz")
        total += float(number) * units[part[len(number):] or "s"]
    return total


def test_hub_unit_notifies_and_is_watched():
    from cli.hub_commands import HEARTBEAT_MAX_AGE_S, HEARTBEAT_S

    path = next(p for p in UNITS if p.name == "tessera-hub.service")
    service = load(path)["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    watchdog = seconds(service["WatchdogSec"])
    assert watchdog == 20
    # a healthy hub never misses: its heartbeat limit lies well inside the watchdog timeout
    assert HEARTBEAT_S < HEARTBEAT_MAX_AGE_S < watchdog / 2
    assert service["Restart"] in ("always", "on-failure")  # on-failure covers a watchdog kill
    assert service.get("PrivateDevices") == "yes"  # the hub drives no devices
    assert {"AF_INET", "AF_UNIX", "AF_NETLINK"} <= set(service["RestrictAddressFamilies"].split())


def test_edge_unit_restarts_always_and_reaches_only_desk_devices():
    path = next((p for p in UNITS if p.name == "tessera-edge.service"), None)
    assert path is not None, "no tessera-edge.service"
    unit = load(path)
    service = unit["Service"]
    assert shlex.split(service["ExecStart"])[1:3] == ["edge", "serve"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert seconds(service["WatchdogSec"]) > 0
    assert service["Restart"] == "always"
    assert unit["Unit"].get("StartLimitIntervalSec") == "0"
    assert "network-online.target" not in unit["Unit"].get("After", "")  # sells offline, starts offline
    assert service.get("PrivateDevices", "no") == "no"
    assert service.get("DevicePolicy") == "closed"
    allowed = {value for key, value in unit_lines(path) if key == "DeviceAllow"}
    assert allowed == {"char-usb_device rw", "char-ttyUSB rw", "char-ttyACM rw", "char-input rw"}
    assert set(service["SupplementaryGroups"].split()) == {"lp", "dialout", "input"}
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert service.get("CapabilityBoundingSet") == ""
    assert service.get("ReadWritePaths") == "/var/lib/tessera"
