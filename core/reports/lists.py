"""The S14 lists (seed 003, "Berichte & Auswertungen"): setup, booking list, subscribers with
seats, revenue per ring, stock distribution, unprinted orders, choice vouchers, one customer
across all subscriptions, and the desks' day closing.

Each is a fixed query over the ledger and the catalog (standard SQL; the two SQLite-only
pieces, a group's values as one text and the local calendar day, come from `core.base.sql`).
The rules they count by are the ledger's own: a seat is booked while its ticket is `sold`, a
subscription earns its price unless it was cancelled with immediate effect (`cancelled_at`, a
Storno), a card is unprinted while it is unrevoked and not yet `printed` (or further) in its
fulfilment, a seat without a `seat_pools` row is in the hub's pool.
"""

from __future__ import annotations

from core.base.sql import joined, local_day
from core.reports.registry import Column, Report, register

_CUSTOMER_NAME = "cu.last_name || ', ' || cu.first_name"
_SEATS = ("(SELECT " + joined("x") + " FROM (SELECT DISTINCT c.name || ' ' || s.row_label || '/' || s.label AS x "
          "FROM tickets t JOIN seats s ON s.id = t.seat_id JOIN plan_sections c ON c.id = s.section_id "
          "WHERE t.line_id = sub.line_id AND t.status = 'sold' ORDER BY x) AS seat_names)")
_TICKETS = "(SELECT count(*) FROM tickets t WHERE t.line_id = sub.line_id AND t.status = 'sold')"


def _c(name: str, kind: str, de: str, en: str, *, personal: bool = False, width: int = 14) -> Column:
    return Column(name, kind, de, en, personal, width)  # type: ignore[arg-type]


SEASON = _c("season", "text", "Saison", "Season", width=10)
PRODUCT = _c("product", "text", "Abo", "Subscription product", width=24)
STARTS = _c("starts_at", "datetime", "Beginn", "Starts", width=17)
PERFORMANCE = _c("performance", "text", "Vorstellung", "Performance", width=24)
VENUE = _c("venue", "text", "Spielstätte", "Venue", width=16)
CUSTOMER_NUMBER = _c("customer_number", "text", "Kundennr.", "Customer no.", personal=True, width=18)
CUSTOMER = _c("customer", "text", "Kunde", "Customer", personal=True, width=24)

SETUP = register(Report(
    "setup", "Einrichtung: Termine und Preise", "Setup: dates and prices",
    "SELECT se.name AS season, p.name AS product, p.kind AS kind, sp.position AS position, "
    "pf.starts_at AS starts_at, pf.title AS performance, v.name AS venue, coalesce(z.name, '') AS zone, "
    "coalesce(cp.price_cents, zp.price_cents, p.price_cents) AS package_cents, pp.price_cents AS single_cents "
    "FROM subscription_products p JOIN seasons se ON se.id = p.season_id "
    "JOIN subscription_performances sp ON sp.product_id = p.id JOIN performances pf ON pf.id = sp.performance_id "
    "JOIN venues v ON v.id = pf.venue_id "
    "LEFT JOIN subscription_zone_prices zp ON zp.product_id = p.id AND p.kind IN ('ring', 'choice') "
    "LEFT JOIN combi_prices cp ON cp.product_id = p.id AND cp.performance_id = pf.id "
    "LEFT JOIN price_zones z ON z.id = coalesce(zp.zone_id, cp.zone_id) "
    "LEFT JOIN performance_prices pp ON pp.performance_id = pf.id AND pp.zone_id = z.id WHERE p.active = 1",
    (SEASON, PRODUCT, _c("kind", "text", "Art", "Kind", width=8), _c("position", "int", "Nr.", "No.", width=5),
     STARTS, PERFORMANCE, VENUE, _c("zone", "text", "Preiskategorie", "Price zone", width=18),
     _c("package_cents", "money", "Abopreis", "Package price", width=12),
     _c("single_cents", "money", "Einzelpreis", "Single price", width=12)),
    "product",
    "Jedes Abo mit seinen Terminen und Preisen je Preiskategorie (Abopreis und Einzelkartenpreis).",
    "Every subscription product with its dates and prices per price zone (package and single ticket)."))

