"""close-pipeline dashboard: one self-contained HTML file of the marts.

Reads the dbt marts (schema ``close_marts``) from a DuckDB file and writes one HTML page that
needs no server and no network when it is opened: the Vega, Vega-Lite and vega-embed
libraries (bundled by vl-convert), the styles, the chart specs (built with altair) and the
data are all inline.

Sections, each from one mart (a missing or empty mart shows a note instead of its charts):

- activity per rep per week: calls, talk time, emails sent (``fct_user_activity_daily``)
- lead status flow: entered / left per status per day, beside Close's month report
  (``fct_lead_status_daily``, ``fct_status_monthly``)
- funnel conversion by stage per pipeline and cohort (``fct_funnel_stages``)
- email template open and reply rates (``fct_sent_email_templates``)
- the monthly rep scorecard, as a table (``rpt_rep_scorecard``)
- pipeline health from the run ledger (``rpt_pipeline_runs``): requests, 429s, failures per run

Filters are Vega-Lite parameters bound to the page's inputs: a date range (every daily and
monthly mart) and a segment (shown only when a mart has a ``segment`` column; ``_all`` =
unfiltered).
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from close_reports.failures import UsageError

DEFAULT_OUT = "close-dashboard.html"
MARTS_SCHEMA = "close_marts"
ALL_SEGMENTS = "_all"
"""The contract's sentinel segment: rows of the unfiltered report."""
ALL_OPTION = "(all)"
"""The "no filter" choice of the chart-local selects (status, pipeline)."""
MAX_RUNS = 60
"""Newest runs shown in the pipeline-health chart."""

DATE_FROM = "date_from"
DATE_TO = "date_to"
SEGMENT = "segment"

COHORT_LABELS = {
    "created-cohort": "created in the month",
    "active-stage-cohort": "in an active stage during the month",
}


# ---------------------------------------------------------------- reading the marts


