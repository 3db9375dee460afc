-- Foundation: node identity, number series, API tokens, the catalog and customers.
-- Money is integer cents; timestamps are ISO 8601 UTC text; ids are UUIDv7 text.

CREATE TABLE node (
    id          TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('hub', 'cashdesk', 'counter', 'gate')),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE number_series (
    prefix      TEXT NOT NULL,
    year        INTEGER NOT NULL,
    owner_node  TEXT NOT NULL,
    last_value  INTEGER NOT NULL DEFAULT 0 CHECK (last_value >= 0),
    PRIMARY KEY (prefix, year)
) WITHOUT ROWID;

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'office', 'shop', 'agency')),
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE TABLE organizers (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    street            TEXT NOT NULL,
    postcode          TEXT NOT NULL,
    town              TEXT NOT NULL,
    country           TEXT NOT NULL,
    tax_number        TEXT,
    vat_id            TEXT,
    sepa_creditor_id  TEXT,
    active            INTEGER NOT NULL DEFAULT 1,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE venues (
    id            TEXT PRIMARY KEY,
    organizer_id  TEXT NOT NULL REFERENCES organizers(id),
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('museum', 'exhibition', 'stage')),
    street        TEXT NOT NULL,
    postcode      TEXT NOT NULL,
    town          TEXT NOT NULL,
    country       TEXT NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX venues_organizer ON venues(organizer_id);

CREATE TABLE price_zones (
    id            TEXT PRIMARY KEY,
    organizer_id  TEXT NOT NULL REFERENCES organizers(id),
    code          TEXT NOT NULL,
    name          TEXT NOT NULL,
    color         TEXT NOT NULL,
    sort          INTEGER NOT NULL DEFAULT 0,
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (organizer_id, code)
);

CREATE TABLE seating_plans (
    id          TEXT PRIMARY KEY,
    venue_id    TEXT NOT NULL REFERENCES venues(id),
    name        TEXT NOT NULL,
    seat_size   REAL NOT NULL DEFAULT 1.0,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX seating_plans_venue ON seating_plans(venue_id);

CREATE TABLE plan_sections (
    id       TEXT PRIMARY KEY,
    plan_id  TEXT NOT NULL REFERENCES seating_plans(id),
    name     TEXT NOT NULL,
    sort     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (plan_id, name)
);

-- Every plan has one base variant (the plan as drawn); other variants add or remove seats.
CREATE TABLE plan_variants (
    id          TEXT PRIMARY KEY,
    plan_id     TEXT NOT NULL REFERENCES seating_plans(id),
    name        TEXT NOT NULL,
    is_base     INTEGER NOT NULL DEFAULT 0,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (plan_id, name)
);
CREATE UNIQUE INDEX plan_variants_one_base ON plan_variants(plan_id) WHERE is_base = 1;

CREATE TABLE seats (
    id          TEXT PRIMARY KEY,
    plan_id     TEXT NOT NULL REFERENCES seating_plans(id),
    section_id  TEXT NOT NULL REFERENCES plan_sections(id),
    row_label   TEXT NOT NULL,
    label       TEXT NOT NULL,
    x           REAL NOT NULL,
    y           REAL NOT NULL,
    zone_id     TEXT NOT NULL REFERENCES price_zones(id),
    wheelchair  INTEGER NOT NULL DEFAULT 0,
    companion   INTEGER NOT NULL DEFAULT 0,
    -- NULL: part of the base plan; else only present in that variant.
    variant_id  TEXT REFERENCES plan_variants(id),
    active      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX seats_plan ON seats(plan_id, variant_id);

CREATE TABLE variant_removed_seats (
    variant_id  TEXT NOT NULL REFERENCES plan_variants(id),
    seat_id     TEXT NOT NULL REFERENCES seats(id),
    PRIMARY KEY (variant_id, seat_id)
) WITHOUT ROWID;

CREATE TABLE seasons (
    id            TEXT PRIMARY KEY,
    organizer_id  TEXT NOT NULL REFERENCES organizers(id),
    name          TEXT NOT NULL,
    starts_on     TEXT NOT NULL,
    ends_on       TEXT NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (organizer_id, name)
);

CREATE TABLE performances (
    id          TEXT PRIMARY KEY,
    venue_id    TEXT NOT NULL REFERENCES venues(id),
    variant_id  TEXT NOT NULL REFERENCES plan_variants(id),
    season_id   TEXT REFERENCES seasons(id),
    title       TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX performances_start ON performances(starts_at, id);

CREATE TABLE performance_prices (
    performance_id  TEXT NOT NULL REFERENCES performances(id),
    zone_id         TEXT NOT NULL REFERENCES price_zones(id),
    price_cents     INTEGER NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (performance_id, zone_id)
) WITHOUT ROWID;

CREATE TABLE annual_products (
    id             TEXT PRIMARY KEY,
    organizer_id   TEXT NOT NULL REFERENCES organizers(id),
    name           TEXT NOT NULL,
    validity_mode  TEXT NOT NULL CHECK (validity_mode IN ('fixed', 'from_purchase', 'from_first_entry')),
    valid_from     TEXT,
    valid_until    TEXT,
    months         INTEGER,
    price_cents    INTEGER NOT NULL CHECK (price_cents >= 0),
    vat_code       TEXT NOT NULL CHECK (vat_code IN ('19', '7', 'exempt')),
    channels       TEXT NOT NULL,
    active         INTEGER NOT NULL DEFAULT 1,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE TABLE annual_product_venues (
    product_id  TEXT NOT NULL REFERENCES annual_products(id),
    venue_id    TEXT NOT NULL REFERENCES venues(id),
    PRIMARY KEY (product_id, venue_id)
) WITHOUT ROWID;

CREATE TABLE subscription_products (
    id                   TEXT PRIMARY KEY,
    organizer_id         TEXT NOT NULL REFERENCES organizers(id),
    season_id            TEXT NOT NULL REFERENCES seasons(id),
    name                 TEXT NOT NULL,
    title                TEXT NOT NULL,
    subtitle             TEXT NOT NULL,
    description          TEXT NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('ring', 'choice', 'voucher', 'combi')),
    print_options        TEXT NOT NULL CHECK (print_options IN ('pass', 'single_tickets', 'both')),
    transferable         INTEGER NOT NULL DEFAULT 0,
    agency_release       INTEGER NOT NULL DEFAULT 0,
    vat_code             TEXT NOT NULL CHECK (vat_code IN ('19', '7', 'exempt')),
    pick_count           INTEGER,
    voucher_count        INTEGER,
    voucher_value_cents  INTEGER,
    price_cents          INTEGER,
    active               INTEGER NOT NULL DEFAULT 1,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);

-- ring: ordered series; choice: the pool; voucher: the offer; combi: the bundle.
CREATE TABLE subscription_performances (
    product_id      TEXT NOT NULL REFERENCES subscription_products(id),
    performance_id  TEXT NOT NULL REFERENCES performances(id),
    position        INTEGER NOT NULL,
    PRIMARY KEY (product_id, performance_id)
) WITHOUT ROWID;

CREATE TABLE subscription_zone_prices (
    product_id   TEXT NOT NULL REFERENCES subscription_products(id),
    zone_id      TEXT NOT NULL REFERENCES price_zones(id),
    price_cents  INTEGER NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (product_id, zone_id)
) WITHOUT ROWID;

CREATE TABLE combi_prices (
    product_id      TEXT NOT NULL REFERENCES subscription_products(id),
    performance_id  TEXT NOT NULL REFERENCES performances(id),
    zone_id         TEXT NOT NULL REFERENCES price_zones(id),
    price_cents     INTEGER NOT NULL CHECK (price_cents >= 0),
    PRIMARY KEY (product_id, performance_id, zone_id)
) WITHOUT ROWID;

CREATE TABLE sale_windows (
    product_id  TEXT NOT NULL REFERENCES subscription_products(id),
    channel     TEXT NOT NULL CHECK (channel IN ('online', 'cashdesk', 'phone', 'agency')),
    phase       TEXT NOT NULL CHECK (phase IN ('renewal', 'general')),
    starts_at   TEXT NOT NULL,
    ends_at     TEXT NOT NULL,
    PRIMARY KEY (product_id, channel, phase)
) WITHOUT ROWID;

CREATE TABLE discount_tiers (
    id               TEXT PRIMARY KEY,
    product_id       TEXT NOT NULL REFERENCES subscription_products(id),
    name             TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('percent', 'fixed', 'complimentary')),
    value            INTEGER NOT NULL CHECK (value >= 0),
    bookable_by_all  INTEGER NOT NULL DEFAULT 0,
    sort             INTEGER NOT NULL DEFAULT 0,
    active           INTEGER NOT NULL DEFAULT 1,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (product_id, name)
);

CREATE TABLE customers (
    id          TEXT PRIMARY KEY,
    number      TEXT NOT NULL UNIQUE,
    salutation  TEXT NOT NULL DEFAULT '',
    first_name  TEXT NOT NULL,
    last_name   TEXT NOT NULL,
    company     TEXT NOT NULL DEFAULT '',
    street      TEXT NOT NULL,
    postcode    TEXT NOT NULL,
    town        TEXT NOT NULL,
    country     TEXT NOT NULL,
    email       TEXT,
    phone       TEXT,
    active      INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX customers_last_name ON customers(last_name COLLATE NOCASE, first_name COLLATE NOCASE);
CREATE INDEX customers_email ON customers(email COLLATE NOCASE);
