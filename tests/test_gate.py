"""The gate: scanner keystrokes -> decision -> entry on disk -> relay pulse, in-process and as
a real `tessera gate run` subprocess (kill -9, watchdog, trusted time)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.base.clock import utcnow
from core.base.node import NODE_DB
from core.base.storage import connect
from core.cards import cardcode
from core.cards.trusted_time import TrustedClock
from devices.profiles import load_relay
from devices.relays.simulated import LogRelay
from devices.scanners.base import QueueScanner
from devices.scanners.hid import HidDecoder, keystrokes
from edge.gate.loop import Gate, GateOptions
from tests.cardkit import make_kit
from tests.helpers import async_wait_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def kit(sample_hub, tmp_path):
    return make_kit(sample_hub, tmp_path)


@pytest.fixture
async def gate(kit):
    scanner, relay = QueueScanner(), LogRelay(load_relay("sim-log"))
    g = Gate(GateOptions(kit.gate_dir, http_port=0, peers=False, quiet=True), scanner=scanner, relay=relay)
    await g.start()
    yield g
    await g.close()


def read_with(keymap_sent: str, keymap_read: str, text: str) -> str | None:
    """What a gate decoding with *keymap_read* gets from a scanner configured for *keymap_sent*."""
    decoder = HidDecoder(keymap_read)
    out = None
    for event in keystrokes(text, keymap_sent):
        out = decoder.feed(event) or out
    return out


async def test_scan_admit_record_pulse(gate, kit):
    started: list[float] = []  # pulses begun (a pulse is recorded in relay.pulses only when it ends)
    pulse = gate.relay.pulse

    async def counted():
        started.append(time.monotonic())
        return await pulse()

    gate.relay.pulse = counted
    card = kit.issue(0, holder="Max Muster")
    result = await gate.handle(card["code"])
    assert result.admitted and result.entry_id
    await async_wait_until(lambda: gate.relay.pulses, what="the relay pulse (500 ms, in the background)")
    assert len(gate.relay.pulses) == 1
    row = gate.db.execute("SELECT * FROM entries WHERE id = ?", (result.entry_id,)).fetchone()
    assert row["card_id"] == card["id"] and row["direction"] == "in"
    op = gate.db.execute("SELECT kind, body FROM outbox").fetchone()
    assert op["kind"] == "entry.recorded" and result.entry_id in json.loads(op["body"])["record"]
    again = await gate.handle(card["code"])
    assert again.reason == "PASSBACK" and not again.entry_id
    # a pulse task handle() spawned would begin on the loop's next turn; nothing may happen, so no
    # event to wait on: give it a short window
    await asyncio.sleep(0.05)
    assert len(started) == 1 and len(gate.relay.pulses) == 1  # no second pulse
    assert gate.db.execute("SELECT count(*) AS n FROM entries").fetchone()["n"] == 1


async def test_scans_through_the_loop_and_the_status_page(gate, kit, aiohttp_client):
    card = kit.issue(0, holder="Max Muster")
    kit.sync()  # the gate knows the card, and so its holder
    runner = asyncio.create_task(gate.run())
    gate.scanner.scan(card["code"])
    gate.scanner.scan("not a card")
    await async_wait_until(lambda: len(gate.recent) >= 2, what="both scans handled")
    assert [v["reason"] for v in gate.recent] == ["ADMITTED", "MALFORMED"]
    import aiohttp
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gate.url}/api/status") as resp:
            status = await resp.json()
        async with session.get(gate.url) as resp:
            page = await resp.text()
    assert status["alive"] and status["outbox"] == 1 and status["recent"][0]["reason"] == "ADMITTED"
    assert "Bereits eingelassen" not in page and "ADMITTED" in page and "MALFORMED" in page
    # the status page and JSON answer anyone on the LAN: they name no holder (the console does)
    assert "Max Muster" not in page and "Max Muster" not in json.dumps(status)
    assert gate.recent[0]["holder"] == "Max Muster"
    gate.scanner.close()
    await asyncio.wait_for(runner, 3)


async def test_a_stuck_relay_never_holds_up_the_next_scan(gate, kit):
    class StuckRelay(LogRelay):
        async def _pulse(self):
            await asyncio.sleep(3600)  # the behaviour under test: a relay that never answers

    gate.relay = StuckRelay(load_relay("sim-log"))
    first, second = kit.issue(0), kit.issue(0)
    started = time.perf_counter()
    assert (await gate.handle(first["code"])).admitted
    assert (await gate.handle(second["code"])).admitted
    assert time.perf_counter() - started < 0.5


def test_a_valid_code_survives_a_german_scanner_read_with_the_us_keymap(kit):
    code = kit.issue(0)["code"]
    assert read_with("de", "us", code) == code
    assert read_with("us", "de", code) == code
    assert read_with("de", "us", code.lower()) == code.lower()  # caps lock on the scanner


@pytest.mark.parametrize("foreign", ["ZY-4711", "https://shop.example/t/Zy9", "TICKET:YZ12345", "Ü1234"])
def test_german_layout_misread_as_us_is_malformed_not_another_card(kit, foreign):
    access = kit.access()
    misread = read_with("de", "us", foreign)
    assert misread != foreign
    assert access.decide(misread).reason == "MALFORMED"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_layout_mixup_of_a_card_is_the_card_itself_or_malformed(kit, data):
    """Take a real code, sprinkle Y/Z/punctuation into it, type it on a German scanner and read it
    with the US keymap: the gate either admits the untouched card or refuses it as MALFORMED."""
    code = _code(kit)
    chars = list(code)
    for _ in range(data.draw(st.integers(0, 3))):
        chars[data.draw(st.integers(0, len(chars) - 1))] = data.draw(st.sampled_from("YZyz-#/"))
    text = "".join(chars)
    result = _access(kit).decide(read_with("de", "us", text))
    if text == code:
        assert result.admitted
    else:
        assert result.reason == "MALFORMED"


_memo: dict = {}


def _code(kit):
    if _memo.get("kit") is not kit:
        _memo.update(kit=kit, code=kit.issue(0)["code"], access=kit.access(lockout_minutes=0))
    return _memo["code"]


def _access(kit):
    _code(kit)
    return _memo["access"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 300), st.integers(-1, 3),
                                 st.floats(0, 1e6, allow_nan=False)), max_size=300))
def test_random_key_event_streams_always_get_a_verdict(kit, events):
    from evdev import InputEvent
    decoder = HidDecoder("de")
    access = _access(kit)
    for etype, code, value, t in events:
        line = decoder.feed(InputEvent(int(t), int((t % 1) * 1e6), etype, code, value))
        if line is not None:
            assert access.decide(line).reason in {"MALFORMED", "ADMITTED", "PASSBACK"}


# -- the real process ---------------------------------------------------------------------------

def start_gate(gate_dir: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "gate", "run", "--data", str(gate_dir), "--scanner", "sim-stdin",
         "--relay", "sim-log", "--http-port", "0", "--no-peers", *extra],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
        env={**os.environ, **(env or {})})


def wait_for_line(stream, needle: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if needle in line:
            return line
        if not line:
            time.sleep(0.01)
    raise AssertionError(f"no line with {needle!r}")


@pytest.mark.slow  # kill -9 rounds of a real tessera gate
def test_kill_9_right_after_the_relay_pulse_keeps_the_entry(kit):
    for round_ in range(3):
        card = kit.issue(0)
        proc = start_gate(kit.gate_dir)
        try:
            wait_for_line(proc.stdout, "ready")
            proc.stdin.write(card["code"] + "\n")
            proc.stdin.flush()
            wait_for_line(proc.stderr, "ON (simulated)")
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(10)
        db = connect(kit.gate_dir / NODE_DB, edge=True)
        assert db.execute("PRAGMA integrity_check").fetchone()["integrity_check"] == "ok"
        entry = db.execute("SELECT * FROM entries WHERE card_id = ?", (card["id"],)).fetchone()
        assert entry is not None, round_
        queued = db.execute("SELECT count(*) AS n FROM outbox WHERE kind = 'entry.recorded'").fetchone()["n"]
        assert queued == round_ + 1
        db.close()
        verdict = subprocess.run([sys.executable, "-m", "cli.main", "card", "verify", card["code"], "--data",
                                  str(kit.gate_dir)], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert verdict.returncode == 3 and json.loads(verdict.stdout)["reason"] == "PASSBACK"


@pytest.mark.slow  # a real tessera gate process
def test_the_gate_tells_systemd_it_is_ready_and_feeds_the_watchdog(kit, tmp_path):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(15)
    proc = start_gate(kit.gate_dir, env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"})
    try:
        messages = []
        while not any("WATCHDOG=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        assert any("READY=1" in m for m in messages)
    finally:
        proc.terminate()
        proc.wait(10)
        sock.close()
    assert proc.returncode == 0


def test_a_clock_behind_the_floor_is_detected_and_trusted_time_is_used(kit):
    db = connect(kit.gate_dir / NODE_DB, edge=True)
    real = utcnow()
    TrustedClock(db).raise_floor(real, "entry")
    db.commit()
    booted_in_1970 = dt.datetime(1970, 1, 1, 0, 5, tzinfo=dt.UTC)
    ticks = iter(range(0, 10_000))
    clock = TrustedClock(db, system=lambda: booted_in_1970, monotonic=lambda: float(next(ticks)))
    now = clock.now()
    assert now >= real and clock.status()["using"] == "floor+monotonic"
    assert clock.skew_seconds() > 50 * 365 * 86400
    card = kit.issue(0)
    access = kit.access(clock=clock)
    assert access.decide(card["code"]).admitted  # judged on trusted time, not 1970 (NOT_YET_VALID)
    later = clock.now()
    assert later > now  # monotonic time carries trusted time forward


@pytest.mark.slow  # real tessera card verify processes (about 7 s)
def test_card_verify_never_records_and_works_on_every_kind_of_folder(kit, tmp_path):
    card = kit.issue(0)
    kit.sync()
    for folder in (kit.gate_dir, kit.hub.dir):
        proc = subprocess.run([sys.executable, "-m", "cli.main", "card", "verify", card["code"], "--data",
                               str(folder)], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["holder"] == "Erika Mustermann"
    db = connect(kit.gate_dir / NODE_DB, edge=True)
    assert db.execute("SELECT count(*) AS n FROM entries").fetchone()["n"] == 0
    bad = subprocess.run([sys.executable, "-m", "cli.main", "card", "verify", card["code"][:-1], "--data",
                          str(kit.gate_dir)], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 3 and json.loads(bad.stdout)["reason"] == "MALFORMED"
    missing = subprocess.run([sys.executable, "-m", "cli.main", "card", "verify", "X", "--data",
                              str(tmp_path / "nowhere")], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and missing.stderr.startswith("tessera: error:") and missing.stderr[-1] == "\n"
    assert len(cardcode.decode(card["code"]).raw) == 100
