"""Sync that cannot be read (issue 11): push bodies and push/pull answers are sealed between
the node's and the hub's certified keys (core/sync/sealed.py). Someone on the LAN sees no
holder or customer name; an unsealed push is refused; another certified node can neither
open what was sealed to a node nor pass it off as its own; a push sealed to a hub key that
was rotated meanwhile is sealed again to the new key. Real hub app over HTTP on loopback,
real enrolled edge folders, the real SyncClient, tests/sync_tap.py on the wire."""

from __future__ import annotations

import msgspec
import pytest

from core.base.clock import utcnow
from core.cards import cards
from core.sync import auth, sealed
from core.sync.messages import PROTOCOL, PushRequest, encoder
from hub.services import nodes
from tests.sync_tap import Tap, replay
from tests.test_sync import enrolled


def one(db, sql: str, *args) -> object:
    return next(iter(db.execute(sql, args).fetchone().values()))


def hub_public(client) -> bytes:
    return client._hub_key().public_raw


async def test_nothing_personal_travels_in_clear(hub, tmp_path):
    signer = cards.load_signer(hub.db, hub.dir)
    customer = hub.db.execute("SELECT id, last_name, email FROM customers WHERE email IS NOT NULL "
                              "ORDER BY id LIMIT 1").fetchone()
    cards.issue_card(hub.db, signer, product_id=hub.ids["annual_products"][0], kind="annual", now=utcnow(),
                     customer_id=customer["id"], holder_name="Erika Geheimnisvoll")
    folder, db, client = await enrolled(hub, tmp_path)
    tap = await Tap.start(hub.url)
    client.hub_url = tap.url
    try:
        await client.round()
        cards.issue_card(db, client.signer, product_id=hub.ids["annual_products"][0], kind="annual", now=utcnow(),
                         holder_name="Otto Verborgen")
        assert (await client.round()).pushed == 1
        # the node got everything, the hub too
        assert one(db, "SELECT count(*) FROM cards WHERE holder_name = 'Erika Geheimnisvoll'") == 1
        assert one(db, "SELECT email FROM customers WHERE id = ?", customer["id"]) == customer["email"]
        assert one(hub.db, "SELECT count(*) FROM cards WHERE holder_name = 'Otto Verborgen'") == 1
        # the wire carried none of it
        pulls, pushes = tap.requests("/pull"), tap.requests("/push")
        assert pulls and pushes and all(x.status == 200 for x in pulls + pushes)
        for exchange in tap.seen:
            for blob in (exchange.body, exchange.answer):
                for secret in (b"Geheimnisvoll", b"Verborgen", customer["last_name"].encode(),
                               customer["email"].encode(), b"holder_name", b"node_seq"):
                    assert secret not in blob, (exchange.path_qs, secret)
        assert all(x.answer_headers["Content-Type"] == sealed.MEDIA for x in pulls + pushes)
        assert all(x.headers["Content-Type"] == sealed.MEDIA for x in pushes)
    finally:
        await client.close()
        await tap.close()


async def test_an_unsealed_push_is_refused(hub, tmp_path):
    _, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        cards.issue_card(db, client.signer, product_id=hub.ids["annual_products"][0], kind="annual", now=utcnow(),
                         holder_name="Klara Text")
        plain = encoder.encode(PushRequest(protocol=PROTOCOL, node_id=client.node["id"], ops=client._pending()))
        headers = auth.sign_request(client.signer.private, client.signer.key_id, client.node["id"], "POST",
                                    "/sync/v1/push", plain, sent=utcnow(), protocol=PROTOCOL)
        headers["Content-Type"] = "application/json"
        async with client.session().post(f"{hub.url}/sync/v1/push", data=plain, headers=headers) as resp:
            data = await resp.read()
            assert resp.status == 415, data
        assert msgspec.json.decode(data)["type"].endswith("sealed-body-required")
        assert one(hub.db, "SELECT count(*) FROM sync_ops") == 0
        assert one(hub.db, "SELECT count(*) FROM cards WHERE holder_name = 'Klara Text'") == 0
    finally:
        await client.close()


async def test_another_node_can_neither_open_nor_resend_what_was_sealed_to_a_node(hub, tmp_path):
    """Kasse 2 is certified by the same organizer (or is a stolen device): a push captured from
    Kasse 1 does not open at the hub under Kasse 2's signature, and Kasse 1's pull answers do
    not open with Kasse 2's key."""
    _, db1, one_client = await enrolled(hub, tmp_path, name="Kasse 1")
    _, db2, other = await enrolled(hub, tmp_path, name="Kasse 2")
    tap = await Tap.start(hub.url)
    one_client.hub_url = tap.url
    try:
        await one_client.round()
        await other.round()
        cards.issue_card(db1, one_client.signer, product_id=hub.ids["annual_products"][0], kind="annual",
                         now=utcnow(), holder_name="Nur Für Kasse Eins")
        await one_client.round()
        pull, push = tap.requests("/pull")[0], tap.requests("/push")[0]
        assert msgspec.json.decode(one_client.sealer.open(pull.answer, hub_public(one_client)))["changes"]
        for answer in (pull.answer, push.answer):
            with pytest.raises(sealed.BadBox):
                other.sealer.open(answer, hub_public(other))
        before = one(hub.db, "SELECT count(*) FROM sync_ops")
        # Kasse 2 signs Kasse 1's sealed body as its own request
        resent_headers = auth.sign_request(other.signer.private, other.signer.key_id, other.node["id"], "POST",
                                           "/sync/v1/push", push.body, sent=utcnow(), protocol=PROTOCOL)
        resent = type(push)(push.method, push.path_qs, {**resent_headers, "Content-Type": sealed.MEDIA}, push.body)
        code, _, data = await replay(hub.url, resent)
        assert code == 400 and msgspec.json.decode(data)["type"].endswith("bad-sealed-body"), data
        assert one(hub.db, "SELECT count(*) FROM sync_ops") == before
    finally:
        await one_client.close()
        await other.close()
        await tap.close()


async def test_a_push_sealed_to_a_rotated_hub_key_is_sealed_again(hub, tmp_path):
    _, db, client = await enrolled(hub, tmp_path)
    tap = await Tap.start(hub.url)
    client.hub_url = tap.url
    try:
        await client.round()
        old_key = client._hub_key().key_id
        new_key = nodes.rotate_hub_key(hub.dir, hub.db)
        card = cards.issue_card(db, client.signer, product_id=hub.ids["annual_products"][0], kind="annual",
                                now=utcnow())
        assert (await client.round()).pushed == 1
        first, second = tap.requests("/push")[:2]
        assert sealed.recipient(first.body) == old_key and first.status == 409
        assert msgspec.json.decode(first.answer)["type"].endswith("sealed-to-other-key")
        assert sealed.recipient(second.body) == new_key and second.status == 200
        assert one(hub.db, "SELECT count(*) FROM cards WHERE id = ?", card["id"]) == 1
    finally:
        await client.close()
        await tap.close()
