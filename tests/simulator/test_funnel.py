"""POST /report/funnel/opportunity/{totals,stages}/: shapes, invariants, brute force."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import duckdb
import httpx
import pytest

from close_reports.simulator import Org

from .expected import S, local_midnight, utc

TOTAL_KEYS = {
    "count",
    "count_total_complete",
    "count_total_won",
    "count_win_rate",
    "value_total_complete",
    "value_total_won",
    "value_win_rate",
    "average_time_to_win",
    "average_value_annualized_per_won_opportunity",
    "sales_velocity",
}
STAGE_KEYS = {
    "status",
    "count",
    "count_conversion_rate",
    "count_lost",
    "count_lost_ratio",
    "value",
    "value_conversion_rate",
    "value_lost",
    "value_lost_ratio",
    "weighted_value",
    "weighted_value_conversion_rate",
    "average_time_to_advance",
}
ADDITIVE_TOTALS = [
    "count",
    "count_total_complete",
    "count_total_won",
    "value_total_complete",
    "value_total_won",
]
ADDITIVE_STAGE = ["count", "count_lost", "value", "value_lost"]


def funnel(client: httpx.Client, which: str, body: dict, offset: float = 0) -> dict:
    response = client.post(
        f"/report/funnel/opportunity/{which}/", json=body, headers={"X-TZ-Offset": str(offset)}
    )
    assert response.status_code == 200, response.text
    return response.json()


def bodies(org: Org) -> list[dict]:
    result = []
    for pipeline in org.pipelines:
        result.append(
            {
                "pipeline": pipeline.id,
                "type": "created-cohort",
                "cohort_datetime_range": {"start": "2026-01-20", "end": "2026-03-01"},
            }
        )
        result.append(
            {
                "pipeline": pipeline.id,
                "type": "created-cohort",
                "cohort_datetime_range": {"start": "2026-02-01", "end": "2026-03-01"},
                "report_datetime_range": {"start": "2026-02-01", "end": "2026-03-01"},
            }
        )
        result.append(
            {
                "pipeline": pipeline.id,
                "type": "active-stage-cohort",
                "report_datetime_range": {"start": "2026-03-01", "end": "2026-03-15"},
            }
        )
    return result


def test_shapes_and_invariants(client: httpx.Client, org: Org) -> None:
    pipelines = {p["id"]: p for p in client.get("/pipeline/").json()["data"]}
    for body in bodies(org):
        totals = funnel(client, "totals", body)
        assert set(totals) == {"aggregations", "data"}
        agg = totals["aggregations"]
        assert set(agg) == TOTAL_KEYS
        assert agg["count"] > 0
        assert agg["count_total_won"] <= agg["count_total_complete"] <= agg["count"]
        for row in totals["data"]:
            assert set(row) == TOTAL_KEYS | {"user_id"}
            assert row["count_total_won"] <= row["count_total_complete"] <= row["count"]
        for key in ADDITIVE_TOTALS:
            assert agg[key] == sum(row[key] for row in totals["data"]), key
        rate = agg["count_win_rate"]
        if agg["count_total_complete"]:
            assert rate == pytest.approx(
                agg["count_total_won"] / agg["count_total_complete"], abs=1e-6
            )
        else:
            assert rate is None

        stages = funnel(client, "stages", body)
        assert set(stages) == {"aggregations", "data"}
        expected_order = [
            s["id"] for s in pipelines[body["pipeline"]]["statuses"] if s["type"] != "lost"
        ]
        agg_stages = stages["aggregations"]["stages"]
        assert [s["status"]["id"] for s in agg_stages] == expected_order
        assert [s["status"]["type"] for s in agg_stages][-1] == "won"
        assert agg_stages[0]["count"] == agg["count"]
        assert agg_stages[-1]["count"] == agg["count_total_won"]
        counts = [s["count"] for s in agg_stages]
        assert counts == sorted(counts, reverse=True)
        assert all(c <= agg["count"] for c in counts)
        for stage in agg_stages:
            assert set(stage) == STAGE_KEYS
            assert stage["count_lost"] <= stage["count"]
            assert stage["value_lost"] <= stage["value"]
        for i, stage in enumerate(agg_stages):
            for key in ADDITIVE_STAGE:
                assert stage[key] == sum(u["stages"][i][key] for u in stages["data"]), key
        assert [u["user_id"] for u in stages["data"]] == [u["user_id"] for u in totals["data"]]
        lost = sum(s["count_lost"] for s in agg_stages)
        assert lost == agg["count_total_complete"] - agg["count_total_won"]


def paths(duck: duckdb.DuckDBPyConnection, pipeline_id: str) -> dict[str, dict]:
    opps: dict[str, dict] = {}
    for oid, user, created, status, value in duck.execute(
        f"select id, user_id, created_at, original_status_id, annualized_value "
        f"from {S}.opportunities where pipeline_id = ?",
        [pipeline_id],
    ).fetchall():
        opps[oid] = {"user": user, "created": created, "value": value, "path": [(created, status)]}
    for oid, at, new in duck.execute(
        f"select opportunity_id, changed_at, new_status_id from {S}.opportunity_status_changes "
        "order by changed_at",
    ).fetchall():
        if oid in opps:
            opps[oid]["path"].append((at, new))
    return opps


def status_types(duck: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(duck.execute(f"select id, type from {S}.opportunity_statuses").fetchall())


def test_created_cohort_matches_the_event_log(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection
) -> None:
    """A created cohort is evaluated as of now (our choice, after issue 11): every status
    change before now counts, whatever the report range."""
    types = status_types(duck)
    pipeline = org.pipelines[0]
    start, end = local_midnight(date(2026, 2, 1), -5), local_midnight(date(2026, 3, 1), -5)
    until = org.history_end  # the default now: the end of the history
    body = {
        "pipeline": pipeline.id,
        "type": "created-cohort",
        "cohort_datetime_range": {"start": "2026-02-01", "end": "2026-03-01"},
        "report_datetime_range": {"start": "2026-02-01", "end": "2026-03-10"},
    }
    agg = funnel(client, "totals", body, -5)["aggregations"]
    per_user: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for opp in paths(duck, pipeline.id).values():
        if not utc(start) <= opp["created"] < utc(end):
            continue
        final = [s for at, s in opp["path"] if at < utc(until)][-1]
        row = per_user[opp["user"]]
        row[0] += 1
        row[1] += types[final] != "active"
        row[2] += types[final] == "won"
        row[3] += opp["value"] if types[final] == "won" else 0
    assert agg["count"] == sum(r[0] for r in per_user.values())
    assert agg["count_total_complete"] == sum(r[1] for r in per_user.values())
    assert agg["count_total_won"] == sum(r[2] for r in per_user.values())
    assert agg["value_total_won"] == sum(r[3] for r in per_user.values())
    data = funnel(client, "totals", body, -5)["data"]
    assert {r["user_id"]: r["count"] for r in data} == {u: r[0] for u, r in per_user.items()}
    for report_range in (None, {"start": "2026-02-01", "end": "2026-03-01"}):
        other = {k: v for k, v in body.items() if k != "report_datetime_range"}
        if report_range is not None:
            other["report_datetime_range"] = report_range
        assert funnel(client, "totals", other, -5)["aggregations"] == agg


def test_active_stage_cohort_matches_the_event_log(
    client: httpx.Client, org: Org, duck: duckdb.DuckDBPyConnection
) -> None:
    types = status_types(duck)
    pipeline = org.pipelines[0]
    lo, hi = utc(local_midnight(date(2026, 3, 1), 0)), utc(local_midnight(date(2026, 3, 15), 0))
    expected = 0
    won = 0
    for opp in paths(duck, pipeline.id).values():
        before = [s for at, s in opp["path"] if at < lo]
        during = [s for at, s in opp["path"] if lo <= at < hi]
        if (before and types[before[-1]] == "active") or any(types[s] == "active" for s in during):
            expected += 1
            final = [s for at, s in opp["path"] if at < hi][-1]
            won += types[final] == "won"
    body = {
        "pipeline": pipeline.id,
        "type": "active-stage-cohort",
        "report_datetime_range": {"start": "2026-03-01", "end": "2026-03-15"},
    }
    agg = funnel(client, "totals", body)["aggregations"]
    assert agg["count"] == expected
    assert agg["count_total_won"] == won


def test_empty_cohort_has_null_ratios(client: httpx.Client, org: Org) -> None:
    body = {
        "pipeline": org.pipelines[0].id,
        "type": "created-cohort",
        "cohort_relative_range": "today",
    }
    totals = funnel(client, "totals", body)
    assert totals["data"] == []
    agg = totals["aggregations"]
    assert agg["count"] == 0
    assert agg["count_win_rate"] is None and agg["value_win_rate"] is None
    assert agg["average_time_to_win"] is None
    assert agg["average_value_annualized_per_won_opportunity"] == 0
    assert agg["sales_velocity"] == 0
    for stage in funnel(client, "stages", body)["aggregations"]["stages"]:
        assert stage["count"] == 0
        assert stage["count_conversion_rate"] is None
        assert stage["count_lost_ratio"] is None
        assert stage["average_time_to_advance"] is None


def test_group_ids_expand_to_members(client: httpx.Client, org: Org) -> None:
    group = next(g for g in org.groups if len(g.member_ids) >= 2)
    base = {
        "pipeline": org.pipelines[0].id,
        "type": "created-cohort",
        "cohort_datetime_range": {"start": "2026-01-20", "end": "2026-03-20"},
    }
    by_group = funnel(client, "totals", {**base, "users": [group.id]})
    by_users = funnel(client, "totals", {**base, "users": list(group.member_ids)})
    assert by_group == by_users
    assert {r["user_id"] for r in by_group["data"]} <= set(group.member_ids)
    everyone = funnel(client, "totals", base)
    assert by_group["aggregations"]["count"] <= everyone["aggregations"]["count"]


def test_saved_search_restricts_the_cohort(client: httpx.Client, org: Org) -> None:
    search = org.saved_searches[0]
    base = {
        "pipeline": org.pipelines[0].id,
        "type": "created-cohort",
        "cohort_datetime_range": {"start": "2026-01-20", "end": "2026-03-20"},
    }
    filtered = funnel(
        client, "stages", {**base, "query": {"type": "saved_search", "saved_search_id": search.id}}
    )
    everyone = funnel(client, "stages", base)
    assert (
        0
        < filtered["aggregations"]["stages"][0]["count"]
        < everyone["aggregations"]["stages"][0]["count"]
    )


def test_compared_range_returns_the_compared_report(client: httpx.Client, org: Org) -> None:
    pipeline = org.pipelines[0].id
    compared = funnel(
        client,
        "totals",
        {
            "pipeline": pipeline,
            "type": "active-stage-cohort",
            "report_datetime_range": {"start": "2026-03-09", "end": "2026-03-16"},
            "compared_datetime_range": "same-days-last-week",
        },
    )
    direct = funnel(
        client,
        "totals",
        {
            "pipeline": pipeline,
            "type": "active-stage-cohort",
            "report_datetime_range": {"start": "2026-03-02", "end": "2026-03-09"},
        },
    )
    assert compared == direct
    relative = funnel(
        client,
        "totals",
        {
            "pipeline": pipeline,
            "type": "created-cohort",
            "cohort_relative_range": "this-month",
            "compared_relative_range": "last-month",
        },
    )
    last_month = funnel(
        client,
        "totals",
        {"pipeline": pipeline, "type": "created-cohort", "cohort_relative_range": "last-month"},
    )
    assert relative == last_month


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "pipeline": "pipe_nope",
                "type": "created-cohort",
                "cohort_relative_range": "last-month",
            },
            "pipeline",
        ),
        ({"type": "created-cohort", "cohort_relative_range": "last-month"}, "pipeline"),
        ({"pipeline": "{p}", "cohort_relative_range": "last-month"}, "type"),
        (
            {"pipeline": "{p}", "type": "biggest-cohort", "cohort_relative_range": "last-month"},
            "type",
        ),
        ({"pipeline": "{p}", "type": "created-cohort"}, "cohort_datetime_range"),
        ({"pipeline": "{p}", "type": "active-stage-cohort"}, "report_datetime_range"),
        (
            {
                "pipeline": "{p}",
                "type": "active-stage-cohort",
                "report_relative_range": "last-month",
                "report_datetime_range": {"start": "2026-03-01", "end": "2026-03-02"},
            },
            "report_relative_range",
        ),
        (
            {
                "pipeline": "{p}",
                "type": "active-stage-cohort",
                "report_relative_range": "last-month",
                "users": ["group_x"],
            },
            "users",
        ),
        (
            {
                "pipeline": "{p}",
                "type": "active-stage-cohort",
                "report_relative_range": "last-month",
                "compared_datetime_range": "same-days-last-week",
            },
            "compared_datetime_range",
        ),
    ],
)
def test_funnel_errors(client: httpx.Client, org: Org, body: dict, field: str) -> None:
    if body.get("pipeline") == "{p}":
        body = {**body, "pipeline": org.pipelines[0].id}
    for which in ("totals", "stages"):
        response = client.post(f"/report/funnel/opportunity/{which}/", json=body)
        assert response.status_code == 400, response.text
        assert field in response.json()["field-errors"]
