"""The marts, built by a real ``dbt build`` on a real load of the simulator, against its event log.

One module-scoped fixture loads 45 days of a small simulated org (UTC report days, history
ending ``ANCHOR``) through ``close_source`` into a DuckDB file and runs ``dbt build`` (models,
data tests, unit tests) on it. The tests then compare marts with numbers computed
**independently** from the simulator's exported event log (``memory.ev.*``: calls, emails,
leads, status changes, ... with naive UTC timestamps), in plain SQL that follows
docs/simulator.md's semantics and never reads the raw report tables. Last, the invariants of
issue 6 are re-checked with independent SQL against the built file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from close_reports.simulator import CloseSimulator
from close_reports.source import close_source
from close_reports.source.settings import TABLES
from tests.utils import (
    ANCHOR,
    ONE_DAY,
    TODAY,
    isolate_environment,
    make_pipeline,
    run,
    small_org,
    source_kwargs,
    warehouse,
)

from .runner import DbtRun, run_dbt

pytestmark = pytest.mark.dbt

DAYS = 45
START = ANCHOR - timedelta(days=DAYS - 1)  # 2026-02-04 .. 2026-03-20: the deleted lead
END = TODAY  # status "Nurture (legacy)" still shows up early on; US DST starts 2026-03-08
FEB, MAR = date(2026, 2, 1), date(2026, 3, 1)
MONTH_WINDOWS = ((FEB, MAR), (MAR, END))  # the loader reads whole months, the open one to date
DAY_WINDOWS = tuple((START + timedelta(days=i), START + timedelta(days=i + 1)) for i in range(DAYS))
MARTS = 18
LEDGER_MARTS = ("rpt_pipeline_run_reports", "rpt_pipeline_runs")
"""Built from close_raw.run_ledger: empty while the loader does not write it yet."""


@dataclass
class Built:
    duckdb_path: Path
    dbt: DbtRun
    con: duckdb.DuckDBPyConnection  # marts in use (wh.close_marts), event log in memory.ev

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def keyed(self, sql: str, width: int, *params: Any) -> dict[tuple, tuple]:
        """Rows as {first ``width`` columns: the other columns}; the key must be unique."""
        result = self.rows(sql, *params)
        keyed = {tuple(r[:width]): tuple(r[width:]) for r in result}
        assert len(keyed) == len(result), f"duplicate keys in:\n{sql}"
        return keyed


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """45 days of a small org loaded by ``close_source`` and built by ``dbt build``."""
    work_dir = tmp_path_factory.mktemp("dbt_simulator")
    with pytest.MonkeyPatch.context() as patch:
        # module scope: the autouse function fixtures of conftest.py have not run yet
        isolate_environment(patch, work_dir / "dlt_data")
        org = small_org()
        pipeline = make_pipeline(work_dir)
        run(
            pipeline,
            close_source(
                **source_kwargs(CloseSimulator(org), start_date=START.isoformat(), timezone="UTC")
            ),
        )
        duckdb_path = work_dir / "close.duckdb"
        dbt = run_dbt(["build"], duckdb_path, work_dir)
    con = warehouse(pipeline, org)  # attaches the file read-only as `wh`, events in memory.ev
    con.execute("use wh.close_marts")
    yield Built(duckdb_path, dbt, con)
    con.close()


def same(a: Any, b: Any, abs_tol: float = 1e-9) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=abs_tol)
    return a == b


def assert_same(
    mart: Mapping[tuple, tuple],
    truth: Mapping[tuple, tuple],
    what: str,
    abs_tol: float | Mapping[int, float] = 1e-9,
) -> None:
    """The mart's rows equal the truth's: same keys, same values. Floats are compared to
    ``abs_tol``: one tolerance, or {value column index: tolerance} (others to 1e-9)."""
    assert truth, f"{what}: the event log gives nothing to compare"
    tolerances = abs_tol if isinstance(abs_tol, Mapping) else {}
    default = 1e-9 if isinstance(abs_tol, Mapping) else abs_tol

    def equal(m: tuple, t: tuple) -> bool:
        return len(m) == len(t) and all(
            same(a, b, tolerances.get(i, default))
            for i, (a, b) in enumerate(zip(m, t, strict=True))
        )

    missing = sorted(set(truth) - set(mart))
    extra = sorted(set(mart) - set(truth))
    common = sorted(set(mart) & set(truth))
    wrong = [(key, mart[key], truth[key]) for key in common if not equal(mart[key], truth[key])]
    assert not (missing or extra or wrong), (
        f"{what}: {len(missing)} rows only in the truth {missing[:5]}, "
        f"{len(extra)} only in the mart {extra[:5]}, "
        f"{len(wrong)} differ (key, mart, truth) {wrong[:5]}"
    )


# --- the truth: activity facts from the event log ------------------------------------------

CALL_SERIES = {  # metric prefix -> filter on memory.ev.calls
    "calls.all.all": "true",
    "calls.inbound.all": "direction = 'inbound'",
    "calls.outbound.all": "direction = 'outbound'",
    **{
        f"calls.outbound.{call_type}": f"direction = 'outbound' and call_type = '{call_type}'"
        for call_type in ("regular", "external", "power_dialer", "predictive_dialer")
    },
}
SENT_EMAIL_SERIES = {  # metric key -> filter on sent emails
    "emails.sent.all.count": "true",
    "emails.sent.manual.count": "send_type = 'manual'",
    "emails.sent.bulk.count": "send_type = 'bulk'",
    "emails.sent.sequences.count": "send_type = 'sequence'",
    "emails.sent.manual_with_reply.count": "send_type = 'manual' and has_reply",
    "emails.sent.bulk_with_reply.count": "send_type = 'bulk' and has_reply",
    "emails.sent.sequences_with_reply.count": "send_type = 'sequence' and has_reply",
    "emails.sent.sequences_without_reply.count": "send_type = 'sequence' and not has_reply",
}
VALUE_PERIODS = ("one_time", "monthly", "annual")


def _activity_fact_selects() -> list[str]:
    """One ``select metric_key, user_id, ts, value`` per metric family (docs/simulator.md):
    the user each event is attributed to, at its instant, with what it adds to the metric."""
    selects = []
    for prefix, where in CALL_SERIES.items():
        for aggregation, value in (("count", "1"), ("sum_duration", "duration")):
            selects.append(
                f"select '{prefix}.{aggregation}', user_id, created_at, {value} "
                f"from memory.ev.calls where {where}"
            )
    for key, where in SENT_EMAIL_SERIES.items():
        selects.append(
            f"select '{key}', user_id, created_at, 1 from memory.ev.emails "
            f"where direction = 'sent' and {where}"
        )
    selects += [
        "select 'emails.received.all.count', user_id, created_at, 1 from memory.ev.emails "
        "where direction = 'received'",
        # a sent email counts once, on its first open, for its sender
        "select 'emails.opened.all.count', user_id, first_open, 1 from first_opens",
        "select 'emails.opened.sequences.count', user_id, first_open, 1 from first_opens "
        "where send_type = 'sequence'",
        "select 'sms.sent.all.count', user_id, created_at, 1 from memory.ev.sms "
        "where direction = 'sent'",
        "select 'sms.received.all.count', user_id, created_at, 1 from memory.ev.sms "
        "where direction = 'received'",
        "select 'leads.created.all.count', created_by, created_at, 1 from memory.ev.leads",
        # a lead counts once ever, on its first outbound contact, for that contact's user
        "select 'leads.contacted.all.count', user_id, contacted_at, 1 from first_contacts",
    ]
    for family, user in (("created", "created_by"), ("created_for", "user_id")):
        selects += [
            f"select 'opportunities.{family}.all.count', {user}, created_at, 1 "
            "from memory.ev.opportunities",
            f"select 'opportunities.{family}.all.sum_annualized_value', {user}, created_at, "
            "annualized_value from memory.ev.opportunities",
        ]
    for outcome in ("won", "lost"):
        # changes into a won / lost status, for the opportunity's assigned user
        selects += [
            f"select 'opportunities.{outcome}.all.count', user_id, changed_at, 1 "
            f"from closing_changes where new_status_type = '{outcome}'",
            f"select 'opportunities.{outcome}.all.sum_annualized_value', user_id, changed_at, "
            f"annualized_value from closing_changes where new_status_type = '{outcome}'",
        ]
        for period in VALUE_PERIODS:
            where = f"new_status_type = '{outcome}' and value_period = '{period}'"
            selects += [
                f"select 'opportunities.value_{outcome}.{period}.count', user_id, changed_at, 1 "
                f"from closing_changes where {where}",
                f"select 'opportunities.value_{outcome}.{period}.sum_value', user_id, "
                f"changed_at, value from closing_changes where {where}",
            ]
    return selects


ACTIVITY_FACTS = (
    """
