-- Invoices (issue 16, S13; core/payments/invoices.py): §14 UStG invoices for orders, their
-- cancellation invoices (Stornorechnungen), and the organizer's invoicing settings
-- (Kassenzeichen pattern, payment terms, the VAT code of seat tickets).
-- Hub-local: never replicated (not in core.migrations.feed_triggers.REPLICATED).
--
-- An invoice is a document of record: it is written once, with everything it says (issuer,
-- recipient, lines, sums per VAT rate, texts), and never edited or deleted; the triggers below
-- refuse both. A duplicate prints the stored invoice again, marked "Duplikat". A cancellation is a
-- second invoice (kind 'cancellation') with its own number that names the original.

CREATE TABLE organizer_invoicing (
    organizer_id          TEXT PRIMARY KEY REFERENCES organizers(id),
    kassenzeichen_pattern TEXT NOT NULL DEFAULT '{year}-{seq:06d}',
    payment_days          INTEGER NOT NULL DEFAULT 14 CHECK (payment_days BETWEEN 0 AND 365),
    ticket_vat_code       TEXT NOT NULL DEFAULT 'exempt' CHECK (ticket_vat_code IN ('19', '7', 'exempt')),
    updated_at            TEXT NOT NULL
);

-- The running number behind `{seq}` of a Kassenzeichen pattern, per year (0: a pattern without
-- `{year}`, whose numbers never restart). Keyed by the pattern, not the organizer: organizers that
-- share a pattern share its numbers, so their Kassenzeichen never collide.
CREATE TABLE kassenzeichen_series (
    pattern     TEXT NOT NULL,
    year        INTEGER NOT NULL,
    last_value  INTEGER NOT NULL DEFAULT 0 CHECK (last_value >= 0),
    PRIMARY KEY (pattern, year)
) WITHOUT ROWID;

CREATE TABLE invoices (
    id              TEXT PRIMARY KEY,
    number          TEXT NOT NULL UNIQUE,            -- RE-2026-000001: gapless series of the issuing node
    kind            TEXT NOT NULL CHECK (kind IN ('invoice', 'cancellation')),
    cancels_id      TEXT UNIQUE REFERENCES invoices(id),  -- a cancellation: the original (once)
    order_id        TEXT NOT NULL REFERENCES orders(id),
    organizer_id    TEXT NOT NULL REFERENCES organizers(id),
    customer_id     TEXT NOT NULL REFERENCES customers(id),
    node_id         TEXT NOT NULL,
    language        TEXT NOT NULL CHECK (language IN ('de', 'en')),
    issued_on       TEXT NOT NULL,                   -- invoice date (local calendar day), also the delivery date
    due_on          TEXT,                            -- NULL: nothing to pay (paid, or a cancellation)
    issuer          TEXT NOT NULL,                   -- JSON: the organizer as it was (name, address, tax ids)
    recipient       TEXT NOT NULL,                   -- JSON: the customer as they were (structured address)
    total_cents     INTEGER NOT NULL,                -- gross; negative for a cancellation
    paid_cents      INTEGER NOT NULL,                -- already paid when issued
    kassenzeichen   TEXT UNIQUE,                     -- the payment reference transfers are matched on
    sepa            TEXT,                            -- JSON: the pre-notification (creditor id, mandate, date)
    reason          TEXT,                            -- a cancellation's reason
    operator        TEXT,
    created_at      TEXT NOT NULL,
    CHECK ((kind = 'invoice') = (cancels_id IS NULL))
);
CREATE INDEX invoices_order ON invoices(order_id);
CREATE INDEX invoices_customer ON invoices(customer_id, issued_on);

CREATE TABLE invoice_lines (
    invoice_id     TEXT NOT NULL REFERENCES invoices(id),
    position       INTEGER NOT NULL,
    order_line_id  TEXT NOT NULL,                    -- the order line it bills
    description    TEXT NOT NULL,
    gross_cents    INTEGER NOT NULL,
    vat_code       TEXT NOT NULL CHECK (vat_code IN ('19', '7', 'exempt')),
    PRIMARY KEY (invoice_id, position)
) WITHOUT ROWID;
CREATE INDEX invoice_lines_order_line ON invoice_lines(order_line_id);

-- Net and VAT per rate, computed once from the sum of the rate's gross lines (core/payments/invoices.py).
CREATE TABLE invoice_vat (
    invoice_id   TEXT NOT NULL REFERENCES invoices(id),
    vat_code     TEXT NOT NULL CHECK (vat_code IN ('19', '7', 'exempt')),
    gross_cents  INTEGER NOT NULL,
    net_cents    INTEGER NOT NULL,
    vat_cents    INTEGER NOT NULL,
    PRIMARY KEY (invoice_id, vat_code),
    CHECK (net_cents + vat_cents = gross_cents)
) WITHOUT ROWID;

CREATE TRIGGER invoices_never_edited BEFORE UPDATE ON invoices
BEGIN SELECT RAISE(ABORT, 'invoices are never edited: issue a cancellation invoice'); END;
CREATE TRIGGER invoices_never_deleted BEFORE DELETE ON invoices
BEGIN SELECT RAISE(ABORT, 'invoices are never deleted: issue a cancellation invoice'); END;
CREATE TRIGGER invoice_lines_never_edited BEFORE UPDATE ON invoice_lines
BEGIN SELECT RAISE(ABORT, 'invoices are never edited: issue a cancellation invoice'); END;
CREATE TRIGGER invoice_lines_never_deleted BEFORE DELETE ON invoice_lines
BEGIN SELECT RAISE(ABORT, 'invoices are never deleted: issue a cancellation invoice'); END;
CREATE TRIGGER invoice_vat_never_edited BEFORE UPDATE ON invoice_vat
BEGIN SELECT RAISE(ABORT, 'invoices are never edited: issue a cancellation invoice'); END;
CREATE TRIGGER invoice_vat_never_deleted BEFORE DELETE ON invoice_vat
BEGIN SELECT RAISE(ABORT, 'invoices are never deleted: issue a cancellation invoice'); END;
