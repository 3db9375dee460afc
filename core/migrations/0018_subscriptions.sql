-- Subscriptions (S2 ring, S4 choice, S6 combi; core/subscriptions/): a subscription is what an
-- order line of kind `subscription` delivers. Its seats are seat tickets (`tickets` rows with
-- the subscription's line as `line_id`), one per performance, so the one rule "a seat of a
-- performance is sold once" (`tickets_one_per_seat`) covers single tickets and subscriptions
-- alike; a seat change cancels a ticket and sells another, checked like a sale.
CREATE TABLE subscriptions (
    id              TEXT PRIMARY KEY,
    number          TEXT NOT NULL UNIQUE,            -- own series (`ABO`), owned by the selling node
    order_id        TEXT NOT NULL REFERENCES orders(id),
    line_id         TEXT NOT NULL UNIQUE REFERENCES order_lines(id),
    customer_id     TEXT NOT NULL REFERENCES customers(id),
    product_id      TEXT NOT NULL REFERENCES subscription_products(id),
    tier_id         TEXT REFERENCES discount_tiers(id),  -- NULL: the full package price
    zone_id         TEXT REFERENCES price_zones(id),     -- the zone it is priced in (ring, choice)
    form            TEXT NOT NULL CHECK (form IN ('pass', 'single_tickets', 'both')),
    state           TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'cancelled', 'paused')),
    ends_season_id  TEXT REFERENCES seasons(id),         -- cancelled: the last season it runs in
    holder_name     TEXT,                                -- on the pass; NULL: the customer's name
    channel         TEXT NOT NULL CHECK (channel IN ('shop', 'phone', 'cashdesk', 'counter', 'agency')),
    agency_token    TEXT,                                -- booked by an agency: its API token id
    price_cents     INTEGER NOT NULL CHECK (price_cents >= 0),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX subscriptions_customer ON subscriptions(customer_id);
CREATE INDEX subscriptions_product ON subscriptions(product_id, state);
CREATE INDEX subscriptions_agency ON subscriptions(agency_token) WHERE agency_token IS NOT NULL;

-- Seat holds of a checkout (shop, office, agency): seats kept for one buyer until the hold is
-- bought or expires. Hub only (not replicated). One hold per seat and performance, and never
-- a hold on a sold seat nor a sale of a held one: the triggers below make the database the
-- last word over held and sold seats together (SQLite runs them inside the writing
-- transaction). Buying a hold deletes it and inserts the tickets in one transaction; expired
-- holds are deleted before seats are looked at or claimed.
CREATE TABLE seat_holds (
    performance_id  TEXT NOT NULL REFERENCES performances(id),
    seat_id         TEXT NOT NULL REFERENCES seats(id),
    hold_id         TEXT NOT NULL,                       -- one checkout (several seats and performances)
    holder          TEXT NOT NULL,                       -- 'token:<id>' or 'staff:<id>': who may buy it
    expires_at      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (performance_id, seat_id)
) WITHOUT ROWID;
CREATE INDEX seat_holds_hold ON seat_holds(hold_id);
CREATE INDEX seat_holds_expiry ON seat_holds(expires_at);

CREATE TRIGGER tickets_not_on_a_held_seat BEFORE INSERT ON tickets
WHEN NEW.status = 'sold' AND EXISTS (SELECT 1 FROM seat_holds
                                     WHERE performance_id = NEW.performance_id AND seat_id = NEW.seat_id)
BEGIN
    SELECT RAISE(ABORT, 'seat is held');
END;

CREATE TRIGGER holds_not_on_a_sold_seat BEFORE INSERT ON seat_holds
WHEN EXISTS (SELECT 1 FROM tickets
             WHERE performance_id = NEW.performance_id AND seat_id = NEW.seat_id AND status = 'sold')
BEGIN
    SELECT RAISE(ABORT, 'seat is sold');
END;
