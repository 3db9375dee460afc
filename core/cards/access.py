"""Entry decisions (A9, A10, B2, E4): may this code pass this gate, now?

`Access.decide()` is the one place that answers. The gate calls `admit()` (decide, then
record the entry), `tessera card verify` calls `decide()` only, and a handheld check will
do the same. The order of the checks is the order of the reason codes below: a code that
is not a card at all is MALFORMED before anything else is looked at, a bad signature is
FORGED before any database row is trusted, and so on.

Everything a decision needs is local: the trust store (certificates, revocations), the
product catalog (admitted venues, validity modes), the cards this node knows (holder name,
current issue number, revocation) and the entries seen here or received from peer gates.

A stolen key outlives its revocation by nothing (DESIGN §5): a card signed by a key revoked
for cause is admitted only when this node knows that very card from sync (the hub had it
before the revocation), whatever time its id claims; a card this node does not know must
be one its signer's certificate lets it issue (`may_issue` venues) with no longer validity
than its product gives (`core.cards.cards.validity_beyond_product`). An entry record counts
only if its time agrees with its id, lies inside its signer's valid time and not before the
card was issued or valid, so no record can start an "N months from the first entry" card
before its sale.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import Annotated

import msgspec
from msgspec import Meta

from core.base import outbox
from core.base.clock import LOCAL_TZ, day_end, iso, parse_iso
from core.base.errors import NotFound, ValidationError
from core.base.ids import uuid7, uuid7_ms
from core.base.sql import others_version
from core.base.storage import transaction
from core.cards import cardcode
from core.cards.cards import validity_beyond_product
from core.cards.performance_rules import PERFORMANCE_KINDS, Window, load_showings, pass_showings, place
from core.cards.trust import CARD_SIGNERS, BadRecord, Envelope, Signer, TrustStore, open_envelope, sign, verify_many
from core.cards.trusted_time import TrustedClock
from core.catalog.annual import add_months

MESSAGES: dict[str, tuple[str, str]] = {
    "ADMITTED": ("Willkommen", "Welcome"),
    "MALFORMED": ("Code nicht lesbar – kein Tessera-Ausweis", "Unreadable code – not a Tessera card"),
    "UNKNOWN_SIGNER": ("Aussteller unbekannt", "Issued by an unknown device"),
    "FORGED": ("Ausweis gefälscht oder beschädigt", "Card forged or damaged"),
    "SIGNER_REVOKED": ("Ausstellendes Gerät gesperrt", "Issuing device has been revoked"),
    "SIGNER_SCOPE": ("Gerät darf diesen Ausweis nicht ausstellen", "Issuing device may not issue this card"),
    "VALIDITY_TOO_LONG": ("Gültigkeit länger als das Produkt erlaubt", "Valid longer than the product allows"),
    "REVOKED": ("Ausweis gesperrt", "Card revoked"),
    "SUPERSEDED": ("Ausweis ersetzt – neuere Karte verwenden", "Card replaced – use the newer card"),
    "NOT_YET_VALID": ("Noch nicht gültig", "Not valid yet"),
    "EXPIRED": ("Abgelaufen", "Expired"),
    "WRONG_VENUE": ("Hier nicht gültig", "Not valid at this venue"),
    "PASSBACK": ("Bereits eingelassen", "Already admitted"),
    "WRONG_PERFORMANCE": ("Keine Vorstellung dieser Karte hier und jetzt", "No performance of this card here now"),
    "TOO_EARLY": ("Zu früh – Einlass beginnt später", "Too early – entry opens later"),
    "TOO_LATE": ("Zu spät – Einlass ist vorbei", "Too late – entry has closed"),
    "ALREADY_ENTERED": ("Für diese Vorstellung bereits eingelassen", "Already admitted to this performance"),
}
REASONS = tuple(code for code in MESSAGES if code != "ADMITTED")
FUTURE_TOLERANCE = dt.timedelta(minutes=5)  # a peer's entry further ahead than this is a wrong clock
ENTRY_ID_SKEW_MS = 2000  # an entry's `at` and its id's time come from one clock reading
ISSUE_SKEW_MS = 5 * 60 * 1000  # a gate's clock may be this far behind the desk that sold the card
ENTRY_SIGNERS = frozenset({"gate", "hub"})
REFRESH_S = 0.5
RECENT_KEPT = 20_000  # own entry records kept in memory for peers (a busy day at one gate)


class GateRules(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What a gate enforces. Configuration, not code: `gate.toml` in the gate's data folder."""

    venue_id: str | None = None  # None: no venue check (a hub or desk checking a card)
    lockout_minutes: int = 30
    exit_scans: bool = False  # when on, an exit scan ends the lockout early
    direction: str = "in"
    entry_before_minutes: int = 120  # passes and single tickets: entry opens this long before the start
    entry_after_minutes: int = 60  # ... and closes this long after it (the signed validity stays the bound)

    def __post_init__(self) -> None:
        if not 0 <= self.lockout_minutes <= 24 * 60:
            raise ValueError("lockout_minutes must be between 0 and 1440")
        for key in ("entry_before_minutes", "entry_after_minutes"):
            if not 0 <= getattr(self, key) <= 24 * 60:
                raise ValueError(f"{key} must be between 0 and 1440")
        if self.direction not in ("in", "out"):
            raise ValueError("direction must be 'in' or 'out'")


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    kind: str
    name: str
    venue_ids: frozenset[str]
    first_entry_months: int | None  # annual tickets valid N months from the first entry


