"""The demo's mail inbox (`cli/demo_inbox.py`): the sink's mails in a browser, links working.

The office outbox shows sent mails with their personal links removed (the queue is no key
to cards), so the demo's user opens a shop order's link here. Real files as the sink writes
them, the real aiohttp app on loopback; hostile headers and text are escaped, and only the
sink's own file names are served (no path from the URL reaches the file system)."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from cli import demo_inbox
from hub.services.mail import MailConfigError
from tests.test_mail import mail_settings

LINK = "http://127.0.0.1:8080/p/AbC_123-xyz"


def write_mail(folder: Path, name: str, subject: str, text: str, to: str = "eva@example.org") -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Museum <t@example.org>", to, subject
    message["Date"] = "Wed, 02 Dec 2026 10:00:00 +0100"
    message.set_content(text)
    (folder / name).write_bytes(bytes(message))


@pytest.fixture
async def inbox(aiohttp_client, tmp_path):
    write_mail(tmp_path, "20261202-100000-0001.eml", "Ihre Jahreskarte", f"Hallo Eva,\nbitte hier: {LINK}\nDanke")
    write_mail(tmp_path, "20261202-100500-0002.eml", "<script>alert(1)</script>",
               'Text <b>bold</b> and a "quoted" http://x.example/a"onmouseover="alert(1)', to="<x@example.org>")
    (tmp_path / "secret.txt").write_text("not a mail")
    return await aiohttp_client(demo_inbox.app(tmp_path))


async def test_the_inbox_lists_mails_newest_first_and_a_mail_shows_its_link(inbox):
    listing = await (await inbox.get("/")).text()
    assert listing.index("&lt;script&gt;") < listing.index("Ihre Jahreskarte")  # newest first
    assert "<script>alert" not in listing
    page = await (await inbox.get("/mail/20261202-100000-0001.eml")).text()
    assert f'<a href="{LINK}">{LINK}</a>' in page


async def test_hostile_text_is_escaped_and_only_urls_become_links(inbox):
    page = await (await inbox.get("/mail/20261202-100500-0002.eml")).text()
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert 'onmouseover="alert' not in page  # the quote ends the URL: no attribute injection
    assert '<a href="http://x.example/a">' in page


@pytest.mark.parametrize("name", ["secret.txt", "..%2Fhub%2Fhub.toml", "20261202-100000-0001.eml.part",
                                  "20261202-100000-9999.eml"])
async def test_only_the_sinks_own_mail_files_are_served(inbox, name):
    response = await inbox.get("/mail/" + name)
    assert response.status == 404
    assert "not a mail" not in await response.text()


def test_the_inbox_url_setting_is_checked(tmp_path):
    (tmp_path / "hub.toml").write_text('[mail]\nhost = "127.0.0.1"\ninbox_url = "http://127.0.0.1:8084/"\n')
    assert mail_settings(tmp_path).inbox_url == "http://127.0.0.1:8084/"
    for bad in ('"javascript:alert(1)"', '"http://x/\\"><script>"', "42"):
        (tmp_path / "hub.toml").write_text(f"[mail]\ninbox_url = {bad}\n")
        with pytest.raises(MailConfigError, match="inbox_url"):
            mail_settings(tmp_path)
