-- Enrollment without sending the secret (core/sync/enroll.py, hub/sync/enrollment.py): a code
-- now has a public 2-symbol id, the hub keeps the SPAKE2 password derived from its secret
-- (`verifier`), and it dies after three failed handshakes. Codes from before this migration
-- cannot run the handshake: they stay listed (who enrolled with which) but are dead.
-- Handshakes in progress live here, not in a process's memory, so that any hub process can
-- finish what another one started.
CREATE TABLE enrollment_codes_v2 (
    id             INTEGER PRIMARY KEY,
    code_id        TEXT,
    verifier       TEXT,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('cashdesk', 'counter', 'gate')),
    venue_ids      TEXT NOT NULL DEFAULT '[]',
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    used_at        TEXT,
    node_id        TEXT,
    attempts_left  INTEGER NOT NULL DEFAULT 3 CHECK (attempts_left >= 0)
);
INSERT INTO enrollment_codes_v2 (code_id, verifier, name, role, venue_ids, created_at, expires_at, used_at, node_id,
                                 attempts_left)
    SELECT NULL, NULL, name, role, venue_ids, created_at, expires_at, used_at, node_id, 0
    FROM enrollment_codes ORDER BY created_at;
DROP TABLE enrollment_codes;
ALTER TABLE enrollment_codes_v2 RENAME TO enrollment_codes;
CREATE INDEX enrollment_codes_by_code_id ON enrollment_codes (code_id, id);

CREATE TABLE enroll_handshakes (
    id            TEXT PRIMARY KEY,
    code          INTEGER NOT NULL REFERENCES enrollment_codes (id),
    node_id       TEXT NOT NULL,
    public_key    TEXT NOT NULL,
    edge_confirm  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
) WITHOUT ROWID;
