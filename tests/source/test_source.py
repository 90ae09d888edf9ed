"""The dlt source against the in-process simulator: loaded numbers equal the event log's truth."""

from datetime import date, timedelta
from typing import Any, Dict, Iterator, Tuple

import pytest

from close_reports.simulator import CloseSimulator
from close_reports.source import close_source
from close_reports.source.client import RequestStats
from close_reports.source.settings import TABLES
from tests.utils import (
    ANCHOR,
    ONE_DAY,
    TODAY,
    make_pipeline,
    rows,
    run,
    small_org,
    source_kwargs,
    warehouse,
)

START = ANCHOR - timedelta(days=29)  # 30 days: 2026-02-19 .. 2026-03-20
END = TODAY


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Iterator[Tuple[Any, Any, CloseSimulator, RequestStats]]:
    """One full load of 30 days of a small org (UTC), shared by the truth checks."""
    org = small_org()
    simulator = CloseSimulator(org)
    stats = RequestStats()
    pipeline = make_pipeline(tmp_path_factory.mktemp("loaded"))
    run(
        pipeline,
        close_source(**source_kwargs(simulator, start_date=START.isoformat(), stats=stats)),
    )
    con = warehouse(pipeline, org)
    yield pipeline, con, simulator, stats
    con.close()


def by_key(result: list, width: int) -> Dict[tuple, tuple]:
    return {tuple(r[:width]): tuple(r[width:]) for r in result}


def test_every_table_loads(loaded) -> None:
    _, con, _, _ = loaded
    for table in TABLES:
        assert rows(con, f"select count(*) from {table}")[0][0] > 0, table


def test_activity_by_user_equals_event_counts_per_user_per_day(loaded) -> None:
    _, con, _, _ = loaded
    loaded_rows = by_key(
        rows(
            con,
            """
        select date, user_id, calls_all_all_count, calls_all_all_sum_duration,
               calls_outbound_power_dialer_count, calls_inbound_all_count,
               emails_sent_all_count, sms_received_all_count
        from activity_by_user""",
        ),
        2,
    )
    truth = by_key(
        rows(
            con,
            f"""
        with calls as (
            select cast(created_at as date) d, user_id, count(*) n, sum(duration) s,
                   count(*) filter (direction = 'outbound' and call_type = 'power_dialer') pd,
                   count(*) filter (direction = 'inbound') inbound
            from memory.ev.calls group by all),
        emails as (select cast(created_at as date) d, user_id, count(*) n from memory.ev.emails
                   where direction = 'sent' group by all),
        sms as (select cast(created_at as date) d, user_id, count(*) n from memory.ev.sms
                where direction = 'received' group by all),
        keys as (select d, user_id from calls union select d, user_id from emails
                 union select d, user_id from sms)
        select k.d, k.user_id, coalesce(calls.n, 0), coalesce(calls.s, 0), coalesce(pd, 0),
               coalesce(inbound, 0), coalesce(emails.n, 0), coalesce(sms.n, 0)
        from keys k left join calls using (d, user_id) left join emails using (d, user_id)
             left join sms using (d, user_id)
        where k.d between '{START}' and '{ANCHOR}'""",
        ),
        2,
    )
    assert set(truth) <= set(loaded_rows)
    for key, values in loaded_rows.items():
        assert values == truth.get(key, (0,) * 6), key
    assert len({d for d, _ in loaded_rows}) == 30


def test_overview_equals_org_totals_per_day(loaded) -> None:
    _, con, _, _ = loaded
    assert (
        rows(
            con,
            """
        select o.date, o.calls_all_all_count, o.emails_sent_all_count, sum(u.calls_all_all_count),
               sum(u.emails_sent_all_count)
        from activity_overview o join activity_by_user u using (date)
        group by all having o.calls_all_all_count <> sum(u.calls_all_all_count)
            or o.emails_sent_all_count <> sum(u.emails_sent_all_count)""",
        )
        == []
    )
    assert rows(con, "select count(*), min(date), max(date) from activity_overview") == [
        (30, START, ANCHOR)
    ]


