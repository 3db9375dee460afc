"""sd_notify and the gate watchdog, against real AF_UNIX datagram sockets."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from edge.notify import Heartbeat, SdNotify, feed_watchdog, watchdog_interval
from tests.helpers import async_wait_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def listener(tmp_path: Path):
    """A bound datagram socket standing in for systemd; yields (NOTIFY_SOCKET value, socket)."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def test_messages_arrive_exactly(listener):
    path, sock = listener
    with SdNotify(env={"NOTIFY_SOCKET": path}) as notify:
        assert notify.enabled
        assert notify.ready()
        assert sock.recv(4096) == b"READY=1\n"
        assert notify.status("admitting; 3 gates in sight")
        assert sock.recv(4096) == b"STATUS=admitting; 3 gates in sight\n"
        assert notify.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1\n"
        assert notify.stopping()
        assert sock.recv(4096) == b"STOPPING=1\n"
        assert notify.ready("up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up\n"
        assert notify.send(STATUS="a\nWATCHDOG=1", ERRNO=5)
        assert sock.recv(4096) == b"STATUS=a WATCHDOG=1\nERRNO=5\n"  # no forged second field


def test_environment_is_read_by_default(listener, monkeypatch):
    path, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    with SdNotify() as notify:
        notify.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1\n"


def test_abstract_socket():
    name = f"tessera-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        with SdNotify(env={"NOTIFY_SOCKET": "@" + name}) as notify:
            assert notify.ready()
        assert sock.recv(4096) == b"READY=1\n"
    finally:
        sock.close()


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "vsock:2:1234"}])
def test_no_socket_is_a_no_op(env):
    notify = SdNotify(env=env)
    assert not notify.enabled
    assert notify.ready() is False
    assert notify.status("x") is False
    assert notify.watchdog() is False
    assert notify.stopping() is False
    notify.close()


def test_vanished_socket_never_raises_and_logs_once(listener, caplog):
    path, sock = listener
    notify = SdNotify(env={"NOTIFY_SOCKET": path})
    assert notify.ready()
    sock.close()
    os.unlink(path)
    with caplog.at_level(logging.DEBUG, logger="edge.notify"):
        for _ in range(5):
            assert notify.watchdog() is False
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    # systemd comes back (same path): sending works again without a new SdNotify.
    again = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    again.bind(path)
    again.settimeout(2)
    try:
        assert notify.watchdog()
        assert again.recv(4096) == b"WATCHDOG=1\n"
    finally:
        again.close()
        notify.close()


def test_bound_but_unread_socket_does_not_block(tmp_path):
    """A full receive queue must not stall the caller (the gate's event loop)."""
    path = tmp_path / "full"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        notify = SdNotify(env={"NOTIFY_SOCKET": str(path)})
        start = time.monotonic()
        results = [notify.status("x" * 1000) for _ in range(2000)]
        assert time.monotonic() - start < 2
        assert results[0] and not results[-1]
        notify.close()
    finally:
        sock.close()


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "10000000"}, 5.0),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, 5.0),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "nope"}, None),
    ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": ""}, 5.0),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "-5"}, None),
    ({"WATCHDOG_USEC": "ten"}, None),
    ({"WATCHDOG_USEC": ""}, None),
    ({"WATCHDOG_USEC": "500"}, 0.00025),
])
def test_watchdog_interval(env, expected):
    assert watchdog_interval(env) == expected


def test_watchdog_interval_reads_environment(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 1.5
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None


def test_heartbeat_with_a_fake_clock():
    now = [100.0]
    heart = Heartbeat(clock=lambda: now[0])
    assert heart.alive(1.0)  # creation counts as a beat
    now[0] = 101.5
    assert not heart.alive(1.0)
    assert heart.age() == 1.5
    heart.beat()
    assert heart.alive(1.0)


async def test_feed_watchdog_feeds_while_beating_and_stops_when_stale(listener):
    path, sock = listener
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    received: list[tuple[float, bytes]] = []
    loop.add_reader(sock.fileno(), lambda: received.append((time.monotonic(), sock.recv(4096))))

    interval, max_age = 0.05, 0.15
    notify = SdNotify(env={"NOTIFY_SOCKET": path})
    heart = Heartbeat()

    def feeds() -> list[float]:
        return [t for t, m in received if m == b"WATCHDOG=1\n"]

    def statuses() -> list[bytes]:
        return [m for _, m in received if m.startswith(b"STATUS=")]

    async def scanner_loop(until, timeout: float = 10.0) -> None:
        """The scanner loop at work: beat until `until()` holds (AssertionError at the deadline)."""
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "not reached while the loop beats"
            heart.beat()
            await asyncio.sleep(0.01)

    feeder = asyncio.create_task(feed_watchdog(notify, heart, interval, max_age))
    try:
        await scanner_loop(lambda: len(feeds()) >= 5)  # fed periodically while alive
        last_beat = time.monotonic()
        # the scanner loop "hangs" (no beats) until the feeder has said why it stopped feeding...
        await async_wait_until(statuses, what="the STATUS line about the silent loop")
        await asyncio.sleep(4 * interval)  # ...and a few ticks more, in which nothing may be fed (no event for that)
        assert len([t for t in feeds() if t <= last_beat]) >= 5
        assert max(feeds()) <= last_beat + max_age + interval  # stopped within the max age (+ one tick)
        assert len(statuses()) == 1 and b"silent" in statuses()[0]  # said why, once

        # The loop recovers before systemd acted: feeding resumes.
        recovered = time.monotonic()
        await scanner_loop(lambda: feeds()[-1] > recovered)
        assert received[-1][1] == b"WATCHDOG=1\n"
        assert any(m == b"STATUS=gate loop alive again\n" for _, m in received)
    finally:
        feeder.cancel()
        loop.remove_reader(sock.fileno())
        notify.close()


async def test_feed_watchdog_returns_without_watchdog_or_socket(listener):
    path, _ = listener
    await asyncio.wait_for(feed_watchdog(SdNotify(env={"NOTIFY_SOCKET": path}), Heartbeat(), None, 1.0), 1)
    await asyncio.wait_for(feed_watchdog(SdNotify(env={}), Heartbeat(), 0.05, 1.0), 1)


def test_imports_nothing_of_hub_or_cli():
    code = ("import sys, edge.notify; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('hub', 'cli', 'aiohttp')); print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
