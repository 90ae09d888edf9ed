"""Segments (issue 11): Close's report filters as configuration, loaded beside the unfiltered
rows, each with its own state; checked against Close's answers and the event log."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Dict, List

import pytest

from close_reports.simulator import CloseSimulator
from close_reports.source import close_source
from close_reports.source.errors import CloseConfigError
from close_reports.source.settings import REPORT_TABLES, TABLES
from tests.utils import (
    ANCHOR,
    TODAY,
    make_pipeline,
    query,
    rows,
    run,
    small_org,
    source_kwargs,
    table_snapshot,
    warehouse,
)

START = (ANCHOR - timedelta(days=9)).isoformat()


def two_segments(org) -> List[Dict[str, Any]]:
    """A Smart View for the activity reports, one rep for the sent-emails report."""
    return [
        {
            "name": "referrals",
            "smart_view_id": org.saved_searches[0].id,
            "reports": ["activity_by_user", "activity_overview"],
        },
        {"name": "rep_one", "user_ids": [org.users[0].id], "reports": ["sent_emails_by_template"]},
    ]


@pytest.fixture(scope="module")
def segmented(tmp_path_factory) -> Dict[str, Any]:
    """Two runs with two segments from SOURCES__CLOSE__SEGMENTS, and a load without them."""
    org = small_org()
    simulator = CloseSimulator(org)
    tmp = tmp_path_factory.mktemp("segments")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCES__CLOSE__SEGMENTS", json.dumps(two_segments(org)))
        pipeline = make_pipeline(tmp / "segmented")
        run(pipeline, close_source(**source_kwargs(simulator, start_date=START)))
        first_requests = list(simulator.request_log)
        run(pipeline, close_source(**source_kwargs(simulator, start_date=START)))
    plain = make_pipeline(tmp / "plain")
    run(plain, close_source(**source_kwargs(simulator, start_date=START)))
    return {"org": org, "simulator": simulator, "pipeline": pipeline, "plain": plain,
            "requests": first_requests}  # fmt: skip


def test_filters_are_sent_as_close_documents_them(segmented) -> None:
    org, requests = segmented["org"], segmented["requests"]
    view = org.saved_searches[0].id
    filtered = [
        r.json
        for r in requests
        if r.json and r.json.get("type") in ("comparison", "overview") and "query" in r.json
    ]
    assert filtered and all(
        body["query"] == {"type": "saved_search", "saved_search_id": view} for body in filtered
    )
    assert {b["type"] for b in filtered} == {"comparison", "overview"}
    sent = [r.params for r in requests if "/report/sent_emails/" in r.path]
    assert {p.get("user_id") for p in sent} == {None, org.users[0].id}
    # no other report is filtered: the segments name their reports
    statuses = [r.params for r in requests if "/report/statuses/" in r.path]
    assert not any("smart_view_id" in p or "user_id" in p for p in statuses)


def test_segment_rows_equal_closes_answer_for_the_filters(segmented) -> None:
    org, pipeline = segmented["org"], segmented["pipeline"]
    view = org.saved_searches[0].id
    client = CloseSimulator(org).client()
    day = ANCHOR - timedelta(days=2)
    body = {
        "type": "comparison",
        "datetime_range": {
            "start": f"{day}T00:00:00Z",
            "end": f"{day + timedelta(days=1)}T00:00:00Z",
        },
        "metrics": ["calls.all.all.count", "emails.sent.all.count"],
        "query": {"type": "saved_search", "saved_search_id": view},
    }  # fmt: skip
    answer = {
        r["user_id"]: (r["calls.all.all.count"], r["emails.sent.all.count"])
        for r in client.post("/report/activity/", json=body).json()["data"]
    }
    loaded = {
        user: (calls, emails)
        for user, calls, emails in query(
            pipeline,
            f"""select user_id, calls_all_all_count, emails_sent_all_count from activity_by_user
            where segment = 'referrals' and date = '{day}'""",
        )
    }
    assert loaded == answer
    org_id = org.id
    response = client.get(
        f"/report/sent_emails/{org_id}/",
        params={"date_start": str(day), "date_end": str(day + timedelta(days=1)),
                "user_id": org.users[0].id},
    ).json()  # fmt: skip
    answer = {r["template_id"] or "_all": (r["total"], r["responded"]) for r in
              response["sent_email_stats"]}  # fmt: skip
    loaded = {
        key: (total, replied)
        for key, total, replied in query(
            pipeline,
            f"""select template_key, total, responded from sent_emails_by_template
            where segment = 'rep_one' and window_start = '{day}'""",
        )
    }
    assert loaded == answer


def test_unfiltered_rows_stay_and_reruns_add_no_duplicate_key(segmented) -> None:
    pipeline, plain = segmented["pipeline"], segmented["plain"]
    segmented_rows = table_snapshot(pipeline, list(REPORT_TABLES))
    unfiltered = table_snapshot(plain, list(REPORT_TABLES))
    for table in REPORT_TABLES:
        index = _column_index(pipeline, table, "segment")
        assert [r for r in segmented_rows[table] if r[index] == "_all"] == unfiltered[table]
    for table in ("activity_by_user", "activity_overview", "sent_emails_by_template"):
        key = ", ".join(TABLES[table].primary_key)
        total, distinct = query(pipeline, f"select count(*), count(distinct ({key})) from {table}")[
            0
        ]
        assert total == distinct
        segments = {r[0] for r in query(pipeline, f"select distinct segment from {table}")}
        assert "_all" in segments and len(segments) == 2, (table, segments)


def _column_index(pipeline, table: str, column: str) -> int:
    columns = sorted(
        c[0]
        for c in query(pipeline, f"describe {table}")
        if c[0] not in ("_dlt_load_id", "_dlt_id")
    )
    return columns.index(column)


def test_a_groups_reps_equal_the_event_log(tmp_path) -> None:
    org = small_org()
    group = org.groups[1]
    pipeline = make_pipeline(tmp_path)
    segments = [{"name": "sdrs", "user_ids": [group.id], "reports": ["activity_by_user"]}]
    run(
        pipeline,
        close_source(
            **source_kwargs(CloseSimulator(org), start_date=START, segments=segments)
        ).with_resources("activity_by_user"),
    )
    con = warehouse(pipeline, org)
    loaded = rows(
        con,
        """select date, user_id, calls_all_all_count from activity_by_user
        where segment = 'sdrs' and calls_all_all_count > 0 order by all""",
    )
    members = ", ".join(f"'{m}'" for m in group.member_ids)
    truth = rows(
        con,
        f"""select cast(created_at as date), user_id, count(*) from memory.ev.calls
        where user_id in ({members}) and created_at >= '{START}' and created_at < '{TODAY}'
        group by all order by all""",
    )
    con.close()
    assert loaded == truth and loaded
    assert {r[1] for r in loaded} <= set(group.member_ids)


def test_a_segment_added_later_is_backfilled_from_start_date(tmp_path) -> None:
    org = small_org()
    simulator = CloseSimulator(org)
    pipeline = make_pipeline(tmp_path)
    kwargs = source_kwargs(simulator, start_date=START)
    run(pipeline, close_source(**kwargs).with_resources("sent_emails_by_template"))
    simulator.request_log.clear()
    rep = [{"name": "rep_one", "user_ids": [org.users[0].id]}]
    run(pipeline, close_source(**kwargs, segments=rep).with_resources("sent_emails_by_template"))
    rep_days = sorted(
        r.params["date_start"] for r in simulator.request_log if r.params.get("user_id")
    )
    assert rep_days[0] == START and len(rep_days) == 10
    windows = query(
        pipeline,
        "select count(distinct window_start) from sent_emails_by_template "
        "where segment = 'rep_one'",
    )
    assert windows == [(10,)]


@pytest.mark.parametrize(
    "segments, message",
    [
        (
            [{"name": "s", "query": "industry:SaaS", "reports": ["activity_by_user"]}],
            "does not accept query",
        ),
        (
            [
                {
                    "name": "s",
                    "smart_view_id": "save_x",
                    "query": "x",
                    "reports": ["lead_status_overview"],
                }
            ],
            "not both",
        ),  # fmt: skip
        ([{"name": "s", "user_ids": ["u"], "reports": ["nope"]}], "unknown report table"),
        ([{"name": "s"}], "sets no filter"),
        ([{"name": "s", "user_ids": ["u"]}, {"name": "s", "user_ids": ["v"]}], "used twice"),
        ([{"name": "_all", "user_ids": ["u"]}], "'_all'"),
        ([{"name": "s", "users": ["u"]}], "unknown key"),
        ("not a list", "must be a list"),
    ],
)
def test_a_filter_a_report_does_not_take_is_refused_before_any_request(
    segments: Any, message: str
) -> None:
    simulator = CloseSimulator(small_org())
    with pytest.raises(CloseConfigError, match=message):
        close_source(**source_kwargs(simulator, segments=segments))
    assert simulator.request_log == []
