-- An order's subscriptions are read by the order's id: at every shop sale (its confirmation mail,
-- hub/services/subscription_mail.py), on the office's order and subscription pages, and for a
-- party's vouchers. Without this index each of those read every subscription ever sold (0.14 ms
-- per order on PostgreSQL after 800 orders of a presale rush, growing with the house).
CREATE INDEX subscriptions_order ON subscriptions(order_id);
