"""Explorer with Close's own documented examples, lead custom fields, field errors, exact
ISO instants across DST and week buckets — brute force over the exported event log."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import httpx
import pytest

from close_reports.simulator import CloseSimulator, Org, events_to_duckdb, generate_org

from .expected import S, utc

CUSTOM = {
    "lead.custom.MRR": "number",
    "lead.custom.Seats": "number",
    "lead.custom.Plan": "choice",
    "lead.custom.Renewal Date": "date",
}


def custom(client: httpx.Client, org: Org, offset: float = 0, **params: str) -> httpx.Response:
    return client.get(
        f"/report/custom/{org.id}/", params=params, headers={"X-TZ-Offset": str(offset)}
    )


def instant(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def test_fields_list_custom_fields_beside_the_builtins(client: httpx.Client) -> None:
    fields = {f["name"]: f for f in client.get("/report/custom/fields/").json()["fields"]}
    for name, kind in CUSTOM.items():
        assert fields[name]["type"] == kind and fields[name]["object_type"] == "lead"
    for documented in ("lead.count", "call.duration", "opportunity.value"):
        assert fields[documented]["type"] == "number"
    assert fields["opportunity.date_created"]["type"] == "date"


@pytest.mark.parametrize(
    "params",
    [
        {"x": "lead.custom.MRR"},  # Close's doc: x "lead.custom.MRR", y defaults to lead.count
        {"x": "opportunity.date_created", "y": "opportunity.value"},
        {"x": "call.date_created", "y": "call.duration"},
        {"x": "lead.date_created", "y": "lead.count"},
        {"x": "lead.date_created", "y": "lead.custom.MRR", "transform_y": "avg"},
        {"x": "lead.custom.Renewal Date", "start": "2026-01-01", "end": "2027-06-01"},
    ],
)
def test_closes_documented_examples_answer(client: httpx.Client, org: Org, params: dict) -> None:
    response = custom(client, org, **params)
    assert response.status_code == 200, response.text
    assert response.json()["series"]


def test_mrr_histogram_and_sum_equal_the_log(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection
) -> None:
    histogram = custom(client, org, x="lead.custom.MRR", interval="1000").json()
    [series] = histogram["series"]
    want = dict(
        duck.execute(
            f"select (custom_mrr // 1000) * 1000, count(*) from {S}.leads "
            "where custom_mrr is not null group by 1"
        ).fetchall()
    )
    got = {p["x"]: p["y"] for p in series["data"] if p["y"]}
    assert got == want
    assert series["count"] == sum(want.values()) < len(org.leads)  # empty MRR left out
    sums = custom(
        client, org, x="lead.date_created", y="lead.custom.MRR", interval="month",
        start="2026-01-01", end="2026-04-01",
    ).json()["series"][0]  # fmt: skip
    by_month = dict(
        duck.execute(
            f"select strftime(date_trunc('month', created_at), '%Y-%m-%d'), "
            f"coalesce(sum(custom_mrr), 0) from {S}.leads group by 1"
        ).fetchall()
    )
    assert {p["x"]: p["y"] for p in sums["data"]} == by_month


def test_group_by_plan_and_renewal_dates(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection
) -> None:
    grouped = custom(client, org, x="lead.date_created", group_by="lead.custom.Plan").json()
    want = dict(
        duck.execute(
            f"select coalesce(custom_plan, '_none'), count(*) from {S}.leads group by 1"
        ).fetchall()
    )
    assert {s["key"]: s["count"] for s in grouped["series"]} == want
    renewals = custom(
        client, org, -5, x="lead.custom.Renewal Date", interval="month",
        start="2026-01-01", end="2027-06-01",
    ).json()["series"][0]  # fmt: skip
    months = dict(
        duck.execute(
            f"select strftime(date_trunc('month', custom_renewal_date), '%Y-%m-%d'), count(*) "
            f"from {S}.leads where custom_renewal_date >= '2026-01-01' "
            "and custom_renewal_date < '2027-06-01' group by 1"
        ).fetchall()
    )
    assert {p["x"]: p["y"] for p in renewals["data"] if p["y"]} == months


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"x": "lead.custom.Nope"}, "x"),
        ({"x": "lead.date_created", "y": "lead.custom.Plan"}, "y"),
        ({"x": "lead.date_created", "group_by": "lead.custom.Nope"}, "group_by"),
        ({"x": "call.date_created", "group_by": "lead.custom.Plan"}, "group_by"),
    ],
)
def test_unknown_fields_are_closes_400(
    client: httpx.Client, org: Org, params: dict, field: str
) -> None:
    response = custom(client, org, **params)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"errors", "field-errors"}
    assert field in body["field-errors"]
    assert any(message.startswith(f"{field}: ") for message in body["errors"])


def test_exact_instants_across_the_march_dst_change(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection
) -> None:
    """New York local midnights sent as exact instants (-05:00 before, -04:00 after the
    change on 2026-03-08) are honoured exactly, whatever X-TZ-Offset says."""
    start, end = "2026-03-01T00:00:00-05:00", "2026-03-15T00:00:00-04:00"
    payload = custom(
        client, org, -5, x="call.date_created", y="call.count", start=start, end=end,
        interval="day",
    ).json()  # fmt: skip
    assert instant(payload["start"]) == instant(start)
    assert instant(payload["end"]) == instant(end)
    exact = duck.execute(
        f"select count(*) from {S}.calls where created_at >= ? and created_at < ?",
        [utc(instant(start)), utc(instant(end))],
    ).fetchall()[0][0]
    [series] = payload["series"]
    assert series["count"] == exact == sum(p["y"] for p in series["data"])
    assert [p["x"] for p in series["data"]] == [f"2026-03-{d:02d}" for d in range(1, 15)]


def test_fall_back_window_in_a_fixed_offset_has_one_short_extra_bucket() -> None:
    """November 1 to 15 in New York is 14 days and 1 hour. Day buckets follow the fixed
    X-TZ-Offset (-4 here), so the window's last hour (local 23:00-24:00 of Nov 14 after the
    change) lands in a one-hour bucket labelled 2026-11-15 — documented behaviour a loader
    must expect when it sends exact local midnights with one offset."""
    org = generate_org(7, "small", date(2026, 11, 20))
    con = duckdb.connect()
    events_to_duckdb(org, con)
    start, end = "2026-11-01T00:00:00-04:00", "2026-11-15T00:00:00-05:00"
    with CloseSimulator(org).client() as client:
        payload = custom(
            client, org, -4, x="call.date_created", y="call.count", start=start, end=end,
            interval="day",
        ).json()  # fmt: skip
    data = payload["series"][0]["data"]
    assert [p["x"] for p in data][-2:] == ["2026-11-14", "2026-11-15"]
    assert len(data) == 15
    last_hour = con.execute(
        f"select count(*) from {S}.calls where created_at >= ? and created_at < ?",
        [utc(instant(end) - 3600), utc(instant(end))],
    ).fetchall()[0][0]
    assert data[-1]["y"] == last_hour
    exact = con.execute(
        f"select count(*) from {S}.calls where created_at >= ? and created_at < ?",
        [utc(instant(start)), utc(instant(end))],
    ).fetchall()[0][0]
    assert sum(p["y"] for p in data) == exact
    con.close()


def test_week_buckets_are_mondays_clipped_to_the_window(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection
) -> None:
    start, end = "2026-02-01T00:00:00-05:00", "2026-03-01T00:00:00-05:00"
    payload = custom(
        client, org, -5, x="lead.date_created", interval="week", start=start, end=end
    ).json()
    data = payload["series"][0]["data"]
    labels = [date.fromisoformat(p["x"]) for p in data]
    assert all(d.weekday() == 0 for d in labels)
    assert labels[0] == date(2026, 1, 26)  # the week holding Feb 1 (a Sunday) starts before it
    assert labels[-1] == date(2026, 2, 23)
    edges = [instant(start)] + [
        int(datetime(d.year, d.month, d.day, 5, tzinfo=UTC).timestamp()) for d in labels[1:]
    ] + [instant(end)]  # fmt: skip
    for point, lo, hi in zip(data, edges, edges[1:], strict=False):
        want = duck.execute(
            f"select count(*) from {S}.leads where created_at >= ? and created_at < ?",
            [utc(lo), utc(hi)],
        ).fetchall()[0][0]
        assert point["y"] == want, point["x"]
