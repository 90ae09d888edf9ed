"""The report registry: one record per Close report endpoint.

A ``Report`` says which endpoint it reads and which tables it feeds, how a run's days become
calls (its window plan), how a call becomes requests (with a segment's filters, Close's own
parameters), how the answers become rows, how long its past keeps changing (its refresh
window) and which segment filters it accepts. ``close_source`` builds one dlt resource per
record; ``resources.py`` runs every record the same way. A ``Listing`` is a dimension table
read whole on every run.

Adding a report = one record here + its reshaper in ``reshape.py`` + its table in
``settings.TABLES`` + tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Dict, FrozenSet, Iterator, List, Mapping, Optional, Tuple

import pyarrow as pa

from . import reshape
from .arrow import Part, activity_comparison_table
from .client import Request
from .config import Segment
from .orgs import OrgContext
from .reshape import Row
from .settings import (
    ACTIVITY_REPORT_PATH,
    AS_OF_NOW_REFRESH_DAYS,
    CUSTOM_REPORT_FIELDS_PATH,
    CUSTOM_REPORT_PATH,
    FUNNEL_COHORT_TYPES,
    FUNNEL_STAGES_PATH,
    FUNNEL_TOTALS_PATH,
    GRAIN_DAY,
    GRAIN_MONTH,
    GROUPS_PATH,
    LEAD_STATUS_REPORT_PATH,
    LEAD_STATUSES_PATH,
    OPPORTUNITY_STATUS_REPORT_PATH,
    OPPORTUNITY_STATUSES_PATH,
    SAVED_SEARCHES_PATH,
    SENT_EMAILS_PATH,
    STATUS_COUNTERS,
    USERS_PATH,
)
from .windows import (
    ONE_DAY,
    Window,
    date_params,
    datetime_range,
    day_windows,
    interval_windows,
    iso_instant,
    month_start,
    month_windows,
    overview_windows,
    utc_offset_hours,
    whole_months,
)

# ---------------------------------------------------------------- the record types


@dataclass(frozen=True)
class Call:
    """One unit of a report's work: a window, and what else the endpoint varies over."""

    window: Window
    grain: str = GRAIN_DAY
    pipeline_id: Optional[str] = None
    cohort_type: Optional[str] = None


@dataclass(frozen=True)
class Scope:
    """What one report unit fixes: the org, the segment, the Explorer query, the settings."""

    org: OrgContext
    segment: Segment
    timezone: str
    metrics_chunk_size: int
    overview_max_days: int
    query: Optional[Mapping[str, Any]] = None
    schemas: Mapping[str, pa.Schema] = field(default_factory=dict)
    """Arrow schema of each table (metric columns are the org's), from ``arrow.arrow_schema``."""

    @property
    def org_id(self) -> str:
        """The organization id of the unit's key."""
        return self.org.org_id

    def context(self, call: Call) -> Dict[str, Any]:
        """The keyword arguments every windowed reshaper takes."""
        return {
            "org_id": self.org_id,
            "window": call.window,
            "timezone": self.timezone,
            "segment": self.segment.name,
        }


Planner = Callable[[Window, Scope, date], List[Call]]
"""The calls reading ``span`` (the days the run reads), never past ``today``."""
Builder = Callable[[Call, Scope], List[Request]]
"""The requests of one call (several for metric chunks or one request per segment user)."""
Reshaper = Callable[[List[Any], Call, Scope], Dict[str, Part]]
"""The rows of each table from the answers to a call's requests (pure)."""


@dataclass(frozen=True)
class Refresh:
    """How far back an incremental run re-reads a report: its past keeps changing.

    ``days`` (None: the source's ``lookback_days``), widened to the start of the month
    ``months`` before the current one.
    """

    days: Optional[int] = None
    months: int = 0


@dataclass(frozen=True)
class Report:
    """One Close report endpoint (see the module docstring)."""

    name: str
    """Resource and state name; a single-table report is named as its table."""
    endpoint: str
    tables: Tuple[str, ...]
    plan: Planner
    requests: Builder
    reshape: Reshaper
    refresh: Refresh
    filters: FrozenSet[str]
    """Segment filters the endpoint accepts (``config.SEGMENT_FILTERS``)."""
    with_metrics: bool = False
    """Its tables get one column per metric of the org's catalog."""
    per_query: bool = False
    """One unit (with its own state) per configured Explorer query."""


