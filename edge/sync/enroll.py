"""Enrolling an edge with a one-time code (E7): `tessera edge enroll --code CODE [--hub URL]`.

The node makes its key pair and runs the handshake of core/sync/enroll.py with each
candidate hub in turn (the `--hub` address, or those found with zeroconf):

1. start: it sends the code id, its node id, its public key and a SPAKE2 message. Nothing
   in it lets the receiver check a guess of the secret offline.
2. It checks the answer before it sends anything else: the root key's fingerprint equals
   all 26 symbols of the pin in the code, the hub certificate is signed by that root, the
   hub's proof (an HMAC over the whole transcript with a key from the SPAKE2 session key)
   matches, and the answer is signed by that hub over the nonce just sent. A candidate that
   fails any of these is skipped: it learnt nothing about the code.
3. finish: it sends its own proof and receives its certificate, which must certify exactly
   its own key and node id under the pinned root.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import msgspec

from core.base.clock import parse_iso
from core.base.errors import ValidationError
from core.base.ids import uuid7
from core.base.node import NODE_DB, init_node, this_node
from core.base.storage import connect, transaction
from core.cards import keys, trust
from core.cards.access import GateRules
from core.cards.trust import BadRecord, open_envelope
from core.cards.trusted_time import TrustedClock
from core.sync import auth
from core.sync import enroll as codes
from core.sync.messages import PROTOCOL, EnrollChallenge, EnrollFinish, EnrollResponse, EnrollStart, encoder
from edge.node_data import write_gate_rules

START, FINISH = "/sync/v1/enroll/start", "/sync/v1/enroll/finish"


class EnrollError(Exception):
    pass


class _Device:
    """What the new node brings to every candidate: its id and key pair, and the code."""

    def __init__(self, code: codes.EnrollCode) -> None:
        self.code = code
        self.node_id = uuid7()
        self.private = keys.generate()
        self.public = keys.public_bytes(self.private)


async def enroll(data_dir: Path, code: str, hub_urls: list[str], *, timeout_s: float = 15.0) -> dict:
    """Try each candidate hub until one proves it knows the code; set up the folder. A
    mistyped code is refused here (ValidationError) before any hub is contacted."""
    data_dir = Path(data_dir)
    if (data_dir / NODE_DB).exists():
        raise EnrollError(f"{data_dir} is enrolled already")
    device = _Device(codes.parse(code))
    errors = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        for url in hub_urls:
            try:
                answer = await _handshake(session, url.rstrip("/"), device)
            except EnrollError as exc:
                errors.append(f"{url}: {exc}")
                continue
            return _set_up(data_dir, url.rstrip("/"), device, answer)
    raise EnrollError("no hub accepted the code: " + "; ".join(errors) if errors else "no hub found")


async def _post(session: aiohttp.ClientSession, url: str, message: msgspec.Struct) -> tuple[int, bytes, dict, str]:
    nonce = auth.new_nonce()
    headers = {auth.NONCE: nonce, auth.PROTOCOL: str(PROTOCOL), "Content-Type": "application/json"}
    try:
        async with session.post(url, data=encoder.encode(message), headers=headers) as resp:
            return resp.status, await resp.read(), dict(resp.headers), nonce
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise EnrollError(f"unreachable ({type(exc).__name__})") from None


def _refusal(status: int, data: bytes) -> EnrollError:
    try:
        detail = msgspec.json.decode(data).get("detail")
    except (msgspec.DecodeError, AttributeError):
        detail = None
    return EnrollError(f"{status} {detail or 'refused'}")


def _decode(data: bytes, kind: type) -> msgspec.Struct:
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.MsgspecError:
        raise EnrollError("not an enrollment answer") from None


def _hub_key(certificate: str, root_public: bytes):
    """The hub's public key from its certificate, if the pinned root signed it for a hub."""
    try:
        cert = open_envelope(certificate, "node-cert")
    except BadRecord:
        raise EnrollError("not a hub certificate") from None
    if not trust.verify(cert, keys.load_public(root_public)) or cert.body.get("role") != "hub":
        raise EnrollError("hub certificate not signed by the organizer's root key")
    return keys.load_public(bytes.fromhex(cert.body["public_key"]))


def _check_signed(hub_public, headers: dict, nonce: str, status: int, data: bytes) -> None:
    if not auth.response_verifies(hub_public, headers, nonce, status, data):
        raise EnrollError("answer not signed by the certified hub")


