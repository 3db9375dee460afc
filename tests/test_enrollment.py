"""Enrollment without sending the secret (issue 11): the SPAKE2 handshake of core/sync/enroll.py
against the real hub app on loopback, a fake hub and a machine in the middle that are real
aiohttp servers recording what they receive, and the office's list of codes.

Every attack here worked against the old enrollment, which POSTed the whole code to every
candidate: a fake hub sorted first received it and could redeem it with its own key."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import aiohttp
import msgspec
import pytest
from aiohttp import web

from cli.main import main as tessera
from core.base.clock import utcnow
from core.base.errors import ValidationError
from core.base.node import NODE_DB, this_node
from core.base.storage import _migrate, connect, migrations, schema_version
from core.cards import cardcode, keys
from core.sync import auth
from core.sync import enroll as codes
from core.sync.messages import PROTOCOL, EnrollChallenge, EnrollFinish, EnrollStart, encoder
from edge.sync import enroll as enrolling
from edge.sync.discovery import discover_hubs
from hub.app import init_hub, make_app, open_database
from hub.services import nodes, tokens
from hub.sync import enrollment
from hub.sync.advertise import HubAdvertiser, root_fingerprint
from tests.helpers import call, problem

START, FINISH = enrolling.START, enrolling.FINISH


@pytest.fixture
async def hub(empty_hub, aiohttp_server):
    server = await aiohttp_server(make_app(empty_hub.db))
    empty_hub.url = str(server.make_url("")).rstrip("/")
    return empty_hub


def new_code(hub, role: str = "cashdesk", name: str = "Kasse 1", now: dt.datetime | None = None) -> str:
    return enrollment.create_code(hub.db, name=name, role=role, venue_ids=[], now=now or utcnow())


def retyped(code: str, *, secret: str | None = None, fingerprint: str | None = None) -> str:
    """The same code with another secret or root pin, and a matching check symbol (no typo)."""
    parsed = codes.parse(code)
    return codes.EnrollCode(parsed.code_id, secret or parsed.secret, fingerprint or parsed.fingerprint).text()


def listed(hub) -> dict:
    return {row["code_id"]: row for row in enrollment.list_codes(hub.db, utcnow())}


def certified(hub, public_raw: bytes) -> bool:
    return hub.db.execute("SELECT 1 FROM node_certs WHERE public_key = ?", (public_raw,)).fetchone() is not None


class Recorder:
    """A real HTTP server on loopback that keeps every request it gets (path, headers, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, bytes]] = []

    def wire_bytes(self) -> bytes:
        return b"\n".join(path.encode() + json.dumps(headers).encode() + body for path, headers, body in self.requests)

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.requests]


async def serve(aiohttp_server, recorder: Recorder, answer: Callable) -> str:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorder.requests.append((request.path, dict(request.headers), body))
        return await answer(request, body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, bytes, dict]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers={
            auth.NONCE: auth.new_nonce(), "Content-Type": "application/json", **(headers or {})}) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


def relay_to(targets: dict[str, str], tamper: Callable[[str, bytes], bytes] = lambda path, body: body):
    """A machine in the middle: forwards each request to the real hub (per path), optionally
    changed, and hands the hub's answer back unchanged."""
    async def answer(request: web.Request, body: bytes) -> web.Response:
        status, data, headers = await post(targets[request.path] + request.path, tamper(request.path, body),
                                           {auth.NONCE: request.headers.get(auth.NONCE, "")})
        keep = {k: v for k, v in headers.items() if k.startswith("X-Tessera")}
        return web.Response(status=status, body=data, headers=keep, content_type=headers.get("Content-Type",
                                                                                             "application/json"))
    return answer


# -- the code on paper --------------------------------------------------------------------------------------

