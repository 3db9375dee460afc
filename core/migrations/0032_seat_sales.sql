-- The seats' sale log (issue 18, the rush): one row each time a seat becomes sold or stops being
-- sold at a performance, numbered in commit order. `core.subscriptions.seat_loader` keeps each
-- date's sold seats in memory and reads only the rows after the last one it saw, instead of the
-- whole house's sold tickets at every seat choice (a hold in a presale rush read thousands of
-- tickets; on PostgreSQL that was the largest cost of a checkout).
--
-- Written by triggers on tickets only, so every path that sells, cancels or restores a ticket
-- (desk sale, shop, sync from an edge, cancellation, seat change, rollover) is logged. A seat
-- has at most one sold ticket per performance (tickets_one_per_seat), so reading the rows in
-- order gives its state: the last row says whether it is sold. On PostgreSQL `pos` comes from
-- an identity sequence and the triggers take the hub's write lock (as the change feed's do),
-- so a row that commits has a higher `pos` than every row committed before it.
-- `ticket_id` names the ticket of the row: the loader checks that the last row it saw is still
-- there, so a rolled-back sale it saw inside its own transaction is noticed.
CREATE TABLE seat_sales (
    pos             INTEGER PRIMARY KEY,
    performance_id  TEXT NOT NULL,
    seat_id         TEXT NOT NULL,
    sold            INTEGER NOT NULL CHECK (sold IN (0, 1)),
    ticket_id       TEXT NOT NULL
);

CREATE TRIGGER seat_sales_sold AFTER INSERT ON tickets
WHEN new.status = 'sold'
BEGIN
    INSERT INTO seat_sales (performance_id, seat_id, sold, ticket_id)
    VALUES (new.performance_id, new.seat_id, 1, new.id);
END;

CREATE TRIGGER seat_sales_changed AFTER UPDATE OF status, performance_id, seat_id ON tickets
WHEN (old.status = 'sold' OR new.status = 'sold')
 AND (old.status <> new.status OR old.performance_id <> new.performance_id OR old.seat_id <> new.seat_id)
BEGIN
    INSERT INTO seat_sales (performance_id, seat_id, sold, ticket_id)
    SELECT old.performance_id, old.seat_id, 0, old.id WHERE old.status = 'sold';
    INSERT INTO seat_sales (performance_id, seat_id, sold, ticket_id)
    SELECT new.performance_id, new.seat_id, 1, new.id WHERE new.status = 'sold';
END;

CREATE TRIGGER seat_sales_deleted AFTER DELETE ON tickets
WHEN old.status = 'sold'
BEGIN
    INSERT INTO seat_sales (performance_id, seat_id, sold, ticket_id)
    VALUES (old.performance_id, old.seat_id, 0, old.id);
END;

-- The seats sold before this migration, so the log is the whole history: a process that finds
-- it empty may take every date as having nothing sold.
INSERT INTO seat_sales (performance_id, seat_id, sold, ticket_id)
SELECT performance_id, seat_id, 1, id FROM tickets WHERE status = 'sold' ORDER BY performance_id, seat_id;