BOOKINGS = register(Report(
    "bookings", "Buchungsliste", "Booking list",
    "SELECT pf.starts_at AS starts_at, pf.title AS performance, v.name AS venue, c.name AS section, "
    "s.row_label AS seat_row, s.label AS seat, coalesce(z.name, '') AS zone, t.price_cents AS price_cents, "
    "o.number AS order_number, o.channel AS channel, l.kind AS sale, coalesce(sub.number, '') AS subscription, "
    f"coalesce(cu.number, '') AS customer_number, coalesce({_CUSTOMER_NAME}, '') AS customer "
    "FROM tickets t JOIN performances pf ON pf.id = t.performance_id JOIN venues v ON v.id = pf.venue_id "
    "JOIN seats s ON s.id = t.seat_id JOIN plan_sections c ON c.id = s.section_id "
    "LEFT JOIN price_zones z ON z.id = t.zone_id JOIN orders o ON o.id = t.order_id "
    "JOIN order_lines l ON l.id = t.line_id LEFT JOIN subscriptions sub ON sub.line_id = t.line_id "
    "LEFT JOIN customers cu ON cu.id = coalesce(sub.customer_id, o.customer_id) WHERE t.status = 'sold'",
    (STARTS, PERFORMANCE, VENUE, _c("section", "text", "Bereich", "Section", width=12),
     _c("seat_row", "text", "Reihe", "Row", width=7), _c("seat", "text", "Platz", "Seat", width=6),
     _c("zone", "text", "Preiskategorie", "Price zone", width=18),
     _c("price_cents", "money", "Preis", "Price", width=10), _c("order_number", "text", "Auftrag", "Order", width=23),
     _c("channel", "text", "Kanal", "Channel", width=9), _c("sale", "text", "Verkauf", "Sale", width=12),
     _c("subscription", "text", "Abo-Nr.", "Subscription", width=18), CUSTOMER_NUMBER, CUSTOMER),
    "starts_at",
    "Jeder verkaufte Platz je Vorstellung mit Auftrag und Kunde; filtern Sie nach Vorstellung und Beginn.",
    "Every sold seat per performance with its order and customer; filter by performance and start."))

SUBSCRIBERS = register(Report(
    "subscribers", "Abo-Kunden mit Plätzen", "Subscribers with seats",
    "SELECT se.name AS season, p.name AS product, sub.number AS subscription, sub.state AS state, "
    "coalesce(dt.name, '') AS tier, sub.form AS form, cu.number AS customer_number, "
    f"{_CUSTOMER_NAME} AS customer, coalesce(sub.holder_name, '') AS holder, cu.town AS town, "
    f"coalesce({_SEATS}, '') AS seats, {_TICKETS} AS tickets, sub.price_cents AS price_cents "
    "FROM subscriptions sub JOIN subscription_products p ON p.id = sub.product_id "
    "JOIN seasons se ON se.id = p.season_id JOIN customers cu ON cu.id = sub.customer_id "
    "LEFT JOIN discount_tiers dt ON dt.id = sub.tier_id",
    (SEASON, PRODUCT, _c("subscription", "text", "Abo-Nr.", "Subscription", width=18),
     _c("state", "text", "Status", "State", width=10), _c("tier", "text", "Rabattstufe", "Discount tier", width=18),
     _c("form", "text", "Form", "Form", width=12), CUSTOMER_NUMBER, CUSTOMER,
     _c("holder", "text", "Inhaber", "Holder", personal=True, width=20),
     _c("town", "text", "Ort", "Town", personal=True, width=14), _c("seats", "text", "Plätze", "Seats", width=24),
     _c("tickets", "int", "Karten", "Tickets", width=7), _c("price_cents", "money", "Preis", "Price", width=10)),
    "customer",
    "Alle Abonnements mit Kunde, Rabattstufe und festen Plätzen.",
    "Every subscription with its customer, discount tier and fixed seats."))


def _count(condition: str) -> str:
    return f"sum(CASE WHEN {condition} THEN 1 ELSE 0 END)"


