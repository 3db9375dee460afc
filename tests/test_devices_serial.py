"""Serial devices for real: LCUS relays and serial scanners on pseudo-terminal pairs (`os.openpty()`; the
driver opens the slave path with pyserial, the test plays the device on the master end), stuck and
vanishing ports, and the simulated scanners and relay.

The only stand-in is for DTR/RTS sequencing: the Linux pty driver refuses modem-control ioctls
(TIOCMBIS -> ENOTTY, checked in `test_dtr_rts_on_a_pty_fails_cleanly`), so the order and timing of
line changes are checked against a small object with pyserial's `dtr`/`rts` setters."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from contextlib import suppress

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import DeviceError, DeviceNotFound
from devices.profiles import LcusSettings, RelayProfile, RelaySettings, load_relay, load_scanner
from devices.relays.dtr import DtrRtsRelay
from devices.relays.factory import open_relay
from devices.relays.lcus import LcusRelay, lcus_frame, relay_frames
from devices.relays.simulated import LogRelay
from devices.scanners.base import QueueScanner, StdinScanner, open_scanner
from devices.scanners.usb_cdc import GARBLED, LineDecoder, SerialScanner
from tests.helpers import async_wait_until

ON = bytes.fromhex("A0 01 01 A2")
OFF = bytes.fromhex("A0 01 00 A1")

# Timing bounds, loose on purpose: a loaded 2-core CI machine wakes a timer or a thread tens of ms late,
# while the faults these tests look for cost far more. SLACK_S is added to upper bounds of durations the
# code sets (a pulse, a deadline). LOOP_LAG_S bounds how late the event loop may wake a 5 ms ticker while
# a driver hangs: a driver call made on the loop's thread would stall it for the whole hang (0.3 s to 5 s
# below). Where it can, a test also proves "the loop did not wait" without a clock: the pulse has
# returned while the driver is still stuck in its call (`relay.busy`).
SLACK_S = 0.25
LOOP_LAG_S = 0.25


# --- helpers -------------------------------------------------------------------------------------------


@pytest.fixture
def pty():
    """(master fd, slave path). The slave fd is closed at once: the driver opens the path itself."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    yield master, path
    with suppress(OSError):
        os.close(master)


class Far:
    """The device end of a pty: collects what the driver writes, with arrival times."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.data = bytearray()
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, total bytes so far)
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self.master, 65536)
        except (BlockingIOError, OSError):
            return
        self.data += chunk
        self.arrivals.append((time.monotonic(), len(self.data)))

    def when(self, total: int) -> float:
        """When the byte count first reached `total`."""
        return next(t for t, n in self.arrivals if n >= total)

    async def wait_for(self, total: int, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.data) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return bytes(self.data)

    def stop(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)


def fill(path: str) -> int:
    """Fill the slave->master buffer until the kernel refuses even one byte for 200 ms; bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
    total, quiet_since = 0, time.monotonic()
    try:
        while time.monotonic() - quiet_since < 0.2:
            for size in (1024, 1):
                try:
                    total += os.write(fd, b"x" * size)
                    quiet_since = time.monotonic()
                except BlockingIOError:
                    time.sleep(0.002)
    finally:
        os.close(fd)
    return total


async def with_lag(coro):
    """Run `coro` while a 5 ms ticker measures how late the event loop wakes it: (result, worst lag s)."""
    lags: list[float] = []

    async def tick():
        while True:
            start = time.monotonic()
            await asyncio.sleep(0.005)
            lags.append(time.monotonic() - start - 0.005)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    try:
        result = await coro
    finally:
        ticker.cancel()
    return result, max(lags, default=0.0)


def relay_profile(name: str, pulse_ms: int, margin_ms: int = 300, write_timeout_ms: int | None = None):
    profile = load_relay(name)
    changes: dict = {"relay": RelaySettings(pulse_ms=pulse_ms, margin_ms=margin_ms)}
    if write_timeout_ms is not None:
        changes["serial"] = msgspec.structs.replace(profile.serial, write_timeout_ms=write_timeout_ms)
    return msgspec.structs.replace(profile, **changes)


# --- LCUS frames (pure) --------------------------------------------------------------------------------


def test_lcus_frames():
    assert lcus_frame(1, True) == ON
    assert lcus_frame(1, False) == OFF
    assert lcus_frame(2, True) == bytes.fromhex("A0 02 01 A3")
    assert lcus_frame(0x60, True) == bytes.fromhex("A0 60 01 01")  # the sum wraps at 8 bits
    for bad in (0, 256):
        with pytest.raises(ValueError):
            lcus_frame(bad, True)


