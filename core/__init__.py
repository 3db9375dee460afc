"""Rules shared by hub and edge: catalog, pricing, seating, storage, money, time.

Nothing in here speaks HTTP or touches devices; hub and edge both call these functions
so that a rule (a price, a free seat, an entry decision) lives in exactly one place.
"""
