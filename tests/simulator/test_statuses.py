"""GET /report/statuses/{lead,opportunity}/{org}/ against brute force over the exported log."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import httpx
import pytest

from close_reports.simulator import Org

from .conftest import ANCHOR
from .expected import local_midnight, status_paths, status_truth

COUNTERS = ("started", "ended", "gained", "lost", "entered", "left")
OVERVIEW_KEYS = {
    "status_id",
    "status_label",
    "status_is_deleted",
    "started",
    "ended",
    "change",
    "change_percent",
    "gained",
    "lost",
    "entered",
    "left",
    "_queries",
    "_leads_page_urls",
}
TRANSITION_KEYS = {
    "from_status_id",
    "from_status_label",
    "from_status_is_deleted",
    "to_status_id",
    "to_status_label",
    "to_status_is_deleted",
    "count",
    "_query",
    "_leads_page_url",
}
WINDOWS = [
    ("2026-03-10", "2026-03-11", 0),
    ("2026-03-08", "2026-03-09", -5),
    ("2026-02-01", "2026-03-01", 0),
    ("2026-01-20", "2026-02-10", 1),
    ("2026-03-01", "2026-03-21", -4),
]


def get(client: httpx.Client, org: Org, kind: str, offset: float = 0, **params: str) -> dict:
    response = client.get(
        f"/report/statuses/{kind}/{org.id}/",
        params=params,
        headers={"X-TZ-Offset": str(offset)},
    )
    assert response.status_code == 200, response.text
    return response.json()


def check_invariants(payload: dict, kind: str) -> None:
    extra = {"_opportunities_page_urls"} if kind == "opportunity" else set()
    for row in payload["status_overview"]:
        assert set(row) == OVERVIEW_KEYS | extra
        assert row["ended"] == row["started"] + row["gained"] - row["lost"]
        assert row["change"] == row["ended"] - row["started"]
        assert row["entered"] >= row["gained"]
        assert row["left"] >= row["lost"]
        assert all(row[c] >= 0 for c in COUNTERS)
        assert set(row["_queries"]) == set(COUNTERS) == set(row["_leads_page_urls"])
        if row["started"]:
            assert row["change_percent"] == round_half_up(100 * row["change"] / row["started"])
        else:
            assert row["change_percent"] is None
    extra = {"_opportunities_page_url"} if kind == "opportunity" else set()
    transitions = payload["status_transitions"]
    summary = payload["status_transitions_summary"]
    for item in transitions + summary:
        assert set(item) == TRANSITION_KEYS | extra
        assert item["count"] > 0
        if item["from_status_id"] is None:
            assert item["from_status_label"] is None and item["from_status_is_deleted"] is None
    assert sum(i["count"] for i in summary) <= sum(i["count"] for i in transitions)
    created_transitions = sum(i["count"] for i in transitions if i["from_status_id"] is None)
    created_summary = sum(i["count"] for i in summary if i["from_status_id"] is None)
    assert created_summary == created_transitions
    for item in summary:
        assert item["from_status_id"] != item["to_status_id"] or item["from_status_id"] is None


def round_half_up(value: float) -> int:
    sign = -1 if value < 0 else 1
    return sign * int(abs(value) + 0.5)


def compare(payload: dict, truth, org: Org, kind: str) -> None:
    for row in payload["status_overview"]:
        want = truth.counters.get(row["status_id"], dict.fromkeys(COUNTERS, 0))
        assert {c: row[c] for c in COUNTERS} == want, row["status_label"]
    listed = {row["status_id"] for row in payload["status_overview"]}
    for status_id, counts in truth.counters.items():
        if any(counts.values()):
            assert status_id in listed
    got = {
        (i["from_status_id"], i["to_status_id"]): i["count"] for i in payload["status_transitions"]
    }
    assert got == truth.transitions
    got = {
        (i["from_status_id"], i["to_status_id"]): i["count"]
        for i in payload["status_transitions_summary"]
    }
    assert got == truth.summary


@pytest.mark.parametrize("kind", ["lead", "opportunity"])
@pytest.mark.parametrize(("start", "end", "offset"), WINDOWS)
def test_status_report_matches_brute_force(
    client: httpx.Client,
    org: Org,
    duck: duckdb.DuckDBPyConnection,
    kind: str,
    start: str,
    end: str,
    offset: float,
) -> None:
    payload = get(client, org, kind, offset, date_start=start, date_end=end)
    check_invariants(payload, kind)
    truth = status_truth(
        status_paths(duck, kind),
        local_midnight(date.fromisoformat(start), offset),
        local_midnight(date.fromisoformat(end), offset),
    )
    assert truth.transitions and truth.summary
    compare(payload, truth, org, kind)


def test_every_day_chains(client: httpx.Client, org: Org) -> None:
    """``ended`` of one day is ``started`` of the next, for every status, over two weeks."""
    previous: dict[str, int] | None = None
    for i in range(14):
        day = date(2026, 3, 1) + timedelta(days=i)
        payload = get(
            client, org, "lead", -5, date_start=str(day), date_end=str(day + timedelta(days=1))
        )
        check_invariants(payload, "lead")
        started = {r["status_id"]: r["started"] for r in payload["status_overview"]}
        if previous is not None:
            for status_id, count in started.items():
                assert previous.get(status_id, 0) == count
        previous = {r["status_id"]: r["ended"] for r in payload["status_overview"]}


def test_deleted_status_has_history_but_is_not_listed(client: httpx.Client, org: Org) -> None:
    deleted = [s for s in org.lead_statuses if s.is_deleted]
    assert len(deleted) == 1
    listed = {s["id"] for s in client.get("/status/lead/").json()["data"]}
    assert deleted[0].id not in listed
    early = get(client, org, "lead", date_start="2026-01-20", date_end="2026-02-20")
    row = next(r for r in early["status_overview"] if r["status_id"] == deleted[0].id)
    assert row["status_is_deleted"] is True
    assert row["entered"] > 0 or row["started"] > 0
    assert any(t["to_status_is_deleted"] for t in early["status_transitions"]) or any(
        t["from_status_is_deleted"] for t in early["status_transitions"]
    )
    late = get(client, org, "lead", date_start="2026-03-15", date_end="2026-03-21")
    assert deleted[0].id not in {r["status_id"] for r in late["status_overview"]}


def test_without_dates_is_the_whole_history(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection
) -> None:
    payload = get(client, org, "lead")
    check_invariants(payload, "lead")
    leads = duck.execute("select count(*) from close_sim.leads").fetchall()[0][0]
    assert sum(r["ended"] for r in payload["status_overview"]) == leads
    assert all(r["started"] == 0 for r in payload["status_overview"])
    until_now = get(client, org, "lead", date_start="2026-03-01")
    assert sum(r["ended"] for r in until_now["status_overview"]) == leads


@pytest.mark.parametrize("kind", ["lead", "opportunity"])
def test_smart_view_and_query_filters(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection, kind: str
) -> None:
    search = next(s for s in org.saved_searches if s.field == "industry")
    start, end = date(2026, 2, 1), date(2026, 3, 1)
    lead_filter = f"industry = '{search.value}'"
    sql = (
        f"x.{lead_filter}"
        if kind == "lead"
        else f"x.lead_id in (select id from close_sim.leads where {lead_filter})"
    )
    truth = status_truth(
        status_paths(duck, kind, sql), local_midnight(start, 0), local_midnight(end, 0)
    )
    by_view = get(
        client, org, kind, date_start=str(start), date_end=str(end), smart_view_id=search.id
    )
    check_invariants(by_view, kind)
    compare(by_view, truth, org, kind)
    by_query = get(
        client,
        org,
        kind,
        date_start=str(start),
        date_end=str(end),
        query=f'industry:"{search.value}"',
    )
    assert by_query["status_overview"] == by_view["status_overview"]
    by_in = get(
        client, org, kind, date_start=str(start), date_end=str(end), query=f'in:"{search.id}"'
    )
    assert by_in["status_transitions"] == by_view["status_transitions"]


def test_opportunity_user_filter(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection
) -> None:
    user = org.users[1]
    start, end = date(2026, 2, 15), date(2026, 3, 15)
    truth = status_truth(
        status_paths(duck, "opportunity", f"x.user_id = '{user.id}'"),
        local_midnight(start, 0),
        local_midnight(end, 0),
    )
    payload = get(
        client, org, "opportunity", date_start=str(start), date_end=str(end), user_id=user.id
    )
    check_invariants(payload, "opportunity")
    compare(payload, truth, org, "opportunity")
    by_name = get(
        client,
        org,
        "opportunity",
        date_start=str(start),
        date_end=str(end),
        query=f'opportunity_user:"{user.full_name}"',
    )
    assert by_name["status_overview"] == payload["status_overview"]


def test_opportunity_rows_carry_opportunity_links(client: httpx.Client, org: Org) -> None:
    payload = get(client, org, "opportunity", date_start="2026-03-01", date_end="2026-03-08")
    row = payload["status_overview"][0]
    assert set(row["_opportunities_page_urls"]) == set(COUNTERS)
    assert all(q.startswith("opportunity(") for q in row["_queries"].values())
    assert all(
        t["_opportunities_page_url"].startswith("/opportunities/")
        for t in payload["status_transitions"]
    )
    statuses = {s["id"] for s in client.get("/status/opportunity/").json()["data"]}
    assert {r["status_id"] for r in payload["status_overview"]} == statuses


def test_iso_datetimes_equal_local_dates(client: httpx.Client, org: Org) -> None:
    by_date = get(client, org, "lead", -5, date_start="2026-03-02", date_end="2026-03-03")
    by_iso = get(
        client,
        org,
        "lead",
        0,
        date_start="2026-03-02T05:00:00.000Z",
        date_end="2026-03-03T00:00:00-05:00",
    )
    assert [{c: r[c] for c in COUNTERS} for r in by_date["status_overview"]] == [
        {c: r[c] for c in COUNTERS} for r in by_iso["status_overview"]
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"query": "*", "smart_view_id": "save_x"}, "query"),
        ({"date_start": "yesterday-ish"}, "date_start"),
        ({"date_end": "2026-13-45"}, "date_end"),
        ({"date_start": "2026-03-05", "date_end": "2026-03-01"}, "date_end"),
        ({"query": "lead_status:weird and (nested"}, "query"),
    ],
)
def test_status_report_errors(client: httpx.Client, org: Org, params: dict, field: str) -> None:
    response = client.get(f"/report/statuses/lead/{org.id}/", params=params)
    assert response.status_code == 400
    assert field in response.json()["field-errors"]


def test_other_org_is_404(client: httpx.Client) -> None:
    response = client.get("/report/statuses/lead/orga_somebodyElse/")
    assert response.status_code == 404
    assert "error" in response.json()


def test_anchor_day_is_the_last_with_events(client: httpx.Client, org: Org) -> None:
    today = ANCHOR + timedelta(days=1)
    payload = get(
        client, org, "lead", date_start=str(today), date_end=str(today + timedelta(days=1))
    )
    assert payload["status_transitions"] == []
    last = get(client, org, "lead", date_start=str(ANCHOR), date_end=str(today))
    assert last["status_transitions"]


def test_unknown_smart_view_is_an_empty_view(client: httpx.Client, org: Org) -> None:
    payload = get(client, org, "lead", date_start="2026-03-01", smart_view_id="save_missing")
    check_invariants(payload, "lead")
    assert all(r["started"] == r["ended"] == 0 for r in payload["status_overview"])
    assert payload["status_transitions"] == [] == payload["status_transitions_summary"]