def test_profile_frames_take_precedence_over_computed_ones():
    assert relay_frames(load_relay("lcus-1")) == (ON, OFF)
    assert relay_frames(load_relay("lcus-4-ch2")) == (bytes.fromhex("A0 02 01 A3"), bytes.fromhex("A0 02 00 A2"))
    custom = msgspec.structs.replace(load_relay("lcus-1"), lcus=LcusSettings(channel=1, on="a0:01:03:a4"))
    assert relay_frames(custom) == (bytes.fromhex("A0 01 03 A4"), OFF)


# --- LCUS relay on a real pty --------------------------------------------------------------------------


async def test_lcus_pulse_sends_exact_frames_with_pulse_gap(pty):
    master, path = pty
    relay = open_relay(relay_profile("lcus-1", pulse_ms=300), path)
    assert isinstance(relay, LcusRelay)
    far = Far(master)
    try:
        assert await far.wait_for(4) == OFF  # a (re)started gate first makes sure the door is shut
        result = await relay.pulse()
        data = await far.wait_for(12)
    finally:
        far.stop()
        relay.close()
    assert result.ok and not relay.faulty and result.relay == "lcus-1"
    assert data == OFF + ON + OFF
    # seen from the board: the loop may read "on" late (a loaded machine), which shortens the gap it sees;
    # a pulse that does not wait, or waits a fraction of pulse_ms, is still far below the bound
    gap = far.when(12) - far.when(8)
    assert 0.3 - 0.1 <= gap <= 0.3 + SLACK_S, gap
    assert 0.3 <= result.elapsed_s <= 0.3 + SLACK_S  # measured by the relay itself: at least pulse_ms


async def test_concurrent_pulses_never_interleave_frames(pty):
    master, path = pty
    relay = open_relay(relay_profile("lcus-1", pulse_ms=60), path)
    far = Far(master)
    try:
        results = await asyncio.gather(relay.pulse(), relay.pulse(), relay.pulse())
        data = await far.wait_for(28)
    finally:
        far.stop()
        relay.close()
    assert all(r.ok for r in results)
    assert data == OFF + (ON + OFF) * 3


async def test_stuck_relay_fails_in_time_without_blocking_the_loop_and_recovers(pty):
    """The board stops reading (buffer full): the pulse fails by its deadline, a second pulse fails at
    once instead of queueing, the late 'on' is followed by 'off' at once, and the next pulse works."""
    master, path = pty
    # a long pulse, so that "off at once" and "off after pulse_ms" are far apart; the write timeout
    # outlasts the test: the stuck write ends only when the board reads again
    relay = open_relay(relay_profile("lcus-1", pulse_ms=500, margin_ms=100, write_timeout_ms=5000), path)
    filled = fill(path)
    try:
        started = time.monotonic()
        result, lag = await with_lag(relay.pulse())
        assert not result.ok and "no answer within 600 ms" in result.error
        assert relay.busy  # returned while the write is still stuck: the loop did not wait for the driver
        assert time.monotonic() - started < relay.deadline_s + SLACK_S
        assert lag < LOOP_LAG_S, f"event loop blocked for {lag:.3f} s"
        assert relay.faulty

        second = await relay.pulse()
        assert not second.ok and "busy" in second.error
        assert second.elapsed_s < relay.deadline_s  # refused at once, not queued behind the stuck write
        assert relay.busy

        far = Far(master)  # the board reads again
        await far.wait_for(4 + filled + 8)
        await async_wait_until(lambda: not relay.busy, what="the stuck pulse ending once the board reads")
        third = await relay.pulse()
        data = await far.wait_for(4 + filled + 16)
        far.stop()
    finally:
        relay.close()
    assert third.ok and not relay.faulty
    assert data == OFF + b"x" * filled + ON + OFF + ON + OFF
    late_on = far.when(4 + filled + 4)
    assert far.when(4 + filled + 8) - late_on < relay.pulse_s / 2  # abandoned: off at once, not after pulse_ms


