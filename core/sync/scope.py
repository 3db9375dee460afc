"""What a node may see of the hub's data, in one place (DESIGN §4 pull, §12).

A node gets hub data two ways: the change feed (`hub/sync/feed.py`, each changed row as it is
pulled) and the snapshot copy that sets up a node folder from a hub folder on the same
machine (`core/replica.copy_snapshot`). Both ask `view()` for every row, so they cannot
disagree. Only tables in `REPLICATED` ever leave the hub; everything else (orders, sales,
the op log, conflicts, enrollment codes, tokens, mail, photos) stays where it is.

Per replicated table, `RULES` says which roles get it at all, which columns a role gets
as NULL, and whether a row is addressed to one node. A pull carries only what the role
needs (issue 11); a node that is stolen or copied gives away no more than that:

- a gate decides entry from the signed code, its products (names, venues, first-entry
  months), the card's revocation and issue, and the entries: it gets no customer records,
  no operators, no seats, seating sections, price zones,
  prices, sale windows, discounts, seat pools, recalls or voucher redemptions; on cards no
  customer id, birth date, order line, delivery or fulfilment (it shows the holder name, to
  compare with the person); of the organizer no tax number, VAT id or SEPA creditor id;
- a counter sells no seats: no seat pools and no recalls;
- a desk gets voucher redemptions without the name of the operator who made them (its
  refusal names the card and the time);
- desks get choice vouchers (without their printable code: the desk verifies the scanned
  code's signature and needs the row only for its state, value, tier and offer) and their
  redemptions (without the operator), so a synced desk refuses a used or void voucher
  offline; gates get neither (a choice voucher never admits: it is redeemed for a ticket);
- a recall goes only to the desk it is addressed to, and so does a seat release (a ticket that
  desk sold, cancelled at the hub: the desk frees the seat in its own ledger);
- desks and counters get the operators but never a PIN hash: each gets only its own PIN
  key, sealed to its node key, and its own PIN verifiers (`node_pin_keys`, `pin_verifiers`,
  addressed by node id; core/catalog/pins.py);
- everything else (catalog, trust records, cards, the dates a pass admits, entries) goes to
  every role.

A table without a rule is seen by nobody (and a test fails until it has one): a new
replicated table is kept from nodes until someone decides who may see it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.migrations.feed_triggers import REPLICATED

ROLES: frozenset[str] = frozenset({"cashdesk", "counter", "gate"})
DESKS: frozenset[str] = frozenset({"cashdesk", "counter"})
SELLERS: frozenset[str] = frozenset({"cashdesk"})  # the only role that sells seats


@dataclass(frozen=True)
class NodeScope:
    """Who is asking: the node's role and id (and, for a later venue filter, its venues)."""

    role: str
    node_id: str
    venue_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"no replica scope for role {self.role!r} (known: {', '.join(sorted(ROLES))})")
        if not isinstance(self.node_id, str) or not self.node_id:
            raise ValueError("a node scope needs the node's id")

    @classmethod
    def of(cls, scope: NodeScope | Mapping) -> NodeScope:
        """From a NodeScope or a mapping with role, node_id (and venue_ids), as the sync
        routes build it."""
        if isinstance(scope, NodeScope):
            return scope
        return cls(role=scope["role"], node_id=scope["node_id"], venue_ids=tuple(scope.get("venue_ids") or ()))


@dataclass(frozen=True)
class Rule:
    """What nodes may see of one table."""

    roles: frozenset[str] = ROLES  # roles that get the table at all
    nulled: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # role -> columns sent as NULL
    addressed_by: str | None = None  # column naming the one node a row is for
    whole_for: str | None = None  # column naming a node that gets the row with nothing nulled (its issuer)


EVERYONE = Rule()
SALES = Rule(roles=DESKS)  # what selling needs and checking entry does not: seats, prices, windows