@dataclass
class Verdict:
    admitted: bool
    reason: str  # ADMITTED or one of REASONS
    message_de: str
    message_en: str
    detail: str = ""
    card_id: str | None = None
    card_number: str | None = None
    issue: int | None = None
    kind: str | None = None
    product: str | None = None
    holder: str | None = None
    valid_from: str | None = None
    valid_until: str | None = None
    signer: str | None = None
    venue_id: str | None = None
    checked_at: str | None = None
    entry_id: str | None = None
    first_entry: bool = False
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, "", {}) or k in ("admitted", "reason")}

    def line(self) -> str:
        """One console line for gate staff."""
        who = f" {self.holder}" if self.holder else ""
        what = f" {self.product}" if self.product else ""
        mark = "OK  " if self.admitted else "STOP"
        return f"{mark} {self.reason:<14} {self.message_de} / {self.message_en}{what}{who}".rstrip()


def verdict(reason: str, detail: str = "", **info: object) -> Verdict:
    de, en = MESSAGES[reason]
    return Verdict(admitted=reason == "ADMITTED", reason=reason, message_de=de, message_en=en, detail=detail,
                   **info)  # type: ignore[arg-type]


def load_products(db: sqlite3.Connection) -> dict[int, Product]:
    """Products by card code, with the venues where their cards are valid."""
    products: dict[int, Product] = {}
    rows = db.execute(
        "SELECT c.code, c.product_id, c.kind, a.name AS a_name, a.validity_mode, a.months, "
        "s.name AS s_name, p.title AS p_title, p.venue_id AS p_venue FROM card_products c "
        "LEFT JOIN annual_products a ON a.id = c.product_id "
        "LEFT JOIN subscription_products s ON s.id = c.product_id "
        "LEFT JOIN performances p ON p.id = c.product_id").fetchall()
    annual_venues = _grouped(db, "SELECT product_id, venue_id FROM annual_product_venues")
    sub_venues = _grouped(db, "SELECT sp.product_id, p.venue_id FROM subscription_performances sp "
                              "JOIN performances p ON p.id = sp.performance_id")
    for r in rows:
        if r["a_name"] is not None:
            months = r["months"] if r["validity_mode"] == "from_first_entry" else None
            products[r["code"]] = Product(r["product_id"], r["kind"], r["a_name"],
                                          frozenset(annual_venues.get(r["product_id"], ())), months)
        elif r["s_name"] is not None:
            products[r["code"]] = Product(r["product_id"], r["kind"], r["s_name"],
                                          frozenset(sub_venues.get(r["product_id"], ())), None)
        elif r["p_title"] is not None:
            products[r["code"]] = Product(r["product_id"], r["kind"], r["p_title"], frozenset({r["p_venue"]}), None)
    return products