async def _handshake(session: aiohttp.ClientSession, url: str, device: _Device) -> EnrollResponse:
    spake, edge_message = codes.edge_begin(device.code.password())  # a fresh exchange per candidate
    start = EnrollStart(protocol=PROTOCOL, code_id=device.code.code_id, node_id=device.node_id,
                        public_key=device.public.hex(), spake=edge_message.hex())
    status, data, headers, nonce = await _post(session, url + START, start)
    if status != 200:
        raise _refusal(status, data)
    challenge: EnrollChallenge = _decode(data, EnrollChallenge)
    root_public = bytes.fromhex(challenge.root_public_key)
    if not codes.same(codes.fingerprint(root_public).encode(), device.code.fingerprint.encode()):
        raise EnrollError("answered with another organizer's root key (not the hub this code is for)")
    hub_public = _hub_key(challenge.hub_certificate, root_public)
    transcript = codes.Transcript(handshake_id=challenge.handshake_id, code_id=device.code.code_id,
                                  node_id=device.node_id, public_key=device.public, edge_message=edge_message,
                                  hub_message=bytes.fromhex(challenge.spake),
                                  hub_certificate=challenge.hub_certificate, root_public=root_public)
    try:
        session_key = codes.edge_key(spake, transcript.hub_message)
    except ValidationError:
        raise EnrollError("the hub's handshake message is garbled") from None
    if not codes.same(codes.hub_confirmation(session_key, transcript), bytes.fromhex(challenge.hub_confirm)):
        raise EnrollError("this hub did not prove it knows the code: the code is mistyped, or this is not the hub "
                          "that made it (each such try uses one of the code's 3 attempts at the real hub)")
    _check_signed(hub_public, headers, nonce, status, data)
    finish = EnrollFinish(protocol=PROTOCOL, handshake_id=challenge.handshake_id,
                          edge_confirm=codes.edge_confirmation(session_key, transcript).hex())
    status, data, headers, nonce = await _post(session, url + FINISH, finish)
    if status != 200:
        raise _refusal(status, data)
    answer: EnrollResponse = _decode(data, EnrollResponse)
    _check_answer(answer, device, root_public)
    _check_signed(_hub_key(answer.hub_certificate, root_public), headers, nonce, status, data)
    return answer


def _check_answer(answer: EnrollResponse, device: _Device, root_public: bytes) -> None:
    """The certificate is for this node's own key, under the root the code pins."""
    if answer.root_public_key != root_public.hex():
        raise EnrollError("the hub changed its root key during the handshake")
    try:
        cert = open_envelope(answer.node_certificate, "node-cert")
    except BadRecord:
        raise EnrollError("not a node certificate") from None
    if (not trust.verify(cert, keys.load_public(root_public)) or cert.body.get("public_key") != device.public.hex()
            or cert.body.get("node_id") != device.node_id or answer.node_id != device.node_id):
        raise EnrollError("the certificate is not for this node's key")


def _set_up(data_dir: Path, url: str, device: _Device, answer: EnrollResponse) -> dict:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys.write_private(data_dir / keys.NODE_KEY_FILE, device.private)
    db = connect(data_dir / NODE_DB, edge=True)
    try:
        init_node(db, answer.role, answer.name, node_id=device.node_id)
        trust.pin_root(db, bytes.fromhex(answer.root_public_key))
        trust.store_cert(db, answer.hub_certificate)
        trust.store_cert(db, answer.node_certificate)
        hub_node = open_envelope(answer.hub_certificate, "node-cert").body["node_id"]
        with transaction(db):
            db.execute("UPDATE node SET key_id = ?", (keys.key_id(device.public),))
            db.execute("INSERT INTO sync_state (id, hub_url, hub_node_id, venue_ids) VALUES (1, ?, ?, ?)",
                       (url, hub_node, msgspec.json.encode(answer.venue_ids).decode()))
        TrustedClock(db).set_from_hub(parse_iso(answer.hub_time))
        if answer.role == "gate" and answer.venue_ids:
            write_gate_rules(data_dir, GateRules(venue_id=answer.venue_ids[0]))
        return {**this_node(db), "hub_url": url, "venue_ids": answer.venue_ids}
    finally:
        db.close()