def test_a_code_has_an_id_a_secret_a_130_bit_root_pin_and_a_check_symbol(empty_hub):
    code = new_code(empty_hub)
    parsed = codes.parse(code)
    assert len(code.replace("-", "")) == codes.LENGTH == 39 and all(len(g) <= 4 for g in code.split("-"))
    assert (len(parsed.code_id), len(parsed.secret), len(parsed.fingerprint)) == (2, 10, 26)
    root = nodes.root_public_raw(empty_hub.db)
    assert parsed.fingerprint == codes.fingerprint(root)
    # 26 symbols of 5 bits are the first 130 bits of SHA-256 over the root key
    import hashlib
    bits = bin(int.from_bytes(hashlib.sha256(root).digest(), "big"))[2:].zfill(256)[:130]
    assert "".join(f"{cardcode.ALPHABET.index(s):05b}" for s in parsed.fingerprint) == bits
    # case, dashes and spaces do not matter
    assert codes.parse(" ".join(code.lower().split("-"))) == parsed
    # the hub keeps neither the code nor its secret in clear
    dump = "\n".join(str(row) for row in empty_hub.db.execute("SELECT * FROM enrollment_codes"))
    assert parsed.secret not in dump and code not in dump


def test_every_single_typo_is_caught_before_any_hub_is_asked(empty_hub):
    text = new_code(empty_hub).replace("-", "")
    for i, right in enumerate(text):
        for wrong in cardcode.ALPHABET:
            if wrong != right:
                with pytest.raises(ValidationError, match="typo"):
                    codes.parse(text[:i] + wrong + text[i + 1:])
    with pytest.raises(ValidationError, match="39 digits and letters"):
        codes.parse(text[:-1])
    with pytest.raises(ValidationError, match="'I'"):
        codes.parse("I" + text[1:])


def test_the_cli_prints_the_code_with_a_qr_code_and_lists_codes(empty_hub, capsys):
    assert tessera(["hub", "enroll", "--data", str(empty_hub.dir), "--node", "Kasse 7", "--role", "cashdesk"]) == 0
    out, err = capsys.readouterr()
    code = out.split()[-1]
    parsed = codes.parse(code)
    assert "▀" in err or "█" in err or "▄" in err  # the QR code, in half blocks, on stderr
    assert tessera(["hub", "enrollments", "--data", str(empty_hub.dir)]) == 0
    out, _ = capsys.readouterr()
    assert parsed.code_id in out and "open" in out and "Kasse 7" in out and "3 attempts left" in out
    assert parsed.secret not in out
    # a mistyped code stops `tessera edge enroll` before any network: no hub listens on port 9
    typo = code[:-1] + ("2" if code[-1] != "2" else "3")
    assert tessera(["edge", "enroll", "--data", str(empty_hub.dir / "e"), "--code", typo,
                    "--hub", "http://127.0.0.1:9"]) == 1
    assert "typo" in capsys.readouterr().err and not (empty_hub.dir / "e").exists()


# -- the handshake -------------------------------------------------------------------------------------------

async def test_a_device_enrolls_and_the_office_sees_it(hub, tmp_path):
    code = new_code(hub, role="gate", name="Tor 1")
    node = await enrolling.enroll(tmp_path / "gate", code, [hub.url])
    assert node["role"] == "gate" and node["hub_url"] == hub.url
    row = listed(hub)[codes.parse(code).code_id]
    assert row["state"] == "used" and row["node_id"] == node["id"] and row["attempts_left"] == 2
    edge = connect(tmp_path / "gate" / NODE_DB, edge=True)
    public = keys.public_bytes(keys.read_private(tmp_path / "gate" / keys.NODE_KEY_FILE))
    assert certified(hub, public) and edge.execute("SELECT count(*) AS n FROM trust_roots").fetchone()["n"] == 1
    edge.close()
    assert hub.db.execute("SELECT count(*) AS n FROM enroll_handshakes").fetchone()["n"] == 0


