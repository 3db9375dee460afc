-- Mail (A2, A3): the hub's outgoing e-mail queue (hub/mail.py). A mail is written in the
-- same transaction as the change that causes it (an order, a personalization link), then
-- sent over SMTP by the mail worker; while the mail server is down it stays here and is
-- retried with backoff. Rows are never deleted by sending: `sent_at` marks delivery.
-- Only the hub queues mail; on edges the table stays empty.
CREATE TABLE mail_queue (
    id               TEXT PRIMARY KEY,               -- UUIDv7
    to_address       TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body_text        TEXT NOT NULL,
    body_html        TEXT,
    created_at       TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TEXT NOT NULL,                  -- due when <= now (also a send lease)
    sent_at          TEXT,
    last_error       TEXT,
    message_id       TEXT                            -- Message-ID, set on the first attempt, kept for retries
);
-- The worker's question: which unsent mails are due?
CREATE INDEX mail_queue_due ON mail_queue(next_attempt_at) WHERE sent_at IS NULL;
