-- Node-local PIN failures per operator *and screen* (the client address that tried), with
-- short lockouts that grow with each one (core/catalog/operators.py): before, five wrong
-- PINs from anywhere on the LAN locked an operator out of every screen for 15 minutes.
-- Counts in progress are transient and start afresh.
DROP TABLE login_failures;
CREATE TABLE login_failures (
    operator_id   TEXT NOT NULL,
    screen        TEXT NOT NULL,
    failures      INTEGER NOT NULL,
    lockouts      INTEGER NOT NULL DEFAULT 0,
    locked_until  TEXT,
    PRIMARY KEY (operator_id, screen)
) WITHOUT ROWID;
