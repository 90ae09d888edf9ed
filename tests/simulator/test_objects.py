"""Object endpoints, paging, authentication and routing errors."""

from __future__ import annotations

import httpx
import pytest

from close_reports.simulator import CloseSimulator, Org

LISTS = [
    "/user/",
    "/status/lead/",
    "/status/opportunity/",
    "/pipeline/",
    "/group/",
    "/saved_search/",
]


def fetch_all(client: httpx.Client, path: str, limit: int) -> list[dict]:
    items: list[dict] = []
    skip = 0
    while True:
        response = client.get(path, params={"_skip": skip, "_limit": limit})
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"data", "has_more"}
        assert len(page["data"]) <= limit
        items.extend(page["data"])
        if not page["has_more"]:
            return items
        assert len(page["data"]) == limit
        skip += limit


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("limit", [1, 2, 3, 100, 200])
def test_paging_returns_every_row_once(client: httpx.Client, path: str, limit: int) -> None:
    everything = client.get(path, params={"_limit": 200}).json()
    assert everything["has_more"] is False
    paged = fetch_all(client, path, limit)
    assert paged == everything["data"]
    ids = [item["id"] for item in paged]
    assert len(ids) == len(set(ids)) > 0


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"_limit": 201}, "_limit", "Input should be less than or equal to 200"),
        ({"_limit": 0}, "_limit", None),
        ({"_skip": -1}, "_skip", None),
        ({"_limit": "ten"}, "_limit", None),
    ],
)
def test_paging_errors(client: httpx.Client, params: dict, field: str, message: str | None) -> None:
    response = client.get("/user/", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == []
    assert field in body["field-errors"]
    if message:
        assert body["field-errors"][field] == message


def test_me_and_organization(client: httpx.Client, org: Org) -> None:
    me = client.get("/me/").json()
    assert me["id"] == org.users[0].id
    assert me["organizations"][0]["id"] == org.id
    assert {"lead_statuses", "pipelines"} <= set(me["organizations"][0])
    assert me["memberships"][0]["organization_id"] == org.id
    detail = client.get(f"/organization/{org.id}/").json()
    active = {m["user_id"] for m in detail["memberships"]}
    inactive = {m["user_id"] for m in detail["inactive_memberships"]}
    assert active == {u.id for u in org.users if u.is_active}
    assert inactive == {u.id for u in org.users if not u.is_active}
    assert len(inactive) == 2
    membership = detail["memberships"][0]
    assert {"id", "user_id", "user_email", "user_full_name", "role_id"} <= set(membership)
    assert client.get("/organization/orga_someoneElse/").status_code == 404
    assert client.get("/me/", params={"_fields": "id,email"}).json() == {
        "id": org.users[0].id,
        "email": org.users[0].email,
    }


def test_statuses_and_pipelines(client: httpx.Client, org: Org) -> None:
    pipelines = client.get("/pipeline/").json()["data"]
    assert len(pipelines) >= 2
    opp_statuses = client.get("/status/opportunity/").json()["data"]
    by_pipeline: dict[str, list[dict]] = {}
    for status in opp_statuses:
        assert set(status) == {"id", "label", "type", "pipeline_id", "organization_id"}
        by_pipeline.setdefault(status["pipeline_id"], []).append(status)
    for pipeline in pipelines:
        types = [s["type"] for s in pipeline["statuses"]]
        assert {"active", "won", "lost"} <= set(types)
        assert types.index("won") > max(i for i, t in enumerate(types) if t == "active")
        assert [s["id"] for s in pipeline["statuses"]] == [
            s["id"] for s in by_pipeline[pipeline["id"]]
        ]
    leads = client.get("/status/lead/").json()["data"]
    assert all(set(s) == {"id", "label", "organization_id"} for s in leads)
    assert len(leads) == len([s for s in org.lead_statuses if not s.is_deleted])
    group = client.get("/group/").json()["data"][0]
    detail = client.get(f"/group/{group['id']}/").json()
    assert detail["members"] and all("user_id" in m for m in detail["members"])
    searches = client.get("/saved_search/").json()["data"]
    assert all(s["id"].startswith("save_") and s["type"] == "lead" for s in searches)
    assert client.get("/saved_search/", params={"type": "call"}).json()["data"] == []


def test_templates_shared_and_not(org: Org) -> None:
    assert {t.is_shared for t in org.templates} == {True, False}


def test_auth(simulator: CloseSimulator) -> None:
    with simulator.client(api_key="wrong") as bad:
        response = bad.get("/me/")
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized"}
    with httpx.Client(
        base_url="https://api.close.com/api/v1", transport=simulator.transport()
    ) as anon:
        assert anon.get("/me/").status_code == 401
    with simulator.client(api_key="demo") as good:
        assert good.get("/me/").status_code == 200


def test_routing_errors(client: httpx.Client) -> None:
    assert client.get("/no_such_thing/").status_code == 404
    missing_slash = client.get("/me")
    assert missing_slash.status_code == 404 and "slash" in missing_slash.json()["error"]
    assert client.get("/report/activity/").status_code == 405
    assert client.post("/me/", json={}).status_code == 405
    outside = client.get("https://api.close.com/other/")
    assert outside.status_code == 404


def test_method_override(client: httpx.Client, org: Org) -> None:
    params = {"date_start": "2026-03-01", "date_end": "2026-03-02"}
    direct = client.get(f"/report/sent_emails/{org.id}/", params=params).json()
    overridden = client.post(
        f"/report/sent_emails/{org.id}/",
        json={"_params": params},
        headers={"x-http-method-override": "GET"},
    ).json()
    assert direct == overridden
