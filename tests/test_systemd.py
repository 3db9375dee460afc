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
