"""Hub discovery (E7): the hub announces `_tessera-hub._tcp`, an edge finds it; real zeroconf
on loopback, and a real `tessera hub serve` talking to a notify socket like systemd's.

Other tests (running in parallel under xdist) may announce hubs on loopback too, so every
assertion picks out the node id or root fingerprint it made, never "the only hub".
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from cli.hub_commands import advertise_address
from core.base.ids import uuid7
from core.base.node import this_node
from core.base.storage import connect
from core.cards import keys
from core.cards.trust import root_public
from edge.sync.discovery import HubCandidate, discover_hubs
from hub.app import db_path
from hub.sync.advertise import SERVICE, HubAdvertiser, instance_name, root_fingerprint

pytestmark = pytest.mark.slow  # real zeroconf browsing (seconds each) and real tessera hub processes

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = ["127.0.0.1"]
TESSERA = [sys.executable, "-m", "cli.main"]


def fingerprint() -> str:
    return secrets.token_hex(4)  # a root nobody else announces


def advertiser(fp: str, port: int, name: str = "test hub") -> HubAdvertiser:
    return HubAdvertiser(port=port, node_id=uuid7(), name=name, root_fingerprint=fp, interfaces=LOOPBACK)


async def find(node_id: str, *, fp: str | None = None, within: float = 10.0) -> HubCandidate:
    """Browse repeatedly until the hub with *node_id* answers."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for hub in await discover_hubs(timeout_s=1.5, interfaces=LOOPBACK, root_fingerprint=fp):
            if hub.node_id == node_id:
                return hub
    raise AssertionError(f"hub {node_id} not found within {within} s")


async def test_an_advertised_hub_is_found_with_its_url_and_properties():
    fp = fingerprint()
    hub = advertiser(fp, 18123, name="Stadttheater Kasse")
    await hub.start()
    try:
        found = await find(hub.node_id, fp=fp)
    finally:
        await hub.close()
    assert found.url == "http://127.0.0.1:18123"
    assert (found.node_id, found.name, found.root_fingerprint, found.proto) == (
        hub.node_id, "Stadttheater Kasse", fp, "1")
    assert (found.api, found.sync) == ("/api/v1", "/sync/v1")
    assert found.service_name.endswith("." + SERVICE)


async def test_the_fingerprint_keeps_only_hubs_of_that_organizer():
    fp_a, fp_b = fingerprint(), fingerprint()
    a, b = advertiser(fp_a, 18124, "hub a"), advertiser(fp_b, 18125, "hub b")
    await asyncio.gather(a.start(), b.start())
    try:
        deadline = time.monotonic() + 10
        while True:  # three browsers at once: no filter, root a (given in upper case), root b
            everyone, only_a, only_b = await asyncio.gather(
                discover_hubs(timeout_s=1.5, interfaces=LOOPBACK),
                discover_hubs(timeout_s=1.5, interfaces=LOOPBACK, root_fingerprint=fp_a.upper()),
                discover_hubs(timeout_s=1.5, interfaces=LOOPBACK, root_fingerprint=fp_b))
            if ({a.node_id, b.node_id} <= {hub.node_id for hub in everyone} and only_a and only_b
                    or time.monotonic() > deadline):
                break
    finally:
        await asyncio.gather(a.close(), b.close())
    assert {a.node_id, b.node_id} <= {hub.node_id for hub in everyone}  # and whatever else is on loopback
    assert [hub.node_id for hub in only_a] == [a.node_id]  # another root is dropped, not ranked last
    assert [hub.node_id for hub in only_b] == [b.node_id]
    assert only_a[0].url == "http://127.0.0.1:18124" and only_b[0].url == "http://127.0.0.1:18125"


async def test_nothing_announced_gives_an_empty_list_after_the_timeout():
    started = time.monotonic()
    hubs = await discover_hubs(timeout_s=1.0, interfaces=LOOPBACK, root_fingerprint=fingerprint())
    took = time.monotonic() - started
    assert hubs == []
    assert 0.9 <= took < 3.0


async def test_a_closed_advertiser_says_goodbye():
    fp = fingerprint()
    hub = advertiser(fp, 18126)
    await hub.start()
    await find(hub.node_id, fp=fp)
    await hub.close()
    assert await discover_hubs(timeout_s=1.0, interfaces=LOOPBACK, root_fingerprint=fp) == []


async def test_two_hubs_made_in_the_same_minute_get_distinct_instance_names():
    a, b = uuid7(), uuid7()
    assert a[:8] == b[:8]  # UUIDv7 starts with the time
    assert instance_name("hub", a) != instance_name("hub", b)
    assert instance_name("Kasse 1/Foyer." * 9, a).startswith("Kasse 1-Foyer-")
    assert len(instance_name("x" * 200, a)) <= 63  # a DNS label


async def test_advertising_an_ipv6_address_fails_clearly():
    hub = HubAdvertiser(port=1, node_id=uuid7(), name="v6", root_fingerprint="00000000", host_address="::1",
                        interfaces=LOOPBACK)
    with pytest.raises(ValueError, match="not an IPv4 address"):
        await hub.start()
    await hub.close()  # harmless after a failed start


