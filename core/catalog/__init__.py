"""The catalog: organizers, venues, price zones, seating plans, seasons, performances,
annual-ticket products, subscription products with discount tiers, and customers.

Each module holds one kind of thing: its input struct (what the API accepts), its rules
(`check`), and how it maps to rows. `resource.py` holds the shared create/read/list/
change/deactivate service so that every catalog write goes through one function.
"""
