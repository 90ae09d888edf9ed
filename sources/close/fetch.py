"""Report requests: build each call for a window, send it, reshape the answer into rows.

One function per report. They run in worker threads (``ordered_map``), all sharing the org's
client and its throttle, so a backfill keeps several requests in flight without exceeding
Close's rate limit.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sized,
    Tuple,
    TypeVar,
    Union,
)

import dlt
import pyarrow as pa
from dlt.common import logger

from . import reshape
from .client import CloseClient
from .orgs import OrgContext
from .reshape import Row
from .settings import (
    ACTIVITY_REPORT_PATH,
    ARROW_BATCH_BYTES,
    ARROW_BATCH_ROWS,
    ARROW_CONVERT_ROWS,
    CUSTOM_REPORT_PATH,
    FUNNEL_STAGES_PATH,
    FUNNEL_TOTALS_PATH,
    LEAD_STATUS_REPORT_PATH,
    OPPORTUNITY_STATUS_REPORT_PATH,
    SENT_EMAILS_PATH,
    TABLES,
)
from .windows import Window, date_params, datetime_range, utc_offset_hours

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    chunk: Optional[int] = None,
    client: Optional[CloseClient] = None,
) -> Iterator[Tuple[T, R]]:
    """Applies ``fn`` to ``items`` in ``workers`` threads; yields ``(item, result)`` in order.

    Each thread call handles ``chunk`` consecutive items, one after the other, and hands
    their results back together: passing a result from a worker thread to the consumer
    costs a GIL hand-over that, while other threads compute, can take milliseconds, so
    fewer, larger hand-overs keep a CPU-bound load fast; ``workers`` calls (requests)
    are still in flight at a time. By default ``chunk`` follows ``chunk_size`` for a sized
    ``items`` (1 otherwise). With ``client``, each call also passes its key's
    ``ConcurrencyGate``, so all resources of an org together run only as many calls as
    keep the network and one CPU busy. At most ``2 * workers`` chunks are pending, so a long
    backfill streams instead of being collected in memory. The first failure is raised
    and the calls not yet started are cancelled.
    """
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return

    if chunk is None:
        chunk = chunk_size(len(items), workers) if isinstance(items, Sized) else 1

    def run(batch: List[T]) -> List[R]:
        if client is None:
            return [fn(item) for item in batch]
        client.gate.acquire()
        cpu, requests = time.thread_time(), client.thread_requests()
        try:
            return [fn(item) for item in batch]
        finally:
            client.gate.release(time.thread_time() - cpu, client.thread_requests() - requests)

    pending: Deque[Tuple[List[T], Future[List[R]]]] = deque()
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="close") as pool:
        try:
            while True:
                batch = list(islice(iterator, max(1, chunk)))
                if not batch:
                    break
                pending.append((batch, pool.submit(run, batch)))
                if len(pending) >= 2 * workers:
                    done, future = pending.popleft()
                    yield from zip(done, future.result(), strict=True)
            while pending:
                done, future = pending.popleft()
                yield from zip(done, future.result(), strict=True)
        finally:
            for _, future in pending:
                future.cancel()


def chunk_size(count: int, workers: int, most: int = 8) -> int:
    """Items per thread call: up to ``most``, but small enough that every worker gets
    several calls (so the last ones do not leave the other workers idle)."""
    return max(1, min(most, count // (4 * max(1, workers))))


# ---------------------------------------------------------------- Arrow batches

Part = Union[pa.Table, List[Row]]
"""One window's rows: an Arrow table, or dict rows that did not fit the table's schema."""


def current_load_id() -> Optional[str]:
    """The load id of the package being extracted (None outside a pipeline run)."""
    try:
        return str(dlt.current.load_package_state()["load_id"])
    except Exception:  # noqa: BLE001 - no load package in context
        return None


class Batcher:
    """Turns the rows of consecutive windows of one table into few, large Arrow tables.

    ``add`` takes one window's rows (dicts, or an Arrow table already built from the
    response); dict rows are converted ``convert_rows`` at a time (pyarrow's cost per call,
    not per value, dominates small conversions); tables are handed on in batches of about
    ``min_rows`` rows or ``max_bytes`` bytes (the status tables carry long drill-down URLs
    in every row), with ``_dlt_load_id`` / ``_dlt_id``. Rows that do not fit ``schema``
    (see ``reshape.columns_to_arrow``) are handed on as dicts, so dlt treats them exactly as
    before. Each primary-key value is handed on once (the last row of a repeated one): keys
    include their window, so one batch is all a key can repeat in, and dlt's own dedup pass
    is skipped (``settings.MERGE_DEDUPLICATED``). Memory stays flat over a long backfill.
    """

    def __init__(
        self,
        table: str,
        schema: pa.Schema,
        load_id: Optional[str],
        *,
        convert_rows: int = ARROW_CONVERT_ROWS,
        min_rows: int = ARROW_BATCH_ROWS,
        max_bytes: int = ARROW_BATCH_BYTES,
    ) -> None:
        self.table = table
        self.key = TABLES[table][1]
        self.schema = schema
        self.load_id = load_id
        self.convert_rows = convert_rows
        self.min_rows = min_rows
        self.max_bytes = max_bytes
        self._rows: List[Row] = []
        self._tables: List[pa.Table] = []
        self._count = 0
        self._bytes = 0

    def add(self, part: Part) -> Iterator[Part]:
        """Takes one window's rows; yields what is ready to hand to dlt."""
        if isinstance(part, pa.Table):
            self._keep(part)
        elif part:
            self._rows.extend(part)
            if len(self._rows) >= self.convert_rows:
                yield from self._convert()
        if self._count >= self.min_rows or self._bytes >= self.max_bytes:
            yield from self._hand_on()

    def flush(self) -> Iterator[Part]:
        """Yields everything still collected (at the end of an org's windows), then hands
        pyarrow's freed memory back to the system (its pool keeps it otherwise)."""
        yield from self._convert()
        yield from self._hand_on()
        pa.default_memory_pool().release_unused()

    def _keep(self, table: pa.Table) -> None:
        if table.num_rows:
            self._tables.append(table)
            self._count += table.num_rows
            self._bytes += table.nbytes

    def _convert(self) -> Iterator[Part]:
        rows, self._rows = self._rows, []
        if not rows:
            return
        table = reshape.rows_to_arrow(rows, self.schema)
        if table is None:
            logger.info(
                "%s: %d rows do not fit the declared column types; loading them as dicts",
                self.table,
                len(rows),
            )
            yield reshape.unique_rows(rows, self.key)
        else:
            self._keep(table)

    def _hand_on(self) -> Iterator[Part]:
        if self._tables:
            table = reshape.unique_table(pa.concat_tables(self._tables), self.key)
            self._tables, self._count, self._bytes = [], 0, 0
            yield reshape.with_dlt_columns(table, self.load_id)


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


def activity_by_user_part(
    org: OrgContext, timezone: str, chunk_size: int, schema: pa.Schema, day: Window
) -> Part:
    """``activity_by_user`` as an Arrow table built straight from the response's columns
    when all metrics fit one call and the response is the plain case; else its dict rows."""
    metric_chunks = chunks(org.metric_keys, chunk_size)
    if len(metric_chunks) > 1:
        return activity_by_user(org, timezone, chunk_size, day)
    response = _activity_report(org, "comparison", day, timezone, metric_chunks[0])
    table = reshape.activity_comparison_table(
        response, org_id=org.org_id, window=day, timezone=timezone, schema=schema
    )
    if table is not None:
        return table
    rows = reshape.activity_comparison_rows(
        response, org_id=org.org_id, window=day, timezone=timezone
    )
    return reshape.merge_rows([rows], ("user_id",))


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
    org: OrgContext, timezone: str, report: Mapping[str, Any], window: Window
) -> List[Row]:
    """Rows of one configured Explorer query over one month."""
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