def _grouped(db: sqlite3.Connection, sql: str) -> dict[str, list[str]]:
    """Rows of (product_id, venue_id) -> venues per product."""
    out: dict[str, list[str]] = {}
    for row in db.execute(sql):
        out.setdefault(row["product_id"], []).append(row["venue_id"])
    return out


def _minute(minutes: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(minutes * 60, dt.UTC)


def _signing_key(record: str) -> int | None:
    """The key id a stored entry record names (None for a row that holds no signed record)."""
    try:
        key = msgspec.json.decode(record).get("k")
    except (msgspec.DecodeError, AttributeError, TypeError):
        return None
    return key if isinstance(key, int) else None


def _same_card(stored_code: str | None, card: cardcode.SignedCard) -> bool:
    """Is the scanned card exactly the one on record (same signed bytes), not merely one
    with its id? A thief's card re-using a known id with another validity is not known."""
    try:
        return stored_code is not None and cardcode.decode(stored_code).raw[:cardcode.SIGNED_LENGTH] == \
            card.raw[:cardcode.SIGNED_LENGTH]
    except cardcode.Malformed:
        return False


class Access:
    """Decisions and entry records for one node. Caches the trust store and the product
    catalog, and reloads both when another process (the sync client) changed the database."""

    def __init__(self, db: sqlite3.Connection, rules: GateRules, clock: TrustedClock | None = None,
                 signer: object | None = None):
        self.db, self.rules = db, rules
        self.clock = clock or TrustedClock(db)
        self.signer = signer  # a core.cards.cards.NodeSigner; needed only to record entries
        self._version: int | None = None
        self._checked = float("-inf")
        self._recent: collections.deque[tuple[str, str]] = collections.deque(maxlen=RECENT_KEPT)
        self._load_recent()
        self.refresh(force=True)

    def refresh(self, *, force: bool = False) -> None:
        """Reload caches if another process committed. Asked at most every REFRESH_S, which is
        how long a revocation pulled by the sync process may take to be seen by a scan."""
        now = time.monotonic()
        if not force and now - self._checked < REFRESH_S:
            return
        self._checked = now
        version = others_version(self.db)
        if force or version != self._version:
            self.trust = TrustStore.load(self.db)
            self.products = load_products(self.db)
            self.showings = load_showings(self.db)
            self._version = version

    # -- deciding -----------------------------------------------------------------------------

    def decide(self, code: str, now: dt.datetime | None = None) -> Verdict:
        """The verdict for *code* at this gate. Never raises for any input text."""
        now = now or self.clock.now()
        try:
            result = self._decide(code, now)
        except cardcode.Malformed as exc:
            result = verdict("MALFORMED", str(exc))
        result.checked_at, result.venue_id = iso(now), self.rules.venue_id
        return result

    def _decide(self, code: str, now: dt.datetime) -> Verdict:
        self.refresh()
        card = cardcode.decode(code)
        p = card.payload
        signer = self.trust.get(p.key_id)
        if signer is None:
            return verdict("UNKNOWN_SIGNER", f"key {p.key_id:08x} is not certified by this organizer")
        if not signer.verifies(card.signature, card.message):
            return verdict("FORGED", "signature does not match the card's contents")
        if signer.role not in CARD_SIGNERS:
            return verdict("UNKNOWN_SIGNER", f"a {signer.role} ({signer.name}) does not issue cards")
        if not cardcode.is_well_formed(card):
            return verdict("MALFORMED", "signed fields out of range")
        if p.kind == "choice_voucher":  # a Wahlgutschein is redeemed for a ticket at the box office
            return verdict("WRONG_VENUE", "a choice voucher is redeemed for a ticket at the box office first")
        info = self._info(card, signer.name)
        if not signer.valid_at(uuid7_ms(p.card_id)):
            why = f"revoked ({signer.revoke_reason})" if signer.revoked_at_ms else "outside its certificate"
            return verdict("SIGNER_REVOKED", f"{signer.name}: signed after the key was {why}", **info)
        local = self.db.execute("SELECT number, holder_name, issue, code, revoked_at, revoke_reason FROM cards "
                                "WHERE id = ?", (p.card_id,)).fetchone()
        known = local is not None and _same_card(local["code"], card)
        if signer.compromised and not known:
            return verdict("SIGNER_REVOKED", f"{signer.name}: key revoked ({signer.revoke_reason}) and this card "
                                             "was not on record before the revocation", **info)
        if not known and (refused := self._beyond_issuer(card, signer, info)) is not None:
            return refused
        if local:
            info.update(card_number=local["number"], holder=local["holder_name"])
            if local["revoked_at"]:
                return verdict("REVOKED", local["revoke_reason"] or "", **info)
            if local["issue"] > p.issue:
                return verdict("SUPERSEDED", f"issue {p.issue} replaced by issue {local['issue']}", **info)
        if self.rules.direction == "out":
            return verdict("ADMITTED", "exit", **info)
        return self._validity_venue_passback(card, info, now)

    def _beyond_issuer(self, card: cardcode.SignedCard, signer: Signer, info: dict) -> Verdict | None:
        """A card this node has no record of is judged on what its signer may issue: a
        product of one of the venues in its certificate, valid no longer than the product
        gives a card sold at the card's signing time. (A card on record passed the hub's
        own checks when it was pushed.)"""
        p = card.payload
        product = self.products.get(p.product_code)
        if product is None:
            if signer.venues is None:
                return None  # nothing to check it against; a gate with a venue refuses it as WRONG_VENUE
            return verdict("SIGNER_SCOPE", f"product #{p.product_code} is unknown here; {signer.name} may issue "
                                           "only products of its venues", **info)
        if not signer.may_issue_for(product.venue_ids):
            return verdict("SIGNER_SCOPE", f"{signer.name} may not issue {product.name} (not sold at its venues)",
                           **info)
        sold_at = dt.datetime.fromtimestamp(uuid7_ms(p.card_id) / 1000, dt.UTC)
        try:
            problem = validity_beyond_product(self.db, product.id, p.kind, sold_at, _minute(p.valid_from),
                                              _minute(p.valid_until))
        except NotFound:
            problem = f"{product.name} has no {p.kind} cards"
        except ValidationError as exc:
            problem = exc.detail
        return verdict("VALIDITY_TOO_LONG", problem, **info) if problem else None

    def _info(self, card: cardcode.SignedCard, signer_name: str) -> dict:
        p = card.payload
        product = self.products.get(p.product_code)
        return {"card_id": p.card_id, "issue": p.issue, "kind": p.kind, "signer": signer_name,
                "product": product.name if product else f"product #{p.product_code}",
                "valid_from": iso(_minute(p.valid_from)), "valid_until": iso(_minute(p.valid_until) +
                                                                             dt.timedelta(seconds=59))}

    def _validity_venue_passback(self, card: cardcode.SignedCard, info: dict, now: dt.datetime) -> Verdict:
        p = card.payload
        if now < _minute(p.valid_from):
            return verdict("NOT_YET_VALID", f"valid from {info['valid_from']}", **info)
        until = _minute(p.valid_until) + dt.timedelta(seconds=59)
        product = self.products.get(p.product_code)
        first = None
        if product and product.first_entry_months:
            first = self.first_entry(p.card_id)
            if first is not None:
                local_day = first.astimezone(LOCAL_TZ).date()
                until = min(until, day_end(add_months(local_day, product.first_entry_months) - dt.timedelta(days=1)))
                info["valid_until"] = iso(until)
        if now > until:
            return verdict("EXPIRED", f"valid until {info['valid_until']}", **info)
        venue = self.rules.venue_id
        if p.kind == "voucher":
            return verdict("WRONG_VENUE", "a voucher is exchanged for a card at the counter first", **info)
        if venue is not None:
            if product is None:
                return verdict("WRONG_VENUE", f"product #{p.product_code} is not known at this gate", **info)
            if p.kind in PERFORMANCE_KINDS:
                return self._performance_entry(p.card_id, product, venue, info, now)
            if venue not in product.venue_ids:
                return verdict("WRONG_VENUE", f"{product.name} is not valid at this venue", **info)
            last = self._last_scan(p.card_id, venue, now)
            if last and (last["direction"] == "in" or not self.rules.exit_scans):
                return verdict("PASSBACK", f"entered at {last['at']} (lockout {self.rules.lockout_minutes} min)",
                               **info)
        result = verdict("ADMITTED", **info)
        result.first_entry = bool(product and product.first_entry_months and first is None)
        return result

    def _performance_entry(self, card_id: str, product: Product, venue: str, info: dict,
                           now: dt.datetime) -> Verdict:
        """A pass or single ticket at a gate: the performance now at this venue
        (`performance_rules.place`), then once per performance, whatever the lockout."""
        own = pass_showings(self.db, card_id, self.showings) if info["kind"] == "subscription" else None
        placed = place(self.showings.get(product.id, []) if own is None else own, venue, now,
                       self.rules.entry_before_minutes, self.rules.entry_after_minutes)
        if placed.window is None:
            return verdict(placed.reason, placed.detail, **info)
        info["extra"] = {"performance_id": placed.window.showing.performance_id,
                         "starts_at": iso(placed.window.showing.starts_at)}
        last = self._scan_in_window(card_id, venue, placed.window, now)
        if last and (last["direction"] == "in" or not self.rules.exit_scans):
            return verdict("ALREADY_ENTERED", f"entered at {last['at']} for the performance at "
                                              f"{info['extra']['starts_at']}", **info)
        return verdict("ADMITTED", **info)

    def _scan_in_window(self, card_id: str, venue_id: str, window: Window, now: dt.datetime) -> dict | None:
        """The latest counted scan of the card at this venue in the window (here or at a peer
        gate: the same `entries` rows PASSBACK reads)."""
        rows = self.db.execute(
            "SELECT direction, at, record FROM entries WHERE card_id = ? AND at >= ? AND at <= ? AND venue_id = ? "
            "ORDER BY at DESC, direction", (card_id, iso(window.opens), iso(min(window.closes, now + FUTURE_TOLERANCE)),
                                            venue_id))
        return next((row for row in rows if self._counts(row)), None)

    def _last_scan(self, card_id: str, venue_id: str, now: dt.datetime) -> dict | None:
        if self.rules.lockout_minutes == 0:
            return None
        since = iso(now - dt.timedelta(minutes=self.rules.lockout_minutes))
        rows = self.db.execute(
            "SELECT direction, at, record FROM entries WHERE card_id = ? AND at >= ? "
            "AND at <= ? AND venue_id = ? ORDER BY at DESC, direction", (card_id, since, iso(now + FUTURE_TOLERANCE),
                                                                        venue_id))
        return next((row for row in rows if self._counts(row)), None)

    def first_entry(self, card_id: str) -> dt.datetime | None:
        """The earliest entry anywhere we know of, never before the card was issued (its id's
        time): a record cannot start the N months before the sale. Two gates offline may each
        see a 'first' entry; once they exchange records the earliest one wins everywhere."""
        rows = self.db.execute("SELECT at, record FROM entries WHERE card_id = ? "
                               "AND direction = 'in' ORDER BY at", (card_id,))
        first = next((row for row in rows if self._counts(row)), None)
        if first is None:
            return None
        return max(parse_iso(first["at"]), dt.datetime.fromtimestamp(uuid7_ms(card_id) / 1000, dt.UTC))

    def _counts(self, entry: dict) -> bool:
        """Does a stored entry count? Not when its key was revoked before its time: records a
        revoked key signed after the revocation have no effect, also those that arrived
        before this node heard of the revocation."""
        signer = self.trust.get(_signing_key(entry["record"]))
        return signer is None or signer.valid_at(int(parse_iso(entry["at"]).timestamp() * 1000))

    # -- recording ----------------------------------------------------------------------------

    def admit(self, code: str) -> tuple[Verdict, str | None]:
        """Decide and, if admitted, record the entry (signed record, outbox op, time floor) in
        one committed transaction. Returns the verdict and the signed record for peers."""
        now = self.clock.now()
        result = self.decide(code, now)
        if not result.admitted:
            return result, None
        record = self.record_entry(result, now)
        return result, record

    def record_entry(self, result: Verdict, now: dt.datetime) -> str:
        if self.signer is None:
            raise RuntimeError("this node has no signing key; it can check cards but not record entries")
        body = {"v": 1, "id": uuid7(int(now.timestamp() * 1000)), "card_id": result.card_id,
                "card_issue": result.issue, "venue_id": self.rules.venue_id or "", "node_id": self.signer.node_id,
                "direction": self.rules.direction, "at": iso(now)}
        record = sign(self.signer.private, "entry", body, self.signer.key_id)
        with transaction(self.db):
            self._store_entry(body, record, now)
            outbox.record(self.db, "entry.recorded", EntryOp(record=record), wall_time=body["at"])
        self.clock.observe(now, "entry")
        result.entry_id = body["id"]
        self._recent.append((body["at"], record))
        return record

    def _store_entry(self, body: dict, record: str, now: dt.datetime) -> bool:
        return store_entry(self.db, body, record, now)

    def accept_entry_record(self, record: str) -> bool:
        """Store an entry a peer gate (or the hub) recorded, if its signature checks out.
        Returns True when it was new. Raises BadRecord for anything not from an enrolled gate."""
        self.refresh()
        return accept_entry(self.db, self.trust, record, self.clock.now())

    def recent_entry_records(self, since: dt.datetime) -> list[str]:
        """This node's own entry records since *since*, for a peer gate that asks (each gate
        serves its own; a peer pulls from every gate it finds)."""
        cutoff = iso(since)
        return [record for at, record in self._recent if at >= cutoff]

    def _load_recent(self) -> None:
        rows = self.db.execute("SELECT wall_time, body FROM outbox WHERE kind = 'entry.recorded' "
                               "ORDER BY node_seq DESC LIMIT ?", (RECENT_KEPT,)).fetchall()
        self._recent.extend((r["wall_time"], msgspec.json.decode(r["body"])["record"]) for r in reversed(rows))


def store_entry(db: sqlite3.Connection, body: dict, record: str, now: dt.datetime) -> bool:
    cursor = db.execute(  # the same record twice: ignored by its key
        "INSERT INTO entries (id, card_id, card_issue, venue_id, node_id, direction, at, record, "
        "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (body["id"], body["card_id"], body["card_issue"], body["venue_id"], body["node_id"], body["direction"],
         body["at"], record, iso(now)))
    return cursor.rowcount == 1


