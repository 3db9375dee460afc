-- Office staff, second part (hub/services/staff.py): optional TOTP (RFC 6238) for admins, the
-- last login, and a half-done login (password right, code still to come). Hub only: none of
-- these is in feed_triggers.REPLICATED, so no edge ever holds a TOTP secret.
ALTER TABLE staff ADD COLUMN totp_secret TEXT;          -- base32; NULL = TOTP off; never shown again
ALTER TABLE staff ADD COLUMN totp_pending TEXT;         -- a secret shown for setup, not yet confirmed
ALTER TABLE staff ADD COLUMN totp_last_step INTEGER;    -- the last accepted time step: a code works once
ALTER TABLE staff ADD COLUMN last_login_at TEXT;

-- The SHA-256 of a half-login's cookie secret: the password was right, the code is still due.
CREATE TABLE staff_code_steps (
    id_hash     TEXT PRIMARY KEY,
    staff_id    TEXT NOT NULL REFERENCES staff(id),
    created_at  TEXT NOT NULL
);
