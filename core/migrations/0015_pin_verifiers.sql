-- PINs that a stolen desk does not give away (issue 11, core/catalog/pins.py). Before, every
-- desk and counter held each operator's scrypt PIN hash (operators.pin_hash): a copied
-- database gave every 4-digit PIN to an offline search in minutes, valid at every desk.
-- Now the slow hash stays on the hub; each desk key gets its own verifier
-- HMAC(node PIN key, slow hash), and its node PIN key only sealed to that key.

-- Hub only, never replicated: the secret the node PIN keys are derived from (HKDF).
CREATE TABLE pin_secret (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    secret  BLOB NOT NULL
);

-- Hub only, never replicated: the operator's slow PIN hash (scrypt$n$salt$digest).
CREATE TABLE operator_pins (
    operator_id  TEXT PRIMARY KEY REFERENCES operators(id) ON DELETE CASCADE,
    pin_hash     TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- To the one desk whose key it is: its node PIN key, sealed (libsodium sealed box) to the
-- X25519 form of that node key, hex. Without the node's key file it opens to nothing.
CREATE TABLE node_pin_keys (
    key_id   INTEGER PRIMARY KEY,
    node_id  TEXT NOT NULL,
    sealed   TEXT NOT NULL
);

-- To the one desk whose key it is: per operator, the scrypt parameters and salt
-- (scrypt$n$salt) and HMAC-SHA256(node PIN key, scrypt digest), hex.
CREATE TABLE pin_verifiers (
    operator_id  TEXT NOT NULL,
    node_id      TEXT NOT NULL,
    key_id       INTEGER NOT NULL,
    params       TEXT NOT NULL,
    verifier     TEXT NOT NULL,
    PRIMARY KEY (operator_id, key_id)
) WITHOUT ROWID;

-- The hub keeps its operators' hashes; every other node drops them (the hub issues the
-- verifiers when it next opens, core/catalog/pins.issue_missing).
INSERT INTO operator_pins (operator_id, pin_hash, updated_at)
SELECT id, pin_hash, updated_at FROM operators WHERE (SELECT role FROM node) = 'hub';
ALTER TABLE operators DROP COLUMN pin_hash;