@dataclass(frozen=True)
class Listing:
    """A dimension table read whole on every run (``replace``)."""

    table: str
    endpoint: str
    rows: Callable[[OrgContext], Iterator[List[Row]]]


# ---------------------------------------------------------------- segment filters as Close's


def _saved_search(segment: Segment) -> Dict[str, Any]:
    if not segment.smart_view_id:
        return {}
    return {"query": {"type": "saved_search", "saved_search_id": segment.smart_view_id}}


def _user_ids(scope: Scope) -> List[Optional[str]]:
    """One entry per request for endpoints taking a single ``user_id`` (groups expanded to
    their members); ``[None]`` when the segment names no users."""
    if not scope.segment.user_ids:
        return [None]
    return list(scope.org.expand_users(scope.segment.user_ids))


def _status_filters(segment: Segment) -> Dict[str, str]:
    if segment.smart_view_id:
        return {"smart_view_id": segment.smart_view_id}
    if segment.query:
        return {"query": segment.query}
    return {}


# ---------------------------------------------------------------- activity


def _activity_requests(report_type: str) -> Builder:
    def build(call: Call, scope: Scope) -> List[Request]:
        body: Dict[str, Any] = {
            "type": report_type,
            "datetime_range": datetime_range(call.window, scope.timezone),
            **_saved_search(scope.segment),
        }
        if scope.segment.user_ids:
            body["users"] = list(scope.org.expand_users(scope.segment.user_ids))
        offset = utc_offset_hours(call.window.start, scope.timezone)
        return [
            Request(
                "POST", ACTIVITY_REPORT_PATH, body={**body, "metrics": metrics}, tz_offset=offset
            )
            for metrics in _chunks(scope.org.metric_keys, scope.metrics_chunk_size)
        ]

    return build


def _chunks(keys: List[str], size: int) -> List[List[str]]:
    """A metric list split into calls of at most ``size`` keys (all in one when size <= 0)."""
    if size <= 0 or len(keys) <= size:
        return [keys]
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def _overview_rows(responses: List[Any], call: Call, scope: Scope) -> Dict[str, Part]:
    parts = [reshape.activity_overview_rows(r, **scope.context(call)) for r in responses]
    return {"activity_overview": reshape.merge_rows(parts, ("date",))}


def _comparison_rows(responses: List[Any], call: Call, scope: Scope) -> Dict[str, Part]:
    if len(responses) == 1:
        table = activity_comparison_table(
            responses[0], schema=scope.schemas["activity_by_user"], **scope.context(call)
        )
        if table is not None:
            return {"activity_by_user": table}
    parts = [reshape.activity_comparison_rows(r, **scope.context(call)) for r in responses]
    return {"activity_by_user": reshape.merge_rows(parts, ("user_id",))}


# ---------------------------------------------------------------- sent emails


def _sent_email_requests(call: Call, scope: Scope) -> List[Request]:
    params = date_params(call.window, scope.timezone)
    offset = utc_offset_hours(call.window.start, scope.timezone)
    path = SENT_EMAILS_PATH.format(org_id=scope.org_id)
    return [
        Request("GET", path, params={**params, **({"user_id": u} if u else {})}, tz_offset=offset)
        for u in _user_ids(scope)
    ]


def _sent_email_rows(responses: List[Any], call: Call, scope: Scope) -> Dict[str, Part]:
    parts = [reshape.sent_email_rows(r, **scope.context(call)) for r in responses]
    rows = reshape.sum_rows(parts, ("template_key",), ("total", "opened", "responded"))
    if len(parts) > 1:
        for row in rows:
            row["percentage_opened"] = reshape.ratio(row.get("opened"), row.get("total"), 100)
            row["percentage_responded"] = reshape.ratio(row.get("responded"), row.get("total"), 100)
    return {"sent_emails_by_template": rows}


# ---------------------------------------------------------------- status reports


