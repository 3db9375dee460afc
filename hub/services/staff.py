"""Office staff: accounts, one-time setup links, logins and sessions of the hub's office web app.

Why Argon2id (PyNaCl's `nacl.pwhash.argon2id`, libsodium): a staff password guards the whole
office, and a stolen hub backup must not give it away cheaply. Argon2id is memory-hard (64 MB
per guess with the INTERACTIVE limits used here), which makes GPU guessing expensive, while a
login costs the hub well under a second; the hash string carries its own salt and limits, so
the limits can be raised later without a migration. PyNaCl is a dependency already.

The rules here, the web views in `hub/web/office/`:
- user names are unique (case-insensitive); roles `admin` and `office`;
- a new account has no password: `add` returns a setup link token (single use, 24 h), stored
  only as its SHA-256 (it is 256-bit random: nothing to brute-force that a salt would protect);
- passwords have at least 12 characters;
- a login that fails MAX_FAILURES times in a row locks the user for 30 s, doubling with each
  lockout up to 15 minutes: the desk PIN rule (`core.catalog.operators`, its constants and the
  node-local `login_failures` table, here with the screen `office`);
- a session is a random cookie secret (stored hashed) with its own CSRF token; it ends after
  IDLE of no requests, or at logout.
Nothing here is replicated to an edge (the tables are not in `feed_triggers.REPLICATED`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import sqlite3
from dataclasses import dataclass

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import pyotp

from core.base.clock import LOCAL_TZ, iso, parse_iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.storage import transaction
from core.catalog import lockouts
from core.sync import conflicts
from hub.services import mail, nodes

ROLES = ("admin", "office")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # a longer "password" only makes the hash slower
SETUP_VALID = dt.timedelta(hours=24)
IDLE = dt.timedelta(minutes=30)
SEEN_STEP = dt.timedelta(seconds=30)  # last_seen_at is written at most this often per session
ONLINE_WITHIN = dt.timedelta(minutes=5)  # a device that pushed or pulled this recently counts as online
SCREEN = "office"  # the login_failures screen of office logins
SETUP_PATH = "/office/setup/"


class LoginRefused(Conflict):
    """Unknown user, wrong password, inactive account or locked out (one message for all but the lock)."""

    slug = "login-refused"
    status = 401
    title = "Login refused"


class CodeNeeded(Conflict):
    """The password was right and the account has TOTP on: the login's second step is due
    (`extra["pending"]` is the half-login's secret for the code step)."""

    slug = "code-needed"
    status = 401
    title = "Code needed"


class SetupRefused(Conflict):
    """A setup link that is unknown, used or expired."""

    slug = "setup-refused"
    status = 410
    title = "Setup link not usable"


@dataclass(frozen=True)
class Session:
    """A logged-in staff member as a request sees it."""

    staff_id: str
    user_name: str
    role: str
    csrf: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    """The Argon2id string of *password* (slow: call it outside a write transaction)."""
    check_password(password)
    return argon2id.str(password.encode(), opslimit=argon2id.OPSLIMIT_INTERACTIVE,
                        memlimit=argon2id.MEMLIMIT_INTERACTIVE).decode()


def check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationError(f"a password has at least {MIN_PASSWORD} characters", field="password")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"a password has at most {MAX_PASSWORD} characters", field="password")


# --- accounts and setup links ---------------------------------------------------------------------------


def add(db: sqlite3.Connection, user_name: str, role: str, now: dt.datetime) -> tuple[dict, str]:
    """A new account without a password, and the token of its setup link (shown once)."""
    user_name = (user_name or "").strip()
    if not 1 <= len(user_name) <= 100:
        raise ValidationError("a user name has 1 to 100 characters", field="user")
    if role not in ROLES:
        raise ValidationError(f"the role is one of {', '.join(ROLES)}", field="role")
    with transaction(db):
        if db.execute("SELECT 1 FROM staff WHERE user_name = ?", (user_name,)).fetchone():
            raise Conflict(f"a staff member named {user_name!r} exists already", field="user")
        row = db.execute("INSERT INTO staff (id, user_name, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                         "RETURNING id, user_name, role, active, created_at",
                         (uuid7(), user_name, role, iso(now), iso(now))).fetchone()
        token = _new_link(db, row["id"], now)
    return row, token


