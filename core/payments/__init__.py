"""Money (issue 16): payments and their states, providers, mandates, invoices, SEPA, bank statements."""
