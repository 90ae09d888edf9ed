"""POST /report/activity/ and GET /report/activity/metrics/ against the exported event log."""

from __future__ import annotations

import re
from datetime import date, timedelta

import duckdb
import httpx
import pytest

from close_reports.simulator import Org
from close_reports.simulator.metrics import METRIC_BY_KEY, METRICS

from .conftest import ANCHOR
from .expected import S, expected_metric, local_midnight, metric_sql, utc

DOCUMENTED = {
    "calls.all.all.count": "All Calls - All Types",
    "calls.all.all.sum_duration": "All Calls - Total Duration",
    "calls.all.all.avg_duration": "All Calls - Average Duration",
    "calls.inbound.all.count": "Inbound Calls - All Types",
    "calls.inbound.all.sum_duration": "Inbound Calls - Total Duration",
    "calls.inbound.all.avg_duration": "Inbound Calls - Average Duration",
    "calls.outbound.all.count": "Outbound Calls - All Types",
    "calls.outbound.all.sum_duration": "Outbound Calls - Total Duration",
    "calls.outbound.all.avg_duration": "Outbound Calls - Average Duration",
    "calls.outbound.regular.count": "Outbound Calls - Regular",
    "calls.outbound.regular.sum_duration": "Outbound Calls - Regular Total Duration",
    "calls.outbound.regular.avg_duration": "Outbound Calls - Regular Average Duration",
    "calls.outbound.external.count": "Outbound Calls - External",
    "calls.outbound.external.sum_duration": "Outbound Calls - External Total Duration",
    "calls.outbound.external.avg_duration": "Outbound Calls - External Average Duration",
    "calls.outbound.power_dialer.count": "Outbound Calls - Power Dialer",
    "calls.outbound.power_dialer.sum_duration": "Outbound Calls - Power Dialer Total Duration",
    "calls.outbound.power_dialer.avg_duration": "Outbound Calls - Power Dialer Average Duration",
    "calls.outbound.predictive_dialer.count": "Outbound Calls - Predictive Dialer",
    "calls.outbound.predictive_dialer.sum_duration": (
        "Outbound Calls - Predictive Dialer Total Duration"
    ),
    "calls.outbound.predictive_dialer.avg_duration": (
        "Outbound Calls - Predictive Dialer Average Duration"
    ),
    "emails.sent.all.count": "Sent Emails - All Types",
    "emails.sent.sequences.count": "Sent Emails - Sequences",
    "emails.sent.sequences_with_reply.count": "Sent Emails - Sequences with Reply",
    "emails.sent.sequences_without_reply.count": "Sent Emails - Sequences without Reply",
    "emails.received.all.count": "Received Emails - All Types",
    "emails.opened.all.count": "Opened Emails - All Types",
    "emails.opened.sequences.count": "Opened Emails - Sequences",
    "sms.sent.all.count": "Sent SMS - All Types",
    "sms.received.all.count": "Received SMS - All Types",
    "leads.created.all.count": "Created Leads",
    "leads.contacted.all.count": "Contacted Leads",
    "opportunities.created.all.count": "Opportunities - Created",
    "opportunities.created_for.all.count": "Opportunities - Created For",
    "opportunities.won.all.count": "Opportunities - Won",
    "opportunities.won.all.sum_annualized_value": "Opportunities - Won - Annualized",
    "opportunities.lost.all.count": "Opportunities - Lost",
    "opportunities.lost.all.sum_annualized_value": "Opportunities - Lost - Annualized",
    "opportunities.value_won.one_time.count": "Opportunities - Won - One Time",
    "opportunities.value_won.one_time.sum_value": "Opportunities - Value Won - One Time",
    "opportunities.value_won.monthly.count": "Opportunities - Won - Monthly",
    "opportunities.value_won.monthly.sum_value": "Opportunities - Value Won - Monthly",
    "opportunities.value_won.annual.count": "Opportunities - Won - Annual",
    "opportunities.value_won.annual.sum_value": "Opportunities - Value Won - Annual",
    "opportunities.value_lost.one_time.count": "Opportunities - Lost - One Time",
    "opportunities.value_lost.one_time.sum_value": "Opportunities - Value Lost - One Time",
    "opportunities.value_lost.monthly.count": "Opportunities - Lost - Monthly",
    "opportunities.value_lost.monthly.sum_value": "Opportunities - Value Lost - Monthly",
    "opportunities.value_lost.annual.count": "Opportunities - Lost - Annual",
    "opportunities.value_lost.annual.sum_value": "Opportunities - Value Lost - Annual",
}
ALL_KEYS = [m.key for m in METRICS]
ADDITIVE = [m.key for m in METRICS if m.additive]


