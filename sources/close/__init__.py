"""A dlt source for Close CRM's reporting API.

Resources (each named as the table it loads; see ``settings.TABLES`` for columns and keys):

- ``activity_metrics`` (replace): the metric catalog of ``/report/activity/metrics/``
- ``activity_overview``: org-wide activity metrics per day (``/report/activity/`` overview)
- ``activity_by_user``: activity metrics per user per day (comparison, one call per day)
- ``sent_emails_by_template``: sent / opened / replied emails per template per day
- ``lead_status_overview`` / ``lead_status_transitions``: lead status report, per day and per
  calendar month (one request feeds both tables)
- ``opportunity_status_overview`` / ``opportunity_status_transitions``: the same for opportunities
- ``funnel_totals`` / ``funnel_stages``: opportunity funnels per month x pipeline x cohort type
- ``custom_reports``: configured Explorer queries per month; ``custom_report_fields`` (replace)
- ``users``, ``lead_statuses``, ``opportunity_statuses``, ``pipelines``, ``groups``,
  ``saved_searches`` (replace): dimension tables

Report resources read whole local days in the configured timezone, never today, incrementally
from dlt state with a lookback, and merge on their natural key, so reruns never duplicate.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, cast

import dlt
import httpx
import pyarrow as pa
from dlt.common import logger
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.resource import DltResource

from . import fetch, incremental, reshape
from .client import CloseClient, RequestStats
from .errors import CloseConfigError
from .fetch import ordered_map
from .incremental import RunSettings
from .orgs import OrgContext
from .settings import (
    CUSTOM_REPORT_FIELDS_PATH,
    DEFAULT_BASE_URL,
    DEFAULT_INITIAL_DAYS,
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_TIMEZONE,
    DEFAULT_WORKERS,
    FUNNEL_COHORT_TYPES,
    GRAIN_DAY,
    GRAIN_MONTH,
    GROUPS_PATH,
    LEAD_STATUSES_PATH,
    METRICS_CHUNK_SIZE,
    OPPORTUNITY_STATUSES_PATH,
    RESOURCE_NAMES,
    SAVED_SEARCHES_PATH,
    TABLES,
    USERS_PATH,
    column_hints,
    metric_data_type,
    write_disposition,
)
from .windows import (
    Window,
    day_windows,
    local_today,
    month_windows,
    overview_windows,
    parse_day,
    zone,
)

__all__ = ["close_source", "RESOURCE_NAMES", "RequestStats"]

ProgressCallback = Callable[[str, str, Window], None]
"""Called as ``progress(table, org_id, window)`` after each window is read."""


def _table_resource(fn: Callable[..., Any], table: str) -> DltResource:
    _, primary_key, _ = TABLES[table]
    resource = dlt.resource(
        fn,
        name=table,
        write_disposition=write_disposition(table),
        primary_key=primary_key,
        columns=column_hints(table),
        parallelized=True,
    )
    return cast(DltResource, resource)


def _table_transformer(fn: Callable[..., Any], table: str, parent: DltResource) -> DltResource:
    _, primary_key, _ = TABLES[table]
    transformer = dlt.transformer(
        fn,
        name=table,
        data_from=parent,
        write_disposition=write_disposition(table),  # type: ignore[arg-type]
        primary_key=primary_key,
        columns=column_hints(table),
    )
    return cast(DltResource, transformer)


def _metric_hints(org: OrgContext) -> Dict[str, TColumnSchema]:
    return {
        reshape.metric_column_name(key): {"data_type": metric_data_type(key), "nullable": True}
        for key in org.metric_keys
    }


def _with_hints(items: Iterator[Any], hints: Any) -> Iterator[Any]:
    for item in items:
        yield dlt.mark.with_hints(item, hints) if hints else item


def distinct(orgs: Sequence[OrgContext]) -> Iterator[OrgContext]:
    """The orgs of distinct organizations: a second key of an org already read is skipped
    (its rows would repeat the same primary keys, and tables are merged without dlt's
    dedup pass, see ``settings.MERGE_DEDUPLICATED``)."""
    seen: set[str] = set()
    for org in orgs:
        if org.org_id in seen:
            logger.warning(
                "Two API keys belong to organization %s; reading it with the first only",
                org.org_id,
            )
            continue
        seen.add(org.org_id)
        yield org


def _check_custom_reports(reports: Optional[Sequence[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    checked: List[Dict[str, Any]] = []
    for report in reports or []:
        if not isinstance(report, dict) or not report.get("name") or not report.get("x"):
            raise CloseConfigError(
                "Each entry of custom_reports (in .dlt/config.toml, [[sources.close.custom_"
                f"reports]]) needs at least `name` and `x`; got {report!r}."
            )
        if any(r["name"] == report["name"] for r in checked):
            raise CloseConfigError(f"custom_reports: the name {report['name']!r} is used twice.")
        checked.append(dict(report))
    return checked


@dlt.source(name="close", section="close", max_table_nesting=0)
def close_source(
    api_key: Optional[str] = dlt.secrets.value,
    api_keys: Optional[List[str]] = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    start_date: Optional[str] = None,
    end_date: Optional[str] = None,
    timezone: str = DEFAULT_TIMEZONE,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    max_rps: Optional[float] = None,
    custom_reports: Optional[List[Dict[str, Any]]] = None,
    metrics_chunk_size: int = METRICS_CHUNK_SIZE,
    workers: int = DEFAULT_WORKERS,
    transport: Optional[httpx.BaseTransport] = None,
    stats: Optional[RequestStats] = None,
    progress: Optional[ProgressCallback] = None,
    client_options: Optional[Dict[str, Any]] = None,
) -> List[DltResource]:
    """Every Close reporting endpoint as incremental, idempotent tables.

    Args:
        api_key: A Close API key (``SOURCES__CLOSE__API_KEY`` or ``.dlt/secrets.toml``).
        api_keys: Several keys, one per org, loaded into the same tables (``org_id`` tells
            them apart); ``SOURCES__CLOSE__API_KEYS`` as a JSON list.
        base_url: Close's API root.
        start_date: First day to load (YYYY-MM-DD). Without state it starts the first run
            (default: 90 days before today); with ``end_date`` it starts a backfill.
        end_date: Exclusive last day of a backfill. With it, incremental state is neither
            read nor moved.
        timezone: IANA zone whose local days are the report days (``X-TZ-Offset``).
        lookback_days: Days before the last loaded day that each run reads again.
        max_rps: Hard cap on requests per second per key (default: adapt to ``RateLimit``).
        custom_reports: Explorer queries ``{name, x, y, interval, transform_y, group_by,
            query}`` loaded into ``custom_reports``.
        metrics_chunk_size: Most metrics sent in one activity-report call.
        workers: Requests in flight per resource, at most: all resources of a key share its
            throttle (rate limit) and its ``ConcurrencyGate`` (no more calls at once than
            keep the network and one CPU busy).
        transport: An httpx transport to use instead of the network (demo and tests).
        stats: Request counters to fill (shared by every org's client).
        progress: Called after each window is read.
        client_options: Extra ``CloseClient`` arguments (``max_attempts``, ``sleep``, ...).

    Returns:
        The resources listed in the module docstring.

    Raises:
        ValueError: On missing keys, an unknown timezone, malformed or inverted dates,
            or malformed ``custom_reports``.
    """
    keys = [k for k in ([api_key] if api_key else []) + list(api_keys or []) if k]
    if not keys:
        raise CloseConfigError(
            "No Close API key configured: set SOURCES__CLOSE__API_KEY (or `api_key` under "
            "[sources.close] in .dlt/secrets.toml). Create a key in Close under Settings -> "
            "Developer -> API Keys. For several orgs set SOURCES__CLOSE__API_KEYS to a JSON list."
        )
    zone(timezone)
    if lookback_days < 0:
        raise CloseConfigError(f"lookback_days must be 0 or more, got {lookback_days}.")
    run = RunSettings(
        timezone=timezone,
        today=local_today(timezone),
        start_date=parse_day(start_date, "start_date (--start, SOURCES__CLOSE__START_DATE)"),
        end_date=parse_day(end_date, "end_date (--end)"),
        lookback_days=lookback_days,
        initial_days=DEFAULT_INITIAL_DAYS,
        workers=max(1, workers),
        metrics_chunk_size=metrics_chunk_size,
    )
    if run.start_date and run.end_date and run.start_date >= run.end_date:
        raise CloseConfigError(
            f"start date {run.start_date} must be before end date {run.end_date} "
            "(the end is exclusive)."
        )
    reports = _check_custom_reports(custom_reports)
    request_stats = stats if stats is not None else RequestStats()
    orgs = [
        OrgContext(
            CloseClient(
                key,
                base_url,
                transport=transport,
                max_rps=max_rps,
                stats=request_stats,
                **(client_options or {}),
            )
        )
        for key in dict.fromkeys(keys)
    ]

    def report(name: str, org: OrgContext, window: Window) -> None:
        if progress is not None:
            progress(name, org.org_id, window)

    # ------------------------------------------------------------ dimensions

    def activity_metrics() -> Iterator[List[reshape.Row]]:
        for org in distinct(orgs):
            yield reshape.activity_metric_rows({"metrics": org.metrics}, org.org_id)

    def custom_report_fields() -> Iterator[List[reshape.Row]]:
        for org in distinct(orgs):
            yield reshape.custom_field_rows(org.client.get(CUSTOM_REPORT_FIELDS_PATH), org.org_id)

    def users() -> Iterator[List[reshape.Row]]:
        for org in distinct(orgs):
            active = reshape.active_user_ids(org.organization) if org.organization else None
            for page in org.client.paginate(USERS_PATH):
                yield reshape.user_rows(page, org.org_id, active)

    def list_endpoint(path: str) -> Callable[[], Iterator[List[reshape.Row]]]:
        def rows() -> Iterator[List[reshape.Row]]:
            for org in distinct(orgs):
                for page in org.client.paginate(path):
                    yield reshape.dimension_rows(page, org.org_id)

        return rows

    def opportunity_statuses() -> Iterator[List[reshape.Row]]:
        for org in distinct(orgs):
            for page in org.client.paginate(OPPORTUNITY_STATUSES_PATH):
                yield reshape.opportunity_status_rows(page, org.org_id, org.pipelines)

    def pipelines() -> Iterator[List[reshape.Row]]:
        for org in distinct(orgs):
            yield reshape.dimension_rows(org.pipelines, org.org_id)

    # ------------------------------------------------------------ single-table reports

    Fetcher = Callable[[Any], Any]

    def windowed_report(
        table: str,
        calls: Callable[[OrgContext, Window], Sequence[Any]],
        fetcher: Callable[[OrgContext, pa.Schema], Fetcher],
        with_metrics: bool = False,
        state_key: Optional[str] = None,
    ) -> Callable[[], Iterator[Any]]:
        """A report resource: per org, the calls planned from state are fetched in worker
        threads and handed to dlt in Arrow batches; state moves once every call is read.

        A call is a ``Window`` or a tuple ending with one (``(pipeline, cohort, month)``).
        State is kept under ``state_key`` (default: the table).
        """

        def rows() -> Iterator[Any]:
            for org in distinct(orgs):
                span = incremental.plan(state_key or table, org.org_id, run)
                if span is None:
                    continue
                metric_keys = org.metric_keys if with_metrics else ()
                schema = reshape.arrow_schema(table, metric_keys)
                hints = dlt.mark.make_hints(columns=_metric_hints(org)) if with_metrics else None
                batcher = fetch.Batcher(table, schema, fetch.current_load_id())
                for call, part in ordered_map(
                    fetcher(org, schema), calls(org, span), run.workers, client=org.client
                ):
                    report(table, org, call if isinstance(call, Window) else call[-1])
                    yield from _with_hints(batcher.add(part), hints)
                yield from _with_hints(batcher.flush(), hints)
                incremental.record(state_key or table, org.org_id, span, run)

        return rows

    def overview_calls(org: OrgContext, span: Window) -> List[Window]:
        return overview_windows(span, timezone)

    def day_calls(org: OrgContext, span: Window) -> List[Window]:
        return day_windows(span)

    def funnel_calls(org: OrgContext, span: Window) -> List[Tuple[str, str, Window]]:
        return [
            (pipeline["id"], cohort_type, window)
            for window in month_windows(span)
            for pipeline in org.pipelines
            for cohort_type in FUNNEL_COHORT_TYPES
        ]

    def month_calls(org: OrgContext, span: Window) -> List[Window]:
        return month_windows(span)

    activity_overview = windowed_report(
        "activity_overview",
        overview_calls,
        lambda org, _: partial(fetch.activity_overview, org, timezone, run.metrics_chunk_size),
        with_metrics=True,
    )
    activity_by_user = windowed_report(
        "activity_by_user",
        day_calls,
        lambda org, schema: partial(
            fetch.activity_by_user_part, org, timezone, run.metrics_chunk_size, schema
        ),
        with_metrics=True,
    )
    sent_emails_by_template = windowed_report(
        "sent_emails_by_template",
        day_calls,
        lambda org, _: partial(fetch.sent_emails, org, timezone),
    )

    def funnel_fetcher(table: str) -> Callable[[OrgContext, pa.Schema], Fetcher]:
        return lambda org, _: partial(fetch.funnel, org, table, timezone)

    funnel_totals = windowed_report("funnel_totals", funnel_calls, funnel_fetcher("funnel_totals"))
    funnel_stages = windowed_report("funnel_stages", funnel_calls, funnel_fetcher("funnel_stages"))

    def custom_fetcher(custom: Dict[str, Any]) -> Callable[[OrgContext, pa.Schema], Fetcher]:
        return lambda org, _: partial(fetch.custom_report, org, timezone, custom)

    def custom_report_rows() -> Iterator[Any]:
        """Each configured Explorer query keeps its own state, so a query added later is
        backfilled from ``start_date`` like a first run."""
        for custom in reports:
            yield from windowed_report(
                "custom_reports",
                month_calls,
                custom_fetcher(custom),
                state_key=f"custom_reports.{custom['name']}",
            )()

    # ------------------------------------------------------------ status reports

    def status_reports(object_type: str) -> Callable[[], Iterator[Dict[str, Any]]]:
        state_key = f"{object_type}_status_report"
        overview_schema = reshape.arrow_schema(f"{object_type}_status_overview")
        transitions_schema = reshape.arrow_schema(f"{object_type}_status_transitions")

        def responses() -> Iterator[Dict[str, Any]]:
            for org in distinct(orgs):
                span = incremental.plan(state_key, org.org_id, run)
                if span is None:
                    continue
                windows = [(GRAIN_DAY, w) for w in day_windows(span)]
                windows += [(GRAIN_MONTH, w) for w in month_windows(span)]
                load_id = fetch.current_load_id()
                overviews = fetch.Batcher(
                    f"{object_type}_status_overview", overview_schema, load_id
                )
                transitions = fetch.Batcher(
                    f"{object_type}_status_transitions", transitions_schema, load_id
                )
                for (_, window), (overview, transition) in ordered_map(
                    partial(fetch.status_report, org, object_type, timezone),
                    windows,
                    run.workers,
                    client=org.client,
                ):
                    report(state_key, org, window)
                    for item in overviews.add(overview):
                        yield {"overview": item}
                    for item in transitions.add(transition):
                        yield {"transitions": item}
                for item in overviews.flush():
                    yield {"overview": item}
                for item in transitions.flush():
                    yield {"transitions": item}
                incremental.record(state_key, org.org_id, span, run)

        return responses

    def pick(part: str) -> Callable[[Dict[str, Any]], Iterator[Any]]:
        def rows(item: Dict[str, Any]) -> Iterator[Any]:
            if part in item:
                yield item[part]

        return rows

    lead_reports = dlt.resource(
        status_reports("lead"), name="lead_status_reports", selected=False, parallelized=True
    )
    opportunity_reports = dlt.resource(
        status_reports("opportunity"),
        name="opportunity_status_reports",
        selected=False,
        parallelized=True,
    )
    return [
        _table_resource(activity_metrics, "activity_metrics"),
        _table_resource(activity_overview, "activity_overview"),
        _table_resource(activity_by_user, "activity_by_user"),
        _table_resource(sent_emails_by_template, "sent_emails_by_template"),
        lead_reports,
        _table_transformer(pick("overview"), "lead_status_overview", lead_reports),
        _table_transformer(pick("transitions"), "lead_status_transitions", lead_reports),
        opportunity_reports,
        _table_transformer(pick("overview"), "opportunity_status_overview", opportunity_reports),
        _table_transformer(
            pick("transitions"), "opportunity_status_transitions", opportunity_reports
        ),
        _table_resource(funnel_totals, "funnel_totals"),
        _table_resource(funnel_stages, "funnel_stages"),
        _table_resource(custom_report_fields, "custom_report_fields"),
        _table_resource(custom_report_rows, "custom_reports"),
        _table_resource(users, "users"),
        _table_resource(list_endpoint(LEAD_STATUSES_PATH), "lead_statuses"),
        _table_resource(opportunity_statuses, "opportunity_statuses"),
        _table_resource(pipelines, "pipelines"),
        _table_resource(list_endpoint(GROUPS_PATH), "groups"),
        _table_resource(list_endpoint(SAVED_SEARCHES_PATH), "saved_searches"),
    ]
