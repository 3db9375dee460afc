-- Sync (E1-E3, E7, S17): the hub's applied-once op log, conflicts, the change feed,
-- enrollment codes and node scopes; the edge's sync state; seat pools (contingents),
-- recalls, and single-ticket sales.

-- Hub: every op a node pushed, once (the key is the node's own sequence number).
CREATE TABLE sync_ops (
    node_id      TEXT NOT NULL,
    node_seq     INTEGER NOT NULL,
    op_id        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    wall_time    TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
    reason       TEXT,
    PRIMARY KEY (node_id, node_seq)
) WITHOUT ROWID;

-- Hub: a rejected op is never dropped silently; the office resolves it.
CREATE TABLE conflicts (
    id           TEXT PRIMARY KEY,
    node_id      TEXT NOT NULL,
    node_seq     INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    body         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    resolved_at  TEXT,
    resolution   TEXT,
    UNIQUE (node_id, node_seq)
);
CREATE INDEX conflicts_open ON conflicts(resolved_at, created_at);

-- Hub: the global change sequence; a pull reads the current row of each changed key.
CREATE TABLE changes (
    seq  INTEGER PRIMARY KEY,
    tbl  TEXT NOT NULL,
    key  TEXT NOT NULL
);

-- Hub: one-time enrollment codes (stored hashed) and what each enrolled node may see.
CREATE TABLE enrollment_codes (
    code_hash   TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('cashdesk', 'counter', 'gate')),
    venue_ids   TEXT NOT NULL DEFAULT '[]',
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    node_id     TEXT
);

CREATE TABLE node_scopes (
    node_id      TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    venue_ids    TEXT NOT NULL DEFAULT '[]',
    enrolled_at  TEXT NOT NULL,
    last_push_at TEXT,
    last_pull_at TEXT,
    pulled_seq   INTEGER NOT NULL DEFAULT 0,
    clock_skew_s REAL
);

-- Edge: where this node stands with its hub (one row).
CREATE TABLE sync_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    hub_url        TEXT,
    hub_node_id    TEXT,
    venue_ids      TEXT NOT NULL DEFAULT '[]',
    cursor         INTEGER NOT NULL DEFAULT 0,
    pushed_seq     INTEGER NOT NULL DEFAULT 0,
    last_push_at   TEXT,
    last_pull_at   TEXT,
    last_error     TEXT,
    clock_skew_s   REAL
);

-- Contingents (E3, S17): which pool may sell a seat of a performance. A seat without a row
-- is in the hub's pool. `recall_id` marks seats the hub has asked a node to give back.
CREATE TABLE seat_pools (
    performance_id  TEXT NOT NULL REFERENCES performances(id),
    seat_id         TEXT NOT NULL REFERENCES seats(id),
    pool            TEXT NOT NULL CHECK (pool IN ('hub', 'blocked') OR pool LIKE 'node:%' OR pool LIKE 'agency:%'),
    recall_id       TEXT,
    PRIMARY KEY (performance_id, seat_id)
) WITHOUT ROWID;
CREATE INDEX seat_pools_pool ON seat_pools(pool, performance_id);

CREATE TABLE recalls (
    id              TEXT PRIMARY KEY,
    node_id         TEXT NOT NULL,
    performance_id  TEXT NOT NULL REFERENCES performances(id),
    seat_ids        TEXT NOT NULL,
    to_pool         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('requested', 'done')),
    released        TEXT,
    kept_sold       TEXT,
    created_at      TEXT NOT NULL,
    done_at         TEXT
);

-- Single-ticket sales (the cash desk's and the hub's): one sold ticket per seat, enforced here.
CREATE TABLE sales (
    id                 TEXT PRIMARY KEY,
    number             TEXT NOT NULL UNIQUE,
    node_id            TEXT NOT NULL,
    channel            TEXT NOT NULL,
    payment_method     TEXT NOT NULL CHECK (payment_method IN ('cash', 'card', 'transfer', 'sepa', 'none')),
    payment_reference  TEXT,
    total_cents        INTEGER NOT NULL CHECK (total_cents >= 0),
    operator           TEXT,
    created_at         TEXT NOT NULL
);