class Marts:
    """A read-only view of the marts schema of one DuckDB file."""

    def __init__(self, duckdb_path: Path, schema: str = MARTS_SCHEMA) -> None:
        import duckdb

        self.path = duckdb_path
        self.schema = schema
        self._con = duckdb.connect(str(duckdb_path), read_only=True)
        listing = self._con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = ? order by table_name, ordinal_position",
            [schema],
        ).fetchall()
        self._columns: Dict[str, List[str]] = {}
        for table, column in listing:
            self._columns.setdefault(table, []).append(column)

    def close(self) -> None:
        self._con.close()

    def columns(self, table: str) -> Optional[List[str]]:
        """The table's columns, or None when the mart is not in the file."""
        return self._columns.get(table)

    def has_segments(self, table: str) -> bool:
        return SEGMENT in (self.columns(table) or [])

    def rows(self, sql: str, params: Sequence[Any] = ()) -> List[Dict[str, Any]]:
        """Rows of ``sql`` (``{marts}`` = the schema) as JSON-ready dicts."""
        cursor = self._con.execute(sql.format(marts=self.schema), list(params))
        names = [d[0] for d in cursor.description]
        return [
            {n: _jsonable(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()
        ]

    def first_row(self, sql: str) -> Sequence[Any]:
        row = self._con.execute(sql.format(marts=self.schema)).fetchone()
        return row if row is not None else ()

    def segments(self, table: str) -> List[str]:
        if not self.has_segments(table):
            return []
        values = self._con.execute(
            f"select distinct {SEGMENT} from {self.schema}.{table} order by 1"
        ).fetchall()
        return [v for (v,) in values if v is not None]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------- page model


@dataclass
class Chart:
    """One vega-embed view: its element id, Vega-Lite spec and the named datasets it reads."""

    id: str
    spec: Dict[str, Any]
    datasets: List[str]


@dataclass
class Section:
    key: str
    title: str
    intro: str
    charts: List[Chart] = field(default_factory=list)
    table_html: str = ""
    note: str = ""


@dataclass
class Dashboard:
    """What was written: the file, its size, the sections and how many charts."""

    path: Path
    size_bytes: int
    sections: List[Section]
    segments: List[str]
    date_min: Optional[str]
    date_max: Optional[str]

    @property
    def chart_count(self) -> int:
        return sum(len(s.charts) for s in self.sections)

    def summary_line(self) -> str:
        notes = [s.title for s in self.sections if s.note]
        days = f", data {self.date_min} to {self.date_max}" if self.date_min else ""
        text = (
            f"dashboard: {self.path} ({self.size_bytes / 1e6:.1f} MB, "
            f"{self.chart_count} charts{days})"
        )
        if notes:
            text += f"; no data for: {', '.join(notes)}"
        return text


@dataclass
class Filters:
    """The page-level filters each spec binds to, and the datasets the specs read."""

    segments: List[str]
    date_min: Optional[str]
    date_max: Optional[str]
    data: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)

    def params(self, segmented: bool) -> List[Any]:
        import altair as alt

        params = [
            alt.param(name=DATE_FROM, value=self.date_min or "", bind=alt.BindDirect("#date-from")),
            alt.param(name=DATE_TO, value=self.date_max or "", bind=alt.BindDirect("#date-to")),
        ]
        if segmented and self.segments:
            params.append(
                alt.param(name=SEGMENT, value=ALL_SEGMENTS, bind=alt.BindDirect("#segment-filter"))
            )
        return params


def _day_filter(column: str) -> str:
    """A Vega expression: the ISO day ``column`` lies in the page's date range."""
    return (
        f"(!{DATE_FROM} || datum.{column} >= {DATE_FROM}) && "
        f"(!{DATE_TO} || datum.{column} <= {DATE_TO})"
    )


def _window_filter(start: str, end: str) -> str:
    """A Vega expression: the half-open window [start, end) overlaps the page's date range."""
    return (
        f"(!{DATE_FROM} || datum.{end} > {DATE_FROM}) && (!{DATE_TO} || datum.{start} <= {DATE_TO})"
    )


SEGMENT_FILTER = f"datum.{SEGMENT} == {SEGMENT}"


def _segment_select(marts: Marts, table: str) -> str:
    return f", {SEGMENT}" if marts.has_segments(table) else ""


def _missing(marts: Marts, *tables: str) -> str:
    """A note naming the marts that are missing or empty, or '' when all have rows."""
    for table in tables:
        if marts.columns(table) is None:
            return (
                f"The mart {marts.schema}.{table} is not in {marts.path.name}: run "
                "`close-pipeline run` (or `transform`) to build the marts."
            )
    return ""


def _empty_note(marts: Marts, table: str) -> str:
    return f"{marts.schema}.{table} has no rows yet: nothing to show."


def _month_label(row: Dict[str, Any]) -> str:
    month = dt.date.fromisoformat(row["month_start_date"]).strftime("%b %Y")
    return month if row.get("is_complete_month", True) else f"{month} (to date)"


# ---------------------------------------------------------------- sections


def _spec(chart: Any) -> Dict[str, Any]:
    spec: Dict[str, Any] = chart.to_dict()
    spec.setdefault("config", {}).update(
        {
            "font": "system-ui, -apple-system, 'Segoe UI', Roboto, 'Liberation Sans', sans-serif",
            "view": {"stroke": None},
            "axis": {"labelColor": "#333", "titleColor": "#333", "gridColor": "#eee"},
            "title": {"anchor": "start", "fontSize": 13, "color": "#1f2d3d"},
        }
    )
    return spec


def _intro_segment_note(marts: Marts, filters: Filters, *tables: str) -> str:
    if filters.segments and not any(marts.has_segments(t) for t in tables):
        return " Not split by segment: the segment filter does not apply here."
    return ""


def activity_section(marts: Marts, filters: Filters) -> Section:
    """Calls, talk time and emails per rep per week: three heat maps, rep × week."""
    import altair as alt

    table = "fct_user_activity_daily"
    section = Section(
        "activity",
        "Activity per rep per week",
        "Calls, talk time and emails sent by each rep, per week (weeks start on Monday; the "
        "first and last week of the range may be partial), from fct_user_activity_daily. "
        "Reps are sorted by the chart's total." + _intro_segment_note(marts, filters, table),
    )
    section.note = _missing(marts, table)
    if section.note:
        return section
    rows = filters.data.setdefault(
        "activity",
        marts.rows(
            "select user_name, activity_date, week_start_date, calls_count, "
            f"calls_duration_seconds, emails_sent_count{_segment_select(marts, table)} "
            f"from {{marts}}.{table} order by activity_date, user_name"
        ),
    )
    if not rows:
        section.note = _empty_note(marts, table)
        return section
    segmented = marts.has_segments(table)
    for key, title, expression, fmt in (
        ("calls", "Calls", "datum.calls", ",.0f"),
        ("talk_hours", "Talk time (hours)", "datum.talk_seconds / 3600", ",.1f"),
        ("emails", "Emails sent", "datum.emails", ",.0f"),
    ):
        base = alt.Chart(alt.NamedData("activity")).transform_filter(_day_filter("activity_date"))
        if segmented:
            base = base.transform_filter(SEGMENT_FILTER)
        base = (
            base.transform_aggregate(
                calls="sum(calls_count)",
                talk_seconds="sum(calls_duration_seconds)",
                emails="sum(emails_sent_count)",
                days="count()",
                groupby=["user_name", "week_start_date"],
            )
            .transform_calculate(value=expression)
            .transform_joinaggregate(max_value="max(value)")
        )
        x = alt.X(
            "week_start_date:O",
            title="week starting",
            axis=alt.Axis(labelExpr="utcFormat(toDate(datum.value), '%d %b')", labelAngle=-45),
        )
        y = alt.Y(
            "user_name:N",
            title=None,
            sort=alt.EncodingSortField(field="value", op="sum", order="descending"),
        )
        cells = (
            base.properties(name=f"{key}_cells")
            .mark_rect()
            .encode(
                x=x,
                y=y,
                color=alt.Color(
                    "value:Q", title=None, scale=alt.Scale(scheme="blues", domainMin=0)
                ),
                tooltip=[
                    alt.Tooltip("user_name:N", title="rep"),
                    alt.Tooltip("week_start_date:N", title="week starting"),
                    alt.Tooltip("value:Q", title=title, format=fmt),
                    alt.Tooltip("days:Q", title="days in range"),
                ],
            )
        )
        labels = (
            base.properties(name=f"{key}_labels")
            .mark_text(fontSize=9)
            .encode(
                x=x,
                y=y,
                text=alt.Text("value:Q", format=fmt),
                color=alt.condition(
                    "datum.value > 0.55 * datum.max_value", alt.value("white"), alt.value("#1f2d3d")
                ),
            )
        )
        chart = (
            alt.layer(cells, labels)
            .properties(title=title, width=alt.Step(30), height=alt.Step(16))
            .add_params(*filters.params(segmented))
        )
        section.charts.append(Chart(f"chart-activity-{key}", _spec(chart), ["activity"]))
    return section


def status_section(marts: Marts, filters: Filters) -> Section:
    """Leads entering and leaving each status: per day, beside Close's month report."""
    import altair as alt

    daily_table, monthly_table = "fct_lead_status_daily", "fct_status_monthly"
    section = Section(
        "status",
        "Leads entering and leaving each status",
        "Leads that entered (above the axis) and left (below) each status: per day from "
        "fct_lead_status_daily, and beside it Close's own month report (fct_status_monthly) "
        "for the whole months that overlap the date range. A month is not the sum of its "
        "days: a lead that enters a status three times in a month enters it once in the "
        "month report." + _intro_segment_note(marts, filters, daily_table, monthly_table),
    )
    section.note = _missing(marts, daily_table, monthly_table)
    if section.note:
        return section
    daily = filters.data.setdefault(
        "lead_status_daily",
        marts.rows(
            "select status_label, status_date, count_entered, count_left"
            f"{_segment_select(marts, daily_table)} from {{marts}}.{daily_table} "
            "order by status_date, status_label"
        ),
    )
    monthly = filters.data.setdefault(
        "lead_status_monthly",
        marts.rows(
            "select status_label, month_start_date, window_end_date, is_complete_month, "
            f"count_entered, count_left{_segment_select(marts, monthly_table)} "
            f"from {{marts}}.{monthly_table} where object_type = 'lead' "
            "order by month_start_date, status_label"
        ),
    )
    if not daily and not monthly:
        section.note = _empty_note(marts, daily_table)
        return section
    for row in monthly:
        row["month_label"] = _month_label(row)
    labels = sorted({r["status_label"] for r in daily} | {r["status_label"] for r in monthly})
    status = alt.param(
        name="lead_status",
        value=ALL_OPTION,
        bind=alt.binding_select(options=[ALL_OPTION, *labels], name="lead status "),
    )
    color = alt.Color("status_label:N", title="lead status", scale=alt.Scale(domain=labels))
    opacity = alt.Opacity(
        "direction:O", title="", scale=alt.Scale(domain=["entered", "left"], range=[1.0, 0.5])
    )

    def flows(data: str, x: Any, when: str, segmented: bool, x_tooltip: Any) -> Any:
        chart = alt.Chart(alt.NamedData(data)).transform_filter(when)
        if segmented:
            chart = chart.transform_filter(SEGMENT_FILTER)
        return (
            chart.transform_filter(
                f"lead_status == '{ALL_OPTION}' || datum.status_label == lead_status"
            )
            .transform_calculate(
                # a Date for the time axis; the ISO string stays for the date-range filter
                day="toDate(datum.status_date || datum.month_start_date)",
                entered="datum.count_entered",
                left="datum.count_left",
            )
            .transform_fold(["entered", "left"], as_=["direction", "leads"])
            .transform_calculate(
                signed_leads="datum.direction == 'left' ? -datum.leads : datum.leads"
            )
            .properties(name=f"{data}_bars")
            .mark_bar()
            .encode(
                x=x,
                y=alt.Y("sum(signed_leads):Q", title="leads entered (+) / left (−)"),
                color=color,
                opacity=opacity,
                tooltip=[
                    alt.Tooltip("status_label:N", title="status"),
                    x_tooltip,
                    alt.Tooltip("direction:N"),
                    alt.Tooltip("sum(leads):Q", title="leads"),
                ],
            )
        )

    daily_chart = flows(
        "lead_status_daily",
        alt.X("utcyearmonthdate(day):T", title="day", axis=alt.Axis(format="%d %b")),
        _day_filter("status_date"),
        marts.has_segments(daily_table),
        alt.Tooltip("utcyearmonthdate(day):T", title="day", format="%Y-%m-%d"),
    ).properties(title="per day", width=560, height=260)
    months = [r["month_label"] for r in sorted(monthly, key=lambda r: r["month_start_date"])]
    monthly_chart = flows(
        "lead_status_monthly",
        alt.X(
            "month_label:O",
            title=None,
            sort=list(dict.fromkeys(months)),
            axis=alt.Axis(labelAngle=0),
        ),
        _window_filter("month_start_date", "window_end_date"),
        marts.has_segments(monthly_table),
        alt.Tooltip("month_label:N", title="month"),
    ).properties(title="per month (Close's month report)", width=alt.Step(64), height=260)
    segmented = marts.has_segments(daily_table) or marts.has_segments(monthly_table)
    chart = (
        alt.hconcat(daily_chart, monthly_chart)
        .resolve_scale(y="independent")
        .add_params(status, *filters.params(segmented))
    )
    section.charts.append(
        Chart("chart-lead-status", _spec(chart), ["lead_status_daily", "lead_status_monthly"])
    )
    return section


def funnel_section(marts: Marts, filters: Filters) -> Section:
    """Funnel conversion: share of each monthly cohort that reached each stage."""
    import altair as alt

    table = "fct_funnel_stages"
    section = Section(
        "funnel",
        "Funnel conversion by stage",
        "Share of each month's cohort of opportunities that reached each stage of the "
        "pipeline (Close's totals over all reps), with the stage's count; pick the pipeline "
        "and the cohort below the chart. From fct_funnel_stages; whole months that overlap "
        "the date range." + _intro_segment_note(marts, filters, table),
    )
    section.note = _missing(marts, table)
    if section.note:
        return section
    rows = filters.data.setdefault(
        "funnel_stages",
        marts.rows(
            "select pipeline_name, cohort_type, month_start_date, window_end_date, stage_index, "
            "status_label, status_type, stage_count, cohort_count, share_of_cohort, "
            f"conversion_rate_to_next_stage{_segment_select(marts, table)} "
            f"from {{marts}}.{table} where user_id = '_all' "
            "order by pipeline_name, cohort_type, month_start_date, stage_index"
        ),
    )
    if not rows:
        section.note = _empty_note(marts, table)
        return section
    for row in rows:
        row["month_label"] = dt.date.fromisoformat(row["month_start_date"]).strftime("%b %Y")
        row["pipeline_name"] = row["pipeline_name"] or "(unnamed pipeline)"
    cohorts: Dict[str, int] = {}
    for row in rows:
        if row["stage_index"] == 0:
            cohorts[row["pipeline_name"]] = cohorts.get(row["pipeline_name"], 0) + (
                row["cohort_count"] or 0
            )
    pipelines = sorted({r["pipeline_name"] for r in rows})
    biggest = max(pipelines, key=lambda p: (cohorts.get(p, 0), p))
    cohort_types = sorted({r["cohort_type"] for r in rows})
    pipeline = alt.param(
        name="funnel_pipeline",
        value=biggest,
        bind=alt.binding_select(options=pipelines, name="pipeline "),
    )
    cohort = alt.param(
        name="funnel_cohort",
        value="created-cohort" if "created-cohort" in cohort_types else cohort_types[0],
        bind=alt.binding_select(
            options=cohort_types,
            labels=[f"{c}: {COHORT_LABELS.get(c, c)}" for c in cohort_types],
            name="cohort ",
        ),
    )
    base = alt.Chart(alt.NamedData("funnel_stages")).transform_filter(
        "datum.pipeline_name == funnel_pipeline && datum.cohort_type == funnel_cohort"
    )
    base = base.transform_filter(_window_filter("month_start_date", "window_end_date"))
    if marts.has_segments(table):
        base = base.transform_filter(SEGMENT_FILTER)
    base = base.transform_calculate(
        label="(isValid(datum.share_of_cohort) ? format(datum.share_of_cohort, '.0%') : '–')"
        " + ' · ' + datum.stage_count"
    )
    months = sorted({(r["month_start_date"], r["month_label"]) for r in rows})
    x = alt.X(
        "month_label:O",
        title="cohort month",
        sort=[m for _, m in months],
        axis=alt.Axis(labelAngle=0, orient="top"),
    )
    y = alt.Y(
        "status_label:N",
        title="stage",
        sort=alt.EncodingSortField(field="stage_index", op="min", order="ascending"),
    )
    cells = (
        base.properties(name="funnel_cells")
        .mark_rect(invalid="show")  # a month without opportunities: an empty cell, labelled
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "share_of_cohort:Q",
                title="share of cohort",
                scale=alt.Scale(scheme="greens", domain=[0, 1]),
                legend=alt.Legend(format=".0%"),
            ),
            tooltip=[
                alt.Tooltip("pipeline_name:N", title="pipeline"),
                alt.Tooltip("month_label:N", title="cohort month"),
                alt.Tooltip("status_label:N", title="stage"),
                alt.Tooltip("stage_count:Q", title="reached the stage"),
                alt.Tooltip("cohort_count:Q", title="cohort"),
                alt.Tooltip("share_of_cohort:Q", title="share of cohort", format=".1%"),
                alt.Tooltip(
                    "conversion_rate_to_next_stage:Q", title="on to the next stage", format=".1%"
                ),
            ],
        )
    )
    labels = (
        base.properties(name="funnel_labels")
        .mark_text(fontSize=11)
        .encode(
            x=x,
            y=y,
            text="label:N",
            color=alt.condition(
                "datum.share_of_cohort > 0.6", alt.value("white"), alt.value("#1f2d3d")
            ),
        )
    )
    chart = (
        alt.layer(cells, labels)
        .properties(
            title="share of the cohort that reached each stage · count",
            width=alt.Step(120),
            height=alt.Step(34),
        )
        .add_params(pipeline, cohort, *filters.params(marts.has_segments(table)))
    )
    section.charts.append(Chart("chart-funnel", _spec(chart), ["funnel_stages"]))
    return section


