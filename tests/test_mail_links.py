"""Sent mails keep no working personalization link (issue 11): the real shop API, a real SMTP
server, the hub's own mail worker, and the bytes of the hub's database files afterwards."""

from __future__ import annotations

import pytest

from core.base import sql
from hub.services import mail
from tests.helpers import async_wait_until
from tests.test_mail import body
from tests.test_shop import LINK, Shop, local, order_body, shop_factory  # noqa: F401 (fixture)


@pytest.fixture
async def shop(shop_factory) -> Shop:  # noqa: F811
    return await shop_factory()


def database_bytes(shop: Shop) -> bytes:
    """Everything the hub keeps on disk for its database: the file and its write-ahead log (none
    on PostgreSQL, whose old row versions stay until VACUUM: docs/postgresql.md; the rows are
    checked there by all_text)."""
    folder = shop.hub.dir
    return b"".join(p.read_bytes() for p in sorted(folder.glob("hub.sqlite*")) if p.is_file())


def all_text(shop: Shop) -> str:
    """Every value of every table, as text."""
    db = shop.hub.db
    tables = sql.table_names(db)
    return "\n".join(str(row) for table in tables for row in db.execute(f'SELECT * FROM "{table}"'))


async def test_a_sent_mail_keeps_no_link_token_and_the_link_still_works(shop: Shop):
    """Fails on the code before: the sent row kept its body with every token in clear, so
    whoever read the database (a backup, a support copy) could personalize the cards."""
    response = await shop.post(order_body(shop))
    assert response.status == 201, await response.text()
    (msg,) = await shop.mails()
    links = list(dict.fromkeys(LINK.findall(body(msg, "plain"))))
    tokens = [link.rsplit("/", 1)[1] for link in links]
    assert len(tokens) == 3
    await async_wait_until(lambda: shop.hub.db.execute("SELECT sent_at FROM mail_queue").fetchone()["sent_at"],
                           timeout=5)

    stored = shop.hub.db.execute("SELECT body_text, body_html FROM mail_queue").fetchone()
    assert stored["body_text"].count("/p/" + mail.REDACTED) == 6  # German and English part
    assert "Anna Müller" in stored["body_text"]  # the record of what was sent stays readable
    dump, raw = all_text(shop), database_bytes(shop)
    for token in tokens:
        assert token not in dump
        assert token.encode() not in raw

    # the customer's own mail still works
    page = await shop.client.session.get(local(shop, links[1]))
    assert page.status == 200 and "Jahreskarte" in await page.text()


async def test_an_unsent_mail_keeps_its_link_until_it_is_sent(shop_factory):  # noqa: F811
    """A mail waiting for a dead mail server must still carry its link when it finally goes."""
    shop = await shop_factory(smtp_up=False)
    response = await shop.post(order_body(shop))
    assert response.status == 201
    await async_wait_until(lambda: shop.hub.db.execute("SELECT attempts FROM mail_queue").fetchone()["attempts"],
                           timeout=5)
    queued = shop.hub.db.execute("SELECT body_text FROM mail_queue").fetchone()["body_text"]
    assert len(LINK.findall(queued)) == 6


def test_redaction_touches_only_link_tokens():
    text = "Link: https://shop.example/p/" + "A" * 43 + "\nOrder 2026-000017, /p/short stays"
    assert mail.redact_links(text) == f"Link: https://shop.example/p/{mail.REDACTED}\nOrder 2026-000017, /p/short stays"
    assert mail.redact_links(None) is None
