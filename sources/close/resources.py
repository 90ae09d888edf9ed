"""dlt resources from the registry: every report runs the same way.

For each report, every org x segment (x Explorer query) it reads is a *unit*. A unit plans its
calls from its state (``incremental``) and its report's window plan; its calls run in worker
threads (``workers``), interleaved across orgs so every key's throttle has work; their rows
become Arrow batches (``arrow``) kept in a spool (``spool``); only when all its calls are read are
its rows handed to dlt and its state moved. A unit Close refuses (400 / 402 / 403 / 404,
retries spent, an answer the loader cannot read) is dropped whole and named in the run log,
and the other units load; with ``fail_fast`` any failure fails the run. A refused key (401)
always fails the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, cast

import dlt
from dlt.common import logger
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.resource import DltResource

from . import arrow, incremental, reshape
from .arrow import Batcher, Part
from .client import Stop
from .config import ALL, Segment, SourceConfig
from .errors import CloseAPIError, CloseConfigError
from .ledger import FAILED, OK, SKIPPED, Entry, RunLog
from .orgs import OrgContext
from .reports import Call, Listing, Report, Scope, refresh_days
from .reshape import UnexpectedResponseError
from .settings import TABLES, column_hints, metric_data_type, write_disposition
from .spool import Spool
from .stats import RequestStats
from .windows import Window, plan_range
from .workers import MAX_THREADS, chunk_size, interleave, run_calls

REPORT_BATCH_BYTES = 8_000_000
"""Most bytes of rows one report holds in memory, over all its units (the rest is spooled)."""
UNIT_BATCH_MIN_BYTES = 256_000

ProgressCallback = Callable[[str, str, Window], None]
"""Called as ``progress(report, org_id, window)`` after each window is read."""

LEGACY_STATE = {
    "lead_status_reports": "lead_status_report",
    "opportunity_status_reports": "opportunity_status_report",
}
"""Report name -> its source-state name before state moved to resources (else its name)."""


@dataclass(frozen=True)
class Run:
    """What every resource of one run shares."""

    config: SourceConfig
    today: date
    orgs: Tuple[OrgContext, ...]
    run_log: RunLog
    stop: Stop
    fail_fast: bool = False
    progress: Optional[ProgressCallback] = None


def is_skippable(error: BaseException) -> bool:
    """Whether a unit that failed with ``error`` may be dropped while the rest of the run
    loads: Close refused or could not answer this report (not a refused key, not a bug)."""
    if isinstance(error, CloseAPIError):
        return error.status != 401
    return isinstance(error, (UnexpectedResponseError, CloseConfigError))


def _failed(run: Run, entry: Entry, error: BaseException) -> None:
    """Records a unit's failure, or fails the run (and stops its other requests)."""
    if run.fail_fast or not is_skippable(error):
        run.stop.set(error)
        raise error
    entry.finish(FAILED, error)
    logger.warning("%s (org %s, segment %s) not loaded: %s", entry.report, entry.org_id,
                   entry.segment, error)  # fmt: skip


# ---------------------------------------------------------------- segments


def segments_for(report: Report, segments: Sequence[Segment]) -> List[Segment]:
    """The unfiltered segment, then each configured segment that applies to ``report``.

    A segment without ``reports`` applies to every report accepting all of its filters; one
    that names a table of ``report`` must only use filters the report accepts.

    Raises:
        CloseConfigError: A segment names this report but sets a filter it does not take,
            or sets both ``smart_view_id`` and ``query`` for a status report.
    """
    chosen = [ALL]
    for segment in segments:
        unsupported = [f for f in segment.filters if f not in report.filters]
        if segment.reports is None:
            if not unsupported:
                chosen.append(segment)
            continue
        if not set(segment.reports) & set(report.tables):
            continue
        if unsupported:
            accepted = ", ".join(sorted(report.filters)) or "no filters"
            raise CloseConfigError(
                f"segment {segment.name!r}: {report.endpoint} (table "
                f"{', '.join(report.tables)}) does not accept {', '.join(unsupported)}; it "
                f"accepts {accepted}. Remove the table from the segment's `reports`, or the "
                "filter from the segment."
            )
        chosen.append(segment)
    for segment in chosen[1:]:
        if segment.smart_view_id and segment.query:
            raise CloseConfigError(
                f"segment {segment.name!r}: {report.endpoint} takes `smart_view_id` or "
                "`query`, not both (Close refuses the pair)."
            )
    return chosen


