-- Money gaps (issue 16): the SEPA pre-notification lead time as a setting, a due debit that a
-- transfer made unnecessary, and what a bank entry's match did to payment rows (so the office
-- can take a wrong match back exactly). Hub-local: none of these tables replicate.

-- Days between the pre-notification (invoice or letter) and the collection date, per creditor
-- account (1 to 30; the rulebook's default is 14, a mandate may agree a shorter one).
ALTER TABLE sepa_creditor_accounts ADD COLUMN prenotification_days INTEGER NOT NULL DEFAULT 14
    CHECK (prenotification_days BETWEEN 1 AND 30);

-- A debit not yet submitted can be `cancelled` (the order was paid another way). SQLite cannot
-- change a CHECK, so the table is rebuilt with the same rows.
CREATE TABLE sepa_debits_v29 (
    id                 TEXT PRIMARY KEY,
    payment_id         TEXT NOT NULL REFERENCES payments(id),
    order_id           TEXT NOT NULL REFERENCES orders(id),
    mandate_id         TEXT NOT NULL REFERENCES sepa_mandates(id),
    amount_cents       INTEGER NOT NULL CHECK (amount_cents > 0),
    due_on             TEXT NOT NULL,
    prenotified_on     TEXT NOT NULL,
    end_to_end_id      TEXT NOT NULL UNIQUE,
    remittance         TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('due', 'submitted', 'collected', 'returned', 'cancelled')),
    run_id             TEXT REFERENCES sepa_runs(id),
    sequence           TEXT CHECK (sequence IN ('FRST', 'RCUR', 'OOFF')),
    collection_date    TEXT,
    iban               TEXT,
    amendment          TEXT CHECK (amendment IN ('account', 'agent')),
    amended_from_iban  TEXT,
    collected_at       TEXT,
    return_reason      TEXT,
    return_fee_cents   INTEGER CHECK (return_fee_cents >= 0),
    returned_at        TEXT,
    created_at         TEXT NOT NULL,
    cancelled_at       TEXT,
    cancel_reason      TEXT
);
INSERT INTO sepa_debits_v29 SELECT id, payment_id, order_id, mandate_id, amount_cents, due_on, prenotified_on,
    end_to_end_id, remittance, state, run_id, sequence, collection_date, iban, amendment, amended_from_iban,
    collected_at, return_reason, return_fee_cents, returned_at, created_at, NULL, NULL FROM sepa_debits;
DROP TABLE sepa_debits;
ALTER TABLE sepa_debits_v29 RENAME TO sepa_debits;
-- At most one live debit per payment row (returned and cancelled ones are not live).
CREATE UNIQUE INDEX sepa_debits_live_payment ON sepa_debits(payment_id) WHERE state NOT IN ('returned', 'cancelled');
CREATE INDEX sepa_debits_state ON sepa_debits(state, due_on);
CREATE INDEX sepa_debits_mandate ON sepa_debits(mandate_id);
CREATE INDEX sepa_debits_order ON sepa_debits(order_id);
CREATE INDEX sepa_debits_run ON sepa_debits(run_id);

-- Each payment row a matched or assigned credit wrote or changed, and what it was before, so
-- the office can take a wrong match back exactly (core/payments/bank_credits.py):
-- `settled`       a pending row that became paid (its method, reference and time before; the due
--                 debit that was to collect it and was cancelled: debit_id, prior_debit_state);
-- `split`         a pending row lowered by amount_cents (a due debit lowered with it: prior_debit_amount);
-- `extra`         a paid row the credit added (the part of a split, or money beyond what was expected);
-- `in_collection` a pending row a submitted debit collects, counted as paid because the order was
--                 paid by this transfer as well (the order is overpaid: a refund is due).
CREATE TABLE bank_entry_payments (
    entry_id            TEXT NOT NULL REFERENCES bank_entries(id),
    payment_id          TEXT NOT NULL REFERENCES payments(id),
    effect              TEXT NOT NULL CHECK (effect IN ('settled', 'split', 'extra', 'in_collection')),
    amount_cents        INTEGER NOT NULL,
    prior_method        TEXT,
    prior_reference     TEXT,
    prior_created_at    TEXT,
    debit_id            TEXT REFERENCES sepa_debits(id),
    prior_debit_state   TEXT,
    prior_debit_amount  INTEGER,
    PRIMARY KEY (entry_id, payment_id)
) WITHOUT ROWID;