async def test_port_vanishing_mid_pulse_fails_cleanly(pty):
    master, path = pty
    relay = open_relay(relay_profile("lcus-1", pulse_ms=300, margin_ms=300), path)
    far = Far(master)
    await far.wait_for(4)

    async def unplug():
        await far.wait_for(8)  # the "on" frame has arrived: the relay is provably mid-pulse
        assert far.data[4:8] == ON
        far.stop()
        os.close(master)

    started = time.monotonic()
    (result, lag), _ = await asyncio.gather(with_lag(relay.pulse()), unplug())
    relay.close()
    # a pulse run on the loop's thread would have switched off before unplug() could run: ok, no error
    assert not result.ok
    assert "may still be ON" in result.error and "Input/output error" in result.error
    assert time.monotonic() - started < relay.deadline_s + SLACK_S
    assert lag < LOOP_LAG_S
    assert relay.faulty


async def test_closed_relay_reports_failure(pty):
    master, path = pty
    relay = open_relay(relay_profile("lcus-1", pulse_ms=20), path)
    relay.close()
    relay.close()
    result = await relay.pulse()
    assert not result.ok and result.error == "relay is closed"


def test_opening_missing_or_non_serial_ports(tmp_path):
    with pytest.raises(DeviceNotFound, match="no such serial port"):
        open_relay("lcus-1", str(tmp_path / "ttyUSB9"))
    plain = tmp_path / "not-a-tty"
    plain.write_text("")
    with pytest.raises(DeviceError, match="cannot open serial port"):
        open_relay("lcus-1", str(plain))


def test_a_port_is_opened_exclusively(pty):
    _, path = pty
    relay = open_relay("lcus-1", path)
    try:
        with pytest.raises(DeviceError, match="cannot open serial port"):
            open_relay("lcus-1", path)
    finally:
        relay.close()


# --- DTR/RTS relay -------------------------------------------------------------------------------------


async def test_dtr_rts_on_a_pty_fails_cleanly(pty):
    """Real pty: the kernel refuses TIOCMBIS. The pulse must report that, not raise or hang."""
    _, path = pty
    relay = open_relay(relay_profile("ft232-dtr-relay", pulse_ms=50), path)
    assert isinstance(relay, DtrRtsRelay)
    result = await relay.pulse()
    relay.close()
    assert not result.ok and "Inappropriate ioctl" in result.error and result.elapsed_s < 0.3


class FakeLines:
    """pyserial's modem-line interface (`dtr`, `rts` setters), recording each change with its time.
    `stuck=True`: every change after the first hangs (a wedged USB adapter) until `release` is set."""

    def __init__(self, stuck: bool = False) -> None:
        self.changes: list[tuple[float, str, bool]] = []
        self.stuck = stuck
        self.release = threading.Event()

    def _set(self, name: str, value: bool) -> None:
        if self.stuck and self.changes:
            self.release.wait(10)  # bounded, so a broken test cannot hang the run
        self.changes.append((time.monotonic(), name, value))

    dtr = property(None, lambda self, v: self._set("dtr", v))
    rts = property(None, lambda self, v: self._set("rts", v))


def dtr_profile(line: str, active_high: bool, pulse_ms: int = 100) -> RelayProfile:
    profile = relay_profile("ft232-dtr-relay", pulse_ms=pulse_ms, margin_ms=100)
    return msgspec.structs.replace(profile, dtr_rts=msgspec.structs.replace(profile.dtr_rts, line=line,
                                                                              active_high=active_high))  # fmt: skip


@pytest.mark.parametrize(("line", "active_high"), [("dtr", True), ("rts", True), ("dtr", False)])
async def test_dtr_rts_sequencing(line, active_high):
    lines = FakeLines()
    relay = DtrRtsRelay(dtr_profile(line, active_high), lines)
    result = await relay.pulse()
    relay.close()
    assert result.ok
    assert [(name, value) for _, name, value in lines.changes] == [
        (line, not active_high),  # idle when taken over
        (line, active_high),
        (line, not active_high),
    ]
    gap = lines.changes[2][0] - lines.changes[1][0]
    assert 0.095 <= gap <= 0.1 + SLACK_S, gap


async def test_dtr_rts_stuck_driver_hits_the_deadline():
    lines = FakeLines(stuck=True)  # "on" hangs in the driver until the test lets it go
    relay = DtrRtsRelay(dtr_profile("dtr", True, pulse_ms=50), lines)
    try:
        result, lag = await with_lag(relay.pulse())
        assert not result.ok and "no answer within 150 ms" in result.error
        assert relay.busy  # returned while the driver is still stuck: the loop did not wait for it
        assert result.elapsed_s < relay.deadline_s + SLACK_S and lag < LOOP_LAG_S
    finally:
        lines.release.set()
        relay.close()


