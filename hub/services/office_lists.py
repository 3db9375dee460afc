"""The office app's list screens: a page of rows for (filter text, sort, page, page size)
plus the total, and the detail records behind a row.

Why a fixed allowlist per list: the sort a browser asks for is only a key (`name`, `-date`);
each list maps its keys to ORDER BY text written here. A key that is not on the list gives the
list's default order: the office shows a list instead of an error, and no input ever becomes
SQL. Filter text and channel are always bound as parameters.

One rule, one place: the customer filter is the API's customer search
(`core.catalog.resource.list_` with `Customers`, the trigram index, umlauts included), and an
order's detail is `core.sales.orders.order_view`, as the API shows it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from core.base.errors import NotFound
from core.catalog import resource
from core.catalog.customers import Customers
from core.sales.orders import order_view
from core.sync import conflicts

PAGE_SIZE = 25
MAX_PAGE_SIZE = 200  # rows of one screen page (the web layer keeps to it; a CSV takes up to CSV_CAP)
CSV_CAP = 10_000  # rows of one CSV download (all pages of the filter, up to this many)
CHANNELS = ("shop", "phone", "cashdesk", "counter")


@dataclass(frozen=True)
class Page:
    """One page of a list, with what the screen needs for its sort and page links."""

    rows: list[dict]
    total: int
    page: int
    size: int
    sort: str  # the key in force (the default when the asked one was not allowed)
    desc: bool

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def choose_sort(allowed: tuple[str, ...], default: str, asked: str | None) -> tuple[str, bool]:
    """(key, descending) of *asked* (`key` or `-key`) if its key is allowed, else the default."""
    desc = bool(asked) and asked.startswith("-")
    key = (asked or "").removeprefix("-")
    if key not in allowed:
        return default.removeprefix("-"), default.startswith("-")
    return key, desc


def _bounds(page: int, size: int, cap: int = CSV_CAP) -> tuple[int, int]:
    """A page number of at least 1 (and no more than SQLite's integers allow), a size in 1..cap."""
    return min(max(1, page), 1_000_000_000), min(max(1, size), cap)


# --- customers ------------------------------------------------------------------------------------------


class _OfficeCustomers(Customers):
    """The API's customers (same search), sortable also by town and e-mail."""

    sorts = (*Customers.sorts, "town", "email")


CUSTOMER_SORTS = {"number": "number", "name": "last_name", "town": "town", "email": "email"}
CUSTOMER_DEFAULT = "name"


def customers(db: sqlite3.Connection, text: str, sort: str | None, page: int = 1, size: int = PAGE_SIZE) -> Page:
    """Customers matching *text* by the API's customer search: number, name, town, e-mail."""
    key, desc = choose_sort(tuple(CUSTOMER_SORTS), CUSTOMER_DEFAULT, sort)
    page, size = _bounds(page, size)
    query = resource.ListQuery(limit=size, offset=(page - 1) * size, q=text.strip() or None,
                               sort=("-" if desc else "") + CUSTOMER_SORTS[key])
    found = resource.list_(db, _OfficeCustomers(), query)
    rows = [{"id": c["id"], "number": c["number"], "name": f"{c['last_name']}, {c['first_name']}",
             "town": c["address"]["town"], "email": c["email"] or ""} for c in found["items"]]
    return Page(rows, found["total"], page, size, key, desc)


def customer_detail(db: sqlite3.Connection, customer_id: str) -> dict:
    """The customer (as the API shows it) with its orders (newest first) and cards."""
    customer = resource.get(db, Customers(), customer_id)
    customer["orders"] = db.execute(
        f"SELECT o.id, o.number, o.created_at, o.channel, o.total_cents, {_STATE} AS state FROM orders o "
        "WHERE o.customer_id = ? ORDER BY o.created_at DESC, o.id DESC", (customer_id,)).fetchall()
    customer["cards"] = db.execute(
        "SELECT c.id, c.number, c.kind, c.holder_name, c.valid_from, c.valid_until, c.revoked_at, "
        "coalesce(a.name, s.name, '') AS product FROM cards c "
        "LEFT JOIN annual_products a ON a.id = c.product_id LEFT JOIN subscription_products s ON s.id = c.product_id "
        "WHERE c.customer_id = ? ORDER BY c.valid_until DESC, c.id", (customer_id,)).fetchall()
    return customer


# --- orders ---------------------------------------------------------------------------------------------

# paid: the paid payments cover the total; pending: a payment is on its way; open: neither
_STATE = ("CASE WHEN (SELECT coalesce(sum(amount_cents), 0) FROM payments WHERE order_id = o.id AND state = 'paid')"
          " >= o.total_cents THEN 'paid' WHEN EXISTS (SELECT 1 FROM payments WHERE order_id = o.id "
          "AND state = 'pending') THEN 'pending' ELSE 'open' END")
ORDER_SORTS = {"number": "o.number", "date": "o.created_at", "channel": "o.channel",
               "customer": "c.last_name COLLATE NOCASE, c.first_name COLLATE NOCASE", "total": "o.total_cents",
               "state": "state"}
ORDER_DEFAULT = "-date"
_ORDER_TEXT = ("o.number", "c.number", "c.last_name", "c.first_name", "c.email", "c.company")


def _order_where(text: str, channel: str | None) -> tuple[str, list]:
    """Every word of *text* in the order number or its customer's number, name, e-mail or
    company (case-insensitive substring, umlauts as typed); *channel* if it is one."""
    where, args = [], []
    for word in text.split():
        like = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(" + " OR ".join(f"{col} LIKE ? ESCAPE '\\'" for col in _ORDER_TEXT) + ")")
        args.extend([like] * len(_ORDER_TEXT))
    if channel in CHANNELS:
        where.append("o.channel = ?")
        args.append(channel)
    return (" WHERE " + " AND ".join(where)) if where else "", args


def orders(db: sqlite3.Connection, text: str, channel: str | None, sort: str | None, page: int = 1,
           size: int = PAGE_SIZE) -> Page:
    """Orders (number, date, channel, customer, total, state), newest first by default."""
    key, desc = choose_sort(tuple(ORDER_SORTS), ORDER_DEFAULT, sort)
    page, size = _bounds(page, size)
    where, args = _order_where(text, channel)
    direction = " DESC" if desc else " ASC"
    order = ", ".join(part + direction for part in ORDER_SORTS[key].split(", ")) + ", o.id" + direction
    source = " FROM orders o LEFT JOIN customers c ON c.id = o.customer_id"
    total = db.execute(f"SELECT count(*) AS n{source}{where}", args).fetchone()["n"]
    rows = db.execute(
        f"SELECT o.id, o.number, o.created_at, o.channel, o.total_cents, {_STATE} AS state, o.customer_id, "
        f"c.number AS customer_number, coalesce(c.last_name || ', ' || c.first_name, '') AS customer"
        f"{source}{where} ORDER BY {order} LIMIT ? OFFSET ?", [*args, size, (page - 1) * size]).fetchall()
    return Page(rows, total, page, size, key, desc)


def order_detail(db: sqlite3.Connection, order_id: str) -> dict:
    """The order as the API shows it (lines, payments), with its customer and state."""
    order = order_view(db, order_id)
    order["customer"] = db.execute("SELECT id, number, first_name, last_name FROM customers WHERE id = ?",
                                   (order["customer_id"],)).fetchone() if order["customer_id"] else None
    order["state"] = db.execute(f"SELECT {_STATE} AS state FROM orders o WHERE o.id = ?", (order_id,)).fetchone()[
        "state"]
    return order



# --- conflicts (issue 12, office work screens) ----------------------------------------------------------

CONFLICT_STATES = ("open", "resolved", "all")
CONFLICT_SORTS = {"time": "created_at", "node": "node_id", "kind": "kind", "reason": "reason"}


def conflict_rows(db: sqlite3.Connection, text: str, state: str | None, sort: str | None, page: int = 1,
                  size: int = PAGE_SIZE) -> Page:
    """Conflicts as the API lists them (`core.sync.conflicts.listed`, at most its MAX_LISTED):
    open by default, `resolved` or `all` on request; sorted and paged here, oldest first."""
    key, desc = choose_sort(tuple(CONFLICT_SORTS), "time", sort)
    page, size = _bounds(page, size)
    names = {n["node_id"]: n["name"] for n in db.execute("SELECT node_id, name FROM node_certs")}
    found = [{**c, "node_name": names.get(c["node_id"], c["node_id"])}  # the id if the hub never certified it
             for c in conflicts.listed(db, include_resolved=state in ("resolved", "all"))]
    if state == "resolved":
        found = [c for c in found if c["resolved_at"]]
    for word in text.lower().split():  # every word in node, kind or reason
        found = [c for c in found if word in f"{c['node_id']} {c['node_name']} {c['kind']} {c['reason']}".lower()]
    found.sort(key=lambda c: (c[CONFLICT_SORTS[key]], c["id"]), reverse=desc)
    return Page(found[(page - 1) * size:page * size], len(found), page, size, key, desc)


# --- mail outbox ----------------------------------------------------------------------------------------

MAIL_STATES = ("waiting", "sent", "failed")
# failed: not sent, the last attempt gave an error (the worker retries it); waiting: no error yet
_MAIL_STATE = ("CASE WHEN sent_at IS NOT NULL THEN 'sent' WHEN last_error IS NOT NULL THEN 'failed' "
               "ELSE 'waiting' END")
MAIL_SORTS = {"time": "created_at", "to": "to_address", "subject": "subject", "state": "state",
              "attempts": "attempts"}


def mails(db: sqlite3.Connection, text: str, state: str | None, sort: str | None, page: int = 1,
          size: int = PAGE_SIZE) -> Page:
    """The mail queue (recipient, subject, state, attempts, time), newest first by default;
    *text* matches recipient or subject (every word), *state* one of MAIL_STATES."""
    key, desc = choose_sort(tuple(MAIL_SORTS), "-time", sort)
    page, size = _bounds(page, size)
    where, args = [], []
    for word in text.split():
        like = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(to_address LIKE ? ESCAPE '\\' OR subject LIKE ? ESCAPE '\\')")
        args.extend([like, like])
    if state in MAIL_STATES:
        where.append(f"{_MAIL_STATE} = ?")
        args.append(state)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    direction = " DESC" if desc else " ASC"
    total = db.execute(f"SELECT count(*) AS n FROM mail_queue{clause}", args).fetchone()["n"]
    rows = db.execute(
        f"SELECT id, to_address, subject, attempts, created_at, sent_at, last_error, {_MAIL_STATE} AS state "
        f"FROM mail_queue{clause} ORDER BY {MAIL_SORTS[key]}{direction}, id{direction} LIMIT ? OFFSET ?",
        [*args, size, (page - 1) * size]).fetchall()
    return Page(rows, total, page, size, key, desc)


def mail_detail(db: sqlite3.Connection, mail_id: str) -> dict:
    """One queued mail with its text as stored (a sent one with its personal links redacted)."""
    row = db.execute(f"SELECT *, {_MAIL_STATE} AS state FROM mail_queue WHERE id = ?", (mail_id,)).fetchone()
    if row is None:
        raise NotFound(f"mail {mail_id} does not exist")
    return row


# --- cards by fulfilment state (issue 12, office cards screen) -----------------------------------------

FULFILMENT_STATES = ("personalized", "printed", "dispatched", "deposited", "handed_over")
DELIVERIES = ("mail", "pickup", "counter")
CARD_SORTS = {"number": "k.number", "holder": "k.holder_name COLLATE NOCASE",
              "customer": "c.last_name COLLATE NOCASE, c.first_name COLLATE NOCASE", "delivery": "k.delivery",
              "state": "k.fulfilment", "since": "k.fulfilment_at"}
_CARD_TEXT = ("k.number", "k.holder_name", "c.number", "c.last_name", "c.first_name")
_CARD_SOURCE = " FROM cards k LEFT JOIN customers c ON c.id = k.customer_id"


def _card_where(text: str, state: str | None, delivery: str | None) -> tuple[str, list]:
    """Cards in fulfilment (a state set); every word of *text* in the card number, holder or the
    customer's number or name; *state* and *delivery* only if they are known values."""
    where, args = ["k.fulfilment IS NOT NULL"], []
    for word in text.split():
        like = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(" + " OR ".join(f"{col} LIKE ? ESCAPE '\\'" for col in _CARD_TEXT) + ")")
        args.extend([like] * len(_CARD_TEXT))
    if state in FULFILMENT_STATES:
        where.append("k.fulfilment = ?")
        args.append(state)
    if delivery in DELIVERIES:
        where.append("k.delivery = ?")
        args.append(delivery)
    return " WHERE " + " AND ".join(where), args


def fulfilment_cards(db: sqlite3.Connection, text: str, state: str | None, delivery: str | None,
                     sort: str | None, page: int = 1, size: int = PAGE_SIZE) -> Page:
    """Cards in fulfilment (number, holder, customer, delivery, state, since), the longest waiting first."""
    key, desc = choose_sort(tuple(CARD_SORTS), "since", sort)
    page, size = _bounds(page, size)
    where, args = _card_where(text, state, delivery)
    direction = " DESC" if desc else " ASC"
    order = ", ".join(part + direction for part in CARD_SORTS[key].split(", ")) + ", k.id" + direction
    total = db.execute(f"SELECT count(*) AS n{_CARD_SOURCE}{where}", args).fetchone()["n"]
    rows = db.execute(
        "SELECT k.id, k.number, coalesce(k.holder_name, '') AS holder, k.delivery, k.fulfilment, k.fulfilment_at, "
        "k.revoked_at, k.customer_id, coalesce(c.last_name || ', ' || c.first_name, '') AS customer"
        f"{_CARD_SOURCE}{where} ORDER BY {order} LIMIT ? OFFSET ?", [*args, size, (page - 1) * size]).fetchall()
    return Page(rows, total, page, size, key, desc)


def fulfilment_counts(db: sqlite3.Connection, text: str, delivery: str | None) -> dict[str, int]:
    """How many cards of the filter are in each fulfilment state (for the state tabs)."""
    where, args = _card_where(text, None, delivery)
    found = db.execute(f"SELECT k.fulfilment AS state, count(*) AS n{_CARD_SOURCE}{where} GROUP BY k.fulfilment",
                       args).fetchall()
    counts = dict.fromkeys(FULFILMENT_STATES, 0) | {r["state"]: r["n"] for r in found}
    return {**counts, "all": sum(counts.values())}


def card_detail(db: sqlite3.Connection, card_id: str) -> dict:
    """What the card page shows besides the card itself: product, customer, order, and its history
    (gate entries and print jobs, newest first)."""
    card = db.execute(
        "SELECT k.id, coalesce(a.name, s.name, p.title, '') AS product, a.validity_mode, a.months, "
        "(SELECT min(e.at) FROM entries e WHERE e.card_id = k.id AND e.direction = 'in') AS first_entry_at, "
        "c.id AS customer_id, "
        "c.number AS customer_number, coalesce(c.last_name || ', ' || c.first_name, '') AS customer, "
        "o.id AS order_id, o.number AS order_number "
        "FROM cards k LEFT JOIN annual_products a ON a.id = k.product_id "
        "LEFT JOIN subscription_products s ON s.id = k.product_id LEFT JOIN performances p ON p.id = k.product_id "
        "LEFT JOIN customers c ON c.id = k.customer_id "
        "LEFT JOIN order_lines l ON l.card_id = k.id OR l.id = k.order_item_id LEFT JOIN orders o ON o.id = l.order_id "
        "WHERE k.id = ?", (card_id,)).fetchone()
    if card is None:
        raise NotFound(f"card {card_id} does not exist")
    card["entries"] = db.execute(
        "SELECT e.at, e.direction, e.card_issue, coalesce(v.name, e.venue_id) AS venue FROM entries e "
        "LEFT JOIN venues v ON v.id = e.venue_id WHERE e.card_id = ? ORDER BY e.at DESC LIMIT 50",
        (card_id,)).fetchall()
    card["print_jobs"] = db.execute(
        "SELECT kind, state, card_issue, attempts, last_error, created_at, printed_at FROM print_jobs "
        "WHERE ref_id = ? ORDER BY created_at DESC, id DESC LIMIT 50", (card_id,)).fetchall()
    return card


# --- catalog screen: upcoming performances --------------------------------------------------------------


def upcoming_performances(db: sqlite3.Connection, now_iso: str, page: int = 1, size: int = PAGE_SIZE) -> Page:
    """Active performances starting at or after *now_iso*, soonest first, with venue, plan and
    variant names (the API's performance list has no "from" filter and gives ids only)."""
    page, size = _bounds(page, size, MAX_PAGE_SIZE)
    where = "WHERE p.active = 1 AND p.starts_at >= ?"
    total = db.execute(f"SELECT count(*) AS n FROM performances p {where}", (now_iso,)).fetchone()["n"]
    rows = db.execute(
        "SELECT p.id, p.title, p.starts_at, v.name AS venue, sp.name AS plan, pv.name AS variant "
        "FROM performances p JOIN venues v ON v.id = p.venue_id JOIN plan_variants pv ON pv.id = p.variant_id "
        f"JOIN seating_plans sp ON sp.id = pv.plan_id {where} ORDER BY p.starts_at, p.id LIMIT ? OFFSET ?",
        (now_iso, size, (page - 1) * size)).fetchall()
    return Page(rows, total, page, size, "starts_at", False)
