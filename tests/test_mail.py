"""Outgoing mail (hub/services/mail.py) against a real SMTP server: aiosmtpd on loopback."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import socket
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from core.base.clock import iso, utcnow
from core.base.errors import ValidationError
from core.base.storage import connect, transaction
from hub.app import read_settings
from hub.services.mail import SECTION, MailConfigError, MailSettings, MailWorker, backoff_s, enqueue, pending, send_due
from tests.helpers import async_wait_until

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
SUBJECT = "Ihr Jahresausweis – bitte personalisieren (Müller)"
TEXT = ("Grüße aus dem Museum!\nÖffnen Sie https://hub.example.org/p/ABC, um Ihren Ausweis zu personalisieren.\n"
        "ÄÖÜ äöü ß €")
HTML = "<p>Grüße aus dem <b>Museum</b>: <a href=\"https://hub.example.org/p/ABC\">Ausweis personalisieren</a></p>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler: keeps (envelope sender, recipients, raw bytes) of each message."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def parsed(self, i: int = 0) -> email.message.EmailMessage:
        return email.message_from_bytes(self.received[i][2], policy=email.policy.default)


def body(msg: email.message.EmailMessage, kind: str) -> str:
    """A decoded body part as the reader sees it (wire CRLF -> newline)."""
    return msg.get_body((kind,)).get_content().replace("\r\n", "\n").rstrip("\n")


class Smtp:
    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp():
    server = Smtp(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def db(tmp_path: Path):
    conn = connect(tmp_path / "hub.sqlite")
    yield conn
    conn.close()


def settings_for(port: int) -> MailSettings:
    return MailSettings(host="127.0.0.1", port=port, sender="Stadtmuseum Köln <tickets@museum.example>", timeout=3)


def row(db, mail_id: str) -> dict:
    return db.execute("SELECT * FROM mail_queue WHERE id = ?", (mail_id,)).fetchone()


async def test_queued_mail_arrives_with_headers_and_utf8_body(db, smtp):
    mail_id = enqueue(db, to="Anna.Mueller@Example.org", subject=SUBJECT, text=TEXT, html=HTML, now=NOW)
    assert pending(db) == 1

    assert await send_due(db, settings_for(smtp.port), NOW) == (1, 0)

    assert len(smtp.inbox.received) == 1
    mail_from, rcpt, _ = smtp.inbox.received[0]
    assert mail_from == "tickets@museum.example"
    assert rcpt == ["Anna.Mueller@example.org"]
    msg = smtp.inbox.parsed()
    stored = row(db, mail_id)
    assert msg["Subject"] == SUBJECT
    assert msg["To"] == "Anna.Mueller@example.org"
    assert msg["From"].addresses[0].display_name == "Stadtmuseum Köln"
    assert msg["Message-ID"] == stored["message_id"] == f"<{mail_id}@museum.example>"
    assert msg["Date"].datetime == NOW
    plain = msg.get_body(("plain",))
    assert plain.get_content_charset() == "utf-8"
    assert body(msg, "plain") == TEXT
    assert body(msg, "html") == HTML
    assert stored["sent_at"] == iso(NOW) and stored["attempts"] == 1 and stored["last_error"] is None
    assert pending(db) == 0
    assert await send_due(db, settings_for(smtp.port), NOW + dt.timedelta(hours=1)) == (0, 0)
    assert len(smtp.inbox.received) == 1


async def test_smtp_down_keeps_the_mail_and_sends_it_exactly_once_when_back(db):
    server = Smtp(free_port())  # nothing listens yet
    settings = settings_for(server.port)
    mail_id = enqueue(db, to="anna@example.org", subject=SUBJECT, text=TEXT, now=NOW)

    assert await send_due(db, settings, NOW) == (0, 1)
    stored = row(db, mail_id)
    assert stored["attempts"] == 1
    assert "Connection" in stored["last_error"] and str(server.port) in stored["last_error"]
    assert stored["sent_at"] is None
    assert stored["next_attempt_at"] == iso(NOW + dt.timedelta(seconds=30)) > iso(NOW)

    # still down at the next attempt: backoff doubles, the mail stays
    assert await send_due(db, settings, NOW + dt.timedelta(seconds=30)) == (0, 1)
    stored = row(db, mail_id)
    assert stored["attempts"] == 2
    assert stored["next_attempt_at"] == iso(NOW + dt.timedelta(seconds=30 + 60))

    server.start()
    try:
        # back, but not due yet: nothing happens
        assert await send_due(db, settings, NOW + dt.timedelta(seconds=60)) == (0, 0)
        assert server.inbox.received == []
        # due: sent once, and never again
        assert await send_due(db, settings, NOW + dt.timedelta(seconds=90)) == (1, 0)
        assert await send_due(db, settings, NOW + dt.timedelta(hours=2)) == (0, 0)
        assert len(server.inbox.received) == 1
        assert body(server.inbox.parsed(), "plain") == TEXT
        stored = row(db, mail_id)
        assert stored["sent_at"] == iso(NOW + dt.timedelta(seconds=90)) and stored["attempts"] == 3
        assert stored["last_error"] is None
    finally:
        server.stop()


def test_backoff_doubles_and_is_capped_at_an_hour():
    assert [backoff_s(n) for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


async def test_a_mail_queued_in_a_rolled_back_transaction_is_never_sent(db, smtp):
    with pytest.raises(RuntimeError), transaction(db):
        db.execute("INSERT INTO node (id, role, name, created_at) VALUES ('n1', 'hub', 'h', ?)", (iso(NOW),))
        enqueue(db, to="anna@example.org", subject="Bestellung", text="Danke!", now=NOW)
        raise RuntimeError("order failed")
    assert pending(db) == 0
    assert db.execute("SELECT count(*) AS n FROM node").fetchone()["n"] == 0

    with transaction(db):  # committed together with its change
        db.execute("INSERT INTO node (id, role, name, created_at) VALUES ('n1', 'hub', 'h', ?)", (iso(NOW),))
        enqueue(db, to="bob@example.org", subject="Bestellung", text="Danke!", now=NOW)
    assert await send_due(db, settings_for(smtp.port), NOW) == (1, 0)
    assert [rcpt for _, rcpt, _ in smtp.inbox.received] == [["bob@example.org"]]


async def test_the_worker_sends_mail_queued_while_it_runs_when_woken(db, smtp):
    worker = MailWorker(db, settings_for(smtp.port), idle_s=30)  # without wake() it would sleep 30 s
    rounds: list[float] = []  # what each finished round asked to wait
    one_round = worker.round

    async def counted() -> float:
        delay = await one_round()
        rounds.append(delay)
        return delay

    worker.round = counted
    worker.start()
    try:
        await async_wait_until(lambda: rounds, what="the worker's first round")
        assert rounds == [30]  # the worker has found nothing and sleeps
        enqueue(db, to="anna@example.org", subject=SUBJECT, text=TEXT, now=utcnow())
        worker.wake()
        await async_wait_until(lambda: smtp.inbox.received, what="the mail at the SMTP server")
        assert len(smtp.inbox.received) == 1
        assert smtp.inbox.parsed()["Subject"] == SUBJECT
    finally:
        await worker.stop()  # lets the round in progress finish (and record the send)
    assert not worker.running
    assert rounds == [30, 30]  # the woken round sent it, and nothing more ran
    assert pending(db) == 0 and len(smtp.inbox.received) == 1


@pytest.mark.parametrize("bad", [
    "anna", "anna@", "@example.org", "anna@example", "anna maria@example.org", "anna@@example.org",
    "anna@example.org\r\nBcc: eve@example.org", "müller@example.org", "anna@exa mple.org", "a..b@example.org", "",
])
def test_a_bad_address_is_refused_at_enqueue(db, bad):
    with pytest.raises(ValidationError, match="not a usable e-mail address") as info:
        enqueue(db, to=bad, subject="Hallo", text="Text", now=NOW)
    assert info.value.field == "to"
    assert pending(db) == 0


def test_address_is_normalised_and_headers_cannot_be_injected(db):
    mail_id = enqueue(db, to=" anna@Müller.DE ", subject="Hallo", text="Text", now=NOW)
    assert row(db, mail_id)["to_address"] == "anna@xn--mller-kva.de"
    with pytest.raises(ValidationError, match="one line"):
        enqueue(db, to="anna@example.org", subject="Hallo\r\nBcc: eve@example.org", text="Text", now=NOW)
    with pytest.raises(ValidationError, match="text body"):
        enqueue(db, to="anna@example.org", subject="Hallo", text="", now=NOW)


def mail_settings(folder: Path) -> MailSettings:
    """`[mail]` as the hub reads it from hub.toml in *folder*."""
    return read_settings(folder).get(SECTION)


def test_settings_from_hub_toml(tmp_path: Path):
    missing = mail_settings(tmp_path)
    assert (missing.host, missing.port, missing.configured) == ("127.0.0.1", 25, False)
    assert "no [mail] section" in missing.notice and "hub.toml" in missing.notice

    (tmp_path / "hub.toml").write_text(
        '[print]\nbatch_size = 5\n\n[mail]\nhost = "smtp.example.org"\nport = 587\nfrom = "Museum <t@example.org>"\n'
        'starttls = true\nusername = "t"\npassword = "geheim"\ntimeout = 5\n', encoding="utf-8")
    settings = mail_settings(tmp_path)
    assert (settings.host, settings.port, settings.sender, settings.starttls) == (
        "smtp.example.org", 587, "Museum <t@example.org>", True)
    assert (settings.username, settings.password, settings.timeout) == ("t", "geheim", 5.0)
    assert settings.configured and settings.notice is None and settings.domain == "example.org"
    assert "geheim" not in repr(settings)

    (tmp_path / "hub.toml").write_text('[mail]\nport = "25"\n', encoding="utf-8")
    with pytest.raises(MailConfigError, match="port"):
        mail_settings(tmp_path)
    (tmp_path / "hub.toml").write_text('[mail]\nhots = "x"\n', encoding="utf-8")
    with pytest.raises(MailConfigError, match="unknown key.*hots"):
        mail_settings(tmp_path)


async def test_the_worker_warns_once_per_outage_not_on_every_retry(db, caplog):
    """Issue 12: the demo logged the same mail warning on every retry. The first failure is a
    warning, its retries are debug lines, and the first mail sent afterwards says so."""
    port = free_port()  # nothing listens here yet
    now = [NOW]
    worker = MailWorker(db, settings_for(port), clock=lambda: now[0])
    enqueue(db, to="anna@example.org", subject=SUBJECT, text=TEXT, now=NOW)
    caplog.set_level(logging.DEBUG, logger="tessera.mail")
    for _ in range(4):
        await worker.round()
        now[0] += dt.timedelta(hours=1)  # past every backoff: each round retries
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "failed (will retry)" in warnings[0]
    assert sum("failed (will retry)" in r.getMessage() for r in caplog.records) == 4  # the retries, as debug
    assert row(db, db.execute("SELECT id FROM mail_queue").fetchone()["id"])["attempts"] == 4
    server = Smtp(port)
    server.start()
    try:
        caplog.clear()
        await worker.round()
        assert len(server.inbox.received) == 1 and pending(db) == 0
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == \
            ["mail: sending again (1 sent)"]
    finally:
        server.stop()