def templates_section(marts: Marts, filters: Filters) -> Section:
    """Email template open and reply rates over the date range."""
    import altair as alt

    table = "fct_sent_email_templates"
    section = Section(
        "templates",
        "Email templates: open and reply rates",
        "Opened ÷ sent and replied ÷ sent per template over the date range (sums of the days, "
        "then divided), from fct_sent_email_templates; “All Emails” is Close's total over "
        "every email, templated or not." + _intro_segment_note(marts, filters, table),
    )
    section.note = _missing(marts, table)
    if section.note:
        return section
    rows = filters.data.setdefault(
        "email_templates",
        marts.rows(
            "select coalesce(template_name, template_key) as template_name, is_all_emails, "
            "window_start_date, window_end_date, sent_count, opened_count, responded_count"
            f"{_segment_select(marts, table)} from {{marts}}.{table} "
            "order by window_start_date, template_name"
        ),
    )
    if not rows:
        section.note = _empty_note(marts, table)
        return section
    base = alt.Chart(alt.NamedData("email_templates")).transform_filter(
        _window_filter("window_start_date", "window_end_date")
    )
    if marts.has_segments(table):
        base = base.transform_filter(SEGMENT_FILTER)
    base = (
        base.transform_aggregate(
            sent="sum(sent_count)",
            opened="sum(opened_count)",
            replied="sum(responded_count)",
            groupby=["template_name", "is_all_emails"],
        )
        .transform_calculate(
            open_rate="datum.sent > 0 ? datum.opened / datum.sent : null",
            reply_rate="datum.sent > 0 ? datum.replied / datum.sent : null",
            sort_key="datum.is_all_emails ? 1e15 : datum.sent",
        )
        .transform_fold(["open_rate", "reply_rate"], as_=["measure", "rate"])
        .transform_calculate(measure_label="datum.measure == 'open_rate' ? 'opened' : 'replied'")
    )
    y = alt.Y(
        "template_name:N",
        title=None,
        sort=alt.EncodingSortField(field="sort_key", op="max", order="descending"),
    )
    bars = (
        base.properties(name="template_bars")
        .mark_bar()
        .encode(
            y=y,
            yOffset=alt.YOffset("measure_label:N", sort=["opened", "replied"]),
            x=alt.X("rate:Q", title="share of emails sent", axis=alt.Axis(format=".0%")),
            color=alt.Color(
                "measure_label:N",
                title=None,
                scale=alt.Scale(domain=["opened", "replied"], range=["#4c78a8", "#f58518"]),
            ),
            tooltip=[
                alt.Tooltip("template_name:N", title="template"),
                alt.Tooltip("sent:Q", title="sent", format=","),
                alt.Tooltip("opened:Q", title="opened", format=","),
                alt.Tooltip("replied:Q", title="replied", format=","),
                alt.Tooltip("rate:Q", title="rate", format=".1%"),
            ],
        )
    )
    labels = (
        base.properties(name="template_labels")
        .mark_text(align="left", dx=3, fontSize=9)
        .encode(
            y=y,
            yOffset=alt.YOffset("measure_label:N", sort=["opened", "replied"]),
            x="rate:Q",
            text=alt.Text("rate:Q", format=".1%"),
        )
    )
    chart = (
        alt.layer(bars, labels)
        .properties(title="opened and replied, share of sent", width=520, height=alt.Step(16))
        .add_params(*filters.params(marts.has_segments(table)))
    )
    section.charts.append(Chart("chart-templates", _spec(chart), ["email_templates"]))
    return section


