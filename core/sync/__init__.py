"""Sync rules shared by hub and edge (DESIGN §4): which tables replicate and their change-feed
triggers (feed_triggers), what a node may see (scope), and the typed operations (ops).

Importing the package imports none of its modules: `core.base.storage` uses `feed_triggers`, which
must stay free of anything that imports storage.
"""