def test_sent_emails_by_template_per_day(loaded) -> None:
    _, con, _, _ = loaded
    loaded_rows = by_key(
        rows(
            con,
            """
        select window_start, template_key, total, opened, responded from sent_emails_by_template
    """,
        ),
        2,
    )
    truth = by_key(
        rows(
            con,
            f"""
        select cast(e.created_at as date), coalesce(template_id, '_all'), count(*),
               count(*) filter (o.email_id is not null), count(*) filter (has_reply)
        from memory.ev.emails e
        left join (select distinct email_id from memory.ev.email_opens) o on o.email_id = e.id
        where direction = 'sent' and template_id is not null
          and created_at >= '{START}' and created_at < '{END}'
        group by all
        union all
        select cast(e.created_at as date), '_all', count(*),
               count(*) filter (o.email_id is not null), count(*) filter (has_reply)
        from memory.ev.emails e
        left join (select distinct email_id from memory.ev.email_opens) o on o.email_id = e.id
        where direction = 'sent' and created_at >= '{START}' and created_at < '{END}'
        group by all""",
        ),
        2,
    )
    assert loaded_rows == {k: v for k, v in truth.items()}
    assert rows(
        con,
        "select count(*) from sent_emails_by_template where template_key = '_all' "
        "and template_id is not null",
    ) == [(0,)]


LEAD_EVENTS = """
    with ev as (
        select id as lead_id, created_at as ts, original_status_id as status, true as created
        from memory.ev.leads
        union all
        select lead_id, changed_at, new_status_id, false from memory.ev.lead_status_changes)
"""


@pytest.mark.parametrize("day", [START, date(2026, 3, 8), ANCHOR])
def test_lead_status_day_counts(loaded, day: date) -> None:
    _, con, _, _ = loaded
    end = day + ONE_DAY
    loaded_rows = by_key(
        rows(
            con,
            f"""
        select status_id, ended, entered from lead_status_overview
        where grain = 'day' and window_start = '{day}'""",
        ),
        1,
    )
    ended = dict(
        rows(
            con,
            LEAD_EVENTS
            + f"""
        , last as (select lead_id, arg_max(status, ts) status from ev where ts < '{end}' group by 1)
        select status, count(*) from last group by 1""",
        )
    )
    entered = dict(
        rows(
            con,
            LEAD_EVENTS
            + f"""
        select status, count(distinct lead_id) from ev where ts >= '{day}' and ts < '{end}'
        group by 1""",
        )
    )
    assert loaded_rows, day
    for (status_id,), (ended_count, entered_count) in loaded_rows.items():
        assert ended_count == ended.get(status_id, 0), status_id
        assert entered_count == entered.get(status_id, 0), status_id


def test_lead_status_month_grain_is_read_not_summed(loaded) -> None:
    _, con, _, _ = loaded
    month = date(2026, 3, 1)
    loaded_rows = dict(
        rows(
            con,
            f"""
        select status_id, entered from lead_status_overview
        where grain = 'month' and window_start = '{month}'""",
        )
    )
    truth = dict(
        rows(
            con,
            LEAD_EVENTS
            + f"""
        select status, count(distinct lead_id) from ev where ts >= '{month}' and ts < '{END}'
        group by 1""",
        )
    )
    assert {k: v for k, v in loaded_rows.items() if v} == truth
    assert rows(
        con,
        f"""select distinct window_end from lead_status_overview
                         where grain = 'month' and window_start = '{month}'""",
    ) == [(END,)]


def test_opportunity_transitions_per_day(loaded) -> None:
    _, con, _, _ = loaded
    loaded_rows = by_key(
        rows(
            con,
            f"""
        select window_start, from_status_key, to_status_id, count
        from opportunity_status_transitions where grain = 'day' and kind = 'transitions'
          and window_start >= '{START}'""",
        ),
        3,
    )
    truth = by_key(
        rows(
            con,
            f"""
        select cast(changed_at as date), old_status_id, new_status_id,
               count(distinct opportunity_id)
        from memory.ev.opportunity_status_changes
        where changed_at >= '{START}' and changed_at < '{END}' group by all
        union all
        select cast(created_at as date), '_created', original_status_id, count(*)
        from memory.ev.opportunities where created_at >= '{START}' and created_at < '{END}'
        group by all""",
        ),
        3,
    )
    assert loaded_rows == truth


