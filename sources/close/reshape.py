"""Pure reshaping: one function per Close endpoint, parsed response -> warehouse rows.

Nothing here touches the network. Every function takes the response dict plus the context
the response does not carry (org, window, timezone, pipeline, ...) and returns rows whose
column names follow the contract in ``settings.TABLES``: Close's own field names, nested
objects flattened with one underscore, sentinel values in nullable key columns.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from dlt.common.normalizers.naming.snake_case import NamingConvention

from .settings import (
    ALL_KEY,
    ALL_SEGMENT,
    CREATED_KEY,
    EMPTY_KEY,
    EMPTY_WINDOW_COLUMN,
    GRAIN_DAY,
    TABLES,
    metric_data_type,
)
from .windows import Window

Row = Dict[str, Any]

_NAMING = NamingConvention()


class UnexpectedResponseError(ValueError):
    """A response whose shape the reshaper cannot read (named endpoint and reason)."""


@lru_cache(maxsize=4096)
def metric_column_name(metric_key: str) -> str:
    """The column of a metric key (``calls.all.all.count`` -> ``calls_all_all_count``).

    Cached: a backfill asks for the same ~60 names millions of times.
    """
    return _NAMING.normalize_identifier(metric_key)


_SCALARS = frozenset({str, int, float, bool})


def flatten(item: Mapping[str, Any], prefix: str = "") -> Row:
    """Flattens nested objects into ``parent_child`` columns; lists become JSON text."""
    row: Row = {}
    for key, value in item.items():
        name = f"{prefix}_{key}" if prefix else key
        if value is None or type(value) in _SCALARS:
            row[name] = value
        elif isinstance(value, Mapping):
            row.update(flatten(value, name))
        elif isinstance(value, list):
            row[name] = json.dumps(value, sort_keys=True)
        else:
            row[name] = value
    return row


def _window_columns(org_id: str, window: Window, timezone: str, segment: str) -> Row:
    return {
        "org_id": org_id,
        "segment": segment,
        "window_start": window.start,
        "window_end": window.end,
        "timezone": timezone,
    }


def _require_list(response: Any, key: str, endpoint: str) -> List[Any]:
    if not isinstance(response, Mapping):
        raise UnexpectedResponseError(f"{endpoint}: expected a JSON object, got {type(response)}")
    value = response.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise UnexpectedResponseError(f"{endpoint}: `{key}` should be a list, got {value!r:.80}")
    return value


def _marker(table: str, known: Row) -> Row:
    """A row of ``table`` with ``EMPTY_WINDOW_COLUMN`` true: the ``known`` columns, and a
    sentinel in every other key column (dlt requires keys)."""
    spec = TABLES[table]
    row: Row = {EMPTY_WINDOW_COLUMN: True}
    for column in spec.primary_key:
        data_type = spec.columns[column]
        row[column] = EMPTY_KEY if data_type == "text" else -1 if data_type == "bigint" else None
    row.update({k: v for k, v in known.items() if k in spec.columns})
    return row


def empty_window_row(
    table: str, context: Mapping[str, Any], grain: str = GRAIN_DAY, query: Any = None
) -> Row:
    """The marker of a re-read report window that came back empty: it deletes the window's
    earlier rows (its merge key) and is not inserted itself."""
    window: Window = context["window"]
    known = {
        **_window_columns(context["org_id"], window, context["timezone"], context["segment"]),
        "grain": grain,
        "date": window.start,
        "report_name": (query or {}).get("name"),
    }
    return _marker(table, known)


def empty_listing_row(table: str, org_id: str) -> Row:
    """The marker of a dimension listing that came back empty for ``org_id``."""
    return _marker(table, {"org_id": org_id})


# ---------------------------------------------------------------- activity


def activity_metric_rows(response: Mapping[str, Any], org_id: str) -> List[Row]:
    """Rows of ``activity_metrics`` from ``GET /report/activity/metrics/``."""
    rows = []
    for item in _require_list(response, "metrics", "GET /report/activity/metrics/"):
        key = item["key"]
        rows.append(
            {
                **flatten(item),
                "org_id": org_id,
                "column_name": metric_column_name(key),
                "data_type": metric_data_type(key),
            }
        )
    return rows


def _metric_columns(item: Mapping[str, Any], skip: Sequence[str]) -> Row:
    return {metric_column_name(k): v for k, v in item.items() if k not in skip}


def activity_overview_rows(
    response: Mapping[str, Any],
    *,
    org_id: str,
    window: Window,
    timezone: str,
    segment: str = ALL_SEGMENT,
) -> List[Row]:
    """Rows of ``activity_overview``: one per daily bucket of an overview report.

    A row's ``window_start`` / ``window_end`` are its own day, not the (multi-day) request
    window, so re-reading a day with another request window leaves the row identical.

    Raises:
        UnexpectedResponseError: When the buckets are not one per day of ``window`` (Close
            coarsened them, or the window and the response disagree).
    """
    endpoint = "POST /report/activity/ (overview)"
    rows = []
    for bucket in _require_list(response, "data", endpoint):
        stamp = bucket.get("datetime")
        if not isinstance(stamp, str):
            raise UnexpectedResponseError(f"{endpoint}: bucket without datetime: {bucket!r:.120}")
        day = datetime.fromisoformat(stamp.replace("Z", "+00:00")).date()
        rows.append(
            {
                **_window_columns(org_id, Window(day, day + timedelta(days=1)), timezone, segment),
                "date": day,
                "datetime": stamp,
                **_metric_columns(bucket, ("datetime",)),
            }
        )
    days = [row["date"] for row in rows]
    expected = [date.fromordinal(window.start.toordinal() + i) for i in range(window.days)]
    if days != expected:
        raise UnexpectedResponseError(
            f"{endpoint}: expected one daily bucket per day of {window}, got "
            f"{len(days)} buckets starting {days[:3]}; lower the overview window size "
            "(SOURCES__CLOSE__OVERVIEW_MAX_DAYS, or overview_max_days under [sources.close], "
            "e.g. 7)"
        )
    return rows


def activity_comparison_rows(
    response: Mapping[str, Any],
    *,
    org_id: str,
    window: Window,
    timezone: str,
    segment: str = ALL_SEGMENT,
) -> List[Row]:
    """Rows of ``activity_by_user``: one per user of a one-day comparison report."""
    endpoint = "POST /report/activity/ (comparison)"
    if window.days != 1:
        raise ValueError(f"comparison reports are read one day at a time, got {window}")
    lookup = response.get("lookup", {}).get("user", {}) if isinstance(response, Mapping) else {}
    rows = []
    for item in _require_list(response, "data", endpoint):
        user_id = item.get("user_id")
        if not user_id:
            raise UnexpectedResponseError(f"{endpoint}: row without user_id: {item!r:.120}")
        display = lookup.get(user_id, {})
        rows.append(
            {
                **_window_columns(org_id, window, timezone, segment),
                "date": window.start,
                "user_id": user_id,
                "user_name": display.get("display") if isinstance(display, Mapping) else None,
                **_metric_columns(item, ("user_id",)),
            }
        )
    return rows


def sum_rows(parts: Sequence[List[Row]], key: Sequence[str], counts: Sequence[str]) -> List[Row]:
    """Rows of several answers for the same window (one request per user of a segment)
    added up per ``key``: the ``counts`` are summed; drill-down columns (``_queries*``,
    ``_*page_url*``, ``_query``) are dropped, as no single search in Close matches the sum.
    Callers recompute their ratios from the sums."""
    if len(parts) == 1:
        return parts[0]
    totals: Dict[Tuple[Any, ...], Row] = {}
    for rows in parts:
        for row in rows:
            ident = tuple(row.get(k) for k in key)
            if ident not in totals:
                totals[ident] = {c: v for c, v in row.items() if not c.startswith("_")}
                continue
            total = totals[ident]
            for column in counts:
                if row.get(column) is not None:
                    total[column] = (total.get(column) or 0) + row[column]
    return list(totals.values())


def ratio(part: Any, whole: Any, scale: float = 1.0) -> Optional[float]:
    """``part / whole * scale``, or None when ``whole`` is 0 or missing."""
    if not whole or part is None:
        return None
    return float(part) / float(whole) * scale


def merge_rows(parts: Iterable[List[Row]], key: Sequence[str]) -> List[Row]:
    """Merges rows of several metric-chunk responses into one row per ``key``, in order."""
    merged: Dict[Tuple[Any, ...], Row] = {}
    for rows in parts:
        for row in rows:
            merged.setdefault(tuple(row[k] for k in key), {}).update(row)
    return list(merged.values())


# ---------------------------------------------------------------- sent emails


def sent_email_rows(
    response: Mapping[str, Any],
    *,
    org_id: str,
    window: Window,
    timezone: str,
    segment: str = ALL_SEGMENT,
) -> List[Row]:
    """Rows of ``sent_emails_by_template``; the "All Emails" row gets ``template_key = '_all'``."""
    rows = []
    for item in _require_list(response, "sent_email_stats", "GET /report/sent_emails/"):
        rows.append(
            {
                **flatten(item),
                **_window_columns(org_id, window, timezone, segment),
                "template_key": item.get("template_id") or ALL_KEY,
            }
        )
    return rows


# ---------------------------------------------------------------- status reports


def status_report_rows(
    response: Mapping[str, Any],
    *,
    org_id: str,
    grain: str,
    window: Window,
    timezone: str,
    segment: str = ALL_SEGMENT,
) -> Tuple[List[Row], List[Row]]:
    """``(overview rows, transition rows)`` of a lead or opportunity status report.

    Transitions from ``status_transitions`` get ``kind = 'transitions'``, those from
    ``status_transitions_summary`` ``kind = 'summary'``; a null ``from_status_id`` (object
    created in the window) gets ``from_status_key = '_created'``.
    """
    endpoint = "GET /report/statuses/"
    context = {**_window_columns(org_id, window, timezone, segment), "grain": grain}
    overview = [
        {**flatten(item), **context}
        for item in _require_list(response, "status_overview", endpoint)
    ]
    transitions = []
    for kind, list_key in (
        ("transitions", "status_transitions"),
        ("summary", "status_transitions_summary"),
    ):
        for item in _require_list(response, list_key, endpoint):
            transitions.append(
                {
                    **flatten(item),
                    **context,
                    "kind": kind,
                    "from_status_key": item.get("from_status_id") or CREATED_KEY,
                }
            )
    return overview, transitions


# ---------------------------------------------------------------- funnels


def _funnel_context(
    org_id: str, pipeline_id: str, cohort_type: str, window: Window, timezone: str, segment: str
) -> Row:
    return {
        **_window_columns(org_id, window, timezone, segment),
        "pipeline_id": pipeline_id,
        "cohort_type": cohort_type,
    }


def funnel_totals_rows(
    response: Mapping[str, Any],
    *,
    org_id: str,
    pipeline_id: str,
    cohort_type: str,
    window: Window,
    timezone: str,
    segment: str = ALL_SEGMENT,
) -> List[Row]:
    """Rows of ``funnel_totals``: ``aggregations`` as ``user_id = '_all'``, then per user."""
    context = _funnel_context(org_id, pipeline_id, cohort_type, window, timezone, segment)
    rows = []
    aggregations = response.get("aggregations")
    if isinstance(aggregations, Mapping):
        rows.append({**flatten(aggregations), **context, "user_id": ALL_KEY})
    for item in _require_list(response, "data", "POST /report/funnel/opportunity/totals/"):
        rows.append({**flatten(item), **context, "user_id": item["user_id"]})
    return rows


def _stage_rows(stages: Sequence[Mapping[str, Any]], context: Row) -> List[Row]:
    rows = []
    for index, stage in enumerate(stages):
        status = stage.get("status") or {}
        fields = {k: v for k, v in stage.items() if k != "status"}
        rows.append(
            {
                **flatten(fields),
                **context,
                "status_id": status.get("id"),
                "status_label": status.get("label"),
                "status_type": status.get("type"),
                "stage_index": index,
            }
        )
    return rows


def funnel_stages_rows(
    response: Mapping[str, Any],
    *,
    org_id: str,
    pipeline_id: str,
    cohort_type: str,
    window: Window,
    timezone: str,
    segment: str = ALL_SEGMENT,
) -> List[Row]:
    """Rows of ``funnel_stages``: nested stages flattened with ``stage_index`` (0 = first).

    The aggregated stages get ``user_id = '_all'``; each ``data[i].stages`` its user.
    """
    context = _funnel_context(org_id, pipeline_id, cohort_type, window, timezone, segment)
    aggregations = response.get("aggregations") or {}
    rows = _stage_rows(aggregations.get("stages") or [], {**context, "user_id": ALL_KEY})
    for item in _require_list(response, "data", "POST /report/funnel/opportunity/stages/"):
        rows.extend(_stage_rows(item.get("stages") or [], {**context, "user_id": item["user_id"]}))
    return rows


# ---------------------------------------------------------------- Explorer (custom) reports

RAW_KEY = "_raw"
"""``series`` and ``x`` of the single row that keeps a response the reshaper cannot read."""


def custom_report_rows(
    response: Any,
    *,
    org_id: str,
    report: Mapping[str, Any],
    window: Window,
    timezone: str,
    segment: str = ALL_SEGMENT,
) -> List[Row]:
    """Rows of ``custom_reports``: one per series point of an Explorer report.

    The response shape is not publicly documented; the supported shape is
    ``{"series": [{"key", "label", "count", "data": [{"x", "y"}]}]}`` (docs/simulator.md).
    Anything else is kept whole in one row's ``raw`` column instead of failing.
    """
    context = {
        **_window_columns(org_id, window, timezone, segment),
        "report_name": report["name"],
        "x_field": report.get("x"),
        "y_field": report.get("y"),
        "interval": report.get("interval"),
        "transform_y": report.get("transform_y"),
        "group_by": report.get("group_by"),
    }
    try:
        return _series_rows(response, context)
    except (KeyError, TypeError, ValueError, AttributeError):
        return [{**context, "series": RAW_KEY, "x": RAW_KEY, "raw": response}]


def _series_rows(response: Any, context: Row) -> List[Row]:
    series_list = response["series"]
    if not isinstance(series_list, list):
        raise TypeError("series is not a list")
    rows = []
    for series, series_key in zip(series_list, series_ids(series_list), strict=True):
        label = series.get("label")
        for point in series["data"]:
            y = point["y"]
            rows.append(
                {
                    **context,
                    "series": series_key,
                    "series_label": None if label is None else str(label),
                    "x": str(point["x"]),
                    "y": None if y is None else float(y),
                }
            )
    return rows


def series_ids(series_list: Sequence[Any]) -> List[str]:
    """A stable ``series`` key per series: Close's ``key``, else its ``label``; the first
    series with neither is ``_all`` (the series of an ungrouped query), any later one
    ``_series_<position>``, so that series never collapse into one key (and rows into one)."""
    ids: List[str] = []
    for position, series in enumerate(series_list):
        key, label = series.get("key"), series.get("label")
        if key is not None:
            ids.append(str(key))
        elif label is not None:
            ids.append(str(label))
        else:
            ids.append(ALL_KEY if ALL_KEY not in ids else f"_series_{position}")
    return ids


def is_raw(rows: Sequence[Row]) -> bool:
    """Whether ``custom_report_rows`` kept an answer it could not read whole in ``raw``."""
    return len(rows) == 1 and rows[0].get("series") == RAW_KEY


def custom_field_rows(response: Any, org_id: str) -> List[Row]:
    """Rows of ``custom_report_fields`` from ``GET /report/custom/fields/``.

    Accepts a list under ``fields`` or ``data``, or an object mapping field name -> spec.
    """
    items: Any = response
    if isinstance(response, Mapping):
        items = response.get("fields", response.get("data", response))
    if isinstance(items, Mapping):
        items = [
            {"name": name, **(spec if isinstance(spec, Mapping) else {"type": spec})}
            for name, spec in items.items()
        ]
    if not isinstance(items, list):
        raise UnexpectedResponseError(
            f"GET /report/custom/fields/: cannot read fields from {response!r:.120}"
        )
    return [{**flatten(item), "org_id": org_id} for item in items if item.get("name")]


# ---------------------------------------------------------------- dimensions


def dimension_rows(items: Iterable[Mapping[str, Any]], org_id: str) -> List[Row]:
    """Rows of a dimension table (users, statuses, pipelines, groups, saved searches)."""
    return [{**item, "org_id": org_id} for item in items]


def user_rows(
    items: Iterable[Mapping[str, Any]], org_id: str, active_user_ids: Optional[set[str]]
) -> List[Row]:
    """Rows of ``users`` with ``is_active`` from the organization's active memberships."""
    rows = dimension_rows(items, org_id)
    for row in rows:
        row["is_active"] = None if active_user_ids is None else row["id"] in active_user_ids
    return rows


def opportunity_status_rows(
    items: Iterable[Mapping[str, Any]], org_id: str, pipelines: Sequence[Mapping[str, Any]]
) -> List[Row]:
    """Rows of ``opportunity_statuses`` with ``stage_index``: position in its pipeline."""
    positions: Dict[str, int] = {}
    for pipeline in pipelines:
        for index, status in enumerate(pipeline.get("statuses") or []):
            positions[status["id"]] = index
    rows = dimension_rows(items, org_id)
    for row in rows:
        row["stage_index"] = positions.get(row["id"])
    return rows


def active_user_ids(organization: Mapping[str, Any]) -> set[str]:
    """User ids of the active memberships of ``GET /organization/{id}/``."""
    return {m["user_id"] for m in organization.get("memberships") or [] if m.get("user_id")}