with
first_opens as (
    select e.user_id, e.send_type, min(o.opened_at) as first_open
    from memory.ev.email_opens o join memory.ev.emails e on e.id = o.email_id
    group by e.id, e.user_id, e.send_type
),
outbound_contacts as (
    select lead_id, user_id, created_at as ts from memory.ev.calls where direction = 'outbound'
    union all
    select lead_id, user_id, created_at from memory.ev.emails where direction = 'sent'
    union all
    select lead_id, user_id, created_at from memory.ev.sms where direction = 'sent'
),
first_contacts as (
    select lead_id, arg_min(user_id, ts) as user_id, min(ts) as contacted_at
    from outbound_contacts group by lead_id
),
closing_changes as (
    select c.changed_at, c.new_status_type, o.user_id, o.value, o.value_period,
           o.annualized_value
    from memory.ev.opportunity_status_changes c
    join memory.ev.opportunities o on o.id = c.opportunity_id
),
facts (metric_key, user_id, ts, value) as (
"""
    + "\n    union all\n".join(_activity_fact_selects())
    + f"""
),
loaded_facts as (
    select metric_key, user_id, cast(ts as date) as day, value from facts
    where ts >= '{START}' and ts < '{END}'
)
"""
)
"""``loaded_facts(metric_key, user_id, day, value)`` over the loaded days, for every additive
metric (count / sum) Close lists; averages are sum / count."""

TRUTH_METRIC_KEYS = {
    row.split("'")[1] for row in _activity_fact_selects() if row.startswith("select '")
}
AVERAGE_KEYS = {f"{prefix}.avg_duration" for prefix in CALL_SERIES}


# --- the truth: statuses from the event log --------------------------------------------------


def status_events(object_type: str) -> str:
    """``events(obj, ts, seq, status, old)``: creation into the original status (seq 0), then
    every status change (seq 1; a change at the creation instant comes after it)."""
    objects, changes, id_column = {
        "lead": ("leads", "lead_status_changes", "lead_id"),
        "opportunity": ("opportunities", "opportunity_status_changes", "opportunity_id"),
    }[object_type]
    return f"""
