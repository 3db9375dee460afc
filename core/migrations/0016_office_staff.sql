-- Office staff of the hub's web app (hub/services/staff.py): accounts with an Argon2id
-- password hash, single-use setup links, and sessions. All of it stays on the hub: none of
-- these tables is in core.migrations.feed_triggers.REPLICATED, so no edge ever receives a
-- password hash or a session. Edges get the (empty) tables because the migration list is shared.
CREATE TABLE staff (
    id             TEXT PRIMARY KEY,
    user_name      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'office')),
    password_hash  TEXT,               -- Argon2id string (PyNaCl); NULL until the setup link is used
    active         INTEGER NOT NULL DEFAULT 1,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- A one-time link that lets a staff member set a password: only the SHA-256 of its token is kept.
CREATE TABLE staff_setup_links (
    token_hash  TEXT PRIMARY KEY,
    staff_id    TEXT NOT NULL REFERENCES staff(id),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);

-- A logged-in browser: the SHA-256 of the cookie's secret, the form token (CSRF), the last request.
CREATE TABLE staff_sessions (
    id_hash       TEXT PRIMARY KEY,
    staff_id      TEXT NOT NULL REFERENCES staff(id),
    csrf          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL
);
CREATE INDEX staff_sessions_staff ON staff_sessions(staff_id);
