"""Outgoing e-mail: a queue in the hub database and a worker that sends it over SMTP.

Customers get their personalization links by e-mail (A2, A3). A mail is *queued* with
`enqueue()` inside the transaction of the change that causes it, exactly like
`core.base.outbox.append()`: an order and its mails commit together or not at all, and a
rolled-back order never mails anyone. `send_due()` then sends every due mail with smtplib
in a worker thread. While the mail server is down a mail stays queued: each failed attempt
counts up `attempts`, keeps `last_error` and pushes `next_attempt_at` back (30 s, 1 min,
2 min, ... at most 1 h). Nothing is ever dropped; `sent_at` marks delivery. A sent mail's
row keeps no working personalization link: the token after `/p/` is replaced when the mail is
marked sent (`redact_links`), so the queue is a record of what was sent, not a key to cards.
`MailWorker` runs `send_due()` in a loop on the hub's event loop (its database steps in the hub's
executor on PostgreSQL: `in_db`); call `wake()` after committing a
change that queued mail, so it goes out at once instead of at the next poll.

Delivery is at-least-once: if the server accepts a mail but the connection breaks before
its answer reaches us, the mail is sent again later. Every attempt carries the same
Message-ID, so a receiving system can tell the copies apart.

Settings: an optional `[mail]` section in `hub.toml` in the hub's data folder::

    [mail]
    host = "smtp.example.org"      # default "127.0.0.1"
    port = 587                      # default 25
    from = "Stadtmuseum <tickets@example.org>"   # default "Tessera <tessera@localhost>"
    starttls = true                 # default false (STARTTLS, certificate checked)
    username = "tickets"            # optional; needs password
    password = "secret"             # optional
    timeout = 10                    # seconds per SMTP operation, default 10

Without the file or the section the hub sends to 127.0.0.1:25 (a local MTA) and
`MailSettings.notice` says so; the worker logs that notice once, when it first has mail to send.
The file is read once, when the app is made (`hub/settings.py`); `SECTION` declares `[mail]` there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import re
import smtplib
import socket
import sqlite3
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import policy as email_policy
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from aiohttp import web

from core.base import sql
from core.base.clock import LOCAL_TZ, iso, parse_iso, utcnow
from core.base.errors import ValidationError
from core.base.ids import uuid7
from core.base.storage import transaction
from hub.services.worker import Worker
from hub.settings import SETTINGS_FILE, HubContext, Section
from hub.web.offload import off_loop

log = logging.getLogger("tessera.mail")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 25
DEFAULT_SENDER = "Tessera <tessera@localhost>"
BACKOFF_FIRST_S = 30
BACKOFF_MAX_S = 3600
BATCH = 50  # mails per send_due() call (one SMTP connection)
MAX_SUBJECT = 500
MAX_ERROR = 500
# a personalization link's token (hub/services/personalization.py TOKEN_RE) after its path
_LINK_TOKEN = re.compile(r"(?<=/p/)[A-Za-z0-9_-]{20,100}")
REDACTED = "[sent-link-not-kept]"


class MailConfigError(ValueError):
    """The `[mail]` section of hub.toml is unusable; the message names file and key."""


@dataclass(frozen=True, slots=True)
class MailSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    sender: str = DEFAULT_SENDER  # `from` in hub.toml
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    configured: bool = True  # False: no [mail] section was found, defaults are in use
    # Where people can read what this hub sent, links intact (a test inbox such as the demo's);
    # the office outbox points there, since it shows sent mails with their links removed.
    inbox_url: str | None = None
    source: str = ""  # the file the settings came from (for messages)

    @property
    def notice(self) -> str | None:
        """A clear line for the log when mail is not configured, else None."""
        if self.configured:
            return None
        where = self.source or SETTINGS_FILE
        return (f"mail is not configured (no [mail] section in {where}); sending to {self.host}:{self.port} "
                f"as {self.sender!r} - add [mail] host/port/from there so customers get their links")

    @property
    def domain(self) -> str:
        """The sender's domain, used for Message-IDs."""
        address = parseaddr(self.sender)[1]
        return address.rpartition("@")[2] or "localhost"