events as (
    select id as obj, created_at as ts, 0 as seq, original_status_id as status,
           cast(null as varchar) as old
    from memory.ev.{objects}
    union all
    select {id_column}, changed_at, 1, new_status_id, old_status_id from memory.ev.{changes}
)"""


def windows_cte(windows: Sequence[tuple[date, date]]) -> str:
    values = ", ".join(f"(date '{start}', date '{end}')" for start, end in windows)
    return f"windows (ws, we) as (values {values})"


def status_states(object_type: str, windows: Sequence[tuple[date, date]]) -> str:
    """CTEs ``states(ws, obj, s0, s1)`` (status after every event before the window's start /
    end; s0 null = not created yet) and ``flows(ws, obj, status, old)`` (events in it)."""
    return f"""
with {status_events(object_type)},
{windows_cte(windows)},
at_start as (
    select ws, obj, status from windows join events on events.ts < windows.ws
    qualify row_number() over (partition by ws, obj order by ts desc, seq desc) = 1
),
at_end as (
    select ws, obj, status from windows join events on events.ts < windows.we
    qualify row_number() over (partition by ws, obj order by ts desc, seq desc) = 1
),
states as (
    select at_end.ws, at_end.obj, at_start.status as s0, at_end.status as s1
    from at_end left join at_start using (ws, obj)
),
flows as (
    select ws, obj, status, old from windows
    join events on events.ts >= windows.ws and events.ts < windows.we
)"""


def status_overview_truth(object_type: str, windows: Sequence[tuple[date, date]]) -> str:
    """(window start, status) -> started, ended, gained, lost, entered, left; rows with a
    non-zero counter only."""
    return (
        status_states(object_type, windows)
        + """,
counters as (
    select ws, s0 as status, 1 as started, 0 as ended, 0 as gained,
           case when s1 is distinct from s0 then 1 else 0 end as lost,
           0 as entered, 0 as "left", cast(null as varchar) as obj
    from states where s0 is not null
    union all
    select ws, s1, 0, 1, case when s0 is distinct from s1 then 1 else 0 end, 0, 0, 0, null
    from states
    union all
    select ws, status, 0, 0, 0, 0, 1, 0, obj from flows
    union all
    select ws, old, 0, 0, 0, 0, 0, 1, obj from flows where old is not null
)
select ws, status, sum(started), sum(ended), sum(gained), sum(lost),
       count(distinct obj) filter (entered = 1), count(distinct obj) filter ("left" = 1)
from counters group by ws, status
"""
    )


def status_transitions_truth(object_type: str, windows: Sequence[tuple[date, date]]) -> str:
    """(window start, kind, from key, to status) -> distinct objects: every transition in the
    window (creation from '_created'), and the summary start -> end of objects with an event
    in it (objects back where they started left out)."""
    return (
        status_states(object_type, windows)
        + """
select ws, 'transitions', coalesce(old, '_created'), status, count(distinct obj)
from flows group by all
union all
select ws, 'summary', coalesce(s0, '_created'), s1, count(*)
from states semi join flows using (ws, obj)
where s0 is distinct from s1
group by all
"""
    )


# --- the truth: funnels from the event log --------------------------------------------------

FUNNEL_COHORTS = f"""
with
events as (
    select e.obj, e.ts, e.seq, s.type, s.stage_index
    from (
        select id as obj, created_at as ts, 0 as seq, original_status_id as status
        from memory.ev.opportunities
        union all
        select opportunity_id, changed_at, 1, new_status_id
        from memory.ev.opportunity_status_changes
    ) e
    join memory.ev.opportunity_statuses s on s.id = e.status
),
{windows_cte(MONTH_WINDOWS)},
active_at_start as (
    select ws, we, obj, type from windows join events on events.ts < windows.ws
    qualify row_number() over (partition by ws, obj order by ts desc, seq desc) = 1
),
cohorts as (
    select 'created-cohort' as cohort_type, ws, we, o.id as obj
    from windows join memory.ev.opportunities o
        on o.created_at >= windows.ws and o.created_at < windows.we
    union
    select 'active-stage-cohort', ws, we, obj from active_at_start where type = 'active'
    union
    select 'active-stage-cohort', ws, we, obj from windows
    join events on events.ts >= windows.ws and events.ts < windows.we
    where events.type = 'active'
),
evaluated as (  -- each cohort member at the end of the report range T = window end
    select
        c.cohort_type, c.ws, c.obj, o.pipeline_id, o.user_id, o.annualized_value,
        o.created_at,
        arg_max(e.type, (e.ts, e.seq)) as type_at_t,
        max(e.stage_index) as highest_stage,
        min(e.ts) filter (e.type = 'won') as first_won_at
    from cohorts c
    join memory.ev.opportunities o on o.id = c.obj
    -- a created cohort is followed as of now (Close: evaluated at the request), an active
    -- cohort to the end of its month
    join events e on e.obj = c.obj and (c.cohort_type = 'created-cohort' or e.ts < c.we)
    group by all
),
members as (
    select * from evaluated
    union all
    select * replace ('_all' as user_id) from evaluated
)
"""
"""``members``: every cohort member per (cohort type, month, pipeline), once under its
assigned user and once under ``_all``, with its status type and highest stage at T."""


# --- the build --------------------------------------------------------------------------------


def test_dbt_build_passes_on_simulated_load(built: Built) -> None:
    run = built.dbt
    assert run.success, f"dbt build failed: {run.not_passed()}\n{run.output[-3000:]}"
    assert not run.not_passed()
    staged = {*TABLES, "run_ledger"}
    assert len(run.names("success", resource_type="model")) == len(staged) + MARTS
    assert len(run.names("pass", resource_type="unit_test")) >= 6
    assert len(run.names("pass", resource_type="test")) >= 100


def test_every_mart_is_non_empty(built: Built) -> None:
    tables = built.rows(
        "select table_name from information_schema.tables "
        "where table_catalog = 'wh' and table_schema = 'close_marts' order by 1"
    )
    assert len(tables) == MARTS
    empty = [t for (t,) in tables if built.rows(f"select count(*) from {t}") == [(0,)]]
    ledger_loaded = built.rows(
        "select count(*) from information_schema.tables where table_catalog = 'wh'"
        " and table_schema = 'close_raw' and table_name = 'run_ledger'"
    ) == [(1,)]
    assert empty == ([] if ledger_loaded else list(LEDGER_MARTS))


# --- activity -------------------------------------------------------------------------------

USER_DAY_COLUMNS = {  # fct_user_activity_daily column -> metric key of the truth
    "calls_count": "calls.all.all.count",
    "calls_duration_seconds": "calls.all.all.sum_duration",
    "inbound_calls_count": "calls.inbound.all.count",
    "outbound_calls_count": "calls.outbound.all.count",
    "outbound_calls_duration_seconds": "calls.outbound.all.sum_duration",
    "power_dialer_calls_count": "calls.outbound.power_dialer.count",
    "predictive_dialer_calls_duration_seconds": "calls.outbound.predictive_dialer.sum_duration",
    "emails_sent_count": "emails.sent.all.count",
    "sequence_emails_sent_count": "emails.sent.sequences.count",
    "manual_emails_sent_with_reply_count": "emails.sent.manual_with_reply.count",
    "emails_received_count": "emails.received.all.count",
    "emails_opened_count": "emails.opened.all.count",
    "sms_sent_count": "sms.sent.all.count",
    "sms_received_count": "sms.received.all.count",
    "leads_created_count": "leads.created.all.count",
    "leads_contacted_count": "leads.contacted.all.count",
    "opportunities_created_count": "opportunities.created.all.count",
    "opportunities_created_for_count": "opportunities.created_for.all.count",
    "opportunities_won_count": "opportunities.won.all.count",
    "opportunities_won_annualized_value_cents": "opportunities.won.all.sum_annualized_value",
    "opportunities_lost_count": "opportunities.lost.all.count",
    "opportunities_won_monthly_value_cents": "opportunities.value_won.monthly.sum_value",
}


def user_day_truth(built: Built) -> dict[tuple, tuple]:
    """(day, user) -> the USER_DAY_COLUMNS values, then talk time in minutes and the average
    call duration, for every user on every loaded day (0 where the user had no event)."""
    pivot = ", ".join(
        f"coalesce(sum(value) filter (metric_key = '{key}'), 0) as c{i}"
        for i, key in enumerate(USER_DAY_COLUMNS.values())
    )
    columns = ", ".join(f"c{i}" for i in range(len(USER_DAY_COLUMNS)))
    # c0 = calls, c1 = talk time in seconds
    return built.keyed(
        ACTIVITY_FACTS
        + f""",