SCORECARD_COLUMNS = (
    # column, heading, format
    ("calls_count", "Calls", "int"),
    ("calls_duration_minutes", "Talk (min)", "int"),
    ("emails_sent_count", "Emails sent", "int"),
    ("emails_replied_count", "Replied", "int"),
    ("email_reply_rate", "Reply rate", "pct"),
    ("leads_contacted_count", "Leads contacted", "int"),
    ("opportunities_created_count", "Opps created", "int"),
    ("opportunities_won_count", "Won", "int"),
    ("opportunities_lost_count", "Lost", "int"),
    ("won_value_amount", "Won value", "int"),
    ("win_rate", "Win rate", "pct"),
    ("average_time_to_win_days", "Days to win", "one"),
)


def format_cell(value: Any, kind: str) -> str:
    """How the scorecard shows a value: 1,234 · 12.3% · 4.5 · – for null."""
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "one":
        return f"{value:,.1f}"
    return f"{round(value):,}"


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def scorecard_section(marts: Marts, filters: Filters) -> Section:
    """The monthly rep scorecard as an HTML table, filtered by the same inputs."""
    table = "rpt_rep_scorecard"
    section = Section(
        "scorecard",
        "Monthly rep scorecard",
        "One row per rep per month (newest month first, then by won value), from "
        "rpt_rep_scorecard; months that overlap the date range. Won value is in the org's "
        "currency; rates are blank when their denominator is 0."
        + _intro_segment_note(marts, filters, table),
    )
    section.note = _missing(marts, table)
    if section.note:
        return section
    available = set(marts.columns(table) or [])
    columns = [c for c in SCORECARD_COLUMNS if c[0] in available]
    segmented = marts.has_segments(table)
    order = ", ".join(
        f"{c} desc nulls last" for c in ("won_value_amount", "calls_count") if c in available
    )
    rows = marts.rows(
        f"select month_start_date, user_name{_segment_select(marts, table)}, "
        + ", ".join(c for c, _, _ in columns)
        + f" from {{marts}}.{table} order by month_start_date desc"
        + (f", {order}" if order else "")
        + ", user_name"
    )
    if not rows:
        section.note = _empty_note(marts, table)
        return section
    head = "".join(
        f'<th scope="col" class="num" data-column="{c}">{html.escape(h)}</th>'
        for c, h, _ in columns
    )
    body = []
    for row in rows:
        month = dt.date.fromisoformat(row["month_start_date"])
        attributes = (
            f'data-month-start="{month.isoformat()}" '
            f'data-month-end="{_next_month(month).isoformat()}"'
        )
        if segmented:
            attributes += f' data-segment="{html.escape(str(row[SEGMENT]))}"'
        cells = "".join(
            f'<td class="num" data-column="{c}">{format_cell(row[c], kind)}</td>'
            for c, _, kind in columns
        )
        body.append(
            f"<tr {attributes}><td>{month.strftime('%b %Y')}</td>"
            f'<th scope="row" data-column="user_name">{html.escape(str(row["user_name"]))}</th>'
            f"{cells}</tr>"
        )
    section.table_html = (
        '<div class="table-scroll"><table id="scorecard-table" class="scorecard">'
        f'<thead><tr><th scope="col">Month</th><th scope="col">Rep</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        '<p class="empty-filter" id="scorecard-empty" hidden>No scorecard rows in the '
        "selected range.</p></div>"
    )
    return section


