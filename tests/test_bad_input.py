"""Hostile and clumsy input: each gets a 4xx problem+json with a stable type, and nothing
is written."""

import pytest

from tests.helpers import ADDRESS, call, problem, table_counts

pytestmark = pytest.mark.usefixtures("api")


@pytest.fixture
def unchanged(api):
    before = table_counts(api.hub.db)
    yield
    assert table_counts(api.hub.db) == before


async def raw(api, method, path, data, content_type="application/json", status=400, slug="malformed-json"):
    resp = await api.request(method, "/api/v1" + path, data=data,
                             headers={**api.hub.headers(), "Content-Type": content_type})
    body = await resp.json(content_type=None)
    assert resp.status == status, body
    assert resp.content_type == "application/problem+json"
    assert body["type"] == f"urn:tessera:problem:{slug}"
    return body


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("data", [b"{", b'{"name": "x",}', b"\xff\xfe", b"", b"   ", b"null", b"[1,2]", b'"x"'])
async def test_malformed_json(api, data):
    resp = await api.post("/api/v1/organizers", data=data, headers={**api.hub.headers(),
                                                                    "Content-Type": "application/json"})
    body = await resp.json(content_type=None)
    assert resp.status == 400 and body["type"] in ("urn:tessera:problem:malformed-json",
                                                   "urn:tessera:problem:invalid-type")


@pytest.mark.usefixtures("unchanged")
async def test_unknown_fields_are_named(api):
    err = await problem(api, "POST", "/organizers", {"name": "x", "address": ADDRESS, "colour": "red"},
                        status=400, slug="unknown-field")
    assert err["field"] == "colour"
    err = await problem(api, "POST", "/organizers", {"name": "x", "address": {**ADDRESS, "floor": 2}},
                        status=400, slug="unknown-field")
    assert err["field"] == "address.floor"


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("body,field", [
    ({"name": 5, "address": ADDRESS}, "name"),
    ({"name": "x", "address": "Bremen"}, "address"),
    ({"name": "x", "address": {**ADDRESS, "postcode": 28195}}, "address.postcode"),
])
async def test_wrong_types(api, body, field):
    err = await problem(api, "POST", "/organizers", body, status=400, slug="invalid-type")
    assert err["field"] == field


@pytest.mark.usefixtures("unchanged")
async def test_missing_fields(api):
    err = await problem(api, "POST", "/organizers", {"name": "x"}, status=400, slug="missing-field")
    assert err["field"] == "address"


@pytest.mark.usefixtures("unchanged")
async def test_negative_prices(api):
    perf = await call(api, "GET", f"/performances/{api.hub.ids['performances'][0]}", status=200)
    prices = [{**p, "price_cents": -100} for p in perf["prices"]]
    err = await problem(api, "PATCH", f"/performances/{perf['id']}", {"prices": prices},
                        status=422, slug="validation-failed")
    assert "price_cents" in err["field"] and ">= 0" in err["detail"]
    await problem(api, "PATCH", f"/annual-ticket-products/{api.hub.ids['annual_products'][0]}",
                  {"price_cents": -1}, status=422, slug="validation-failed")


@pytest.mark.usefixtures("unchanged")
async def test_dates_out_of_order(api):
    err = await problem(api, "POST", "/seasons", {"organizer_id": api.hub.ids["theatre_organizer"], "name": "x",
                                                  "starts_on": "2027-09-01", "ends_on": "2027-08-01"},
                        status=422, slug="validation-failed")
    assert "ends" in err["detail"] and err["field"] == "ends_on"
    # a performance outside its season
    perf = await call(api, "GET", f"/performances/{api.hub.ids['performances'][0]}", status=200)
    await problem(api, "PATCH", f"/performances/{perf['id']}", {"starts_at": "2025-01-01T19:00:00+01:00"},
                  status=422, slug="validation-failed")
    await problem(api, "PATCH", f"/performances/{perf['id']}", {"starts_at": "2026-10-01T19:00:00"},
                  status=422, slug="validation-failed")  # no timezone


@pytest.mark.usefixtures("unchanged")
async def test_unknown_ids(api):
    missing = "01a20000-0000-7000-8000-000000000000"
    await problem(api, "GET", f"/venues/{missing}", status=404, slug="not-found")
    await problem(api, "GET", "/venues/nonsense", status=404, slug="not-found")
    await problem(api, "PATCH", f"/venues/{missing}", {"name": "x"}, status=404, slug="not-found")
    err = await problem(api, "POST", "/venues", {"organizer_id": missing, "name": "x", "kind": "museum",
                                                 "address": ADDRESS}, status=422, slug="validation-failed")
    assert err["field"] == "organizer_id"
    await problem(api, "GET", "/no-such-thing", status=404, slug="not-found")