spine as (
    select cast(d as date) as day, u.id as user_id
    from generate_series(date '{START}', date '{ANCHOR}', interval 1 day) t(d)
    cross join memory.ev.users u
),
pivoted as (
    select spine.day, spine.user_id, {pivot}
    from spine left join loaded_facts using (day, user_id)
    group by all
)
select day, user_id, {columns}, c1 / 60.0, case when c0 > 0 then c1 / c0 end from pivoted
""",
        2,
    )


def user_day_mart(built: Built) -> dict[tuple, tuple]:
    return built.keyed(
        f"""
        select activity_date, user_id, {", ".join(USER_DAY_COLUMNS)},
               calls_duration_minutes, calls_average_duration_seconds
        from fct_user_activity_daily""",
        2,
    )


def test_user_activity_daily_equals_events_per_user_per_day(built: Built) -> None:
    """Every (day, user) of fct_user_activity_daily, zero-filled, against the event log."""
    truth = user_day_truth(built)
    assert len(truth) == DAYS * len(built.rows("select id from memory.ev.users"))
    assert_same(user_day_mart(built), truth, "fct_user_activity_daily")


@pytest.mark.parametrize("day", [START, date(2026, 3, 8), ANCHOR - ONE_DAY])
def test_a_reps_calls_talk_time_and_emails_on_a_day(built: Built, day: date) -> None:
    """The day's busiest caller, spelled out: calls, talk time (seconds, minutes), emails."""
    [(user_id, calls, seconds, emails)] = built.rows(
        """
        with calls as (
            select user_id, count(*) as calls, sum(duration) as seconds
            from memory.ev.calls where cast(created_at as date) = ? group by user_id
        ),
        emails as (
            select user_id, count(*) as emails from memory.ev.emails
            where direction = 'sent' and cast(created_at as date) = ? group by user_id
        )
        select calls.user_id, calls, seconds, coalesce(emails, 0)
        from calls left join emails using (user_id)
        order by calls desc, user_id limit 1""",
        day,
        day,
    )
    assert calls > 0
    mart = built.rows(
        """
        select calls_count, calls_duration_seconds, calls_duration_minutes,
               emails_sent_count, has_report_row
        from fct_user_activity_daily where user_id = ? and activity_date = ?""",
        user_id,
        day,
    )
    assert mart == [(calls, seconds, pytest.approx(seconds / 60), emails, True)]