def post(client: httpx.Client, body: dict, offset: float | None = None) -> httpx.Response:
    headers = {} if offset is None else {"X-TZ-Offset": str(offset)}
    return client.post("/report/activity/", json=body, headers=headers)


def report(client: httpx.Client, body: dict, offset: float | None = None) -> dict:
    response = post(client, body, offset)
    assert response.status_code == 200, response.text
    return response.json()


def day_range(day: date, offset: float) -> dict[str, str]:
    sign = "-" if offset < 0 else "+"
    minutes = int(round(abs(offset) * 60))
    suffix = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    nxt = day + timedelta(days=1)
    return {"start": f"{day}T00:00:00{suffix}", "end": f"{nxt}T00:00:00{suffix}"}


def test_metric_catalog_has_every_documented_key(client: httpx.Client) -> None:
    response = client.get("/report/activity/metrics/")
    assert response.status_code == 200
    metrics = response.json()["metrics"]
    by_key = {m["key"]: m for m in metrics}
    assert len(by_key) == len(metrics) >= 52
    for key, name in DOCUMENTED.items():
        assert by_key[key]["name"] == name
        assert by_key[key]["description"]
    assert "emails.sent.manual_with_reply.count" in by_key
    assert "emails.sent.bulk_with_reply.count" in by_key
    assert all(set(m) == {"key", "name", "description"} for m in metrics)


@pytest.mark.parametrize(("day", "offset"), [(date(2026, 3, 3), 0), (date(2026, 3, 12), -5)])
def test_every_metric_equals_the_events_it_names(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection, day: date, offset: float
) -> None:
    body = {"type": "comparison", "metrics": ALL_KEYS, "datetime_range": day_range(day, offset)}
    result = report(client, body, offset)
    start = local_midnight(day, offset)
    end = start + 86_400
    for key in ALL_KEYS:
        assert result["aggregations"]["totals"][key] == expected_metric(duck, key, start, end), key
    rows = {row["user_id"]: row for row in result["data"]}
    for user in org.users:
        if user.id not in rows:
            continue
        for key in ALL_KEYS:
            want = expected_metric(duck, key, start, end, user_id=user.id)
            assert rows[user.id][key] == want, (user.id, key)
    contacted = sum(row["leads.contacted.all.count"] for row in result["data"])
    assert contacted == expected_metric(duck, "leads.contacted.all.count", start, end)


def test_most_metrics_are_not_trivial(client: httpx.Client) -> None:
    body = {
        "type": "overview",
        "metrics": ALL_KEYS,
        "datetime_range": {"start": "2026-02-01", "end": "2026-03-15"},
    }
    totals = report(client, body)["aggregations"]["totals"]
    assert all(totals[k] for k in ALL_KEYS), [k for k in ALL_KEYS if not totals[k]]


