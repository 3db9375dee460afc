-- A desk-sold seat cancelled at the hub goes back to the desk's pool (issue 16 "seats go back to
-- their pool"): the hub's ledger frees it at once, but the selling desk keeps its own copy of the
-- ticket and would go on counting the seat as sold. So the hub releases it to that desk: a row
-- here, replicated to that desk only (core/sync/scope.py: addressed by node_id), and the desk
-- cancels its copy of the ticket when the row arrives. Triggers on both sides, so every path that
-- cancels a ticket at the hub (a line cancelled, a subscription's Storno, a seat change) does it.

CREATE TABLE seat_releases (
    ticket_id       TEXT PRIMARY KEY,
    node_id         TEXT NOT NULL,     -- the desk that sold the ticket
    order_id        TEXT NOT NULL,
    performance_id  TEXT NOT NULL,
    seat_id         TEXT NOT NULL,
    released_at     TEXT NOT NULL
);
CREATE INDEX seat_releases_node ON seat_releases(node_id);

-- Hub: a ticket a desk sold, cancelled here, is released to that desk.
CREATE TRIGGER seat_releases_at_hub AFTER UPDATE OF status ON tickets
WHEN new.status = 'cancelled' AND old.status = 'sold' AND (SELECT role FROM node) = 'hub'
BEGIN
    INSERT INTO seat_releases (ticket_id, node_id, order_id, performance_id, seat_id, released_at)
    SELECT new.id, o.node_id, new.order_id, new.performance_id, new.seat_id, strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
    FROM orders o WHERE o.id = new.order_id AND o.node_id <> (SELECT id FROM node)
    ON CONFLICT (ticket_id) DO NOTHING;
END;

-- Desk: a released ticket is cancelled in the desk's own ledger; its seat is free in its pool again.
CREATE TRIGGER seat_releases_at_desk AFTER INSERT ON seat_releases
WHEN (SELECT role FROM node) <> 'hub'
BEGIN
    UPDATE tickets SET status = 'cancelled' WHERE id = new.ticket_id AND status = 'sold';
END;