CREATE TABLE tickets (
    id              TEXT PRIMARY KEY,
    sale_id         TEXT NOT NULL REFERENCES sales(id),
    performance_id  TEXT NOT NULL REFERENCES performances(id),
    seat_id         TEXT NOT NULL REFERENCES seats(id),
    zone_id         TEXT NOT NULL,
    price_cents     INTEGER NOT NULL CHECK (price_cents >= 0),
    status          TEXT NOT NULL DEFAULT 'sold' CHECK (status IN ('sold', 'cancelled')),
    created_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX tickets_one_per_seat ON tickets(performance_id, seat_id) WHERE status = 'sold';
CREATE INDEX tickets_sale ON tickets(sale_id);


-- Change-feed triggers (generated once from the table list in hub/feed.py; hub only).

CREATE TRIGGER changes_organizers_ins AFTER INSERT ON organizers WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('organizers', json_array(new.id)); END;
CREATE TRIGGER changes_organizers_upd AFTER UPDATE ON organizers WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'organizers', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('organizers', json_array(new.id)); END;
CREATE TRIGGER changes_organizers_del AFTER DELETE ON organizers WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('organizers', json_array(old.id)); END;
CREATE TRIGGER changes_venues_ins AFTER INSERT ON venues WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('venues', json_array(new.id)); END;
CREATE TRIGGER changes_venues_upd AFTER UPDATE ON venues WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'venues', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('venues', json_array(new.id)); END;
CREATE TRIGGER changes_venues_del AFTER DELETE ON venues WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('venues', json_array(old.id)); END;
CREATE TRIGGER changes_price_zones_ins AFTER INSERT ON price_zones WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('price_zones', json_array(new.id)); END;
CREATE TRIGGER changes_price_zones_upd AFTER UPDATE ON price_zones WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'price_zones', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('price_zones', json_array(new.id)); END;
CREATE TRIGGER changes_price_zones_del AFTER DELETE ON price_zones WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('price_zones', json_array(old.id)); END;
CREATE TRIGGER changes_seating_plans_ins AFTER INSERT ON seating_plans WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('seating_plans', json_array(new.id)); END;
CREATE TRIGGER changes_seating_plans_upd AFTER UPDATE ON seating_plans WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'seating_plans', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('seating_plans', json_array(new.id)); END;
CREATE TRIGGER changes_seating_plans_del AFTER DELETE ON seating_plans WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('seating_plans', json_array(old.id)); END;
CREATE TRIGGER changes_plan_sections_ins AFTER INSERT ON plan_sections WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('plan_sections', json_array(new.id)); END;
CREATE TRIGGER changes_plan_sections_upd AFTER UPDATE ON plan_sections WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'plan_sections', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('plan_sections', json_array(new.id)); END;
CREATE TRIGGER changes_plan_sections_del AFTER DELETE ON plan_sections WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('plan_sections', json_array(old.id)); END;
CREATE TRIGGER changes_plan_variants_ins AFTER INSERT ON plan_variants WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('plan_variants', json_array(new.id)); END;
CREATE TRIGGER changes_plan_variants_upd AFTER UPDATE ON plan_variants WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'plan_variants', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('plan_variants', json_array(new.id)); END;
CREATE TRIGGER changes_plan_variants_del AFTER DELETE ON plan_variants WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('plan_variants', json_array(old.id)); END;
CREATE TRIGGER changes_seats_ins AFTER INSERT ON seats WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('seats', json_array(new.id)); END;
CREATE TRIGGER changes_seats_upd AFTER UPDATE ON seats WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'seats', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('seats', json_array(new.id)); END;
CREATE TRIGGER changes_seats_del AFTER DELETE ON seats WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('seats', json_array(old.id)); END;
CREATE TRIGGER changes_variant_removed_seats_ins AFTER INSERT ON variant_removed_seats WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('variant_removed_seats', json_array(new.variant_id, new.seat_id)); END;
CREATE TRIGGER changes_variant_removed_seats_upd AFTER UPDATE ON variant_removed_seats WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'variant_removed_seats', json_array(old.variant_id, old.seat_id) WHERE json_array(old.variant_id, old.seat_id) <> json_array(new.variant_id, new.seat_id);
    INSERT INTO changes (tbl, key) VALUES ('variant_removed_seats', json_array(new.variant_id, new.seat_id)); END;
CREATE TRIGGER changes_variant_removed_seats_del AFTER DELETE ON variant_removed_seats WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('variant_removed_seats', json_array(old.variant_id, old.seat_id)); END;
CREATE TRIGGER changes_seasons_ins AFTER INSERT ON seasons WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('seasons', json_array(new.id)); END;
CREATE TRIGGER changes_seasons_upd AFTER UPDATE ON seasons WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'seasons', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('seasons', json_array(new.id)); END;
CREATE TRIGGER changes_seasons_del AFTER DELETE ON seasons WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('seasons', json_array(old.id)); END;
CREATE TRIGGER changes_performances_ins AFTER INSERT ON performances WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('performances', json_array(new.id)); END;
CREATE TRIGGER changes_performances_upd AFTER UPDATE ON performances WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'performances', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('performances', json_array(new.id)); END;
CREATE TRIGGER changes_performances_del AFTER DELETE ON performances WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('performances', json_array(old.id)); END;
CREATE TRIGGER changes_performance_prices_ins AFTER INSERT ON performance_prices WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('performance_prices', json_array(new.performance_id, new.zone_id)); END;
CREATE TRIGGER changes_performance_prices_upd AFTER UPDATE ON performance_prices WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'performance_prices', json_array(old.performance_id, old.zone_id) WHERE json_array(old.performance_id, old.zone_id) <> json_array(new.performance_id, new.zone_id);
    INSERT INTO changes (tbl, key) VALUES ('performance_prices', json_array(new.performance_id, new.zone_id)); END;
CREATE TRIGGER changes_performance_prices_del AFTER DELETE ON performance_prices WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('performance_prices', json_array(old.performance_id, old.zone_id)); END;
CREATE TRIGGER changes_annual_products_ins AFTER INSERT ON annual_products WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('annual_products', json_array(new.id)); END;
CREATE TRIGGER changes_annual_products_upd AFTER UPDATE ON annual_products WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'annual_products', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('annual_products', json_array(new.id)); END;
CREATE TRIGGER changes_annual_products_del AFTER DELETE ON annual_products WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('annual_products', json_array(old.id)); END;
CREATE TRIGGER changes_annual_product_venues_ins AFTER INSERT ON annual_product_venues WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('annual_product_venues', json_array(new.product_id, new.venue_id)); END;
CREATE TRIGGER changes_annual_product_venues_upd AFTER UPDATE ON annual_product_venues WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'annual_product_venues', json_array(old.product_id, old.venue_id) WHERE json_array(old.product_id, old.venue_id) <> json_array(new.product_id, new.venue_id);
    INSERT INTO changes (tbl, key) VALUES ('annual_product_venues', json_array(new.product_id, new.venue_id)); END;
CREATE TRIGGER changes_annual_product_venues_del AFTER DELETE ON annual_product_venues WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('annual_product_venues', json_array(old.product_id, old.venue_id)); END;
CREATE TRIGGER changes_subscription_products_ins AFTER INSERT ON subscription_products WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('subscription_products', json_array(new.id)); END;
CREATE TRIGGER changes_subscription_products_upd AFTER UPDATE ON subscription_products WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'subscription_products', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('subscription_products', json_array(new.id)); END;
CREATE TRIGGER changes_subscription_products_del AFTER DELETE ON subscription_products WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('subscription_products', json_array(old.id)); END;
CREATE TRIGGER changes_subscription_performances_ins AFTER INSERT ON subscription_performances WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('subscription_performances', json_array(new.product_id, new.performance_id)); END;
CREATE TRIGGER changes_subscription_performances_upd AFTER UPDATE ON subscription_performances WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'subscription_performances', json_array(old.product_id, old.performance_id) WHERE json_array(old.product_id, old.performance_id) <> json_array(new.product_id, new.performance_id);
    INSERT INTO changes (tbl, key) VALUES ('subscription_performances', json_array(new.product_id, new.performance_id)); END;
CREATE TRIGGER changes_subscription_performances_del AFTER DELETE ON subscription_performances WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('subscription_performances', json_array(old.product_id, old.performance_id)); END;
CREATE TRIGGER changes_subscription_zone_prices_ins AFTER INSERT ON subscription_zone_prices WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('subscription_zone_prices', json_array(new.product_id, new.zone_id)); END;
CREATE TRIGGER changes_subscription_zone_prices_upd AFTER UPDATE ON subscription_zone_prices WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'subscription_zone_prices', json_array(old.product_id, old.zone_id) WHERE json_array(old.product_id, old.zone_id) <> json_array(new.product_id, new.zone_id);
    INSERT INTO changes (tbl, key) VALUES ('subscription_zone_prices', json_array(new.product_id, new.zone_id)); END;
CREATE TRIGGER changes_subscription_zone_prices_del AFTER DELETE ON subscription_zone_prices WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('subscription_zone_prices', json_array(old.product_id, old.zone_id)); END;
CREATE TRIGGER changes_combi_prices_ins AFTER INSERT ON combi_prices WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('combi_prices', json_array(new.product_id, new.performance_id, new.zone_id)); END;
CREATE TRIGGER changes_combi_prices_upd AFTER UPDATE ON combi_prices WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'combi_prices', json_array(old.product_id, old.performance_id, old.zone_id) WHERE json_array(old.product_id, old.performance_id, old.zone_id) <> json_array(new.product_id, new.performance_id, new.zone_id);
    INSERT INTO changes (tbl, key) VALUES ('combi_prices', json_array(new.product_id, new.performance_id, new.zone_id)); END;
CREATE TRIGGER changes_combi_prices_del AFTER DELETE ON combi_prices WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('combi_prices', json_array(old.product_id, old.performance_id, old.zone_id)); END;
CREATE TRIGGER changes_sale_windows_ins AFTER INSERT ON sale_windows WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('sale_windows', json_array(new.product_id, new.channel, new.phase)); END;
CREATE TRIGGER changes_sale_windows_upd AFTER UPDATE ON sale_windows WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'sale_windows', json_array(old.product_id, old.channel, old.phase) WHERE json_array(old.product_id, old.channel, old.phase) <> json_array(new.product_id, new.channel, new.phase);
    INSERT INTO changes (tbl, key) VALUES ('sale_windows', json_array(new.product_id, new.channel, new.phase)); END;
CREATE TRIGGER changes_sale_windows_del AFTER DELETE ON sale_windows WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('sale_windows', json_array(old.product_id, old.channel, old.phase)); END;
CREATE TRIGGER changes_discount_tiers_ins AFTER INSERT ON discount_tiers WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('discount_tiers', json_array(new.id)); END;
CREATE TRIGGER changes_discount_tiers_upd AFTER UPDATE ON discount_tiers WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'discount_tiers', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('discount_tiers', json_array(new.id)); END;
CREATE TRIGGER changes_discount_tiers_del AFTER DELETE ON discount_tiers WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('discount_tiers', json_array(old.id)); END;
CREATE TRIGGER changes_customers_ins AFTER INSERT ON customers WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('customers', json_array(new.id)); END;
CREATE TRIGGER changes_customers_upd AFTER UPDATE ON customers WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'customers', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('customers', json_array(new.id)); END;
CREATE TRIGGER changes_customers_del AFTER DELETE ON customers WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('customers', json_array(old.id)); END;
CREATE TRIGGER changes_trust_roots_ins AFTER INSERT ON trust_roots WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('trust_roots', json_array(new.key_id)); END;
CREATE TRIGGER changes_trust_roots_upd AFTER UPDATE ON trust_roots WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'trust_roots', json_array(old.key_id) WHERE json_array(old.key_id) <> json_array(new.key_id);
    INSERT INTO changes (tbl, key) VALUES ('trust_roots', json_array(new.key_id)); END;
CREATE TRIGGER changes_trust_roots_del AFTER DELETE ON trust_roots WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('trust_roots', json_array(old.key_id)); END;
CREATE TRIGGER changes_node_certs_ins AFTER INSERT ON node_certs WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('node_certs', json_array(new.key_id)); END;
CREATE TRIGGER changes_node_certs_upd AFTER UPDATE ON node_certs WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'node_certs', json_array(old.key_id) WHERE json_array(old.key_id) <> json_array(new.key_id);
    INSERT INTO changes (tbl, key) VALUES ('node_certs', json_array(new.key_id)); END;
CREATE TRIGGER changes_node_certs_del AFTER DELETE ON node_certs WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('node_certs', json_array(old.key_id)); END;
CREATE TRIGGER changes_node_revocations_ins AFTER INSERT ON node_revocations WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('node_revocations', json_array(new.key_id)); END;
CREATE TRIGGER changes_node_revocations_upd AFTER UPDATE ON node_revocations WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'node_revocations', json_array(old.key_id) WHERE json_array(old.key_id) <> json_array(new.key_id);
    INSERT INTO changes (tbl, key) VALUES ('node_revocations', json_array(new.key_id)); END;
CREATE TRIGGER changes_node_revocations_del AFTER DELETE ON node_revocations WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('node_revocations', json_array(old.key_id)); END;
CREATE TRIGGER changes_card_products_ins AFTER INSERT ON card_products WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('card_products', json_array(new.code)); END;
CREATE TRIGGER changes_card_products_upd AFTER UPDATE ON card_products WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'card_products', json_array(old.code) WHERE json_array(old.code) <> json_array(new.code);
    INSERT INTO changes (tbl, key) VALUES ('card_products', json_array(new.code)); END;
CREATE TRIGGER changes_card_products_del AFTER DELETE ON card_products WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('card_products', json_array(old.code)); END;
CREATE TRIGGER changes_cards_ins AFTER INSERT ON cards WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('cards', json_array(new.id)); END;
CREATE TRIGGER changes_cards_upd AFTER UPDATE ON cards WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'cards', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('cards', json_array(new.id)); END;
CREATE TRIGGER changes_cards_del AFTER DELETE ON cards WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('cards', json_array(old.id)); END;
CREATE TRIGGER changes_entries_ins AFTER INSERT ON entries WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('entries', json_array(new.card_id, new.at, new.id)); END;
CREATE TRIGGER changes_entries_upd AFTER UPDATE ON entries WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'entries', json_array(old.card_id, old.at, old.id) WHERE json_array(old.card_id, old.at, old.id) <> json_array(new.card_id, new.at, new.id);
    INSERT INTO changes (tbl, key) VALUES ('entries', json_array(new.card_id, new.at, new.id)); END;
CREATE TRIGGER changes_entries_del AFTER DELETE ON entries WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('entries', json_array(old.card_id, old.at, old.id)); END;
CREATE TRIGGER changes_seat_pools_ins AFTER INSERT ON seat_pools WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('seat_pools', json_array(new.performance_id, new.seat_id)); END;
CREATE TRIGGER changes_seat_pools_upd AFTER UPDATE ON seat_pools WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'seat_pools', json_array(old.performance_id, old.seat_id) WHERE json_array(old.performance_id, old.seat_id) <> json_array(new.performance_id, new.seat_id);
    INSERT INTO changes (tbl, key) VALUES ('seat_pools', json_array(new.performance_id, new.seat_id)); END;
CREATE TRIGGER changes_seat_pools_del AFTER DELETE ON seat_pools WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('seat_pools', json_array(old.performance_id, old.seat_id)); END;
CREATE TRIGGER changes_recalls_ins AFTER INSERT ON recalls WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('recalls', json_array(new.id)); END;
CREATE TRIGGER changes_recalls_upd AFTER UPDATE ON recalls WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) SELECT 'recalls', json_array(old.id) WHERE json_array(old.id) <> json_array(new.id);
    INSERT INTO changes (tbl, key) VALUES ('recalls', json_array(new.id)); END;
