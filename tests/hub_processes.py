"""Several `tessera hub serve` processes on one hub (issue 18), for tests: a launcher and a
round-robin of their URLs.

    with HubProcesses(folder, 4, logs=tmp_path / "logs") as hubs:
        hubs[0].url, hubs.next_url(), hubs[1].kill()

Each process is the real command (`python -m cli.main hub serve --data D --port 0
--no-advertise`) on its own free port; its output goes to a file (a pipe nobody reads would
stop a chatty hub), and the launcher waits for the "hub API on ..." line with a deadline.
`kill()` is SIGKILL (nothing is cleaned up: the test of a crash), `stop()` SIGTERM and a wait.

`pg_hub_copy` gives a test its own copy of a PostgreSQL hub: a new database made from a
template database and a copy of the hub's folder (keys, hub.toml) naming it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import psycopg

from hub.settings import SETTINGS_FILE

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"hub API on (http://127\.0\.0\.1:\d+)/api/v1")
START_TIMEOUT_S = 60.0


class HubProcess:
    """One `tessera hub serve` process, its output in *log*."""

    def __init__(self, data_dir: Path, log: Path, extra: Sequence[str] = ()) -> None:
        self.data_dir, self.log = Path(data_dir), Path(log)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "hub", "serve", "--data", str(data_dir), "--port", "0",
                 "--no-advertise", *extra], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.url = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> str:
        """The process's base URL, once it listens (AssertionError with its output if it died)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = READY.search(self.output())
            if match:
                self.url = match.group(1)
                return self.url
            if self.proc.poll() is not None:
                raise AssertionError(f"hub process exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"hub process not listening after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: the process ends mid-whatever, nothing cleaned up."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(20)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


class HubProcesses:
    """*n* hub processes on one data folder (one database), started together."""

    def __init__(self, data_dir: Path, n: int, logs: Path) -> None:
        self.data_dir, self.n, self.logs = Path(data_dir), n, Path(logs)
        self.processes: list[HubProcess] = []
        self._turn = itertools.count()

    def __enter__(self) -> HubProcesses:
        try:
            self.processes = [HubProcess(self.data_dir, self.logs / f"hub-{i}.log") for i in range(self.n)]
            for process in self.processes:
                process.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for process in self.processes:
            process.kill() if process.proc.poll() is None and not process.url else process.stop()

    def __getitem__(self, i: int) -> HubProcess:
        return self.processes[i]

    def __len__(self) -> int:
        return len(self.processes)

    @property
    def urls(self) -> list[str]:
        return [p.url for p in self.processes]

    def next_url(self) -> str:
        """Round robin over the processes (a load balancer in front of them)."""
        return self.processes[next(self._turn) % len(self.processes)].url


def pg_hub_copy(cluster, template_folder: Path, template_url: str, folder: Path) -> tuple[Path, str]:
    """A copy of the PostgreSQL hub in *template_folder* (keys, hub.toml) whose database
    *template_url* nobody is connected to: a new database copied from it and *folder* naming it."""
    url = _copy_database(cluster, urllib.parse.urlsplit(template_url).path.lstrip("/"))
    shutil.copytree(template_folder, folder)
    settings = folder / SETTINGS_FILE
    settings.write_text(settings.read_text().replace(json.dumps(template_url), json.dumps(url)))
    return folder, url


def add_settings(folder: Path, toml: str) -> None:
    """Append sections to the hub's hub.toml (read by each process when it starts)."""
    settings = folder / SETTINGS_FILE
    settings.write_text(settings.read_text() + "\n" + toml)


def _copy_database(cluster, template: str, timeout: float = 30.0) -> str:
    """CREATE DATABASE ... TEMPLATE, after ending every session still on the template (a pool
    the building app left open, a backend whose client has gone but that has not ended yet)."""
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(cluster.url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                          "AND pid <> pg_backend_pid()", (template,))
        try:
            return cluster.create_database(template)
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
