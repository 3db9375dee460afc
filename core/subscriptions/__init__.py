"""Subscriptions at sale time (issue 13): the seat logic of rings, choices and combis, and
what selling and holding them needs. Builds on catalog (plans, products, prices) and sales."""
