"""Redemption claims: which desk is redeeming a bearer voucher, agreed on the LAN (issue 15).

A voucher (an annual-ticket voucher exchanged at a counter, a choice voucher redeemed for a
ticket) is a bearer code, and desks redeem offline. While the hub is away the hub's "first to
arrive wins" comes too late for the customer at the second desk: the ticket is printed. So
before a desk prints, it *claims* the voucher: a small record signed with its node key,
`{"v", "kind", "vouchers", "node_id", "at", "live"}`, kept in its own `redemption_claims` and
sent to its peer desks (edge/desk/claims.py carries them; this module holds the rules).

- A claim is verified like an entry record from a peer gate: the signer's root-signed
  certificate, a desk or counter, valid at the claim's time; the node it names is its signer;
  not more than FUTURE_SKEW in the future (a wrong clock cannot reserve vouchers ahead).
- Per voucher and node only the newest record counts: a later `live: false` record releases a
  claim whose sale failed.
- Of the live claims on one voucher the earliest wins, then the smaller node id: every desk
  that holds the same records picks the same winner, so of two desks claiming at once exactly
  one goes on.
- Claims are only the LAN's shortcut while the hub is away: the redemption itself is decided
  by the hub when the op arrives, and the replicated redemptions refuse a used voucher at every
  synced desk. Claims are therefore kept KEEP_DAYS and never leave the LAN.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.base.clock import LOCAL_TZ, iso, iso_ms, parse_iso
from core.base.errors import Conflict, ValidationError
from core.base.storage import transaction
from core.cards.cards import NodeSigner
from core.cards.trust import BadRecord, TrustStore, open_envelope, sign

PURPOSE = "redemption-claim"
KINDS = ("choice_voucher", "annual_voucher")
CLAIM_SIGNERS = frozenset({"cashdesk", "counter"})
MAX_VOUCHERS = 50  # per claim: a redemption names a handful of vouchers
MAX_ID = 64
FUTURE_SKEW = dt.timedelta(minutes=5)
KEEP_DAYS = 30
_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")  # iso_ms: text order is time order

# Where this node's database records a voucher's use, per kind (fixed names, never from input).
_REDEEMED = {
    "annual_voucher": "SELECT voucher_id FROM voucher_redemptions WHERE voucher_id = ?",
    "choice_voucher": "SELECT voucher_id FROM choice_voucher_redemptions WHERE voucher_id = ?",
}


@dataclass(frozen=True, slots=True)
class Claim:
    """A verified (or own) claim record."""

    kind: str
    vouchers: tuple[str, ...]
    node_id: str
    node_name: str
    claimed_at: str
    live: bool
    record: str


def check_request(kind: str, vouchers: Sequence[str]) -> tuple[str, ...]:
    """The vouchers of a claim this node makes, checked and without repeats (order kept)."""
    if kind not in KINDS:
        raise ValidationError(f"no redemption claims of kind {kind!r} (known: {', '.join(KINDS)})")
    unique = tuple(dict.fromkeys(vouchers))
    if not unique or len(unique) > MAX_VOUCHERS or not all(_an_id(v) for v in unique):
        raise ValidationError(f"a claim names 1 to {MAX_VOUCHERS} voucher ids")
    return unique


def _an_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID


def make(signer: NodeSigner, name: str, kind: str, vouchers: Sequence[str], now: dt.datetime,
         live: bool = True) -> Claim:
    """This node's claim (or, with live=False, its release) of *vouchers*, signed."""
    vouchers = check_request(kind, vouchers)
    body = {"v": 1, "kind": kind, "vouchers": list(vouchers), "node_id": signer.node_id, "at": iso_ms(now),
            "live": live}
    record = sign(signer.private, PURPOSE, body, signer.key_id)
    return Claim(kind, vouchers, signer.node_id, name, body["at"], live, record)


def verify(trust: TrustStore, record: object, now: dt.datetime) -> Claim:
    """A peer's claim record, checked (see the module's docstring); BadRecord otherwise."""
    if not isinstance(record, str) or len(record) > 8192:
        raise BadRecord("a claim record is a string of at most 8 KiB")
    env = open_envelope(record, PURPOSE)
    body = env.body
    vouchers, at, node_id = body.get("vouchers"), body.get("at"), body.get("node_id")
    if (body.get("v") != 1 or body.get("kind") not in KINDS or not isinstance(vouchers, list)
            or not 0 < len(vouchers) <= MAX_VOUCHERS or not all(_an_id(v) for v in vouchers)
            or not isinstance(at, str) or not _AT.fullmatch(at) or not _an_id(node_id)
            or not isinstance(body.get("live"), bool)):
        raise BadRecord("claim record with missing or malformed fields")
    try:
        claimed = parse_iso(at)
    except ValueError:
        raise BadRecord("claim record with a malformed time") from None
    signer = trust.check_record(env, CLAIM_SIGNERS, int(claimed.timestamp() * 1000))
    if signer.node_id != node_id:
        raise BadRecord("claim record names another node than its signer")
    if claimed > now + FUTURE_SKEW:
        raise BadRecord(f"claim at {at}, more than {FUTURE_SKEW} ahead of this node's time")
    return Claim(body["kind"], tuple(dict.fromkeys(vouchers)), node_id, signer.name, at, body["live"], record)


