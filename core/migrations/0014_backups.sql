-- The hub's disk dies (issue 11): backups, restores, and what edges keep until a backup holds it
-- (hub/services/backup.py, docs/sync.md "Backups and restore").

-- Hub: which life of the hub this is. Random, and new at every `tessera hub restore`: an edge
-- that sees another epoch pushes every op it kept again and pulls from the start. (Every
-- database gets a row; only the hub's is ever read.)
CREATE TABLE hub_epoch (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    epoch          TEXT NOT NULL,
    started_at     TEXT NOT NULL,
    restored_from  TEXT  -- the creation time of the backup it was restored from
);
INSERT INTO hub_epoch (id, epoch, started_at) VALUES (1, lower(hex(randomblob(16))), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));

-- Hub: per node, the highest node_seq of its ops in the latest completed backup. Sync answers
-- carry it (durable_through); a node forgets acknowledged ops only up to it.
CREATE TABLE backup_checkpoints (
    node_id       TEXT PRIMARY KEY,
    node_seq      INTEGER NOT NULL,
    backed_up_at  TEXT NOT NULL
) WITHOUT ROWID;

-- Edge: the hub epoch of the last answer, and how far the hub's latest backup holds this node's ops.
ALTER TABLE sync_state ADD COLUMN hub_epoch TEXT;
ALTER TABLE sync_state ADD COLUMN durable_seq INTEGER NOT NULL DEFAULT 0;