_ACTIVE, _PAUSED = _count("sub.state = 'active'"), _count("sub.state = 'paused'")
_NOTICE = _count("sub.state = 'cancelled' AND sub.cancelled_at IS NULL")
_TO_PRINT = _count("c.fulfilment = 'personalized'")

REVENUE = register(Report(
    "revenue", "Umsätze pro Abo", "Revenue per subscription product",
    "SELECT se.name AS season, p.name AS product, p.kind AS kind, count(sub.id) AS sold, "
    f"coalesce({_ACTIVE}, 0) AS active, coalesce({_PAUSED}, 0) AS paused, coalesce({_NOTICE}, 0) AS notice, "
    f"coalesce({_count('sub.cancelled_at IS NOT NULL')}, 0) AS storno, "
    f"coalesce({_count('sub.cancelled_at IS NULL AND sub.price_cents = 0')}, 0) AS complimentary, "
    "coalesce(sum(CASE WHEN sub.cancelled_at IS NULL THEN sub.price_cents ELSE 0 END), 0) AS revenue_cents "
    "FROM subscription_products p JOIN seasons se ON se.id = p.season_id "
    "LEFT JOIN subscriptions sub ON sub.product_id = p.id GROUP BY p.id, se.name, p.name, p.kind",
    (SEASON, PRODUCT, _c("kind", "text", "Art", "Kind", width=8), _c("sold", "int", "Verkauft", "Sold", width=9),
     _c("active", "int", "Aktiv", "Active", width=8), _c("paused", "int", "Pausiert", "Paused", width=9),
     _c("notice", "int", "Gekündigt", "Notice given", width=10), _c("storno", "int", "Storniert", "Voided", width=9),
     _c("complimentary", "int", "Ehrenkarten", "Complimentary", width=12),
     _c("revenue_cents", "money", "Umsatz", "Revenue", width=14)),
    "product",
    "Je Abo: verkauft, aktiv, pausiert, gekündigt (läuft bis Saisonende), storniert und der Umsatz ohne Stornos.",
    "Per product: sold, active, paused, notice given (runs to the season's end), voided, and revenue "
    "without voided ones."))

_POOL_SEATS = (
    "SELECT pf.id AS performance_id, coalesce(sp.pool, 'hub') AS pool, count(*) AS seats, count(t.id) AS sold "
    "FROM performances pf JOIN plan_variants pv ON pv.id = pf.variant_id "
    "JOIN seats s ON s.plan_id = pv.plan_id AND (s.variant_id IS NULL OR s.variant_id = pv.id) AND s.active = 1 "
    "AND s.id NOT IN (SELECT seat_id FROM variant_removed_seats WHERE variant_id = pv.id) "
    "LEFT JOIN seat_pools sp ON sp.performance_id = pf.id AND sp.seat_id = s.id "
    "LEFT JOIN tickets t ON t.performance_id = pf.id AND t.seat_id = s.id AND t.status = 'sold' "
    "WHERE pf.active = 1 GROUP BY pf.id, coalesce(sp.pool, 'hub')")

STOCK = register(Report(
    "stock", "Bestandsaufteilung", "Stock distribution",
    "SELECT pf.starts_at AS starts_at, pf.title AS performance, v.name AS venue, "
    "CASE WHEN g.pool IN ('hub', 'blocked') THEN g.pool WHEN g.pool LIKE 'node:%' THEN 'desk' ELSE 'agency' END "
    "AS pool, CASE WHEN g.pool IN ('hub', 'blocked') THEN '' ELSE coalesce(ns.name, tk.name, g.pool) END AS holder, "
    "g.seats AS seats, g.sold AS sold, g.seats - g.sold AS free "
    f"FROM ({_POOL_SEATS}) g JOIN performances pf ON pf.id = g.performance_id JOIN venues v ON v.id = pf.venue_id "
    "LEFT JOIN node_scopes ns ON g.pool = 'node:' || ns.node_id LEFT JOIN api_tokens tk ON g.pool = 'agency:' || tk.id",
    (STARTS, PERFORMANCE, VENUE, _c("pool", "text", "Kontingent", "Pool", width=9),
     _c("holder", "text", "Kasse/Vorverkaufsstelle", "Desk/agency", width=20),
     _c("seats", "int", "Plätze", "Seats", width=8), _c("sold", "int", "Verkauft", "Sold", width=9),
     _c("free", "int", "Frei", "Free", width=8)),
    "starts_at",
    "Plätze je Vorstellung und Kontingent (Zentrale, Kasse, Vorverkaufsstelle, gesperrt): verkauft und frei.",
    "Seats per performance and pool (hub, desk, agency, blocked): sold and free."))

