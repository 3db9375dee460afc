"""Gate benchmark: the cost of one scan (decode + verify + rules + record) against its budget.

DESIGN.md section 9: a scan at the turnstile may cost at most 3x one bare Ed25519 verify plus
one SQLite commit, both measured in the same run on the same machine and disk. The scan is
`Access.admit()` exactly as `edge/gate/loop.py` calls it: decode the code, verify its signature
against the trust store, look the card up (revocation, re-issue), check validity, venue and
passback, then sign the entry record and commit it with its outbox row and the time floor in
one transaction on a gate database opened like a real gate's (WAL, synchronous=FULL).

The gate database holds what a busy season leaves behind: 100,000 cards signed by the hub,
10,000 of them revoked, and 10,000 older entries. Every measured admit is a different valid
card, so every one is a real entry and a real commit (no passback shortcut).

Baselines, measured in the same run and interleaved with the scans in alternating block order
so slow drift of the machine hits all of them alike:
- verify: `Ed25519PublicKey.verify(signature, message)` on real card messages (52 bytes);
- commit: `BEGIN IMMEDIATE; INSERT one row; COMMIT` on a sibling database file in the gate's
  folder, opened the same way (WAL, synchronous=FULL), so it pays the same fsync.
The figure that counts is median(admit) / (median(verify) + median(commit)). Absolute times,
the p99 against SPEC E5's "well under 100 ms", scans per second on one core (from the median,
and from a sustained loop timed end to end) and `decide()` alone for a valid, a revoked and a
malformed code are reported as context, and `decide()` for a season pass and a single ticket
at a theatre gate (issue 14: the performance now, its entry window, an earlier entry in it) half
an hour before a ring performance starts.

Then the real gate (scan loop and peer endpoints in one process) admits more cards with and
without four clients flooding its peer endpoints from the LAN (bench/peer_flood.py): p99 scan
latency quiet and flooded, and `scan_p99_flood_vs_quiet` against DESIGN §9's "p99 unchanged
under a peer flood" (budget `peer_flood.FLOOD_BUDGET` = 1.5x).
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bench import peer_flood
from bench.procs import BenchError
from bench.report import figure
from core.base.clock import iso, utcnow
from core.base.ids import uuid7
from core.base.node import NODE_DB, this_node
from core.base.storage import connect, transaction
from core.cards import cardcode, cards
from core.cards.access import Access, GateRules
from edge.node_data import gate_rules, write_gate_rules
from hub import sample
from hub.app import init_hub, make_app
from hub.client import LocalClient
from hub.services import provisioning

NAME = "gate"
VENUE = "Stadtmuseum"
SCAN_BUDGET = 3.0  # x (one bare Ed25519 verify + one SQLite commit)
LATENCY_BUDGET_MS = 100.0  # SPEC E5: "well under 100 ms of our own time"
SCRATCH_DB = "bench-scratch.sqlite"
HISTORY_RECORD = "bench-history"  # stand-in for the signed record of an older entry
# Full length, right alphabet, but format version 0: the code is decoded to bytes before it is
# refused: the most work a malformed code can cause.
MALFORMED = cardcode.encode_text(bytes(cardcode.LENGTH))
BLOCKS = ("verify", "commit", "admit", "decide_valid", "decide_revoked", "decide_malformed", "decide_pass",
          "decide_ticket")
RING = ("Abo-Ring A", "A")  # the sample theatre's ring whose pass and last date's ticket are decided


@dataclass(frozen=True)
class Size:
    """How much data the gate holds and how many operations are timed."""

    cards: int = 100_000
    revoked: int = 10_000
    history: int = 10_000  # older entries (outside the passback lockout)
    rounds: int = 80  # interleaved rounds; each runs one block of every kind
    per_block: dict[str, int] = field(default_factory=lambda: {
        "verify": 50, "commit": 25, "admit": 25, "decide_valid": 15, "decide_revoked": 15, "decide_malformed": 15,
        "decide_pass": 15, "decide_ticket": 15})
    warmup: int = 20  # untimed operations of each kind before the rounds
    sustained: int = 2_000  # admits in one loop timed end to end
    flood_scans: int = 1000  # admits at the real gate, half of them during a peer flood
    flood_blocks: int = 10  # quiet and flooded blocks, alternating (this many of each): load from
    # elsewhere on a shared machine comes in spells of seconds, and short blocks share it out evenly
    flood_gap_ms: float = 5.0  # between two scans, as at a turnstile (never back to back)

    @classmethod
    def tiny(cls, scans: int = 50) -> Size:
        """For the smoke test: a small database and *scans* timed admits in all."""
        rounds = 2
        per_block = {"verify": 5, "commit": 5, "admit": scans // (2 * rounds), "decide_valid": 3,
                     "decide_revoked": 3, "decide_malformed": 3, "decide_pass": 3, "decide_ticket": 3}
        return cls(cards=2_000, revoked=200, history=200, rounds=rounds, per_block=per_block, warmup=2,
                   sustained=scans - rounds * per_block["admit"], flood_scans=16, flood_blocks=2)

    @property
    def admits(self) -> int:
        return self.warmup + self.rounds * self.per_block["admit"] + self.sustained

    @property
    def valid_needed(self) -> int:
        """Distinct valid cards the run uses: each admitted once, plus a few only decided."""
        return self.admits + self.warmup + self.per_block["decide_valid"] + self.flood_scans


@dataclass(frozen=True)
class Theatre:
    """A season pass and a single ticket on record at the gate, the theatre's venue and the
    moment they are decided at (30 minutes before the ring's last performance)."""

    venue_id: str
    at: dt.datetime
    pass_code: str
    ticket_code: str


@dataclass
class Prepared:
    gate_dir: Path
    venue_id: str
    public_key: Ed25519PublicKey  # the hub's card-signing key, for the bare verify baseline
    scan_codes: list[str]  # valid and distinct, no entry within the lockout: each is admitted once
    check_codes: list[str]  # valid cards that are only decided, never admitted
    revoked_codes: list[str]
    flood_codes: list[str] = field(default_factory=list)  # admitted by the real gate, quiet and flooded
    theatre: Theatre | None = None  # a pass and a ticket decided at the theatre's gate

    @property
    def gate_db(self) -> Path:
        return self.gate_dir / NODE_DB


@dataclass
class Results:
    size: Size
    samples: dict[str, list[list[int]]]  # per kind, per round: nanoseconds per operation
    sustained_s: float
    sustained_scans: int
    admitted_ids: list[str]  # entry ids of every admit in this run

    def all(self, kind: str) -> list[int]:
        return [ns for block in self.samples[kind] for ns in block]


def say(message: str) -> None:
    print(f"bench {NAME}: {message}", file=sys.stderr, flush=True)


def run(size: Size | None = None) -> list[dict]:
    size = size or Size()
    with tempfile.TemporaryDirectory(prefix="tessera-bench-gate-") as tmp:
        prepared = prepare(Path(tmp), size)
        results = measure(prepared, size)
        flood = measure_flood(prepared, size)
    return report(results, flood)


# -- setup ----------------------------------------------------------------------------------------

def prepare(work: Path, size: Size, seed: int = 2026) -> Prepared:
    """A hub with the sample catalog, a gate folder provisioned from it, and the gate's database
    filled with cards, revocations and older entries (bulk inserts, not the issuing API)."""
    if size.cards - size.revoked < size.valid_needed:
        raise BenchError(f"{size.cards} cards with {size.revoked} revoked are too few for {size.valid_needed} scans")
    started = time.perf_counter()
    hub_dir, gate_dir = work / "hub", work / "gate"
    hub, _token = init_hub(hub_dir)
    try:
        ids = sample.build(LocalClient(make_app(hub)))
        for product_id in ids["annual_products"]:  # the gate must know every product's card code
            cards.product_code(hub, product_id, "annual")
        product_id = ids["annual_products"][0]  # 12 months from purchase, every museum venue
        code = cards.product_code(hub, product_id, "annual")
        signer = cards.load_signer(hub, hub_dir)
        now = utcnow()
        valid_from, valid_until = cards.default_validity(hub, product_id, "annual", now)
        theatre_rows, theatre = theatre_cards(hub, ids, signer, now)
    finally:
        hub.close()
    venues = ids["museum_venues"]
    provisioning.provision(gate_dir, hub_dir, name="gate-bench", role="gate")
    write_gate_rules(gate_dir, GateRules(venue_id=venues[VENUE]))
    say(f"hub and gate folder ready ({time.perf_counter() - started:.1f} s); signing {size.cards:,} cards")

    rng = random.Random(seed)
    revoked_at = set(rng.sample(range(size.cards), size.revoked))
    rows, valid, revoked = [], [], []
    stamp = iso(now)
    for i in range(size.cards):
        card_id = uuid7()
        text = cards.sign_card(signer, card_id=card_id, code=code, kind="annual", valid_from=valid_from,
                               valid_until=valid_until, issue=1)
        is_revoked = i in revoked_at
        rows.append((card_id, f"C-{now.year}-{i + 1:06d}", product_id, "annual", f"Besucher {i + 1}",
                     iso(valid_from), iso(valid_until), signer.key_id, text, signer.node_id, stamp,
                     stamp if is_revoked else None, "Verlust gemeldet" if is_revoked else None, stamp, stamp))
        (revoked if is_revoked else valid).append((card_id, text))
        if (i + 1) % 25_000 == 0:
            say(f"  {i + 1:,} cards signed ({time.perf_counter() - started:.1f} s)")

    db = connect(gate_dir / NODE_DB, edge=True)
    try:
        gate_node = this_node(db)["id"]
        history = history_entries(rng, [row[0] for row in rows], venues, gate_node, now, size.history)
        with transaction(db):
            db.executemany(
                "INSERT INTO cards (id, number, product_id, kind, holder_name, valid_from, valid_until, issue, "
                "key_id, code, issued_by, issued_at, revoked_at, revoke_reason, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)", rows + theatre_rows)
            db.executemany(
                "INSERT INTO entries (id, card_id, card_issue, venue_id, node_id, direction, at, record, "
                "received_at) VALUES (?, ?, 1, ?, ?, 'in', ?, ?, ?)", history)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # start the measurement with an empty WAL
        counts = db.execute("SELECT (SELECT count(*) FROM cards) AS cards, (SELECT count(*) FROM cards WHERE "
                            "revoked_at IS NOT NULL) AS revoked, (SELECT count(*) FROM entries) AS entries"
                            ).fetchone()
    finally:
        db.close()
    say(f"gate database: {counts['cards']:,} cards, {counts['revoked']:,} revoked, {counts['entries']:,} entries "
        f"({time.perf_counter() - started:.1f} s)")

    rng.shuffle(valid)
    codes = [text for _, text in valid]
    n_scan, n_flood = size.admits, size.flood_scans
    return Prepared(gate_dir=gate_dir, venue_id=venues[VENUE], public_key=signer.private.public_key(),
                    scan_codes=codes[:n_scan], check_codes=codes[n_scan:size.valid_needed - n_flood],
                    revoked_codes=[text for _, text in revoked],
                    flood_codes=codes[size.valid_needed - n_flood:size.valid_needed], theatre=theatre)


def theatre_cards(hub, ids: dict, signer: cards.NodeSigner, now: dt.datetime) -> tuple[list[tuple], Theatre]:
    """A pass of the ring and a single ticket of its last date, as `cards` rows for the gate."""
    ring, last = ids["subscriptions"][RING[0]], ids["rings"][RING[1]][-1]
    perf = hub.execute("SELECT venue_id, starts_at FROM performances WHERE id = ?", (last,)).fetchone()
    rows, codes = [], []
    for n, (product_id, kind) in enumerate(((ring, "subscription"), (last, "single")), start=1):
        valid_from, valid_until = cards.default_validity(hub, product_id, kind, now)
        card_id, stamp = uuid7(), iso(now)
        text = cards.sign_card(signer, card_id=card_id, code=cards.product_code(hub, product_id, kind), kind=kind,
                               valid_from=valid_from, valid_until=valid_until, issue=1)
        rows.append((card_id, f"T-{now.year}-{n:06d}", product_id, kind, "Abonnentin", iso(valid_from),
                     iso(valid_until), signer.key_id, text, signer.node_id, stamp, None, None, stamp, stamp))
        codes.append(text)
    at = dt.datetime.fromisoformat(perf["starts_at"].replace("Z", "+00:00")) - dt.timedelta(minutes=30)
    return rows, Theatre(perf["venue_id"], at, codes[0], codes[1])


def history_entries(rng: random.Random, card_ids: list[str], venues: dict[str, str], gate_node: str,
                    now: dt.datetime, count: int) -> list[tuple]:
    """Older entries at this and the other museums, all before the passback lockout window,
    some by this gate and some by peers; their records are short stand-ins."""
    peers = [uuid7() for _ in range(3)]
    here = venues[VENUE]
    others = [v for name, v in venues.items() if name != VENUE]
    out = []
    for _ in range(count):
        at = now - dt.timedelta(hours=1) - dt.timedelta(seconds=rng.randrange(90 * 24 * 3600))
        at_here = rng.random() < 0.6
        stamp = iso(at)
        out.append((uuid7(int(at.timestamp() * 1000)), rng.choice(card_ids), here if at_here else rng.choice(others),
                    rng.choice([gate_node, *peers]) if at_here else rng.choice(peers), stamp, HISTORY_RECORD, stamp))
    return out


# -- measurement ----------------------------------------------------------------------------------

def measure(prepared: Prepared, size: Size) -> Results:
    """Time every kind of operation in interleaved blocks (order reversed every other round)."""
    db = connect(prepared.gate_db, edge=True)
    scratch = connect(prepared.gate_dir / SCRATCH_DB, edge=True, migrate=False)
    theatre_db = connect(prepared.gate_db, edge=True)  # a second gate of the same data, at the theatre
    try:
        rules = gate_rules(prepared.gate_dir)
        if rules.venue_id != prepared.venue_id:
            raise BenchError("gate.toml does not name the benchmark's venue")
        access = Access(db, rules, signer=cards.load_signer(db, prepared.gate_dir))
        scratch.execute("CREATE TABLE IF NOT EXISTS scratch (id INTEGER PRIMARY KEY, at TEXT NOT NULL, "
                        "body TEXT NOT NULL)")
        ops = Operations(access, scratch, prepared, Access(theatre_db, GateRules(venue_id=prepared.theatre.venue_id)))
        for kind in BLOCKS:  # warm up: first-use costs (statement cache, page cache) stay out of the figures
            ops.run(kind, size.warmup)
        samples: dict[str, list[list[int]]] = {kind: [] for kind in BLOCKS}
        say(f"timing {size.rounds} interleaved rounds")
        for round_no in range(size.rounds):
            for kind in BLOCKS if round_no % 2 == 0 else reversed(BLOCKS):
                samples[kind].append(ops.run(kind, size.per_block[kind]))
        say(f"timing {size.sustained:,} admits back to back")
        started = time.perf_counter()
        ops.run("admit", size.sustained)
        sustained_s = time.perf_counter() - started
    finally:
        scratch.close()
        theatre_db.close()
        db.close()
    return Results(size=size, samples=samples, sustained_s=sustained_s, sustained_scans=size.sustained,
                   admitted_ids=ops.admitted_ids)


def measure_flood(prepared: Prepared, size: Size) -> peer_flood.FloodResults:
    """p99 scan latency at the real gate, quiet and under a 4-client peer flood."""
    say(f"timing {size.flood_scans} scans at the real gate, half of them under a {peer_flood.CLIENTS}-client "
        "peer flood")
    return peer_flood.measure(prepared.gate_dir, prepared.flood_codes, size.flood_blocks, size.flood_gap_ms / 1000)


class Operations:
    """One method per kind of timed operation; each checks its outcome, so a benchmark that
    silently measured refusals (or nothing) cannot happen."""

    def __init__(self, access: Access, scratch, prepared: Prepared, theatre: Access):
        self.access, self.scratch, self.theatre, self.at_theatre = access, scratch, theatre, prepared.theatre
        self.public_key = prepared.public_key
        self.scan_codes = iter(prepared.scan_codes)
        self.check_codes = prepared.check_codes
        self.revoked_codes = prepared.revoked_codes
        self.messages = [(c.signature, c.message) for c in map(cardcode.decode, prepared.revoked_codes[:100])]
        self.admitted_ids: list[str] = []
        self.count = 0

    def run(self, kind: str, n: int) -> list[int]:
        op = getattr(self, kind)
        clock = time.perf_counter_ns
        times = []
        for _ in range(n):
            self.count += 1
            times.append(op(clock))
        return times

    def verify(self, clock) -> int:
        signature, message = self.messages[self.count % len(self.messages)]
        start = clock()
        self.public_key.verify(signature, message)
        return clock() - start

    def commit(self, clock) -> int:
        db, at = self.scratch, iso(utcnow())
        start = clock()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO scratch (at, body) VALUES (?, ?)", (at, "bench"))
        db.execute("COMMIT")
        return clock() - start

    def admit(self, clock) -> int:
        code = next(self.scan_codes, None)
        if code is None:
            raise BenchError("ran out of distinct valid cards to scan")
        start = clock()
        result, record = self.access.admit(code)
        elapsed = clock() - start
        if not result.admitted or record is None or result.entry_id is None:
            raise BenchError(f"a valid card was refused: {result.reason} {result.detail}")
        self.admitted_ids.append(result.entry_id)
        return elapsed

    def _decide(self, clock, code: str, expected: str) -> int:
        start = clock()
        result = self.access.decide(code)
        elapsed = clock() - start
        if result.reason != expected:
            raise BenchError(f"expected {expected}, the gate said {result.reason} {result.detail}")
        return elapsed

    def decide_valid(self, clock) -> int:
        return self._decide(clock, self.check_codes[self.count % len(self.check_codes)], "ADMITTED")

    def decide_revoked(self, clock) -> int:
        return self._decide(clock, self.revoked_codes[self.count % len(self.revoked_codes)], "REVOKED")

    def decide_malformed(self, clock) -> int:
        return self._decide(clock, MALFORMED, "MALFORMED")

    def _decide_at_theatre(self, clock, code: str) -> int:
        start = clock()
        result = self.theatre.decide(code, self.at_theatre.at)
        elapsed = clock() - start
        if not result.admitted:
            raise BenchError(f"a valid {result.kind} was refused at the theatre: {result.reason} {result.detail}")
        return elapsed

    def decide_pass(self, clock) -> int:
        return self._decide_at_theatre(clock, self.at_theatre.pass_code)

    def decide_ticket(self, clock) -> int:
        return self._decide_at_theatre(clock, self.at_theatre.ticket_code)


# -- report ---------------------------------------------------------------------------------------

def p99(values: list[int]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else float(values[0])


def iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    quartiles = statistics.quantiles(values, n=4, method="inclusive")
    return quartiles[2] - quartiles[0]


def report(results: Results, flood: peer_flood.FloodResults | None = None) -> list[dict]:
    med = {kind: statistics.median(results.all(kind)) for kind in BLOCKS}  # ns
    baseline = med["verify"] + med["commit"]
    per_round = [statistics.median(a) / (statistics.median(v) + statistics.median(c)) for a, v, c in
                 zip(results.samples["admit"], results.samples["verify"], results.samples["commit"], strict=True)]
    ratio = med["admit"] / baseline
    return [
        figure(NAME, "scan_vs_verify_plus_commit", ratio, "x (verify + commit)", SCAN_BUDGET, "cost"),
        # How much the per-round ratios disagree (interquartile range; with this many rounds max - min
        # only shows the round that caught a WAL checkpoint): a large value means a busy machine.
        figure(NAME, "scan_vs_verify_plus_commit_iqr", iqr(per_round) / statistics.median(per_round),
               "fraction of median"),
        figure(NAME, "scan_median_ms", med["admit"] / 1e6, "ms"),
        figure(NAME, "scan_p99_ms", p99(results.all("admit")) / 1e6, "ms", LATENCY_BUDGET_MS, "cost"),
        figure(NAME, "scans_per_s_one_core", 1e9 / med["admit"], "scans/s (1 / median)"),
        figure(NAME, "scans_per_s_sustained", results.sustained_scans / results.sustained_s,
               f"scans/s ({results.sustained_scans} back to back)"),
        figure(NAME, "baseline_verify_us", med["verify"] / 1e3, "us"),
        figure(NAME, "baseline_commit_us", med["commit"] / 1e3, "us"),
        figure(NAME, "decide_valid_us", med["decide_valid"] / 1e3, "us (no entry recorded)"),
        figure(NAME, "decide_revoked_us", med["decide_revoked"] / 1e3, "us"),
        figure(NAME, "decide_malformed_us", med["decide_malformed"] / 1e3, "us"),
        figure(NAME, "decide_pass_us", med["decide_pass"] / 1e3, "us (season pass at the theatre, no entry recorded)"),
        figure(NAME, "decide_ticket_us", med["decide_ticket"] / 1e3, "us (single ticket at the theatre)"),
    ] + (flood_figures(flood) if flood else [])


def flood_figures(flood: peer_flood.FloodResults) -> list[dict]:
    quiet, flooded = peer_flood.p99(flood.quiet_ns) / 1e6, peer_flood.p99(flood.flood_ns) / 1e6
    refused = sum(flood.door_refused.values())
    return [
        figure(NAME, "scan_p99_quiet_ms", quiet, f"ms (real gate, {len(flood.quiet_ns)} scans, no flood)"),
        figure(NAME, "scan_p99_flood_ms", flooded,
               f"ms (real gate, {len(flood.flood_ns)} scans, {peer_flood.CLIENTS}-client peer flood)"),
        figure(NAME, "scan_p99_flood_vs_quiet", flooded / quiet,
               "x (p99 flooded / p99 quiet; DESIGN 9: p99 unchanged under a peer flood)", peer_flood.FLOOD_BUDGET,
               "cost"),
        figure(NAME, "scan_median_flood_vs_quiet", statistics.median(flood.flood_ns) /
               statistics.median(flood.quiet_ns), "x (median flooded / median quiet)"),
        figure(NAME, "flood_requests_per_s", flood.requests / flood.flood_s,
               f"requests/s answered ({dict(sorted((str(k), v) for k, v in flood.answers.items()))})"),
        figure(NAME, "flood_refused_at_door", refused,
               f"requests ({dict(sorted(flood.door_refused.items()))}; let in: {flood.door_admitted})"),
    ]