# --- simulated relay -----------------------------------------------------------------------------------


async def test_log_relay_records_pulses(caplog):
    relay = open_relay(relay_profile("sim-log", pulse_ms=30))
    assert isinstance(relay, LogRelay)
    with caplog.at_level("INFO", logger="tessera.relay"):
        results = await asyncio.gather(relay.pulse(), relay.pulse())
    assert all(r.ok for r in results) and len(relay.pulses) == 2
    (s1, e1), (s2, e2) = relay.pulses
    assert e1 - s1 >= 0.029 and s2 >= e1  # one after the other
    assert "ON (simulated)" in caplog.text
    relay.close()
    assert not (await relay.pulse()).ok


async def test_any_driver_that_hangs_is_cut_off_at_the_deadline():
    class Hanging(LogRelay):
        async def _pulse(self):
            await asyncio.sleep(3600)

    relay = Hanging(relay_profile("sim-log", pulse_ms=40, margin_ms=60))
    result, lag = await with_lag(relay.pulse())
    assert not result.ok and "no answer within 100 ms" in result.error and relay.faulty
    assert 0.09 <= result.elapsed_s < relay.deadline_s + SLACK_S and lag < LOOP_LAG_S


# --- serial scanner: line decoder (pure) ---------------------------------------------------------------


def test_line_decoder_terminators_and_tolerance():
    for terminator in ("CR", "LF", "CRLF"):
        dec = LineDecoder(terminator)
        assert dec.feed(b"A1\rB2\nC3\r\nD4\n\r\r\n") == ["A1", "B2", "C3", "D4"]


def test_line_decoder_split_and_empty_lines():
    dec = LineDecoder("CRLF")
    assert dec.feed(b"AB") == []
    assert dec.feed(b"C\r") == ["ABC"]
    assert dec.feed(b"\n") == []  # the LF of a split CRLF is not an empty code
    assert dec.feed(b"\r\n\r\n") == []
    assert dec.feed(b"X\r\nY") == ["X"]
    assert dec.feed(b"\r\n") == ["Y"]


def test_line_decoder_caps_length_and_marks_garbage():
    dec = LineDecoder("CR", max_length=4)
    assert dec.feed(b"123456789\rOK\r") == ["1234" + GARBLED, "OK"]
    assert dec.feed(b"\xff\xfeA\r") == [f"{GARBLED}{GARBLED}A"]


def test_line_decoder_idle_timeout_drops_partial_line():
    dec = LineDecoder("CR", idle_timeout_s=0.1)
    assert dec.feed(b"PART", now=10.0) == []
    assert dec.feed(b"IAL\r", now=10.05) == ["PARTIAL"]
    assert dec.feed(b"LOST", now=11.0) == []
    assert dec.feed(b"NEXT\r", now=11.5) == ["NEXT"]


def test_line_decoder_rejects_unknown_terminator():
    with pytest.raises(ValueError):
        LineDecoder("NUL")  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(min_size=1, max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
                   max_size=10),  # fmt: skip
    ends=st.lists(st.sampled_from([b"\r", b"\n", b"\r\n"]), min_size=10, max_size=10),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_line_decoder_is_independent_of_how_bytes_are_split(lines, ends, cuts):
    stream = b"".join(line + end for line, end in zip(lines, ends, strict=False))
    whole = LineDecoder("CR").feed(stream)
    dec = LineDecoder("CR")
    pieces, last = [], 0
    for cut in sorted(c for c in cuts if c <= len(stream)):
        pieces.append(stream[last:cut])
        last = cut
    pieces.append(stream[last:])
    assert [line for piece in pieces for line in dec.feed(piece)] == whole
    assert whole == [line.decode("utf-8", "replace") for line in lines if line]


# --- serial scanner on a real pty ----------------------------------------------------------------------


