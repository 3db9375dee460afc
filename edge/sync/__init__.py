"""The edge side of sync: the sync client, hub discovery, enrollment."""
