"""Close source settings and constants: endpoints, defaults and the raw-table contract.

The column specs here are the contract between the loader (``reshape.py`` produces rows with
exactly these column names), the warehouse (dlt column hints pin their types) and the dbt
project (``dbt/models/staging`` reads them). Names are already in dlt's snake_case form so
they survive normalization unchanged; Close's own field names are kept (even ``left``,
``count``, ``date``, ``key``), nested objects such as ``_queries`` are flattened with a single
underscore (``_queries_started``).
"""

from typing import Dict, List, NamedTuple, Tuple, Union

from dlt.common.schema.typing import (
    TColumnSchema,
    TDataType,
    TDeleteInsertStrategyDict,
    TWriteDisposition,
)

DEFAULT_BASE_URL = "https://api.close.com/api/v1"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_LOOKBACK_DAYS = 3
"""Days re-read by every incremental run of a report without a refresh window of its own."""
DEFAULT_INITIAL_DAYS = 90
"""Without ``start_date`` and without state, the first run loads this many days."""
MAX_REREAD_DAYS = 400
"""Largest lookback / refresh window accepted: beyond it a setting is a mistake, not a plan."""
AS_OF_NOW_REFRESH_DAYS = 28
"""Default refresh window of reports whose numbers are counted as of now (replies, opens):
see ``reports.py`` and docs/decisions.md, "Refresh windows"."""

PIPELINE_NAME = "close"
DATASET_NAME = "close_raw"

# ---------------------------------------------------------------- endpoints (paths, no base)
ME_PATH = "/me/"
ORGANIZATION_PATH = "/organization/{org_id}/"
USERS_PATH = "/user/"
LEAD_STATUSES_PATH = "/status/lead/"
OPPORTUNITY_STATUSES_PATH = "/status/opportunity/"
PIPELINES_PATH = "/pipeline/"
GROUPS_PATH = "/group/"
SAVED_SEARCHES_PATH = "/saved_search/"
ACTIVITY_METRICS_PATH = "/report/activity/metrics/"
ACTIVITY_REPORT_PATH = "/report/activity/"
SENT_EMAILS_PATH = "/report/sent_emails/{org_id}/"
LEAD_STATUS_REPORT_PATH = "/report/statuses/lead/{org_id}/"
OPPORTUNITY_STATUS_REPORT_PATH = "/report/statuses/opportunity/{org_id}/"
FUNNEL_TOTALS_PATH = "/report/funnel/opportunity/totals/"
FUNNEL_STAGES_PATH = "/report/funnel/opportunity/stages/"
CUSTOM_REPORT_PATH = "/report/custom/{org_id}/"
CUSTOM_REPORT_FIELDS_PATH = "/report/custom/fields/"

PAGE_LIMIT = 100
"""``_limit`` for list endpoints (Close's documented default page size)."""

METRICS_CHUNK_SIZE = 100
"""Longest metric list sent in one activity-report call; longer lists are split and merged."""

OVERVIEW_MAX_DAYS = 31
"""Longest window of one overview call: longer ones risk coarser-than-daily buckets."""

DEFAULT_WORKERS = 4
"""Requests in flight per resource, at most; one throttle per key keeps all of them under the
limit, and one concurrency gate per key keeps a fast API from thrashing the GIL."""

ARROW_CONVERT_ROWS = 1_000
"""Dict rows converted to Arrow in one go (per-call cost dominates smaller conversions)."""
ARROW_BATCH_ROWS = 20_000
"""Report rows collected into one Arrow table before it is handed to dlt ..."""
ARROW_BATCH_BYTES = 4_000_000
"""... or fewer rows when they already take this many bytes (long drill-down URLs)."""

EXAMPLE_CUSTOM_REPORTS: Tuple[Dict[str, str], ...] = (
    {
        "name": "opportunity_value_created_per_month",
        "x": "opportunity.date_created",
        "y": "opportunity.value",
        "interval": "month",
        "transform_y": "sum",
    },
    {
        "name": "opportunity_value_created_per_week",
        "x": "opportunity.date_created",
        "y": "opportunity.value",
        "interval": "week",
        "transform_y": "avg",
    },
)
"""The Explorer queries of the committed ``.dlt/config.toml`` (the demo and the benches use them
when the working directory has no config); only fields Close's documentation uses."""

FUNNEL_COHORT_TYPES = ("created-cohort", "active-stage-cohort")

# ---------------------------------------------------------------- sentinels for merge keys
ALL_KEY = "_all"
"""``user_id`` of funnel aggregation rows and ``template_key`` of the "All Emails" row."""
CREATED_KEY = "_created"
"""``from_status_key`` of transitions whose ``from_status_id`` is null (created in window)."""

