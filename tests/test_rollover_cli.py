"""`tessera hub rollover plan|run|confirm` as a user runs it (real processes on the scene of
tests/rollover_scene.py), and `kill -9` of a real `tessera hub rollover run` in the middle: run
again, the result is the uninterrupted run's, nothing doubled, nothing missing."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import threading
import time

import pytest

from core.base.storage import connect
from core.subscriptions import rollover_run
from hub.app import DB_NAME
from tests.rollover_scene import NOW, many, scene_hub
from tests.test_sync_kill import ROOT, TESSERA, env

SEASONS = ("--from", "2026/27", "--to", "2027/28")
RENEWAL = ("--renewal-until", "2027-05-31")


def tessera(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*TESSERA, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env())
    assert (proc.returncode == 0) == ok, proc.stderr
    return proc


def tessera_here(capsys: pytest.CaptureFixture, *args: str) -> subprocess.CompletedProcess:
    """A refused command run by `cli.main.main` in this process (a usage error's SystemExit
    caught): its exit code, stdout and stderr, without a Python start-up and the hub's imports
    (~1 s of CPU each). The commands that do the work run as real processes above."""
    from cli.main import main as cli_main

    capsys.readouterr()
    try:
        code = cli_main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    assert code != 0, out.out
    return subprocess.CompletedProcess(["tessera", *args], code, out.out, out.err)


@pytest.fixture
def sample_hub(request, tmp_path, backend):
    """The sample hub with the rollover scene, built once per process and copied (tests/rollover_scene.py)."""
    return scene_hub(request, tmp_path, backend)


@pytest.fixture
def scene(sample_hub):
    return sample_hub.scene


def test_plan_run_and_confirm_from_the_command_line(scene, capsys):
    data = str(scene.hub.dir)
    counts = "5 kept, 1 moved to another seat, 1 paused (seat held), 4 listed, 1 left out (cancelled)"
    plan = tessera("hub", "rollover", "plan", "--data", data, *SEASONS)
    assert plan.stdout.startswith("dry run, nothing written: 6 kept, 1 moved") and "planning: 100%" in plan.stderr
    assert "listed: discount tier missing (1)" in plan.stdout and "wheelchair place locked (1)" in plan.stdout
    assert scene.hub.db.execute("SELECT count(*) AS n FROM rollover_runs").fetchone()["n"] == 0
    voucher = scene.subs["voucher"]["product_id"]
    ran = tessera("hub", "rollover", "run", "--data", data, *SEASONS, *RENEWAL, "--product", f"{voucher}=")
    assert counts in ran.stdout and "held until 2027-05-31" in ran.stdout
    assert "listed: product missing (1)" in ran.stdout and "holding seats: 100%" in ran.stderr
    number = scene.hub.db.execute("SELECT number FROM customers WHERE id = ?",
                                  (scene.subs["kept"]["customer_id"],)).fetchone()["number"]
    one = tessera("hub", "rollover", "confirm", "--data", data, *SEASONS, "--subscriber", number)
    assert "1 confirmed, 6 held, 0 failed" in one.stdout and "confirming: 100%" in one.stderr
    rest = tessera("hub", "rollover", "confirm", "--data", data, *SEASONS)
    assert "6 confirmed, 1 held, 0 failed" in rest.stdout
    bad = tessera_here(capsys, "hub", "rollover", "run", "--data", data, "--from", "1999/00", "--to", "2027/28")
    assert bad.stderr.strip() == "tessera: error: no season '1999/00'" and not bad.stdout
    same = tessera_here(capsys, "hub", "rollover", "plan", "--data", data, "--from", "2026/27", "--to", "2026/27")
    assert "is rolled over into another one" in same.stderr
    nope = tessera_here(capsys, "hub", "rollover", "confirm", "--data", data, *SEASONS, "--subscriber", "K-NOPE")
    assert "no customer K-NOPE" in nope.stderr
    odd = tessera_here(capsys, "hub", "rollover", "run", "--data", data, *SEASONS, "--product", "nonsense")
    assert "is not OLD=NEW" in odd.stderr and odd.returncode == 2


def _items(db) -> dict[str, tuple]:
    return {r["subscription_id"]: (r["outcome"], r["reason"], r["seats"]) for r in db.execute(
        "SELECT subscription_id, outcome, reason, seats FROM rollover_items")}


def _open(path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


def _kill_at_first_progress(proc: subprocess.Popen) -> None:
    """`kill -9` as soon as the run says it has held the first tenth of the seats (its progress
    line on stderr): nine tenths, a hundred and more transactions, are still to come."""
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if line.startswith("holding seats: 10%"):
            proc.kill()
            proc.wait()
            return
        assert time.monotonic() < deadline, "no progress in 60 s"
    raise AssertionError(f"the run ended ({proc.wait()}) before it held a tenth of the seats")


@pytest.mark.slow
@pytest.mark.sqlite_only("its reference run is on a copy of the hub folder, a copy of the database only on SQLite")
def test_kill_9_mid_run_then_run_again_doubles_nothing_and_misses_nothing(scene, tmp_path):
    hub = scene.hub
    assert many(scene, 600) == 600
    hub.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    reference = tmp_path / "reference"
    shutil.copytree(hub.dir, reference)
    ref_db = connect(reference / DB_NAME)
    rollover_run.run(ref_db, hub.ids["season"], scene.new["season"], NOW)  # uninterrupted, in process
    expected = _items(ref_db)
    ref_db.close()
    args = ("hub", "rollover", "run", "--data", str(hub.dir), *SEASONS, *RENEWAL, "--chunk", "2")
    watch = _open(hub.dir / DB_NAME)
    # life 1: killed mid-run, right after its first progress line
    proc = subprocess.Popen([*TESSERA, *args], cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _kill_at_first_progress(proc)
    row = watch.execute("SELECT state, done, total FROM rollover_runs").fetchone()
    assert row["state"] == "planning" and 0 < row["done"] < row["total"]
    stored = watch.execute("SELECT count(*) AS n FROM rollover_items").fetchone()["n"]
    assert 0 < stored < len(expected)
    # life 2: killed at a seeded random moment (or it finishes first: either is fine)
    proc = subprocess.Popen([*TESSERA, *args], cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    killer = threading.Timer(random.Random(17).uniform(0.2, 1.0), proc.kill)
    killer.start()
    proc.wait()
    killer.cancel()
    # life 3: to the end
    done = tessera(*args)
    assert "holding seats: 100%" in done.stderr
    got = _items(watch)
    assert got == expected  # nothing missing, nothing doubled, the same decisions
    run_row = watch.execute("SELECT * FROM rollover_runs").fetchone()
    assert (run_row["state"], run_row["done"], run_row["total"]) == ("held", len(expected), len(expected))
    holds = watch.execute("SELECT h.hold_id, count(*) AS n FROM seat_holds h WHERE h.holder = ? GROUP BY h.hold_id",
                          (rollover_run.holder_of(run_row["id"]),)).fetchall()
    per_item = {r["hold_id"]: len(json.loads(r["seats"])) for r in watch.execute(
        "SELECT hold_id, seats FROM rollover_items WHERE hold_id IS NOT NULL")}
    assert {h["hold_id"]: h["n"] for h in holds} == per_item  # every item's seats held, no stray hold
    watch.close()
