"""Office orders, fulfilment, print batches, operators (A6-A8). Registered from hub/routes.py."""

from hub.api import Api


def register(api: Api) -> None:
    """Installs the office's order operations."""