def test_users_without_events_get_zero_rows(built: Built) -> None:
    """A user with no event on a day still has that day's row, with zeros."""
    idle = built.rows(
        f"""
        {ACTIVITY_FACTS}
        select cast(d as date) as day, u.id
        from generate_series(date '{START}', date '{ANCHOR}', interval 1 day) t(d)
        cross join memory.ev.users u
        anti join loaded_facts f on f.day = cast(t.d as date) and f.user_id = u.id
        order by all"""
    )
    assert idle, "every user has an event every day: nothing zero-filled to check"
    truth = user_day_truth(built)
    zeros = (0,) * len(USER_DAY_COLUMNS) + (0.0, None)
    assert all(truth[key] == zeros for key in idle)
    mart = user_day_mart(built)
    assert {key: mart.get(key) for key in idle} == {key: zeros for key in idle}
    # rows Close did not report are zero-filled, and only users without events lack one
    not_reported = built.rows(
        "select activity_date, user_id from fct_user_activity_daily where not has_report_row"
    )
    assert set(not_reported) <= set(idle)


def test_activity_metrics_long_form_per_user_and_org(built: Built) -> None:
    """fct_activity_metrics_daily: every metric Close lists, per user and `_org`, per day."""
    assert len(TRUTH_METRIC_KEYS | AVERAGE_KEYS) == 56
    assert {
        key for (key,) in built.rows("select distinct metric_key from fct_activity_metrics_daily")
    } == TRUTH_METRIC_KEYS | AVERAGE_KEYS
    sums = (
        ACTIVITY_FACTS
        + """,
with_org as (
    select day, user_id, metric_key, value from loaded_facts
    union all
    select day, '_org', metric_key, value from loaded_facts
),
sums as (
    select day, user_id, metric_key, cast(sum(value) as double) as value
    from with_org group by all
)
"""
    )
    truth = built.keyed(sums + "select * from sums where value <> 0", 3)
    mart = built.keyed(
        """
        select activity_date, user_id, metric_key, metric_value from fct_activity_metrics_daily
        where metric_value <> 0 and metric_key not like '%.avg_duration'""",
        3,
    )
    assert_same(mart, truth, "fct_activity_metrics_daily, counts and sums")
    # averages: sum / count, which Close rounds to 3 decimals (the simulator rounds half to
    # even: 96.0625 -> 96.062), none without calls
    truth = built.keyed(
        sums
        + """,
averages as (
    select day, user_id,
           regexp_extract(metric_key, '^(calls\\.[a-z]+\\.[a-z_]+)\\.', 1) || '.avg_duration',
           sum(value) filter (metric_key like '%.sum_duration')
           / sum(value) filter (metric_key like '%.count') as value
    from sums where metric_key like 'calls.%'
    group by all
)
select * from averages where value is not null""",
        3,
    )
    mart = built.keyed(
        """
        select activity_date, user_id, metric_key, metric_value from fct_activity_metrics_daily
        where metric_value is not null and metric_key like '%.avg_duration'""",
        3,
    )
    assert_same(mart, truth, "fct_activity_metrics_daily, averages", abs_tol=0.0005 + 1e-9)


# --- the monthly scorecard -----------------------------------------------------------------


def test_rep_scorecard_per_user_per_month(built: Built) -> None:
    """Calls, talk time, emails, leads contacted, opportunities won / lost and won value per
    rep per calendar month (the loaded days of it). Won = changes into a won status, for the
    opportunity's assigned user, at the change; `won_value_cents` is the plain value (one-time
    + monthly + annual as entered), `won_annualized_value_cents` the annualized one."""
    sums = {
        "calls_count": "key = 'calls.all.all.count'",
        "calls_duration_seconds": "key = 'calls.all.all.sum_duration'",
        "emails_sent_count": "key = 'emails.sent.all.count'",
        "emails_replied_count": "key like 'emails.sent.%_with_reply.count'",
        "leads_contacted_count": "key = 'leads.contacted.all.count'",
        "opportunities_created_count": "key = 'opportunities.created.all.count'",
        "opportunities_won_count": "key = 'opportunities.won.all.count'",
        "opportunities_lost_count": "key = 'opportunities.lost.all.count'",
        "won_value_cents": "key like 'opportunities.value_won.%.sum_value'",
        "won_annualized_value_cents": "key = 'opportunities.won.all.sum_annualized_value'",
    }
    pivot = ", ".join(
        f"coalesce(sum(value) filter ({where.replace('key', 'metric_key')}), 0) as {column}"
        for column, where in sums.items()
    )
    truth = built.keyed(
        ACTIVITY_FACTS
        + f""",
spine as (
    select u.id as user_id, m.month from memory.ev.users u
    cross join (values (date '{FEB}'), (date '{MAR}')) m(month)
)
select spine.user_id, spine.month, {pivot},
       calls_duration_seconds / 60.0,
       case when opportunities_won_count + opportunities_lost_count > 0
            then opportunities_won_count / (opportunities_won_count + opportunities_lost_count)
       end
from spine
left join loaded_facts f
    on f.user_id = spine.user_id and date_trunc('month', f.day) = spine.month
group by all""",
        2,
    )
    mart = built.keyed(
        f"""
        select user_id, month_start_date, {", ".join(sums)}, calls_duration_minutes, win_rate
        from rpt_rep_scorecard""",
        2,
    )
    assert_same(mart, truth, "rpt_rep_scorecard")
    assert sum(values[6] for values in truth.values()) > 0  # something was won
    assert built.rows("select sum(days_in_data) from rpt_rep_scorecard") == [
        (DAYS * len(built.rows("select id from memory.ev.users")),)
    ]


def test_rep_scorecard_average_time_to_win(built: Built) -> None:
    """Average time to win: creation to first won status over the rep's won opportunities of
    the month's active-stage cohorts (all pipelines), as the funnel report evaluates them."""
    truth = built.keyed(
        FUNNEL_COHORTS
        + """
select user_id, ws, avg(epoch(first_won_at) - epoch(created_at))
from members
where cohort_type = 'active-stage-cohort' and user_id <> '_all' and type_at_t = 'won'
group by all""",
        2,
    )
    mart = built.keyed(
        """
        select user_id, month_start_date, average_time_to_win_seconds from rpt_rep_scorecard
        where average_time_to_win_seconds is not null""",
        2,
    )
    # Close reports the funnels' average time to win in whole seconds
    assert_same(mart, truth, "rpt_rep_scorecard.average_time_to_win_seconds", abs_tol=0.5)


