"""Route areas of the hub API: cards, orders, shop, sync office."""
