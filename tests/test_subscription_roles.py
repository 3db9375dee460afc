"""Who may call the staff operations issues 12 to 14 added: a shop or an agency token may
not sell at office prices, hold seats as staff, move desk pools, read subscribers or download
print batches. Each attempt is 403 and changes nothing. Real hub app on loopback."""

from __future__ import annotations

import pytest

from hub.app import make_app
from hub.services import tokens
from tests.helpers import table_counts

NOBODY = "01900000-0000-7000-8000-000000000000"  # a fixed id: xdist workers must collect the same tests
OPERATIONS = [
    ("POST", "/subscriptions", {"product_id": NOBODY, "customer_id": NOBODY, "seat_ids": [NOBODY],
                                "payment_method": "cash"}),
    ("GET", "/subscriptions", None),
    ("POST", "/seat-holds", {"seats": [{"performance_id": NOBODY, "seat_id": NOBODY}]}),
    ("POST", "/subscription-products/{product}/pools", {"seat_ids": [NOBODY], "to": "hub"}),
    ("GET", "/subscription-products/{product}/pools", None),
    ("GET", "/agency-sales", None),
    ("GET", f"/print-batches/{NOBODY}/pdf", None),
]


@pytest.mark.parametrize("role", ["shop", "agency"])
@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
async def test_a_shop_or_agency_token_may_not_call_a_staff_operation(aiohttp_client, sample_hub, role, method, path,
                                                                     body):
    secret, _ = tokens.create_token(sample_hub.db, f"Fremd {role}", role)
    client = await aiohttp_client(make_app(sample_hub.db))
    product = sample_hub.db.execute("SELECT id FROM subscription_products WHERE kind = 'ring' LIMIT 1").fetchone()
    before = table_counts(sample_hub.db)
    response = await client.request(method, "/api/v1" + path.format(product=product["id"]), json=body,
                                     headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "x-1"})
    assert response.status == 403, await response.text()
    assert table_counts(sample_hub.db) == before