# --- statuses -------------------------------------------------------------------------------

STATUS_COUNTERS = "count_started, count_ended, count_gained, count_lost, count_entered, count_left"


@pytest.mark.parametrize("object_type", ["lead", "opportunity"])
def test_status_daily_counts(built: Built, object_type: str) -> None:
    """Every status on every loaded day: in it at the day's start / end, gained, lost, and
    distinct objects that entered / left it (creation counts as entering)."""
    truth = built.keyed(status_overview_truth(object_type, DAY_WINDOWS), 2)
    mart = built.keyed(
        f"""
        select status_date, status_id, {STATUS_COUNTERS}
        from fct_{object_type}_status_daily
        where count_started + count_ended + count_entered + count_left > 0""",
        2,
    )
    assert_same(mart, truth, f"fct_{object_type}_status_daily")
    # every status Close lists is on every day, zeros included
    listed = (
        "lead_statuses where not is_deleted" if object_type == "lead" else ("opportunity_statuses")
    )
    [(statuses,)] = built.rows(f"select count(*) from memory.ev.{listed}")
    [(rows,)] = built.rows(
        f"select count(*) from fct_{object_type}_status_daily "
        f"where status_id in (select id from memory.ev.{listed})"
    )
    assert rows == statuses * DAYS


def test_lead_status_entered_on_given_days(built: Built) -> None:
    """Spelled out for "Interested": distinct leads that entered it, day by day."""
    [(status_id,)] = built.rows("select id from memory.ev.lead_statuses where label = 'Interested'")
    truth = dict(
        built.rows(
            f"""
            with ev as (
                select id as lead_id, created_at as ts, original_status_id as status
                from memory.ev.leads
                union all
                select lead_id, changed_at, new_status_id from memory.ev.lead_status_changes
            )
            select cast(d as date), count(distinct lead_id) filter (status = ?)
            from generate_series(date '{START}', date '{ANCHOR}', interval 1 day) t(d)
            left join ev on cast(ev.ts as date) = cast(t.d as date)
            group by 1""",
            status_id,
        )
    )
    mart = dict(
        built.rows(
            "select status_date, count_entered from fct_lead_status_daily where status_id = ?",
            status_id,
        )
    )
    assert sum(truth.values()) > 0
    assert mart == truth


@pytest.mark.parametrize("object_type", ["lead", "opportunity"])
def test_status_monthly_counts(built: Built, object_type: str) -> None:
    """The month rows are Close's month windows (not sums of days): an object entering a
    status twice in the month counts once."""
    truth = built.keyed(status_overview_truth(object_type, MONTH_WINDOWS), 2)
    mart = built.keyed(
        f"""
        select window_start_date, status_id, {STATUS_COUNTERS} from fct_status_monthly
        where object_type = '{object_type}'
          and count_started + count_ended + count_entered + count_left > 0""",
        2,
    )
    assert_same(mart, truth, f"fct_status_monthly ({object_type})")
    assert built.rows(
        f"""
        select window_start_date, window_end_date, bool_and(is_complete_month)
        from fct_status_monthly where object_type = '{object_type}' group by all order by 1"""
    ) == [(FEB, MAR, True), (MAR, END, False)]


def test_deleted_lead_status_keeps_its_history(built: Built) -> None:
    """ "Nurture (legacy)" was deleted inside the loaded range: its early days are there."""
    [(status_id, deleted_at)] = built.rows(
        "select id, deleted_at from memory.ev.lead_statuses where is_deleted"
    )
    assert START < deleted_at.date() < ANCHOR
    days = built.rows(
        """
        select min(status_date), max(status_date), bool_and(is_status_deleted)
        from fct_lead_status_daily where status_id = ?""",
        status_id,
    )
    assert days[0][0] == START and days[0][1] <= deleted_at.date() and days[0][2]
    assert built.rows(
        "select is_deleted, is_in_status_list from dim_lead_statuses where status_id = ?",
        status_id,
    ) == [(True, False)]


@pytest.mark.parametrize("object_type", ["lead", "opportunity"])
def test_status_transitions(built: Built, object_type: str) -> None:
    """Every transition (distinct objects per from -> to, creation from '_created') and the
    start -> end summary, per day and per month."""
    for grain, windows in (("day", DAY_WINDOWS), ("month", MONTH_WINDOWS)):
        truth = built.keyed(status_transitions_truth(object_type, windows), 4)
        mart = built.keyed(
            f"""
            select window_start_date, kind, from_status_key, to_status_id, transition_count
            from fct_status_transitions
            where object_type = '{object_type}' and grain = '{grain}'""",
            4,
        )
        assert_same(mart, truth, f"fct_status_transitions ({object_type}, {grain})")


# --- funnels ----------------------------------------------------------------------------------


def test_funnel_created_cohort_count_per_pipeline_month_user(built: Built) -> None:
    """Spelled out: opportunities created per pipeline x month x assigned user (and `_all`)."""
    truth = built.keyed(
        f"""
        with cohort as (
            select pipeline_id, date_trunc('month', created_at)::date as month, user_id
            from memory.ev.opportunities where created_at >= '{FEB}' and created_at < '{END}'
        )
        select pipeline_id, month, user_id, count(*) from cohort group by all
        union all
        select pipeline_id, month, '_all', count(*) from cohort group by all""",
        3,
    )
    mart = built.keyed(
        """
        select pipeline_id, month_start_date, user_id, opportunity_count from fct_funnel_totals
        where cohort_type = 'created-cohort' and opportunity_count > 0""",
        3,
    )
    assert_same(mart, truth, "fct_funnel_totals (created-cohort counts)")


