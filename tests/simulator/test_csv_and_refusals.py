"""``Accept: text/csv`` on the activity and funnel reports (the numbers equal the JSON
answer), and endpoints made to refuse (plan-gated reports) in-process and from the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from close_reports.simulator import CloseSimulator, Org
from close_reports.simulator.csvout import wants_csv
from close_reports.simulator.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]
KEYS = [m.key for m in METRICS]


def cell(value: object) -> str:
    if value is None:
        return ""
    return json.dumps(value)


def as_csv(client: httpx.Client, path: str, body: dict) -> tuple[list[dict], dict]:
    """(CSV rows as dicts, the JSON answer) of one request."""
    answer = client.post(path, json=body, headers={"Accept": "text/csv"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    as_json = client.post(path, json=body)
    assert as_json.headers["content-type"] == "application/json"
    return rows, as_json.json()


@pytest.mark.parametrize("offset", ["0", "-5"])
def test_activity_overview_csv_equals_json(client: httpx.Client, offset: str) -> None:
    body = {
        "type": "overview",
        "metrics": KEYS,
        "datetime_range": {"start": "2026-03-01", "end": "2026-03-15"},
    }
    client.headers["X-TZ-Offset"] = offset
    rows, answer = as_csv(client, "/report/activity/", body)
    assert len(rows) == len(answer["data"]) == 14
    for row, bucket in zip(rows, answer["data"], strict=True):
        assert list(row) == ["datetime", *KEYS]
        assert row == {k: (v if k == "datetime" else cell(v)) for k, v in bucket.items()}


def test_activity_comparison_csv_equals_json(client: httpx.Client, org: Org) -> None:
    body = {
        "type": "comparison",
        "metrics": KEYS,
        "datetime_range": {"start": "2026-03-02", "end": "2026-03-03"},
    }
    rows, answer = as_csv(client, "/report/activity/", body)
    assert [r["user_id"] for r in rows] == [r["user_id"] for r in answer["data"]]
    names = {u.id: u.full_name for u in org.users}
    for row, item in zip(rows, answer["data"], strict=True):
        assert row["user_name"] == names[item["user_id"]]
        for key in KEYS:
            assert row[key] == cell(item[key]), key
    assert any(row["calls.all.all.count"] not in ("", "0") for row in rows)


@pytest.mark.parametrize("cohort", ["created-cohort", "active-stage-cohort"])
def test_funnel_csv_is_the_per_user_part_of_the_json(
    client: httpx.Client, org: Org, cohort: str
) -> None:
    body = {
        "pipeline": org.pipelines[0].id,
        "type": cohort,
        "cohort_datetime_range": {"start": "2026-01-20", "end": "2026-03-20"},
        "report_datetime_range": {"start": "2026-02-01", "end": "2026-03-01"},
    }
    rows, totals = as_csv(client, "/report/funnel/opportunity/totals/", body)
    assert len(rows) == len(totals["data"]) > 0  # per-user only, as Close documents
    for row, item in zip(rows, totals["data"], strict=True):
        assert row["user_id"] == item["user_id"]
        for key, value in item.items():
            if key != "user_id":
                assert row[key] == cell(value), key
    rows, stages = as_csv(client, "/report/funnel/opportunity/stages/", body)
    expected = [
        (item["user_id"], index, stage)
        for item in stages["data"]
        for index, stage in enumerate(item["stages"])
    ]
    assert len(rows) == len(expected) > 0
    for row, (user_id, index, stage) in zip(rows, expected, strict=True):
        assert (row["user_id"], int(row["stage_index"])) == (user_id, index)
        assert (row["status_id"], row["status_label"], row["status_type"]) == (
            stage["status"]["id"],
            stage["status"]["label"],
            stage["status"]["type"],
        )
        for key, value in stage.items():
            if key != "status":
                assert row[key] == cell(value), key


def test_accept_negotiation(client: httpx.Client, org: Org) -> None:
    assert wants_csv("text/csv")
    assert wants_csv("text/csv, application/json;q=0.5")
    assert not wants_csv("text/csv;q=0.5, application/json")
    assert not wants_csv("application/json")
    assert not wants_csv("*/*")
    assert not wants_csv(None)
    assert wants_csv("text/*")
    # reports without a documented CSV form keep answering JSON; errors are JSON
    sent = client.get(f"/report/sent_emails/{org.id}/", headers={"Accept": "text/csv"})
    assert sent.headers["content-type"] == "application/json"
    bad = client.post(
        "/report/activity/", json={"type": "overview"}, headers={"Accept": "text/csv"}
    )
    assert bad.status_code == 400 and "field-errors" in bad.json()


# ---------------------------------------------------------------- refused endpoints


def test_refused_endpoints_answer_closes_errors(org: Org) -> None:
    simulator = CloseSimulator(
        org,
        refuse={
            "/report/funnel/": 403,
            "/report/statuses/": 404,
            "/report/statuses/opportunity/": (402, "Upgrade to see opportunity reports."),
            "/api/v1/report/custom/": 400,
        },
    )
    pipeline = org.pipelines[0].id
    body = {"pipeline": pipeline, "type": "created-cohort", "cohort_relative_range": "last-month"}
    with simulator.client() as client:
        funnel = client.post("/report/funnel/opportunity/totals/", json=body)
        assert funnel.status_code == 403
        assert funnel.json() == {"error": "This report is not available on your plan."}
        assert client.get(f"/report/statuses/lead/{org.id}/").status_code == 404
        longest = client.get(f"/report/statuses/opportunity/{org.id}/")
        assert longest.status_code == 402
        assert longest.json() == {"error": "Upgrade to see opportunity reports."}
        explorer = client.get(f"/report/custom/{org.id}/")
        assert explorer.status_code == 400 and set(explorer.json()) == {"errors", "field-errors"}
        assert client.get("/report/custom/fields/").status_code == 400
        assert client.get("/report/activity/metrics/").status_code == 200
        assert client.get("/me/").status_code == 200
        with simulator.client(api_key="wrong") as stranger:  # 401 comes first
            assert stranger.post("/report/funnel/opportunity/totals/", json=body).status_code == 401
        simulator.refuse.pop("/report/funnel/")  # editable between requests
        assert client.post("/report/funnel/opportunity/totals/", json=body).status_code == 200
    stats = simulator.stats()
    assert stats["refused"] == 5
    assert stats["by_endpoint"]["report_funnel_totals"] == 2  # the 401 is "unknown"
    statuses = [r.status for r in simulator.request_log]
    assert statuses.count(403) == 1 and statuses.count(402) == 1
    with pytest.raises(ValueError):
        CloseSimulator(org, refuse={"/report/": 200})


def test_refusals_from_the_command_line(org: Org) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable, "-m", "close_reports.simulator", "--port", "0", "--seed", "7",
            "--anchor-date", "2026-03-20", "--refuse", "/report/funnel/=403",
            "--refuse", "/report/statuses/lead/=404:No lead reports here.",
            "--horizon-days", "10", "--now", "2026-03-25",
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.match(r"^Close simulator listening on (http://[\d.]+:\d+/api/v1) ", line)
        assert match, line
        base = match.group(1)
        with httpx.Client(base_url=base, auth=("demo", ""), timeout=30) as client:
            org_id = client.get("/me/").json()["organizations"][0]["id"]
            funnel = client.post(
                "/report/funnel/opportunity/stages/",
                json={"pipeline": "x", "type": "created-cohort"},
            )
            assert funnel.status_code == 403 and "plan" in funnel.json()["error"]
            lead = client.get(f"/report/statuses/lead/{org_id}/")
            assert (lead.status_code, lead.json()) == (404, {"error": "No lead reports here."})
            assert client.get(f"/report/statuses/opportunity/{org_id}/").status_code == 200
            now = client.get("/__simulator__/now").json()
            assert now["now"].startswith("2026-03-25T00:00:00")
            client.post("/__simulator__/now", json={"now": "2026-03-28"})
            today = client.post(
                "/report/activity/",
                json={"type": "overview", "metrics": ["calls.all.all.count"],
                      "relative_range": "yesterday"},
            ).json()  # fmt: skip
            assert today["data"][0]["datetime"] == "2026-03-27T00:00:00+00:00"
    finally:
        process.terminate()
        process.wait(10)
    bad = subprocess.run(
        [sys.executable, "-m", "close_reports.simulator", "--refuse", "/report/funnel/=200"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "4xx or 5xx" in bad.stderr
