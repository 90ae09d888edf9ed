"""GET /report/sent_emails/{org}/ and the Explorer (GET /report/custom/...)."""

from __future__ import annotations

from datetime import date

import duckdb
import httpx
import pytest

from close_reports.simulator import Org

from .expected import S, local_midnight, utc

ROW_KEYS = {
    "name",
    "template_id",
    "template_url",
    "is_shared",
    "total",
    "opened",
    "responded",
    "percentage_opened",
    "percentage_responded",
    "_queries",
}


@pytest.mark.parametrize(
    ("start", "end", "offset"),
    [
        ("2026-03-10", "2026-03-11", 0),
        ("2026-03-02", "2026-03-09", -5),
        ("2026-02-01", "2026-03-01", 0),
    ],
)
def test_sent_emails_by_template(
    client: httpx.Client,
    org: Org,
    duck: duckdb.DuckDBPyConnection,
    start: str,
    end: str,
    offset: float,
) -> None:
    response = client.get(
        f"/report/sent_emails/{org.id}/",
        params={"date_start": start, "date_end": end},
        headers={"X-TZ-Offset": str(offset)},
    )
    assert response.status_code == 200
    rows = response.json()["sent_email_stats"]
    assert rows[0]["name"] == "All Emails"
    assert rows[0]["template_id"] is None and rows[0]["template_url"] is None
    lo = local_midnight(date.fromisoformat(start), offset)
    hi = local_midnight(date.fromisoformat(end), offset)
    all_row = duck.execute(
        f"select count(*) from {S}.emails "
        "where direction = 'sent' and created_at >= ? and created_at < ?",
        [utc(lo), utc(hi)],
    ).fetchall()[0][0]
    assert rows[0]["total"] == all_row
    by_template = {
        t: (n, o, r)
        for t, n, o, r in duck.execute(
            f"""
            select e.template_id, count(*),
                   count(*) filter (where e.id in (select email_id from {S}.email_opens)),
                   count(*) filter (where e.has_reply)
            from {S}.emails e
            where e.direction = 'sent' and e.template_id is not null
              and e.created_at >= ? and e.created_at < ?
            group by 1
            """,
            [utc(lo), utc(hi)],
        ).fetchall()
    }
    got = {r["template_id"]: (r["total"], r["opened"], r["responded"]) for r in rows[1:]}
    assert got == by_template
    templates = {t.id: t for t in org.templates}
    for row in rows:
        assert set(row) == ROW_KEYS
        assert set(row["_queries"]) == {"total", "opened", "responded"}
        assert row["opened"] <= row["total"] and row["responded"] <= row["total"]
        expected_pct = int(100 * row["opened"] / row["total"] + 0.5) if row["total"] else 0
        assert row["percentage_opened"] == expected_pct
        if row["template_id"]:
            assert row["is_shared"] == templates[row["template_id"]].is_shared
            assert row["name"] == templates[row["template_id"]].name
            assert row["total"] >= 1
    assert any(not r["is_shared"] for r in rows[1:]) or len(rows) < 4


def test_sent_emails_user_filter_and_errors(client: httpx.Client, org: Org) -> None:
    params = {"date_start": "2026-03-01", "date_end": "2026-03-08"}
    everyone = client.get(f"/report/sent_emails/{org.id}/", params=params).json()
    per_user = [
        client.get(f"/report/sent_emails/{org.id}/", params={**params, "user_id": u.id}).json()
        for u in org.users
    ]
    assert everyone["sent_email_stats"][0]["total"] == sum(
        p["sent_email_stats"][0]["total"] for p in per_user
    )
    bad = client.get(f"/report/sent_emails/{org.id}/", params={**params, "user_id": "user_x"})
    assert bad.status_code == 400 and "user_id" in bad.json()["field-errors"]
    bad_date = client.get(f"/report/sent_emails/{org.id}/", params={"date_start": "03/01/2026"})
    assert bad_date.status_code == 400 and "date_start" in bad_date.json()["field-errors"]
    assert client.get("/report/sent_emails/orga_other/").status_code == 404
    empty = client.get(
        f"/report/sent_emails/{org.id}/",
        params={"date_start": "2026-03-21", "date_end": "2026-03-22"},
    ).json()["sent_email_stats"]
    assert len(empty) == 1 and empty[0]["total"] == 0 and empty[0]["percentage_opened"] == 0


# ---------------------------------------------------------------- Explorer


def custom(client: httpx.Client, org: Org, offset: float = 0, **params: str) -> httpx.Response:
    return client.get(
        f"/report/custom/{org.id}/", params=params, headers={"X-TZ-Offset": str(offset)}
    )


def test_custom_fields(client: httpx.Client) -> None:
    fields = client.get("/report/custom/fields/").json()["fields"]
    names = {f["name"] for f in fields}
    assert {"lead.date_created", "call.duration", "opportunity.value", "email.count"} <= names
    assert all(set(f) == {"name", "label", "type", "object_type"} for f in fields)


