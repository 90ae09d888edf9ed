"""Reshapers: Close's documented example responses in, contract rows out (no I/O, no mocks)."""

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any, Dict

import pytest

from close_reports.source import reshape
from close_reports.source.settings import TABLES
from close_reports.source.windows import Window

DOCS = Path(__file__).parent.parent / "fixtures" / "close_docs"
ORG = "orga_RbREgmiiwcr1w2b4cOnCMQaQPSIFxMqAD2Dh243uxcH"
WEEK = Window(date(2019, 1, 1), date(2019, 1, 8))
DAY = Window(date(2019, 1, 1), date(2019, 1, 2))


def doc(name: str) -> Dict[str, Any]:
    return json.loads((DOCS / f"{name}.json").read_text())


def assert_contract(table: str, rows: list, allow_extra: set = frozenset()) -> None:
    """Every row has the table's key columns non-null and only known (or allowed) columns."""
    columns, primary_key, _ = TABLES[table]
    for row in rows:
        for key in primary_key:
            assert row.get(key) is not None, (table, key, row)
        unknown = set(row) - set(columns) - set(allow_extra)
        assert not unknown, (table, unknown)


@pytest.mark.parametrize(
    "key, column",
    [
        ("calls.all.all.count", "calls_all_all_count"),
        ("emails.sent.sequences_with_reply.count", "emails_sent_sequences_with_reply_count"),
        (
            "opportunities.value_won.one_time.sum_value",
            "opportunities_value_won_one_time_sum_value",
        ),
    ],
)
def test_metric_column_name(key: str, column: str) -> None:
    assert reshape.metric_column_name(key) == column


def test_activity_metric_rows_keep_catalog_and_type_by_suffix() -> None:
    response = {
        "metrics": [
            {"key": "calls.outbound.all.count", "name": "Outbound Calls", "description": "d"},
            {"key": "calls.all.all.avg_duration", "name": "Avg", "description": "d"},
            {"key": "opportunities.won.all.sum_annualized_value", "name": "W", "description": "d"},
        ]
    }
    rows = reshape.activity_metric_rows(response, ORG)
    assert [(r["key"], r["column_name"], r["data_type"]) for r in rows] == [
        ("calls.outbound.all.count", "calls_outbound_all_count", "bigint"),
        ("calls.all.all.avg_duration", "calls_all_all_avg_duration", "double"),
        (
            "opportunities.won.all.sum_annualized_value",
            "opportunities_won_all_sum_annualized_value",
            "bigint",
        ),
    ]
    assert_contract("activity_metrics", rows)


def test_activity_overview_rows_from_docs_example() -> None:
    rows = reshape.activity_overview_rows(
        doc("activity_overview"), org_id=ORG, window=WEEK, timezone="UTC"
    )
    assert [r["date"] for r in rows] == [date(2019, 1, d) for d in range(1, 8)]
    assert rows[0] == {
        "org_id": ORG,
        "segment": "_all",
        "window_start": date(2019, 1, 1),
        "window_end": date(2019, 1, 2),
        "timezone": "UTC",
        "date": date(2019, 1, 1),
        "datetime": "2019-01-01T00:00:00+00:00",
        "calls_outbound_all_count": 0,
        "emails_sent_all_count": 0,
    }
    # the window's drill-down queries are not copied onto daily rows
    assert not any("quer" in column for column in rows[0])


def test_activity_overview_takes_the_local_date_of_each_bucket() -> None:
    response = {
        "data": [
            {"datetime": "2026-03-07T00:00:00-05:00", "calls.all.all.count": 1},
            {"datetime": "2026-03-08T00:00:00-05:00", "calls.all.all.count": 2},
        ]
    }
    window = Window(date(2026, 3, 7), date(2026, 3, 9))
    rows = reshape.activity_overview_rows(
        response, org_id=ORG, window=window, timezone="America/New_York"
    )
    assert [(r["date"], r["calls_all_all_count"]) for r in rows] == [
        (date(2026, 3, 7), 1),
        (date(2026, 3, 8), 2),
    ]


