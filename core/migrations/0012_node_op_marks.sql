-- Hub: the last operation time the hub saw from each node, and when it arrived (issue 11,
-- "a stolen key outlives its revocation by nothing"). A card a node signs carries its
-- signing time in its id, and a thief holding a revoked key writes any time he likes
-- there; what the hub saw from the node before the revocation is the record that is not
-- his to write. Kept per push (hub/services/nodes.py note_ops); shown with the node list,
-- so the office can see when a device was last heard of before naming a revocation time.
CREATE TABLE node_op_marks (
    node_id           TEXT PRIMARY KEY,
    last_op_at        TEXT NOT NULL,  -- the latest op time (the node's wall time) of applied ops
    last_received_at  TEXT NOT NULL   -- when the hub received that push
) WITHOUT ROWID;

INSERT INTO node_op_marks (node_id, last_op_at, last_received_at)
SELECT node_id, max(strftime('%Y-%m-%dT%H:%M:%fZ', min(wall_time, received_at))), max(received_at)
FROM sync_ops WHERE status = 'applied' GROUP BY node_id;
