-- Trusted time (issue 11, "a clock that runs ahead is caught like one that runs behind"):
-- the hub's time seen at the last sync, with this machine's monotonic clock reading and boot id
-- at that moment (monotonic time is comparable only within one boot), and the last outbox op
-- recorded before it. While the node has not rebooted, hub time + monotonic elapsed is known,
-- and a system clock far from it (ahead or behind) is not believed (core/cards/trusted_time.py).
ALTER TABLE time_floor ADD COLUMN hub_time TEXT;
ALTER TABLE time_floor ADD COLUMN hub_mono REAL;
ALTER TABLE time_floor ADD COLUMN hub_boot TEXT;
ALTER TABLE time_floor ADD COLUMN hub_seq INTEGER;
