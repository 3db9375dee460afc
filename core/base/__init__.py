"""Foundations every room builds on: storage, ids, clock, money, numbering, errors, TOML files, node, outbox."""
