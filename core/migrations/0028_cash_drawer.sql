-- The cash drawer of a desk (issue 16, S11 "cash: given, change, float"; core/sales/cash_drawer.py):
-- the opening float, cash put in or taken out during the day, the count at closing. Written at
-- the desk (offline too) and pushed to the hub as `cash.moved` ops, so the office sees each
-- desk's closing. Never replicated to other nodes; never edited (a mistake is a new entry).

CREATE TABLE cash_movements (
    id            TEXT PRIMARY KEY,                      -- UUIDv7
    node_id       TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('float', 'deposit', 'withdrawal', 'count')),
    amount_cents  INTEGER NOT NULL CHECK (amount_cents >= 0),
    operator      TEXT,
    note          TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX cash_movements_day ON cash_movements(node_id, created_at);

CREATE TRIGGER cash_movements_never_change BEFORE UPDATE ON cash_movements BEGIN
    SELECT RAISE(ABORT, 'a cash movement is never changed'); END;
CREATE TRIGGER cash_movements_never_go BEFORE DELETE ON cash_movements BEGIN
    SELECT RAISE(ABORT, 'a cash movement is never deleted'); END;
