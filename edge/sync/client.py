"""The edge's side of sync (DESIGN §4): push the outbox, pull the change feed.

One round: push every waiting op (in node_seq order, in batches), then, only when the
outbox is empty, pull pages of changes after the cursor, each applied with the cursor in
one transaction; then answer any seat recall the pull brought (which queues new ops for the
next round). Pulling only after everything local has reached the hub means the hub's state
already contains our last sales and releases when we take it over.

Every request is signed with this node's key, with a fresh nonce and the time it was sent
(trusted time plus the offset learnt from the hub's signed time; docs/sync.md "Replay window
and clocks"); push bodies are sealed to the hub's key (core/sync/sealed.py). Every response
must carry the hub's signature over our nonce, by a key with a hub certificate under our
pinned root and no revocation we know of, or it is treated like a network error; a 2xx
answer must be sealed to us. A request interrupted at any byte is simply repeated with a new
nonce: pushes are idempotent at the hub (node_seq) and pulls only move the cursor after a
page is applied. A 426 is believed only when the hub's signed version range excludes ours;
the loop then keeps retrying (the hub may be upgraded any time) while the desk sells on.

The live channel (`run`): while the hub answers, one pull is always held open at the hub
(`wait=LIVE_WAIT_S`, hub/sync/live.py), so a change the hub commits (a revoked card, a moved
seat pool) arrives within a fraction of a second, and the empty answer the hub gives when the
wait ends is the heartbeat: no answer within `LIVE_WAIT_S + LIVE_MARGIN_S` (or a refused or
reset connection) marks the hub unreachable at once. While it is unreachable a cheap signed
probe goes out every `PROBE_S`; the first answer brings the node back online and starts the
backlog moving. Local changes (*wake*) are pushed at once while online and not at all while
the hub is unreachable (a sale then costs no batch encoding); batches are read, encoded,
sealed and signed in a worker thread, on their own read connection, `PUSH_BATCH_OPS` at most.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import msgspec

from core.base import outbox
from core.base.clock import iso, parse_iso, utcnow
from core.base.errors import TesseraError
from core.base.node import this_node
from core.base.storage import connect, transaction
from core.cards import trust as credentials
from core.cards.access import RECENT_KEPT
from core.cards.cards import load_signer
from core.cards.trust import Signer, TrustStore
from core.cards.trusted_time import TrustedClock
from core.sales import contingents
from core.subscriptions import desk_redemption
from core.sync import auth, sealed
from core.sync.messages import PROTOCOL, Op, PullResponse, PushRequest, PushResponse, encoder
from core.sync.replica import apply_changes

log = logging.getLogger("tessera.sync")
PUSH_BATCH_OPS = 5000  # one hub transaction each: fewer, bigger commits (built in a worker thread)
PUSH_BATCH_BYTES = 8 * 1024 * 1024
PULL_LIMIT = 2000
# outbox rows kept after the hub's backup holds them: a desk's recall answers (answer_recalls reads
# them to answer each recall once); a gate also keeps its RECENT_KEPT newest ops (its peers' entries)
KEEP_KINDS = ("pool.released",)
# Signed refusals worth one more, re-stamped and re-sealed try with a new nonce: a clock far off, a hub key
# rotated, or our own request seen twice by the hub (the HTTP layer repeats an idempotent request once
# after a dropped connection, with the same nonce)
SEND_AGAIN = frozenset({"stale-request", "sealed-to-other-key", "replayed-request"})
UPGRADE_PREFIXES = {"hub needs upgrade": "hub", "this device needs upgrade": "edge"}
LIVE_WAIT_S = 1.5  # the hub answers a held pull at the latest after this: the heartbeat
LIVE_MARGIN_S = 1.0  # no answer within LIVE_WAIT_S + this: the hub is gone
CONNECT_S = 1.0  # a hub on the LAN accepts a connection well within this
PROBE_S = 1.0  # while the hub is unreachable: one cheap signed request this often
NOTE_EVERY_S = 20.0  # an unchanged state is written at most this often (status "online" needs < 60 s)


class SyncError(Exception):
    """The hub could not be reached, or did not answer as the real hub."""


class Unreachable(SyncError):
    """No answer from the hub at all (refused, reset, timed out): the loop probes every
    `PROBE_S` instead of backing off, and pushes nothing meanwhile."""


class UpgradeNeeded(SyncError):
    """A signed 426 whose signed version range really excludes ours: one side must be
    upgraded. The sync loop keeps trying (the hub may be upgraded while we wait)."""

    def __init__(self, side: str, detail: str):
        self.side = side
        who = "hub" if side == "hub" else "this device"
        super().__init__(f"{who} needs upgrade: {detail}")


class _SendAgain(SyncError):
    """The real hub refused the request in a way a second, re-stamped or re-sealed, copy
    will pass (a clock far off, a hub key rotated)."""


@dataclass
class RoundResult:
    pushed: int = 0
    rejected: int = 0
    pulled: int = 0
    recalls_answered: int = 0


class SyncClient:
    def __init__(self, db: sqlite3.Connection, data_dir: Path, *, hub_url: str | None = None,
                 timeout_s: float = 15.0, clock: TrustedClock | None = None):
        self.db, self.data_dir = db, Path(data_dir)
        self.node = this_node(db)
        self.signer = load_signer(db, data_dir)
        self.hub_url = (hub_url or db.execute("SELECT hub_url FROM sync_state").fetchone()["hub_url"]).rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=CONNECT_S)
        self.clock = clock or TrustedClock(db)
        self._session: aiohttp.ClientSession | None = None
        self._trust: TrustStore | None = None  # reloaded after every pulled page
        self._push_lock = asyncio.Lock()  # the loop and an urgent push_now() never send the same ops at once
        self.sealer = sealed.Sealer(self.signer.private, self.signer.key_id)
        self._hub_key_id: int | None = None  # the hub key of the last verified answer: pushes are sealed to it
        self._hub_anchor: tuple[dt.datetime, float] | None = None  # (hub time, monotonic) of the last signed answer
        self.online: bool | None = None  # None until the first round; what `run` last saw of the hub
        self.reachable = True  # False after an Unreachable: probe, do not push
        self._pushes = 0  # batches acknowledged so far: a pull answer older than a push is not applied
        self._noted_at = -NOTE_EVERY_S * 2  # monotonic time of the last status write
        self._noted_error = ""  # the last error written
        # The push thread's own connection (committed rows only). It lives on one thread that is
        # its only user: opened, read and closed there. A push cancelled while the thread reads
        # (the loop stopped) leaves the read running; close() queues behind it, never beside it
        # (two threads on one SQLite connection crash the process).
        self._reader: sqlite3.Connection | None = None
        self._push_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-push")
        self._pushed_in_thread = False  # the push thread was used (it may hold the reader)
        self._path = next(r["file"] for r in db.execute("PRAGMA database_list") if r["name"] == "main")

    def trust(self) -> TrustStore:
        if self._trust is None:
            self._trust = TrustStore.load(self.db)
        return self._trust

    async def close(self) -> None:
        if self._session:
            await self._session.close()
        if self._pushed_in_thread:  # the reader is closed on its thread, after any read in flight
            self._pushed_in_thread = False
            await asyncio.get_running_loop().run_in_executor(self._push_thread, self._close_reader)

    def _close_reader(self) -> None:
        """On the push thread, after whatever it was doing."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    # -- one signed request -----------------------------------------------------------------------

    async def request(self, method: str, path_qs: str, body: bytes = b"", *,
                      timeout: aiohttp.ClientTimeout | None = None) -> bytes:
        """Send one signed (and, with a body, sealed) request; the hub's opened answer. A
        signed refusal in SEND_AGAIN is answered by one re-stamped, re-sealed copy with a new
        nonce: the first answer taught us hub time, or the hub's current key."""
        return await self._request(method, path_qs, body, timeout=timeout)

    async def _request(self, method: str, path_qs: str, body: bytes = b"", *, in_thread: bool = False,
                       timeout: aiohttp.ClientTimeout | None = None) -> bytes:
        """`request`; *in_thread*: seal and sign in a worker thread (a big push must not hold
        up the desk's own requests)."""
        for attempt in (1, 2):
            hub = self._hub_key() if body else None  # the trust store is read here, on the loop
            sent = self.sent_time()  # may read the trusted clock's database: on the loop, too
            if in_thread:
                wire, headers = await asyncio.to_thread(self._prepare, method, path_qs, body, hub, sent)
            else:
                wire, headers = self._prepare(method, path_qs, body, hub, sent)
            try:
                return await self._exchange(method, path_qs, wire, headers, timeout)
            except _SendAgain as exc:
                if attempt == 2:
                    raise
                log.info("sending %s again: %s", path_qs.split("?")[0], exc)
        raise AssertionError("unreachable")

    def sent_time(self) -> dt.datetime:
        """The time a request is signed with: the hub's time of the last signed answer plus the
        monotonic time since (so a clock far off, either way, does not matter once one answer
        came), else the node's trusted time."""
        if self._hub_anchor is None:
            return self.clock.now()
        hub_time, at = self._hub_anchor
        return hub_time + dt.timedelta(seconds=time.monotonic() - at)

    def _prepare(self, method: str, path_qs: str, body: bytes, hub: Signer | None,
                 sent: dt.datetime) -> tuple[bytes, dict]:
        """The bytes on the wire (sealed to *hub*) and the signed headers of one request. Touches
        no database, so it may run in a worker thread."""
        wire, extra = (self.sealer.seal(body, hub.public_raw, hub.key_id), {"Content-Type": sealed.MEDIA}) \
            if body else (body, {})
        # X-Tessera-Time is the system clock, not trusted time: the office should see the device's real error
        headers = auth.sign_request(self.signer.private, self.signer.key_id, self.node["id"], method,
                                    f"/sync/v1{path_qs}", wire, sent=sent, protocol=PROTOCOL,
                                    clock=iso(utcnow())) | extra
        return wire, headers

    async def _exchange(self, method: str, path_qs: str, wire: bytes, headers: dict,
                        timeout: aiohttp.ClientTimeout | None = None) -> bytes:
        try:
            async with self.session().request(method, f"{self.hub_url}/sync/v1{path_qs}", data=wire,
                                              headers=headers, timeout=timeout or self.timeout) as resp:
                data = await resp.read()
                status, answer_headers, media = resp.status, resp.headers, resp.content_type
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unreachable(f"hub unreachable: {type(exc).__name__}: {exc}") from None
        hub = self._check_signature(status, answer_headers, headers[auth.NONCE], data)
        self._learn_hub_time(answer_headers)
        if status == 426:
            raise self._upgrade(answer_headers, data)
        if status >= 400:
            problem = _problem(data)
            if str(problem.get("type", "")).rsplit(":", 1)[-1] in SEND_AGAIN:
                raise _SendAgain(f"{status} {problem.get('detail', '')}")
            raise SyncError(f"hub refused {path_qs.split('?')[0]}: {status} {problem.get('detail', '')}")
        if media != sealed.MEDIA:
            raise SyncError(f"hub answer not sealed ({media})")
        try:
            return self.sealer.open(data, hub.public_raw)
        except sealed.BadBox as exc:
            raise SyncError(f"hub answer does not open: {exc}") from None

    def seal(self, body: bytes) -> bytes:
        """*body* sealed to the hub's current key, as a push travels."""
        hub = self._hub_key()
        return self.sealer.seal(body, hub.public_raw, hub.key_id)

    def _hub_key(self) -> Signer:
        """The hub key to seal to: the one that signed the last answer, else the newest
        certified, unrevoked hub key we know."""
        trust = self.trust()
        current = trust.get(self._hub_key_id) if self._hub_key_id is not None else None
        if current is not None and current.role == "hub" and current.revoked_at_ms is None:
            return current
        hubs = [s for s in trust.signers.values() if s.role == "hub" and s.revoked_at_ms is None]
        if not hubs:
            raise SyncError("no certified, unrevoked hub key known (enroll this node again)")
        return max(hubs, key=lambda s: (s.valid_from_ms, s.key_id))

    def _check_signature(self, status: int, headers, nonce: str, data: bytes) -> Signer:
        """The hub key that signed this answer for our nonce, or SyncError (not the real hub)."""
        key_id = auth.parse_key_id(headers.get(auth.KEY))
        signer = self.trust().get(key_id) if key_id is not None else None
        if signer is None and key_id is not None and headers.get(auth.HUB_CERT):
            signer = self._learn_hub_cert(headers[auth.HUB_CERT], key_id)
        if signer is None or signer.role != "hub":
            raise SyncError(f"answer not signed by a hub of this organizer (status {status})")
        if signer.revoked_at_ms is not None:
            log.warning("sync: refused an answer signed by revoked hub key %08x (%s)", key_id, signer.revoke_reason)
            raise SyncError(f"answer signed by revoked hub key {key_id:08x} ({signer.revoke_reason})")
        if not auth.response_verifies(signer.public, headers, nonce, status, data):
            raise SyncError("hub answer with a wrong signature (replayed or tampered)")
        self._hub_key_id = signer.key_id
        return signer

    def _learn_hub_time(self, headers) -> None:
        """Hub time from a verified answer: what future requests are stamped from."""
        hub_now = auth.sent_at(headers.get(auth.TIME))
        if hub_now is not None:
            self._hub_anchor = (hub_now, time.monotonic())

    def _upgrade(self, headers, data: bytes) -> SyncError:
        """A signed 426, rechecked: only a version range that really excludes ours is an upgrade."""
        supported = auth.protocol_range(headers.get(auth.PROTOCOL))
        if supported is None or supported[0] <= PROTOCOL <= supported[1]:
            return SyncError(f"hub answered 426 although it speaks protocol {PROTOCOL} "
                             f"({headers.get(auth.PROTOCOL)!r}): request changed on the way?")
        side = "hub" if supported[1] < PROTOCOL else "edge"
        return UpgradeNeeded(side, f"this device speaks sync protocol {PROTOCOL}, the hub "
                                   f"{supported[0]}..{supported[1]} ({_problem(data).get('detail', '')})")

    def _learn_hub_cert(self, record: str, key_id: int):
        """A hub that rotated its key sends its new certificate along; it counts only if the
        pinned root signed it (store_cert checks), so nobody else can introduce a key."""
        try:
            body = credentials.store_cert(self.db, record)
        except (credentials.BadRecord, TesseraError):
            return None
        if body.get("key_id") != key_id or body.get("role") != "hub":
            return None
        self._trust = None
        return self.trust().get(key_id)

    # -- push --------------------------------------------------------------------------------------

    def _pending(self, db: sqlite3.Connection | None = None) -> list[Op]:
        """The next batch of waiting ops (at most PUSH_BATCH_OPS and about PUSH_BATCH_BYTES), read
        from *db* (the push thread's own connection: committed rows only). Bodies travel as the
        JSON the outbox holds (msgspec.Raw), not decoded and encoded again."""
        db = db or self.db
        pushed = db.execute("SELECT pushed_seq FROM sync_state").fetchone()["pushed_seq"]
        rows = db.execute("SELECT node_seq, id, kind, body, wall_time, mono_ns, boot_id FROM outbox "
                          "WHERE node_seq > ? ORDER BY node_seq LIMIT ?", (pushed, PUSH_BATCH_OPS)).fetchall()
        ops, size = [], 0
        for r in rows:
            size += len(r["body"]) + 200
            if ops and size > PUSH_BATCH_BYTES:
                break
            ops.append(Op(node_seq=r["node_seq"], id=r["id"], kind=r["kind"], body=msgspec.Raw(r["body"]),
                          wall_time=r["wall_time"], mono_ns=r["mono_ns"], boot_id=r["boot_id"]))
        return ops

    def _next_batch(self, epoch: str | None) -> tuple[list[Op], bytes] | None:
        """Worker thread: the next batch and its encoded push request, or None when nothing waits."""
        if self._reader is None:
            self._reader = connect(self._path, edge=True, migrate=False)
        ops = self._pending(self._reader)
        if not ops:
            return None
        return ops, encoder.encode(PushRequest(protocol=PROTOCOL, node_id=self.node["id"], ops=ops, hub_epoch=epoch))

    async def push(self) -> tuple[int, int]:
        """Push until the outbox is empty: (ops pushed, ops rejected by the hub)."""
        async with self._push_lock:
            return await self._push()

    async def push_now(self, timeout_s: float = 2.0) -> bool:
        """Push what is waiting at once, for a decision the hub should make before the cashier
        goes on (a voucher exchange). False when the hub could not be asked in time: the
        caller goes on offline, and the next round pushes as usual."""
        try:
            await asyncio.wait_for(self.push(), timeout_s)
        except (SyncError, TimeoutError) as exc:
            log.info("urgent push did not reach the hub: %s", exc)
            return False
        return True

    async def _push(self) -> tuple[int, int]:
        pushed = rejected = 0
        if not self._unpushed():  # the common case (an idle desk or gate): no thread, no second connection
            return pushed, rejected
        loop = asyncio.get_running_loop()
        self._pushed_in_thread = True
        while batch := await loop.run_in_executor(self._push_thread, self._next_batch, self._known_epoch()):
            ops, body = batch
            answer = msgspec.json.decode(await self._request("POST", "/push", body, in_thread=True),
                                         type=PushResponse)
            if not self._hub_life(answer.hub_epoch, answer.durable_through):
                continue  # a restored hub applied nothing: start again from the first op kept here
            by_seq = {r.node_seq: r for r in answer.results}
            missing = [op.node_seq for op in ops if op.node_seq not in by_seq]
            if missing:
                raise SyncError(f"hub answered {len(by_seq)} of {len(ops)} ops")
            now = iso(utcnow())
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany("UPDATE outbox SET pushed_at = ?, result = ? WHERE node_seq = ?",
                                    [(now, f"{r.status}: {r.reason}" if r.reason else r.status, r.node_seq)
                                     for r in answer.results])
                self.db.execute("UPDATE sync_state SET pushed_seq = ?, last_push_at = ?, last_error = NULL",
                                (ops[-1].node_seq, now))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self._pushes += 1
            self._noted_at = time.monotonic()
            self._hub_time(answer.hub_time)
            pushed += len(ops)
            rejected += sum(1 for r in answer.results if r.status == "rejected")
        return pushed, rejected

    # -- pull --------------------------------------------------------------------------------------

    def _unpushed(self) -> bool:
        return self.db.execute("SELECT 1 FROM outbox WHERE node_seq > (SELECT pushed_seq FROM sync_state) "
                               "LIMIT 1").fetchone() is not None

    async def pull(self, wait_s: float = 0.0) -> int | None:
        """Apply the hub's changes page by page; None when a local change was made, or pushed,
        while a page was on its way. That page may hold the hub's older copy of the row just
        changed here (a card printed during the request), so it is not applied: the caller
        pushes first and pulls again. (No await between this check and the apply: one loop,
        one connection, so nothing can slip in.) *wait_s*: the first page is a long-poll the
        hub holds until it has news (the live channel); the answer must come within
        *wait_s* + LIVE_MARGIN_S, or the hub counts as unreachable."""
        applied = 0
        while True:
            cursor = self.db.execute("SELECT cursor FROM sync_state").fetchone()["cursor"]
            pushes = self._pushes
            query = f"/pull?after={cursor}&limit={PULL_LIMIT}"
            if wait_s > 0:
                timeout = aiohttp.ClientTimeout(total=wait_s + LIVE_MARGIN_S + self.timeout.total,
                                                sock_connect=CONNECT_S, sock_read=wait_s + LIVE_MARGIN_S)
                data = await self.request("GET", f"{query}&wait={wait_s:g}", timeout=timeout)
            else:
                data = await self.request("GET", query)
            page = msgspec.json.decode(data, type=PullResponse)
            wait_s = 0.0
            if not self._hub_life(page.hub_epoch, page.durable_through):
                return None  # a restored hub: push what we kept, then pull from the start
            if self._unpushed() or self._pushes != pushes:
                return None
            if page.changes or page.next_after != cursor or self._note_due():
                applied += apply_changes(self.db, page.changes,
                                         "UPDATE sync_state SET cursor = ?, last_pull_at = ?, last_error = NULL",
                                         (page.next_after, iso(utcnow())))
                self._noted_at = time.monotonic()
                self._trust = None
                self._hub_time(page.hub_time)  # the skew and the trusted clock's anchor: written with it
            if not page.more:
                return applied

    def _note_due(self) -> bool:
        """An empty answer (the live channel's heartbeat) is written only now and then: an
        edge commits with synchronous=FULL, and `status` needs a sync within a minute."""
        return self.online is not True or time.monotonic() - self._noted_at >= NOTE_EVERY_S

    # -- the hub's life: epochs and backups (docs/sync.md "Backups and restore") --------------------

    def _known_epoch(self) -> str | None:
        return self.db.execute("SELECT hub_epoch FROM sync_state").fetchone()["hub_epoch"]

    def _hub_life(self, epoch: str | None, durable_through: int) -> bool:
        """Follow the hub's epoch and backups from a verified answer. Acknowledged ops up to
        *durable_through* are in the hub's latest backup and may be forgotten here. False when
        the hub was restored since its last answer (a new epoch): this answer is dropped, every
        op kept here is pushed again and the replica is pulled from the start."""
        if epoch is None:  # a hub that keeps no epochs
            return True
        state = self.db.execute("SELECT hub_epoch, durable_seq, pushed_seq FROM sync_state").fetchone()
        if state["hub_epoch"] is not None and state["hub_epoch"] != epoch:
            self._start_over(epoch, durable_through, state["pushed_seq"])
            return False
        if state["hub_epoch"] == epoch and durable_through <= state["durable_seq"]:
            return True  # nothing new: no write (an edge commits with FULL, each commit is a disk sync)
        with transaction(self.db):
            self.db.execute("UPDATE sync_state SET hub_epoch = ?, durable_seq = max(durable_seq, ?)",
                            (epoch, durable_through))
            if durable_through > state["durable_seq"]:
                keep = RECENT_KEPT if self.node["role"] == "gate" else 1
                outbox.prune(self.db, durable_through, keep_newest=keep, keep_kinds=KEEP_KINDS)
        return True

    def _start_over(self, epoch: str, durable_through: int, pushed_seq: int) -> None:
        """The hub was restored from a backup: it holds this node's ops up to *durable_through*.
        Push every kept op again (those it has come back as duplicates) and pull from 0 (the
        restored feed numbers its changes anew; each row is an upsert, so nothing doubles)."""
        with transaction(self.db):
            lost = outbox.missing_since(self.db, durable_through, pushed_seq)
            kept, first = outbox.start_over(self.db)
            self.db.execute("UPDATE sync_state SET hub_epoch = ?, durable_seq = ?, cursor = 0",
                            (epoch, durable_through))
        log.warning("sync: the hub was restored from a backup (epoch %s); pushing the %d ops kept here again "
                    "(from node_seq %d) and pulling everything", epoch[:8], kept, first)
        if lost:
            log.error("sync: %d ops of this node after node_seq %d were acknowledged by the hub before its restore "
                      "and are no longer kept here: lost (restore the newest backup)", lost, durable_through)

    def _hub_time(self, text: str) -> None:
        hub_now = parse_iso(text)
        skew = (utcnow() - hub_now).total_seconds()
        self.db.execute("UPDATE sync_state SET clock_skew_s = ?", (round(skew, 3),))
        self.clock.set_from_hub(hub_now)

    # -- rounds ------------------------------------------------------------------------------------

    async def round(self) -> RoundResult:
        result = RoundResult()
        for _ in range(10):  # local changes keep arriving while the hub answers: push them first
            pushed, rejected = await self.push()
            result.pushed, result.rejected = result.pushed + pushed, result.rejected + rejected
            pulled = await self.pull()
            if pulled is not None:
                result.pulled = pulled
                break
        if self.node["role"] == "cashdesk":
            # a voucher redemption another desk took to the hub first: its ticket is withdrawn here
            desk_redemption.settle_lost(self.db, self.clock.now())
            answered = contingents.answer_recalls(self.db, self.node["id"], self.clock.now())
            result.recalls_answered = len(answered)
            if answered:
                more, rejected = await self.push()
                result.pushed += more
                result.rejected += rejected
        return result

    async def follow(self) -> int | None:
        """One turn of the live channel: a held pull (the hub answers at once when it has news
        for us, else after LIVE_WAIT_S); local changes first when the answer came too late to
        apply; recalls it brought are answered at once. The changes applied, or None."""
        pulled = await self.pull(LIVE_WAIT_S)
        if pulled is None:
            await self.push()
            return None
        if pulled and self.node["role"] == "cashdesk" and contingents.answer_recalls(
                self.db, self.node["id"], self.clock.now()):
            await self.push()
        return pulled

    async def probe(self) -> None:
        """One cheap signed request while the hub is unreachable (a one-row pull, not applied):
        Unreachable while it is still away, nothing read or encoded from the outbox."""
        cursor = self.db.execute("SELECT cursor FROM sync_state").fetchone()["cursor"]
        await self.request("GET", f"/pull?after={cursor}&limit=1",
                           timeout=aiohttp.ClientTimeout(total=PROBE_S + 0.5, sock_connect=CONNECT_S))

    def note_error(self, error: Exception) -> None:
        self.db.execute("UPDATE sync_state SET last_error = ?", (str(error)[:500],))

    def _went_online(self) -> None:
        if self.online is not True:
            if self.online is False:
                log.info("sync: the hub answers again")
            self.db.execute("UPDATE sync_state SET last_error = NULL WHERE last_error IS NOT NULL")
            self._noted_at = time.monotonic()
        self.online, self.reachable = True, True

    def _went_offline(self, error: SyncError) -> None:
        """Offline now (status shows it at once); the same error again is written only every
        NOTE_EVERY_S (a probe a second must not be a disk write a second)."""
        reachable, text = not isinstance(error, Unreachable), str(error)[:500]
        changed = self.online is not False or self.reachable != reachable
        self.online, self.reachable = False, reachable
        if changed or text != self._noted_error or time.monotonic() - self._noted_at >= NOTE_EVERY_S:
            if changed and not reachable:
                log.warning("sync: %s", error)
            self.note_error(error)
            self._noted_error, self._noted_at = text, time.monotonic()

    async def run(self, wake: asyncio.Event, *, period_s: float = 10.0, max_backoff_s: float = 30.0) -> None:
        """Forever: follow the hub on the live channel (`follow`), and push each local change
        (*wake*) at once while the hub answers, else every *period_s*. While the hub is
        unreachable: a probe every PROBE_S, the first answer starts a full round (the backlog
        moves) and the channel again; local changes wait for it. While the hub answers with a
        refusal (*or needs an upgrade*: a 426 never ends the loop, once either side is
        upgraded the next attempt syncs, without a restart): exponential backoff with jitter,
        cut short by a local change."""
        pusher = asyncio.create_task(self._push_on_wake(wake, period_s))
        try:
            await self._follow_hub(wake, max_backoff_s)
        finally:
            pusher.cancel()
            await asyncio.gather(pusher, return_exceptions=True)

    async def _follow_hub(self, wake: asyncio.Event, max_backoff_s: float) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            started = loop.time()
            try:
                if self.online is True:
                    await self.follow()
                else:
                    if not self.reachable:
                        await self.probe()
                    wake.clear()  # before the round: a change made during it is pushed by the pusher
                    await self.round()
                    self._went_online()
                failures = 0
            except Unreachable as exc:
                self._went_offline(exc)
                await asyncio.sleep(max(0.0, PROBE_S - (loop.time() - started)))
            except SyncError as exc:
                failures += 1
                self._went_offline(exc)
                if isinstance(exc, UpgradeNeeded):
                    log.error("sync waits for an upgrade (selling goes on offline): %s", exc)
                await self._sleep_or_wake(wake, backoff_s(failures, max_backoff_s))

    async def _push_on_wake(self, wake: asyncio.Event, period_s: float) -> None:
        """Push soon after each local change while the hub answers. Not while it is away: a sale
        then costs no outbox read and no batch encoding; the probe brings the backlog along."""
        while True:
            await self._sleep_or_wake(wake, period_s * random.uniform(0.8, 1.2))
            wake.clear()
            if self.online is not True:
                continue
            try:
                await self.push()
            except Unreachable as exc:
                self._went_offline(exc)
            except SyncError as exc:  # the channel's next turn pushes again, and backs off if it must
                log.info("sync: push after a local change failed: %s", exc)

    @staticmethod
    async def _sleep_or_wake(wake: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(wake.wait(), seconds)
        except TimeoutError:
            pass


def backoff_s(failures: int, max_backoff_s: float) -> float:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... up to *max_backoff_s*, plus up to 0.5 s."""
    return min(max_backoff_s, 0.5 * 2 ** min(failures - 1, 30)) + random.uniform(0, 0.5)


def status(db: sqlite3.Connection, *, online_within_s: float = 60.0) -> dict:
    """What `tessera edge status` and the edge's /api/status show."""
    state = db.execute("SELECT * FROM sync_state").fetchone() or {}
    pushed_seq = state.get("pushed_seq", 0)
    waiting = db.execute("SELECT count(*) AS n FROM outbox WHERE node_seq > ?", (pushed_seq,)).fetchone()["n"]
    conflicts = db.execute("SELECT count(*) AS n FROM outbox WHERE result LIKE 'rejected%'").fetchone()["n"]
    kept = db.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"]  # until the hub's backup holds them
    last = max((t for t in (state.get("last_push_at"), state.get("last_pull_at")) if t), default=None)
    online = bool(last) and not state.get("last_error") and (
        utcnow() - parse_iso(last) < dt.timedelta(seconds=online_within_s))
    node = this_node(db)
    return {"node_id": node["id"], "name": node["name"], "role": node["role"], "hub_url": state.get("hub_url"),
            "online": online, "last_push_at": state.get("last_push_at"), "last_pull_at": state.get("last_pull_at"),
            "ops_waiting": waiting, "ops_kept": kept, "conflicts": conflicts, "cursor": state.get("cursor", 0),
            "clock_skew_s": state.get("clock_skew_s"), "last_error": state.get("last_error"),
            "upgrade_needed": upgrade_needed(state.get("last_error"))}


def upgrade_needed(last_error: str | None) -> str | None:
    """"hub" or "edge" while the last attempt ended in a (rechecked, signed) 426, else None."""
    for prefix, side in UPGRADE_PREFIXES.items():
        if (last_error or "").startswith(prefix):
            return side
    return None


def _problem(data: bytes) -> dict:
    """A problem answer's fields ({} for anything else)."""
    try:
        problem = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return {"detail": data[:200].decode(errors="replace")}
    return problem if isinstance(problem, dict) else {}
