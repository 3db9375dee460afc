"""A throwaway PostgreSQL cluster: for the PostgreSQL tests (tests/pg.py) and benchmarks.

Started with Debian's `initdb` and `pg_ctl` in a temporary folder, listening only on a unix
socket in that folder (no TCP port to collide on; the port number only names the socket),
with durability off (`fsync=off`: thrown away anyway), stopped and deleted at the end.
initdb refuses to run as root, so as root the cluster runs as the unprivileged system user
`tessera-pg` (made by scripts/setup, or here when missing). Not for production data. A
cluster whose process died without stopping it is stopped by the next `running_cluster()`.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from core.base import pg

USER = "tessera-pg"
PORT = 5433  # names the socket file only: the cluster listens on no TCP port
PREFIX = "tessera-pg-"
OWNER_FILE = "owner.pid"  # the process that started the cluster (stop_orphans)
_databases = itertools.count(1)


@dataclass
class Cluster:
    """A running cluster: URLs of its databases, new databases (empty or copies)."""

    folder: Path
    _template: str | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.folder / 'socket'}&port={PORT}"

    def create_database(self, template: str = "template0") -> str:
        """A new database (byte-order text, like SQLite's), a copy of *template* (default:
        empty), returned as its URL."""
        name = f"hub_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY ENCODING 'UTF8' "
                          "LC_COLLATE 'C' LC_CTYPE 'C'")
        return self.url(name)

    def hub_template(self) -> str:
        """The name of a database holding the hub's generated schema, made once per cluster:
        copying it is much faster than generating the schema for every test."""
        if self._template is None:
            url = self.create_database()
            pg.connect(url).close()
            self._template = urllib.parse.urlsplit(url).path.lstrip("/")
        return self._template

    def drop_database(self, url: str) -> None:
        name = urllib.parse.urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not found:
        raise RuntimeError(f"no PostgreSQL {tool}: run ./scripts/setup (installs Debian's postgresql)")
    return found[-1]


def _as_cluster_user(args: list[str]) -> list[str]:
    if os.getuid() != 0:
        return args
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
    return ["runuser", "-u", USER, "--", *args]


def _give_to_cluster_user(folder: Path) -> None:
    if os.getuid() == 0:
        entry = pwd.getpwnam(USER)
        os.chown(folder, entry.pw_uid, entry.pw_gid)


def _alive(pid: int) -> bool:
    """Whether process *pid* runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stop(folder: Path) -> None:
    subprocess.run(_as_cluster_user([_bin("pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "-w", "stop"]),
                   check=False, capture_output=True)


def stop_orphans(root: Path | None = None) -> list[Path]:
    """Stop and delete the clusters whose owning process has died: a test run killed with -9
    would otherwise leave its postgres running. A cluster being made (no owner file yet) or
    owned by a live process is left alone."""
    stopped = []
    for folder in sorted(Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*")):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not _alive(owner):
            _stop(folder)
            shutil.rmtree(folder, ignore_errors=True)
            stopped.append(folder)
    return stopped


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A started cluster for the `with` block; stopped and deleted after it."""
    stop_orphans()
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    try:
        (folder / OWNER_FILE).write_text(str(os.getpid()))
        (folder / "socket").mkdir()
        for path in (folder, folder / "socket"):
            _give_to_cluster_user(path)
        data = folder / "data"
        subprocess.run(_as_cluster_user([_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                         "--encoding=UTF8", "--locale=C", "--no-sync"]),
                       check=True, capture_output=True)
        options = (f"-c listen_addresses='' -c port={PORT} -c unix_socket_directories={folder / 'socket'} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
        subprocess.run(_as_cluster_user([_bin("pg_ctl"), "-D", str(data), "-o", options, "-l",
                                         str(folder / "server.log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True)
        try:
            yield Cluster(folder)
        finally:
            _stop(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