def _status_plan(span: Window, scope: Scope, today: date) -> List[Call]:
    """Every day, and every calendar month (whole, or to date) of ``span``: a month's
    gained / lost / entered / left and its A→C summary cannot be added up from its days."""
    days = [Call(w, GRAIN_DAY) for w in day_windows(span)]
    return days + [Call(w, GRAIN_MONTH) for w in month_windows(whole_months(span, today))]


def _status_requests(object_type: str) -> Builder:
    template = LEAD_STATUS_REPORT_PATH if object_type == "lead" else OPPORTUNITY_STATUS_REPORT_PATH

    def build(call: Call, scope: Scope) -> List[Request]:
        params = {**date_params(call.window, scope.timezone), **_status_filters(scope.segment)}
        offset = utc_offset_hours(call.window.start, scope.timezone)
        users = _user_ids(scope) if object_type == "opportunity" else [None]
        return [
            Request(
                "GET",
                template.format(org_id=scope.org_id),
                params={**params, **({"user_id": u} if u else {})},
                tz_offset=offset,
            )
            for u in users
        ]

    return build


def _status_rows(object_type: str) -> Reshaper:
    overview_table = f"{object_type}_status_overview"
    transitions_table = f"{object_type}_status_transitions"

    def rows(responses: List[Any], call: Call, scope: Scope) -> Dict[str, Part]:
        parts = [
            reshape.status_report_rows(r, grain=call.grain, **scope.context(call))
            for r in responses
        ]
        overview = reshape.sum_rows(
            [p[0] for p in parts], ("status_id",), (*STATUS_COUNTERS, "change")
        )
        transitions = reshape.sum_rows(
            [p[1] for p in parts], ("kind", "from_status_key", "to_status_id"), ("count",)
        )
        if len(parts) > 1:
            for row in overview:
                row["change_percent"] = reshape.ratio(row.get("change"), row.get("started"), 100)
        return {overview_table: overview, transitions_table: transitions}

    return rows


# ---------------------------------------------------------------- funnels


def _funnel_plan(span: Window, scope: Scope, today: date) -> List[Call]:
    """Every calendar month x pipeline x cohort type (an active-stage cohort is not additive
    across days); a segment's ``pipeline_ids`` keep only those pipelines."""
    wanted = set(scope.segment.pipeline_ids)
    pipelines = [p["id"] for p in scope.org.pipelines if not wanted or p["id"] in wanted]
    return [
        Call(month, GRAIN_MONTH, pipeline_id, cohort_type)
        for month in month_windows(whole_months(span, today))
        for pipeline_id in pipelines
        for cohort_type in FUNNEL_COHORT_TYPES
    ]


def funnel_body(call: Call, scope: Scope) -> Dict[str, Any]:
    """The body of a funnel report; never any ``compared_*`` range.

    An active-stage cohort is the opportunities active in the report range; a created cohort
    is those created in the cohort range (the same month), followed through it.
    """
    span = datetime_range(call.window, scope.timezone)
    body: Dict[str, Any] = {
        "pipeline": call.pipeline_id,
        "type": call.cohort_type,
        "report_datetime_range": span,
        **_saved_search(scope.segment),
    }
    if call.cohort_type == "created-cohort":
        body["cohort_datetime_range"] = span
    if scope.segment.user_ids:
        body["users"] = list(scope.segment.user_ids)
    return body


def _funnel_requests(path: str) -> Builder:
    def build(call: Call, scope: Scope) -> List[Request]:
        offset = utc_offset_hours(call.window.start, scope.timezone)
        return [Request("POST", path, body=funnel_body(call, scope), tz_offset=offset)]

    return build


def _funnel_rows(table: str) -> Reshaper:
    reshaper = (
        reshape.funnel_totals_rows if table == "funnel_totals" else reshape.funnel_stages_rows
    )

    def rows(responses: List[Any], call: Call, scope: Scope) -> Dict[str, Part]:
        assert call.pipeline_id and call.cohort_type
        return {
            table: reshaper(
                responses[0],
                pipeline_id=call.pipeline_id,
                cohort_type=call.cohort_type,
                **scope.context(call),
            )
        }

    return rows


# ---------------------------------------------------------------- Explorer

