"""Node-to-node traffic on the venue LAN: gates, desks and counters as peers (DESIGN §12).

`door.py` is what every `/peer/` request passes before a handler sees it (size, rate,
signature of a certified node, replay); `client.py` signs this node's own peer requests;
`announce.py` tells the LAN where this node's peer endpoints are (zeroconf).
"""