@pytest.mark.parametrize(
    ("start", "end", "offset"),
    [
        ("2026-03-02", "2026-03-09", -5),
        ("2026-02-01", "2026-03-04", 0),
        ("2026-03-10", "2026-03-11", 5.5),
    ],
)
def test_overview_totals_equal_buckets_and_comparison(
    client: httpx.Client, start: str, end: str, offset: float
) -> None:
    window = {"start": start, "end": end}
    overview = report(
        client, {"type": "overview", "metrics": ALL_KEYS, "datetime_range": window}, offset
    )
    comparison = report(
        client, {"type": "comparison", "metrics": ALL_KEYS, "datetime_range": window}, offset
    )
    days = (date.fromisoformat(end) - date.fromisoformat(start)).days
    assert len(overview["data"]) == days
    for key in ADDITIVE:
        total = overview["aggregations"]["totals"][key]
        assert total == sum(b[key] for b in overview["data"]), key
        assert total == sum(r[key] for r in comparison["data"]), key
        assert total == comparison["aggregations"]["totals"][key], key
    for key in ALL_KEYS:
        metric = METRIC_BY_KEY[key]
        if metric.kind == "avg":
            count_key = key.replace("avg_duration", "count")
            sum_key = key.replace("avg_duration", "sum_duration")
            totals = overview["aggregations"]["totals"]
            want = round(totals[sum_key] / totals[count_key], 3) if totals[count_key] else None
            assert totals[key] == want
    assert set(overview["queries"]["leads"]) == set(ALL_KEYS)
    assert all(isinstance(q, list) and q for q in overview["queries"]["leads"].values())


def test_overview_buckets_are_local_days(client: httpx.Client) -> None:
    body = {
        "type": "overview",
        "metrics": ["calls.all.all.count"],
        "datetime_range": {
            "start": "2026-03-02T00:00:00-02:30",
            "end": "2026-03-05T00:00:00-02:30",
        },
    }
    data = report(client, body, -2.5)["data"]
    assert [b["datetime"] for b in data] == [
        "2026-03-02T00:00:00-02:30",
        "2026-03-03T00:00:00-02:30",
        "2026-03-04T00:00:00-02:30",
    ]
    no_header = report(
        client,
        {
            "type": "overview",
            "metrics": ["calls.all.all.count"],
            "datetime_range": {"start": "2026-03-02T00:00:00Z", "end": "2026-03-04T00:00:00Z"},
        },
    )
    assert [b["datetime"] for b in no_header["data"]] == [
        "2026-03-02T00:00:00+00:00",
        "2026-03-03T00:00:00+00:00",
    ]


def test_avg_is_null_without_events(client: httpx.Client) -> None:
    keys = [k for k in ALL_KEYS if k.startswith("calls.")]
    for day in (date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 10)):  # a weekend and a weekday
        body = {"type": "comparison", "metrics": keys, "datetime_range": day_range(day, 0)}
        for row in report(client, body)["data"]:
            for key in keys:
                if not key.endswith(".avg_duration"):
                    continue
                count = row[key.replace("avg_duration", "count")]
                total = row[key.replace("avg_duration", "sum_duration")]
                assert row[key] == (round(total / count, 3) if count else None)


def test_comparison_rows_cover_active_users_and_anyone_with_activity(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection
) -> None:
    active = {u.id for u in org.users if u.is_active}
    inactive = {u.id for u in org.users if not u.is_active}
    assert len(inactive) == 2
    seen_inactive = False
    for day in (date(2026, 1, 22), date(2026, 1, 26), ANCHOR):
        start = local_midnight(day, 0)
        sources = " union ".join(
            f"select user_id from ({metric_sql(k)[0]}) where ts >= ? and ts < ?" for k in ALL_KEYS
        )
        busy = {
            r[0]
            for r in duck.execute(
                sources, [utc(start), utc(start + 86_400)] * len(ALL_KEYS)
            ).fetchall()
        }
        body = {
            "type": "comparison",
            "metrics": ["calls.all.all.count"],
            "datetime_range": day_range(day, 0),
        }
        result = report(client, body)
        ids = [row["user_id"] for row in result["data"]]
        assert len(ids) == len(set(ids))
        assert active <= set(ids)
        assert busy <= set(ids)
        assert set(ids) - active <= busy
        seen_inactive |= bool(set(ids) & inactive)
        names = {u.id: u.full_name for u in org.users}
        assert result["lookup"]["user"] == {i: {"display": names[i]} for i in ids}
    assert seen_inactive