def accept_entry(db: sqlite3.Connection, trust: TrustStore, record: str, now: dt.datetime,
                 node_id: str | None = None) -> bool:
    """Verify a signed entry record (from a peer gate, or pushed to the hub) and store it.
    *node_id*: the record must come from this node (the hub checks the pusher)."""
    env = open_envelope(record, "entry")
    body = env.body
    at_ms, id_ms = _entry_times(body)
    signer = trust.check_record(env, ENTRY_SIGNERS, id_ms)
    if signer.node_id != body["node_id"] or (node_id is not None and node_id != signer.node_id):
        raise BadRecord("entry record names another node than its signer")
    check_entry_times(db, signer, body, at_ms, id_ms)
    with transaction(db):
        return store_entry(db, body, record, now)


def _entry_times(body: dict) -> tuple[int, int]:
    """(`at`, id time) of an entry record body in ms, after a check of its fields' types."""
    try:
        at = parse_iso(body["at"])
        at_ms, id_ms = int(at.timestamp() * 1000), uuid7_ms(body["id"])
        uuid7_ms(body["card_id"])
        if at.tzinfo is None or body["direction"] not in ("in", "out") or type(body["card_issue"]) is not int \
                or not all(isinstance(body[k], str) for k in ("card_id", "venue_id", "node_id")):
            raise ValueError("bad field")
    except (KeyError, ValueError, TypeError, AttributeError):
        raise BadRecord("entry record with missing or malformed fields") from None
    return at_ms, id_ms


