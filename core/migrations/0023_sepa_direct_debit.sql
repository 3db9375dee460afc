-- SEPA direct debit (issue 16: S12, B4; core/payments/mandates.py, debits.py, sepa.py).
-- Hub-only: none of these tables replicate (not in core.migrations.feed_triggers.REPLICATED);
-- desks never see IBANs. Money is integer cents, dates are ISO `YYYY-MM-DD`.

-- The account an organizer collects into (the creditor identifier is the organizer's
-- `sepa_creditor_id`). One per organizer.
CREATE TABLE sepa_creditor_accounts (
    organizer_id  TEXT PRIMARY KEY REFERENCES organizers(id),
    iban          TEXT NOT NULL,
    bic           TEXT,
    updated_at    TEXT NOT NULL
);

-- A mandate a customer signed for one organizer (the creditor). `sequence` is the sequence
-- type the mandate's next debit goes with: FRST until a first debit was submitted, then RCUR;
-- OOFF for a one-off mandate, which is `used` after its debit. `amendment` is pending amendment
-- information the next debit carries: 'account' (new IBAN at the same bank: OrgnlDbtrAcct is
-- `amended_from_iban`) or 'agent' (another bank: SMNDA, and the next debit goes FRST).
-- The debtor address (street..country) is the account holder's where it is not the customer's.
CREATE TABLE sepa_mandates (
    id                 TEXT PRIMARY KEY,
    organizer_id       TEXT NOT NULL REFERENCES organizers(id),
    customer_id        TEXT NOT NULL REFERENCES customers(id),
    reference          TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('recurring', 'oneoff')),
    sequence           TEXT NOT NULL CHECK (sequence IN ('FRST', 'RCUR', 'OOFF')),
    debtor_name        TEXT NOT NULL,
    iban               TEXT NOT NULL,
    bic                TEXT,
    signed_on          TEXT NOT NULL,
    street             TEXT,
    postcode           TEXT,
    town               TEXT,
    country            TEXT,
    amendment          TEXT CHECK (amendment IN ('account', 'agent')),
    amended_from_iban  TEXT,
    state              TEXT NOT NULL CHECK (state IN ('active', 'used', 'cancelled')),
    cancelled_at       TEXT,
    cancel_reason      TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
-- A mandate reference is unique per creditor (the bank identifies a mandate by both).
CREATE UNIQUE INDEX sepa_mandates_reference ON sepa_mandates(organizer_id, upper(reference));
CREATE INDEX sepa_mandates_customer ON sepa_mandates(customer_id);

-- One exported pain.008 file: its bytes are kept, as handed to the bank.
CREATE TABLE sepa_runs (
    id              TEXT PRIMARY KEY,
    organizer_id    TEXT NOT NULL REFERENCES organizers(id),
    message_id      TEXT NOT NULL UNIQUE,
    debits          INTEGER NOT NULL CHECK (debits > 0),
    total_cents     INTEGER NOT NULL CHECK (total_cents > 0),
    xml             BLOB NOT NULL,
    sha256          TEXT NOT NULL,
    created_at      TEXT NOT NULL
);

-- A debit: one amount to collect for one open SEPA payment row of an order. Sequence type,
-- collection date, IBAN and amendment are filled in as submitted (the export's record).
CREATE TABLE sepa_debits (
    id                 TEXT PRIMARY KEY,
    payment_id         TEXT NOT NULL REFERENCES payments(id),
    order_id           TEXT NOT NULL REFERENCES orders(id),
    mandate_id         TEXT NOT NULL REFERENCES sepa_mandates(id),
    amount_cents       INTEGER NOT NULL CHECK (amount_cents > 0),
    due_on             TEXT NOT NULL,
    prenotified_on     TEXT NOT NULL,
    end_to_end_id      TEXT NOT NULL UNIQUE,
    remittance         TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('due', 'submitted', 'collected', 'returned')),
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
    created_at         TEXT NOT NULL
);
-- At most one live debit per payment row: a payment is never collected twice (a returned
-- debit may be followed by a new one).
CREATE UNIQUE INDEX sepa_debits_live_payment ON sepa_debits(payment_id) WHERE state != 'returned';
CREATE INDEX sepa_debits_state ON sepa_debits(state, due_on);
CREATE INDEX sepa_debits_mandate ON sepa_debits(mandate_id);
CREATE INDEX sepa_debits_order ON sepa_debits(order_id);
CREATE INDEX sepa_debits_run ON sepa_debits(run_id);