RUN_LEDGER_COLUMNS = (
    "run_id",
    "started_at",
    "request_count",
    "retry_count",
    "rate_limited_count",
    "reports_failed",
    "failed_reports",
)
"""The columns of dbt's rpt_pipeline_runs (one row per run) the health charts read."""


def _run_ledger_sql() -> str:
    """SQL for the newest runs of rpt_pipeline_runs, named as the charts use them."""
    return (
        "select run_id, started_at, "
        "request_count as requests, retry_count as retries, "
        "rate_limited_count as rate_limited, reports_failed as failed, failed_reports "
        f"from {{marts}}.rpt_pipeline_runs order by started_at desc, run_id desc limit {MAX_RUNS}"
    )


def runs_section(marts: Marts, filters: Filters) -> Section:
    """Pipeline health from the run ledger: requests, 429s and failed reports per run."""
    import altair as alt

    table = "rpt_pipeline_runs"
    section = Section(
        "runs",
        "Pipeline health",
        f"Requests, rate-limited requests (HTTP 429) and failed reports per load run, from "
        f"rpt_pipeline_runs (the run ledger), newest {MAX_RUNS} runs; every segment and org "
        "added up. Not filtered by the date range: runs happen after the days they load.",
    )
    columns = marts.columns(table)
    if columns is None:
        section.note = (
            f"No run ledger yet: {marts.schema}.{table} is not in {marts.path.name}. It appears "
            "once a load has written close_raw.run_ledger and dbt has built the mart."
        )
        return section
    missing = [c for c in RUN_LEDGER_COLUMNS if c not in columns]
    if missing:
        section.note = (
            f"{marts.schema}.{table} lacks {', '.join(missing)}: it was built by an older "
            "version of the dbt project; `close-pipeline run` (or `dbt build`) rebuilds it."
        )
        return section
    rows = filters.data.setdefault("pipeline_runs", marts.rows(_run_ledger_sql()))
    if not rows:
        section.note = f"No run ledger yet: {marts.schema}.{table} has no runs."
        return section
    for row in rows:
        row["run_label"] = (row["started_at"] or row["run_id"])[:16]
    order = [
        r["run_label"] for r in sorted(rows, key=lambda r: (r["started_at"] or "", r["run_id"]))
    ]
    charts = []
    measures = (
        ("requests", "requests", "#4c78a8"),
        ("rate_limited", "rate-limited (429)", "#f58518"),
        ("failed", "failed reports", "#e45756"),
    )
    for index, (field_name, title, color) in enumerate(measures):
        last = index == len(measures) - 1  # one x axis, under the bottom chart
        charts.append(
            alt.Chart(alt.NamedData("pipeline_runs"))
            .properties(name=f"runs_{field_name}_bars")
            .mark_bar(color=color)
            .encode(
                x=alt.X(
                    "run_label:O",
                    title="run started (UTC)" if last else None,
                    sort=list(dict.fromkeys(order)),
                    axis=alt.Axis(labelAngle=-40, labelLimit=120)
                    if last
                    else alt.Axis(labels=False, ticks=False),
                ),
                y=alt.Y(f"{field_name}:Q", title=title, axis=alt.Axis(tickMinStep=1)),
                tooltip=[
                    alt.Tooltip("run_id:N", title="run (load id)"),
                    alt.Tooltip("started_at:N", title="started (UTC)"),
                    alt.Tooltip("requests:Q", format=","),
                    alt.Tooltip("retries:Q", format=","),
                    alt.Tooltip("rate_limited:Q", title="429s", format=","),
                    alt.Tooltip("failed:Q", title="failed reports"),
                    alt.Tooltip("failed_reports:N", title="which"),
                ],
            )
            .properties(width=alt.Step(32), height=80)
        )
    chart = alt.vconcat(*charts, spacing=8).properties(title="per run")
    section.charts.append(Chart("chart-runs", _spec(chart), ["pipeline_runs"]))
    return section


