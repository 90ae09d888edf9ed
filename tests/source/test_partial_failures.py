"""One refused report never sinks the run (issue 15); an outage ends fast (issue 16)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import duckdb
import httpx
import pytest

from close_reports.simulator import CloseSimulator
from close_reports.source import RunLog, close_source
from close_reports.source.errors import CloseAuthError, CloseConfigError
from close_reports.source.ledger import FAILED, OK
from close_reports.source.settings import REPORT_TABLES
from tests.utils import (
    ANCHOR,
    make_pipeline,
    rows,
    run,
    small_org,
    source_kwargs,
    table_snapshot,
    warehouse,
)

START = (ANCHOR - timedelta(days=9)).isoformat()


def test_a_plan_gated_report_is_skipped_and_the_rest_load(tmp_path) -> None:
    org = small_org()
    pipeline = make_pipeline(tmp_path)
    run(pipeline, close_source(**source_kwargs(CloseSimulator(org), start_date=START)))
    before = table_snapshot(pipeline, ["funnel_totals", "funnel_stages"])
    state = json.dumps(pipeline.state["sources"]["close"]["resources"]["funnel_totals"])

    gated = CloseSimulator(org, refuse={"/report/funnel/": (403, "Not available on your plan")})
    log = RunLog()
    later = ANCHOR + timedelta(days=3)
    gated_run = source_kwargs(gated, start_date=START, today=later, run_log=log)
    run(pipeline, close_source(**gated_run))

    failed = {e.report for e in log.failed}
    assert failed == {"funnel_totals", "funnel_stages"}
    assert all("Not available on your plan" in e.error and "403" in e.error for e in log.failed)
    assert table_snapshot(pipeline, ["funnel_totals", "funnel_stages"]) == before
    assert json.dumps(pipeline.state["sources"]["close"]["resources"]["funnel_totals"]) == state
    # the others moved on: their state holds the new days
    con = warehouse(pipeline)
    assert rows(con, "select max(date) from activity_by_user") == [(later - timedelta(days=1),)]
    con.close()
    assert {e.report for e in log.entries if e.status == OK} >= {"activity_by_user", "users"}


def test_fail_fast_keeps_all_or_nothing(tmp_path) -> None:
    org = small_org()
    gated = CloseSimulator(org, refuse={"/report/statuses/": 404})
    pipeline = make_pipeline(tmp_path)
    with pytest.raises(Exception) as info:
        run(pipeline, close_source(**source_kwargs(gated, start_date=START, fail_fast=True)))
    assert "404" in str(info.value)
    # nothing was loaded, not even the reports Close answered
    assert (
        not (tmp_path / "close.duckdb").exists()
        or not duckdb.connect(str(tmp_path / "close.duckdb"))
        .execute("select * from information_schema.tables where table_name = 'activity_by_user'")
        .fetchall()
    )


def test_a_refused_key_stops_everything_before_any_report() -> None:
    simulator = CloseSimulator(small_org())
    with pytest.raises(CloseAuthError):
        close_source(**source_kwargs(simulator, api_key="wrong"))
    assert all("/report/" not in r.path for r in simulator.request_log)


def test_an_explorer_field_close_does_not_list_is_refused_before_any_report() -> None:
    simulator = CloseSimulator(small_org())
    bad = [{"name": "mrr", "x": "lead.custom.Nope", "y": "lead.count"}]
    with pytest.raises(CloseConfigError) as info:
        close_source(**source_kwargs(simulator, custom_reports=bad))
    message = str(info.value)
    assert "lead.custom.Nope" in message and "x" in message and "lead.custom." in message
    assert not any("/report/custom/orga" in r.path for r in simulator.request_log)


def test_closes_documented_explorer_examples_load(tmp_path) -> None:
    simulator = CloseSimulator(small_org())
    queries = [
        {"name": "mrr_histogram", "x": "lead.custom.MRR", "y": "lead.count", "interval": "1000"},
        {"name": "value_by_month", "x": "opportunity.date_created", "y": "opportunity.value",
         "interval": "month"},
    ]  # fmt: skip
    log = RunLog()
    pipeline = make_pipeline(tmp_path)
    kwargs = source_kwargs(simulator, start_date=START, custom_reports=queries, run_log=log)
    run(pipeline, close_source(**kwargs).with_resources("custom_reports"))
    assert not log.failed, [e.error for e in log.failed]
    con = warehouse(pipeline)
    snapshot = rows(
        con,
        "select distinct window_start from custom_reports where report_name = 'mrr_histogram'",
    )
    assert snapshot and all(r[0] == ANCHOR + timedelta(days=1) for r in snapshot)
    con.close()
    histogram = [r for r in simulator.request_log if r.params.get("x") == "lead.custom.MRR"]
    assert len(histogram) == 1 and "start" not in histogram[0].params


def test_explorer_windows_are_exact_local_midnights_across_dst(tmp_path) -> None:
    simulator = CloseSimulator(small_org())
    queries = [{"name": "v", "x": "opportunity.date_created", "y": "opportunity.value",
                "interval": "day"}]  # fmt: skip
    pipeline = make_pipeline(tmp_path)
    kwargs = source_kwargs(
        simulator,
        start_date="2026-03-01",
        end_date="2026-03-20",
        timezone="America/New_York",
        custom_reports=queries,
    )
    run(pipeline, close_source(**kwargs).with_resources("custom_reports"))
    sent = sorted(
        (r.params["start"], r.params["end"], r.headers.get("x-tz-offset"))
        for r in simulator.request_log
        if "/report/custom/orga" in r.path
    )
    # March (read whole, to date) is split where the offset changes (Sunday 8 March)
    assert sent == [
        ("2026-03-01T00:00:00-05:00", "2026-03-08T00:00:00-05:00", "-5"),
        ("2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00", "-5"),
        ("2026-03-09T00:00:00-04:00", "2026-03-21T00:00:00-04:00", "-4"),
    ]


def test_series_without_key_or_label_never_collapse() -> None:
    from close_reports.source.reshape import custom_report_rows
    from close_reports.source.windows import Window

    response = {"series": [{"data": [{"x": "a", "y": 1}]}, {"data": [{"x": "a", "y": 2}]}]}
    context = {"org_id": "o", "window": Window(ANCHOR, ANCHOR + timedelta(days=1)),
               "timezone": "UTC"}  # fmt: skip
    found = custom_report_rows(response, report={"name": "q", "x": "x"}, **context)
    assert [(r["series"], r["y"]) for r in found] == [("_all", 1.0), ("_series_1", 2.0)]


def test_an_unknown_explorer_shape_is_kept_raw_and_reported(tmp_path) -> None:
    simulator = CloseSimulator(small_org())

    def odd(request: httpx.Request) -> httpx.Response:
        if "/report/custom/orga" in request.url.path:
            return httpx.Response(200, json={"buckets": [1, 2, 3]})
        return simulator.handle(request)

    log = RunLog()
    queries = [{"name": "v", "x": "opportunity.date_created", "y": "opportunity.value"}]
    kwargs = source_kwargs(
        simulator, start_date=START, custom_reports=queries, run_log=log,
        transport=httpx.MockTransport(odd),
    )  # fmt: skip
    run(make_pipeline(tmp_path), close_source(**kwargs).with_resources("custom_reports"))
    assert any("kept whole in the `raw` column" in w for w in log.warnings)


def test_close_going_down_ends_the_run_within_seconds(tmp_path) -> None:
    """Every request fails once Close is down: the first request to spend its retries
    opens the key's breaker, and every other worker stops at once."""
    org = small_org()
    simulator = CloseSimulator(org)
    down = threading.Event()
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if "/report/" in request.url.path and "/metrics/" not in request.url.path:
            down.set()
        if down.is_set():
            raise httpx.ConnectError("connection refused", request=request)
        return simulator.handle(request)

    log = RunLog()
    options = {"max_attempts": 4, "backoff_base": 0.05, "backoff_max": 0.2}
    kwargs = source_kwargs(
        simulator, start_date=START, run_log=log, client_options=options,
        transport=httpx.MockTransport(flaky),
    )  # fmt: skip
    started = time.monotonic()
    run(make_pipeline(tmp_path), close_source(**kwargs))
    elapsed = time.monotonic() - started
    assert log.failed and not log.loaded
    tripped = [e for e in log.failed if "failed after 4 attempts" in (e.error or "")]
    stopped = [e for e in log.failed if "not sent" in (e.error or "")]
    assert tripped and stopped
    assert elapsed < 20
    # only one request per worker was retried to the end; the rest were never sent
    assert len(calls) < 100
    assert all(e.status == FAILED for e in log.failed)


