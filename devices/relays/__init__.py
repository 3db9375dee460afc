"""Relays that open a door or release a turnstile: the base, LCUS, DTR/RTS and simulated drivers."""
