"""The central service: office/shop/agency API (aiohttp) over the core catalog."""