async def test_a_fake_hub_sorted_first_learns_nothing_and_cannot_finish(hub, tmp_path, aiohttp_server):
    """The fake copies everything public (root key, hub certificate) and answers with a
    guessed secret: the device refuses its proof and never sends its own."""
    code = new_code(hub)
    parsed = codes.parse(code)
    hub_cert = nodes.certificate(hub.db, this_node(hub.db)["key_id"])
    root = nodes.root_public_raw(hub.db)
    guess = codes.password(parsed.code_id, "0123456789")

    async def fake_hub(request: web.Request, body: bytes) -> web.Response:
        if request.path != START:
            return web.json_response({"detail": "no"}, status=404)
        start = msgspec.json.decode(body, type=EnrollStart)
        hub_message, key = codes.hub_answer(guess, bytes.fromhex(start.spake))
        transcript = codes.Transcript(handshake_id="ab" * 16, code_id=start.code_id, node_id=start.node_id,
                                      public_key=bytes.fromhex(start.public_key),
                                      edge_message=bytes.fromhex(start.spake), hub_message=hub_message,
                                      hub_certificate=hub_cert, root_public=root)
        return web.Response(body=encoder.encode(EnrollChallenge(
            protocol=PROTOCOL, handshake_id="ab" * 16, spake=hub_message.hex(),
            hub_confirm=codes.hub_confirmation(key, transcript).hex(), root_public_key=root.hex(),
            hub_certificate=hub_cert, attempts_left=3)), content_type="application/json")

    fake = Recorder()
    fake_url = await serve(aiohttp_server, fake, fake_hub)
    with pytest.raises(enrolling.EnrollError, match="did not prove it knows the code"):
        await enrolling.enroll(tmp_path / "d", code, [fake_url])
    assert fake.paths() == [START]  # the device's proof never left it
    got = fake.wire_bytes()
    flat = got.upper().replace(b"-", b"").replace(b" ", b"")  # the secret in any grouping or case
    assert parsed.secret.encode() not in flat and parsed.password().hex().upper().encode() not in flat
    assert parsed.password() not in got
    # with what it got, the fake cannot finish at the real hub either: it relays the start
    # and has no proof to send; its best guess is refused (and uses one of three attempts)
    _, _, start_body = fake.requests[0]
    status, data, _ = await post(hub.url + START, start_body)
    assert status == 200
    challenge = msgspec.json.decode(data, type=EnrollChallenge)
    forged = EnrollFinish(protocol=PROTOCOL, handshake_id=challenge.handshake_id, edge_confirm="00" * 32)
    status, data, _ = await post(hub.url + FINISH, encoder.encode(forged))
    assert status == 403 and b"does not match" in data
    stolen_key = bytes.fromhex(msgspec.json.decode(start_body, type=EnrollStart).public_key)
    assert not certified(hub, stolen_key)
    # the device, with the fake still first in line, enrolls at the real hub
    node = await enrolling.enroll(tmp_path / "d", code, [fake_url, hub.url])
    assert node["hub_url"] == hub.url
    assert fake.paths() == [START, START]
    assert parsed.secret.encode() not in fake.wire_bytes().upper().replace(b"-", b"")
    assert listed(hub)[parsed.code_id]["state"] == "used"


@pytest.mark.slow  # real zeroconf browsing on loopback (seconds)
async def test_a_fake_hub_announced_to_sort_first_on_zeroconf_is_skipped(hub, tmp_path, aiohttp_server):
    """The attack of the issue as it happens on a LAN: the fake announces the same root key
    id under a name that sorts first; the device tries it first, learns it cannot prove the
    code, and enrolls at the real hub."""
    fake = Recorder()

    async def knows_nothing(request: web.Request, body: bytes) -> web.Response:
        return web.json_response({"detail": "send me the code"}, status=400)

    fake_url = await serve(aiohttp_server, fake, knows_nothing)
    root_id = root_fingerprint(hub.db)
    real_port, fake_port = int(hub.url.rsplit(":", 1)[1]), int(fake_url.rsplit(":", 1)[1])
    announced = [HubAdvertiser(port=fake_port, node_id="01900000-0000-7000-8000-00000000000f", name="AAA Kasse-Hub",
                               root_fingerprint=root_id, interfaces=["127.0.0.1"]),
                 HubAdvertiser(port=real_port, node_id=this_node(hub.db)["id"], name="zz Hub", root_fingerprint=root_id,
                               interfaces=["127.0.0.1"])]
    code = new_code(hub)
    for advertiser in announced:
        await advertiser.start()
    try:
        candidates = []
        for _ in range(5):  # zeroconf on a loaded machine: browse again until both answered
            found = await discover_hubs(timeout_s=1.5, interfaces=["127.0.0.1"],
                                        root_fingerprint=codes.root_key_id(codes.parse(code).fingerprint))
            candidates = [c.url for c in found if c.url.rstrip("/") in (fake_url, hub.url)]
            if len(candidates) == 2:
                break
        assert [c.rstrip("/") for c in candidates] == [fake_url, hub.url]
        node = await enrolling.enroll(tmp_path / "d", code, candidates)
    finally:
        for advertiser in announced:
            await advertiser.close()
    assert node["hub_url"] == hub.url
    assert fake.paths() == [START]
    assert codes.parse(code).secret.encode() not in fake.wire_bytes().upper().replace(b"-", b"")


