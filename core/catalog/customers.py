"""Customers: who buys, subscribes and is debited. Structured addresses (street, postcode,
town, country) because SEPA requires them from November 2026.

Each customer gets a number from the hub's `KD` series (KD-2026-000042) that staff can
read out on the phone; search finds customers by name, email, company or number.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated

from msgspec import Meta

from core.base.clock import utcnow
from core.base.node import node_id
from core.base.numbering import next_number
from core.catalog.common import Address, Body, Name, ShortText, check_address
from core.catalog.resource import Resource

Email = Annotated[str, Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Phone = Annotated[str, Meta(max_length=30, pattern=r"^\+?[0-9][0-9 ()/-]{4,29}$")]
CUSTOMER_SERIES = "KD"


class CustomerIn(Body, kw_only=True):
    salutation: ShortText = ""
    first_name: Name
    last_name: Name
    company: ShortText = ""
    address: Address
    email: Email | None = None
    phone: Phone | None = None
    active: bool = True


class Customers(Resource):
    name = "customer"
    table = "customers"
    In = CustomerIn
    sorts = ("last_name", "first_name", "number", "created_at", "updated_at")
    default_sort = "last_name"
    search = ("number", "last_name", "first_name", "email", "company")
    search_index = "customers_search"

    def check(self, db: sqlite3.Connection, data: CustomerIn, current: dict | None) -> None:
        check_address(data.address)

    def before_insert(self, db: sqlite3.Connection, row: dict) -> None:
        row["number"] = next_number(db, CUSTOMER_SERIES, utcnow().year, node_id(db))

    def to_outs(self, db: sqlite3.Connection, rows: list[dict]) -> list[dict]:
        return [{"id": out.pop("id"), "number": row["number"], **out}
                for row, out in zip(rows, super().to_outs(db, rows), strict=True)]