RULES: dict[str, Rule] = {
    # the catalog a gate checks cards against (performances: a subscription's venues)
    "organizers": Rule(nulled={"gate": ("tax_number", "vat_id", "sepa_creditor_id")}),
    "venues": EVERYONE, "seating_plans": EVERYONE, "plan_variants": EVERYONE, "seasons": EVERYONE,
    "performances": EVERYONE, "annual_products": EVERYONE, "annual_product_venues": EVERYONE,
    "subscription_products": EVERYONE, "subscription_performances": EVERYONE, "card_products": EVERYONE,
    # seating and prices: selling only
    "price_zones": SALES, "plan_sections": SALES, "seats": SALES, "variant_removed_seats": SALES,
    "performance_prices": SALES, "subscription_zone_prices": SALES, "combi_prices": SALES, "sale_windows": SALES,
    "discount_tiers": SALES,
    # trust: every node verifies cards and peers
    "node_certs": EVERYONE, "node_revocations": EVERYONE,  # never trust_roots: the root is pinned
    # personal data and PIN material: desks only
    "customers": Rule(roles=DESKS),
    "operators": Rule(roles=DESKS),
    # a desk's own PIN key (sealed to its node key) and verifiers: to that desk only (core/catalog/pins.py)
    "node_pin_keys": Rule(roles=DESKS, addressed_by="node_id"),
    "pin_verifiers": Rule(roles=DESKS, addressed_by="node_id"),
    "cards": Rule(nulled={"gate": ("customer_id", "holder_birth_date", "order_item_id", "delivery", "fulfilment",
                                   "fulfilment_at")}),
    "entries": EVERYONE,
    # the dates a season pass admits (ids only): a gate decides with them, a desk shows them
    "pass_performances": EVERYONE,
    "voucher_redemptions": Rule(roles=DESKS, nulled={"cashdesk": ("operator",), "counter": ("operator",)}),
    # choice vouchers (S5/S10): the desks that redeem them, never gates; no code (not printable from a copy),
    # except to the desk that sold them (it printed them and keeps its own codes for a reprint)
    "choice_vouchers": Rule(roles=DESKS, nulled={"cashdesk": ("code",), "counter": ("code",)}, whole_for="issued_by"),
    "choice_voucher_redemptions": Rule(roles=DESKS, nulled={"cashdesk": ("operator",), "counter": ("operator",)}),
    # contingents: only the seat-selling desk; a recall is a request to one desk
    "seat_pools": Rule(roles=SELLERS),
    "recalls": Rule(roles=SELLERS, addressed_by="node_id"),
    # a desk-sold ticket cancelled at the hub: to the desk that sold it (it frees the seat in its pool)
    "seat_releases": Rule(roles=SELLERS, addressed_by="node_id"),
}


def sees_table(scope: NodeScope | Mapping, table: str) -> bool:
    """May this node get rows of *table* at all (also: hear of their deletion)?"""
    rule = RULES.get(table)
    return table in REPLICATED and rule is not None and NodeScope.of(scope).role in rule.roles


def tables(scope: NodeScope | Mapping) -> list[str]:
    """The replicated tables this node gets, parents before children."""
    return [t for t in REPLICATED if sees_table(scope, t)]


def view(scope: NodeScope | Mapping, table: str, row: Mapping) -> dict | None:
    """*row* of *table* as this node may see it, or None when it may not see it at all."""
    scope = NodeScope.of(scope)
    if not sees_table(scope, table):
        return None
    rule = RULES[table]
    if rule.addressed_by is not None and row[rule.addressed_by] != scope.node_id:
        return None
    whole = rule.whole_for is not None and row[rule.whole_for] == scope.node_id
    nulled = () if whole else rule.nulled.get(scope.role, ())
    return {c: (None if c in nulled else v) for c, v in row.items()}


def visible_rows(scope: NodeScope | Mapping, table: str, rows: Iterable[Mapping]) -> list[dict]:
    """The rows of *table* this node may see, each as it may see it."""
    scope = NodeScope.of(scope)
    if not sees_table(scope, table):
        return []
    return [seen for row in rows if (seen := view(scope, table, row)) is not None]