CREATE TRIGGER changes_recalls_del AFTER DELETE ON recalls WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT INTO changes (tbl, key) VALUES ('recalls', json_array(old.id)); END;

-- A hub that existed before this migration: everything it holds is one change each.
INSERT INTO changes (tbl, key) SELECT 'organizers', json_array(id) FROM organizers WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'venues', json_array(id) FROM venues WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'price_zones', json_array(id) FROM price_zones WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'seating_plans', json_array(id) FROM seating_plans WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'plan_sections', json_array(id) FROM plan_sections WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'plan_variants', json_array(id) FROM plan_variants WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'seats', json_array(id) FROM seats WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'variant_removed_seats', json_array(variant_id, seat_id) FROM variant_removed_seats WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'seasons', json_array(id) FROM seasons WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'performances', json_array(id) FROM performances WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'performance_prices', json_array(performance_id, zone_id) FROM performance_prices WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'annual_products', json_array(id) FROM annual_products WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'annual_product_venues', json_array(product_id, venue_id) FROM annual_product_venues WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'subscription_products', json_array(id) FROM subscription_products WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'subscription_performances', json_array(product_id, performance_id) FROM subscription_performances WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'subscription_zone_prices', json_array(product_id, zone_id) FROM subscription_zone_prices WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'combi_prices', json_array(product_id, performance_id, zone_id) FROM combi_prices WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'sale_windows', json_array(product_id, channel, phase) FROM sale_windows WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'discount_tiers', json_array(id) FROM discount_tiers WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'customers', json_array(id) FROM customers WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'trust_roots', json_array(key_id) FROM trust_roots WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'node_certs', json_array(key_id) FROM node_certs WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'node_revocations', json_array(key_id) FROM node_revocations WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'card_products', json_array(code) FROM card_products WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'cards', json_array(id) FROM cards WHERE (SELECT role FROM node) = 'hub';
INSERT INTO changes (tbl, key) SELECT 'entries', json_array(card_id, at, id) FROM entries WHERE (SELECT role FROM node) = 'hub';

