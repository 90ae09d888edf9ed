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
from operator import itemgetter
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.normalizers.utils import generate_dlt_ids
from dlt.common.schema.typing import C_DLT_ID, C_DLT_LOAD_ID, TDataType

from .settings import ALL_KEY, CREATED_KEY, TABLES, metric_data_type
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


def _window_columns(org_id: str, window: Window, timezone: str) -> Row:
    return {
        "org_id": org_id,
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
    response: Mapping[str, Any], *, org_id: str, window: Window, timezone: str
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
                **_window_columns(org_id, Window(day, day + timedelta(days=1)), timezone),
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
            "(settings.OVERVIEW_MAX_DAYS)"
        )
    return rows


def activity_comparison_rows(
    response: Mapping[str, Any], *, org_id: str, window: Window, timezone: str
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
                **_window_columns(org_id, window, timezone),
                "date": window.start,
                "user_id": user_id,
                "user_name": display.get("display") if isinstance(display, Mapping) else None,
                **_metric_columns(item, ("user_id",)),
            }
        )
    return rows


def merge_rows(parts: Iterable[List[Row]], key: Sequence[str]) -> List[Row]:
    """Merges rows of several metric-chunk responses into one row per ``key``, in order."""
    merged: Dict[Tuple[Any, ...], Row] = {}
    for rows in parts:
        for row in rows:
            merged.setdefault(tuple(row[k] for k in key), {}).update(row)
    return list(merged.values())


# ---------------------------------------------------------------- sent emails


def sent_email_rows(
    response: Mapping[str, Any], *, org_id: str, window: Window, timezone: str
) -> List[Row]:
    """Rows of ``sent_emails_by_template``; the "All Emails" row gets ``template_key = '_all'``."""
    rows = []
    for item in _require_list(response, "sent_email_stats", "GET /report/sent_emails/"):
        rows.append(
            {
                **flatten(item),
                **_window_columns(org_id, window, timezone),
                "template_key": item.get("template_id") or ALL_KEY,
            }
        )
    return rows


# ---------------------------------------------------------------- status reports


def status_report_rows(
    response: Mapping[str, Any], *, org_id: str, grain: str, window: Window, timezone: str
) -> Tuple[List[Row], List[Row]]:
    """``(overview rows, transition rows)`` of a lead or opportunity status report.

    Transitions from ``status_transitions`` get ``kind = 'transitions'``, those from
    ``status_transitions_summary`` ``kind = 'summary'``; a null ``from_status_id`` (object
    created in the window) gets ``from_status_key = '_created'``.
    """
    endpoint = "GET /report/statuses/"
    context = {**_window_columns(org_id, window, timezone), "grain": grain}
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
    org_id: str, pipeline_id: str, cohort_type: str, window: Window, timezone: str
) -> Row:
    return {
        **_window_columns(org_id, window, timezone),
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
) -> List[Row]:
    """Rows of ``funnel_totals``: ``aggregations`` as ``user_id = '_all'``, then per user."""
    context = _funnel_context(org_id, pipeline_id, cohort_type, window, timezone)
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
) -> List[Row]:
    """Rows of ``funnel_stages``: nested stages flattened with ``stage_index`` (0 = first).

    The aggregated stages get ``user_id = '_all'``; each ``data[i].stages`` its user.
    """
    context = _funnel_context(org_id, pipeline_id, cohort_type, window, timezone)
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
) -> List[Row]:
    """Rows of ``custom_reports``: one per series point of an Explorer report.

    The response shape is not publicly documented; the supported shape is
    ``{"series": [{"key", "label", "count", "data": [{"x", "y"}]}]}`` (docs/simulator.md).
    Anything else is kept whole in one row's ``raw`` column instead of failing.
    """
    context = {
        **_window_columns(org_id, window, timezone),
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
    for series in series_list:
        key = series.get("key")
        label = series.get("label")
        series_key = str(key if key is not None else label if label is not None else ALL_KEY)
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


# ---------------------------------------------------------------- Arrow batches

ARROW_TYPES: Dict[str, pa.DataType] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
}
"""Arrow type of each warehouse type the report tables use (``json`` and ``timestamp``
columns are left to dlt's dict path)."""

_DLT_FIELDS = (
    pa.field(C_DLT_LOAD_ID, pa.string(), nullable=False),
    pa.field(C_DLT_ID, pa.string(), nullable=False),
)


def arrow_schema(table: str, metric_keys: Sequence[str] = ()) -> pa.Schema:
    """The Arrow schema of a report table: its ``settings.TABLES`` columns whose type has an
    Arrow equivalent, then one column per metric key (typed by ``metric_data_type``).

    Primary-key columns are non-nullable, as dlt makes them.
    """
    columns, primary_key, _ = TABLES[table]
    types: Dict[str, TDataType] = dict(columns)
    for key in metric_keys:
        types.setdefault(metric_column_name(key), metric_data_type(key))
    return pa.schema(
        [
            pa.field(name, ARROW_TYPES[data_type], nullable=name not in primary_key)
            for name, data_type in types.items()
            if data_type in ARROW_TYPES
        ]
    )


