"""Sales: orders, tickets (sales and payments) and contingents."""