async def test_a_machine_in_the_middle_gets_no_certificate_for_its_own_key(hub, tmp_path, aiohttp_server):
    code = new_code(hub)
    mitm_key = keys.public_bytes(keys.generate())

    def swap_key(path: str, body: bytes) -> bytes:
        if path != START:
            return body
        start = msgspec.json.decode(body, type=EnrollStart)
        return encoder.encode(msgspec.structs.replace(start, public_key=mitm_key.hex()))

    seen = Recorder()
    mitm_url = await serve(aiohttp_server, seen, relay_to({START: hub.url, FINISH: hub.url}, swap_key))
    with pytest.raises(enrolling.EnrollError, match="did not prove it knows the code"):
        await enrolling.enroll(tmp_path / "d", code, [mitm_url])
    assert seen.paths() == [START]  # the transcripts differ: the device stops before its proof
    # the middle cannot make the device's proof itself
    handshake = hub.db.execute("SELECT id FROM enroll_handshakes").fetchone()["id"]
    status, _, _ = await post(hub.url + FINISH, encoder.encode(EnrollFinish(
        protocol=PROTOCOL, handshake_id=handshake, edge_confirm="11" * 32)))
    assert status == 403 and not certified(hub, mitm_key)
    # relaying faithfully only gets the device its own certificate
    node = await enrolling.enroll(tmp_path / "d", code, [relay_url := await serve(
        aiohttp_server, Recorder(), relay_to({START: hub.url, FINISH: hub.url}))])
    assert node["hub_url"] == relay_url and not certified(hub, mitm_key)
    assert certified(hub, keys.public_bytes(keys.read_private(tmp_path / "d" / keys.NODE_KEY_FILE)))


async def test_a_wrong_code_burns_an_attempt_and_three_void_it(hub, tmp_path):
    code = new_code(hub)
    code_id = codes.parse(code).code_id
    wrong = retyped(code, secret="2222222222")
    for left in (2, 1, 0):
        with pytest.raises(enrolling.EnrollError, match="did not prove it knows the code"):
            await enrolling.enroll(tmp_path / "d", wrong, [hub.url])
        assert listed(hub)[code_id]["attempts_left"] == left
    assert listed(hub)[code_id]["state"] == "dead"
    with pytest.raises(enrolling.EnrollError, match="void after 3 failed attempts"):
        await enrolling.enroll(tmp_path / "d", code, [hub.url])
    assert not (tmp_path / "d").exists()
    assert hub.db.execute("SELECT count(*) AS n FROM node_scopes").fetchone()["n"] == 0


async def test_a_code_is_single_use_and_unknown_codes_are_rate_limited(hub, tmp_path):
    code = new_code(hub)
    await enrolling.enroll(tmp_path / "a", code, [hub.url])
    with pytest.raises(enrolling.EnrollError, match="used already"):
        await enrolling.enroll(tmp_path / "b", code, [hub.url])
    taken = codes.parse(code).code_id
    unknown = next(a + b for a in cardcode.ALPHABET for b in cardcode.ALPHABET if a + b != taken)
    stranger = codes.EnrollCode(unknown, "2222222222", codes.parse(code).fingerprint).text()
    for _ in range(4):  # with the used one above: five refusals from this address in a minute
        with pytest.raises(enrolling.EnrollError, match="unknown enrollment code"):
            await enrolling.enroll(tmp_path / "c", stranger, [hub.url])
    with pytest.raises(enrolling.EnrollError, match="429"):
        await enrolling.enroll(tmp_path / "c", new_code(hub, name="Kasse 2"), [hub.url])
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


