-- Choice vouchers (Wahlgutscheine, S5/S10; core/subscriptions/choice_vouchers.py): a voucher subscription
-- (`subscription_products.kind = 'voucher'`) sells N vouchers. Each is a signed code (card
-- format v1, kind 5 `choice_voucher`, signed by the selling node's card key, so a desk can
-- verify it offline) and is redeemed once for one seat ticket of a performance of its offer.
CREATE TABLE choice_vouchers (
    id               TEXT PRIMARY KEY,                    -- UUIDv7, also inside the signed code
    number           TEXT NOT NULL UNIQUE,                -- own series per node (`WG` at the hub)
    subscription_id  TEXT NOT NULL,                       -- no REFERENCES: desks get vouchers, not the hub's subscriptions
    product_id       TEXT NOT NULL REFERENCES subscription_products(id),
    position         INTEGER NOT NULL CHECK (position >= 1),  -- 1..voucher_count of its subscription
    value_cents      INTEGER NOT NULL CHECK (value_cents >= 0),
    tier_id          TEXT REFERENCES discount_tiers(id),  -- the buyer's discount tier (S7); NULL: full price
    tier_name        TEXT,                                -- its name, kept for the ticket (e.g. Schwerbehindert)
    valid_until      TEXT NOT NULL,                       -- end of the season's last day
    state            TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'redeemed', 'void')),
    code             TEXT UNIQUE,                         -- the signed code as printed in the QR; NULL in a desk's
                                                          -- copy of the hub's vouchers (not printable from a copy)
    key_id           INTEGER NOT NULL,
    issued_by        TEXT NOT NULL,                       -- node id of the signer
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (subscription_id, position)
);
CREATE INDEX choice_vouchers_subscription ON choice_vouchers(subscription_id);

-- A redemption: the voucher's one use. The primary key on `voucher_id` is the last word
-- against a second use at the hub, whatever the checks before it saw.
CREATE TABLE choice_voucher_redemptions (
    voucher_id         TEXT PRIMARY KEY REFERENCES choice_vouchers(id),
    rule               TEXT NOT NULL CHECK (rule IN ('value', 'payment')),
    order_id           TEXT NOT NULL,                     -- no REFERENCES: desks get redemptions, not the hub's
    ticket_id          TEXT NOT NULL,                     -- orders and tickets
    performance_id     TEXT NOT NULL REFERENCES performances(id),
    discount_label     TEXT,                              -- value rule: the voucher's discount type on the ticket
    value_cents        INTEGER NOT NULL CHECK (value_cents >= 0),
    used_cents         INTEGER NOT NULL CHECK (used_cents >= 0),
    lapsed_cents       INTEGER NOT NULL CHECK (lapsed_cents >= 0),  -- never paid out
    node_id            TEXT NOT NULL,
    operator           TEXT,
    redeemed_at        TEXT NOT NULL,
    CHECK (used_cents + lapsed_cents = value_cents)
);
CREATE INDEX choice_voucher_redemptions_ticket ON choice_voucher_redemptions(ticket_id);
CREATE INDEX choice_voucher_redemptions_order ON choice_voucher_redemptions(order_id);

-- Payments: a voucher pays (part of) a ticket, method `voucher`. SQLite cannot change a CHECK,
-- so the table is rebuilt with the same rows.
CREATE TABLE payments_v21 (
    id            TEXT PRIMARY KEY,
    order_id      TEXT NOT NULL REFERENCES orders(id),
    method        TEXT NOT NULL CHECK (method IN ('cash', 'card', 'online', 'transfer', 'sepa', 'none', 'voucher')),
    amount_cents  INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'paid', 'failed', 'refunded')),
    reference     TEXT,             -- card terminal receipt, transfer reference, PSP id; voucher: its number
    given_cents   INTEGER,          -- cash: what the customer handed over
    operator      TEXT,
    node_id       TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
INSERT INTO payments_v21 SELECT id, order_id, method, amount_cents, state, reference, given_cents, operator, node_id,
                                created_at FROM payments;
DROP TABLE payments;
ALTER TABLE payments_v21 RENAME TO payments;
CREATE INDEX payments_order ON payments(order_id);
CREATE INDEX payments_day ON payments(node_id, created_at);