def test_root_fingerprint_is_the_root_key_id_in_hex(empty_hub):
    fp = root_fingerprint(empty_hub.db)
    assert re.fullmatch(r"[0-9a-f]{8}", fp)
    assert fp == f"{keys.key_id(keys.public_bytes(root_public(empty_hub.db))):08x}"


def test_the_default_advertised_address():
    assert advertise_address("127.0.0.1", None) == "127.0.0.1"
    assert advertise_address("192.0.2.7", ["127.0.0.1"]) == "192.0.2.7"  # where the hub listens
    assert advertise_address("localhost", None) == "127.0.0.1"
    assert advertise_address("0.0.0.0", ["127.0.0.1", "10.0.0.1"]) == "127.0.0.1"
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", advertise_address("0.0.0.0", None))


# -- a real `tessera hub serve` ----------------------------------------------------------------


@pytest.fixture
def hub_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "hub"
    subprocess.run([*TESSERA, "hub", "init", "--data", str(folder)], cwd=ROOT, check=True, capture_output=True,
                   timeout=60)
    return folder


def identity(folder: Path) -> tuple[str, str]:
    db = connect(db_path(folder))
    try:
        return this_node(db)["id"], root_fingerprint(db)
    finally:
        db.close()


class Systemd:
    """A bound notify socket read by a thread (as systemd would), so that WATCHDOG=1 every
    0.2 s never fills the datagram queue while a test is busy elsewhere."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_for(self, *needles: str, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while not all(any(n in m for m in self.messages) for n in needles):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needles} from the hub; got {self.messages}")
            time.sleep(0.02)
        return list(self.messages)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path):
    listener = Systemd(tmp_path / "notify.sock")
    yield listener
    listener.close()


def start_hub(folder: Path, *args: str, notify: str | None = None) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    env.pop("WATCHDOG_PID", None)
    if notify:
        env.update(NOTIFY_SOCKET=notify, WATCHDOG_USEC="400000")
    proc = subprocess.Popen([*TESSERA, "hub", "serve", "--data", str(folder), "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    line = proc.stdout.readline()
    match = re.fullmatch(r"hub API on (http://127\.0\.0\.1:\d+)/api/v1\n", line)
    if not match:
        proc.kill()
        raise AssertionError(f"unexpected first line {line!r}: {proc.stderr.read()}")
    return proc, match.group(1)


def health(url: str) -> str:
    with urllib.request.urlopen(url + "/api/v1/health", timeout=10) as resp:
        return resp.read().decode()


def test_hub_serve_is_discoverable_and_talks_to_systemd(hub_dir, systemd):
    node_id, fp = identity(hub_dir)
    proc, url = start_hub(hub_dir, "--zeroconf-interface", "127.0.0.1", notify=systemd.path)
    try:
        messages = systemd.wait_for("WATCHDOG=1", "advertised as")
        ready = next(m for m in messages if "READY=1" in m)
        assert f"STATUS=hub API on {url}/api/v1\n" in ready
        port = int(url.rsplit(":", 1)[1])
        assert any("advertised as 'hub-" in m and f"at 127.0.0.1:{port}" in m for m in messages)
        found = asyncio.run(find(node_id, fp=fp))
        assert found.url == url and found.name == "hub" and found.root_fingerprint == fp
        assert '"ok"' in health(found.url)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
    stderr = proc.stderr.read()
    assert rc == 0, stderr
    assert stderr == ""
    systemd.wait_for("STOPPING=1")
    assert asyncio.run(discover_hubs(timeout_s=1.0, interfaces=LOOPBACK, root_fingerprint=fp)) == []  # goodbye


def unassigned_ipv4() -> str:
    for candidate in ("203.0.113.254", "198.51.100.254", "192.0.2.254", "10.254.254.254"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((candidate, 0))
            except OSError:
                return candidate  # not an address of this machine
    pytest.skip("every candidate address is assigned here")


def test_a_hub_that_cannot_advertise_serves_anyway_with_one_warning(hub_dir, systemd):
    proc, url = start_hub(hub_dir, "--zeroconf-interface", unassigned_ipv4(), notify=systemd.path)
    try:
        messages = systemd.wait_for("READY=1", "not advertised")
        assert any("READY=1" in m for m in messages)
        assert '"ok"' in health(url)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
    stderr = proc.stderr.read()
    assert rc == 0, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("tessera: warning: hub not advertised on the LAN (")


def test_no_advertise_stays_off_the_lan(hub_dir):
    node_id, fp = identity(hub_dir)
    proc, url = start_hub(hub_dir, "--no-advertise", "--zeroconf-interface", "127.0.0.1")
    try:
        assert '"ok"' in health(url)
        hubs = asyncio.run(discover_hubs(timeout_s=2.0, interfaces=LOOPBACK, root_fingerprint=fp))
        assert node_id not in {hub.node_id for hub in hubs}
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
    assert rc == 0 and proc.stderr.read() == ""


def test_serve_help_documents_the_zeroconf_options():
    out = subprocess.run([*TESSERA, "hub", "serve", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60).stdout
    for flag in ("--no-advertise", "--advertise-address", "--zeroconf-interface"):
        assert flag in out
