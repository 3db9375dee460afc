"""`kill -9` of `tessera edge serve` at random moments during sales and sync, 20 rounds (E2):
every sale the edge acknowledged (201) survives on the edge and reaches the hub exactly once,
no seat is sold twice, and the edge database passes `PRAGMA integrity_check` after every kill.

Everything is a real process as a user runs it: `tessera hub serve`, `tessera hub enroll`,
`tessera edge enroll`, `tessera edge serve` and `tessera edge status`, over HTTP on loopback.
The moments are chosen by a seeded random generator: right after a sale's answer (the sync
woken by the sale is starting), a little later (push or pull under way), in the middle of a
sale request, or soon after start (catalog pull, push of what the last life left behind).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import queue
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.base.clock import parse_iso, utcnow
from core.base.node import NODE_DB
from core.base.storage import connect
from core.sales import contingents
from hub.app import DB_NAME

pytestmark = pytest.mark.slow  # kill -9 rounds of a real tessera edge

TESSERA = [sys.executable, "-m", "cli.main"]
ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 7  # the first life, then every mode at least once in a seeded order
SEED = 20261123
POOL_SEATS = 300
MODES = ("after_sale", "syncing", "mid_request", "mid_request", "startup")  # a kill mid-request rarely hits


def env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}


def run(*args: str) -> str:
    proc = subprocess.run([*TESSERA, *args], capture_output=True, text=True, cwd=ROOT, timeout=60, env=env())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def run_here(*args: str) -> str:
    """`tessera ARGS` run by cli.main.main in this process, its stdout: for setup steps (enroll,
    add an operator), without a Python start-up and the hub's imports (~1.5 s each, more under
    load). The processes under test (hub and edge serve) stay real processes."""
    import contextlib
    import io

    from cli.main import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(list(args))
    assert code == 0, err.getvalue()
    return out.getvalue()


class Process:
    """A `tessera ... serve` in the background; its stdout is read by a thread (so it never
    blocks), its stderr goes to a log file."""

    def __init__(self, log: Path, *args: str, ready: str) -> None:
        self.log = log
        with log.open("a") as err:
            self.proc = subprocess.Popen([*TESSERA, *args], stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT,
                                         env=env())
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 30
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{args[:2]} did not start in 30 s: {log.read_text()[-2000:]}") from None
            if line is None:
                raise AssertionError(f"{args[:2]} exited ({self.proc.wait()}): {log.read_text()[-2000:]}")
            if match := re.search(ready, line):
                self.url = match.group(1)
                return

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def ensure_gone(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def call(url: str, method: str, path: str, body: dict | None = None, timeout: float = 10,
         cookie: str = "") -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                     headers={"Content-Type": "application/json", "Cookie": cookie})
        resp = conn.getresponse()
        if method == "POST" and path == "/api/login":
            return resp.status, {"cookie": (resp.getheader("Set-Cookie") or "").split(";")[0]}
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


PIN = "8642"


def log_in(url: str) -> str:
    """The cashier logs in at this life of the desk (sessions die with the process): the
    session cookie. Waits for the operators of the first pull."""
    deadline = time.monotonic() + 30
    while True:
        status, operators = call(url, "GET", "/api/operators")
        if status == 200 and operators:
            break
        assert time.monotonic() < deadline, "the desk never received its operators"
        time.sleep(0.05)
    status, answer = call(url, "POST", "/api/login", {"operator_id": operators[0]["id"], "pin": PIN})
    assert status == 200 and answer["cookie"], (status, answer)
    return answer["cookie"]


def check_edge_db(path: Path, acked: dict[str, dict]) -> dict:
    """After a kill: the file is sound, and every acknowledged sale is in it, tickets and op."""
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        assert [r[0] for r in db.execute("PRAGMA integrity_check")] == ["ok"]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        sales = {r["id"] for r in db.execute("SELECT DISTINCT order_id AS id FROM tickets")}
        assert set(acked) <= sales, f"acknowledged sales lost: {set(acked) - sales}"
        ops = {json.loads(r["body"])["id"] for r in db.execute("SELECT body FROM outbox WHERE kind = 'sale.completed'")}
        assert ops == sales, "a sale without its op, or an op without its sale"
        seqs = [r[0] for r in db.execute("SELECT node_seq FROM outbox ORDER BY node_seq")]
        assert seqs == list(range(1, len(seqs) + 1))
        pushed, cursor = db.execute("SELECT pushed_seq, cursor FROM sync_state").fetchone()
        return {"ops": len(seqs), "waiting": len(seqs) - pushed, "cursor": cursor}
    finally:
        db.close()


def test_kill_9_during_sales_and_sync_loses_nothing_and_doubles_nothing(tmp_path, sample_template):
    rng = random.Random(SEED)  # the plan: when to kill, what the office does
    picks = random.Random(SEED + 1)  # which seats (drawn as often as sales are retried)
    started = time.monotonic()
    hub_dir, desk_dir, log = tmp_path / "hub", tmp_path / "desk", tmp_path / "log.txt"
    shutil.copytree(sample_template[0], hub_dir)
    hub = Process(log, "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise",
                  ready=r"hub API on (http://127\.0\.0\.1:\d+)/api/v1")
    edge: Process | None = None
    try:
        code = run_here("hub", "enroll", "--data", str(hub_dir), "--node", "Kasse K", "--role", "cashdesk").split()[-1]
        out = run_here("edge", "enroll", "--data", str(desk_dir), "--code", code, "--hub", hub.url)
        node_id = re.search(r"\(([0-9a-f-]{36})\)", out).group(1)
        run_here("hub", "operator", "add", "--data", str(hub_dir), "--name", "Kim", "--pin", PIN)
        sessions: dict[str, str] = {}  # desk URL (one per life) -> the cashier's session cookie

        def session(url: str) -> str:
            if url not in sessions:
                sessions[url] = log_in(url)
            return sessions[url]
        # the office gives the desk its contingent, at the hub, while the hub runs
        office = connect(hub_dir / DB_NAME)
        performance = sample_template[2]["performances"][0]
        offered = contingents.seats_of(office, performance)
        house = sorted(offered, key=lambda s: (offered[s]["section"], offered[s]["row_label"], offered[s]["label"]))
        spare = rng.sample(house, POOL_SEATS + 100)
        pool, spare, outside = spare[:POOL_SEATS], spare[POOL_SEATS:-1], spare[-1]
        contingents.move_seats(office, performance, pool, contingents.node_pool(node_id), utcnow())
        recalled: list[str] = []

        acked: dict[str, dict] = {}  # sale id -> the 201 answer
        fresh = list(pool)  # never asked for
        rng.shuffle(fresh)
        unanswered: list[list[str]] = []  # requests cut by the kill: sold or not, nobody knows
        modes: list[str] = []
        waiting_at_kill: list[int] = []  # ops not yet known pushed when the edge died
        cursors: list[int] = []  # the edge's change-feed cursor when it died

        def sell(url: str) -> list[str] | None:
            """One sale of 1-3 fresh seats: its seats on 201, else None. A desk whose catalog or pool has
            not arrived yet (pull still to come) refuses, and the seats go back."""
            seats = [fresh.pop() for _ in range(picks.randint(1, 3))]
            method = picks.choice(["cash", "card"])
            status, body = call(url, "POST", "/api/sales", {"performance_id": performance, "seat_ids": seats,
                                                             "payment_method": method,
                                                             "payment_reference": "T-7" if method == "card" else None},
                                cookie=session(url))
            if status == 201:
                assert sorted(t["seat_id"] for t in body["tickets"]) == sorted(seats)
                acked[body["id"]] = body
                return seats
            assert (status, body["detail"].split(" ")[-1]) == (404, "exist") or \
                (status == 409 and "not in this desk's contingent" in body["detail"]), (status, body)
            fresh.extend(seats)
            time.sleep(0.05)  # a cashier's pause before the next try (up to 40 tries: a poll, nothing asserted on it)
            return None

        # the first life dies pulling the catalog; then each mode once per seeded shuffle, so fewer
        # rounds still cover them all
        schedule = ["startup"] + [m for _ in range(ROUNDS // len(MODES) + 1) for m in rng.sample(MODES, len(MODES))]
        for round_no in range(ROUNDS):
            mode = schedule[round_no]
            modes.append(mode)
            edge = Process(log, "edge", "serve", "--data", str(desk_dir), "--port", "0", "--sync-seconds", "0.2",
                           ready=r"on (http://127\.0\.0\.1:\d+)/api/status")
            if rng.random() < 0.4:
                # meanwhile the office gives the desk more seats or recalls some it has not sold
                # (so the next pulls carry pool changes and recalls, answered by new ops)
                if rng.random() < 0.5:
                    more = [spare.pop() for _ in range(10)]
                    contingents.move_seats(office, performance, more, contingents.node_pool(node_id), utcnow())
                    pool.extend(more)
                    fresh[:0] = more
                else:
                    back = [fresh.pop(0) for _ in range(5)]
                    assert contingents.move_seats(office, performance, back, rng.choice(["hub", "blocked"]),
                                                  utcnow())["recalls"]
                    recalled.extend(back)
            if mode == "startup":
                time.sleep(rng.uniform(0.0, 0.3))  # random kill moments are the behaviour under test (here and below)
            else:
                wanted, sold = rng.randint(1, 4), 0
                for _ in range(40):
                    if sold == wanted - (mode == "mid_request"):
                        break
                    sold += sell(edge.url) is not None
                if mode == "syncing":
                    time.sleep(rng.uniform(0.0, 0.4))
                elif mode == "mid_request":
                    seats = [fresh.pop() for _ in range(picks.randint(1, 3))]
                    cookie = session(edge.url)
                    with concurrent.futures.ThreadPoolExecutor(1) as worker:
                        answer = worker.submit(call, edge.url, "POST", "/api/sales",
                                              {"performance_id": performance, "seat_ids": seats,
                                               "payment_method": "cash"}, cookie=cookie)
                        time.sleep(rng.uniform(0.0, 0.05))
                        edge.kill9()
                        try:
                            status, body = answer.result()
                        except (OSError, http.client.HTTPException):
                            unanswered.append(seats)
                        else:
                            if status == 201:
                                acked[body["id"]] = body
                            else:
                                assert status in (404, 409), (status, body)
            if edge.proc.poll() is None:
                edge.kill9()
            assert edge.proc.returncode == -signal.SIGKILL, "the edge died by itself: see log.txt"
            after_kill = check_edge_db(desk_dir / NODE_DB, acked)
            waiting_at_kill.append(after_kill["waiting"])
            cursors.append(after_kill["cursor"])

        # one last life: it syncs until nothing waits (a pull of this life, every recall answered)
        last_start = utcnow().replace(microsecond=0)
        edge = Process(log, "edge", "serve", "--data", str(desk_dir), "--port", "0", "--sync-seconds", "0.2",
                       ready=r"on (http://127\.0\.0\.1:\d+)/api/status")
        deadline = time.monotonic() + 30
        while True:
            status, st = call(edge.url, "GET", "/api/status")
            open_recalls = office.execute("SELECT count(*) AS n FROM recalls WHERE state = 'requested'").fetchone()
            if status == 200 and st["ops_waiting"] == 0 and st["last_pull_at"] and not st["last_error"] \
                    and parse_iso(st["last_pull_at"]) > last_start and open_recalls["n"] == 0:
                break
            assert time.monotonic() < deadline, st
            time.sleep(0.1)
        status, body = call(edge.url, "POST", "/api/sales", {"performance_id": performance, "seat_ids": [outside],
                                                             "payment_method": "cash"}, cookie=session(edge.url))
        assert status == 409 and "not in this desk's contingent (hub)" in body["detail"]
        cli_status = json.loads(run("edge", "status", "--data", str(desk_dir)))
        assert cli_status["ops_waiting"] == 0 and cli_status["conflicts"] == 0
        assert edge.stop() == 0
        assert hub.stop() == 0
    finally:
        if edge:
            edge.ensure_gone()
        hub.ensure_gone()
        if "office" in locals():
            office.close()

    edge_state = check_edge_db(desk_dir / NODE_DB, acked)
    assert edge_state["waiting"] == 0
    db = connect(desk_dir / NODE_DB, edge=True)
    hub_db = connect(hub_dir / DB_NAME)
    try:
        committed = {r["id"] for r in db.execute("SELECT DISTINCT order_id AS id FROM tickets")}
        # every sale committed on the edge (acknowledged or cut off before its answer) is at the
        # hub exactly once, with its tickets, applied and never rejected
        at_hub = [r["id"] for r in hub_db.execute(
            "SELECT id FROM orders WHERE node_id = ? AND id IN (SELECT order_id FROM tickets)", (node_id,))]
        assert sorted(at_hub) == sorted(committed)
        assert set(acked) <= committed
        for sale_id, sale in acked.items():
            tickets = hub_db.execute("SELECT seat_id FROM tickets WHERE order_id = ? AND status = 'sold'",
                                     (sale_id,)).fetchall()
            assert sorted(t["seat_id"] for t in tickets) == sorted(t["seat_id"] for t in sale["tickets"])
        edge_tickets = db.execute("SELECT count(*) AS n FROM tickets").fetchone()["n"]
        hub_tickets = hub_db.execute("SELECT count(*) AS n FROM tickets t JOIN orders s ON s.id = t.order_id "
                                     "WHERE s.node_id = ?", (node_id,)).fetchone()["n"]
        assert hub_tickets == edge_tickets
        ops = hub_db.execute("SELECT node_seq, op_id, status FROM sync_ops WHERE node_id = ? ORDER BY node_seq",
                             (node_id,)).fetchall()
        outbox = db.execute("SELECT node_seq, id FROM outbox ORDER BY node_seq").fetchall()
        assert [(o["node_seq"], o["op_id"]) for o in ops] == [(o["node_seq"], o["id"]) for o in outbox]
        assert {o["status"] for o in ops} == {"applied"}
        assert hub_db.execute("SELECT count(*) AS n FROM conflicts").fetchone()["n"] == 0
        head = hub_db.execute("SELECT max(seq) AS seq FROM changes").fetchone()["seq"]
        # ops the hub had applied when the edge died before noting it: pushed again, answered duplicate
        duplicates = db.execute("SELECT count(*) AS n FROM outbox WHERE result = 'duplicate'").fetchone()["n"]
        # no seat sold twice, and every sold seat is in the desk's pool at the hub
        doubles = hub_db.execute("SELECT performance_id, seat_id FROM tickets WHERE status = 'sold' "
                                 "GROUP BY performance_id, seat_id HAVING count(*) > 1").fetchall()
        assert doubles == []
        sold = [r["seat_id"] for r in hub_db.execute(
            "SELECT seat_id FROM tickets WHERE performance_id = ? AND status = 'sold'", (performance,))]
        assert set(sold) <= set(pool) - set(recalled)
        # the recalls reached the desk through kills and were answered once: all given back
        recalls = hub_db.execute("SELECT * FROM recalls").fetchall()
        assert [r["state"] for r in recalls] == ["done"] * len(recalls)
        assert sorted(s for r in recalls for s in json.loads(r["released"])) == sorted(recalled)
        assert {contingents.pool_of(hub_db, performance, s) for s in recalled} <= {"hub", "blocked"}
        answers = db.execute("SELECT count(*) AS n FROM outbox WHERE kind = 'pool.released'").fetchone()["n"]
        assert answers == len(recalls)
        assert {contingents.pool_of(hub_db, performance, s) for s in sold} <= {contingents.node_pool(node_id)}
        summary = contingents.summary(hub_db, performance)
        assert sum(p["seats"] for p in summary["pools"]) == summary["seats"] == len(house)
        # the kills did land where they were meant to: with ops waiting, and with none
        assert len(acked) >= ROUNDS // 2 and set(modes) == set(MODES) and recalls
        assert any(waiting_at_kill)
    finally:
        db.close()
        hub_db.close()
    print(f"\n{len(acked)} sales acknowledged, {len(committed) - len(acked)} committed unanswered "
          f"({len(unanswered)} requests cut), {duplicates} ops pushed again after a kill mid-push; "
          f"ops waiting at each kill {waiting_at_kill}; cursor at each kill {cursors} (hub head {head}); "
          f"modes {modes}; {time.monotonic() - started:.1f} s")