async def test_an_expired_code_is_refused(hub, tmp_path):
    code = new_code(hub, now=utcnow() - dt.timedelta(hours=25))
    with pytest.raises(enrolling.EnrollError, match="expired"):
        await enrolling.enroll(tmp_path / "x", code, [hub.url])


async def test_a_replayed_finish_or_start_is_refused(hub, tmp_path, aiohttp_server):
    code = new_code(hub)
    tap = Recorder()
    tap_url = await serve(aiohttp_server, tap, relay_to({START: hub.url, FINISH: hub.url}))
    await enrolling.enroll(tmp_path / "d", code, [tap_url])
    (_, _, start_body), (_, _, finish_body) = tap.requests
    certs = hub.db.execute("SELECT count(*) AS n FROM node_certs").fetchone()["n"]
    status, data, _ = await post(hub.url + FINISH, finish_body)
    assert status == 404 and b"no such enrollment handshake" in data
    status, data, _ = await post(hub.url + START, start_body)
    assert status == 409 and b"used already" in data
    assert hub.db.execute("SELECT count(*) AS n FROM node_certs").fetchone()["n"] == certs


def test_a_handshake_expires_after_two_minutes(empty_hub):
    code = codes.parse(new_code(empty_hub))
    now = utcnow()
    spake, message = codes.edge_begin(code.password())
    public = keys.public_bytes(keys.generate())
    hub_cert = nodes.certificate(empty_hub.db, this_node(empty_hub.db)["key_id"])
    started = enrollment.start(empty_hub.db, hub_certificate=hub_cert, code_id=code.code_id,
                               node_id="01900000-0000-7000-8000-000000000001", public_raw=public,
                               edge_message=message, now=now)
    transcript = codes.Transcript(handshake_id=started["handshake_id"], code_id=code.code_id,
                                  node_id="01900000-0000-7000-8000-000000000001", public_key=public,
                                  edge_message=message, hub_message=started["hub_message"], hub_certificate=hub_cert,
                                  root_public=nodes.root_public_raw(empty_hub.db))
    key = codes.edge_key(spake, started["hub_message"])
    assert codes.same(codes.hub_confirmation(key, transcript), started["hub_confirm"])
    with pytest.raises(Exception, match="took too long"):
        enrollment.finish(empty_hub.db, nodes.root_key(empty_hub.dir), handshake_id=started["handshake_id"],
                          edge_confirm=codes.edge_confirmation(key, transcript), now=now + dt.timedelta(minutes=3))
    assert not certified(empty_hub, public)


async def test_another_organizers_code_is_refused_by_the_device(hub, tmp_path):
    other_db, _ = init_hub(tmp_path / "other")
    other_pin = codes.fingerprint(nodes.root_public_raw(other_db))
    other_db.close()
    code = new_code(hub)
    with pytest.raises(enrolling.EnrollError, match="another organizer's root key"):
        await enrolling.enroll(tmp_path / "d", retyped(code, fingerprint=other_pin), [hub.url])
    assert not (tmp_path / "d").exists()
    assert listed(hub)[codes.parse(code).code_id]["state"] == "open"  # no finish was sent


async def test_the_device_compares_all_130_bits_of_the_root_pin(hub, tmp_path):
    """A root that shares the first 40 bits (8 symbols, all the old code pinned) or even
    125 of them is not the pinned root."""
    code = new_code(hub)
    pin = codes.parse(code).fingerprint
    for keep in (8, 25):
        near = pin[:keep] + "".join(cardcode.ALPHABET[(cardcode.ALPHABET.index(s) + 1) % 32] for s in pin[keep:])
        with pytest.raises(enrolling.EnrollError, match="another organizer's root key"):
            await enrolling.enroll(tmp_path / "d", retyped(code, fingerprint=near), [hub.url])
    assert not (tmp_path / "d").exists()
    await enrolling.enroll(tmp_path / "d", code, [hub.url])  # 2 of 3 attempts used: the right pin still works