def test_funnel_totals(built: Built) -> None:
    """Both cohort types: count, complete, won, won / complete value (annualized), average
    time to win and win rate, per month x pipeline x user and for `_all`."""
    truth = built.keyed(
        FUNNEL_COHORTS
        + """
select cohort_type, ws, pipeline_id, user_id,
       count(*),
       count(*) filter (type_at_t in ('won', 'lost')),
       count(*) filter (type_at_t = 'won'),
       coalesce(sum(annualized_value) filter (type_at_t in ('won', 'lost')), 0),
       coalesce(sum(annualized_value) filter (type_at_t = 'won'), 0),
       avg(epoch(first_won_at) - epoch(created_at)) filter (type_at_t = 'won'),
       count(*) filter (type_at_t = 'won')
       / nullif(count(*) filter (type_at_t in ('won', 'lost')), 0)
from members group by all""",
        4,
    )
    mart = built.keyed(
        """
        select cohort_type, window_start_date, pipeline_id, user_id, opportunity_count,
               complete_count, won_count, value_complete_cents, value_won_cents,
               average_time_to_win_seconds, win_rate
        from fct_funnel_totals where opportunity_count > 0""",
        4,
    )
    # average time to win in whole seconds as Close reports it; counts and values exact
    assert_same(mart, truth, "fct_funnel_totals", abs_tol={5: 0.5})


def test_funnel_stages(built: Built) -> None:
    """Stage counts: cohort members whose highest stage held before T reached the stage
    (won = the last stage); lost: lost members whose highest stage was that one; conversion
    to the next stage and share of the cohort (none past the won stage or out of nothing)."""
    truth = built.keyed(
        FUNNEL_COHORTS
        + """,
stages as (
    select m.cohort_type, m.ws, m.pipeline_id, m.user_id, s.id as status_id, s.stage_index,
           count(*) filter (m.highest_stage >= s.stage_index) as reached,
           coalesce(sum(m.annualized_value) filter (m.highest_stage >= s.stage_index), 0)
               as reached_value,
           count(*) filter (m.type_at_t = 'lost' and m.highest_stage = s.stage_index) as lost,
           count(*) as cohort
    from members m
    join memory.ev.opportunity_statuses s
        on s.pipeline_id = m.pipeline_id and s.stage_index is not null
    group by all
)
select cohort_type, ws, pipeline_id, user_id, status_id, reached, reached_value, lost,
       lead(reached) over (partition by cohort_type, ws, pipeline_id, user_id
                           order by stage_index) / nullif(reached, 0),
       reached / cohort
from stages""",
        5,
    )
    mart = built.keyed(
        """
        select cohort_type, window_start_date, pipeline_id, user_id, status_id,
               stage_count, value_cents, lost_count, conversion_rate_to_next_stage,
               share_of_cohort
        from fct_funnel_stages where cohort_count > 0""",
        5,
    )
    assert_same(mart, truth, "fct_funnel_stages")


# --- sent emails ------------------------------------------------------------------------------


def test_sent_email_templates_per_day(built: Built) -> None:
    """Per day and template (and `_all`): emails sent that day, of those how many were ever
    opened / replied to, open and reply rates."""
    truth = built.keyed(
        f"""
        with sent as (
            select cast(e.created_at as date) as day, e.template_id,
                   exists (select 1 from memory.ev.email_opens o where o.email_id = e.id)
                       as opened,
                   e.has_reply
            from memory.ev.emails e
            where e.direction = 'sent' and e.created_at >= '{START}' and e.created_at < '{END}'
        ),
        keyed as (
            select day, template_id as template_key, opened, has_reply from sent
            where template_id is not null
            union all
            select day, '_all', opened, has_reply from sent
        )
        select day, template_key, count(*), count(*) filter (opened),
               count(*) filter (has_reply),
               count(*) filter (opened) / count(*), count(*) filter (has_reply) / count(*)
        from keyed group by all""",
        2,
    )
    mart = built.keyed(
        """
        select window_start_date, template_key, sent_count, opened_count, responded_count,
               open_rate, reply_rate
        from fct_sent_email_templates where sent_count > 0""",
        2,
    )
    assert_same(mart, truth, "fct_sent_email_templates")
    assert (
        built.rows(
            "select * from fct_sent_email_templates where sent_count = 0 "
            "and (open_rate is not null or reply_rate is not null)"
        )
        == []
    )


# --- the invariants of issue 6, re-checked on the built file -------------------------------


