-- Hub: prices and VAT codes of annual-ticket products as they were before each change, so
-- an order a desk took offline is checked against the price of its own time (core/sync/ops.py:
-- the hub re-derives every line's price). `until` is the moment the price stopped applying.
-- Written by a trigger on the hub only; a change within the same second keeps the first.
CREATE TABLE annual_price_history (
    product_id   TEXT NOT NULL,
    price_cents  INTEGER NOT NULL,
    vat_code     TEXT NOT NULL,
    until        TEXT NOT NULL,
    PRIMARY KEY (product_id, until)
) WITHOUT ROWID;

CREATE TRIGGER annual_price_history_keep AFTER UPDATE OF price_cents, vat_code ON annual_products
WHEN (old.price_cents <> new.price_cents OR old.vat_code <> new.vat_code) AND (SELECT role FROM node) = 'hub'
BEGIN
    INSERT INTO annual_price_history (product_id, price_cents, vat_code, until)
    VALUES (old.id, old.price_cents, old.vat_code, new.updated_at) ON CONFLICT DO NOTHING;
END;