def check_entry_times(db: sqlite3.Connection, signer: Signer, body: dict, at_ms: int, id_ms: int) -> None:
    """When an entry record may say it happened, at a peer gate and at the hub alike: at the
    time inside its id (a signer cannot pick one and claim the other), inside its signer's
    valid time (a key revoked at T signs no entry after T), not before the card was issued
    (the card id's time, with ISSUE_SKEW_MS for the gate's clock) and not before the card's
    validity when the card is on record here. Raises BadRecord."""
    if abs(at_ms - id_ms) > ENTRY_ID_SKEW_MS:
        raise BadRecord(f"entry at {body['at']} does not agree with the time inside its id")
    if at_ms < signer.valid_from_ms:
        raise BadRecord(f"entry at {body['at']}, before the gate's certificate")
    if not signer.valid_at(at_ms):
        raise BadRecord(f"entry at {body['at']}, after its key was revoked ({signer.revoke_reason})")
    if at_ms < uuid7_ms(body["card_id"]) - ISSUE_SKEW_MS:
        raise BadRecord(f"entry at {body['at']}, before the card was issued")
    card = db.execute("SELECT valid_from FROM cards WHERE id = ?", (body["card_id"],)).fetchone()
    if card is not None and at_ms < int(parse_iso(card["valid_from"]).timestamp() * 1000):
        raise BadRecord(f"entry at {body['at']}, before the card is valid ({card['valid_from']})")


