-- One order ledger for every channel (core/sales/): an order has lines, each line delivers
-- something (a card, a voucher, a seat ticket; later kinds come from the line-kind registry
-- in core/sales/lines.py, so `order_lines.kind` has no CHECK), and payments are rows.
-- Single-ticket sales (`sales`/`tickets` until now) move into it; nothing sold is lost:
-- every sale becomes an order with one `ticket` line per ticket and one payment row, every
-- order keeps its number, lines, cards and links, and its payment becomes a row.
-- Runs with foreign keys off (core/storage.py) and is checked before it commits.

-- Orders: the payment columns leave for `payments`; delivery only where cards are delivered.
CREATE TABLE orders_v8 (
    id                TEXT PRIMARY KEY,
    number            TEXT NOT NULL UNIQUE,
    node_id           TEXT NOT NULL,
    channel           TEXT NOT NULL CHECK (channel IN ('shop', 'phone', 'cashdesk', 'counter')),
    customer_id       TEXT,
    delivery          TEXT CHECK (delivery IN ('mail', 'pickup', 'counter')),
    operator          TEXT,
    total_cents       INTEGER NOT NULL CHECK (total_cents >= 0),
    created_at        TEXT NOT NULL,
    created_by_token  TEXT            -- hub: the API token that placed it (a shop sees only its own)
);
INSERT INTO orders_v8 (id, number, node_id, channel, customer_id, delivery, operator, total_cents, created_at,
                       created_by_token)
SELECT id, number, node_id, channel, customer_id, delivery, operator, total_cents, created_at, created_by_token
FROM orders;
-- a seat sale: the hub sold 'online' (a shop token) or 'office' (staff); desks 'cashdesk'
INSERT INTO orders_v8 (id, number, node_id, channel, customer_id, delivery, operator, total_cents, created_at)
SELECT id, number, node_id,
       CASE channel WHEN 'online' THEN 'shop' WHEN 'office' THEN 'phone' WHEN 'counter' THEN 'counter'
                    WHEN 'cashdesk' THEN 'cashdesk' ELSE 'phone' END,
       NULL, CASE WHEN channel IN ('cashdesk', 'counter') THEN 'counter' END, operator, total_cents, created_at
FROM sales;

-- Payments as rows: what was paid (or is owed), how, by whom, with which reference.
CREATE TABLE payments (
    id            TEXT PRIMARY KEY,
    order_id      TEXT NOT NULL REFERENCES orders(id),
    method        TEXT NOT NULL CHECK (method IN ('cash', 'card', 'online', 'transfer', 'sepa', 'none')),
    amount_cents  INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'paid', 'failed', 'refunded')),
    reference     TEXT,             -- card terminal receipt, transfer reference, PSP id
    given_cents   INTEGER,          -- cash: what the customer handed over
    operator      TEXT,
    node_id       TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX payments_order ON payments(order_id);
CREATE INDEX payments_day ON payments(node_id, created_at);
-- A migrated payment's id keeps its order's UUIDv7 time and version, with new random bits.
INSERT INTO payments (id, order_id, method, amount_cents, state, reference, given_cents, operator, node_id,
                      created_at)
SELECT substr(id, 1, 24) || lower(hex(randomblob(6))), id, payment_method, total_cents,
       CASE WHEN payment_method IN ('transfer', 'sepa') THEN 'pending' ELSE 'paid' END,
       payment_reference, given_cents, operator, node_id, created_at
FROM (SELECT id, payment_method, total_cents, payment_reference, given_cents, operator, node_id, created_at
      FROM orders
      UNION ALL
      SELECT id, payment_method, total_cents, payment_reference, NULL, operator, node_id, created_at FROM sales);

-- Lines: one per card, voucher or seat ticket. `product_id` is the annual-ticket product,
-- or the performance of a ticket; `vat_code` NULL where the catalog has none yet (tickets).
CREATE TABLE order_lines (
    id           TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL REFERENCES orders(id),
    position     INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    product_id   TEXT NOT NULL,
    price_cents  INTEGER NOT NULL CHECK (price_cents >= 0),
    vat_code     TEXT CHECK (vat_code IN ('19', '7', 'exempt')),
    card_id      TEXT,
    UNIQUE (order_id, position)
);
INSERT INTO order_lines (id, order_id, position, kind, product_id, price_cents, vat_code, card_id)
SELECT id, order_id, position, kind, product_id, price_cents, vat_code, card_id FROM order_items;
-- a migrated ticket's line has the ticket's id
INSERT INTO order_lines (id, order_id, position, kind, product_id, price_cents, vat_code, card_id)
SELECT id, sale_id, row_number() OVER (PARTITION BY sale_id ORDER BY created_at, id), 'ticket', performance_id,
       price_cents, NULL, NULL
FROM tickets;
CREATE INDEX order_lines_card ON order_lines(card_id);

-- Personalization links point at lines now.
CREATE TABLE personalization_links_v8 (
    token_hash  TEXT PRIMARY KEY,
    item_id     TEXT NOT NULL UNIQUE REFERENCES order_lines(id),
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    created_at  TEXT NOT NULL
);
INSERT INTO personalization_links_v8 SELECT token_hash, item_id, expires_at, used_at, created_at
FROM personalization_links;
DROP TABLE personalization_links;
ALTER TABLE personalization_links_v8 RENAME TO personalization_links;

-- Seat tickets: what a `ticket` line delivers; one sold ticket per seat, enforced here.
CREATE TABLE tickets_v8 (
    id              TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL REFERENCES orders(id),
    line_id         TEXT NOT NULL REFERENCES order_lines(id),
    performance_id  TEXT NOT NULL REFERENCES performances(id),
    seat_id         TEXT NOT NULL REFERENCES seats(id),
    zone_id         TEXT NOT NULL,
    price_cents     INTEGER NOT NULL CHECK (price_cents >= 0),
    status          TEXT NOT NULL DEFAULT 'sold' CHECK (status IN ('sold', 'cancelled')),
    created_at      TEXT NOT NULL
);
INSERT INTO tickets_v8 (id, order_id, line_id, performance_id, seat_id, zone_id, price_cents, status, created_at)
SELECT id, sale_id, id, performance_id, seat_id, zone_id, price_cents, status, created_at FROM tickets;
DROP TABLE tickets;
ALTER TABLE tickets_v8 RENAME TO tickets;
CREATE UNIQUE INDEX tickets_one_per_seat ON tickets(performance_id, seat_id) WHERE status = 'sold';
CREATE INDEX tickets_order ON tickets(order_id);
CREATE INDEX tickets_line ON tickets(line_id);

DROP TABLE order_items;
DROP TABLE sales;
DROP TABLE orders;
ALTER TABLE orders_v8 RENAME TO orders;
CREATE INDEX orders_customer ON orders(customer_id);
CREATE INDEX orders_created ON orders(created_at);
CREATE INDEX orders_node_day ON orders(node_id, created_at);