async def collect(scanner, count: int, timeout: float = 2.0) -> list[str]:
    out: list[str] = []

    async def run():
        async for code in scanner.codes():
            out.append(code)
            if len(out) == count:
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def test_serial_scanner_reads_lines_written_by_the_device(pty):
    master, path = pty
    scanner = open_scanner("zebra-ds2208-cdc", path)
    assert isinstance(scanner, SerialScanner)

    async def device():
        for chunk in (b"ABC\r", b"DEF\n", b"GH", b"I\r\n", b"\r\n", b"J\r", b"\nK", b"\n", "Zürich\r".encode()):
            os.write(master, chunk)
            await asyncio.sleep(0.01)  # the device's pace (chunks apart); any pace gives the same lines

    writer = asyncio.create_task(device())
    try:
        assert await collect(scanner, 6) == ["ABC", "DEF", "GHI", "J", "K", "Zürich"]
    finally:
        await writer
        scanner.close()


async def test_serial_scanner_drops_a_line_cut_off_mid_code(pty):
    master, path = pty
    profile = load_scanner("zebra-ds2208-cdc")
    profile = msgspec.structs.replace(profile, serial=msgspec.structs.replace(profile.serial, read_timeout_ms=80))
    scanner = SerialScanner(profile, path)

    async def device():
        os.write(master, b"HALF")
        await asyncio.sleep(0.2)  # the behaviour under test: the device goes quiet longer than read_timeout_ms
        os.write(master, b"WHOLE\r")

    writer = asyncio.create_task(device())
    try:
        assert await collect(scanner, 1) == ["WHOLE"]
    finally:
        await writer
        scanner.close()


async def test_serial_scanner_close_ends_codes(pty):
    _, path = pty
    scanner = open_scanner("zebra-ds2208-cdc", path)
    task = asyncio.create_task(collect(scanner, 1))
    await async_wait_until(lambda: scanner._loop is not None, what="codes() reading the port")
    scanner.close()
    assert await asyncio.wait_for(task, 5) == []
    scanner.close()


async def test_serial_scanner_unplugged_raises_device_error(pty):
    master, path = pty
    scanner = open_scanner("zebra-ds2208-cdc", path)
    seen: list[str] = []

    async def read_all():
        async for code in scanner.codes():
            seen.append(code)

    task = asyncio.create_task(read_all())
    os.write(master, b"ONE\r")
    await async_wait_until(lambda: seen == ["ONE"], what="the first code")  # working, then unplugged
    os.close(master)
    with pytest.raises(DeviceError, match="scanner lost"):
        await asyncio.wait_for(task, 5)
    scanner.close()


def test_serial_scanner_needs_a_port():
    profile = load_scanner("zebra-ds2208-cdc")
    no_port = msgspec.structs.replace(profile, serial=msgspec.structs.replace(profile.serial, port=None))
    with pytest.raises(DeviceError, match="names no serial port"):
        SerialScanner(no_port)
    with pytest.raises(DeviceNotFound):
        open_scanner(profile)  # /dev/ttyACM0 does not exist here


# --- simulated scanners --------------------------------------------------------------------------------


async def test_stdin_scanner_reads_a_pipe():
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as stream:
        scanner = StdinScanner(stream=stream)
        os.write(write_end, b"A1\n\n  B2 \r\n")
        os.close(write_end)
        codes = await asyncio.wait_for(collect(scanner, 99), 2)
    assert codes == ["A1", "B2"]  # then EOF ends the iteration


async def test_stdin_scanner_falls_back_to_a_thread_for_regular_files(tmp_path):
    file = tmp_path / "codes.txt"
    file.write_text("X1\nX2\n")
    with file.open("rb") as stream:
        assert await asyncio.wait_for(collect(StdinScanner(stream=stream), 99), 2) == ["X1", "X2"]


async def test_stdin_scanner_on_dev_null_ends_quietly(caplog):
    """A demo started with stdin from /dev/null (a service, `nohup`, a background job): the
    loop would accept it and epoll refuse it later, as a traceback; it is read by the thread."""
    loop = asyncio.get_running_loop()
    errors = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    with open(os.devnull, "rb") as stream:
        assert await asyncio.wait_for(collect(StdinScanner(stream=stream), 99), 2) == []
    await asyncio.sleep(0.05)  # a window for a late error from the loop; nothing may come, so no event to wait on
    assert errors == []


def test_open_scanner_sim_stdin_gives_a_stdin_scanner():
    scanner = open_scanner("sim-stdin")
    assert isinstance(scanner, StdinScanner)
    scanner.close()


async def test_queue_scanner():
    scanner = QueueScanner()
    scanner.scan("Q1")
    scanner.scan("Q2")
    scanner.close()
    assert await collect(scanner, 99) == ["Q1", "Q2"]
    with pytest.raises(DeviceError):
        scanner.scan("late")