UNPRINTED = register(Report(
    "unprinted", "Ungedruckte Aufträge", "Unprinted orders",
    "SELECT o.number AS order_number, o.created_at AS created_at, o.channel AS channel, "
    f"coalesce(cu.number, '') AS customer_number, coalesce({_CUSTOMER_NAME}, '') AS customer, count(*) AS cards, "
    f"{_count('c.fulfilment IS NULL')} AS to_personalize, {_TO_PRINT} AS to_print, "
    "o.total_cents AS total_cents "
    "FROM orders o JOIN order_lines l ON l.order_id = o.id JOIN cards c ON c.order_item_id = l.id OR c.id = l.card_id "
    "LEFT JOIN customers cu ON cu.id = o.customer_id WHERE c.revoked_at IS NULL "
    "AND c.kind IN ('annual', 'subscription', 'single') AND (c.fulfilment IS NULL OR c.fulfilment = 'personalized') "
    "GROUP BY o.id, o.number, o.created_at, o.channel, cu.number, cu.last_name, cu.first_name, o.total_cents",
    (_c("order_number", "text", "Auftrag", "Order", width=23), _c("created_at", "datetime", "Datum", "Date", width=17),
     _c("channel", "text", "Kanal", "Channel", width=9), CUSTOMER_NUMBER, CUSTOMER,
     _c("cards", "int", "Karten offen", "Cards open", width=12),
     _c("to_personalize", "int", "zu personalisieren", "to personalize", width=16),
     _c("to_print", "int", "druckbereit", "ready to print", width=13),
     _c("total_cents", "money", "Summe", "Total", width=12)),
    "created_at",
    "Aufträge mit Ausweisen oder Karten, die noch nicht gedruckt sind (unpersonalisiert oder druckbereit).",
    "Orders with passes or cards not printed yet (awaiting personalization or ready to print)."))

VOUCHERS = register(Report(
    "vouchers", "Wahlgutscheine", "Choice vouchers",
    "SELECT cv.number AS voucher, p.name AS product, coalesce(sub.number, '') AS subscription, "
    f"coalesce(cu.number, '') AS customer_number, coalesce({_CUSTOMER_NAME}, '') AS customer, "
    "coalesce(cv.tier_name, '') AS tier, cv.value_cents AS value_cents, cv.state AS state, "
    "cv.valid_until AS valid_until, r.redeemed_at AS redeemed_at, coalesce(pf.title, '') AS redeemed_for, "
    "coalesce(r.used_cents, 0) AS used_cents, coalesce(r.lapsed_cents, 0) AS lapsed_cents "
    "FROM choice_vouchers cv JOIN subscription_products p ON p.id = cv.product_id "
    "LEFT JOIN subscriptions sub ON sub.id = cv.subscription_id LEFT JOIN customers cu ON cu.id = sub.customer_id "
    "LEFT JOIN choice_voucher_redemptions r ON r.voucher_id = cv.id "
    "LEFT JOIN performances pf ON pf.id = r.performance_id",
    (_c("voucher", "text", "Gutschein", "Voucher", width=18), PRODUCT,
     _c("subscription", "text", "Abo-Nr.", "Subscription", width=18), CUSTOMER_NUMBER, CUSTOMER,
     _c("tier", "text", "Rabattstufe", "Discount tier", width=16),
     _c("value_cents", "money", "Wert", "Value", width=10),
     _c("state", "text", "Status", "State", width=10),
     _c("valid_until", "datetime", "Gültig bis", "Valid until", width=17),
     _c("redeemed_at", "datetime", "Eingelöst am", "Redeemed", width=17),
     _c("redeemed_for", "text", "Eingelöst für", "Redeemed for", width=22),
     _c("used_cents", "money", "Angerechnet", "Used", width=11),
     _c("lapsed_cents", "money", "Verfallen", "Lapsed", width=10)),
    "voucher",
    "Jeder Wahlgutschein: offen, eingelöst (wofür, angerechnet, verfallen) oder ungültig; filtern mit state=open.",
    "Every choice voucher: open, redeemed (for what, used, lapsed) or void; filter with state=open."))

