-- Annual tickets end to end (A2-A8, E6): orders and their items, personalization links,
-- photos, voucher redemptions, cash-desk operators, print jobs and the fulfilment state of
-- cards. Orders, links, photos and idempotency keys live where they are made (hub or
-- edge; an edge's orders reach the hub by its outbox). Operators and voucher redemptions
-- replicate, so every desk knows its cashiers and every counter the vouchers already used.

ALTER TABLE cards ADD COLUMN order_item_id TEXT;
ALTER TABLE cards ADD COLUMN holder_birth_date TEXT;
ALTER TABLE cards ADD COLUMN has_photo INTEGER NOT NULL DEFAULT 0;
-- mail / pickup (deposited at the museum) / counter (handed over at once)
ALTER TABLE cards ADD COLUMN delivery TEXT CHECK (delivery IN ('mail', 'pickup', 'counter'));
-- personalized -> printed -> dispatched (mail) | deposited (pickup) -> handed_over; NULL for vouchers
ALTER TABLE cards ADD COLUMN fulfilment TEXT
    CHECK (fulfilment IN ('personalized', 'printed', 'dispatched', 'deposited', 'handed_over'));
ALTER TABLE cards ADD COLUMN fulfilment_at TEXT;
CREATE INDEX cards_fulfilment ON cards(fulfilment, fulfilment_at) WHERE fulfilment IS NOT NULL;
CREATE INDEX cards_holder ON cards(holder_name COLLATE NOCASE);

CREATE TABLE orders (
    id                 TEXT PRIMARY KEY,
    number             TEXT NOT NULL UNIQUE,
    node_id            TEXT NOT NULL,
    channel            TEXT NOT NULL CHECK (channel IN ('shop', 'phone', 'cashdesk', 'counter')),
    customer_id        TEXT,
    delivery           TEXT NOT NULL CHECK (delivery IN ('mail', 'pickup', 'counter')),
    payment_method     TEXT NOT NULL,
    payment_reference  TEXT,
    given_cents        INTEGER,
    operator           TEXT,
    total_cents        INTEGER NOT NULL CHECK (total_cents >= 0),
    created_at         TEXT NOT NULL,
    created_by_token   TEXT            -- hub: the API token that placed it (a shop sees only its own)
);
CREATE INDEX orders_customer ON orders(customer_id);
CREATE INDEX orders_created ON orders(created_at);

-- One item = one card (or one voucher): the card is issued when the item is personalized.
CREATE TABLE order_items (
    id           TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL REFERENCES orders(id),
    position     INTEGER NOT NULL,
    product_id   TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('annual', 'voucher')),
    price_cents  INTEGER NOT NULL CHECK (price_cents >= 0),
    vat_code     TEXT NOT NULL,
    card_id      TEXT,
    UNIQUE (order_id, position)
);
CREATE INDEX order_items_card ON order_items(card_id);

-- Hub: a shop request retried with the same Idempotency-Key gets the first answer again.
CREATE TABLE idempotency_keys (
    token_id      TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        INTEGER NOT NULL,
    response      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (token_id, key)
) WITHOUT ROWID;

-- Hub: one personalization link per item; only the token's hash is stored.
CREATE TABLE personalization_links (
    token_hash  TEXT PRIMARY KEY,
    item_id     TEXT NOT NULL UNIQUE REFERENCES order_items(id),
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    created_at  TEXT NOT NULL
);

-- Hub: holder photos (checked and re-encoded as JPEG); not replicated, gates need none.
CREATE TABLE card_photos (
    card_id     TEXT PRIMARY KEY,
    media_type  TEXT NOT NULL,
    data        BLOB NOT NULL,
    created_at  TEXT NOT NULL
);

-- A voucher (a card of kind 'voucher') is exchanged for one annual card, once. The key is
-- the voucher's card id; a second exchange elsewhere while offline loses at the hub.
CREATE TABLE voucher_redemptions (
    voucher_id   TEXT PRIMARY KEY,
    card_id      TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    operator     TEXT,
    redeemed_at  TEXT NOT NULL
);

-- Cash-desk operators, managed at the hub; the PIN is stored as an scrypt hash.
CREATE TABLE operators (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    pin_hash    TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Node-local: failed PIN attempts, for the lockout.
CREATE TABLE login_failures (
    operator_id   TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL,
    locked_until  TEXT
);

-- Node-local print queue: cards (PDF to the card printer), mail carriers and receipts
-- (ESC/POS). A job waits here until the printer took it; a failed job can be retried.
CREATE TABLE print_jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('card', 'carrier', 'receipt')),
    ref_id      TEXT NOT NULL,
    card_issue  INTEGER,
    state       TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'printed', 'failed')),
    batch_id    TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    printed_at  TEXT
);
CREATE INDEX print_jobs_open ON print_jobs(state, created_at) WHERE state <> 'printed';
CREATE INDEX print_jobs_ref ON print_jobs(ref_id);

CREATE TABLE print_batches (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('card', 'carrier')),
    printer     TEXT NOT NULL,
    jobs        INTEGER NOT NULL,
    target      TEXT,
    created_at  TEXT NOT NULL
);

-- Change-feed triggers for the two new replicated tables (hub only), as in 0004.
CREATE TRIGGER changes_voucher_redemptions_ins AFTER INSERT ON voucher_redemptions WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('voucher_redemptions', json_array(new.voucher_id)); END;
CREATE TRIGGER changes_voucher_redemptions_upd AFTER UPDATE ON voucher_redemptions WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'voucher_redemptions', json_array(old.voucher_id) WHERE json_array(old.voucher_id) <> json_array(new.voucher_id);
    INSERT INTO changes (tbl, key) VALUES ('voucher_redemptions', json_array(new.voucher_id)); END;
CREATE TRIGGER changes_voucher_redemptions_del AFTER DELETE ON voucher_redemptions WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('voucher_redemptions', json_array(old.voucher_id)); END;
CREATE TRIGGER changes_operators_ins AFTER INSERT ON operators WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('operators', json_array(new.id)); END;
CREATE TRIGGER changes_operators_upd AFTER UPDATE ON operators WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'operators', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('operators', json_array(new.id)); END;
CREATE TRIGGER changes_operators_del AFTER DELETE ON operators WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('operators', json_array(old.id)); END;