# ---------------------------------------------------------------- one unit of a report


@dataclass(eq=False)
class Unit:
    """One report of one org and segment (and Explorer query) in one run."""

    report: Report
    scope: Scope
    key: str
    tables: Tuple[str, ...]
    entry: Entry
    load_id: Optional[str]
    spool: Spool
    """The report's spool (shared by its units, each under its own key)."""
    span: Optional[Window] = None
    calls: List[Call] = field(default_factory=list)
    done: int = 0
    failed: bool = False
    batchers: Dict[str, Batcher] = field(default_factory=dict)

    def fetch(self, call: Call) -> Dict[str, Part]:
        """Sends a call's requests and reshapes the answers (runs in a worker thread)."""
        client = self.scope.org.client
        with RequestStats.scope(self.entry.stats):
            responses = [client.send(r) for r in self.report.requests(call, self.scope)]
        return self.report.reshape(responses, call, self.scope)

    def add(self, call: Call, parts: Dict[str, Part], run_log: RunLog) -> None:
        """Keeps one call's rows in the spool; an empty answer leaves a marker row, so the
        window's earlier rows are deleted all the same (``settings.EMPTY_WINDOW_COLUMN``)."""
        self.done += 1
        count = 0
        for table in self.tables:
            part = parts.get(table)
            size = (
                0 if part is None else (part.num_rows if hasattr(part, "num_rows") else len(part))
            )
            count += size
            if part is None or size == 0:
                part = [reshape.empty_window_row(table, self.scope.context(call), call.grain,
                                                 self.scope.query)]  # fmt: skip
            elif table == "custom_reports" and reshape.is_raw(cast(List[Dict[str, Any]], part)):
                run_log.warn(
                    f"custom_reports: Close's answer to the Explorer query "
                    f"{(self.scope.query or {}).get('name')!r} for {call.window} has a shape the "
                    "loader does not know; it was kept whole in the `raw` column"
                )
            for item in self.batchers[table].add(part):
                self.spool.add(self.key_in_spool, table, item)
        self.entry.read(call.window, count)

    @property
    def key_in_spool(self) -> Tuple[str, str]:
        """This unit's key in the report's spool."""
        return (self.scope.org_id, self.key)

    @property
    def complete(self) -> bool:
        """Whether every call was read."""
        return not self.failed and self.done == len(self.calls)

    def finish(self, backfill: bool) -> Iterator[Tuple[str, Part]]:
        """Hands the unit's rows on, then records the span as loaded (not for a backfill)."""
        for table in self.tables:
            for item in self.batchers[table].flush():
                self.spool.add(self.key_in_spool, table, item)
        yield from self.spool.drain(self.key_in_spool)
        if self.span is not None and not backfill:
            incremental.record(self.tables, self.scope.org_id, self.key, self.span)
        self.entry.finish(OK if self.calls or self.span else SKIPPED)

    def drop(self) -> None:
        """Discards what was read; the unit's tables and state stay as they were."""
        self.failed = True
        self.spool.discard(self.key_in_spool)