CUSTOM_REPORT_PARAMS = ("x", "y", "interval", "transform_y", "group_by", "query")


GRAIN_SNAPSHOT = "snapshot"
"""Grain of an Explorer query whose ``x`` is not a date (a histogram, e.g. ``lead.custom.MRR``):
read whole on each run and kept per run day (``window_start`` = the run's today)."""
DATE_FIELD_TYPES = frozenset({"date", "datetime"})


def _custom_plan(span: Window, scope: Scope, today: date) -> List[Call]:
    """Whole buckets of the query's interval (``windows.interval_windows``); a day-or-finer
    query's months are split further where DST changes the UTC offset, since one
    ``X-TZ-Offset`` buckets a whole request. A query over a non-date ``x`` is one snapshot."""
    assert scope.query is not None
    x_type = scope.org.explorer_field_types.get(str(scope.query.get("x")))
    if x_type is not None and x_type not in DATE_FIELD_TYPES:
        return [Call(Window(today, today + ONE_DAY), GRAIN_SNAPSHOT)]
    interval = scope.query.get("interval")
    windows = interval_windows(span, interval, today)
    if str(interval or "").lower() in ("", "auto", "day", "hour"):
        windows = [p for w in windows for p in overview_windows(w, scope.timezone, w.days)]
    return [Call(w, GRAIN_MONTH) for w in windows]


def _custom_requests(call: Call, scope: Scope) -> List[Request]:
    query = scope.query or {}
    params = {k: str(query[k]) for k in CUSTOM_REPORT_PARAMS if query.get(k) not in (None, "")}
    if call.grain != GRAIN_SNAPSHOT:
        params.update(
            start=iso_instant(call.window.start, scope.timezone),
            end=iso_instant(call.window.end, scope.timezone),
        )
    return [
        Request(
            "GET",
            CUSTOM_REPORT_PATH.format(org_id=scope.org_id),
            params=params,
            tz_offset=utc_offset_hours(call.window.start, scope.timezone),
        )
    ]


def _custom_rows(responses: List[Any], call: Call, scope: Scope) -> Dict[str, Part]:
    assert scope.query is not None
    rows = reshape.custom_report_rows(responses[0], report=scope.query, **scope.context(call))
    return {"custom_reports": rows}


# ---------------------------------------------------------------- the registry


def _day_plan(span: Window, scope: Scope, today: date) -> List[Call]:
    return [Call(w) for w in day_windows(span)]


def _overview_plan(span: Window, scope: Scope, today: date) -> List[Call]:
    return [Call(w) for w in overview_windows(span, scope.timezone, scope.overview_max_days)]


ACTIVITY_FILTERS = frozenset({"smart_view_id", "user_ids"})
AS_OF_NOW = Refresh(days=AS_OF_NOW_REFRESH_DAYS)