async def test_any_hub_process_finishes_what_another_started(hub, tmp_path, aiohttp_server):
    """The handshake lives in the database: start at one hub process, finish at another."""
    second_db = open_database(hub.dir)  # a second hub process's own connection
    second = await aiohttp_server(make_app(second_db))
    second_url = str(second.make_url("")).rstrip("/")
    split = await serve(aiohttp_server, Recorder(), relay_to({START: hub.url, FINISH: second_url}))
    node = await enrolling.enroll(tmp_path / "d", new_code(hub), [split])
    assert node["role"] == "cashdesk"
    second_db.close()


def test_codes_made_before_the_handshake_stay_listed_but_void(tmp_path):
    """Migration 0011 on a database as 0010 left it: an old (hashed, id-less) code cannot
    run the handshake; a used one still tells which node it enrolled."""
    db = connect(tmp_path / "old.sqlite", migrate=False)
    for number, name, sql in migrations()[:10]:
        _migrate(db, number, name, sql)
    later = (utcnow() + dt.timedelta(hours=20)).isoformat()
    db.executescript(f"""
        INSERT INTO enrollment_codes (code_hash, name, role, created_at, expires_at)
            VALUES ('aa', 'Kasse alt', 'cashdesk', '2026-11-30T10:00:00Z', '{later}');
        INSERT INTO enrollment_codes (code_hash, name, role, created_at, expires_at, used_at, node_id)
            VALUES ('bb', 'Tor alt', 'gate', '2026-11-30T09:00:00Z', '{later}', '2026-11-30T09:05:00Z', 'n-1');
    """)
    _migrate(db, 11, "0011", dict((n, sql) for n, _, sql in migrations())[11])
    assert schema_version(db) == 11
    rows = {row["name"]: row for row in enrollment.list_codes(db, utcnow())}
    assert rows["Kasse alt"]["state"] == "dead" and rows["Kasse alt"]["code_id"] is None
    assert rows["Tor alt"]["state"] == "used" and rows["Tor alt"]["node_id"] == "n-1"
    db.close()


# -- the office's list ---------------------------------------------------------------------------------------

async def test_the_office_lists_codes_without_secrets_and_a_desk_key_cannot(hub, tmp_path, aiohttp_client):
    api = await aiohttp_client(make_app(hub.db))
    api.hub = hub
    created = await call(api, "POST", "/enrollment-codes", {"name": "Kasse 9", "role": "cashdesk"}, status=201)
    used = new_code(hub, name="Theke 1", role="counter")
    node = await enrolling.enroll(tmp_path / "t", used, [hub.url])
    office, _ = tokens.create_token(hub.db, "Büro", "office")
    rows = await call(api, "GET", "/enrollment-codes", token=office, status=200)
    by_id = {row["code_id"]: row for row in rows}
    fresh, done = by_id[codes.parse(created["code"]).code_id], by_id[codes.parse(used).code_id]
    assert fresh["state"] == "open" and fresh["name"] == "Kasse 9" and fresh["attempts_left"] == 3
    assert fresh["used_at"] is None and fresh["expires_at"] > fresh["created_at"]
    assert done["state"] == "used" and done["node_id"] == node["id"] and done["role"] == "counter"
    text = json.dumps(rows)
    for code in (created["code"], used):
        assert codes.parse(code).secret not in text and codes.parse(code).password().hex() not in text
    # no token: 401; the shop's token: 403
    resp = await api.get("/api/v1/enrollment-codes")
    assert resp.status == 401
    shop, _ = tokens.create_token(hub.db, "Webshop", "shop")
    await problem(api, "GET", "/enrollment-codes", token=shop, status=403, slug="forbidden")
    # the enrolled counter's node key, signing as it does for sync, is no office credential
    private = keys.read_private(tmp_path / "t" / keys.NODE_KEY_FILE)
    signed = auth.sign_request(private, keys.key_id(keys.public_bytes(private)), node["id"], "GET",
                               "/api/v1/enrollment-codes", b"", sent=utcnow(), protocol=PROTOCOL)
    resp = await api.get("/api/v1/enrollment-codes", headers=signed)
    assert resp.status == 401
