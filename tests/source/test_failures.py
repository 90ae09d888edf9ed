"""Bad input and a misbehaving Close: clear errors, retries that recover, nothing half-written."""

import json
from typing import Any, Callable, Dict, List

import httpx
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from close_reports.failures import causes
from close_reports.simulator import CloseSimulator
from close_reports.source import close_source
from close_reports.source.errors import CloseAuthError, CloseRetryError, CloseValidationError
from close_reports.source.settings import TABLES
from close_reports.summary import variant_columns
from tests.utils import (
    FakeClock,
    make_pipeline,
    rows,
    run,
    small_org,
    source_kwargs,
    table_snapshot,
    warehouse,
)

START = "2026-03-10"
FAST_RETRIES = {"max_attempts": 3, "backoff_base": 0.01, "backoff_max": 0.02}


def raised(exc_info: pytest.ExceptionInfo, kind: type) -> Any:
    """The exception of type ``kind`` behind a failed pipeline step."""
    found = [c for c in causes(exc_info.value) if isinstance(c, kind)]
    assert found, f"no {kind.__name__} behind {exc_info.value!r}"
    return found[0]


def test_missing_key_says_how_to_configure_it() -> None:
    with pytest.raises(Exception) as exc_info:
        close_source()
    message = str(exc_info.value)
    assert "SOURCES__CLOSE__API_KEY" in message and ".dlt/secrets.toml" in message


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"start_date": "2026-13-01"}, "YYYY-MM-DD"),
        ({"start_date": "2026-03-05", "end_date": "2026-03-01"}, "must be before end date"),
        ({"timezone": "Nowhere/City"}, "SOURCES__CLOSE__TIMEZONE"),
        ({"lookback_days": -1}, "lookback_days"),
        ({"custom_reports": [{"x": "lead.date_created"}]}, "custom_reports"),
    ],
)
def test_bad_settings_are_refused_up_front(overrides: Dict[str, Any], message: str) -> None:
    simulator = CloseSimulator(small_org())
    with pytest.raises(Exception) as exc_info:
        close_source(**source_kwargs(simulator, **overrides))
    assert any(message in str(c) for c in causes(exc_info.value)), exc_info.value


def test_refused_key_says_so_and_never_shows_the_key(tmp_path) -> None:
    simulator = CloseSimulator(small_org())
    secret = "api_2c1f0f9e1b7a4b8c9d0e1f2a3b4c5d6e"
    pipeline = make_pipeline(tmp_path)
    with pytest.raises(CloseAuthError) as exc_info:  # checked with GET /me/ before any report
        run(pipeline, close_source(**source_kwargs(simulator, api_key=secret)))
    error = raised(exc_info, CloseAuthError)
    assert error.status == 401
    assert "refused the API key" in str(error) and "SOURCES__CLOSE__API_KEY" in str(error)
    assert all(secret not in str(c) and secret not in repr(c) for c in causes(exc_info.value))


def good_run_then(tmp_path, simulator: CloseSimulator, **overrides: Any) -> tuple:
    """Loads once cleanly, then runs again with ``overrides``; returns (pipeline, before, exc)."""
    pipeline = make_pipeline(tmp_path)
    run(pipeline, close_source(**source_kwargs(simulator, start_date=START)))
    before = table_snapshot(pipeline, list(TABLES)), json.dumps(pipeline.state, default=str)
    with pytest.raises(PipelineStepFailed) as exc_info:
        run(pipeline, close_source(**source_kwargs(simulator, start_date=START, **overrides)))
    return pipeline, before, exc_info


def assert_unchanged(pipeline, before: tuple) -> None:
    tables, state = before
    assert table_snapshot(pipeline, list(TABLES)) == tables
    assert json.dumps(pipeline.state, default=str) == state


def test_close_400_surfaces_field_errors_and_loses_nothing(tmp_path) -> None:
    simulator = CloseSimulator(small_org())
    # fields Close lists (checked before any request), an interval Close refuses
    bad_report = [{"name": "bad", "x": "lead.date_created", "y": "lead.count", "interval": "x"}]
    pipeline, before, exc_info = good_run_then(
        tmp_path, simulator, custom_reports=bad_report, fail_fast=True
    )
    error = raised(exc_info, CloseValidationError)
    assert error.status == 400 and "interval" in error.field_errors
    assert "interval:" in str(error) and "/report/custom/" in str(error)
    assert_unchanged(pipeline, before)


def test_close_down_after_all_retries_loses_nothing(tmp_path) -> None:
    clock = FakeClock()
    simulator = CloseSimulator(small_org())
    pipeline = make_pipeline(tmp_path)
    run(pipeline, close_source(**source_kwargs(simulator, start_date=START)))
    before = table_snapshot(pipeline, list(TABLES)), json.dumps(pipeline.state, default=str)
    broken = CloseSimulator(
        small_org(), fault_rate=1.0, fault_kinds=("503",), clock=clock, sleep=clock.sleep
    )
    # Close is down from the first request: GET /me/, before any report, fails the run
    with pytest.raises((PipelineStepFailed, CloseRetryError)) as exc_info:
        run(
            pipeline,
            close_source(
                **source_kwargs(
                    broken,
                    start_date=START,
                    fail_fast=True,
                    client_options={**FAST_RETRIES, "sleep": clock.sleep},
                )
            ),
        )
    error = raised(exc_info, CloseRetryError)
    assert error.attempts == 3 and error.status == 503
    assert "failed after 3 attempts" in str(error)
    assert_unchanged(pipeline, before)


