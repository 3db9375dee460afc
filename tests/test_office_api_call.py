"""The office app acts through the API's operations (`hub.web.office.api_call`): the staff
member's role is checked against the operation's roles, the body is decoded by the
operation's own type, and a refusal carries the API's status and detail."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from hub.app import make_app
from hub.services import staff
from hub.web.office import api_call


def me(role: str) -> staff.Session:
    return staff.Session(staff_id="s-1", user_name="erika", role=role, csrf="x")


def request_for(hub):
    return make_mocked_request("GET", "/office/", app=make_app(hub.db))


async def test_an_operation_runs_as_the_staff_member(sample_hub):
    request = request_for(sample_hub)
    made = await api_call.call(request, me("office"), "POST", "/operators", {"name": "Anna", "pin": "4711"})
    assert made["name"] == "Anna" and "pin_hash" not in made
    listed = await api_call.call(request, me("office"), "GET", "/operators")
    assert "Anna" in [o["name"] for o in listed]


async def test_the_office_role_may_not_call_an_admin_operation(sample_hub):
    before = sample_hub.db.execute("SELECT count(*) AS n FROM api_tokens").fetchone()["n"]
    with pytest.raises(api_call.Refused) as refused:
        await api_call.call(request_for(sample_hub), me("office"), "POST", "/tokens",
                            {"name": "shop", "role": "shop"})
    assert refused.value.status == 403
    assert sample_hub.db.execute("SELECT count(*) AS n FROM api_tokens").fetchone()["n"] == before


@pytest.mark.parametrize("body", [{"name": "Anna"}, {"name": "Anna", "pin": "4711", "color": "red"},
                                  {"name": "", "pin": "4711"}, "not an object"])
async def test_a_body_the_api_refuses_is_refused_here_and_changes_nothing(sample_hub, body):
    before = sample_hub.db.execute("SELECT count(*) AS n FROM operators").fetchone()["n"]
    with pytest.raises(api_call.Refused) as refused:
        await api_call.call(request_for(sample_hub), me("admin"), "POST", "/operators", body)
    assert refused.value.status in (400, 422) and refused.value.detail
    assert sample_hub.db.execute("SELECT count(*) AS n FROM operators").fetchone()["n"] == before


async def test_an_unknown_operation_is_404(sample_hub):
    with pytest.raises(api_call.Refused) as refused:
        await api_call.call(request_for(sample_hub), me("admin"), "DELETE", "/everything")
    assert refused.value.status == 404