def settings_from_dict(section: object | None, source: str = SETTINGS_FILE) -> MailSettings:
    """`[mail]` of hub.toml; defaults (configured=False) when the file or the section is absent."""
    if section is None:
        return MailSettings(configured=False, source=source)
    if not isinstance(section, dict):
        raise MailConfigError(f"{source}: [mail] must be a table")
    known = {"host", "port", "from", "starttls", "username", "password", "timeout", "inbox_url"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise MailConfigError(
            f"{source}: [mail] has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")

    def text(key: str, default: str | None) -> str | None:
        value = section.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise MailConfigError(f"{source}: [mail] {key} must be a non-empty string")
        return value

    host = text("host", DEFAULT_HOST)
    sender = text("from", DEFAULT_SENDER)
    username = text("username", None)
    password = section.get("password")
    if password is not None and not isinstance(password, str):
        raise MailConfigError(f"{source}: [mail] password must be a string")
    if username and password is None:
        raise MailConfigError(f"{source}: [mail] username is set but password is not")
    port = section.get("port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise MailConfigError(f"{source}: [mail] port must be a whole number 1..65535, not {port!r}")
    starttls = section.get("starttls", False)
    if not isinstance(starttls, bool):
        raise MailConfigError(f"{source}: [mail] starttls must be true or false, not {starttls!r}")
    timeout = section.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
        raise MailConfigError(f"{source}: [mail] timeout must be seconds between 0 and 300, not {timeout!r}")
    inbox_url = text("inbox_url", None)
    if inbox_url is not None and not re.fullmatch(r"https?://[^\s\"'<>]+", inbox_url):
        raise MailConfigError(f"{source}: [mail] inbox_url must be an http(s) address, not {inbox_url!r}")
    address = parseaddr(sender)[1]
    if "@" not in address or any(c in sender for c in "\r\n"):
        raise MailConfigError(f"{source}: [mail] from must be an address like 'Museum <tickets@example.org>'")
    return MailSettings(host=host, port=port, sender=sender, starttls=starttls, username=username,
                        password=password, timeout=float(timeout), configured=True, source=source,
                        inbox_url=inbox_url)


SECTION = Section("mail", settings_from_dict, MailConfigError)


# ---------------------------------------------------------------------------------------
# Queueing

_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def normalise_address(text: object) -> str:
    """A plain `local@domain` address (domain lower-cased, IDN as punycode), or ValidationError.

    Deliberately minimal: it refuses what cannot be a deliverable address or could inject
    headers; it does not ask DNS whether the domain receives mail."""
    if not isinstance(text, str):
        raise ValidationError("e-mail address must be text", field="to")
    address = text.strip()

    def refuse(why: str) -> ValidationError:
        return ValidationError(f"not a usable e-mail address: {text!r} ({why})", field="to")

    if not address or len(address) > 254:
        raise refuse("empty or longer than 254 characters")
    if address.count("@") != 1:
        raise refuse("needs exactly one @")
    local, domain = address.split("@")
    if not local or len(local) > 64:
        raise refuse("the part before @ must have 1 to 64 characters")
    if not local.isascii():
        raise refuse("the part before @ must be ASCII")
    if not _LOCAL_PART.fullmatch(local):
        raise refuse("the part before @ holds spaces, quotes or other characters not allowed there")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise refuse("the domain is not valid") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise refuse("the domain must look like example.org")
    return f"{local}@{ascii_domain}"


def enqueue(db: sqlite3.Connection, *, to: str, subject: str, text: str, html: str | None = None,
            now: dt.datetime) -> str:
    """Queue one mail; returns its id. Inside a transaction it becomes part of it (a
    savepoint), so the mail commits or rolls back with the caller's change; outside one it
    is committed on its own. The mail is due at once."""
    address = normalise_address(to)
    if not isinstance(subject, str) or not subject.strip():
        raise ValidationError("a mail needs a subject", field="subject")
    if "\r" in subject or "\n" in subject or len(subject) > MAX_SUBJECT:
        raise ValidationError(f"the subject must be one line of at most {MAX_SUBJECT} characters", field="subject")
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("a mail needs a text body", field="text")
    if html is not None and not isinstance(html, str):
        raise ValidationError("the HTML body must be text", field="html")
    mail_id = uuid7()
    stamp = iso(now)
    with transaction(db):
        db.execute(
            "INSERT INTO mail_queue (id, to_address, subject, body_text, body_html, created_at, attempts, "
            "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
            (mail_id, address, subject.strip(), text, html or None, stamp, stamp))
    return mail_id


def pending(db: sqlite3.Connection) -> int:
    """Mails not yet sent (due or waiting for a retry)."""
    return db.execute("SELECT count(*) AS n FROM mail_queue WHERE sent_at IS NULL").fetchone()["n"]


def backoff_s(attempts: int) -> int:
    """Seconds to wait after the *attempts*-th failed attempt: 30, 60, 120, ... at most 3600."""
    return min(BACKOFF_FIRST_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S)


# ---------------------------------------------------------------------------------------
# Sending

_HELO = socket.gethostname() or "localhost"  # not getfqdn(): that may wait for DNS


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, but each header class is made once: the standard library
    makes a new class for every header of every message, cyclic garbage that only a full
    collection frees (measured: 1-3 MB of a hub's RSS after thousands of shop mails)."""

    @functools.cache  # noqa: B019 - one module-level instance, kept for the process's life
    def __getitem__(self, name: str) -> type:
        return super().__getitem__(name)


POLICY = email_policy.default.clone(header_factory=_HeaderClasses())


def build_message(row: dict, settings: MailSettings, now: dt.datetime) -> EmailMessage:
    """The RFC 5322 message for a queued row: UTF-8, quoted-printable, text (+ HTML)."""
    msg = EmailMessage(policy=POLICY)
    msg["From"] = settings.sender
    msg["To"] = row["to_address"]
    msg["Subject"] = row["subject"]
    msg["Date"] = format_datetime(now.astimezone(LOCAL_TZ))
    msg["Message-ID"] = row["message_id"]
    msg.set_content(row["body_text"], charset="utf-8", cte="quoted-printable")
    if row.get("body_html"):
        msg.add_alternative(row["body_html"], subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def _describe(settings: MailSettings, exc: BaseException) -> str:
    return f"{settings.host}:{settings.port}: {type(exc).__name__}: {exc}"[:MAX_ERROR]


def _deliver(settings: MailSettings, messages: list[tuple[str, EmailMessage]]) -> dict[str, str | None]:
    """Send *messages* over one SMTP connection (runs in a thread). Returns id -> None
    (accepted) or the error. A connection-level failure fails every mail not yet sent."""
    results: dict[str, str | None] = {}
    try:
        with smtplib.SMTP(settings.host, settings.port, local_hostname=_HELO, timeout=settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            for mail_id, msg in messages:
                try:
                    smtp.send_message(msg)
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                    results[mail_id] = _describe(settings, exc)  # this mail only; the connection is fine
                else:
                    results[mail_id] = None
    except (OSError, smtplib.SMTPException) as exc:
        error = _describe(settings, exc)
        for mail_id, _ in messages:
            results.setdefault(mail_id, error)
    return results


InDb = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


async def send_due(db: sqlite3.Connection, settings: MailSettings, now: dt.datetime, *,
                   quiet: bool = False, in_db: InDb | None = None) -> tuple[int, int]:
    """Send the mails due at *now* (up to BATCH); returns (sent, failed). A failure is a
    warning in the log, or with *quiet* (the worker's retries of a known outage) a debug line.

    The due rows are first claimed (next_attempt_at moved past the longest the attempt can
    take), so a second caller at the same time does not send them too, and a crash
    mid-send leaves them queued for a later retry. *in_db* runs the claim and the marks (writes:
    the hub's worker passes `off_loop`, so on PostgreSQL they wait for the write lock in the
    executor, not on the event loop); by default inline on *db*."""
    stamp = iso(now)
    lease = iso(now + dt.timedelta(seconds=settings.timeout * (BATCH + 3) + 60))

    async def inline(work: Callable[[sqlite3.Connection], Any]) -> Any:
        return work(db)

    in_db = in_db or inline

    def claim(db: sqlite3.Connection) -> list[dict]:
        with transaction(db):
            rows = db.execute(
                "SELECT id, to_address, subject, body_text, body_html, message_id, attempts FROM mail_queue "
                "WHERE sent_at IS NULL AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                (stamp, BATCH)).fetchall()
            for row in rows:
                row["message_id"] = row["message_id"] or f"<{row['id']}@{settings.domain}>"
                db.execute("UPDATE mail_queue SET next_attempt_at = ?, message_id = ? WHERE id = ?",
                           (lease, row["message_id"], row["id"]))
        return rows

    rows = await in_db(claim)
    if not rows:
        return 0, 0
    messages = []
    results: dict[str, str | None] = {}
    for row in rows:
        try:
            messages.append((row["id"], build_message(row, settings, now)))
        except Exception as exc:  # a row we cannot turn into a message: keep it, say why
            results[row["id"]] = f"cannot build message: {type(exc).__name__}: {exc}"[:MAX_ERROR]
    if messages:
        results.update(await asyncio.to_thread(_deliver, settings, messages))

    def record(db: sqlite3.Connection) -> tuple[int, int]:
        sent = failed = 0
        with sql.overwriting_deleted(db), transaction(db):
            for row in rows:
                error = results.get(row["id"], "not attempted")
                attempts = row["attempts"] + 1
                if error is None:
                    sent += 1
                    db.execute("UPDATE mail_queue SET sent_at = ?, attempts = ?, last_error = NULL, body_text = ?, "
                               "body_html = ? WHERE id = ?", (stamp, attempts, redact_links(row["body_text"]),
                                                             redact_links(row["body_html"]), row["id"]))
                else:
                    failed += 1
                    retry = iso(now + dt.timedelta(seconds=backoff_s(attempts)))
                    db.execute("UPDATE mail_queue SET attempts = ?, next_attempt_at = ?, last_error = ? "
                               "WHERE id = ?", (attempts, retry, error, row["id"]))
        if sent:  # the log still holds the pages with the links in clear
            sql.drop_old_page_copies(db)
        return sent, failed

    sent, failed = await in_db(record)
    if failed:
        log.log(logging.DEBUG if quiet else logging.WARNING, "mail: %d sent, %d failed (will retry): %s", sent,
                failed, next(e for e in results.values() if e is not None))
    return sent, failed


def redact_links(body: str | None) -> str | None:
    """*body* without the tokens of its personalization links (`/p/<token>`): once a mail is
    sent, its copy in the queue must not open the customer's card for whoever reads the
    database (a backup, a support copy). The customer's mail keeps the link."""
    return None if body is None else _LINK_TOKEN.sub(REDACTED, body)


def next_due(db: sqlite3.Connection) -> dt.datetime | None:
    row = db.execute("SELECT min(next_attempt_at) AS t FROM mail_queue WHERE sent_at IS NULL").fetchone()
    return parse_iso(row["t"]) if row["t"] else None


class MailWorker(Worker):
    """Sends queued mail in the background: `start()` on the running loop, `wake()` after
    queuing mail (from the loop's thread), `await stop()` at shutdown (lets a send in
    progress finish, so nothing is half-recorded)."""

    name = "tessera-mail"

    def __init__(self, db: sqlite3.Connection, settings: MailSettings, *,
                 clock: Callable[[], dt.datetime] = utcnow, idle_s: float = 60.0) -> None:
        super().__init__()
        self.db = db
        self.settings = settings
        self.clock = clock
        self.idle_s = idle_s
        self._noticed = False
        self._failing = False  # the last round failed: its retries are not warned about again
        self.in_db: InDb | None = None  # the hub's: off the event loop on PostgreSQL (install_worker)

    def after_failure_s(self) -> float:
        return self.idle_s

    def stop_wait_s(self) -> float:
        return self.settings.timeout + 5

    async def round(self) -> float:
        if self.settings.notice and not self._noticed and await self._read(pending):
            # said once, when there is mail to send: a hub that sells nothing online
            # (and `tessera hub serve` on it) stays quiet
            log.warning("%s", self.settings.notice)
            self._noticed = True
        sent, failed = await send_due(self.db, self.settings, self.clock(), quiet=self._failing, in_db=self.in_db)
        if sent and self._failing:
            log.warning("mail: sending again (%d sent)", sent)
        if sent or failed:  # one warning per outage, not one per retry (the queue keeps each mail's error)
            self._failing = failed > 0 and not sent
        return self._delay(await self._read(next_due))

    async def _read(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        return work(self.db) if self.in_db is None else await self.in_db(work)

    def _delay(self, due: dt.datetime | None) -> float:
        if due is None:
            return self.idle_s
        return min(max((due - self.clock()).total_seconds(), 0.05), self.idle_s)


# ---------------------------------------------------------------------------------------
# The hub app runs the worker

WORKER = web.AppKey("mail_worker", MailWorker)


def install_worker(app: web.Application, hub: HubContext) -> None:
    """Run a MailWorker while *app* runs (started on startup, stopped on cleanup), so every
    way of serving the hub (`tessera hub serve`, the demo, tests) sends its mail. A broken
    `[mail]` section stops the hub at startup with its message."""

    worker = MailWorker(hub.db, MailSettings(configured=False))
    worker.in_db = functools.partial(off_loop, app, hub.db)  # claim and marks off the loop on PostgreSQL
    app[WORKER] = worker

    async def start(app: web.Application) -> None:
        worker.settings = hub.section(SECTION)
        worker.start()

    async def stop(app: web.Application) -> None:
        await worker.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def wake_worker(app: web.Application) -> None:
    """Send newly committed mail now; a no-op where no worker runs (in-process calls)."""
    worker = app.get(WORKER)
    if worker is not None:
        worker.wake()  # before start() (no event yet) this does nothing