SECTIONS = (
    # key, title (for the note when the mart cannot be read), builder
    ("activity", "Activity per rep per week", activity_section),
    ("status", "Leads entering and leaving each status", status_section),
    ("funnel", "Funnel conversion by stage", funnel_section),
    ("templates", "Email templates: open and reply rates", templates_section),
    ("scorecard", "Monthly rep scorecard", scorecard_section),
    ("runs", "Pipeline health", runs_section),
)


def build_sections(marts: Marts, filters: Filters) -> List[Section]:
    """Every section; one whose mart cannot be read (a column missing in an older build,
    say) becomes a note, and the others still render."""
    import duckdb

    sections = []
    for key, title, build in SECTIONS:
        try:
            sections.append(build(marts, filters))
        except duckdb.Error as exc:
            first_line = str(exc).splitlines()[0]
            note = (
                f"Could not read the marts for this section ({first_line}): rebuild them with "
                "`close-pipeline transform`."
            )
            sections.append(Section(key, title, "", note=note))
    return sections


# ---------------------------------------------------------------- the page

DAY_COLUMNS = (
    # mart, first day, last day (inclusive) of what it covers
    ("fct_user_activity_daily", "min(activity_date)", "max(activity_date)"),
    ("fct_lead_status_daily", "min(status_date)", "max(status_date)"),
    ("fct_sent_email_templates", "min(window_start_date)", "max(window_end_date) - 1"),
)
MONTH_COLUMNS = (
    ("rpt_rep_scorecard", "min(month_start_date)", "max(month_start_date)"),
    ("fct_funnel_stages", "min(window_start_date)", "max(window_end_date) - 1"),
)