GRAIN_DAY = "day"
GRAIN_MONTH = "month"

ALL_SEGMENT = ALL_KEY
"""``segment`` of the unfiltered rows; configured segments use their ``name``."""
EMPTY_KEY = "_empty"
"""Key value of a window marker row (see ``EMPTY_WINDOW_COLUMN``)."""
EMPTY_WINDOW_COLUMN = "_empty_window"
"""dlt ``hard_delete`` column: a row with it true marks a re-read window that came back
empty. It deletes the window's earlier rows (its merge key) and is never inserted itself."""

# ---------------------------------------------------------------- raw-table column contract
STATUS_COUNTERS = ("started", "ended", "gained", "lost", "entered", "left")

WINDOW_COLUMNS: Dict[str, TDataType] = {
    "org_id": "text",
    "segment": "text",
    "window_start": "date",
    "window_end": "date",
    "timezone": "text",
}

_ACTIVITY_METRICS: Dict[str, TDataType] = {
    "org_id": "text",
    "key": "text",
    "name": "text",
    "description": "text",
    "column_name": "text",
    "data_type": "text",
}

_ACTIVITY_OVERVIEW: Dict[str, TDataType] = {
    **WINDOW_COLUMNS,
    "date": "date",
    "datetime": "text",
}
"""Plus one column per metric key (``calls.all.all.count`` -> ``calls_all_all_count``)."""

_ACTIVITY_BY_USER: Dict[str, TDataType] = {
    **WINDOW_COLUMNS,
    "date": "date",
    "user_id": "text",
    "user_name": "text",
}
"""Plus one column per metric key, as for the overview."""

_SENT_EMAILS: Dict[str, TDataType] = {
    **WINDOW_COLUMNS,
    "template_key": "text",
    "template_id": "text",
    "name": "text",
    "template_url": "text",
    "is_shared": "bool",
    "total": "bigint",
    "opened": "bigint",
    "responded": "bigint",
    "percentage_opened": "double",
    "percentage_responded": "double",
    "_queries_total": "text",
    "_queries_opened": "text",
    "_queries_responded": "text",
}

_STATUS_OVERVIEW: Dict[str, TDataType] = {
    **WINDOW_COLUMNS,
    "grain": "text",
    "status_id": "text",
    "status_label": "text",
    "status_is_deleted": "bool",
    "started": "bigint",
    "ended": "bigint",
    "change": "bigint",
    "change_percent": "double",
    "gained": "bigint",
    "lost": "bigint",
    "entered": "bigint",
    "left": "bigint",
    **{f"_queries_{c}": "text" for c in STATUS_COUNTERS},
    **{f"_leads_page_urls_{c}": "text" for c in STATUS_COUNTERS},
}
_OPPORTUNITY_STATUS_OVERVIEW: Dict[str, TDataType] = {
    **_STATUS_OVERVIEW,
    **{f"_opportunities_page_urls_{c}": "text" for c in STATUS_COUNTERS},
}

_STATUS_TRANSITIONS: Dict[str, TDataType] = {
    **WINDOW_COLUMNS,
    "grain": "text",
    "kind": "text",
    "from_status_key": "text",
    "from_status_id": "text",
    "from_status_label": "text",
    "from_status_is_deleted": "bool",
    "to_status_id": "text",
    "to_status_label": "text",
    "to_status_is_deleted": "bool",
    "count": "bigint",
    "_query": "text",
    "_leads_page_url": "text",
}
_OPPORTUNITY_STATUS_TRANSITIONS: Dict[str, TDataType] = {
    **_STATUS_TRANSITIONS,
    "_opportunities_page_url": "text",
}

_FUNNEL_TOTALS: Dict[str, TDataType] = {
    **WINDOW_COLUMNS,
    "pipeline_id": "text",
    "cohort_type": "text",
    "user_id": "text",
    "count": "bigint",
    "count_total_complete": "bigint",
    "count_total_won": "bigint",
    "count_win_rate": "double",
    "value_total_complete": "bigint",
    "value_total_won": "bigint",
    "value_win_rate": "double",
    "average_time_to_win": "double",
    "average_value_annualized_per_won_opportunity": "double",
    "sales_velocity": "double",
}

