"""Seating plans: what the API accepts, seat geometry checks, variants, CSV import and the stored plans."""