class Constant:
    """A column whose value is the same in every row (window, org, timezone ...)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def columns_to_arrow(
    columns: Mapping[str, Any], count: int, schema: pa.Schema
) -> Optional[pa.Table]:
    """Columns (name -> list of ``count`` values, or a ``Constant``) as an Arrow table of
    exactly ``schema``, or None when they do not fit it.

    They fit when every column is in ``schema`` and each column's values, read by pyarrow
    without a target type, are of the column's type, all null, or integers in a double
    column; schema columns not given are null. Anything else (a field Close added, a number
    sent as text, a fraction in an integer column, a null in a key) returns None: the caller
    loads those rows as dicts, so dlt adds the new column or reports the variant column
    exactly as before. (Converting with the target type instead would be wrong: pyarrow
    truncates 0.5 to 0 in an int64 column without a word.)
    """
    if count == 0 or not set(columns).issubset(schema.names):
        return None
    arrays: List[pa.Array] = []
    try:
        for field in schema:
            values = columns.get(field.name)
            if values is None:
                array = pa.nulls(count, field.type)
            elif isinstance(values, Constant):
                one = _fit(pa.array([values.value]), field.type)
                if one is None:
                    return None
                array = pa.repeat(one[0], count)
            else:
                array = _fit(pa.array(values), field.type)
                if array is None:
                    return None
            if not field.nullable and array.null_count:
                return None
            arrays.append(array)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    return pa.Table.from_arrays(arrays, schema=schema)


def _fit(array: pa.Array, data_type: pa.DataType) -> Optional[pa.Array]:
    """``array`` as ``data_type`` if that loses nothing (same type, all null, or integers
    as doubles), else None."""
    if array.type == data_type:
        return array
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), data_type)
    if pa.types.is_integer(array.type) and pa.types.is_floating(data_type):
        return array.cast(data_type)
    return None


def rows_to_arrow(rows: Sequence[Row], schema: pa.Schema) -> Optional[pa.Table]:
    """Dict rows as an Arrow table of exactly ``schema``, or None when they do not fit it
    (see ``columns_to_arrow``; a key missing from some rows is null there, as in dlt)."""
    if not rows:
        return None
    names = list(set().union(*rows))
    return columns_to_arrow(_transpose(rows, names), len(rows), schema)


def _transpose(rows: Sequence[Mapping[str, Any]], names: List[str]) -> Dict[str, Sequence[Any]]:
    """Row dicts -> ``{name: values}``; a key missing from a row is None there."""
    if not names:
        return {}
    try:  # every row has every key: one C call per row instead of one per value
        values = (
            map(itemgetter(*names), rows) if len(names) > 1 else ((row[names[0]],) for row in rows)
        )
        return dict(zip(names, zip(*values, strict=True), strict=True))
    except KeyError:
        return {name: [row.get(name) for row in rows] for name in names}


def activity_comparison_table(
    response: Mapping[str, Any], *, org_id: str, window: Window, timezone: str, schema: pa.Schema
) -> Optional[pa.Table]:
    """``activity_comparison_rows`` built straight into columns (the largest table: one row
    per user per day, one column per metric), or None when the response is anything but the
    plain case; the caller then takes the dict path, which reports what is odd."""
    if window.days != 1 or not isinstance(response, Mapping):
        return None
    data = response.get("data")
    lookup = response.get("lookup", {})
    users = lookup.get("user", {}) if isinstance(lookup, Mapping) else {}
    if not isinstance(data, list) or not data or not isinstance(users, Mapping):
        return None
    if not all(type(item) is dict and item.get("user_id") for item in data):
        return None
    keys = set().union(*data)
    keys.discard("user_id")
    context = {
        "org_id": Constant(org_id),
        "window_start": Constant(window.start),
        "window_end": Constant(window.end),
        "timezone": Constant(timezone),
        "date": Constant(window.start),
    }
    names = [item["user_id"] for item in data]
    if len(set(names)) != len(names):
        return None
    labels = []
    for user_id in names:
        display = users.get(user_id, {})
        labels.append(display.get("display") if isinstance(display, Mapping) else None)
    columns: Dict[str, Any] = {**context, "user_id": names, "user_name": labels}
    metrics = list(keys)
    for key, values in _transpose(data, metrics).items():
        column = metric_column_name(key)
        if column in columns:
            return None
        columns[column] = values
    return columns_to_arrow(columns, len(data), schema)


def unique_rows(rows: List[Row], key: Sequence[str]) -> List[Row]:
    """``rows`` with each ``key`` value once (the last row of a repeated key, at the place of
    its first one): tables are merged without dlt's dedup pass (``MERGE_DEDUPLICATED``)."""
    if len(rows) < 2:
        return rows
    index: Dict[Tuple[Any, ...], Row] = {}
    for row in rows:
        index[tuple(row.get(k) for k in key)] = row
    return rows if len(index) == len(rows) else list(index.values())


def unique_table(table: pa.Table, key: Sequence[str]) -> pa.Table:
    """``unique_rows`` for an Arrow table (the last row of each key value)."""
    if table.num_rows < 2:
        return table
    names = list(key)
    if table.group_by(names).aggregate([]).num_rows == table.num_rows:
        return table
    row = "__close_row"
    numbered = table.append_column(row, pa.array(range(table.num_rows), pa.int64()))
    last = numbered.group_by(names).aggregate([(row, "max")])[f"{row}_max"]
    return table.take(pc.take(last, pc.sort_indices(last)))


def with_dlt_columns(table: pa.Table, load_id: Optional[str]) -> pa.Table:
    """Adds ``_dlt_load_id`` and ``_dlt_id`` (random, as dlt's own normalizer makes them for
    root tables written with ``merge``/``replace``), so Arrow batches land with exactly the
    columns dict rows get, and dbt's ``loaded_at`` keeps working.

    Without a load id (the resource read outside a pipeline) the table is returned as is.
    """
    if load_id is None:
        return table
    count = table.num_rows
    table = table.append_column(_DLT_FIELDS[0], pa.repeat(load_id, count).cast(pa.string()))
    return table.append_column(_DLT_FIELDS[1], pa.array(generate_dlt_ids(count), pa.string()))