@pytest.mark.parametrize(
    "datetimes",
    [
        ["2019-01-01T00:00:00+00:00"],  # missing days
        ["2019-01-01T00:00:00+00:00", "2019-01-08T00:00:00+00:00"],  # weekly buckets
    ],
)
def test_activity_overview_refuses_coarse_or_missing_buckets(datetimes: list) -> None:
    response = {"data": [{"datetime": d, "calls.all.all.count": 1} for d in datetimes]}
    with pytest.raises(reshape.UnexpectedResponseError, match="one daily bucket per day"):
        reshape.activity_overview_rows(response, org_id=ORG, window=WEEK, timezone="UTC")


def test_activity_comparison_rows_per_user_with_display_names_and_nulls() -> None:
    rows = reshape.activity_comparison_rows(
        doc("activity_comparison"), org_id=ORG, window=DAY, timezone="UTC"
    )
    assert [(r["user_id"], r["user_name"], r["date"]) for r in rows] == [
        ("user_N6KhMpzHRCYQHdn4gRNIFNN5JExnsrprKA6ekxM63XA", "Jane Doe", date(2019, 1, 1)),
        ("user_Ova4RGFG7pztSeJiiMFdN7O2MFl71nD0uGO3bIOo4Wk", "John Roe", date(2019, 1, 1)),
    ]
    assert rows[0]["calls_outbound_all_sum_duration"] == 3400
    assert rows[1]["calls_outbound_all_avg_duration"] is None
    assert_contract(
        "activity_by_user",
        rows,
        allow_extra={
            "calls_outbound_all_count",
            "calls_outbound_all_sum_duration",
            "calls_outbound_all_avg_duration",
        },
    )


def test_activity_comparison_is_one_day() -> None:
    with pytest.raises(ValueError, match="one day at a time"):
        reshape.activity_comparison_rows({"data": []}, org_id=ORG, window=WEEK, timezone="UTC")


def test_merge_rows_joins_metric_chunks_into_one_row() -> None:
    first = [{"user_id": "u1", "a": 1}, {"user_id": "u2", "a": 2}]
    second = [{"user_id": "u2", "b": 20}, {"user_id": "u1", "b": 10}]
    assert reshape.merge_rows([first, second], ("user_id",)) == [
        {"user_id": "u1", "a": 1, "b": 10},
        {"user_id": "u2", "a": 2, "b": 20},
    ]


def test_sent_email_rows_all_emails_row_keeps_null_template_id() -> None:
    rows = reshape.sent_email_rows(doc("sent_emails"), org_id=ORG, window=DAY, timezone="UTC")
    all_emails, promo = rows
    assert all_emails["template_key"] == "_all"
    assert all_emails["template_id"] is None
    assert all_emails["_queries_opened"] == "email(direction:sent opened:yes)"
    assert promo["template_key"] == promo["template_id"]
    assert (promo["total"], promo["opened"], promo["responded"]) == (101, 40, 9)
    assert promo["percentage_opened"] == 40
    assert_contract("sent_emails_by_template", rows)