def test_lookback_beyond_the_sane_bound_is_refused_at_once() -> None:
    simulator = CloseSimulator(small_org())
    started = time.monotonic()
    with pytest.raises(CloseConfigError, match="lookback_days"):
        close_source(**source_kwargs(simulator, lookback_days=100000))
    with pytest.raises(CloseConfigError, match="refresh_days"):
        close_source(**source_kwargs(simulator, refresh_days={"activity_by_user": 500}))
    assert time.monotonic() - started < 5 and simulator.request_log == []


def test_unknown_refresh_table_names_the_valid_ones() -> None:
    with pytest.raises(CloseConfigError, match="activity_by_user"):
        close_source(**source_kwargs(CloseSimulator(small_org()), refresh_days={"users": 3}))
    assert "users" not in REPORT_TABLES


def test_the_overview_window_is_a_setting_named_when_close_coarsens(tmp_path) -> None:
    from close_reports.source.reshape import UnexpectedResponseError, activity_overview_rows
    from close_reports.source.windows import Window

    simulator = CloseSimulator(small_org())
    kwargs = source_kwargs(simulator, start_date=START, overview_max_days=7)
    run(make_pipeline(tmp_path), close_source(**kwargs).with_resources("activity_overview"))
    spans = [r.json["datetime_range"] for r in simulator.request_log
             if r.json and r.json.get("type") == "overview"]  # fmt: skip
    assert len(spans) == 2  # 10 days in windows of at most 7
    weekly = {"data": [{"datetime": "2026-03-01T00:00:00Z"}, {"datetime": "2026-03-08T00:00:00Z"}]}
    with pytest.raises(UnexpectedResponseError, match="SOURCES__CLOSE__OVERVIEW_MAX_DAYS"):
        activity_overview_rows(weekly, org_id="o", window=Window(ANCHOR - timedelta(days=13),
                               ANCHOR + timedelta(days=1)), timezone="UTC")  # fmt: skip
