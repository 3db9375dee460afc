-- A sale's confirmation is queued once per order (hub/services/subscription_mail.py asks whether
-- a mail with the order's subject is queued already). Mail rows are never deleted, so without
-- this index that question read every mail the hub ever sent, at every shop order.
CREATE INDEX mail_queue_subject ON mail_queue(subject);
