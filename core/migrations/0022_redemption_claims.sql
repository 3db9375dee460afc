-- Redemption claims (issue 15, "never twice"; core/sales/redemption_claims.py, edge/desk/claims.py):
-- desks and counters on one LAN tell each other, before they print, which bearer vouchers they
-- are redeeming, so the same voucher shown at a second desk while the hub is away is refused.
-- Edge-local: never replicated (not in core.migrations.feed_triggers.REPLICATED), never sent to
-- the hub; the hub decides redemptions by its own rules when the ops arrive.
--
-- One row per voucher and node: the newest signed claim record of that node for that voucher
-- (a claim, or its release when the sale then failed). Of the live claims on one voucher the
-- earliest (`claimed_at`, then `node_id`) wins, the same on every desk.
CREATE TABLE redemption_claims (
    kind         TEXT NOT NULL CHECK (kind IN ('choice_voucher', 'annual_voucher')),
    voucher_id   TEXT NOT NULL,
    node_id      TEXT NOT NULL,                      -- the claiming node (the record's signer)
    node_name    TEXT NOT NULL,                      -- its name as its root-signed certificate gives it
    claimed_at   TEXT NOT NULL,                      -- the record's time, UTC with milliseconds
    live         INTEGER NOT NULL CHECK (live IN (0, 1)),  -- 0: released (the sale failed)
    record       TEXT NOT NULL,                      -- the signed record, relayed to peers as it is
    received_at  TEXT NOT NULL,
    PRIMARY KEY (kind, voucher_id, node_id)
) WITHOUT ROWID;
CREATE INDEX redemption_claims_time ON redemption_claims(claimed_at);
