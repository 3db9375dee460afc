"""Enrolling an edge with a one-time code (E7): `tessera edge enroll --code CODE [--hub URL]`.

The node makes its key pair, sends the code's secret and its public key, and receives its
certificate. It trusts the answer only if (1) the root key in it has the fingerprint that
is part of the code, (2) the hub's certificate is signed by that root, and (3) the answer
is signed by that hub over the nonce just sent. Without `--hub`, candidates found with
zeroconf are tried; a rogue hub fails (1)-(3) and is skipped.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import msgspec

from core.base.clock import parse_iso
from core.base.ids import uuid7
from core.base.node import NODE_DB, init_node, this_node
from core.base.storage import connect, transaction
from core.cards import keys, trust
from core.cards.access import GateRules
from core.cards.trust import open_envelope
from core.cards.trusted_time import TrustedClock
from core.sync import auth
from core.sync import enroll as enroll_codes
from core.sync.messages import PROTOCOL, EnrollRequest, EnrollResponse, encoder
from edge.node_data import write_gate_rules


class EnrollError(Exception):
    pass


async def enroll(data_dir: Path, code: str, hub_urls: list[str], *, timeout_s: float = 15.0) -> dict:
    """Try each candidate hub until one answers as the real hub; set up the folder."""
    data_dir = Path(data_dir)
    if (data_dir / NODE_DB).exists():
        raise EnrollError(f"{data_dir} is enrolled already")
    _secret, fingerprint = enroll_codes.split(code)
    node_id, private = uuid7(), keys.generate()
    body = encoder.encode(EnrollRequest(protocol=PROTOCOL, code=code, node_id=node_id,
                                        public_key=keys.public_bytes(private).hex()))
    errors = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        for url in hub_urls:
            try:
                answer = await _ask(session, url.rstrip("/"), body, fingerprint)
            except EnrollError as exc:
                errors.append(f"{url}: {exc}")
                continue
            return _set_up(data_dir, url.rstrip("/"), node_id, private, answer)
    raise EnrollError("no hub accepted the code: " + "; ".join(errors) if errors else "no hub found")


async def _ask(session: aiohttp.ClientSession, url: str, body: bytes, fingerprint: str) -> EnrollResponse:
    nonce = auth.new_nonce()
    try:
        async with session.post(f"{url}/sync/v1/enroll", data=body,
                                headers={auth.NONCE: nonce, "Content-Type": "application/json"}) as resp:
            data, status, headers = await resp.read(), resp.status, resp.headers
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise EnrollError(f"unreachable ({type(exc).__name__})") from None
    if status != 200:
        try:
            detail = msgspec.json.decode(data).get("detail")
        except (msgspec.DecodeError, AttributeError):
            detail = None
        raise EnrollError(f"{status} {detail or 'refused'}")
    try:
        answer = msgspec.json.decode(data, type=EnrollResponse)
        root_public = bytes.fromhex(answer.root_public_key)
    except (msgspec.MsgspecError, ValueError):
        raise EnrollError("not an enrollment answer") from None
    if enroll_codes.fingerprint(root_public) != fingerprint:
        raise EnrollError("answered with another organizer's root key (not the hub this code is for)")
    hub_cert = open_envelope(answer.hub_certificate, "node-cert")
    if not trust.verify(hub_cert, keys.load_public(root_public)) or hub_cert.body.get("role") != "hub":
        raise EnrollError("hub certificate not signed by the organizer's root key")
    hub_public = keys.load_public(bytes.fromhex(hub_cert.body["public_key"]))
    if (headers.get(auth.NONCE) != nonce or auth.parse_key_id(headers.get(auth.KEY))
            != hub_cert.body["key_id"] or not auth.verify(hub_public, headers.get(auth.SIGNATURE),
                                                                auth.response_message(nonce, status, data))):
        raise EnrollError("answer not signed by the certified hub")
    return answer


def _set_up(data_dir: Path, url: str, node_id: str, private, answer: EnrollResponse) -> dict:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys.write_private(data_dir / keys.NODE_KEY_FILE, private)
    db = connect(data_dir / NODE_DB, edge=True)
    try:
        init_node(db, answer.role, answer.name, node_id=node_id)
        trust.pin_root(db, bytes.fromhex(answer.root_public_key))
        trust.store_cert(db, answer.hub_certificate)
        trust.store_cert(db, answer.node_certificate)
        hub_node = open_envelope(answer.hub_certificate, "node-cert").body["node_id"]
        with transaction(db):
            db.execute("UPDATE node SET key_id = ?", (keys.key_id(keys.public_bytes(private)),))
            db.execute("INSERT INTO sync_state (id, hub_url, hub_node_id, venue_ids) VALUES (1, ?, ?, ?)",
                       (url, hub_node, msgspec.json.encode(answer.venue_ids).decode()))
        TrustedClock(db).set_from_hub(parse_iso(answer.hub_time))
        if answer.role == "gate" and answer.venue_ids:
            write_gate_rules(data_dir, GateRules(venue_id=answer.venue_ids[0]))
        return {**this_node(db), "hub_url": url, "venue_ids": answer.venue_ids}
    finally:
        db.close()
