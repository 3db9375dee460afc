"""Personalization links (A3): one per card of a shop order, sent in the order mail.

The token in a link is 256 random bits and only its SHA-256 is stored, so a leaked database
does not hand out cards. A link is open until it expires or is used; it is closed in the
same transaction as its card is issued, so a link issues at most one card. The customer's
pages for a link (`/p/<token>`) are in hub/web/personalize.py.

The customer's photo is decoded here (`prepare_photo`), and only here: the page calls it in a
worker thread, after the token, the origin and every field have passed, so a form that is
refused anyway never costs a decode, and a decode never holds up the hub's event loop. An
image of more than MAX_PIXELS pixels is refused from its header, before its pixels are read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import secrets
import sqlite3
import threading
import warnings

from PIL import Image, ImageOps

from core.base.clock import iso, parse_iso
from core.base.storage import transaction
from core.cards.cards import NodeSigner
from core.sales import orders

LINK_DAYS = 60
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,100}")
MAX_PHOTO = 5 * 1024 * 1024  # bytes of an upload
MAX_PIXELS = 40_000_000  # more than any phone photo that fits in 5 MB; bigger is a bomb
PHOTO_SIDE = 600  # card printing needs no more


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def create_links(db: sqlite3.Connection, item_ids: list[str], now: dt.datetime,
                 days: int = LINK_DAYS) -> dict[str, str]:
    """One new link per item (inside the caller's transaction); returns item id -> token.
    The token is returned once, for the mail, and never stored."""
    tokens = {}
    expires = iso(now + dt.timedelta(days=days))
    for item_id in item_ids:
        token = secrets.token_urlsafe(32)
        db.execute("INSERT INTO personalization_links (token_hash, item_id, expires_at, created_at) "
                   "VALUES (?, ?, ?, ?)", (token_hash(token), item_id, expires, iso(now)))
        tokens[item_id] = token
    return tokens


def link_state(link: dict, now: dt.datetime) -> str:
    """open, used or expired (a used link stays `used` after its expiry)."""
    if link["used_at"]:
        return "used"
    return "expired" if parse_iso(link["expires_at"]) <= now else "open"


def links_of_order(db: sqlite3.Connection, order_id: str) -> dict[str, dict]:
    """item id -> its link row (without the hash: nobody needs it outside this module)."""
    rows = db.execute("SELECT l.item_id, l.expires_at, l.used_at FROM personalization_links l "
                      "JOIN order_lines i ON i.id = l.item_id WHERE i.order_id = ?", (order_id,)).fetchall()
    return {row["item_id"]: row for row in rows}


def find_link(db: sqlite3.Connection, token: str) -> dict | None:
    """The link of *token* with what its page shows (product, validity, order number), or
    None for a token that is malformed or unknown."""
    if not TOKEN_RE.fullmatch(token):
        return None
    return db.execute(
        "SELECT l.*, i.product_id, i.card_id, i.kind, p.name AS product, p.validity_mode, p.months, "
        "p.valid_from AS product_from, p.valid_until AS product_until, o.number AS order_number, "
        "g.name AS organizer FROM personalization_links l JOIN order_lines i ON i.id = l.item_id "
        "JOIN orders o ON o.id = i.order_id JOIN annual_products p ON p.id = i.product_id "
        "JOIN organizers g ON g.id = p.organizer_id WHERE l.token_hash = ?", (token_hash(token),)).fetchone()


def card_number(db: sqlite3.Connection, link: dict) -> str | None:
    """The number of the card a used link issued (None if it has none)."""
    row = db.execute("SELECT number FROM cards WHERE id = ?", (link["card_id"],)).fetchone()
    return row["number"] if row else None


def issued_card(db: sqlite3.Connection, link: dict) -> dict | None:
    """The card a used link issued, as it stands now (a lost card's new issue and code, a
    revocation), with its first entry (`first_entry_at`, None before it): a customer who opens
    the link again sees the card to show at the entrance, not just "already personalized"."""
    if not link["card_id"]:
        return None
    card = db.execute("SELECT id, number, code, holder_name, valid_from, valid_until, issue, revoked_at "
                      "FROM cards WHERE id = ?", (link["card_id"],)).fetchone()
    if card is not None:
        first = db.execute("SELECT min(at) AS at FROM entries WHERE card_id = ? AND direction = 'in'",
                           (card["id"],)).fetchone()
        card["first_entry_at"] = first["at"]
    return card


def personalize(db: sqlite3.Connection, signer: NodeSigner, link: dict, holder: orders.HolderIn,
                now: dt.datetime, *, photo: tuple[str, bytes] | None = None) -> dict | None:
    """Close the link and issue its item's card, together or not at all. None if the link
    was closed already (by a request that got here first)."""
    with transaction(db):
        closed = db.execute("UPDATE personalization_links SET used_at = ? WHERE token_hash = ? "
                            "AND used_at IS NULL", (iso(now), link["token_hash"])).rowcount
        if not closed:
            return None
        return orders.personalize_item(db, signer, link["item_id"], holder, now, photo=photo)


# --- the customer's photo ---------------------------------------------------------------------


class PhotoRefused(ValueError):
    """The upload is no usable photo; args[0] is the page's message key (e_photo_*)."""


class DecodeCount:
    """How many uploads `prepare_photo` has opened, and in which threads: a plain counter the
    page's tests read to show that a refused form decodes nothing and that decoding runs
    off the event loop's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.threads: set[int] = set()

    def add(self) -> None:
        with self._lock:
            self.count += 1
            self.threads.add(threading.get_ident())


DECODES = DecodeCount()


def prepare_photo(data: bytes) -> bytes:
    """Open the upload with Pillow (its bytes decide, not its name or media type), refuse
    anything but JPEG/PNG, oversized or damaged images and decompression bombs (judged by
    the size in the header, before any pixel is decoded), and return a JPEG at most
    PHOTO_SIDE pixels on its long side (re-encoding drops whatever else the file carried,
    e.g. GPS metadata). Blocking: callers on the event loop run it in a thread."""
    if len(data) > MAX_PHOTO:
        raise PhotoRefused("e_photo_big")
    DECODES.add()
    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: our limit (below) is lower anyway
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["JPEG", "PNG"])  # reads the header only
    except Image.UnidentifiedImageError:
        raise PhotoRefused("e_photo_type") from None
    except Image.DecompressionBombError:  # beyond twice Pillow's own limit
        raise PhotoRefused("e_photo_pixels") from None
    except (OSError, ValueError, SyntaxError):
        raise PhotoRefused("e_photo_broken") from None
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise PhotoRefused("e_photo_pixels")
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((PHOTO_SIDE, PHOTO_SIDE))
            out = io.BytesIO()
            _flatten(upright).save(out, "JPEG", quality=85, optimize=True)
        except Image.DecompressionBombError:
            raise PhotoRefused("e_photo_pixels") from None
        except (OSError, ValueError, SyntaxError, EOFError):
            raise PhotoRefused("e_photo_broken") from None
    return out.getvalue()


def _flatten(image: Image.Image) -> Image.Image:
    """RGB for JPEG: transparency goes onto white, palettes and greyscale+alpha too."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