def store(db: sqlite3.Connection, claim: Claim, now: dt.datetime) -> int:
    """Keep *claim* for each of its vouchers where it is newer than what this node holds from
    the same node (a release wins over a claim of the same millisecond); how many rows changed."""
    if parse_iso(claim.claimed_at) < now - dt.timedelta(days=KEEP_DAYS):
        return 0
    changed = 0
    with transaction(db):
        for voucher in claim.vouchers:
            changed += db.execute(
                "INSERT INTO redemption_claims (kind, voucher_id, node_id, node_name, claimed_at, live, record, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, voucher_id, node_id) DO UPDATE SET "
                "node_name = excluded.node_name, claimed_at = excluded.claimed_at, live = excluded.live, "
                "record = excluded.record, received_at = excluded.received_at "
                "WHERE excluded.claimed_at > redemption_claims.claimed_at OR (excluded.claimed_at = "
                "redemption_claims.claimed_at AND excluded.live < redemption_claims.live)",
                (claim.kind, voucher, claim.node_id, claim.node_name, claim.claimed_at, int(claim.live),
                 claim.record, iso(now))).rowcount
    return changed


def held_elsewhere(db: sqlite3.Connection, kind: str, vouchers: Iterable[str], node_id: str) -> dict | None:
    """The earliest live claim another node holds on one of *vouchers*, or None."""
    return min(first_claims_of_others(db, kind, vouchers, node_id), key=lambda r: (r["claimed_at"], r["node_id"]),
               default=None)


def first_claims_of_others(db: sqlite3.Connection, kind: str, vouchers: Iterable[str], node_id: str) -> list[dict]:
    """Per voucher, the winning live claim among those of nodes other than *node_id*."""
    out = []
    for voucher in vouchers:
        row = db.execute("SELECT * FROM redemption_claims WHERE kind = ? AND voucher_id = ? AND live = 1 "
                         "AND node_id <> ? ORDER BY claimed_at, node_id LIMIT 1", (kind, voucher, node_id)).fetchone()
        if row is not None:
            out.append(row)
    return out


def lost_to(db: sqlite3.Connection, claim: Claim) -> list[dict]:
    """Live claims of other nodes that come before *claim* on one of its vouchers: a peer
    answers a claim that loses with these (their signed records go back to the claimant)."""
    return [row for row in first_claims_of_others(db, claim.kind, claim.vouchers, claim.node_id)
            if (row["claimed_at"], row["node_id"]) < (claim.claimed_at, claim.node_id)]


def recent(db: sqlite3.Connection, since: dt.datetime, limit: int) -> list[str]:
    """Claim records (each once, newest first) of the claims and releases since *since*: what
    a peer that appears on the LAN pulls."""
    rows = db.execute("SELECT record, max(claimed_at) AS at FROM redemption_claims WHERE claimed_at >= ? "
                      "GROUP BY record ORDER BY at DESC LIMIT ?", (iso_ms(since), limit))
    return [r["record"] for r in rows]


def redeemed_here(db: sqlite3.Connection, kind: str, vouchers: Iterable[str]) -> set[str]:
    """The vouchers this node's database shows as redeemed (by itself, or by the hub's word):
    their claims are never released, whatever failed after them."""
    sql = _REDEEMED[kind]
    return {v for v in vouchers if db.execute(sql, (v,)).fetchone() is not None}


def prune(db: sqlite3.Connection, now: dt.datetime) -> int:
    """Forget claims older than KEEP_DAYS: by then the hub has the redemptions, and the
    replicated redemptions refuse a used voucher at every desk."""
    with transaction(db):
        return db.execute("DELETE FROM redemption_claims WHERE claimed_at < ?",
                          (iso_ms(now - dt.timedelta(days=KEEP_DAYS)),)).rowcount


def refusal(row: dict) -> Conflict:
    """The refusal of a voucher another desk claimed first, naming that desk and the time."""
    when = parse_iso(row["claimed_at"]).astimezone(LOCAL_TZ)
    name = row["node_name"]
    return Conflict(f"voucher already redeemed at {name} on {when:%Y-%m-%d at %H:%M:%S} (claimed on the LAN); "
                    "a voucher is redeemed only once",
                    detail_de=f"Gutschein wurde bereits an {name} am {when:%d.%m.%Y um %H:%M:%S} Uhr eingelöst "
                              "(im Netz der Kassen gemeldet); ein Gutschein gilt nur einmal",
                    claimed_by=name, claimed_at=row["claimed_at"], voucher_id=row["voucher_id"])