def test_status_report_rows_from_docs_example() -> None:
    overview, transitions = reshape.status_report_rows(
        doc("lead_status_report"), org_id=ORG, grain="month", window=WEEK, timezone="UTC"
    )
    potential = overview[0]
    assert potential["status_label"] == "Potential"
    assert (potential["started"], potential["ended"], potential["gained"], potential["lost"]) == (
        48729,
        49997,
        1269,
        1,
    )
    assert (potential["entered"], potential["left"], potential["change"]) == (1270, 2, 1268)
    assert potential["grain"] == "month"
    assert potential["_queries_started"].startswith('lead_status(status:"Potential"')
    assert potential["_leads_page_urls_left"].startswith("/search/lead_status_change")
    assert_contract("lead_status_overview", overview)

    kinds = [
        (t["kind"], t["from_status_key"], t["to_status_label"], t["count"]) for t in transitions
    ]
    assert kinds == [
        ("transitions", "_created", "Potential", 1270),
        ("transitions", "stat_a2RZn3jTsAA11zmBPpqQQ4ug8NqgUawkjyMdCu8yybX", "Qualified", 2),
        ("summary", "_created", "Potential", 1269),
        ("summary", "_created", "Qualified", 1),
        ("summary", "stat_a2RZn3jTsAA11zmBPpqQQ4ug8NqgUawkjyMdCu8yybX", "Qualified", 1),
    ]
    created = transitions[0]
    assert created["from_status_id"] is None and created["from_status_is_deleted"] is None
    assert created["_query"].startswith("original_lead_status")
    assert_contract("lead_status_transitions", transitions)


def test_status_report_keeps_deleted_statuses_and_opportunity_urls() -> None:
    response = copy.deepcopy(doc("lead_status_report"))
    response["status_overview"][1]["status_is_deleted"] = True
    for item in response["status_overview"]:
        item["_opportunities_page_urls"] = {k: f"/opportunities/{k}/" for k in item["_queries"]}
    for item in response["status_transitions"]:
        item["_opportunities_page_url"] = "/opportunities/x/"
    overview, transitions = reshape.status_report_rows(
        response, org_id=ORG, grain="day", window=DAY, timezone="UTC"
    )
    assert overview[1]["status_is_deleted"] is True
    assert overview[0]["_opportunities_page_urls_gained"] == "/opportunities/gained/"
    assert_contract("opportunity_status_overview", overview)
    assert_contract("opportunity_status_transitions", transitions)


def test_funnel_totals_rows_aggregation_row_is_all() -> None:
    rows = reshape.funnel_totals_rows(
        doc("funnel_totals"),
        org_id=ORG,
        pipeline_id="pipe_4vukv2FUlFh9FDiVYAop1U",
        cohort_type="active-stage-cohort",
        window=WEEK,
        timezone="UTC",
    )
    assert [r["user_id"] for r in rows] == [
        "_all",
        "user_N6KhMpzHRCYQHdn4gRNIFNN5JExnsrprKA6ekxM63XA",
        "user_Ova4RGFG7pztSeJiiMFdN7O2MFl71nD0uGO3bIOo4Wk",
    ]
    aggregate, winner, loser = rows
    assert (aggregate["count"], aggregate["count_win_rate"], aggregate["average_time_to_win"]) == (
        2,
        0.5,
        3600,
    )
    assert loser["average_time_to_win"] is None
    assert winner["count_win_rate"] == 1
    assert sum(r["count"] for r in rows[1:]) == aggregate["count"]
    assert all(r["pipeline_id"] == "pipe_4vukv2FUlFh9FDiVYAop1U" for r in rows)
    assert_contract("funnel_totals", rows)


def test_funnel_stages_rows_flatten_nested_stages_with_index() -> None:
    rows = reshape.funnel_stages_rows(
        doc("funnel_stages"),
        org_id=ORG,
        pipeline_id="pipe_4vukv2FUlFh9FDiVYAop1U",
        cohort_type="created-cohort",
        window=WEEK,
        timezone="UTC",
    )
    assert [(r["user_id"][:6], r["stage_index"], r["status_label"], r["count"]) for r in rows] == [
        ("_all", 0, "Initial", 2),
        ("_all", 1, "Won", 1),
        ("user_N", 0, "Initial", 1),
        ("user_N", 1, "Won", 1),
        ("user_O", 0, "Initial", 1),
        ("user_O", 1, "Won", 0),
    ]
    assert rows[-1]["count_conversion_rate"] is None  # ratios are null at zero counts
    assert rows[1]["status_type"] == "won"
    assert rows[1]["average_time_to_advance"] is None
    assert "status" not in rows[0]
    assert_contract("funnel_stages", rows)