def clean_snapshot(tmp_path) -> Dict[str, List[tuple]]:
    pipeline = make_pipeline(tmp_path / "clean")
    run(pipeline, close_source(**source_kwargs(CloseSimulator(small_org()), start_date=START)))
    return table_snapshot(pipeline, list(TABLES))


def test_transient_faults_are_retried_and_the_data_is_identical(tmp_path) -> None:
    clock = FakeClock()
    simulator = CloseSimulator(
        small_org(),
        fault_rate=0.3,
        fault_seed=11,
        fault_kinds=("500", "502", "503", "drop", "truncate"),
        clock=clock,
        sleep=clock.sleep,
    )
    pipeline = make_pipeline(tmp_path / "faulty")
    stats_source = close_source(
        **source_kwargs(
            simulator,
            start_date=START,
            client_options={"max_attempts": 10, "sleep": clock.sleep, "clock": clock},
        )
    )
    run(pipeline, stats_source)
    faults = simulator.stats()["faults_by_kind"]
    assert set(faults) == {"500", "502", "503", "drop", "truncate"}
    assert table_snapshot(pipeline, list(TABLES)) == clean_snapshot(tmp_path)


def test_rate_limited_run_waits_and_completes(tmp_path) -> None:
    clock = FakeClock()
    simulator = CloseSimulator(small_org(), rate_limit=3, clock=clock, sleep=clock.sleep)
    pipeline = make_pipeline(tmp_path / "limited")
    from close_reports.source.client import RequestStats

    stats = RequestStats()
    run(
        pipeline,
        close_source(
            **source_kwargs(
                simulator,
                start_date=START,
                stats=stats,
                client_options={"sleep": clock.sleep, "clock": clock},
            )
        ),
    )
    assert stats.as_dict()["failed"] == 0
    assert simulator.stats()["requests"] == stats.as_dict()["requests"]
    assert table_snapshot(pipeline, list(TABLES)) == clean_snapshot(tmp_path)
    # the throttle spaced the requests: about rate_limit per second of (fake) time
    assert clock.now - 1000.0 >= (stats.as_dict()["requests"] - 3) / 3 * 0.9


def rewriting_transport(
    simulator: CloseSimulator, rewrite: Callable[[httpx.Request, Any], Any], strip_metric: str = ""
) -> httpx.MockTransport:
    """The simulator behind a transport that edits requests and responses (schema drift)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if strip_metric and request.method == "POST" and b"metrics" in request.content:
            body = json.loads(request.content)
            body["metrics"] = [m for m in body["metrics"] if m != strip_metric]
            request = httpx.Request(request.method, request.url, headers=request.headers, json=body)
        response = simulator.handle(request)
        if response.status_code != 200:
            return response
        body = rewrite(request, response.json())
        return httpx.Response(200, json=body, headers={"content-type": "application/json"})

    return httpx.MockTransport(handler)


def test_new_metric_in_the_catalog_adds_a_column(tmp_path) -> None:
    new_key = "calls.outbound.voicemail.count"

    def add_metric(request: httpx.Request, body: Any) -> Any:
        if request.url.path.endswith("/report/activity/metrics/"):
            body["metrics"].append({"key": new_key, "name": "Voicemails", "description": "d"})
        elif request.url.path.endswith("/report/activity/"):
            for row in body["data"]:
                row[new_key] = 2
        return body

    simulator = CloseSimulator(small_org())
    pipeline = make_pipeline(tmp_path)
    transport = rewriting_transport(simulator, add_metric, strip_metric=new_key)
    run(
        pipeline,
        close_source(
            **source_kwargs(simulator, start_date=START, transport=transport)
        ).with_resources("activity_metrics", "activity_by_user"),
    )
    con = warehouse(pipeline)
    assert rows(con, "select distinct calls_outbound_voicemail_count from activity_by_user") == [
        (2,)
    ]
    assert rows(
        con, f"select column_name, data_type from activity_metrics where key = '{new_key}'"
    ) == [("calls_outbound_voicemail_count", "bigint")]
    columns = pipeline.default_schema.get_table_columns("activity_by_user")
    assert columns["calls_outbound_voicemail_count"]["data_type"] == "bigint"


def test_field_that_changes_type_is_reported(tmp_path) -> None:
    def break_total(request: httpx.Request, body: Any) -> Any:
        if (
            "/report/sent_emails/" in request.url.path
            and request.url.params.get("date_start") == "2026-03-15"
        ):
            body["sent_email_stats"][0]["total"] = "n/a"
        return body

    simulator = CloseSimulator(small_org())
    pipeline = make_pipeline(tmp_path)
    transport = rewriting_transport(simulator, break_total)
    run(
        pipeline,
        close_source(
            **source_kwargs(simulator, start_date=START, transport=transport)
        ).with_resources("sent_emails_by_template"),
    )
    assert variant_columns(pipeline) == ["sent_emails_by_template.total__v_text"]
    con = warehouse(pipeline)
    assert rows(
        con, "select total__v_text from sent_emails_by_template where total__v_text is not null"
    ) == [("n/a",)]