def test_custom_report_daily_calls(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection
) -> None:
    response = custom(
        client,
        org,
        -5,
        x="call.date_created",
        y="call.duration",
        start="2026-03-01",
        end="2026-03-08",
    )
    assert response.status_code == 200, response.text
    payload = response.json()
    assert set(payload) == {
        "x",
        "y",
        "interval",
        "transform_y",
        "group_by",
        "start",
        "end",
        "series",
    }
    assert payload["interval"] == "day"
    [series] = payload["series"]
    assert series["key"] == "_all"
    assert [p["x"] for p in series["data"]] == [f"2026-03-0{i}" for i in range(1, 8)]
    for point in series["data"]:
        day = date.fromisoformat(point["x"])
        lo = local_midnight(day, -5)
        want = duck.execute(
            f"select coalesce(sum(duration), 0) from {S}.calls "
            "where created_at >= ? and created_at < ?",
            [utc(lo), utc(lo + 86_400)],
        ).fetchall()[0][0]
        assert point["y"] == want
    count = duck.execute(
        f"select count(*) from {S}.calls where created_at >= ? and created_at < ?",
        [utc(local_midnight(date(2026, 3, 1), -5)), utc(local_midnight(date(2026, 3, 8), -5))],
    ).fetchall()[0][0]
    assert series["count"] == count


def test_custom_report_grouping_adds_up(client: httpx.Client, org: Org) -> None:
    base = {
        "x": "opportunity.date_created",
        "y": "opportunity.value",
        "start": "2026-01-19",
        "end": "2026-03-16",
        "interval": "week",
    }
    total = custom(client, org, **base).json()["series"][0]
    for group_by in (
        "user",
        "opportunity.status_type",
        "opportunity.pipeline",
        "opportunity.value_period",
    ):
        grouped = custom(client, org, **base, group_by=group_by).json()
        assert grouped["group_by"] == group_by
        assert sum(s["count"] for s in grouped["series"]) == total["count"]
        for i, point in enumerate(total["data"]):
            assert sum(s["data"][i]["y"] for s in grouped["series"]) == point["y"]
    weeks = [date.fromisoformat(p["x"]) for p in total["data"]]
    assert all(d.weekday() == 0 for d in weeks)


def test_custom_report_transforms_and_histograms(client: httpx.Client, org: Org) -> None:
    base = {
        "x": "call.date_created",
        "y": "call.duration",
        "start": "2026-03-01",
        "end": "2026-03-03",
    }
    sums = custom(client, org, **base).json()["series"][0]["data"]
    maxes = custom(client, org, **base, transform_y="max").json()["series"][0]["data"]
    avgs = custom(client, org, **base, transform_y="avg").json()["series"][0]["data"]
    for s, m, a in zip(sums, maxes, avgs, strict=True):
        assert m["y"] is None or m["y"] <= s["y"]
        assert a["y"] is None or a["y"] <= m["y"]
    counts = custom(
        client, org, x="call.date_created", y="call.count", start="2026-03-01", end="2026-03-03"
    ).json()
    leads = custom(
        client, org, x="call.date_created", y="lead.count", start="2026-03-01", end="2026-03-03"
    ).json()
    for c, lead in zip(counts["series"][0]["data"], leads["series"][0]["data"], strict=True):
        assert 0 < lead["y"] <= c["y"]
    histogram = custom(
        client, org, x="call.duration", y="call.count", interval="60", start="0", end="600"
    ).json()
    xs = [p["x"] for p in histogram["series"][0]["data"]]
    assert xs == list(range(0, 600, 60))
    assert sum(p["y"] for p in histogram["series"][0]["data"]) == histogram["series"][0]["count"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"x": "lead.shoe_size"}, "x"),
        ({"x": "call.date_created", "y": "call.direction"}, "y"),
        ({"x": "call.date_created", "y": "opportunity.value"}, "y"),
        ({"x": "call.date_created", "y": "call.count", "transform_y": "median"}, "transform_y"),
        ({"x": "call.date_created", "y": "call.count", "group_by": "lead.status"}, "group_by"),
        ({"x": "call.date_created", "y": "call.count", "interval": "fortnight"}, "interval"),
        ({"x": "call.date_created", "y": "call.count", "query": "duration > 5"}, "query"),
        ({"x": "call.date_created", "y": "call.count", "start": "not a date"}, "start"),
    ],
)
def test_custom_report_errors(client: httpx.Client, org: Org, params: dict, field: str) -> None:
    response = custom(client, org, **params)
    assert response.status_code == 400, response.text
    assert field in response.json()["field-errors"]


def test_custom_report_query_subset(client: httpx.Client, org: Org) -> None:
    base = {
        "x": "email.date_created",
        "y": "email.count",
        "start": "2026-03-01",
        "end": "2026-03-08",
    }
    total = custom(client, org, **base).json()["series"][0]["count"]
    incoming = custom(client, org, **base, query="direction:incoming").json()["series"][0]["count"]
    outgoing = custom(client, org, **base, query='direction:"outgoing"').json()["series"][0][
        "count"
    ]
    assert incoming + outgoing == total and incoming and outgoing
    search = org.saved_searches[0]
    filtered = custom(client, org, **base, query=f'in:"{search.id}"').json()["series"][0]["count"]
    assert 0 < filtered < total


def test_custom_report_defaults(client: httpx.Client, org: Org) -> None:
    payload = custom(client, org).json()
    assert (payload["x"], payload["y"], payload["interval"]) == (
        "lead.date_created",
        "lead.count",
        "week",
    )
    [series] = payload["series"]
    assert series["count"] == len(org.leads)
    assert sum(p["y"] for p in series["data"]) == len(org.leads)
