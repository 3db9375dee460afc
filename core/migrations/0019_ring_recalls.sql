-- Ring seats recalled from a cash desk (S17, core/sales/ring_pools.py). A ring seat (one seat in
-- every performance of a ring group) goes back to the hub as one: the desk still gets one
-- `recalls` row per performance and answers each in its own op stream, and this table binds
-- those answers together, so the hub moves the ring seat only once every performance's seat
-- was released, and a partial answer (some sold at the desk) leaves the whole ring seat with
-- the desk, reported here. Hub only (not replicated).
CREATE TABLE ring_recalls (
    id              TEXT PRIMARY KEY,
    product_id      TEXT NOT NULL REFERENCES subscription_products(id),
    node_id         TEXT NOT NULL,
    seat_id         TEXT NOT NULL REFERENCES seats(id),
    to_pool         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('requested', 'done', 'partial')),
    kept_sold       TEXT,                                -- JSON: performance ids the desk had sold
    created_at      TEXT NOT NULL,
    done_at         TEXT
);
CREATE INDEX ring_recalls_product ON ring_recalls(product_id, state);

CREATE TABLE ring_recall_parts (
    recall_id       TEXT PRIMARY KEY REFERENCES recalls(id),
    ring_recall_id  TEXT NOT NULL REFERENCES ring_recalls(id)
) WITHOUT ROWID;
CREATE INDEX ring_recall_parts_ring ON ring_recall_parts(ring_recall_id);
