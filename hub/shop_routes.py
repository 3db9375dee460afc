"""Shop orders (A2, A3). Filled in by the shop work; registered from hub/routes.py."""

from hub.api import Api


def register(api: Api) -> None:
    """Installs the shop's operations."""