def page_filters(marts: Marts) -> Filters:
    """The segments found in the marts and the days they cover (the date inputs' range)."""
    import duckdb

    segments: set[str] = set()
    for table in (
        "fct_user_activity_daily",
        "fct_lead_status_daily",
        "fct_status_monthly",
        "fct_funnel_stages",
        "fct_sent_email_templates",
        "rpt_rep_scorecard",
    ):
        segments.update(marts.segments(table))
    ordered = sorted(segments, key=lambda s: (s != ALL_SEGMENTS, s))
    if ordered and ordered[0] != ALL_SEGMENTS:
        ordered.insert(0, ALL_SEGMENTS)
    first: List[dt.date] = []
    last: List[dt.date] = []
    for group in (DAY_COLUMNS, MONTH_COLUMNS):
        for table, low, high in group:
            if marts.columns(table) is None:
                continue
            try:
                low_day, high_day = marts.first_row(f"select {low}, {high} from {{marts}}.{table}")
            except duckdb.Error:  # an older mart without the column: its section says so
                continue
            if low_day is not None:
                first.append(low_day)
                last.append(high_day)
        if first:
            break
    return Filters(
        segments=ordered,
        date_min=min(first).isoformat() if first else None,
        date_max=max(last).isoformat() if last else None,
    )


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def vega_bundle() -> tuple[str, str]:
    """The vega-embed + Vega-Lite + Vega JavaScript bundle, and the Vega-Lite version."""
    import altair as alt
    import vl_convert

    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    version = wanted if wanted in vl_convert.get_vegalite_versions() else None
    bundle = vl_convert.javascript_bundle(vl_version=version)  # type: ignore[call-arg]
    if re.search(r"</script|<!--", bundle, re.IGNORECASE):
        raise RuntimeError("The Vega bundle contains '</script' or '<!--': cannot inline it.")
    return bundle, version or vl_convert.get_vegalite_versions()[-1]


