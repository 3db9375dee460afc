-- Signed cards and gates: trust (root key, node certificates, revocations), cards, entries,
-- the outbox every edge change is written to, and the trusted-time floor (B3, E4, B2, B7).

ALTER TABLE node ADD COLUMN key_id INTEGER;

-- The organizer root public key this folder trusts (pinned at hub init / enrollment).
CREATE TABLE trust_roots (
    key_id      INTEGER PRIMARY KEY,
    public_key  BLOB NOT NULL
);

-- Root-signed node certificates; `record` is the signed envelope, so it can be relayed.
CREATE TABLE node_certs (
    key_id       INTEGER PRIMARY KEY,
    node_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('hub', 'cashdesk', 'counter', 'gate')),
    public_key   BLOB NOT NULL,
    valid_from   TEXT NOT NULL,
    valid_until  TEXT NOT NULL,
    issued_at    TEXT NOT NULL,
    record       TEXT NOT NULL
);
CREATE INDEX node_certs_node ON node_certs(node_id);

CREATE TABLE node_revocations (
    key_id      INTEGER PRIMARY KEY,
    revoked_at  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    record      TEXT NOT NULL
);

-- Small numbers for products inside card codes (4 bytes instead of a 16-byte UUID).
-- Given out by the hub only, so every replica agrees.
CREATE TABLE card_products (
    code        INTEGER PRIMARY KEY CHECK (code >= 1),
    product_id  TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('annual', 'subscription', 'single', 'voucher'))
);

CREATE TABLE cards (
    id             TEXT PRIMARY KEY,
    number         TEXT NOT NULL UNIQUE,
    product_id     TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('annual', 'subscription', 'single', 'voucher')),
    customer_id    TEXT REFERENCES customers(id),
    holder_name    TEXT,
    valid_from     TEXT NOT NULL,
    valid_until    TEXT NOT NULL,
    issue          INTEGER NOT NULL DEFAULT 1 CHECK (issue >= 1),
    key_id         INTEGER NOT NULL,
    code           TEXT NOT NULL,
    issued_by      TEXT NOT NULL,
    issued_at      TEXT NOT NULL,
    revoked_at     TEXT,
    revoke_reason  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX cards_customer ON cards(customer_id);
CREATE INDEX cards_product ON cards(product_id);

-- Entry (and exit) scans from this gate, its peers and the hub; `record` is signed by the gate.
-- Keyed by card and time, without a rowid and without further indexes: the gate's two
-- questions (last scan of this card, first entry of this card) read one key range, and
-- recording an entry writes one B-tree leaf (each page is one more WAL write in the commit
-- before the door opens). A gate's own recent entries for its peers come from its outbox.
CREATE TABLE entries (
    card_id     TEXT NOT NULL,
    at          TEXT NOT NULL,
    id          TEXT NOT NULL,
    card_issue  INTEGER NOT NULL,
    venue_id    TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    record      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (card_id, at, id)
) WITHOUT ROWID;

-- Every local state change on a node, written in the same transaction as the change;
-- the sync client pushes it in node_seq order. node_seq is max + 1 (no AUTOINCREMENT: its
-- bookkeeping row would be one more page in every gate commit), so pushed rows are marked,
-- and the newest row is never deleted: a node_seq is never handed out twice.
CREATE TABLE outbox (
    node_seq   INTEGER PRIMARY KEY,
    id         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    body       TEXT NOT NULL,
    wall_time  TEXT NOT NULL,
    mono_ns    INTEGER NOT NULL,
    boot_id    TEXT NOT NULL,
    pushed_at  TEXT
);

-- Trusted time (B7): the latest moment this node knows has passed (besides its own entries,
-- which TrustedClock reads at start, so a scan does not have to write this row).
CREATE TABLE time_floor (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    floor   TEXT NOT NULL,
    source  TEXT NOT NULL
);
