"""`close-pipeline check`: the real command against the simulator served over real HTTP.

Each test serves a simulator (plain, altered in a known way, or refusing endpoints) on
loopback, runs the installed ``close-pipeline check`` in a subprocess with the configuration a
user would set (env vars), and reads its one line per endpoint and its exit status. The
recorded answers of ``--record`` are loaded back through the reshapers (``replay``) and
compared with the rows of a live check.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import httpx
import pytest

from close_reports.check import EMAIL, replay, run_check
from close_reports.close_pipeline import main
from close_reports.simulator import CloseSimulator, Org, serve
from close_reports.source.reports import LISTINGS, REPORTS
from close_reports.source.settings import EXAMPLE_CUSTOM_REPORTS
from tests.utils import TODAY, project_dir, small_org

pytestmark = pytest.mark.e2e

CLI = [str(Path(sys.executable).parent / "close-pipeline"), "check"]
KEY = "api_3kTq9ZxLcheckKEY0b7"
QUERIES = [dict(q) for q in EXAMPLE_CUSTOM_REPORTS]
ENDPOINTS = (
    ["me", "organization"]
    + sorted((listing.table for listing in LISTINGS), key=lambda t: t != "pipelines")
    + [r.name for r in REPORTS if not r.per_query]
    + [f"custom_reports:{q['name']}" for q in QUERIES]
)


@pytest.fixture(scope="module")
def org() -> Org:
    return small_org()


class Altered(CloseSimulator):
    """The simulator with some answers changed by ``alter(method, path, body, answer)``."""

    def __init__(self, org: Org, alter: Callable[[str, str, Any, Any], Any]) -> None:
        super().__init__({KEY: org})
        self.alter = alter

    def handle(self, request: httpx.Request) -> httpx.Response:
        response = super().handle(request)
        if response.status_code != 200:
            return response
        body = json.loads(request.content) if request.content else None
        answer = self.alter(request.method, request.url.path, body, response.json())
        return httpx.Response(200, json=answer)


@contextmanager
def served(simulator: CloseSimulator) -> Iterator[str]:
    server, thread = serve(simulator)
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def check(tmp_path: Path, url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Runs ``close-pipeline check`` as a user would, in an empty working directory."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))
    }
    environment.update(
        SOURCES__CLOSE__BASE_URL=url,
        SOURCES__CLOSE__API_KEY=KEY,
        SOURCES__CLOSE__TIMEZONE="America/New_York",
        SOURCES__CLOSE__TODAY=TODAY.isoformat(),
        SOURCES__CLOSE__CUSTOM_REPORTS=json.dumps(QUERIES),
        DLT_DATA_DIR=str(tmp_path / "dlt"),
        RUNTIME__DLTHUB_TELEMETRY="false",
    )
    environment.update(env)
    environment = {k: v for k, v in environment.items() if v}
    return subprocess.run(
        CLI + list(args), cwd=tmp_path, env=environment, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def lines(result: subprocess.CompletedProcess) -> Dict[str, str]:
    """The line of each endpoint, by its name (the first column)."""
    found = {}
    for line in result.stdout.splitlines():
        name = line.split(" ", 1)[0]
        if name in ENDPOINTS:
            found[name] = line
    return found


def test_passes_on_the_simulator_listing_every_endpoint(tmp_path, org) -> None:
    with served(CloseSimulator({KEY: org})) as url:
        result = check(tmp_path, url)
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines(result)
    assert list(found) == ENDPOINTS  # one line per endpoint, in the order probed
    for line in found.values():
        assert re.search(r"\s200\s+ok\b", line), line
    # the registry's own endpoints and smallest windows: yesterday, its month to date
    assert "POST /report/activity/ (comparison)" in found["activity_by_user"]
    assert "GET /report/statuses/lead/{org_id}/" in found["lead_status_reports"]
    assert "[2026-03-20, 2026-03-21)" in found["activity_by_user"]
    assert "[2026-03-01, 2026-03-21)" in found["funnel_totals"]
    assert "created-cohort" in found["funnel_stages"]
    assert result.stdout.strip().splitlines()[-1] == (
        f"close-pipeline check: all {len(ENDPOINTS)} endpoints answer as the loader expects"
    )
    assert KEY not in result.stdout + result.stderr


def _alter(method: str, path: str, body: Any, answer: Any) -> Any:
    if path.endswith("/report/activity/") and body["type"] == "comparison":
        for row in answer["data"]:
            row.pop("user_id")
    elif path.endswith("/report/activity/") and body["type"] == "overview":
        for bucket in answer["data"]:
            bucket["calls.all.all.count"] = str(bucket["calls.all.all.count"])
    elif "/report/statuses/lead/" in path:
        del answer["status_overview"]
    elif path.endswith("/report/funnel/opportunity/totals/"):
        for row in [answer["aggregations"], *answer["data"]]:
            del row["count_win_rate"]
    elif "/report/sent_emails/" in path:
        for row in answer["sent_email_stats"]:
            row["bounced"] = 0
    elif path.endswith("/user/"):
        for user in answer["data"]:
            user["first_name"] = 7
    return answer


def test_an_altered_answer_is_named(tmp_path, org) -> None:
    with served(Altered(org, _alter)) as url:
        result = check(tmp_path, url)
    assert result.returncode == 1, result.stdout + result.stderr
    found = lines(result)
    assert list(found) == ENDPOINTS
    comparison = found["activity_by_user"]
    assert "differs:" in comparison and "row without user_id" in comparison
    overview = found["activity_overview"]
    assert "differs: activity_overview: `calls_all_all_count` is text" in overview
    assert "declared bigint" in overview
    lead = found["lead_status_reports"]
    assert "differs: no `status_overview` in Close's answer" in lead
    assert "`status_overview`" in lead and "lead_status_transitions" not in lead
    totals = found["funnel_totals"]
    assert "differs: funnel_totals: missing `count_win_rate`" in totals
    users = found["users"]
    assert "differs: users: `first_name` is bigint (e.g. 7), declared text" in users
    # a field the contract does not know is loaded as a new column: named, but it passes
    sent = found["sent_emails_by_template"]
    assert re.search(r"\s200\s+ok \(.*new `bounced` \(loaded as new columns\)", sent), sent
    altered = {"activity_by_user", "activity_overview", "lead_status_reports", "funnel_totals",
               "users"}  # fmt: skip
    for name in set(ENDPOINTS) - altered:
        assert re.search(r"\s200\s+ok\b", found[name]), found[name]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("close-pipeline check failed: 5 of 19 endpoints")
    for name in altered:
        assert f"{name} (200)" in last


def test_a_server_lacking_the_status_and_funnel_reports_names_them(tmp_path, org) -> None:
    refuse = {"/report/statuses/": 404, "/report/funnel/": 404, "/report/sent_emails/": 403}
    with served(CloseSimulator({KEY: org}, refuse=refuse)) as url:
        result = check(tmp_path, url)
    assert result.returncode == 1, result.stdout + result.stderr
    found = lines(result)
    assert list(found) == ENDPOINTS
    missing = ["lead_status_reports", "opportunity_status_reports", "funnel_totals",
               "funnel_stages"]  # fmt: skip
    for name in missing:
        assert re.search(
            r"\s404\s+refused: The requested URL was not found on the server\. "
            r"\(Close has no such endpoint for this key\)$",
            found[name],
        ), found[name]
    assert re.search(
        r"\s403\s+refused: This report is not available on your plan\.",
        found["sent_emails_by_template"],
    )
    for name in set(ENDPOINTS) - set(missing) - {"sent_emails_by_template"}:
        assert re.search(r"\s200\s+ok\b", found[name]), found[name]
    last = result.stderr.strip().splitlines()[-1]
    assert "5 of 19 endpoints were refused" in last
    for name in missing:
        assert f"{name} (404)" in last
    assert "sent_emails_by_template (403)" in last


def test_bad_configuration_exits_2(tmp_path, org, monkeypatch, capsys) -> None:
    with project_dir(monkeypatch, tmp_path):
        assert main(["check"]) == 2  # no key configured: before any request
    assert "No Close API key configured" in capsys.readouterr().err.strip().splitlines()[-1]
    simulator = CloseSimulator({KEY: org})
    bad = [{"name": "mrr", "x": "lead.custom.Nope", "y": "lead.count"}]
    with served(simulator) as url:
        monkeypatch.setenv("SOURCES__CLOSE__BASE_URL", url)
        monkeypatch.setenv("SOURCES__CLOSE__API_KEY", KEY)
        monkeypatch.setenv("SOURCES__CLOSE__TODAY", TODAY.isoformat())
        monkeypatch.setenv("SOURCES__CLOSE__CUSTOM_REPORTS", json.dumps(bad))
        assert main(["check"]) == 2
    out = capsys.readouterr()
    assert "custom_reports:mrr (bad config)" in out.err.strip().splitlines()[-1]
    line = next(ln for ln in out.out.splitlines() if ln.startswith("custom_reports:mrr"))
    assert "bad config: not sent:" in line and "'lead.custom.Nope'" in line
    assert "closest listed:" in line
    # the query was never sent; every other endpoint was
    assert not [r for r in simulator.request_log if "/report/custom/orga" in r.path]


def _rows(part: Any) -> List[Dict[str, Any]]:
    return part.to_pylist() if hasattr(part, "to_pylist") else list(part)


def _without(rows: List[Dict[str, Any]], *columns: str) -> List[Dict[str, Any]]:
    return sorted(({k: v for k, v in row.items() if k not in columns} for row in rows), key=repr)


def test_record_writes_redacted_files_that_replay_through_the_reshapers(tmp_path, org) -> None:
    record = tmp_path / "recorded"
    simulator = CloseSimulator({KEY: org})
    with served(simulator) as url:
        result = check(tmp_path, url, "--record", str(record))
    assert result.returncode == 0, result.stdout + result.stderr
    files = sorted(p.name for p in record.iterdir())
    expected = sorted([f"{name.replace(':', '.')}.json" for name in ENDPOINTS] + ["check.json"])
    assert files == expected
    text = "\n".join(p.read_text() for p in record.iterdir())
    token = base64.b64encode(f"{KEY}:".encode()).decode()
    assert KEY not in text and token not in text
    assert not EMAIL.findall(text)
    for user in org.users:
        assert user.email not in text
        assert not re.search(rf"\b({user.first_name}|{user.last_name})\b", text), user
    lookup = json.loads((record / "activity_by_user.json").read_text())
    displays = lookup["exchanges"][0]["response"]["lookup"]["user"].values()
    assert displays and {d["display"] for d in displays} == {"***"}
    # the ids, numbers and shapes stay: the files replay through the loader's own reshapers
    lines_seen: List[str] = []
    replayed = {p.name: p for p in replay(record, emit=lines_seen.append)}
    assert list(replayed) == ENDPOINTS
    assert all(p.passed for p in replayed.values()), lines_seen
    live = {
        p.name: p
        for p in run_check(
            {"api_key": KEY, "base_url": "http://close.test/api/v1", "timezone":
             "America/New_York", "today": TODAY.isoformat(), "custom_reports": QUERIES},
            emit=lambda line: None,
            transport=simulator.transport(),
        )
    }  # fmt: skip
    compared = 0
    for name, probe in live.items():
        for table, part in probe.parts.items():
            people = ("user_name", "first_name", "last_name", "email", "image")
            assert _without(_rows(replayed[name].parts[table]), *people) == _without(
                _rows(part), *people
            ), table
            compared += len(_rows(part))
    assert compared > 100
    assert main(["check", "--replay", str(record)]) == 0  # the command line's replay


def test_replay_of_an_altered_recording_names_the_difference(tmp_path, org) -> None:
    record = tmp_path / "recorded"
    run_check(
        {"api_key": KEY, "base_url": "http://close.test/api/v1", "today": TODAY.isoformat()},
        emit=lambda line: None,
        transport=CloseSimulator({KEY: org}).transport(),
        record=record,
    )
    path = record / "funnel_stages.json"
    document = json.loads(path.read_text())
    for stage in document["exchanges"][0]["response"]["aggregations"]["stages"]:
        stage["count"] = float(stage["count"]) + 0.5
    path.write_text(json.dumps(document))
    found: Dict[str, Any] = {p.name: p for p in replay(record, emit=lambda line: None)}
    assert not found["funnel_stages"].passed
    assert (
        "funnel_stages: `count` is bigint/double (e.g. 48.5), declared bigint"
        in found["funnel_stages"].detail
    )
    assert all(p.passed for n, p in found.items() if n != "funnel_stages")
