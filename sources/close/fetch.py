"""Report requests: build each call for a window, send it, reshape the answer into rows.

One function per report. They run in worker threads (``ordered_map``), all sharing the org's
client and its throttle, so a backfill keeps several requests in flight without exceeding
Close's rate limit.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Mapping, Tuple, TypeVar

from . import reshape
from .orgs import OrgContext
from .reshape import Row
from .settings import (
    ACTIVITY_REPORT_PATH,
    CUSTOM_REPORT_PATH,
    FUNNEL_STAGES_PATH,
    FUNNEL_TOTALS_PATH,
    LEAD_STATUS_REPORT_PATH,
    OPPORTUNITY_STATUS_REPORT_PATH,
    SENT_EMAILS_PATH,
)
from .windows import Window, date_params, datetime_range, utc_offset_hours

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[Tuple[T, R]]:
    """Applies ``fn`` to ``items`` in ``workers`` threads; yields ``(item, result)`` in order.

    At most ``2 * workers`` calls are in flight, so a long backfill streams instead of being
    collected in memory. The first failure is raised and the calls not yet started are
    cancelled.
    """
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    pending: Deque[Tuple[T, Future[R]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="close") as pool:
        try:
            for item in items:
                pending.append((item, pool.submit(fn, item)))
                if len(pending) >= 2 * workers:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()


def chunks(keys: List[str], size: int) -> List[List[str]]:
    """Splits a metric list into calls of at most ``size`` keys (all in one when size <= 0)."""
    if size <= 0 or len(keys) <= size:
        return [keys]
    return [keys[i : i + size] for i in range(0, len(keys), size)]


# ---------------------------------------------------------------- activity


def _activity_report(
    org: OrgContext, report_type: str, window: Window, timezone: str, metrics: List[str]
) -> Mapping[str, Any]:
    body = {
        "type": report_type,
        "datetime_range": datetime_range(window, timezone),
        "metrics": metrics,
    }
    return org.client.post(  # type: ignore[no-any-return]
        ACTIVITY_REPORT_PATH, body, tz_offset=utc_offset_hours(window.start, timezone)
    )


def activity_overview(org: OrgContext, timezone: str, chunk_size: int, window: Window) -> List[Row]:
    """Daily org-wide rows for ``window`` (one call per metric chunk, merged by date)."""
    parts = [
        reshape.activity_overview_rows(
            _activity_report(org, "overview", window, timezone, metrics),
            org_id=org.org_id,
            window=window,
            timezone=timezone,
        )
        for metrics in chunks(org.metric_keys, chunk_size)
    ]
    return reshape.merge_rows(parts, ("date",))


def activity_by_user(org: OrgContext, timezone: str, chunk_size: int, day: Window) -> List[Row]:
    """Per-user rows of one day (one comparison call per metric chunk, merged by user)."""
    parts = [
        reshape.activity_comparison_rows(
            _activity_report(org, "comparison", day, timezone, metrics),
            org_id=org.org_id,
            window=day,
            timezone=timezone,
        )
        for metrics in chunks(org.metric_keys, chunk_size)
    ]
    return reshape.merge_rows(parts, ("user_id",))


# ---------------------------------------------------------------- GET reports


def _get_report(org: OrgContext, path: str, window: Window, timezone: str) -> Mapping[str, Any]:
    return org.client.get(  # type: ignore[no-any-return]
        path.format(org_id=org.org_id),
        date_params(window, timezone),
        tz_offset=utc_offset_hours(window.start, timezone),
    )


def sent_emails(org: OrgContext, timezone: str, day: Window) -> List[Row]:
    """Sent-email rows of one day, "All Emails" included."""
    response = _get_report(org, SENT_EMAILS_PATH, day, timezone)
    return reshape.sent_email_rows(response, org_id=org.org_id, window=day, timezone=timezone)


STATUS_REPORT_PATHS = {
    "lead": LEAD_STATUS_REPORT_PATH,
    "opportunity": OPPORTUNITY_STATUS_REPORT_PATH,
}


def status_report(
    org: OrgContext, object_type: str, timezone: str, call: Tuple[str, Window]
) -> Tuple[List[Row], List[Row]]:
    """``(overview rows, transition rows)`` of a lead or opportunity status report.

    ``call`` is ``(grain, window)``: a day, or a calendar month (to date).
    """
    grain, window = call
    response = _get_report(org, STATUS_REPORT_PATHS[object_type], window, timezone)
    return reshape.status_report_rows(
        response, org_id=org.org_id, grain=grain, window=window, timezone=timezone
    )


# ---------------------------------------------------------------- funnels

FUNNEL_ENDPOINTS: Dict[str, Tuple[str, Callable[..., List[Row]]]] = {
    "funnel_totals": (FUNNEL_TOTALS_PATH, reshape.funnel_totals_rows),
    "funnel_stages": (FUNNEL_STAGES_PATH, reshape.funnel_stages_rows),
}


def funnel_body(
    pipeline_id: str, cohort_type: str, window: Window, timezone: str
) -> Dict[str, Any]:
    """The request body of a funnel report; never any ``compared_*`` range.

    An active-stage cohort is the opportunities active in the report range; a created cohort
    is those created in the cohort range, followed through the same range.
    """
    span = datetime_range(window, timezone)
    body: Dict[str, Any] = {
        "pipeline": pipeline_id,
        "type": cohort_type,
        "report_datetime_range": span,
    }
    if cohort_type == "created-cohort":
        body["cohort_datetime_range"] = span
    return body


def funnel(org: OrgContext, table: str, timezone: str, call: Tuple[str, str, Window]) -> List[Row]:
    """Rows of ``funnel_totals`` or ``funnel_stages``: ``call`` is (pipeline, cohort, month)."""
    pipeline_id, cohort_type, window = call
    path, reshaper = FUNNEL_ENDPOINTS[table]
    response = org.client.post(
        path,
        funnel_body(pipeline_id, cohort_type, window, timezone),
        tz_offset=utc_offset_hours(window.start, timezone),
    )
    return reshaper(
        response,
        org_id=org.org_id,
        pipeline_id=pipeline_id,
        cohort_type=cohort_type,
        window=window,
        timezone=timezone,
    )


# ---------------------------------------------------------------- Explorer

CUSTOM_REPORT_PARAMS = ("x", "y", "interval", "transform_y", "group_by", "query")


def custom_report(
    org: OrgContext, timezone: str, call: Tuple[Mapping[str, Any], Window]
) -> List[Row]:
    """Rows of one configured Explorer query; ``call`` is ``(report, month)``."""
    report, window = call
    params = {k: str(report[k]) for k in CUSTOM_REPORT_PARAMS if report.get(k) not in (None, "")}
    params.update(start=window.start.isoformat(), end=window.end.isoformat())
    response = org.client.get(
        CUSTOM_REPORT_PATH.format(org_id=org.org_id),
        params,
        tz_offset=utc_offset_hours(window.start, timezone),
    )
    return reshape.custom_report_rows(
        response, org_id=org.org_id, report=report, window=window, timezone=timezone
    )