def test_users_filter(client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection) -> None:
    chosen = [org.users[1].id, org.users[2].id]
    window = {"start": "2026-03-01", "end": "2026-03-08"}
    keys = ["calls.outbound.all.count", "emails.sent.all.count", "opportunities.won.all.count"]
    comparison = report(
        client, {"type": "comparison", "metrics": keys, "datetime_range": window, "users": chosen}
    )
    assert [r["user_id"] for r in comparison["data"]] == chosen
    overview = report(
        client, {"type": "overview", "metrics": keys, "datetime_range": window, "users": chosen}
    )
    start, end = local_midnight(date(2026, 3, 1), 0), local_midnight(date(2026, 3, 8), 0)
    for key in keys:
        want = sum(expected_metric(duck, key, start, end, user_id=u) for u in chosen)
        assert overview["aggregations"]["totals"][key] == want
        assert sum(r[key] for r in comparison["data"]) == want
    assert 'user in ("' in overview["queries"]["leads"][keys[0]][0]


def test_saved_search_query_filters_by_leads(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection
) -> None:
    search = next(s for s in org.saved_searches if s.field == "source")
    keys = [
        "calls.all.all.count",
        "calls.all.all.sum_duration",
        "emails.sent.all.count",
        "emails.opened.all.count",
        "leads.created.all.count",
        "opportunities.won.all.sum_annualized_value",
        "sms.received.all.count",
    ]
    window = {"start": "2026-02-10", "end": "2026-03-10"}
    body = {
        "type": "overview",
        "metrics": keys,
        "datetime_range": window,
        "query": {"type": "saved_search", "saved_search_id": search.id},
    }
    result = report(client, body)
    start, end = local_midnight(date(2026, 2, 10), 0), local_midnight(date(2026, 3, 10), 0)
    for key in keys:
        want = expected_metric(duck, key, start, end, lead_source=search.value)
        assert result["aggregations"]["totals"][key] == want, key
        unfiltered = expected_metric(duck, key, start, end)
        assert want <= unfiltered
    assert result["queries"]["leads"]["calls.all.all.count"][0].endswith(f'in:"{search.id}"')


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("yesterday", ANCHOR, ANCHOR),
        ("today", ANCHOR + timedelta(days=1), ANCHOR + timedelta(days=1)),
        ("last-week", date(2026, 3, 9), date(2026, 3, 15)),
        ("this-week", date(2026, 3, 16), date(2026, 3, 21)),
        ("last-month", date(2026, 2, 1), date(2026, 2, 28)),
        ("this-month", date(2026, 3, 1), date(2026, 3, 21)),
    ],
)
def test_relative_ranges(
    client: httpx.Client, duck: duckdb.DuckDBPyConnection, name: str, first: date, last: date
) -> None:
    body = {"type": "overview", "metrics": ["calls.all.all.count"], "relative_range": name}
    result = report(client, body, -5)
    labels = [b["datetime"][:10] for b in result["data"]]
    assert labels[0] == first.isoformat()
    assert labels[-1] == last.isoformat()
    start = local_midnight(first, -5)
    end = local_midnight(last + timedelta(days=1), -5)
    want = expected_metric(duck, "calls.all.all.count", start, end)
    assert result["aggregations"]["totals"]["calls.all.all.count"] == want