_FUNNEL_STAGES: Dict[str, TDataType] = {
    **WINDOW_COLUMNS,
    "pipeline_id": "text",
    "cohort_type": "text",
    "user_id": "text",
    "status_id": "text",
    "status_label": "text",
    "status_type": "text",
    "stage_index": "bigint",
    "count": "bigint",
    "count_conversion_rate": "double",
    "count_lost": "bigint",
    "count_lost_ratio": "double",
    "value": "bigint",
    "value_conversion_rate": "double",
    "value_lost": "bigint",
    "value_lost_ratio": "double",
    "weighted_value": "bigint",
    "weighted_value_conversion_rate": "double",
    "average_time_to_advance": "double",
}

_CUSTOM_REPORT_FIELDS: Dict[str, TDataType] = {
    "org_id": "text",
    "name": "text",
    "label": "text",
    "type": "text",
    "object_type": "text",
}

_CUSTOM_REPORTS: Dict[str, TDataType] = {
    **WINDOW_COLUMNS,
    "report_name": "text",
    "series": "text",
    "series_label": "text",
    "x": "text",
    "y": "double",
    "x_field": "text",
    "y_field": "text",
    "interval": "text",
    "transform_y": "text",
    "group_by": "text",
    "raw": "json",
}

_USERS: Dict[str, TDataType] = {
    "org_id": "text",
    "id": "text",
    "email": "text",
    "first_name": "text",
    "last_name": "text",
    "image": "text",
    "date_created": "timestamp",
    "date_updated": "timestamp",
    "is_active": "bool",
}
_LEAD_STATUSES: Dict[str, TDataType] = {
    "org_id": "text",
    "id": "text",
    "label": "text",
    "organization_id": "text",
}
_OPPORTUNITY_STATUSES: Dict[str, TDataType] = {
    "org_id": "text",
    "id": "text",
    "label": "text",
    "type": "text",
    "pipeline_id": "text",
    "organization_id": "text",
    "stage_index": "bigint",
}
_PIPELINES: Dict[str, TDataType] = {
    "org_id": "text",
    "id": "text",
    "name": "text",
    "organization_id": "text",
    "date_created": "timestamp",
    "date_updated": "timestamp",
}
_GROUPS: Dict[str, TDataType] = {
    "org_id": "text",
    "id": "text",
    "name": "text",
    "organization_id": "text",
}
_SAVED_SEARCHES: Dict[str, TDataType] = {
    "org_id": "text",
    "id": "text",
    "name": "text",
    "description": "text",
    "type": "text",
    "user_id": "text",
    "is_shared": "bool",
    "is_user_dependent": "bool",
    "query": "text",
    "s_query": "json",
    "organization_id": "text",
    "date_created": "timestamp",
    "date_updated": "timestamp",
}


class Table(NamedTuple):
    """A raw table: typed columns, primary key, write disposition."""

    columns: Dict[str, TDataType]
    primary_key: List[str]
    disposition: TWriteDisposition


TABLES: Dict[str, Table] = {
    "activity_metrics": Table(_ACTIVITY_METRICS, ["org_id", "key"], "merge"),
    "activity_overview": Table(_ACTIVITY_OVERVIEW, ["org_id", "segment", "date"], "merge"),
    "activity_by_user": Table(_ACTIVITY_BY_USER, ["org_id", "segment", "date", "user_id"], "merge"),
    "sent_emails_by_template": Table(
        _SENT_EMAILS,
        ["org_id", "segment", "window_start", "template_key"],
        "merge",
    ),
    "lead_status_overview": Table(
        _STATUS_OVERVIEW,
        ["org_id", "segment", "grain", "window_start", "status_id"],
        "merge",
    ),
    "lead_status_transitions": Table(
        _STATUS_TRANSITIONS,
        ["org_id", "segment", "grain", "window_start", "kind", "from_status_key", "to_status_id"],
        "merge",
    ),
    "opportunity_status_overview": Table(
        _OPPORTUNITY_STATUS_OVERVIEW,
        ["org_id", "segment", "grain", "window_start", "status_id"],
        "merge",
    ),
    "opportunity_status_transitions": Table(
        _OPPORTUNITY_STATUS_TRANSITIONS,
        ["org_id", "segment", "grain", "window_start", "kind", "from_status_key", "to_status_id"],
        "merge",
    ),
    "funnel_totals": Table(
        _FUNNEL_TOTALS,
        ["org_id", "segment", "window_start", "pipeline_id", "cohort_type", "user_id"],
        "merge",
    ),
    "funnel_stages": Table(
        _FUNNEL_STAGES,
        ["org_id", "segment", "window_start", "pipeline_id", "cohort_type", "user_id", "status_id"],
        "merge",
    ),
    "custom_report_fields": Table(_CUSTOM_REPORT_FIELDS, ["org_id", "name"], "merge"),
    "custom_reports": Table(
        _CUSTOM_REPORTS,
        ["org_id", "segment", "report_name", "window_start", "series", "x"],
        "merge",
    ),
    "users": Table(_USERS, ["org_id", "id"], "merge"),
    "lead_statuses": Table(_LEAD_STATUSES, ["org_id", "id"], "merge"),
    "opportunity_statuses": Table(_OPPORTUNITY_STATUSES, ["org_id", "id"], "merge"),
    "pipelines": Table(_PIPELINES, ["org_id", "id"], "merge"),
    "groups": Table(_GROUPS, ["org_id", "id"], "merge"),
    "saved_searches": Table(_SAVED_SEARCHES, ["org_id", "id"], "merge"),
}