def _asset(name: str) -> str:
    return (resources.files("close_reports") / name).read_text("utf-8")


def render_page(
    sections: Sequence[Section], filters: Filters, *, source: str, generated_at: dt.datetime
) -> str:
    """The whole HTML page."""
    import jinja2
    import vl_convert

    bundle, vl_version = vega_bundle()
    charts = [
        {"id": c.id, "spec": c.spec, "datasets": c.datasets} for s in sections for c in s.charts
    ]
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(_asset("dashboard.html.j2"))
    return template.render(
        sections=sections,
        filters=filters,
        segment_labels={ALL_SEGMENTS: "all (unfiltered)"},
        source=source,
        generated_at=generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        versions=(
            f"Vega {vl_convert.get_vega_version()}, Vega-Lite {vl_version}, vega-embed "
            f"{vl_convert.get_vega_embed_version()}"
        ),
        style=jinja2.utils.markupsafe.Markup(_asset("dashboard.css")),
        vega_bundle=jinja2.utils.markupsafe.Markup(bundle),
        page_script=jinja2.utils.markupsafe.Markup(_asset("dashboard.js")),
        data_json=jinja2.utils.markupsafe.Markup(_script_json(filters.data)),
        charts_json=jinja2.utils.markupsafe.Markup(_script_json(charts)),
    )


def write_dashboard(
    duckdb_path: Path | str,
    out: Path | str = DEFAULT_OUT,
    *,
    schema: str = MARTS_SCHEMA,
    generated_at: Optional[dt.datetime] = None,
) -> Dashboard:
    """Reads the marts of ``duckdb_path`` and writes the dashboard to ``out``.

    Raises:
        UsageError: no DuckDB file at ``duckdb_path``.
    """
    path = Path(duckdb_path).resolve()
    if not path.is_file():
        raise UsageError(
            f"No DuckDB file at {path}: run `close-pipeline run --demo` (or `run`) first, or "
            "point --duckdb-path at the file the marts were built in."
        )
    marts = Marts(path, schema)
    try:
        filters = page_filters(marts)
        sections = build_sections(marts, filters)
    finally:
        marts.close()
    page = render_page(
        sections,
        filters,
        source=path.name,
        generated_at=generated_at or dt.datetime.now(dt.timezone.utc),
    )
    target = Path(out).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(target)
    return Dashboard(
        path=target,
        size_bytes=target.stat().st_size,
        sections=sections,
        segments=filters.segments,
        date_min=filters.date_min,
        date_max=filters.date_max,
    )


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``close-pipeline dashboard``."""
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="PATH",
        help=f"HTML file to write (default: {DEFAULT_OUT} in the working directory)",
    )
    parser.add_argument(
        "--duckdb-path",
        default="close.duckdb",
        metavar="PATH",
        help="DuckDB file with the marts (default: close.duckdb in the working directory)",
    )
    parser.add_argument(
        "--schema",
        default=MARTS_SCHEMA,
        help=f"schema of the dbt marts (default: {MARTS_SCHEMA})",
    )


def command(args: argparse.Namespace) -> int:
    """``close-pipeline dashboard``: writes the file, prints its path; exit status."""
    import sys

    from close_reports.failures import explain

    try:
        dashboard = write_dashboard(args.duckdb_path, args.out, schema=args.schema)
    except Exception as exc:
        message, status = explain(exc)
        print(f"close-pipeline dashboard failed: {' '.join(message.split())}", file=sys.stderr)
        return int(status)
    print(dashboard.summary_line())
    print(f"open it: {dashboard.path.as_uri()}")
    return 0