def test_all_time_and_long_windows_coarsen_buckets(
    client: httpx.Client, duck: duckdb.DuckDBPyConnection
) -> None:
    everything = duck.execute(f"select count(*) from {S}.calls").fetchall()[0][0]
    result = report(
        client,
        {"type": "overview", "metrics": ["calls.all.all.count"], "relative_range": "all-time"},
    )
    assert result["aggregations"]["totals"]["calls.all.all.count"] == everything
    assert sum(b["calls.all.all.count"] for b in result["data"]) == everything
    weekly = report(
        client,
        {
            "type": "overview",
            "metrics": ["calls.all.all.count"],
            "datetime_range": {"start": "2025-12-03", "end": "2026-03-18"},
        },
    )
    mondays = [date.fromisoformat(b["datetime"][:10]) for b in weekly["data"]]
    assert all(d.weekday() == 0 for d in mondays)
    assert mondays[0] == date(2025, 12, 1)
    assert all((b - a).days == 7 for a, b in zip(mondays, mondays[1:], strict=False))
    assert sum(b["calls.all.all.count"] for b in weekly["data"]) == everything - expected_metric(
        duck,
        "calls.all.all.count",
        local_midnight(date(2026, 3, 18), 0),
        local_midnight(date(2026, 3, 21), 0),
    )
    monthly = report(
        client,
        {
            "type": "overview",
            "metrics": ["calls.all.all.count"],
            "datetime_range": {"start": "2025-01-15", "end": "2026-04-01"},
        },
    )
    labels = [b["datetime"][:10] for b in monthly["data"]]
    assert labels[0] == "2025-01-01" and labels[-1] == "2026-03-01"
    assert all(label.endswith("-01") for label in labels)
    assert sum(b["calls.all.all.count"] for b in monthly["data"]) == everything


def test_timezone_shift_moves_events_between_days_across_dst(
    client: httpx.Client, duck: duckdb.DuckDBPyConnection
) -> None:
    """US Eastern: -5 before 2026-03-08, -4 after. Each local day requested with its own
    offset; the DST day itself spans 23 hours. Days tile the UTC range with no gap/overlap."""
    key = "emails.sent.all.count"
    days = [date(2026, 3, 5) + timedelta(days=i) for i in range(7)]
    total = 0
    for day in days:
        start_offset = -5 if day <= date(2026, 3, 8) else -4
        end_offset = -5 if day < date(2026, 3, 8) else -4
        start = local_midnight(day, start_offset)
        end = local_midnight(day + timedelta(days=1), end_offset)
        body = {
            "type": "overview",
            "metrics": [key],
            "datetime_range": {
                "start": f"{day}T00:00:00-0{-start_offset}:00",
                "end": f"{day + timedelta(days=1)}T00:00:00-0{-end_offset}:00",
            },
        }
        result = report(client, body, start_offset)
        assert len(result["data"]) == 1
        assert result["data"][0]["datetime"] == f"{day}T00:00:00-0{-start_offset}:00"
        want = expected_metric(duck, key, start, end)
        assert result["data"][0][key] == want
        total += want
        if day == date(2026, 3, 8):
            assert end - start == 23 * 3600
    first = local_midnight(days[0], -5)
    last = local_midnight(days[-1] + timedelta(days=1), -4)
    assert total == expected_metric(duck, key, first, last)


def test_offset_moves_the_early_morning_hour(
    client: httpx.Client, duck: duckdb.DuckDBPyConnection
) -> None:
    """The same local date under -4 and -5: the difference is exactly the events in
    [04:00, 05:00) UTC of that date minus those of the next date."""
    key = "calls.all.all.count"
    day = date(2026, 3, 12)
    values = {}
    for offset in (-4, -5):
        body = {"type": "overview", "metrics": [key], "datetime_range": day_range(day, offset)}
        values[offset] = report(client, body, offset)["data"][0][key]
    hour = 3600
    d0 = local_midnight(day, 0)
    early = expected_metric(duck, key, d0 + 4 * hour, d0 + 5 * hour)
    late = expected_metric(duck, key, d0 + 86_400 + 4 * hour, d0 + 86_400 + 5 * hour)
    assert values[-4] - values[-5] == early - late