def _units(report: Report, run: Run, tables: Tuple[str, ...], spool: Spool) -> List[Unit]:
    """Every unit of ``report`` in this run, planned from state, spooling into ``spool``."""
    queries: Sequence[Optional[Dict[str, Any]]] = (
        run.config.custom_reports if report.per_query else (None,)
    )
    legacy = {
        f"custom_reports.{q['name']}" if q else LEGACY_STATE.get(report.name, report.name):
        incremental.unit_key(ALL.name, q["name"] if q else None)
        for q in queries
    }  # fmt: skip
    incremental.migrate_legacy(report.tables, legacy)
    load_id = arrow.current_load_id()
    units = []
    for org in distinct(run.orgs):
        for segment in segments_for(report, run.config.segments):
            for query in queries:
                name = report.name if query is None else f"{report.name}:{query['name']}"
                entry = run.run_log.entry(name, org.org_id, segment.name, tables)
                with RequestStats.scope(entry.stats):
                    try:
                        units.append(_planned_unit(report, run, org, segment, query, tables,
                                                   entry, load_id, spool))  # fmt: skip
                    except Exception as exc:  # noqa: BLE001 - classified by _failed
                        _failed(run, entry, exc)
    return units


def _planned_unit(
    report: Report,
    run: Run,
    org: OrgContext,
    segment: Segment,
    query: Optional[Dict[str, Any]],
    tables: Tuple[str, ...],
    entry: Entry,
    load_id: Optional[str],
    spool: Spool,
) -> Unit:
    config = run.config
    metric_keys = org.metric_keys if report.with_metrics else ()
    schemas = {t: arrow.arrow_schema(t, metric_keys) for t in report.tables}
    scope = Scope(org, segment, config.timezone, config.metrics_chunk_size,
                  config.overview_max_days, query, schemas)  # fmt: skip
    key = incremental.unit_key(segment.name, query["name"] if query else None)
    unit = Unit(report, scope, key, tables, entry, load_id, spool)
    unit.batchers = {t: Batcher(t, schemas[t], load_id) for t in tables}
    last = None if config.is_backfill else incremental.cursor(tables, org.org_id, key)
    lookback = config.lookback_days
    if last is not None:
        lookback = refresh_days(
            report, last + timedelta(days=1), config.lookback_days, config.refresh_days
        )
        lookback = max(lookback, config.force_refresh_days or 0)
    unit.span = plan_range(
        today=run.today,
        last_loaded_day=last,
        start_date=config.start_date,
        end_date=config.end_date,
        lookback_days=lookback,
        initial_days=config.initial_days,
    )
    first = None if last is None else incremental.first_loaded_day(tables, org.org_id, key)
    if unit.span is not None and first is not None and unit.span.start < first:
        # a refresh re-reads loaded days; it never extends the history backwards
        unit.span = Window(first, unit.span.end) if first < unit.span.end else None
    unit.calls = report.plan(unit.span, scope, run.today) if unit.span else []
    return unit


