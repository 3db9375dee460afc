-- The dates a season pass admits (S9, issue 14) and the immediate cancellation of a
-- subscription (Storno).
--
-- A pass's product is its subscription product, but a choice subscription (N of M dates) admits
-- only the N dates chosen, and a subscription that gave up a date (or was cancelled) admits none
-- of those. `pass_performances` lists, per pass card, the performances it admits: written by the
-- hub when it issues a pass and again when the seats change or the subscription is cancelled
-- (core/subscriptions/passes.record_pass_dates), replicated to every node (core/sync/scope.py).
-- It holds ids only, no personal data. A pass without rows (issued before this table, or by a
-- desk not yet writing them) falls back to its product's `subscription_performances`.
CREATE TABLE pass_performances (
    card_id         TEXT NOT NULL REFERENCES cards(id),
    performance_id  TEXT NOT NULL REFERENCES performances(id),
    PRIMARY KEY (card_id, performance_id)
) WITHOUT ROWID;

-- Cancelled with immediate effect (a Storno, core/subscriptions/records.cancel_now): when. NULL
-- for a subscription cancelled to the end of a season (a Kündigung, whose cards stay valid).
ALTER TABLE subscriptions ADD COLUMN cancelled_at TEXT;