REPORTS: Tuple[Report, ...] = (
    Report(
        name="activity_overview",
        endpoint="POST /report/activity/ (overview)",
        tables=("activity_overview",),
        plan=_overview_plan,
        requests=_activity_requests("overview"),
        reshape=_overview_rows,
        refresh=AS_OF_NOW,
        filters=ACTIVITY_FILTERS,
        with_metrics=True,
    ),
    Report(
        name="activity_by_user",
        endpoint="POST /report/activity/ (comparison)",
        tables=("activity_by_user",),
        plan=_day_plan,
        requests=_activity_requests("comparison"),
        reshape=_comparison_rows,
        refresh=AS_OF_NOW,
        filters=ACTIVITY_FILTERS,
        with_metrics=True,
    ),
    Report(
        name="sent_emails_by_template",
        endpoint="GET /report/sent_emails/{org_id}/",
        tables=("sent_emails_by_template",),
        plan=_day_plan,
        requests=_sent_email_requests,
        reshape=_sent_email_rows,
        refresh=AS_OF_NOW,
        filters=frozenset({"user_ids"}),
    ),
    Report(
        name="lead_status_reports",
        endpoint="GET /report/statuses/lead/{org_id}/",
        tables=("lead_status_overview", "lead_status_transitions"),
        plan=_status_plan,
        requests=_status_requests("lead"),
        reshape=_status_rows("lead"),
        refresh=Refresh(),
        filters=frozenset({"smart_view_id", "query"}),
    ),
    Report(
        name="opportunity_status_reports",
        endpoint="GET /report/statuses/opportunity/{org_id}/",
        tables=("opportunity_status_overview", "opportunity_status_transitions"),
        plan=_status_plan,
        requests=_status_requests("opportunity"),
        reshape=_status_rows("opportunity"),
        refresh=Refresh(),
        filters=frozenset({"smart_view_id", "query", "user_ids"}),
    ),
    *(
        Report(
            name=table,
            endpoint=f"POST {path}",
            tables=(table,),
            plan=_funnel_plan,
            requests=_funnel_requests(path),
            reshape=_funnel_rows(table),
            refresh=Refresh(months=1),
            filters=frozenset({"smart_view_id", "user_ids", "pipeline_ids"}),
        )
        for table, path in (
            ("funnel_totals", FUNNEL_TOTALS_PATH),
            ("funnel_stages", FUNNEL_STAGES_PATH),
        )
    ),
    Report(
        name="custom_reports",
        endpoint="GET /report/custom/{org_id}/",
        tables=("custom_reports",),
        plan=_custom_plan,
        requests=_custom_requests,
        reshape=_custom_rows,
        refresh=Refresh(),
        filters=frozenset(),
        per_query=True,
    ),
)
"""Every report endpoint the source reads; the order is the order resources are built."""


def _pages(path: str) -> Callable[[OrgContext], Iterator[List[Row]]]:
    def rows(org: OrgContext) -> Iterator[List[Row]]:
        for page in org.client.paginate(path):
            yield reshape.dimension_rows(page, org.org_id)

    return rows


def _users(org: OrgContext) -> Iterator[List[Row]]:
    active = reshape.active_user_ids(org.organization) if org.organization else None
    for page in org.client.paginate(USERS_PATH):
        yield reshape.user_rows(page, org.org_id, active)


def _opportunity_statuses(org: OrgContext) -> Iterator[List[Row]]:
    for page in org.client.paginate(OPPORTUNITY_STATUSES_PATH):
        yield reshape.opportunity_status_rows(page, org.org_id, org.pipelines)


LISTINGS: Tuple[Listing, ...] = (
    Listing(
        "activity_metrics",
        "GET /report/activity/metrics/",
        lambda org: iter([reshape.activity_metric_rows({"metrics": org.metrics}, org.org_id)]),
    ),
    Listing(
        "custom_report_fields",
        f"GET {CUSTOM_REPORT_FIELDS_PATH}",
        lambda org: iter([reshape.custom_field_rows(org.custom_fields, org.org_id)]),
    ),
    Listing("users", f"GET {USERS_PATH}", _users),
    Listing("lead_statuses", f"GET {LEAD_STATUSES_PATH}", _pages(LEAD_STATUSES_PATH)),
    Listing("opportunity_statuses", f"GET {OPPORTUNITY_STATUSES_PATH}", _opportunity_statuses),
    Listing(
        "pipelines",
        "GET /pipeline/",
        lambda org: iter([reshape.dimension_rows(org.pipelines, org.org_id)]),
    ),
    Listing("groups", f"GET {GROUPS_PATH}", _pages(GROUPS_PATH)),
    Listing("saved_searches", f"GET {SAVED_SEARCHES_PATH}", _pages(SAVED_SEARCHES_PATH)),
)
"""Every dimension table, read whole on every run."""


def refresh_days(
    report: Report, next_day: date, lookback_days: int, configured: Mapping[str, int]
) -> int:
    """Days before ``next_day`` (the first day not yet loaded) an incremental run re-reads.

    A table's ``[sources.close.refresh_days]`` entry wins (the largest, for a report feeding
    several tables); else the report's own ``Refresh``, never less than ``lookback_days``.
    """
    own = [configured[t] for t in report.tables if t in configured]
    if own:
        return max(own)
    days = max(lookback_days, report.refresh.days or 0)
    if report.refresh.months:
        start = month_start(next_day)
        for _ in range(report.refresh.months):
            start = month_start(start - ONE_DAY)
        days = max(days, (next_day - start).days)
    return days