CUSTOM_REPORT = {
    "name": "leads_by_user",
    "x": "lead.date_created",
    "y": "lead.count",
    "interval": "day",
    "group_by": "user",
}


def test_custom_report_rows_one_per_series_point() -> None:
    response = {
        "series": [
            {
                "key": "user_1",
                "label": "Jane",
                "count": 3,
                "data": [{"x": "2019-01-01", "y": 1}, {"x": "2019-01-02", "y": 2}],
            },
            {"key": None, "label": None, "count": 0, "data": [{"x": "2019-01-01", "y": None}]},
        ]
    }
    rows = reshape.custom_report_rows(
        response, org_id=ORG, report=CUSTOM_REPORT, window=WEEK, timezone="UTC"
    )
    assert [(r["series"], r["x"], r["y"]) for r in rows] == [
        ("user_1", "2019-01-01", 1.0),
        ("user_1", "2019-01-02", 2.0),
        ("_all", "2019-01-01", None),
    ]
    assert rows[0]["report_name"] == "leads_by_user" and rows[0]["x_field"] == "lead.date_created"
    assert_contract("custom_reports", rows)


@pytest.mark.parametrize(
    "response",
    [{}, {"series": "nope"}, {"series": [{"points": []}]}, [1, 2], {"series": [{"data": [{}]}]}],
)
def test_custom_report_unknown_shape_is_kept_raw_not_fatal(response: Any) -> None:
    rows = reshape.custom_report_rows(
        response, org_id=ORG, report=CUSTOM_REPORT, window=WEEK, timezone="UTC"
    )
    assert len(rows) == 1
    assert rows[0]["raw"] == response
    assert rows[0]["series"] == rows[0]["x"] == "_raw"
    assert_contract("custom_reports", rows)


@pytest.mark.parametrize(
    "response",
    [
        {"fields": [{"name": "lead.count", "label": "Leads", "type": "number"}]},
        {"data": [{"name": "lead.count", "label": "Leads", "type": "number"}]},
        {"lead.count": {"label": "Leads", "type": "number"}},
    ],
)
def test_custom_field_rows_accept_list_or_mapping(response: Any) -> None:
    rows = reshape.custom_field_rows(response, ORG)
    assert rows == [{"name": "lead.count", "label": "Leads", "type": "number", "org_id": ORG}]


def test_user_rows_mark_active_memberships() -> None:
    organization = {
        "memberships": [{"user_id": "user_a"}],
        "inactive_memberships": [{"user_id": "user_b"}],
    }
    rows = reshape.user_rows(
        [{"id": "user_a", "image": None}, {"id": "user_b"}],
        ORG,
        reshape.active_user_ids(organization),
    )
    assert [(r["id"], r["is_active"], r["org_id"]) for r in rows] == [
        ("user_a", True, ORG),
        ("user_b", False, ORG),
    ]


def test_opportunity_status_rows_get_stage_index_from_pipeline_order() -> None:
    pipelines = [
        {"id": "pipe_1", "statuses": [{"id": "stat_b"}, {"id": "stat_a"}, {"id": "stat_w"}]}
    ]
    rows = reshape.opportunity_status_rows(
        [
            {"id": "stat_a", "pipeline_id": "pipe_1"},
            {"id": "stat_w", "pipeline_id": "pipe_1"},
            {"id": "stat_orphan"},
        ],
        ORG,
        pipelines,
    )
    assert [(r["id"], r["stage_index"]) for r in rows] == [
        ("stat_a", 1),
        ("stat_w", 2),
        ("stat_orphan", None),
    ]


def test_flatten_nested_objects_and_lists() -> None:
    assert reshape.flatten({"a": {"b": 1, "c": {"d": 2}}, "e": [1, 2], "f": None}) == {
        "a_b": 1,
        "a_c_d": 2,
        "e": "[1, 2]",
        "f": None,
    }