-- Edge: what the hub answered for each pushed op (applied, duplicate, rejected: reason).
-- (No index: ops are pushed in node_seq order, so sync_state.pushed_seq marks how far.)
ALTER TABLE outbox ADD COLUMN result TEXT;

-- Card codes for products (core/cards.py): the hub numbers every product as it is created,
-- so an edge can issue cards of it offline (the numbers reach edges with the feed).
CREATE TRIGGER card_code_annual AFTER INSERT ON annual_products WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT OR IGNORE INTO card_products (code, product_id, kind)
    SELECT coalesce(max(code), 0) + 1, new.id, 'annual' FROM card_products; END;
CREATE TRIGGER card_code_subscription AFTER INSERT ON subscription_products WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT OR IGNORE INTO card_products (code, product_id, kind)
    SELECT coalesce(max(code), 0) + 1, new.id, 'subscription' FROM card_products; END;
CREATE TRIGGER card_code_performance AFTER INSERT ON performances WHEN (SELECT role FROM node) = 'hub' BEGIN
    INSERT OR IGNORE INTO card_products (code, product_id, kind)
    SELECT coalesce(max(code), 0) + 1, new.id, 'single' FROM card_products; END;
INSERT INTO card_products (code, product_id, kind)
    SELECT (SELECT coalesce(max(code), 0) FROM card_products) + row_number() OVER (ORDER BY kind, id), id, kind
    FROM (SELECT id, 'annual' AS kind FROM annual_products UNION ALL SELECT id, 'subscription' FROM subscription_products
          UNION ALL SELECT id, 'single' FROM performances)
    WHERE (SELECT role FROM node) = 'hub' AND id NOT IN (SELECT product_id FROM card_products);
