"""A dlt source for Close CRM's reporting API.

Resources (each named as the table it loads; columns and keys in ``settings.TABLES``; the
report endpoints behind them in the registry, ``reports.REPORTS`` and ``reports.LISTINGS``):

- ``activity_overview``: org-wide activity metrics per day (``/report/activity/`` overview)
- ``activity_by_user``: activity metrics per user per day (comparison, one call per day)
- ``sent_emails_by_template``: sent / opened / replied emails per template per day
- ``lead_status_overview`` / ``lead_status_transitions``: lead status report, per day and per
  calendar month (one request feeds both tables)
- ``opportunity_status_overview`` / ``opportunity_status_transitions``: the same for opportunities
- ``funnel_totals`` / ``funnel_stages``: opportunity funnels per month x pipeline x cohort type
- ``custom_reports``: configured Explorer queries, per bucket-aligned window
- ``activity_metrics``, ``custom_report_fields``, ``users``, ``lead_statuses``,
  ``opportunity_statuses``, ``pipelines``, ``groups``, ``saved_searches``: dimension tables

Report resources read whole local days in the configured timezone, never today, incrementally
from each table's dlt state with a refresh window, once unfiltered (``segment = '_all'``) and
once per configured segment; re-reading a window replaces all of its rows.
"""

from __future__ import annotations

import threading
from datetime import date
from typing import Any, Dict, List, Optional

import dlt
import httpx
from dlt.extract.resource import DltResource

from . import memory
from .client import RequestStats, Stop
from .config import check_config
from .ledger import RunLog
from .orgs import connect
from .reports import LISTINGS, REPORTS
from .resources import ProgressCallback, Run, listing_resource, report_resources, segments_for
from .settings import (
    DEFAULT_BASE_URL,
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_TIMEZONE,
    DEFAULT_WORKERS,
    METRICS_CHUNK_SIZE,
    OVERVIEW_MAX_DAYS,
    RESOURCE_NAMES,
)
from .windows import local_today

__all__ = ["close_source", "RESOURCE_NAMES", "RequestStats", "RunLog"]


@dlt.source(name="close", section="close", max_table_nesting=0)
def close_source(
    api_key: Optional[str] = dlt.secrets.value,
    api_keys: Optional[List[str]] = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    start_date: Optional[str] = None,
    end_date: Optional[str] = None,
    timezone: str = DEFAULT_TIMEZONE,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    refresh_days: Optional[Dict[str, int]] = None,
    segments: Optional[List[Dict[str, Any]]] = None,
    custom_reports: Optional[List[Dict[str, Any]]] = None,
    max_rps: Optional[float] = None,
    metrics_chunk_size: int = METRICS_CHUNK_SIZE,
    overview_max_days: int = OVERVIEW_MAX_DAYS,
    workers: int = DEFAULT_WORKERS,
    force_refresh_days: Optional[int] = None,
    fail_fast: bool = False,
    today: Optional[date] = None,
    transport: Optional[httpx.BaseTransport] = None,
    stats: Optional[RequestStats] = None,
    progress: Optional[ProgressCallback] = None,
    run_log: Optional[RunLog] = None,
    cancel: Optional[threading.Event] = None,
    client_options: Optional[Dict[str, Any]] = None,
) -> List[DltResource]:
    """Every Close reporting endpoint as incremental, idempotent tables.

    Args:
        api_key: A Close API key (``SOURCES__CLOSE__API_KEY`` or ``.dlt/secrets.toml``).
        api_keys: Several keys, one per org, loaded into the same tables (``org_id`` tells
            them apart; their requests run at once, each key at its own rate limit);
            ``SOURCES__CLOSE__API_KEYS`` as a JSON list.
        base_url: Close's API root.
        start_date: First day to load (YYYY-MM-DD): where a first run starts (default: 90
            days before today), the earliest day later runs re-read, a backfill's start.
        end_date: Exclusive last day of a backfill. With it, state is neither read nor moved.
        timezone: IANA zone whose local days are the report days (``X-TZ-Offset``).
        lookback_days: Days before the first unloaded day that each run reads again, for
            reports without a refresh window of their own.
        refresh_days: Days re-read per report table (``[sources.close.refresh_days]``);
            defaults per report in ``reports.REPORTS`` (28 for as-of-now reports).
        segments: Close's report filters as named slices (``[[sources.close.segments]]``:
            ``name``, ``smart_view_id``, ``query``, ``user_ids``, ``pipeline_ids``,
            ``reports``); each is loaded beside the unfiltered rows with its own state.
        custom_reports: Explorer queries ``{name, x, y, interval, transform_y, group_by,
            query}`` loaded into ``custom_reports``; fields are checked against Close's list.
        max_rps: Hard cap on requests per second per key (default: adapt to ``RateLimit``).
        metrics_chunk_size: Most metrics sent in one activity-report call.
        overview_max_days: Longest window of one activity overview call.
        workers: Requests in flight per report and key, at most.
        force_refresh_days: Re-read at least this many days of every report in this run
            (``--refresh-days``, a deep refresh); state never moves backwards.
        fail_fast: Fail the run on the first refused report instead of skipping it.
        today: The first day not to load (default: today in ``timezone``).
        transport: An httpx transport to use instead of the network (demo and tests).
        stats: Request counters to fill (shared by every org's client).
        progress: Called after each window is read.
        run_log: Collects what each report unit did (the run ledger) and warnings.
        cancel: Set it to stop every request at once (Ctrl-C).
        client_options: Extra ``CloseClient`` arguments (``max_attempts``, ``sleep``, ...).

    Returns:
        The resources listed in the module docstring.

    Raises:
        CloseConfigError: On a missing key or any invalid setting, before any report request;
            CloseAuthError when Close refuses a key (``GET /me/``).
    """
    config = check_config(
        api_key=api_key,
        api_keys=api_keys,
        timezone=timezone,
        start_date=start_date,
        end_date=end_date,
        lookback_days=lookback_days,
        refresh_days=refresh_days,
        force_refresh_days=force_refresh_days,
        segments=segments,
        custom_reports=custom_reports,
        overview_max_days=overview_max_days,
        metrics_chunk_size=metrics_chunk_size,
        workers=workers,
    )
    for report in REPORTS:
        segments_for(report, config.segments)
    memory.configure()
    log = run_log if run_log is not None else RunLog()
    stop = Stop(cancel)
    client_kwargs = {"transport": transport, "max_rps": max_rps, "stats": stats,
                     **(client_options or {})}  # fmt: skip
    orgs = connect(config, base_url, log, stop, client_kwargs)
    run = Run(config, today or local_today(timezone), orgs, log, stop, fail_fast, progress)
    resources = [r for report in REPORTS for r in report_resources(report, run)]
    return resources + [listing_resource(listing, run) for listing in LISTINGS]