PARTITIONS: Dict[str, List[str]] = {
    "activity_overview": ["org_id", "segment", "window_start"],
    "activity_by_user": ["org_id", "segment", "window_start"],
    "sent_emails_by_template": ["org_id", "segment", "window_start"],
    "lead_status_overview": ["org_id", "segment", "grain", "window_start"],
    "lead_status_transitions": ["org_id", "segment", "grain", "window_start"],
    "opportunity_status_overview": ["org_id", "segment", "grain", "window_start"],
    "opportunity_status_transitions": ["org_id", "segment", "grain", "window_start"],
    "funnel_totals": ["org_id", "segment", "window_start"],
    "funnel_stages": ["org_id", "segment", "window_start"],
    "custom_reports": ["org_id", "segment", "report_name", "window_start"],
    **{
        table: ["org_id"]
        for table in (
            "activity_metrics",
            "custom_report_fields",
            "users",
            "lead_statuses",
            "opportunity_statuses",
            "pipelines",
            "groups",
            "saved_searches",
        )
    },
}
"""dlt ``merge_key`` of each report table: the window a report answer is a snapshot of.
Re-reading a window deletes every earlier row of it before the new ones are inserted, so a
row that vanished from Close's answer vanishes here too (a month-to-date transition pair
that no longer occurs, a template no longer used that day)."""

RESOURCE_NAMES: Tuple[str, ...] = tuple(TABLES)
REPORT_TABLES: Tuple[str, ...] = tuple(
    t for t, spec in TABLES.items() if "window_start" in spec.columns
)
"""Tables read in windows (with ``segment``, state and refresh windows); the others are
dimensions, read whole on every run."""


def metric_data_type(metric_key: str) -> TDataType:
    """The warehouse type of an activity metric column, from its key's aggregation suffix.

    ``.count`` and ``.sum_*`` are integers (counts, seconds, cents); ``.avg_*`` and anything
    unknown are doubles.
    """
    aggregation = metric_key.rsplit(".", 1)[-1]
    if aggregation == "count" or aggregation.startswith("sum_"):
        return "bigint"
    return "double"


MERGE_DEDUPLICATED: TDeleteInsertStrategyDict = {
    "disposition": "merge",
    "strategy": "delete-insert",
    "deduplicated": True,
}
"""How ``merge`` tables are written: delete-insert on the primary key, without dlt's dedup
pass over the staged rows (a ``ROW_NUMBER()`` window over every column: on a year-long
backfill of a large org it held ~500 MB in DuckDB). The source keeps each key once per run
itself (``arrow.Batcher``), so the pass has nothing to remove."""


def write_disposition(table: str) -> Union[TWriteDisposition, TDeleteInsertStrategyDict]:
    """The dlt ``write_disposition`` of a raw table (``MERGE_DEDUPLICATED`` for ``merge``)."""
    disposition = TABLES[table][2]
    return MERGE_DEDUPLICATED if disposition == "merge" else disposition


def column_hints(table: str) -> Dict[str, TColumnSchema]:
    """dlt column hints for a raw table: every known column typed, keys non-nullable, the
    window columns of a report table its ``merge_key``, plus its ``EMPTY_WINDOW_COLUMN``."""
    columns, primary_key, _ = TABLES[table]
    partition = PARTITIONS.get(table, [])
    hints: Dict[str, TColumnSchema] = {}
    for name, data_type in columns.items():
        hint: TColumnSchema = {"name": name, "data_type": data_type, "nullable": True}
        if name in primary_key:
            hint["nullable"] = False
            hint["primary_key"] = True
        if name in partition:
            hint["nullable"] = False
            hint["merge_key"] = True
        hints[name] = hint
    if partition:
        hints[EMPTY_WINDOW_COLUMN] = {
            "name": EMPTY_WINDOW_COLUMN,
            "data_type": "bool",
            "nullable": True,
            "hard_delete": True,
        }
    return hints