@pytest.mark.parametrize(
    "start",
    ["2026-03-10T00:00:00Z", "2026-03-10T00:00:00+00:00", "2026-03-10T00:00:00.000Z", "2026-03-10"],
)
def test_datetime_forms(client: httpx.Client, start: str) -> None:
    body = {
        "type": "overview",
        "metrics": ["calls.all.all.count"],
        "datetime_range": {"start": start, "end": "2026-03-11T00:00:00Z"},
    }
    reference = {
        **body,
        "datetime_range": {"start": "2026-03-10T00:00:00Z", "end": "2026-03-11T00:00:00Z"},
    }
    assert report(client, body) == report(client, reference)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "overview", "relative_range": "yesterday"}, "metrics"),
        ({"type": "overview", "metrics": [], "relative_range": "yesterday"}, "metrics"),
        (
            {"type": "overview", "metrics": ["calls.nope.count"], "relative_range": "yesterday"},
            "metrics",
        ),
        ({"metrics": ["calls.all.all.count"], "relative_range": "yesterday"}, "type"),
        (
            {"type": "sideways", "metrics": ["calls.all.all.count"], "relative_range": "yesterday"},
            "type",
        ),
        ({"type": "overview", "metrics": ["calls.all.all.count"]}, "datetime_range"),
        (
            {
                "type": "overview",
                "metrics": ["calls.all.all.count"],
                "relative_range": "yesterday",
                "datetime_range": {"start": "2026-03-01", "end": "2026-03-02"},
            },
            "relative_range",
        ),
        (
            {"type": "overview", "metrics": ["calls.all.all.count"], "relative_range": "fortnight"},
            "relative_range",
        ),
        (
            {
                "type": "overview",
                "metrics": ["calls.all.all.count"],
                "datetime_range": {"start": "March 1st", "end": "2026-03-02"},
            },
            "datetime_range",
        ),
        (
            {
                "type": "overview",
                "metrics": ["calls.all.all.count"],
                "datetime_range": {"start": "2026-03-02", "end": "2026-03-01"},
            },
            "datetime_range",
        ),
        (
            {
                "type": "overview",
                "metrics": ["calls.all.all.count"],
                "relative_range": "yesterday",
                "users": ["user_unknown"],
            },
            "users",
        ),
        (
            {
                "type": "overview",
                "metrics": ["calls.all.all.count"],
                "relative_range": "yesterday",
                "query": {"type": "lead_query", "query": "*"},
            },
            "query",
        ),
    ],
)
def test_validation_errors(client: httpx.Client, body: dict, field: str) -> None:
    response = post(client, body)
    assert response.status_code == 400
    payload = response.json()
    assert set(payload) == {"errors", "field-errors"}
    assert field in payload["field-errors"]
    assert isinstance(payload["errors"], list)


def test_missing_metrics_message_is_closes(client: httpx.Client) -> None:
    payload = post(client, {"type": "overview", "relative_range": "yesterday"}).json()
    assert payload["field-errors"]["metrics"] == "This field is required."


def test_invalid_json_and_bad_offset(client: httpx.Client) -> None:
    response = client.post(
        "/report/activity/",
        content=b'{"type": "overview",',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "The request contains invalid JSON."}
    body = {"type": "overview", "metrics": ["calls.all.all.count"], "relative_range": "yesterday"}
    bad = client.post("/report/activity/", json=body, headers={"X-TZ-Offset": "east"})
    assert bad.status_code == 400
    assert re.search("X-TZ-Offset", bad.json()["errors"][0])


def test_unknown_smart_view_matches_no_lead(client: httpx.Client) -> None:
    body = {
        "type": "comparison",
        "metrics": ["calls.all.all.count", "calls.all.all.avg_duration"],
        "relative_range": "last-week",
        "query": {"type": "saved_search", "saved_search_id": "save_notInThisOrg"},
    }
    result = report(client, body)
    assert result["aggregations"]["totals"] == {
        "calls.all.all.count": 0,
        "calls.all.all.avg_duration": None,
    }
    assert result["data"] and all(r["calls.all.all.count"] == 0 for r in result["data"])
