"""The hub on PostgreSQL (DESIGN §11, issue 18): a psycopg 3 connection that behaves like
the hub's sqlite3 connections (`connection`), the schema generated from the SQLite
migrations (`schema`), and the small SQL scanner both need (`tokens`).

Edges stay on SQLite and never import this package; psycopg is the optional extra
`tessera[postgresql]`. What works and what does not yet: docs/postgresql.md.
"""