def test_funnel_created_cohort_counts_per_user(loaded) -> None:
    _, con, _, _ = loaded
    loaded_rows = by_key(
        rows(
            con,
            """
        select window_start, pipeline_id, user_id, count from funnel_totals
        where cohort_type = 'created-cohort'""",
        ),
        3,
    )
    truth = by_key(
        rows(
            con,
            f"""
        select date_trunc('month', created_at)::date, pipeline_id, user_id, count(*)
        from memory.ev.opportunities where created_at >= '2026-02-01' and created_at < '{END}'
        group by all
        union all
        select date_trunc('month', created_at)::date, pipeline_id, '_all', count(*)
        from memory.ev.opportunities where created_at >= '2026-02-01' and created_at < '{END}'
        group by all""",
        ),
        3,
    )
    assert {k: v for k, v in loaded_rows.items() if v != (0,)} == truth


def test_funnel_stages_per_user_add_up_and_never_exceed_the_cohort(loaded) -> None:
    _, con, _, _ = loaded
    assert (
        rows(
            con,
            """
        select window_start, pipeline_id, cohort_type, status_id
        from funnel_stages group by all
        having sum(count) filter (user_id <> '_all') <> sum(count) filter (user_id = '_all')""",
        )
        == []
    )
    assert (
        rows(
            con,
            """
        select s.* from funnel_stages s join funnel_totals t
          using (window_start, pipeline_id, cohort_type, user_id)
        where s.count > t.count""",
        )
        == []
    )
    assert rows(
        con,
        """
        select count(*) from funnel_stages where stage_index = 0 and user_id = '_all'
        and count <> (select t.count from funnel_totals t where t.user_id = '_all'
          and t.window_start = funnel_stages.window_start
          and t.pipeline_id = funnel_stages.pipeline_id
          and t.cohort_type = funnel_stages.cohort_type)""",
    ) == [(0,)]


def test_exact_requests_of_a_full_run(loaded) -> None:
    _, _, simulator, stats = loaded
    log = simulator.request_log
    assert stats.as_dict()["requests"] == len(log)
    assert all(r.path.endswith("/") for r in log)
    assert all(r.status == 200 for r in log)

    def calls(path_part: str, method: str = "GET") -> list:
        return [r for r in log if path_part in r.path and r.method == method]

    activity = calls("/report/activity/", "POST")
    comparison = [r for r in activity if r.json["type"] == "comparison"]
    overview = [r for r in activity if r.json["type"] == "overview"]
    assert len(comparison) == 30 and len(overview) == 1
    first = comparison[0].json
    assert first["datetime_range"] == {
        "start": f"{START}T00:00:00Z",
        "end": f"{START + ONE_DAY}T00:00:00Z",
    }
    assert len(first["metrics"]) == len(simulator_metric_keys(simulator))
    assert overview[0].json["datetime_range"] == {
        "start": f"{START}T00:00:00Z",
        "end": f"{END}T00:00:00Z",
    }
    assert all(r.headers.get("x-tz-offset") == "0" for r in activity)
    sent = calls("/report/sent_emails/")
    assert len(sent) == 30
    assert sent[0].params == {"date_start": str(START), "date_end": str(START + ONE_DAY)}
    assert len(calls("/report/statuses/lead/")) == 30 + 2  # days + Feb and Mar
    assert len(calls("/report/statuses/opportunity/")) == 30 + 2
    for endpoint in ("/report/funnel/opportunity/totals/", "/report/funnel/opportunity/stages/"):
        funnels = calls(endpoint, "POST")
        assert len(funnels) == 2 * 2 * 2  # months x pipelines x cohort types
        assert not any(k.startswith("compared") for r in funnels for k in r.json)
        created = [r.json for r in funnels if r.json["type"] == "created-cohort"]
        assert all(b["cohort_datetime_range"] == b["report_datetime_range"] for b in created)
    assert len(calls("/report/custom/orga_")) == 2 * 2  # configured reports x months


def simulator_metric_keys(simulator: CloseSimulator) -> list:
    import httpx

    with httpx.Client(transport=simulator.transport(), auth=("demo", "")) as client:
        return [
            m["key"]
            for m in client.get("http://x/api/v1/report/activity/metrics/").json()["metrics"]
        ]
