"""Every route of the hub API. Views only translate HTTP to core service calls."""

from __future__ import annotations

from core.base.errors import NotFound
from core.base.node import this_node
from core.base.storage import schema_version
from core.catalog import pricing, resource
from core.catalog.annual import AnnualProducts
from core.catalog.customers import Customers
from core.catalog.organizers import Organizers, PriceZones, Venues
from core.catalog.performances import Performances
from core.catalog.resource import ListQuery, Resource
from core.catalog.seasons import Seasons
from core.catalog.seating import csv_import, inputs, plans, variants
from core.catalog.subscriptions import Subscriptions, Tiers
from hub.services import tokens
from hub.web import schemas
from hub.web.api import OPENAPI, Api, Ctx, Param
from hub.web.areas import (
    accounting,
    bank,
    cancellations,
    cards,
    choice_vouchers,
    invoices,
    orders,
    reports,
    ring_pools,
    rollover,
    seatmaps,
    sepa,
    shop,
    shop_subscriptions,
    subscriptions,
    sync_office,
)

ALL = ("admin", "office", "shop", "agency")
STAFF = ("admin", "office")
ADMIN = ("admin",)
VERSION = "0.1.0"

LIST_PARAMS = [
    Param("limit", "int", "page size (default 50)", minimum=1, maximum=resource.MAX_PAGE),
    Param("offset", "int", "records to skip", minimum=0, maximum=10_000_000),
    Param("sort", "str", "field to sort by; prefix '-' for descending", max_length=40),
    Param("q", "str", "text search", max_length=200),
    Param("active", "bool", "only active (true) or deactivated (false) records"),
]


def list_query(ctx: Ctx, res: Resource) -> ListQuery:
    q = ctx.query
    filters = {name: q[name] for name in res.filters if name in q}
    return ListQuery(limit=q.get("limit", 50), offset=q.get("offset", 0), sort=q.get("sort"),
                     q=q.get("q"), active=q.get("active"), filters=filters)


def crud(api: Api, path: str, res: Resource, tag: str, *, read: tuple = ALL, write: tuple = STAFF,
         create: tuple | None = None, out: type | None = None) -> None:
    """list / create / read / change (incl. deactivate via active=false) for one resource."""
    out = out or schemas.output_of(res)
    singular = res.name

    def list_records(ctx: Ctx):
        return resource.list_(ctx.db, res, list_query(ctx, res), ctx.audience)

    def create_record(ctx: Ctx):
        return 201, resource.create(ctx.db, res, ctx.body)

    def get_record(ctx: Ctx):
        return resource.get(ctx.db, res, ctx.path("id"), ctx.audience)

    def change_record(ctx: Ctx):
        return resource.update(ctx.db, res, ctx.path("id"), ctx.body)

    slug = path.replace("-", "_")
    for fn, verb in ((list_records, "list"), (create_record, "create"), (get_record, "get"),
                     (change_record, "change")):
        fn.__name__ = f"{verb}_{slug}"
    filters = [Param(f, "uuid" if f.endswith("_id") else "str", f"only records with this {f}")
               for f in res.filters]
    api.add("GET", f"/{path}", list_records, summary=f"List {singular}s", tag=tag, roles=read,
            response=schemas.page_of(out), query=LIST_PARAMS + filters,
            description=f"Sortable by: {', '.join(res.sorts)}. Text search over: {', '.join(res.search)}.")
    api.add("POST", f"/{path}", create_record, summary=f"Create a {singular}", tag=tag,
            roles=create or write, body=res.In, response=out, status=201)
    api.add("GET", f"/{path}/{{id}}", get_record, summary=f"Read a {singular}", tag=tag, roles=read,
            response=out)
    api.add("PATCH", f"/{path}/{{id}}", change_record, summary=f"Change or deactivate a {singular}",
            tag=tag, roles=write, body=res.Patch, response=out,
            description="Send only the fields to change; `{\"active\": false}` deactivates.")


def health(ctx: Ctx):
    return {"status": "ok", "version": VERSION, "node_id": this_node(ctx.db)["id"],
            "schema_version": schema_version(ctx.db)}


def openapi_document(ctx: Ctx):
    return ctx.app[OPENAPI]


# -- tokens ---------------------------------------------------------------------------

def list_tokens(ctx: Ctx):
    return tokens.list_tokens(ctx.db)