@pytest.mark.usefixtures("unchanged")
async def test_a_body_over_the_size_limit(api):
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    await raw(api, "POST", "/organizers", big, status=413, slug="body-too-large")


@pytest.mark.usefixtures("unchanged")
async def test_a_chunked_body_over_the_limit(api):
    async def chunks():
        for _ in range(40):
            yield b"x" * 65536

    resp = await api.post("/api/v1/organizers", data=chunks(),
                          headers={**api.hub.headers(), "Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json(content_type=None))["type"] == "urn:tessera:problem:body-too-large"


@pytest.mark.usefixtures("unchanged")
async def test_wrong_content_type_and_method(api):
    await raw(api, "POST", "/organizers", b"name=x", content_type="application/x-www-form-urlencoded",
              status=415, slug="unsupported-media-type")
    await problem(api, "DELETE", "/organizers", status=405, slug="method-not-allowed")


@pytest.mark.usefixtures("unchanged")
async def test_a_blank_name_is_not_a_name(api):
    await problem(api, "POST", "/organizers", {"name": "   ", "address": ADDRESS}, status=422,
                  slug="validation-failed")


@pytest.mark.usefixtures("unchanged")
async def test_a_wrong_sepa_creditor_id(api):
    err = await problem(api, "POST", "/organizers", {"name": "x", "address": ADDRESS,
                                                     "sepa_creditor_id": "DE97ZZZ09999999999"},
                        status=422, slug="validation-failed")
    assert "check digits" in err["detail"]


@pytest.mark.usefixtures("unchanged")
async def test_duplicate_zone_code_is_a_conflict(api):
    await problem(api, "POST", "/price-zones", {"organizer_id": api.hub.ids["theatre_organizer"], "code": "1",
                                                "name": "Doppelt"}, status=409, slug="conflict")


@pytest.mark.usefixtures("unchanged")
async def test_dates_a_box_office_cannot_mean_are_refused(api):
    """Year 1 in +01:00 is year 0 in UTC, which Python cannot even represent."""
    perf = api.hub.ids["performances"][0]
    err = await problem(api, "PATCH", f"/performances/{perf}",
                        {"season_id": None, "starts_at": "0001-01-01T00:00:00+01:00"},
                        status=422, slug="validation-failed")
    assert "out of range" in err["detail"]
    await problem(api, "POST", "/seasons", {"organizer_id": api.hub.ids["theatre_organizer"], "name": "x",
                                            "starts_on": "2026-09-01", "ends_on": "9999-12-31"},
                  status=422, slug="validation-failed")


@pytest.mark.usefixtures("unchanged")
async def test_a_body_that_is_not_utf8(api):
    await raw(api, "POST", "/organizers", b'{"name": "\xff"}', status=400, slug="malformed-json")


@pytest.mark.usefixtures("unchanged")
async def test_a_token_that_is_not_ascii_is_just_unknown(api):
    await problem(api, "GET", "/venues", status=401, slug="unauthorized",
                  headers={"Authorization": "Bearer tsr_äöü"})


@pytest.mark.both_backends
@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("name", ["Thea\\u0000ter", "\\u0000", "Theater\\\\\\u0000"])
async def test_a_nul_character_in_a_text_is_refused_on_both_backends(api, name):
    """PostgreSQL's text cannot hold U+0000 (it would answer 500) and SQLite would store it: the
    API refuses it in any body, whatever the field, before anything is decoded or stored."""
    body = await raw(api, "POST", "/organizers", ('{"name": "' + name + '", "address": {"street": "Weg 1", '
                                                  '"postcode": "10115", "town": "Berlin", "country": "DE"}}').encode())
    assert "NUL" in body["detail"]


@pytest.mark.both_backends
async def test_an_escaped_backslash_before_u0000_is_just_text(api):
    made = await call(api, "POST", "/organizers", {"name": "Theater \\u0000", "address": ADDRESS}, status=201)
    assert made["name"] == "Theater \\u0000"


@pytest.mark.both_backends
async def test_a_nul_character_in_a_query_parameter_is_refused(api):
    err = await problem(api, "GET", "/customers?q=M%00ller", status=422, slug="validation-failed")
    assert "NUL" in err["detail"] and err["field"] == "q"
    err = await problem(api, "GET", "/customers?sort=na%00me", status=422, slug="validation-failed")
    assert err["field"] == "sort"
