-- Sync requests the hub has accepted lately, by the node's nonce (hub/sync/nonces.py): a
-- captured push or pull sent again within the ±5 minute window of its signed time is
-- refused. Shared through the database, not a process's memory, so every hub process behind
-- one database refuses the same replays. Rows whose signed time has left the window cannot
-- be replayed anyway (the window refuses them) and are pruned.
CREATE TABLE sync_nonces (
    node_id  TEXT NOT NULL,
    nonce    TEXT NOT NULL,
    sent_ms  INTEGER NOT NULL,  -- the request's signed time (ms since the epoch)
    seen_at  TEXT NOT NULL,     -- hub time when it was accepted
    PRIMARY KEY (node_id, nonce)
) WITHOUT ROWID;
CREATE INDEX sync_nonces_by_sent ON sync_nonces (sent_ms);
