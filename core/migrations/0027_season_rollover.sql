-- Season rollover (S15; core/subscriptions/rollover*.py): one run per (old season, new season),
-- and one row per subscription of the old season saying what became of it. The rows are keyed
-- (run, subscription), so a run killed half-way and started again doubles nothing and misses
-- nothing: rows already written (and their seat holds, written in the same transaction) are
-- kept, the rest is planned again. Hub only (not replicated).
CREATE TABLE rollover_runs (
    id              TEXT PRIMARY KEY,
    from_season_id  TEXT NOT NULL REFERENCES seasons(id),
    to_season_id    TEXT NOT NULL REFERENCES seasons(id),
    mapping         TEXT NOT NULL,                   -- JSON: old product id -> new product id (or null)
    renewal_until   TEXT NOT NULL,                   -- the holds' deadline: renew by then
    cancel_deadline TEXT,                            -- cancellations recorded after it do not count
    state           TEXT NOT NULL CHECK (state IN ('planning', 'held', 'confirming', 'done')),
    total           INTEGER NOT NULL DEFAULT 0,      -- progress of the running step
    done            INTEGER NOT NULL DEFAULT 0,
    error           TEXT,                            -- why the last background step stopped, if it failed
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (from_season_id, to_season_id),
    CHECK (from_season_id <> to_season_id)
);

CREATE TABLE rollover_items (
    run_id           TEXT NOT NULL REFERENCES rollover_runs(id),
    subscription_id  TEXT NOT NULL REFERENCES subscriptions(id),
    outcome          TEXT NOT NULL CHECK (outcome IN ('kept', 'moved', 'paused', 'listed', 'left_out')),
    reason           TEXT,                           -- listed/left out: why (see rollover_plan.REASONS)
    detail           TEXT NOT NULL DEFAULT '',       -- e.g. the seat or tier concerned
    to_product_id    TEXT REFERENCES subscription_products(id),
    tier_id          TEXT REFERENCES discount_tiers(id),
    zone_id          TEXT REFERENCES price_zones(id),
    seats            TEXT NOT NULL DEFAULT '[]',     -- JSON [[performance id, seat id], ...] held for it
    hold_id          TEXT,
    state            TEXT NOT NULL CHECK (state IN ('held', 'confirmed', 'open', 'failed')),
    new_subscription_id TEXT REFERENCES subscriptions(id),
    order_id         TEXT REFERENCES orders(id),
    invoice_id       TEXT,
    debit_id         TEXT,
    error            TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (run_id, subscription_id)
) WITHOUT ROWID;
CREATE INDEX rollover_items_outcome ON rollover_items(run_id, outcome, reason);
CREATE UNIQUE INDEX rollover_items_new ON rollover_items(new_subscription_id) WHERE new_subscription_id IS NOT NULL;

-- A subscription's cards are found by its order line (`passes.issue_subscription_cards`, once per
-- confirmed subscription): without this index every lookup read all cards, so a rollover of 20,000
-- subscriptions slowed down with every pass it issued.
CREATE INDEX cards_order_item ON cards(order_item_id) WHERE order_item_id IS NOT NULL;