def setup_link(db: sqlite3.Connection, user_name: str, now: dt.datetime) -> str:
    """A fresh setup link for an existing account (a forgotten password); older open links die."""
    with transaction(db):
        row = db.execute("SELECT id FROM staff WHERE user_name = ?", (user_name,)).fetchone()
        if row is None:
            raise NotFound(f"no staff member named {user_name!r}")
        return _new_link(db, row["id"], now)


def _new_link(db: sqlite3.Connection, staff_id: str, now: dt.datetime) -> str:
    token = secrets.token_urlsafe(32)
    db.execute("UPDATE staff_setup_links SET used_at = ? WHERE staff_id = ? AND used_at IS NULL",
               (iso(now), staff_id))
    db.execute("INSERT INTO staff_setup_links (token_hash, staff_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
               (_hash(token), staff_id, iso(now), iso(now + SETUP_VALID)))
    return token


def open_link(db: sqlite3.Connection, token: str, now: dt.datetime) -> dict:
    """The account a setup link is for, if the link is open; else SetupRefused."""
    if not isinstance(token, str) or len(token) > 100:
        raise SetupRefused("unknown setup link")
    row = db.execute("SELECT l.*, s.user_name, s.role FROM staff_setup_links l JOIN staff s ON s.id = l.staff_id "
                     "WHERE l.token_hash = ?", (_hash(token),)).fetchone()
    if row is None:
        raise SetupRefused("unknown setup link")
    if row["used_at"]:
        raise SetupRefused("this setup link has been used already")
    if parse_iso(row["expires_at"]) <= now:
        raise SetupRefused("this setup link has expired")
    return row


def set_password(db: sqlite3.Connection, token: str, password: str, now: dt.datetime) -> dict:
    """Set the password through a setup link and use the link up (both or neither); ends the
    account's sessions and lockout."""
    open_link(db, token, now)
    return store_password(db, token, hash_password(password), now)  # slow hash: before the write transaction


def store_password(db: sqlite3.Connection, token: str, password_hash: str, now: dt.datetime) -> dict:
    """The second half of set_password, for a hash made elsewhere (the web view: in a thread)."""
    with transaction(db):
        link = open_link(db, token, now)  # again inside: two tabs may race for one link
        db.execute("UPDATE staff_setup_links SET used_at = ? WHERE token_hash = ?", (iso(now), link["token_hash"]))
        db.execute("UPDATE staff SET password_hash = ?, updated_at = ? WHERE id = ?",
                   (password_hash, iso(now), link["staff_id"]))
        db.execute("DELETE FROM staff_sessions WHERE staff_id = ?", (link["staff_id"],))
        lockouts.clear(db, link["staff_id"], SCREEN)  # a savepoint inside this transaction
    return {"user_name": link["user_name"], "role": link["role"]}


