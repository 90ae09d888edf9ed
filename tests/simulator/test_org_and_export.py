"""The generated organization, determinism, late-data mutations and the exported event log."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest

from close_reports.simulator import (
    CloseSimulator,
    Org,
    event_tables,
    events_to_duckdb,
    export_events,
    generate_org,
)
from close_reports.simulator.metrics import METRICS

from .conftest import ANCHOR, SEED
from .expected import S, local_midnight, status_paths, status_truth


def test_same_seed_same_org_and_responses(org: Org) -> None:
    again = generate_org(SEED, "small", ANCHOR)
    first, second = event_tables(org), event_tables(again)
    assert first.keys() == second.keys()
    for name in first:
        assert first[name].equals(second[name]), name
    requests = [
        ("GET", "/me/", None),
        (
            "GET",
            f"/report/statuses/opportunity/{org.id}/?date_start=2026-02-01&date_end=2026-03-01",
            None,
        ),
        ("GET", f"/report/sent_emails/{org.id}/?date_start=2026-03-01&date_end=2026-03-02", None),
        (
            "POST",
            "/report/activity/",
            {
                "type": "comparison",
                "metrics": [m.key for m in METRICS],
                "relative_range": "last-week",
            },
        ),
        (
            "POST",
            "/report/funnel/opportunity/stages/",
            {
                "pipeline": org.pipelines[0].id,
                "type": "created-cohort",
                "cohort_relative_range": "last-month",
            },
        ),
    ]
    with CloseSimulator(org).client() as a, CloseSimulator(again).client() as b:
        for method, path, body in requests:
            ra = a.request(method, path, json=body, headers={"X-TZ-Offset": "-5"})
            rb = b.request(method, path, json=body, headers={"X-TZ-Offset": "-5"})
            assert ra.status_code == 200 and ra.content == rb.content, path


def test_other_seed_other_org(org: Org) -> None:
    other = generate_org(SEED + 1, "small", ANCHOR)
    assert other.id != org.id
    assert len(other.calls) != len(org.calls) or list(other.calls.at) != list(org.calls.at)


def test_default_anchor_is_yesterday() -> None:
    org = generate_org(2, "small")
    assert org.anchor_date == (datetime.now(UTC) - timedelta(days=1)).date()


def test_scales_and_medium_generation_time() -> None:
    started = time.perf_counter()
    medium = generate_org(1, "medium", date(2025, 12, 31))
    assert time.perf_counter() - started < 5
    assert len(medium.users) == 25
    assert medium.history_end - medium.history_start == 365 * 86_400
    assert len(medium.pipelines) == 3
    with pytest.raises(ValueError):
        generate_org(1, "gigantic")


def test_medium_comparison_is_fast() -> None:
    medium = generate_org(1, "medium", date(2025, 12, 31))
    simulator = CloseSimulator(medium)
    simulator.warm_up()
    body = {
        "type": "comparison",
        "metrics": [m.key for m in METRICS],
        "datetime_range": {"start": "2025-11-03", "end": "2025-11-04"},
    }
    with simulator.client() as client:
        client.post("/report/activity/", json=body)
        started = time.perf_counter()
        for _ in range(10):
            assert client.post("/report/activity/", json=body).status_code == 200
    assert (time.perf_counter() - started) / 10 < 0.05


def test_org_contents(org: Org, duck: duckdb.DuckDBPyConnection) -> None:
    assert org.id.startswith("orga_")
    assert all(u.id.startswith("user_") for u in org.users)
    assert len({u.email for u in org.users}) == len(org.users) == 6
    assert sum(not u.is_active for u in org.users) == 2
    assert len(org.pipelines) >= 2
    for table in ("calls", "emails", "sms", "leads"):
        column = "created_at"
        lo, hi = duck.execute(f"select min({column}), max({column}) from {S}.{table}").fetchall()[0]
        assert lo >= datetime(2026, 1, 20) and hi < datetime(2026, 3, 21)
    hours = Counter(
        h for (h,) in duck.execute(f"select hour(created_at) from {S}.calls").fetchall()
    )
    assert len(hours) >= 16  # users in several timezones: activity spread over the UTC day
    for kind in ("calls", "emails", "sms"):
        assert (
            duck.execute(f"select count(distinct direction) from {S}.{kind}").fetchall()[0][0] == 2
        )
    call_types = {
        t for (t,) in duck.execute(f"select distinct call_type from {S}.calls").fetchall()
    }
    assert call_types == {"regular", "power_dialer", "predictive_dialer", "external"}
    periods = {
        p
        for (p,) in duck.execute(f"select distinct value_period from {S}.opportunities").fetchall()
    }
    assert periods == {"one_time", "monthly", "annual"}


@pytest.mark.parametrize("kind", ["lead", "opportunity"])
def test_status_chains_are_consistent(duck: duckdb.DuckDBPyConnection, kind: str) -> None:
    for events in status_paths(duck, kind).values():
        current = events[0][2]
        assert events[0][1] is None
        for _, old, new in events[1:]:
            assert old == current
            current = new


def test_deleted_status_history(org: Org, duck: duckdb.DuckDBPyConnection) -> None:
    deleted = next(s for s in org.lead_statuses if s.is_deleted)
    assert deleted.deleted_at is not None
    entries = duck.execute(
        f"select count(*), max(changed_at) from {S}.lead_status_changes where new_status_id = ?",
        [deleted.id],
    ).fetchall()[0]
    assert entries[0] > 0
    truth = status_truth(
        status_paths(duck, "lead"), deleted.deleted_at + 1, deleted.deleted_at + 60
    )
    assert truth.counters.get(deleted.id, {}).get("started", 0) == 0


def test_export_files_and_duckdb(org: Org, tmp_path: Path) -> None:
    files = export_events(org, tmp_path / "events")
    assert set(files) >= {
        "users", "lead_statuses", "opportunity_statuses", "pipelines", "templates", "leads",
        "lead_status_changes", "opportunities", "opportunity_status_changes", "calls",
        "emails", "email_opens", "sms",
    }  # fmt: skip
    assert pq.read_table(files["calls"]).num_rows == len(org.calls)
    assert pq.read_table(files["email_opens"]).num_rows == len(org.email_opens)
    database = tmp_path / "events.duckdb"
    counts = events_to_duckdb(org, database, schema="raw_events")
    assert counts["leads"] == len(org.leads)
    con = duckdb.connect(str(database))
    try:
        assert con.execute("select count(*) from raw_events.sms").fetchall()[0][0] == len(org.sms)
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'raw_events' and table_name = 'calls'"
            ).fetchall()
        )
        assert types["created_at"] == "TIMESTAMP" and types["duration"] == "BIGINT"
    finally:
        con.close()


# ---------------------------------------------------------------- late data


def comparison(client: httpx.Client, day: date, keys: list[str]) -> dict[str, dict]:
    body = {
        "type": "comparison",
        "metrics": keys,
        "datetime_range": {"start": str(day), "end": str(day + timedelta(days=1))},
    }
    return {r["user_id"]: r for r in client.post("/report/activity/", json=body).json()["data"]}


def test_late_call_and_email_change_a_past_day(fresh_org: Org) -> None:
    org = fresh_org
    user = org.users[1]
    day = ANCHOR - timedelta(days=2)
    keys = [
        "calls.outbound.power_dialer.count",
        "calls.outbound.power_dialer.sum_duration",
        "emails.sent.manual_with_reply.count",
        "emails.opened.all.count",
    ]
    with CloseSimulator(org).client() as client:
        before = comparison(client, day, keys)[user.id]
        other_day = comparison(client, day - timedelta(days=1), keys)
        version = org.version
        at = datetime(day.year, day.month, day.day, 15, 30, tzinfo=UTC)
        org.add_call(user.id, at, call_type="power_dialer", duration=300)
        org.add_email(
            user.id,
            at,
            replied_at=at + timedelta(hours=2),
            opened_at=[at + timedelta(minutes=5), at + timedelta(hours=1)],
        )
        assert org.version > version
        after = comparison(client, day, keys)[user.id]
        assert (
            after["calls.outbound.power_dialer.count"]
            == before["calls.outbound.power_dialer.count"] + 1
        )
        assert (
            after["calls.outbound.power_dialer.sum_duration"]
            == before["calls.outbound.power_dialer.sum_duration"] + 300
        )
        assert (
            after["emails.sent.manual_with_reply.count"]
            == before["emails.sent.manual_with_reply.count"] + 1
        )
        assert after["emails.opened.all.count"] == before["emails.opened.all.count"] + 1
        assert comparison(client, day - timedelta(days=1), keys) == other_day
    with pytest.raises(ValueError):
        org.add_sms(user.id, datetime(2030, 1, 1, tzinfo=UTC))


def test_late_status_changes_keep_reports_consistent(fresh_org: Org) -> None:
    org = fresh_org
    day = ANCHOR - timedelta(days=3)
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    lead_id = org.lead_id(5)
    customer = next(s for s in org.lead_statuses if s.label == "Customer")
    org.add_lead_status_change(lead_id, at, customer.id)
    opp = 0
    won = next(
        s for s in org.opportunity_statuses
        if s.type == "won" and s.pipeline_id == org.pipelines[org.opportunities.pipeline[opp]].id
    )  # fmt: skip
    before_won = None
    with CloseSimulator(org).client() as client:
        params = {"date_start": str(day), "date_end": str(day + timedelta(days=1))}
        before_won = client.post(
            "/report/activity/",
            json={
                "type": "overview",
                "metrics": ["opportunities.won.all.count"],
                "datetime_range": {"start": str(day), "end": str(day + timedelta(days=1))},
            },
        ).json()["aggregations"]["totals"]["opportunities.won.all.count"]
        org.add_opportunity_status_change(org.opportunity_id(opp), at, won.id)
        report = client.get(f"/report/statuses/lead/{org.id}/", params=params).json()
        after_won = client.post(
            "/report/activity/",
            json={
                "type": "overview",
                "metrics": ["opportunities.won.all.count"],
                "datetime_range": {"start": str(day), "end": str(day + timedelta(days=1))},
            },
        ).json()["aggregations"]["totals"]["opportunities.won.all.count"]
    assert after_won == before_won + 1
    con = duckdb.connect()
    events_to_duckdb(org, con)
    paths = status_paths(con, "lead")
    for events in paths.values():  # the inserted change kept every chain consistent
        current = events[0][2]
        for _, old, new in events[1:]:
            assert old == current
            current = new
    truth = status_truth(paths, local_midnight(day, 0), local_midnight(day + timedelta(days=1), 0))
    row = next(r for r in report["status_overview"] if r["status_id"] == customer.id)
    assert row["entered"] == truth.counters[customer.id]["entered"] >= 1
    con.close()
