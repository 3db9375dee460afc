"""Start helper servers as subprocesses, wait for their "ready" line, and always stop them.

Servers under test run in their own processes so that they get a core of their own, as in
production, and so that the benchmark process (load generator, bookkeeping) never shares an
event loop or a GIL with them.
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
ROOT = Path(__file__).resolve().parent.parent  # the project folder, so `python -m bench.x` always resolves


class BenchError(Exception):
    """An expected way for a benchmark to fail (a server did not start, a response was not 200)."""


def venv_command(name: str) -> Path:
    """A console script installed next to this interpreter, e.g. the `tessera` command."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise BenchError(f"{path} not found; install the project into this environment (pip install -e .)")
    return path


class Server:
    """A running subprocess whose stdout is drained by a thread, so it can never block on a full pipe."""

    def __init__(self, args: list[str], ready: re.Pattern[str], timeout: float = READY_TIMEOUT_S) -> None:
        self.args = args
        self.proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=20)
        threading.Thread(target=self._drain_stdout, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        try:
            self.match = self._wait_ready(ready, timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.rstrip())

    def _wait_ready(self, ready: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
                time.sleep(0.1)  # let the stderr thread catch the last words
                raise BenchError(f"{self.name} exited with {self.proc.returncode} before it was ready: "
                                 f"{self.last_error()}")
            if match := ready.search(line):
                return match
        raise BenchError(f"{self.name} printed no ready line within {timeout:.0f} s: {self.last_error()}")

    @property
    def name(self) -> str:
        return " ".join(Path(a).name if i == 0 else a for i, a in enumerate(self.args[:4]))

    def last_error(self) -> str:
        return self._stderr[-1] if self._stderr else "(nothing on stderr)"

    def stop(self) -> None:
        """SIGTERM (servers shut down cleanly on it), then SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)


class Servers:
    """Context manager owning every server a benchmark starts; all are stopped on exit, also on error."""

    def __init__(self) -> None:
        self._running: list[Server] = []

    def start(self, args: list[str], ready: re.Pattern[str], timeout: float = READY_TIMEOUT_S) -> Server:
        server = Server(args, ready, timeout)
        self._running.append(server)
        return server

    def stop(self, server: Server) -> None:
        server.stop()
        self._running.remove(server)

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        while self._running:
            self._running.pop().stop()
