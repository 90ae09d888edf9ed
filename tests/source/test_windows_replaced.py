"""A report window is the unit of replacement (issue 16): backfills never write partial months
over complete ones, and rows that vanished from a later answer of a window vanish here."""

import json
from datetime import date, datetime, timedelta, timezone

import httpx

from close_reports.simulator import CloseSimulator
from close_reports.source import close_source
from close_reports.source.settings import REPORT_TABLES
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

START = "2026-01-25"
MONTH_TABLES = [
    "lead_status_overview",
    "lead_status_transitions",
    "opportunity_status_overview",
    "opportunity_status_transitions",
]
MONTHLY = ["funnel_totals", "funnel_stages", "custom_reports"]


def month_rows(pipeline, month: str) -> dict:
    """Every row of the month-grain tables whose window starts on ``month``."""
    con = warehouse(pipeline)
    out = {}
    for table in MONTH_TABLES + MONTHLY:
        where = f"window_start = '{month}'" + (
            " and grain = 'month'" if table in MONTH_TABLES else ""
        )
        columns = [
            c[0] for c in rows(con, f"describe {table}") if c[0] not in ("_dlt_load_id", "_dlt_id")
        ]
        select = ", ".join(f'"{c}"' for c in sorted(columns))
        out[table] = rows(con, f"select {select} from {table} where {where} order by all")
    con.close()
    return out


def test_backfill_ending_mid_month_leaves_complete_months_whole(tmp_path) -> None:
    simulator = CloseSimulator(small_org())
    pipeline = make_pipeline(tmp_path)
    run(pipeline, close_source(**source_kwargs(simulator, start_date=START)))
    february = month_rows(pipeline, "2026-02-01")
    assert all(february[t] for t in MONTH_TABLES + ["funnel_totals", "funnel_stages"])
    ends = query(pipeline, "select distinct window_end from funnel_totals "
                 "where window_start = '2026-02-01'")  # fmt: skip
    assert ends == [(date(2026, 3, 1),)]

    simulator.request_log.clear()
    run(
        pipeline,
        close_source(**source_kwargs(simulator, start_date="2026-02-10", end_date="2026-02-20")),
    )
    assert month_rows(pipeline, "2026-02-01") == february
    # the backfill read February whole for the month reports, its ten days for the others
    month_calls = {
        (r.params["date_start"], r.params["date_end"])
        for r in simulator.request_log
        if "/report/statuses/" in r.path
        and r.params["date_start"][8:10] == "01"
        and r.params["date_end"][8:10] == "01"
    }
    assert ("2026-02-01", "2026-03-01") in month_calls
    day_calls = sorted(
        r.json["datetime_range"]["start"][:10]
        for r in simulator.request_log
        if r.json and r.json.get("type") == "comparison"
    )
    assert day_calls[0] == "2026-02-10" and day_calls[-1] == "2026-02-19"


def _summary(pipeline) -> set:
    return set(
        query(
            pipeline,
            """select from_status_key, to_status_id, count from lead_status_transitions
            where grain = 'month' and window_start = '2026-03-01' and kind = 'summary'""",
        )
    )


def test_month_to_date_rows_that_vanish_from_the_full_month_vanish(tmp_path) -> None:
    org = small_org()
    simulator = CloseSimulator(org)
    pipeline = make_pipeline(tmp_path / "incremental")
    mid_month = date(2026, 3, 12)
    run(pipeline, close_source(**source_kwargs(simulator, start_date=START, today=mid_month)))
    to_date = _summary(pipeline)

    # a lead that moved A -> B in the month to date moves back to A later in the month: the
    # full month's A -> C summary no longer has that lead's pair
    change = query(
        pipeline,
        """select from_status_key, to_status_id from lead_status_transitions
        where grain = 'month' and window_start = '2026-03-01' and kind = 'summary'
        and from_status_key <> '_created' and count = 1 order by all limit 1""",
    )
    assert change, "the simulated org has no single-lead summary pair in March to date"
    from_status, to_status = change[0]
    lead = next(
        org.lead_id(i)
        for i in range(len(org.leads))
        if org.lead_status_at(i, _ts(date(2026, 3, 1))) == org.lead_status_index(from_status)
        and org.lead_status_at(i, _ts(mid_month)) == org.lead_status_index(to_status)
    )
    org.add_lead_status_change(lead, datetime(2026, 3, 15, 12, tzinfo=timezone.utc), from_status)

    run(pipeline, close_source(**source_kwargs(simulator, start_date=START)))
    clean = make_pipeline(tmp_path / "clean")
    run(clean, close_source(**source_kwargs(simulator, start_date=START)))
    assert (from_status, to_status, 1) in to_date
    assert (from_status, to_status, 1) not in _summary(clean)
    assert _summary(pipeline) == _summary(clean)
    assert table_snapshot(pipeline, list(REPORT_TABLES)) == table_snapshot(
        clean, list(REPORT_TABLES)
    )


def _ts(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())


def test_a_window_that_comes_back_empty_deletes_its_rows(tmp_path) -> None:
    org = small_org()
    simulator = CloseSimulator(org)
    pipeline = make_pipeline(tmp_path)
    kwargs = source_kwargs(simulator, start_date=START, segments=[
        {"name": "one_rep", "user_ids": [org.users[0].id], "reports": ["activity_by_user"]}
    ])  # fmt: skip
    run(pipeline, close_source(**kwargs).with_resources("activity_by_user"))
    day = query(
        pipeline,
        """select date from activity_by_user where segment = 'one_rep'
        and date >= '2026-03-18' order by date limit 1""",
    )[0][0]
    # that rep's activity of that day is deleted in Close: the day's answer has no rows
    empty = _emptying(simulator, day)
    run(pipeline, close_source(**{**kwargs, "transport": empty}).with_resources("activity_by_user"))
    left = query(
        pipeline,
        f"select count(*) from activity_by_user where segment = 'one_rep' and date = '{day}'",
    )
    assert left == [(0,)]
    markers = query(pipeline, "select count(*) from activity_by_user where user_id = '_empty'")
    assert markers == [(0,)]  # the marker deleted the window and was not inserted


def _emptying(simulator: CloseSimulator, day: date) -> httpx.MockTransport:
    """The simulator, but comparison answers for ``day`` have no rows."""

    def handler(request: httpx.Request) -> httpx.Response:
        response = simulator.handle(request)
        body = json.loads(request.content) if request.content else {}
        start = body.get("datetime_range", {}).get("start", "")
        if body.get("type") == "comparison" and start.startswith(day.isoformat()):
            data = response.json()
            data["data"] = []
            return httpx.Response(200, json=data)
        return response

    return httpx.MockTransport(handler)


def test_runs_keep_the_window_grid(tmp_path) -> None:
    """A second run on a later day replaces the windows it re-reads, never adds others."""
    simulator = CloseSimulator(small_org())
    pipeline = make_pipeline(tmp_path)
    run(pipeline, close_source(**source_kwargs(simulator, start_date=START,
                                               today=TODAY - timedelta(days=9))))  # fmt: skip
    run(pipeline, close_source(**source_kwargs(simulator, start_date=START)))
    clean = make_pipeline(tmp_path / "clean")
    run(clean, close_source(**source_kwargs(simulator, start_date=START)))
    assert table_snapshot(pipeline, list(REPORT_TABLES)) == table_snapshot(
        clean, list(REPORT_TABLES)
    )
    assert TODAY - timedelta(days=1) == ANCHOR
