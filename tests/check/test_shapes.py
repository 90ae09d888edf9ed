"""The checks of `close-pipeline check` as pure functions: Close's documented examples pass,
and each kind of difference (a key the reshaper reads, a declared column, a type, a null key,
a new field) is named exactly."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, Dict, List

import httpx
import pyarrow as pa
import pytest

from close_reports.check import replay, report_differences, run_check, table_differences
from close_reports.simulator import CloseSimulator
from close_reports.source.arrow import arrow_schema
from close_reports.source.client import CloseClient
from close_reports.source.config import ALL
from close_reports.source.orgs import OrgContext
from close_reports.source.reports import REPORTS, Call, Scope
from close_reports.source.windows import Window
from tests.utils import TODAY, small_org

DOCS = Path(__file__).resolve().parents[1] / "fixtures" / "close_docs"
REGISTRY = {report.name: report for report in REPORTS}
DAY = Window(date(2019, 1, 1), date(2019, 1, 2))
MONTH = Window(date(2019, 1, 1), date(2019, 2, 1))


def docs(name: str) -> Any:
    return json.loads((DOCS / f"{name}.json").read_text())


def scope(report_name: str, metric_keys: List[str] = ()) -> Scope:
    org = OrgContext(CloseClient("unused", transport=httpx.MockTransport(httpx.Response)))
    org.org_id = "orga_docs"
    report = REGISTRY[report_name]
    keys = list(metric_keys) if report.with_metrics else []
    schemas = {t: arrow_schema(t, keys) for t in report.tables}
    return Scope(org, ALL, "UTC", 100, 31, None, schemas)


def metric_keys(response: Dict[str, Any], skip: str) -> List[str]:
    return sorted({k for row in response["data"] for k in row if k != skip})


CASES = [
    ("activity_by_user", "activity_comparison", Call(DAY), "user_id"),
    ("activity_overview", "activity_overview", Call(Window(DAY.start, date(2019, 1, 8))),
     "datetime"),
    ("sent_emails_by_template", "sent_emails", Call(DAY), None),
    ("lead_status_reports", "lead_status_report", Call(DAY), None),
    ("funnel_totals", "funnel_totals", Call(MONTH, "month", "pipe_1", "created-cohort"), None),
    ("funnel_stages", "funnel_stages", Call(MONTH, "month", "pipe_1", "created-cohort"), None),
]  # fmt: skip


@pytest.mark.parametrize(("report", "fixture", "call", "metric_field"), CASES)
def test_closes_documented_examples_pass(report, fixture, call, metric_field) -> None:
    response = docs(fixture)
    keys = metric_keys(response, metric_field) if metric_field else []
    differences, notes, parts = report_differences(
        REGISTRY[report], [response], call, scope(report, keys)
    )
    assert differences == []
    assert notes == []
    assert all(len(part) for part in parts.values())


def test_a_key_the_reshaper_reads_and_does_not_find_is_named() -> None:
    response = docs("lead_status_report")
    del response["status_transitions_summary"]
    differences, _, _ = report_differences(
        REGISTRY["lead_status_reports"], [response], Call(DAY), scope("lead_status_reports")
    )
    assert differences == [
        "no `status_transitions_summary` in Close's answer (the loader reads it)"
    ]


def test_an_answer_the_reshaper_refuses_is_named_with_its_reason() -> None:
    response = docs("funnel_totals")
    response["data"] = {"not": "a list"}
    differences, _, _ = report_differences(
        REGISTRY["funnel_totals"],
        [response],
        Call(MONTH, "month", "pipe_1", "created-cohort"),
        scope("funnel_totals"),
    )
    assert differences == [
        "POST /report/funnel/opportunity/totals/: `data` should be a list, got {'not': 'a list'}"
    ]


def _sent(**changes: Any) -> List[Dict[str, Any]]:
    row = {
        "org_id": "o", "segment": "_all", "window_start": DAY.start, "window_end": DAY.end,
        "timezone": "UTC", "template_key": "_all", "template_id": None, "name": "All Emails",
        "template_url": None, "is_shared": True, "total": 3, "opened": 2, "responded": 1,
        "percentage_opened": 66.7, "percentage_responded": 33, "_queries_total": "q",
        "_queries_opened": "q", "_queries_responded": "q",
    }  # fmt: skip
    row.update(changes)
    return [{k: v for k, v in row.items() if v != "DROP"}]


def test_table_differences_name_each_kind_exactly() -> None:
    schema = arrow_schema("sent_emails_by_template")
    assert table_differences("sent_emails_by_template", _sent(), schema) == ([], [])
    assert table_differences("sent_emails_by_template", _sent(opened="2"), schema)[0] == [
        "sent_emails_by_template: `opened` is text (e.g. '2'), declared bigint"
    ]
    assert table_differences("sent_emails_by_template", _sent(total=2.5), schema)[0] == [
        "sent_emails_by_template: `total` is double (e.g. 2.5), declared bigint"
    ]
    assert table_differences("sent_emails_by_template", _sent(responded="DROP"), schema)[0] == [
        "sent_emails_by_template: missing `responded`"
    ]
    assert table_differences("sent_emails_by_template", _sent(template_key=None), schema)[0] == [
        "sent_emails_by_template: `template_key` is null in 1 of 1 rows (a key column)"
    ]
    new = table_differences("sent_emails_by_template", _sent(bounced=0), schema)
    assert new == ([], ["sent_emails_by_template: new `bounced` (loaded as new columns)"])
    empty = table_differences("sent_emails_by_template", [], schema)
    assert empty == ([], ["sent_emails_by_template: no rows in this window, columns not checked"])
    table = pa.table({"template_key": ["_all"]})  # the loader's Arrow path fits by design
    assert table_differences("sent_emails_by_template", table, schema) == ([], [])


def test_month_reports_read_last_month_when_today_is_the_first() -> None:
    simulator = CloseSimulator({"k": small_org()})
    settings = {"api_key": "k", "base_url": "http://close.test/api/v1", "today": "2026-04-01"}
    probes = {p.name: p for p in run_check(settings, emit=lambda _: None,
                                            transport=simulator.transport())}  # fmt: skip
    assert probes["funnel_totals"].context["call"]["window_start"] == "2026-03-01"
    assert probes["funnel_totals"].context["call"]["window_end"] == "2026-04-01"
    assert probes["activity_by_user"].context["call"]["window_start"] == "2026-03-31"
    assert all(p.passed for p in probes.values())


def test_several_keys_record_a_folder_per_org_and_replay(tmp_path) -> None:
    first, second = small_org(), small_org(seed=11)
    simulator = CloseSimulator({"key_one": first, "key_two": second, "key_three": first})
    settings = {
        "api_keys": ["key_one", "key_two", "key_three"],
        "base_url": "http://close.test/api/v1",
        "today": TODAY.isoformat(),
    }
    seen: List[str] = []
    probes = run_check(settings, emit=seen.append, transport=simulator.transport(),
                       record=tmp_path)  # fmt: skip
    assert all(p.passed for p in probes)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.id, second.id])
    third = [line for line in seen if line.startswith("me ")][-1]
    assert "already checked with another key" in third  # the loader reads an org once
    replayed = replay(tmp_path, emit=lambda _: None)
    assert len(replayed) == len(probes) - 1 and all(p.passed for p in replayed)
    assert {p.org_id for p in replayed} == {first.id, second.id}
