"""Incremental runs: lookback re-reads, idempotent merges, backfills that leave state alone."""

from datetime import datetime, timedelta

import pytest

from close_reports.simulator import CloseSimulator
from close_reports.source import close_source
from close_reports.source.settings import REPORT_TABLES, TABLES
from tests.utils import (
    ANCHOR,
    ONE_DAY,
    make_pipeline,
    rows,
    run,
    small_org,
    source_kwargs,
    table_snapshot,
    warehouse,
)

START = (ANCHOR - timedelta(days=9)).isoformat()
LOOKBACK_ONLY = {table: 3 for table in REPORT_TABLES}
"""Every report re-reading the 3-day lookback only (as before refresh windows existed)."""


def report_calls(simulator: CloseSimulator) -> dict:
    counts: dict = {}
    for record in simulator.request_log:
        if "/report/" in record.path and "/metrics/" not in record.path:
            key = record.path.split("/report/")[1].split("/")[0]
            if key == "activity":
                key += f":{record.json['type']}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def state_of(pipeline) -> dict:
    """Each table's cursor of the unfiltered segment: ``{table: {org_id: day}}``."""
    resources = pipeline.state["sources"]["close"]["resources"]
    return {
        table: {org: keys["_all"] for org, keys in state["last_day"].items() if "_all" in keys}
        for table, state in resources.items()
        if "last_day" in state
    }


def test_second_run_reads_only_lookback_and_changes_nothing(tmp_path) -> None:
    simulator = CloseSimulator(small_org())
    pipeline = make_pipeline(tmp_path)
    kwargs = source_kwargs(simulator, start_date=START, refresh_days=LOOKBACK_ONLY)
    run(pipeline, close_source(**kwargs))
    before = table_snapshot(pipeline, list(TABLES))
    org_id = simulator.request_log[0].org_id
    assert state_of(pipeline)["activity_by_user"] == {org_id: ANCHOR.isoformat()}

    simulator.request_log.clear()
    run(pipeline, close_source(**kwargs))
    assert table_snapshot(pipeline, list(TABLES)) == before
    calls = report_calls(simulator)
    # lookback 3 days: [2026-03-18, 2026-03-21), all inside March
    assert calls["activity:comparison"] == 3
    assert calls["activity:overview"] == 1
    assert calls["sent_emails"] == 3
    assert calls["statuses"] == 2 * (3 + 1)  # lead + opportunity, days + the month
    assert calls["funnel"] == 2 * 2 * 2  # totals + stages, pipelines x cohort types, one month
    bounds = sorted(
        r.json["datetime_range"]["start"]
        for r in simulator.request_log
        if r.json and r.json.get("type") == "comparison"
    )
    assert bounds == ["2026-03-18T00:00:00Z", "2026-03-19T00:00:00Z", "2026-03-20T00:00:00Z"]


def test_new_days_are_loaded_and_state_moves(tmp_path) -> None:
    simulator = CloseSimulator(small_org())
    pipeline = make_pipeline(tmp_path)
    for today in (ANCHOR - timedelta(days=5), ANCHOR + ONE_DAY):
        simulator.request_log.clear()
        kwargs = source_kwargs(simulator, start_date=START, today=today, refresh_days=LOOKBACK_ONLY)
        run(pipeline, close_source(**kwargs))
    # the second run read the lookback before the first run's last day, up to yesterday
    days = sorted(
        r.json["datetime_range"]["start"][:10]
        for r in simulator.request_log
        if r.json and r.json.get("type") == "comparison"
    )
    assert days[0] == (ANCHOR - timedelta(days=8)).isoformat()
    assert days[-1] == ANCHOR.isoformat() and len(days) == 9
    con = warehouse(pipeline)
    assert rows(
        con,
        "select count(distinct date), count(*) = count(distinct (date, user_id)) "
        "from activity_by_user",
    ) == [(10, True)]


def test_late_edit_inside_lookback_replaces_the_row(tmp_path) -> None:
    org = small_org()
    simulator = CloseSimulator(org)
    pipeline = make_pipeline(tmp_path)
    run(pipeline, close_source(**source_kwargs(simulator, start_date=START)))
    con = warehouse(pipeline)
    user_id, before = rows(
        con,
        f"""select user_id, calls_all_all_count from activity_by_user
        where date = '{ANCHOR - ONE_DAY}' order by user_id limit 1""",
    )[0]
    count_rows = rows(con, "select count(*) from activity_by_user")[0][0]
    con.close()

    late = datetime.combine(ANCHOR - ONE_DAY, datetime.min.time()).replace(hour=15)
    org.add_call(user_id, late, direction="outbound", call_type="regular", duration=120)
    run(pipeline, close_source(**source_kwargs(simulator, start_date=START)))
    con = warehouse(pipeline)
    assert rows(
        con,
        f"""select calls_all_all_count from activity_by_user
        where date = '{ANCHOR - ONE_DAY}' and user_id = '{user_id}'""",
    ) == [(before + 1,)]
    assert rows(con, "select count(*) from activity_by_user")[0][0] == count_rows
    assert (
        rows(
            con,
            f"""select calls_all_all_count from activity_overview
        where date = '{ANCHOR - ONE_DAY}'""",
        )[0][0]
        == rows(
            con,
            f"""
        select sum(calls_all_all_count) from activity_by_user where date = '{ANCHOR - ONE_DAY}'
    """,
        )[0][0]
    )