CUSTOMER_REPORT = register(Report(
    "customer", "Kundenauskunft über alle Abos", "One customer across all subscriptions",
    f"SELECT cu.number AS customer_number, {_CUSTOMER_NAME} AS customer, coalesce(cu.email, '') AS email, "
    "coalesce(cu.phone, '') AS phone, se.name AS season, p.name AS product, sub.number AS subscription, "
    "sub.state AS state, coalesce(dt.name, '') AS tier, sub.form AS form, "
    f"coalesce({_SEATS}, '') AS seats, {_TICKETS} AS tickets, sub.price_cents AS price_cents, "
    "o.number AS order_number, (SELECT count(*) FROM choice_vouchers cv WHERE cv.subscription_id = sub.id "
    "AND cv.state = 'open') AS open_vouchers "
    "FROM subscriptions sub JOIN customers cu ON cu.id = sub.customer_id "
    "JOIN subscription_products p ON p.id = sub.product_id JOIN seasons se ON se.id = p.season_id "
    "JOIN orders o ON o.id = sub.order_id LEFT JOIN discount_tiers dt ON dt.id = sub.tier_id",
    (CUSTOMER_NUMBER, CUSTOMER, _c("email", "text", "E-Mail", "E-mail", personal=True, width=22),
     _c("phone", "text", "Telefon", "Phone", personal=True, width=14), SEASON, PRODUCT,
     _c("subscription", "text", "Abo-Nr.", "Subscription", width=18), _c("state", "text", "Status", "State", width=10),
     _c("tier", "text", "Rabattstufe", "Discount tier", width=16), _c("form", "text", "Form", "Form", width=12),
     _c("seats", "text", "Plätze", "Seats", width=24), _c("tickets", "int", "Karten", "Tickets", width=7),
     _c("price_cents", "money", "Preis", "Price", width=10), _c("order_number", "text", "Auftrag", "Order", width=23),
     _c("open_vouchers", "int", "offene Gutscheine", "Open vouchers", width=10)),
    "season",
    "Alle Abos eines Kunden über alle Spielzeiten; braucht den Filter customer_number=KD-….",
    "Every subscription of one customer across all seasons; needs the filter customer_number=KD-….",
    required=("customer_number",), personal_report=True))

DAY_CLOSING = register(Report(
    "day-closing", "Tagesabschluss", "Day closing",
    f"SELECT {local_day('pa.created_at')} AS day, coalesce(ns.name, n.name, pa.node_id) AS node, "
    "coalesce(pa.operator, '-') AS operator, pa.method AS method, pa.state AS state, "
    "count(DISTINCT pa.order_id) AS sales, count(*) AS payments, sum(pa.amount_cents) AS total_cents "
    "FROM payments pa LEFT JOIN node_scopes ns ON ns.node_id = pa.node_id LEFT JOIN node n ON n.id = pa.node_id "
    f"GROUP BY {local_day('pa.created_at')}, coalesce(ns.name, n.name, pa.node_id), coalesce(pa.operator, '-'), "
    "pa.method, pa.state",
    (_c("day", "date", "Tag", "Day", width=11), _c("node", "text", "Kasse", "Node", width=16),
     _c("operator", "text", "Bediener", "Operator", width=16), _c("method", "text", "Zahlart", "Method", width=10),
     _c("state", "text", "Status", "State", width=9), _c("sales", "int", "Verkäufe", "Sales", width=9),
     _c("payments", "int", "Zahlungen", "Payments", width=10),
     _c("total_cents", "money", "Summe", "Total", width=12)),
    "-day",
    "Einnahmen je Tag, Kasse, Bediener, Zahlart und Status aus den Zahlungen des Hauptbuchs.",
    "Takings per day, node, operator, payment method and state, from the ledger's payment rows."))
