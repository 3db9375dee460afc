-- State that several hub processes on one database must share (issue 18): with
-- `tessera hub serve` running N times on one PostgreSQL database a request may land on any
-- process, so what used to live in one process's memory lives here.
--
-- rate_hits: one row per counted request of a rate limit (hub/services/rate_limits.py):
-- personalization page views per client address, failed enrollment attempts per address and
-- overall. Counted and written under the write lock, so N processes together allow the limit,
-- not N times it; rows older than their window are deleted as new ones come.
CREATE TABLE rate_hits (
    id      TEXT PRIMARY KEY,
    scope   TEXT NOT NULL,           -- which limit: 'personalize', 'enroll'
    client  TEXT NOT NULL,           -- the client's address
    at      REAL NOT NULL            -- seconds since the epoch (wall clock: shared by the processes)
);
CREATE INDEX rate_hits_client ON rate_hits(scope, client, at);
CREATE INDEX rate_hits_at ON rate_hits(scope, at);

-- work_leases: background work that one process at a time may do (hub/services/leases.py),
-- e.g. a print batch of one kind: the process holding the lease prints, the others wait.
-- A lease ends when its holder gives it back or, if the holder died, when it expires.
CREATE TABLE work_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,       -- host, pid and a random part: one process's identity
    expires_at  TEXT NOT NULL
);