def test_backfill_loads_its_range_and_does_not_move_state(tmp_path) -> None:
    simulator = CloseSimulator(small_org())
    pipeline = make_pipeline(tmp_path)
    run(pipeline, close_source(**source_kwargs(simulator, start_date=START)))
    state = dict(state_of(pipeline))
    simulator.request_log.clear()
    backfill_start, backfill_end = ANCHOR - timedelta(days=40), ANCHOR - timedelta(days=35)
    run(
        pipeline,
        close_source(
            **source_kwargs(
                simulator, start_date=backfill_start.isoformat(), end_date=backfill_end.isoformat()
            )
        ),
    )
    assert state_of(pipeline) == state
    days = sorted(
        r.json["datetime_range"]["start"][:10]
        for r in simulator.request_log
        if r.json and r.json.get("type") == "comparison"
    )
    assert days == [(backfill_start + timedelta(days=i)).isoformat() for i in range(5)]
    con = warehouse(pipeline)
    assert rows(
        con,
        f"""select count(distinct date) from activity_by_user
        where date >= '{backfill_start}' and date < '{backfill_end}'""",
    ) == [(5,)]


def test_with_resources_loads_only_those_tables(tmp_path) -> None:
    simulator = CloseSimulator(small_org())
    pipeline = make_pipeline(tmp_path)
    source = close_source(**source_kwargs(simulator, start_date=START))
    run(pipeline, source.with_resources("funnel_totals", "users", "lead_status_transitions"))
    tables = {t["name"] for t in pipeline.default_schema.data_tables()}
    assert tables == {"funnel_totals", "users", "lead_status_transitions"}
    assert {r.path.split("/api/v1")[1].split("/")[1] for r in simulator.request_log} <= {
        "me",
        "organization",
        "user",
        "pipeline",
        "report",
    }


def test_several_orgs_load_into_the_same_tables(tmp_path) -> None:
    org_a, org_b = small_org(seed=3), small_org(seed=4)
    simulator = CloseSimulator(api_keys={"key-a": org_a, "key-b": org_b})
    pipeline = make_pipeline(tmp_path)
    run(
        pipeline,
        close_source(
            **source_kwargs(simulator, api_key=None, api_keys=["key-a", "key-b"], start_date=START)
        ),
    )
    con = warehouse(pipeline)
    ids = {org_a.id, org_b.id}
    for table in ("users", "activity_by_user", "funnel_stages", "lead_status_overview"):
        assert {r[0] for r in rows(con, f"select distinct org_id from {table}")} == ids, table
    assert set(state_of(pipeline)["activity_by_user"]) == ids


def test_dst_timezone_days_match_local_event_times(tmp_path) -> None:
    org = small_org()
    simulator = CloseSimulator(org)
    pipeline = make_pipeline(tmp_path)
    zone = "America/New_York"
    run(
        pipeline,
        close_source(
            **source_kwargs(
                simulator, timezone=zone, start_date="2026-03-05", end_date="2026-03-12"
            )
        ).with_resources("activity_by_user", "activity_overview"),
    )
    con = warehouse(pipeline, org)
    loaded = dict(
        rows(con, "select date, sum(calls_all_all_count) from activity_by_user group by 1")
    )
    truth = dict(
        rows(
            con,
            f"""
        select cast(timezone('{zone}', created_at::timestamp at time zone 'UTC') as date) d,
               count(*) from memory.ev.calls group by 1""",
        )
    )
    assert loaded == {d: truth.get(d, 0) for d in loaded}
    assert len(loaded) == 7
    overview = dict(rows(con, "select date, calls_all_all_count from activity_overview"))
    assert overview == loaded
    offsets = {
        r.json["datetime_range"]["start"][-6:]
        for r in simulator.request_log
        if r.json and r.json.get("type") == "overview"
    }
    assert offsets == {"-05:00", "-04:00"}


@pytest.mark.parametrize("lookback", [0, 5])
def test_lookback_setting(tmp_path, lookback: int) -> None:
    simulator = CloseSimulator(small_org())
    pipeline = make_pipeline(tmp_path)
    kwargs = source_kwargs(
        simulator,
        start_date=START,
        lookback_days=lookback,
        refresh_days={"sent_emails_by_template": lookback},
    )
    run(pipeline, close_source(**kwargs).with_resources("sent_emails_by_template"))
    simulator.request_log.clear()
    run(pipeline, close_source(**kwargs).with_resources("sent_emails_by_template"))
    assert report_calls(simulator).get("sent_emails", 0) == lookback


def test_an_explorer_query_added_later_is_backfilled(tmp_path) -> None:
    simulator = CloseSimulator(small_org())
    pipeline = make_pipeline(tmp_path)
    leads = {"name": "leads", "x": "lead.date_created", "y": "lead.count", "interval": "day"}
    calls = {"name": "calls", "x": "call.date_created", "y": "call.count", "interval": "day"}
    start = "2026-02-10"
    run(
        pipeline,
        close_source(
            **source_kwargs(simulator, start_date=start, custom_reports=[leads])
        ).with_resources("custom_reports"),
    )
    simulator.request_log.clear()
    run(
        pipeline,
        close_source(
            **source_kwargs(simulator, start_date=start, custom_reports=[leads, calls])
        ).with_resources("custom_reports"),
    )
    months = sorted(
        (r.params["x"], r.params["start"])
        for r in simulator.request_log
        if "/report/custom/orga_" in r.path
    )
    assert months == [  # exact instants of local midnight (UTC here)
        ("call.date_created", "2026-02-01T00:00:00Z"),
        ("call.date_created", "2026-03-01T00:00:00Z"),
        ("lead.date_created", "2026-03-01T00:00:00Z"),
    ]
    con = warehouse(pipeline)
    assert rows(
        con,
        "select report_name, count(distinct window_start) from custom_reports "
        "group by 1 order by 1",
    ) == [("calls", 2), ("leads", 2)]