# --- login, lockout, sessions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """A login under way: the account (None for an unknown user name) and the hash to check the
    password against (a dummy one for an unknown name, so both take the same time)."""

    row: dict | None
    stored: str


def login(db: sqlite3.Connection, user_name: str, password: str, now: dt.datetime) -> tuple[str, Session]:
    """A new session (cookie secret, Session) if the password is right and the user not locked out.
    The web view runs the same three steps with the slow check in a worker thread."""
    attempt = begin_login(db, user_name, now)
    return finish_login(db, attempt, password_matches(attempt, password), now)


def begin_login(db: sqlite3.Connection, user_name: str, now: dt.datetime) -> Attempt:
    """Find the account; LoginRefused now if it is locked (no password is checked then)."""
    row = db.execute("SELECT * FROM staff WHERE user_name = ?", ((user_name or "").strip()[:100],)).fetchone()
    if row is None or not row["active"] or not row["password_hash"]:
        return Attempt(None, _dummy_hash())
    locked = lockouts.locked_until(db, row["id"], SCREEN, now)
    if locked:
        raise LoginRefused("too many failed logins", locked_until=locked)
    return Attempt(row, row["password_hash"])


def password_matches(attempt: Attempt, password: str) -> bool:
    """The slow part (Argon2id, ~60 ms and 64 MB): touches no database, so it may run in a thread."""
    return _verify(attempt.stored, password) and attempt.row is not None


def finish_login(db: sqlite3.Connection, attempt: Attempt, matches: bool, now: dt.datetime) -> tuple[str, Session]:
    """Start the session, or count the failure (and maybe lock)."""
    if attempt.row is None:
        raise LoginRefused("unknown user name or wrong password")
    if matches and attempt.row["totp_secret"]:
        raise CodeNeeded("a code from the authenticator app is needed", pending=_half_login(db, attempt.row, now))
    if matches:
        return _start_session(db, attempt.row, now)
    locked = lockouts.count_failure(db, attempt.row["id"], SCREEN, now).locked_until
    if locked:
        raise LoginRefused(f"wrong password {lockouts.MAX_FAILURES} times: locked", locked_until=locked)
    raise LoginRefused("unknown user name or wrong password")


def _verify(stored: str, password: str) -> bool:
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return False
    try:
        return argon2id.verify(stored.encode(), password.encode())
    except nacl.exceptions.InvalidkeyError:
        return False


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def _start_session(db: sqlite3.Connection, row: dict, now: dt.datetime) -> tuple[str, Session]:
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with transaction(db):
        lockouts.clear(db, row["id"], SCREEN)
        db.execute("DELETE FROM staff_sessions WHERE last_seen_at < ?", (iso(now - IDLE),))
        db.execute("INSERT INTO staff_sessions (id_hash, staff_id, csrf, created_at, last_seen_at) "
                   "VALUES (?, ?, ?, ?, ?)", (_hash(secret), row["id"], csrf, iso(now), iso(now)))
        db.execute("UPDATE staff SET last_login_at = ? WHERE id = ?", (iso(now), row["id"]))
    return secret, Session(row["id"], row["user_name"], row["role"], csrf)


def session(db: sqlite3.Connection, secret: str | None, now: dt.datetime) -> Session | None:
    """The session of a cookie secret, if it is live (and marks it seen); an idle one ends here."""
    if not secret or len(secret) > 100:
        return None
    row = db.execute("SELECT x.*, s.user_name, s.role, s.active FROM staff_sessions x JOIN staff s "
                     "ON s.id = x.staff_id WHERE x.id_hash = ?", (_hash(secret),)).fetchone()
    if row is None:
        return None
    seen = parse_iso(row["last_seen_at"])
    if not row["active"] or seen + IDLE <= now:
        with transaction(db):
            db.execute("DELETE FROM staff_sessions WHERE id_hash = ?", (row["id_hash"],))
        return None
    if now - seen >= SEEN_STEP:
        with transaction(db):
            db.execute("UPDATE staff_sessions SET last_seen_at = ? WHERE id_hash = ?", (iso(now), row["id_hash"]))
    return Session(row["staff_id"], row["user_name"], row["role"], row["csrf"])


def csrf_ok(current: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(current.csrf.encode(), str(sent).encode())


def logout(db: sqlite3.Connection, secret: str | None) -> None:
    if secret and len(secret) <= 100:
        with transaction(db):
            db.execute("DELETE FROM staff_sessions WHERE id_hash = ?", (_hash(secret),))


# --- the start page -------------------------------------------------------------------------------------


def today_bounds(now: dt.datetime) -> tuple[str, str]:
    """[start, end) of the local calendar day of *now*, as stored UTC strings."""
    day = now.astimezone(LOCAL_TZ).date()
    start = dt.datetime.combine(day, dt.time(), LOCAL_TZ)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), LOCAL_TZ)
    return iso(start), iso(end)


def sales_today(db: sqlite3.Connection, now: dt.datetime) -> list[dict]:
    """Orders and their total per channel for the local day of *now* (every channel, zeros included)."""
    start, end = today_bounds(now)
    found = {r["channel"]: r for r in db.execute(
        "SELECT channel, count(*) AS orders, coalesce(sum(total_cents), 0) AS total_cents FROM orders "
        "WHERE created_at >= ? AND created_at < ? GROUP BY channel", (start, end))}
    return [found.get(c) or {"channel": c, "orders": 0, "total_cents": 0}
            for c in ("shop", "phone", "cashdesk", "counter")]


def devices(db: sqlite3.Connection, now: dt.datetime) -> list[dict]:
    """Each enrolled device (not revoked, not the hub itself: it never syncs with itself, so it
    would always look offline): name, role, last sync (push or pull) and online or not."""
    listed = nodes.list_nodes(db)
    revoked = {n["node_id"] for n in listed if n["revoked_at"] and not _has_live_cert(listed, n["node_id"])}
    out = []
    for node in conflicts.node_status(db):
        if node["node_id"] in revoked or node["role"] == "hub":
            continue
        last = max(filter(None, (node["last_push_at"], node["last_pull_at"])), default=None)
        online = last is not None and now - parse_iso(last) <= ONLINE_WITHIN
        out.append({"name": node["name"], "role": node["role"], "last_sync": last, "online": online,
                    "open_conflicts": node["open_conflicts"]})
    return out


def _has_live_cert(listed: list[dict], node_id: str) -> bool:
    """A node whose key was rotated has a revoked old certificate and a live new one."""
    return any(n["node_id"] == node_id and not n["revoked_at"] for n in listed)


def start_page(db: sqlite3.Connection, now: dt.datetime) -> dict:
    """Everything the office start page shows."""
    return {
        "sales": sales_today(db, now),
        "devices": devices(db, now),
        "open_conflicts": db.execute("SELECT count(*) AS n FROM conflicts WHERE resolved_at IS NULL").fetchone()["n"],
        "print_waiting": db.execute("SELECT count(*) AS n FROM print_jobs WHERE state = 'queued'").fetchone()["n"],
        "mail_waiting": mail.pending(db),
    }


# --- the staff list (admins) ----------------------------------------------------------------------------


def list_staff(db: sqlite3.Connection) -> list[dict]:
    """Every account: user, role, active, last login, TOTP on or off (never the secret)."""
    return db.execute("SELECT id, user_name, role, active, last_login_at, created_at, "
                      "totp_secret IS NOT NULL AS totp, password_hash IS NOT NULL AS has_password "
                      "FROM staff ORDER BY user_name").fetchall()


def _account(db: sqlite3.Connection, staff_id: str) -> dict:
    row = db.execute("SELECT * FROM staff WHERE id = ?", (staff_id,)).fetchone()
    if row is None:
        raise NotFound("no such staff member")
    return row


def link_for(db: sqlite3.Connection, staff_id: str, now: dt.datetime) -> tuple[dict, str]:
    """A fresh setup link for the account *staff_id* (a forgotten password), as `setup_link`."""
    row = _account(db, staff_id)
    return row, setup_link(db, row["user_name"], now)


def deactivate(db: sqlite3.Connection, actor_id: str, staff_id: str, now: dt.datetime) -> dict:
    """Switch an account off and end its sessions at once. Refused for oneself (no locking oneself
    out by a slip) and for the last active admin (someone must be able to undo it)."""
    with transaction(db):
        row = _account(db, staff_id)
        if staff_id == actor_id:
            raise Conflict("you cannot deactivate your own account", field="id")
        if row["role"] == "admin" and row["active"]:
            admins = db.execute("SELECT count(*) AS n FROM staff WHERE role = 'admin' AND active = 1").fetchone()["n"]
            if admins <= 1:
                raise Conflict("the last active admin cannot be deactivated", field="id")
        db.execute("UPDATE staff SET active = 0, updated_at = ? WHERE id = ?", (iso(now), staff_id))
        db.execute("DELETE FROM staff_sessions WHERE staff_id = ?", (staff_id,))
        db.execute("DELETE FROM staff_code_steps WHERE staff_id = ?", (staff_id,))
    return row


def reactivate(db: sqlite3.Connection, staff_id: str, now: dt.datetime) -> dict:
    """Switch an account on again (its password, if any, works again)."""
    with transaction(db):
        row = _account(db, staff_id)
        db.execute("UPDATE staff SET active = 1, updated_at = ? WHERE id = ?", (iso(now), staff_id))
    return row


def change_password(db: sqlite3.Connection, staff_id: str, old: str, new: str, now: dt.datetime,
                    keep: str | None = None) -> None:
    """Change one's own password, proven by the old one (a session left open on a shared PC must
    not be enough). Ends every other session of the account (*keep*: this session's secret).
    The web view runs the same steps with the slow middle one in a thread."""
    stored = _account(db, staff_id)["password_hash"]
    store_changed_password(db, staff_id, new_password_hash(stored, old, new), now, keep)


def new_password_hash(stored: str | None, old: str, new: str) -> str:
    """The slow part (two Argon2id runs, no database): the new hash if *old* matches *stored*."""
    if not stored or not _verify(stored, old):
        raise ValidationError("the current password is wrong", field="old")
    return hash_password(new)


def store_changed_password(db: sqlite3.Connection, staff_id: str, new_hash: str, now: dt.datetime,
                           keep: str | None = None) -> None:
    with transaction(db):
        db.execute("UPDATE staff SET password_hash = ?, updated_at = ? WHERE id = ?", (new_hash, iso(now), staff_id))
        db.execute("DELETE FROM staff_sessions WHERE staff_id = ? AND id_hash != ?",
                   (staff_id, _hash(keep) if keep else ""))


def password_hash_of(db: sqlite3.Connection, staff_id: str) -> str | None:
    return _account(db, staff_id)["password_hash"]


# --- TOTP (RFC 6238) for admins ------------------------------------------------------------------------
# Why: an admin can enroll devices, rotate the hub key and add staff; a phished password alone
# must not be enough. Codes are 6 digits, 30 s steps, one step either way (clock drift of the
# phone), and a code is accepted once only: the last accepted step is stored and a code must be
# of a later step. Wrong codes count toward the login lockout like wrong passwords.

TOTP_ISSUER = "Tessera"
CODE_STEP_VALID = dt.timedelta(minutes=5)  # the time between password and code


def totp_start(db: sqlite3.Connection, staff_id: str) -> tuple[str, str]:
    """A new secret (pending until confirmed by a code) and its otpauth:// URI; admins only."""
    row = _account(db, staff_id)
    if row["role"] != "admin":
        raise ValidationError("TOTP is for admin accounts", field="totp")
    if row["totp_secret"]:
        raise Conflict("TOTP is on already", field="totp")
    secret = pyotp.random_base32()
    with transaction(db):
        db.execute("UPDATE staff SET totp_pending = ? WHERE id = ?", (secret, staff_id))
    return secret, pyotp.TOTP(secret).provisioning_uri(name=row["user_name"], issuer_name=TOTP_ISSUER)


def totp_confirm(db: sqlite3.Connection, staff_id: str, code: str, now: dt.datetime) -> None:
    """Turn TOTP on with the pending secret, if *code* is a valid code of it (else nothing changes)."""
    with transaction(db):
        row = _account(db, staff_id)
        if not row["totp_pending"]:
            raise ValidationError("start the TOTP setup first", field="code")
        step = _code_step(row["totp_pending"], code, now, after=None)
        if step is None:
            raise ValidationError("the code is not right", field="code")
        db.execute("UPDATE staff SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?, "
                   "updated_at = ? WHERE id = ?", (step, iso(now), staff_id))


def totp_off(db: sqlite3.Connection, staff_id: str, now: dt.datetime, code: str | None = None,
             by_other_admin: bool = False) -> None:
    """Turn TOTP off: one's own needs a current code; another admin may do it without (lost phone)."""
    with transaction(db):
        row = _account(db, staff_id)
        if not row["totp_secret"]:
            raise Conflict("TOTP is off already", field="totp")
        if not by_other_admin:
            step = _code_step(row["totp_secret"], code, now, after=row["totp_last_step"])
            if step is None:
                raise ValidationError("the code is not right", field="code")
        db.execute("UPDATE staff SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL, "
                   "updated_at = ? WHERE id = ?", (iso(now), staff_id))


def _code_step(secret: str, code: str | None, now: dt.datetime, after: int | None) -> int | None:
    """The time step (now ±1) whose code *code* is, if it is later than *after*; else None."""
    code = (code or "").strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp, here = pyotp.TOTP(secret), int(now.timestamp()) // 30
    for step in (here - 1, here, here + 1):
        if (after is None or step > after) and hmac.compare_digest(totp.at(step * 30), code):
            return step
    return None


def _half_login(db: sqlite3.Connection, row: dict, now: dt.datetime) -> str:
    secret = secrets.token_urlsafe(32)
    with transaction(db):
        db.execute("DELETE FROM staff_code_steps WHERE created_at < ?", (iso(now - CODE_STEP_VALID),))
        db.execute("INSERT INTO staff_code_steps (id_hash, staff_id, created_at) VALUES (?, ?, ?)",
                   (_hash(secret), row["id"], iso(now)))
    return secret


def finish_code(db: sqlite3.Connection, pending: str | None, code: str, now: dt.datetime) -> tuple[str, Session]:
    """The login's second step: a session if *code* is right for the half-login *pending*.
    A wrong code counts as a failed login (lockout); the half-login lives CODE_STEP_VALID."""
    if not pending or len(pending) > 100:
        raise LoginRefused("the login has expired: start again")
    step_row = db.execute("SELECT * FROM staff_code_steps WHERE id_hash = ?", (_hash(pending),)).fetchone()
    if step_row is None or parse_iso(step_row["created_at"]) + CODE_STEP_VALID <= now:
        raise LoginRefused("the login has expired: start again")
    row = _account(db, step_row["staff_id"])
    if not row["active"] or not row["totp_secret"]:
        raise LoginRefused("the login has expired: start again")
    locked = lockouts.locked_until(db, row["id"], SCREEN, now)
    if locked:
        raise LoginRefused("too many failed logins", locked_until=locked)
    with transaction(db):
        step = _code_step(row["totp_secret"], code, now, after=row["totp_last_step"])
        if step is not None:
            db.execute("UPDATE staff SET totp_last_step = ? WHERE id = ?", (step, row["id"]))
            db.execute("DELETE FROM staff_code_steps WHERE id_hash = ?", (step_row["id_hash"],))
    if step is not None:
        return _start_session(db, row, now)
    locked = lockouts.count_failure(db, row["id"], SCREEN, now).locked_until
    if locked:
        raise LoginRefused(f"wrong code {lockouts.MAX_FAILURES} times: locked", locked_until=locked)
    raise LoginRefused("the code is not right", wrong_code=True)


def venue_choices(db: sqlite3.Connection) -> list[dict]:
    """Venues (id, name) for the device enroll form's checkboxes."""
    return db.execute("SELECT id, name FROM venues ORDER BY name, id").fetchall()
