-- Cancellations of order lines (issue 16: "Refunds and cancellations"; core/payments/cancellations.py
-- takes back what a line delivered, core/payments/refunds.py settles the money).
-- Hub-local: never replicated. What the gates and desks must hear of travels as it always does
-- (a revoked card, a voided choice voucher); the ledger stays the hub's.
--
-- A cancellation is one request of the office: one or more lines of one order, a reason, a fee
-- kept, how the money goes back. Each cancelled line says what it credits (its price, or for a
-- subscription cancelled mid-season the share of the performances not yet played, less its part
-- of the fee). A line is cancelled once (the primary key); nothing here is edited or deleted.
-- The cancellation's row is written last, when its invoices exist (so the references are deferred).

CREATE TABLE cancellations (
    id                  TEXT PRIMARY KEY,
    order_id            TEXT NOT NULL REFERENCES orders(id),
    reason              TEXT NOT NULL,
    fee_cents           INTEGER NOT NULL CHECK (fee_cents >= 0),
    credit_cents        INTEGER NOT NULL CHECK (credit_cents >= 0),
    refund_cents        INTEGER NOT NULL CHECK (refund_cents >= 0),   -- money to go back (refund rows)
    released_cents      INTEGER NOT NULL CHECK (released_cents >= 0), -- claims dropped (pending rows lowered)
    kept_cents          INTEGER NOT NULL CHECK (kept_cents >= 0),     -- paid by choice voucher: not paid out
    cancellation_invoice_id TEXT REFERENCES invoices(id),
    reissued_invoice_id TEXT REFERENCES invoices(id),
    operator            TEXT,
    node_id             TEXT NOT NULL,
    created_at          TEXT NOT NULL
);
CREATE INDEX cancellations_order ON cancellations(order_id);

CREATE TABLE cancelled_lines (
    line_id          TEXT PRIMARY KEY REFERENCES order_lines(id),
    cancellation_id  TEXT NOT NULL REFERENCES cancellations(id) DEFERRABLE INITIALLY DEFERRED,
    order_id         TEXT NOT NULL REFERENCES orders(id),
    credit_cents     INTEGER NOT NULL CHECK (credit_cents >= 0),
    what             TEXT NOT NULL          -- what was taken back, in words (JSON: cards, tickets, vouchers)
);
CREATE INDEX cancelled_lines_order ON cancelled_lines(order_id);

-- A refund row (a negative payment) names the cancellation it pays back.
ALTER TABLE payments ADD COLUMN cancellation_id TEXT REFERENCES cancellations(id) DEFERRABLE INITIALLY DEFERRED;

CREATE TRIGGER cancellations_never_change BEFORE UPDATE ON cancellations BEGIN
    SELECT RAISE(ABORT, 'a cancellation is never changed'); END;
CREATE TRIGGER cancellations_never_go BEFORE DELETE ON cancellations BEGIN
    SELECT RAISE(ABORT, 'a cancellation is never deleted'); END;
CREATE TRIGGER cancelled_lines_never_change BEFORE UPDATE ON cancelled_lines BEGIN
    SELECT RAISE(ABORT, 'a cancelled line is never changed'); END;
CREATE TRIGGER cancelled_lines_never_go BEFORE DELETE ON cancelled_lines BEGIN
    SELECT RAISE(ABORT, 'a cancelled line is never deleted'); END;
