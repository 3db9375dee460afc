-- Bank statements (issue 16, B6; core/payments/camt.py reads the file, bank.py matches it).
-- Hub-local: never replicated (not in core.migrations.feed_triggers.REPLICATED).
--
-- A statement is one imported camt.053 file, its bytes kept as they came. Each booked
-- transaction of it is a bank entry, unique by the account and the bank's reference, so a file
-- imported twice adds nothing. An entry is `matched` (a credit recorded as a payment of an order,
-- or a collected SEPA debit), `returned` (a returned SEPA debit), `unmatched` (waiting for the
-- office), `assigned` (the office put it on an order) or `dismissed` (the office set it aside
-- with a note).

CREATE TABLE bank_statements (
    id             TEXT PRIMARY KEY,
    message_id     TEXT NOT NULL,
    statement_id   TEXT NOT NULL,
    account_iban   TEXT NOT NULL,
    version        TEXT NOT NULL,                  -- camt.053.001.NN: '02', '08', ...
    created_at     TEXT,                            -- the bank's creation time (GrpHdr/CreDtTm)
    entries        INTEGER NOT NULL CHECK (entries >= 0),
    xml            BLOB NOT NULL,
    sha256         TEXT NOT NULL UNIQUE,
    operator       TEXT,
    imported_at    TEXT NOT NULL
);

CREATE TABLE bank_entries (
    id               TEXT PRIMARY KEY,
    statement_id     TEXT NOT NULL REFERENCES bank_statements(id),
    account_iban     TEXT NOT NULL,
    reference        TEXT NOT NULL,                 -- the bank's (AcctSvcrRef or NtryRef, /n in a batch)
    direction        TEXT NOT NULL CHECK (direction IN ('credit', 'debit')),
    amount_cents     INTEGER NOT NULL CHECK (amount_cents >= 0),
    currency         TEXT NOT NULL,
    booked_on        TEXT NOT NULL,
    value_on         TEXT,
    reversal         INTEGER NOT NULL DEFAULT 0 CHECK (reversal IN (0, 1)),
    end_to_end_id    TEXT,
    remittance       TEXT NOT NULL DEFAULT '',
    party_name       TEXT,
    party_iban       TEXT,
    bank_code        TEXT,
    return_reason    TEXT,
    fee_cents        INTEGER NOT NULL DEFAULT 0 CHECK (fee_cents >= 0),
    state            TEXT NOT NULL CHECK (state IN ('matched', 'returned', 'unmatched', 'assigned', 'dismissed')),
    rule             TEXT CHECK (rule IN ('kassenzeichen', 'invoice_number', 'end_to_end_id', 'amount', 'return',
                                          'manual')),
    order_id         TEXT REFERENCES orders(id),
    invoice_id       TEXT REFERENCES invoices(id),
    debit_id         TEXT REFERENCES sepa_debits(id),
    payment_id       TEXT REFERENCES payments(id),
    note             TEXT,                          -- why it did not match; the office's note
    operator         TEXT,
    resolved_at      TEXT,
    created_at       TEXT NOT NULL,
    UNIQUE (account_iban, reference)
);
CREATE INDEX bank_entries_state ON bank_entries(state, booked_on);
CREATE INDEX bank_entries_statement ON bank_entries(statement_id);
CREATE INDEX bank_entries_order ON bank_entries(order_id);