def run_report(
    report: Report, run: Run, tables: Tuple[str, ...]
) -> Iterator[Tuple[str, Part, Unit]]:
    """Reads every unit of ``report``; yields ``(table, part, unit)`` unit by unit, each
    unit only once it is complete."""
    spool = Spool()
    units = _units(report, run, tables, spool)
    budget = max(UNIT_BATCH_MIN_BYTES, REPORT_BATCH_BYTES // max(1, len(units) * len(tables)))
    for unit in units:
        for batcher in unit.batchers.values():
            batcher.max_bytes = min(batcher.max_bytes, budget)
    for unit in units:
        if not unit.calls:
            for table, part in unit.finish(run.config.is_backfill):
                yield table, part, unit
    live = [u for u in units if u.calls]
    count = sum(len(u.calls) for u in live)
    orgs = len({u.scope.org_id for u in live}) or 1
    workers = min(MAX_THREADS, run.config.workers * orgs)
    chunks = interleave(([(u, c) for c in u.calls] for u in live), chunk_size(count, workers))
    outcomes = run_calls(
        lambda task: task[0].fetch(task[1]),
        chunks,
        workers,
        gate_of=lambda task: task[0].scope.org.gate,
        skip=lambda task: task[0].failed,
    )
    try:
        for (unit, call), outcome in outcomes:
            if unit.failed:
                continue
            if isinstance(outcome, BaseException):
                unit.drop()
                _failed(run, unit.entry, outcome)
                continue
            unit.add(call, outcome, run.run_log)
            if run.progress is not None:
                run.progress(report.name, unit.scope.org_id, call.window)
            if unit.complete:
                for table, part in unit.finish(run.config.is_backfill):
                    yield table, part, unit
    finally:
        outcomes.close()
        spool.close()


def distinct(orgs: Sequence[OrgContext]) -> Iterator[OrgContext]:
    """The orgs of distinct organizations: a second key of an org already read is skipped
    (its rows would repeat the same primary keys)."""
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


# ---------------------------------------------------------------- dlt resources


def _selected(tables: Sequence[str]) -> Tuple[str, ...]:
    """The ``tables`` selected in the running source (all of them outside a source)."""
    try:
        chosen = set(dlt.current.source().resources.selected)
    except Exception:  # noqa: BLE001 - a resource evaluated on its own
        return tuple(tables)
    return tuple(t for t in tables if t in chosen)


def _metric_hints(unit: Unit) -> Any:
    columns: Dict[str, TColumnSchema] = {
        reshape.metric_column_name(key): {"data_type": metric_data_type(key), "nullable": True}
        for key in unit.scope.org.metric_keys
    }
    return dlt.mark.make_hints(columns=columns)


def _table_resource(fn: Callable[[], Iterator[Any]], table: str) -> DltResource:
    resource = dlt.resource(
        fn,
        name=table,
        write_disposition=write_disposition(table),
        primary_key=TABLES[table].primary_key,
        columns=column_hints(table),
        parallelized=True,
    )
    return cast(DltResource, resource)


def report_resources(report: Report, run: Run) -> List[DltResource]:
    """The dlt resources of ``report``: one named as its table, or, for a report feeding
    several tables, a hidden request resource and one transformer per table."""
    if len(report.tables) == 1:
        (table,) = report.tables

        def rows() -> Iterator[Any]:
            hints: Dict[int, Any] = {}
            for _, part, unit in run_report(report, run, report.tables):
                if report.with_metrics:
                    hint = hints.setdefault(id(unit), _metric_hints(unit))
                    yield dlt.mark.with_hints(part, hint)
                else:
                    yield part

        return [_table_resource(rows, table)]

    def responses() -> Iterator[Dict[str, Any]]:
        for table, part, _ in run_report(report, run, _selected(report.tables)):
            yield {"table": table, "part": part}

    parent = dlt.resource(responses, name=report.name, selected=False, parallelized=True)
    return [cast(DltResource, parent)] + [_pick(table, parent) for table in report.tables]


def _pick(table: str, parent: DltResource) -> DltResource:
    def rows(item: Dict[str, Any]) -> Iterator[Any]:
        if item["table"] == table:
            yield item["part"]

    transformer = dlt.transformer(
        rows,
        name=table,
        data_from=parent,
        write_disposition=write_disposition(table),  # type: ignore[arg-type]
        primary_key=TABLES[table].primary_key,
        columns=column_hints(table),
    )
    return cast(DltResource, transformer)


def listing_resource(listing: Listing, run: Run) -> DltResource:
    """A dimension table: every org's rows replace that org's earlier rows."""

    def rows() -> Iterator[Any]:
        for org in distinct(run.orgs):
            entry = run.run_log.entry(listing.table, org.org_id, ALL.name, (listing.table,))
            try:
                with RequestStats.scope(entry.stats):
                    pages = [page for page in listing.rows(org) if page]
            except Exception as exc:  # noqa: BLE001 - classified by _failed
                _failed(run, entry, exc)
                continue
            if not pages:
                pages = [[reshape.empty_listing_row(listing.table, org.org_id)]]
            entry.rows = sum(len(page) for page in pages)
            entry.windows = 1
            entry.finish(OK)
            yield from pages

    return _table_resource(rows, listing.table)