class EntryOp(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`entry.recorded`: an entry a gate recorded, as its signed record."""

    record: Annotated[str, Meta(max_length=2000)]


ENTRY_ROW = ("id", "card_id", "card_issue", "venue_id", "node_id", "direction", "at")


def check_entry_signatures(trust: TrustStore, records: list[object]) -> dict[str, tuple[Envelope, bool]]:
    """The signatures of many pushed entry records, checked at once on every core
    (`verify_many`): record text -> (its parsed envelope, whether its signer's key signed it).
    Records that are not well-formed or name an unknown key are left out;
    `verify_pushed_entry` refuses them."""
    items, envelopes = [], {}
    for record in records:
        if not isinstance(record, str):
            continue
        try:
            env = open_envelope(record, "entry")
        except BadRecord:
            continue
        signer = trust.get(env.key_id)
        if signer is not None and signer.public_raw:
            items.append((signer.public_raw, env.message, env.signature))
            envelopes[record] = env
    return {record: (env, ok) for (record, env), ok in zip(envelopes.items(), verify_many(items), strict=True)}


def verify_pushed_entry(db: sqlite3.Connection, trust: TrustStore, node_id: str, venue_ids: list[str],
                        record: str, received: dt.datetime,
                        checked: dict[str, tuple[Envelope, bool]] | None = None) -> tuple:
    """Hub: an entry a gate pushed, checked as a peer gate would (`check_entry_times`) and
    more: signed by a gate key of the pushing node, at a venue in that gate's scope, not
    ahead of the push. Returns the `entries` row (ENTRY_ROW + record + received_at); raises
    BadRecord. *checked*: `check_entry_signatures` of the push (parsed and verified once)."""
    env, verified = (checked or {}).get(record) or (open_envelope(record, "entry"), None)
    body = env.body
    at_ms, id_ms = _entry_times(body)
    signer = trust.check_record(env, frozenset({"gate"}), id_ms, verified)
    if signer.node_id != node_id or body["node_id"] != node_id:
        raise BadRecord("entry record not signed by a gate key of this node")
    if body["venue_id"] not in venue_ids:
        raise BadRecord(f"entry at venue {body['venue_id'] or '(none)'}, outside this gate's venues")
    if at_ms > (received + FUTURE_TOLERANCE).timestamp() * 1000:
        raise BadRecord(f"entry at {body['at']} lies ahead of its push")
    check_entry_times(db, signer, body, at_ms, id_ms)
    return (*(body[c] for c in ENTRY_ROW), record, iso(received))


def verdict_json(result: Verdict) -> str:
    return json.dumps(result.as_dict(), ensure_ascii=False, indent=2)