def test_org_totals_equal_the_sum_of_users_per_day_and_metric(built: Built) -> None:
    """`_org` = Σ users for every count and sum (leads contacted included: the simulator counts
    a lead once ever, on its first contact), and fct_user_activity_daily adds up to it."""
    assert (
        built.rows(
            """
        select activity_date, metric_key,
               sum(metric_value) filter (user_id = '_org') as org_value,
               coalesce(sum(metric_value) filter (user_id <> '_org'), 0) as users_value
        from fct_activity_metrics_daily
        where metric_key not like '%.avg_duration'
        group by all
        having org_value is distinct from users_value"""
        )
        == []
    )
    assert (
        built.rows(
            """
        with users as (
            select activity_date, sum(calls_count) as calls,
                   sum(calls_duration_seconds) as seconds, sum(emails_sent_count) as emails,
                   sum(opportunities_won_annualized_value_cents) as won
            from fct_user_activity_daily group by all
        ),
        org as (
            select activity_date,
                   sum(metric_value) filter (metric_key = 'calls.all.all.count') as calls,
                   sum(metric_value) filter (metric_key = 'calls.all.all.sum_duration')
                       as seconds,
                   sum(metric_value) filter (metric_key = 'emails.sent.all.count') as emails,
                   sum(metric_value) filter (
                       metric_key = 'opportunities.won.all.sum_annualized_value') as won
            from fct_activity_metrics_daily where user_id = '_org' group by all
        )
        select * from users full join org using (activity_date)
        where users.calls is distinct from org.calls
           or users.seconds is distinct from org.seconds
           or users.emails is distinct from org.emails
           or users.won is distinct from org.won"""
        )
        == []
    )
    [(org_days,)] = built.rows(
        "select count(distinct activity_date) from fct_activity_metrics_daily "
        "where user_id = '_org'"
    )
    assert org_days == DAYS


def test_user_activity_daily_has_days_times_users_rows(built: Built) -> None:
    [(rows, keys, days, first, last, users)] = built.rows(
        """
        select count(*), count(distinct (user_id, activity_date)),
               count(distinct activity_date), min(activity_date), max(activity_date),
               count(distinct user_id)
        from fct_user_activity_daily"""
    )
    [(dim_users,)] = built.rows("select count(*) from dim_users")
    [(ev_users,)] = built.rows("select count(*) from memory.ev.users")
    assert (days, first, last) == (DAYS, START, ANCHOR)
    assert users == dim_users == ev_users
    assert rows == keys == days * users


def status_days(built: Built) -> str:
    return """
        select 'lead' as object_type, status_id, status_date, count_started, count_ended,
               count_gained, count_lost, count_entered, count_left
        from fct_lead_status_daily
        union all
        select 'opportunity', status_id, status_date, count_started, count_ended,
               count_gained, count_lost, count_entered, count_left
        from fct_opportunity_status_daily"""


def test_status_day_ended_is_next_day_started(built: Built) -> None:
    days = status_days(built)
    pairs = built.rows(
        f"""
        with days as ({days})
        select today.object_type, today.status_id, today.status_date, today.count_ended,
               tomorrow.count_started
        from days today
        join days tomorrow
            on tomorrow.object_type = today.object_type
            and tomorrow.status_id = today.status_id
            and tomorrow.status_date = today.status_date + 1"""
    )
    assert len(pairs) > 10 * (DAYS - 1)
    assert [p for p in pairs if p[3] != p[4]] == []
    # a status missing on a day (the deleted one once it is empty) held nothing at its start
    assert (
        built.rows(
            f"""
        with days as ({days})
        select today.* from days today
        anti join days tomorrow
            on tomorrow.object_type = today.object_type
            and tomorrow.status_id = today.status_id
            and tomorrow.status_date = today.status_date + 1
        where today.status_date < date '{ANCHOR}' and today.count_ended <> 0"""
        )
        == []
    )


def test_status_ended_is_started_plus_gained_minus_lost(built: Built) -> None:
    days = status_days(built)
    assert (
        built.rows(
            f"""
        select object_type, status_id, status_date, 'day' from ({days})
        where count_ended <> count_started + count_gained - count_lost
           or count_entered < count_gained or count_left < count_lost
        union all
        select object_type, status_id, window_start_date, 'month' from fct_status_monthly
        where count_ended <> count_started + count_gained - count_lost
           or count_entered < count_gained or count_left < count_lost"""
        )
        == []
    )
    # a month's edges are its first and last day, where those days were loaded (February's
    # first day was not)
    edges = built.rows(
        f"""
        with days as ({days})
        select m.object_type, m.status_id, m.window_start_date,
               m.count_started, coalesce(first_day.count_started, m.count_started),
               m.count_ended, last_day.count_ended
        from fct_status_monthly m
        left join days first_day
            on first_day.object_type = m.object_type and first_day.status_id = m.status_id
            and first_day.status_date = m.window_start_date
        join days last_day
            on last_day.object_type = m.object_type and last_day.status_id = m.status_id
            and last_day.status_date = m.window_end_date - 1"""
    )
    assert len(edges) > 10
    assert [e for e in edges if e[3] != e[4] or e[5] != e[6]] == []


def test_funnel_counts_stay_within_their_cohort(built: Built) -> None:
    """Stage counts never increase and never exceed the cohort; won ≤ complete ≤ count; the
    users' counts add up to `_all`."""
    assert (
        built.rows(
            """
        select s.* from fct_funnel_stages s
        join fct_funnel_totals t using (org_id, window_start_date, pipeline_id, cohort_type,
                                        user_id)
        where s.stage_count > t.opportunity_count"""
        )
        == []
    )
    assert (
        built.rows(
            """
        select * from fct_funnel_stages
        qualify stage_count > lag(stage_count) over (
            partition by org_id, window_start_date, pipeline_id, cohort_type, user_id
            order by stage_index)"""
        )
        == []
    )
    assert (
        built.rows(
            """
        select * from fct_funnel_totals
        where not (won_count <= complete_count and complete_count <= opportunity_count)
           or won_count + lost_count <> complete_count"""
        )
        == []
    )
    assert (
        built.rows(
            """
        select window_start_date, pipeline_id, cohort_type from fct_funnel_totals
        group by all
        having sum(opportunity_count) filter (user_id <> '_all')
               <> sum(opportunity_count) filter (user_id = '_all')
            or sum(won_count) filter (user_id <> '_all')
               <> sum(won_count) filter (user_id = '_all')"""
        )
        == []
    )