def create_token(ctx: Ctx):
    secret, row = tokens.create_token(ctx.db, ctx.body.name, ctx.body.role)
    return 201, {**row, "token": secret}


def revoke_token(ctx: Ctx):
    return tokens.revoke(ctx.db, ctx.path("id"))


# -- seating plans -----------------------------------------------------------------------

PLANS = plans.Plans()


def list_seating_plans(ctx: Ctx):
    return resource.list_(ctx.db, PLANS, list_query(ctx, PLANS))


def get_seating_plan(ctx: Ctx):
    return resource.get(ctx.db, PLANS, ctx.path("id"))


def change_seating_plan(ctx: Ctx):
    return resource.update(ctx.db, PLANS, ctx.path("id"), ctx.body)


def import_plan(ctx: Ctx):
    return 201, plans.import_plan(ctx.db, ctx.body)


def import_plan_csv(ctx: Ctx):
    q = ctx.query
    plan = csv_import.plan_from_csv(ctx.body, venue_id=q["venue_id"], name=q["name"],
                                 seat_size=q.get("seat_size_cm", 100) / 100,
                                 base_variant=q.get("base_variant", "Standard"))
    return 201, plans.import_plan(ctx.db, plan)


def list_variants(ctx: Ctx):
    return resource.get(ctx.db, PLANS, ctx.path("id"))["variants"]


def add_variant(ctx: Ctx):
    return 201, plans.add_variant(ctx.db, ctx.path("id"), ctx.body)


def _own_variant(ctx: Ctx) -> dict:
    variant = variants.get_variant(ctx.db, ctx.path("variant_id"))
    if variant["plan_id"] != ctx.path("id"):
        raise NotFound(f"no variant {ctx.path('variant_id')} in seating plan {ctx.path('id')}")
    return variant


def get_variant(ctx: Ctx):
    return _own_variant(ctx)


def change_variant(ctx: Ctx):
    _own_variant(ctx)
    return variants.update_variant(ctx.db, ctx.path("variant_id"), ctx.body)


def list_seats(ctx: Ctx):
    plan = resource.get(ctx.db, PLANS, ctx.path("id"))
    variant_id = ctx.query.get("variant_id") or plan["variants"][0]["id"]
    if variant_id not in {v["id"] for v in plan["variants"]}:
        raise NotFound(f"no variant {variant_id} in this seating plan")
    seats = variants.variant_seats(ctx.db, variant_id, include_inactive=ctx.query.get("include_inactive", False))
    return {"variant_id": variant_id, "items": [plans.seat_out(s) for s in seats]}


def change_seat(ctx: Ctx):
    return plans.update_seat(ctx.db, ctx.path("id"), ctx.path("seat_id"), ctx.body)


# -- prices ---------------------------------------------------------------------------------

def quote_subscription(ctx: Ctx):
    return pricing.subscription_price(ctx.db, ctx.path("id"), ctx.query.get("zone_id"),
                                      ctx.query.get("tier_id"), ctx.audience)


def price_table(ctx: Ctx):
    return pricing.price_table(ctx.db, ctx.path("id"), ctx.audience)


