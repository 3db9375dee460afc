"""The hub side of sync: sync routes, applying ops, the feed, enrollment, LAN advertising."""