def build() -> Api:
    api = Api()
    api.add("GET", "/health", health, summary="Check the hub is up", tag="System", roles=None, cacheable=False,
            response=schemas.Health)
    api.add("GET", "/openapi.json", openapi_document, summary="This API document", tag="System",
            roles=None, response=dict)

    api.add("GET", "/tokens", list_tokens, summary="List API tokens", tag="Tokens", roles=ADMIN,
            response=list[schemas.Token])
    api.add("POST", "/tokens", create_token, summary="Create an API token", tag="Tokens", roles=ADMIN,
            body=tokens.TokenIn, response=schemas.NewToken, status=201,
            description="The secret is shown once, in this response; only its hash is stored.")
    api.add("DELETE", "/tokens/{id}", revoke_token, summary="Revoke an API token", tag="Tokens",
            roles=ADMIN, response=schemas.Token)

    crud(api, "organizers", Organizers(), "Organizers")
    crud(api, "venues", Venues(), "Venues")
    crud(api, "price-zones", PriceZones(), "Venues")
    crud(api, "seasons", Seasons(), "Seasons")

    plan_out = schemas.SeatingPlan
    api.add("GET", "/seating-plans", list_seating_plans,
            summary="List seating plans", tag="Seating", roles=ALL, response=schemas.page_of(plan_out),
            query=LIST_PARAMS + [Param("venue_id", "uuid", "only plans of this venue")])
    api.add("POST", "/seating-plans", import_plan, summary="Import a seating plan (JSON)", tag="Seating",
            roles=STAFF, body=inputs.PlanIn, response=plan_out, status=201,
            description="Sections, rows and seats with x/y and price zone code, plus variants that "
                        "add or remove rows. Duplicate or overlapping seats are refused.")
    api.add("POST", "/seating-plans/import-csv", import_plan_csv, summary="Import a seating plan (CSV)",
            tag="Seating", roles=STAFF, body=str, body_media="text/csv", response=plan_out, status=201,
            query=[Param("venue_id", "uuid", "venue of the plan", required=True),
                   Param("name", "str", "plan name", required=True),
                   Param("seat_size_cm", "int", "seat width in 1/100 drawing units (default 100)",
                         minimum=1, maximum=100_000),
                   Param("base_variant", "str", "name of the base variant (default Standard)")],
            description="Columns: section,row,seat,x,y,zone[,wheelchair,companion,variant,removed_in].")
    api.add("GET", "/seating-plans/{id}", get_seating_plan,
            summary="Read a seating plan", tag="Seating", roles=ALL, response=plan_out)
    api.add("PATCH", "/seating-plans/{id}", change_seating_plan,
            summary="Rename, rescale or deactivate a seating plan", tag="Seating", roles=STAFF,
            body=PLANS.Patch, response=plan_out)
    api.add("GET", "/seating-plans/{id}/variants", list_variants, summary="List the variants of a plan",
            tag="Seating", roles=ALL, response=list[schemas.Variant])
    api.add("POST", "/seating-plans/{id}/variants", add_variant, summary="Add a plan variant",
            tag="Seating", roles=STAFF, body=inputs.VariantIn, response=schemas.Variant, status=201)
    api.add("GET", "/seating-plans/{id}/variants/{variant_id}", get_variant, summary="Read a plan variant",
            tag="Seating", roles=ALL, response=schemas.Variant)
    api.add("PATCH", "/seating-plans/{id}/variants/{variant_id}", change_variant,
            summary="Rename or deactivate a plan variant", tag="Seating", roles=STAFF,
            body=inputs.VariantPatch, response=schemas.Variant)
    api.add("GET", "/seating-plans/{id}/seats", list_seats, summary="List the seats of a plan variant",
            tag="Seating", roles=ALL, response=schemas.SeatList,
            query=[Param("variant_id", "uuid", "variant (default: the base plan)"),
                   Param("include_inactive", "bool", "also list deactivated seats")])
    api.add("PATCH", "/seating-plans/{id}/seats/{seat_id}", change_seat,
            summary="Change or deactivate a seat", tag="Seating", roles=STAFF,
            body=inputs.SeatPatchIn, response=schemas.Seat)

    crud(api, "performances", Performances(), "Performances")
    crud(api, "annual-ticket-products", AnnualProducts(), "Annual tickets")
    crud(api, "subscription-products", Subscriptions(), "Subscriptions")
    crud(api, "discount-tiers", Tiers(), "Subscriptions")
    api.add("GET", "/subscription-products/{id}/price", quote_subscription,
            summary="Price of a subscription in a zone with a discount tier", tag="Subscriptions",
            roles=ALL, response=schemas.Quote,
            query=[Param("zone_id", "uuid", "price zone (not for vouchers)"),
                   Param("tier_id", "uuid", "discount tier (default: full price)")])
    api.add("GET", "/subscription-products/{id}/prices", price_table,
            summary="Price table of a subscription: zones x discount tiers", tag="Subscriptions",
            roles=ALL, response=schemas.PriceTable)

    customers = Customers()
    crud(api, "customers", customers, "Customers", read=STAFF, write=STAFF, create=("admin", "office", "shop"),
         out=schemas.output_of(customers, [("number", str)]))
    cards.register(api)
    shop.register(api)
    orders.register(api)
    sync_office.register(api)
    seatmaps.register(api)
    subscriptions.register(api)
    shop_subscriptions.register(api)
    ring_pools.register(api)
    choice_vouchers.register(api)
    accounting.register(api)
    sepa.register(api)
    invoices.register(api)
    bank.register(api)
    reports.register(api)
    cancellations.register(api)
    rollover.register(api)  # season rollover (S15)
    return api
