"""close-pipeline check: one probe per endpoint the loader reads, against the loader's contract.

For a first contact with a real Close org. With the same configuration as ``load`` (keys,
base URL, timezone, Explorer queries), it sends the smallest call of every endpoint the loader
uses: ``/me/``, ``/organization/{id}/``, the first page of every listing, and for every report
of the registry (``reports.REPORTS``) the first call its own window plan makes for yesterday
(yesterday for day reports; the month of yesterday to date for month reports, i.e. last month
when today is the 1st; one pipeline x one cohort type for funnels; each Explorer query once),
built by the report's own request builder. Each answer goes through the loader's own
reshaper and the Arrow contract (``settings.TABLES`` via ``arrow.arrow_schema`` and
``arrow.columns_to_arrow``); what differs is named: keys of Close's answer the reshaper read
and did not find, declared columns no row carries, values not of the declared type, key
columns left null; fields the contract does not know are listed as new (the loader adds them
as columns, so they do not fail the check). One line per endpoint; exit 0 only if all pass.

``--record DIR`` writes every exchange (request, status, answer) as JSON, one file per
endpoint, with the API key, people's names and emails redacted; ``--replay DIR`` checks such
files offline, by answering the same requests from them (``replay``).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import threading
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple
from urllib.parse import urlsplit

import httpx
import pyarrow as pa

from close_reports.failures import EXIT_FAILED, EXIT_USAGE, explain
from close_reports.source.arrow import (
    ARROW_TYPES,
    Part,
    arrow_schema,
    columns_to_arrow,
    rows_to_arrow,
)
from close_reports.source.client import Stop
from close_reports.source.config import ALL, SourceConfig, check_config, check_explorer_fields
from close_reports.source.errors import (
    CloseAPIError,
    CloseConfigError,
    CloseRetryError,
    CloseUnavailableError,
    redact,
)
from close_reports.source.ledger import RunLog
from close_reports.source.orgs import OrgContext, connect
from close_reports.source.reports import LISTINGS, REPORTS, Call, Listing, Report, Scope
from close_reports.source.reshape import (
    UnexpectedResponseError,
    active_user_ids,
    custom_field_rows,
    is_raw,
)
from close_reports.source.resources import segments_for
from close_reports.source.settings import (
    EMPTY_WINDOW_COLUMN,
    ORGANIZATION_PATH,
    TABLES,
)
from close_reports.source.windows import Window, local_today, whole_months

OK = "ok"
DIFFERS = "differs"
REFUSED = "refused"
FAILED = "failed"
BAD_CONFIG = "bad config"
NOT_PROBED = "not probed"
PASSING = frozenset({OK})

LOADER_COLUMNS = frozenset({EMPTY_WINDOW_COLUMN, "raw"})
"""Declared columns the loader fills itself, never from Close's answer: the empty-window
marker and ``custom_reports.raw`` (an Explorer answer it could not read)."""

MANIFEST = "check.json"
"""Per org, beside the recorded answers: what ``replay`` needs to send the same requests."""
REDACTED = "***"
PERSON_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "full_name",
        "display_name",
        "display",
        "user_name",
        "user_full_name",
        "user_display_name",
        "contact_name",
        "image",
        "image_url",
        "avatar",
        "avatar_url",
    }
)
"""Keys whose text names (or pictures) a person, wherever they appear; ``display`` is the
comparison report's ``lookup`` entry; ``email`` and ``*_email`` keys too, and any text that
looks like an email address."""
NAME_FIELDS = frozenset(
    {"first_name", "last_name", "full_name", "display_name", "display", "user_name"}
)
NAME_SUFFIXES = ("first_name", "last_name", "full_name", "display_name")
"""Person fields whose words are also redacted wherever else they occur in an answer."""
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")

REFUSAL_HINTS = {
    400: "Close rejected the request",
    401: "Close refused the API key",
    402: "a limit of the org's plan",
    403: "not on the org's plan, or the key's user lacks permission",
    404: "Close has no such endpoint for this key",
}

WAREHOUSE_TYPES = {arrow_type: name for name, arrow_type in ARROW_TYPES.items()}

EPILOG = """\
exit status: 0 every endpoint answers as the loader expects; 1 an endpoint was refused
(its HTTP status and Close's message are shown), failed, or answered in a shape the loader
does not expect (what differs is shown); 2 bad configuration (no key, an invalid setting, an
Explorer query naming a field Close does not list); 130 interrupted.

examples:
  SOURCES__CLOSE__API_KEY=api_xxx close-pipeline check
  close-pipeline check --record close-check    # also save the answers, redacted, as fixtures
  close-pipeline check --replay close-check    # check saved answers offline
  close-pipeline check --demo                  # the embedded demo org
"""


# ---------------------------------------------------------------- the command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``close-pipeline check``."""
    parser.add_argument(
        "--demo",
        action="store_true",
        help="check the embedded simulated Close org in-process (no key needed)",
    )
    parser.add_argument(
        "--record",
        metavar="DIR",
        help="save every answer as JSON in DIR, one file per endpoint, with the API key, "
        "people's names and emails redacted (to send as fixtures)",
    )
    parser.add_argument(
        "--replay",
        metavar="DIR",
        help="check answers saved with --record, offline (no key, no request to Close)",
    )


def command(
    args: argparse.Namespace, demo_kwargs: Optional[Callable[[], Dict[str, Any]]] = None
) -> int:
    """Runs ``close-pipeline check``; returns the exit status."""
    try:
        if args.replay:
            if args.demo or args.record:
                raise CloseConfigError("--replay reads saved answers: without --demo / --record.")
            probes = replay(Path(args.replay), emit=_print)
        else:
            overrides = demo_kwargs() if args.demo and demo_kwargs else {}
            settings = resolve_settings(overrides)
            probes = run_check(
                settings, emit=_print, record=Path(args.record) if args.record else None
            )
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure ends with one actionable line
        message, status = explain(exc)
        print(f"close-pipeline check failed: {' '.join(message.split())}", file=sys.stderr)
        return int(status)
    return _verdict(probes, args.record)


def _print(line: str) -> None:
    print(line, flush=True)


def _verdict(probes: Sequence["Probe"], record: Optional[str]) -> int:
    if record:
        print(f"answers saved in {record} (API key, people's names and emails redacted)")
    failed = [p for p in probes if not p.passed]
    if not failed:
        print(f"close-pipeline check: all {len(probes)} endpoints answer as the loader expects")
        return 0
    several = len({p.org_id for p in probes}) > 1
    names = ", ".join(_label(p, several) for p in failed)
    print(
        f"close-pipeline check failed: {len(failed)} of {len(probes)} endpoints were refused "
        f"or differ from what the loader expects: {names}",
        file=sys.stderr,
    )
    return int(EXIT_USAGE if any(p.outcome == BAD_CONFIG for p in failed) else EXIT_FAILED)


def _label(probe: "Probe", several: bool) -> str:
    """``name (status)``, with the org when several keys were checked."""
    org = f" of {probe.org_id or 'a refused key'}" if several else ""
    return f"{probe.name}{org} ({probe.status or probe.outcome})"


def resolve_settings(overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The source's configuration exactly as ``load`` resolves it (dlt's providers: env vars,
    ``.dlt/*.toml``), with ``overrides`` (``--demo``) on top."""
    from dlt.common.configuration import resolve_configuration

    from close_reports.source import close_source

    spec = close_source.ref.SPEC
    resolved = resolve_configuration(spec(), sections=("sources", "close", "close"))
    settings = {name: getattr(resolved, name) for name in spec.get_resolvable_fields()}
    settings.update(overrides or {})
    return settings


# ---------------------------------------------------------------- what one probe found


@dataclass
class Exchange:
    """One request and Close's answer, as recorded."""

    method: str
    path: str
    params: Dict[str, str]
    body: Any
    tz_offset: Optional[str]
    status: int
    response: Any


@dataclass
class Probe:
    """One endpoint of one org: the calls sent, Close's status, the verdict."""

    name: str
    endpoint: str
    org_id: str = ""
    outcome: str = OK
    detail: str = ""
    status: Optional[int] = None
    exchanges: List[Exchange] = field(default_factory=list)
    parts: Dict[str, Part] = field(default_factory=dict)
    """The rows of each table, as the loader's reshaper made them."""
    context: Dict[str, Any] = field(default_factory=dict)
    """What the probe sent besides its requests (the call, the Explorer query)."""

    @property
    def passed(self) -> bool:
        """Whether the endpoint answered as the loader expects."""
        return self.outcome in PASSING

    def line(self) -> str:
        """``name  endpoint  status  verdict``."""
        status = str(self.status) if self.status is not None else "-"
        verdict = self.outcome if not self.detail else f"{self.outcome}: {self.detail}"
        if self.outcome == OK and self.detail:
            verdict = f"ok ({self.detail})"
        return f"{self.name:<30} {self.endpoint:<44} {status:>4}  {verdict}"


# ---------------------------------------------------------------- the checks (pure)


class _Watched(Dict[str, Any]):
    """A JSON object that notes each key a reshaper asks for and does not find."""

    def __init__(self, data: Mapping[str, Any], absent: Set[str]) -> None:
        super().__init__(data)
        self._absent = absent

    def get(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self._absent.add(str(key))
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        if key not in self:
            self._absent.add(str(key))
        return super().__getitem__(key)


def watched(responses: Iterable[Any], absent: Set[str]) -> List[Any]:
    """``responses`` with each JSON object noting into ``absent`` the keys read but missing."""
    return [_Watched(r, absent) if isinstance(r, dict) else r for r in responses]


def absent_keys(keys: Iterable[str]) -> List[str]:
    """The difference of keys the loader reads and Close's answer does not have."""
    return [f"no `{key}` in Close's answer (the loader reads it)" for key in sorted(keys)]


def report_differences(
    report: Report, responses: List[Any], call: Call, scope: Scope
) -> Tuple[List[str], List[str], Dict[str, Part]]:
    """What differs between Close's answers to one call and what the loader expects:
    ``(differences, notes, rows per table)``, through the report's own reshaper."""
    absent: Set[str] = set()
    try:
        parts = report.reshape(watched(responses, absent), call, scope)
    except UnexpectedResponseError as exc:
        return [str(exc)], [], {}
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        return [f"the loader cannot read Close's answer ({type(exc).__name__}: {exc})"], [], {}
    differences = absent_keys(absent)
    notes: List[str] = []
    for table in report.tables:
        part = parts.get(table)
        if table == "custom_reports" and isinstance(part, list) and is_raw(part):
            differences.append(
                "Close's answer has a shape the loader does not know: it would be kept whole "
                "in the `raw` column (no series rows)"
            )
            continue
        found, noted = table_differences(table, part, scope.schemas[table])
        differences += found
        notes += noted
    return differences, notes, parts


def table_differences(
    table: str, part: Optional[Part], schema: pa.Schema
) -> Tuple[List[str], List[str]]:
    """``(differences, notes)`` of one table's rows against its declared columns.

    Differences: declared columns no row carries, values not of the declared type, nulls in
    key columns. Notes: columns the contract does not know (the loader adds them), no rows.
    """
    if part is None or len(part) == 0:
        return [], [f"{table}: no rows in this window, columns not checked"]
    if isinstance(part, pa.Table):  # built in the loader's own Arrow path: fits by design
        return [], []
    rows = part
    names = set().union(*rows)
    declared: Dict[str, str] = dict(TABLES[table].columns)
    for schema_field in schema:  # metric columns: typed by their key in ``arrow_schema``
        declared.setdefault(schema_field.name, WAREHOUSE_TYPES.get(schema_field.type, "?"))
    differences: List[str] = []
    missing = [c for c in declared if c not in names and c not in LOADER_COLUMNS]
    if missing:
        differences.append(f"{table}: missing {_names(missing)}")
    for schema_field in schema:
        if schema_field.name in names:
            values = [row.get(schema_field.name) for row in rows]
            problem = _column_problem(schema_field, values, declared[schema_field.name])
            if problem:
                differences.append(f"{table}: {problem}")
    new = sorted(names - set(declared) - LOADER_COLUMNS)
    notes = [f"{table}: new {_names(new)} (loaded as new columns)"] if new else []
    converts = not (differences or new) and names <= set(schema.names)
    if converts and rows_to_arrow(rows, schema) is None:
        differences.append(f"{table}: rows do not convert to the declared column types")
    return differences, notes


def _column_problem(schema_field: pa.Field, values: List[Any], declared: str) -> Optional[str]:
    """Why ``values`` do not fit the column, checked as the loader converts them."""
    name = schema_field.name
    loose = pa.schema([pa.field(name, schema_field.type, nullable=True)])
    if columns_to_arrow({name: values}, len(values), loose) is None:
        odd = [v for v in values if v is not None]
        kinds = sorted({_json_type(v) for v in odd})
        example = next((v for v in odd if _json_type(v) != declared), odd[0] if odd else None)
        return f"`{name}` is {'/'.join(kinds)} (e.g. {example!r:.40}), declared {declared}"
    nulls = sum(1 for v in values if v is None)
    if nulls and not schema_field.nullable:
        return f"`{name}` is null in {nulls} of {len(values)} rows (a key column)"
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "text"
    if isinstance(value, date):
        return "date"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _names(columns: Iterable[str]) -> str:
    return ", ".join(f"`{c}`" for c in columns)


def probe_call(calls: List[Call], day: date) -> Optional[Call]:
    """The call of a plan to send: the first whose window holds ``day`` (else the first)."""
    for call in calls:
        if call.window.start <= day < call.window.end:
            return call
    return calls[0] if calls else None


# ---------------------------------------------------------------- recording transport


class RecordingTransport(httpx.BaseTransport):
    """Hands every request to ``inner`` and keeps each exchange (paths relative to the base
    URL, without the Authorization header)."""

    def __init__(self, inner: httpx.BaseTransport, base_url: str) -> None:
        self.inner = inner
        self.prefix = urlsplit(base_url).path.rstrip("/")
        self.exchanges: List[Exchange] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        try:
            content = response.read()
        finally:
            response.close()
        path = request.url.path
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix) :]
        exchange = Exchange(
            method=request.method,
            path=path,
            params=dict(request.url.params.multi_items()),
            body=_json_or_text(request.content) if request.content else None,
            tz_offset=request.headers.get("x-tz-offset"),
            status=response.status_code,
            response=_json_or_text(content) if content else None,
        )
        with self._lock:
            self.exchanges.append(exchange)
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code, headers=headers, content=content, request=request
        )

    def close(self) -> None:
        """Leaves ``inner`` open: it is shared by every key's client (``run_check`` closes
        the one it made)."""


def _json_or_text(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


def _request_key(method: str, path: str, params: Mapping[str, Any], body: Any) -> Tuple[str, ...]:
    return (
        method.upper(),
        "/" + path.strip("/") + "/",
        json.dumps({k: str(v) for k, v in params.items()}, sort_keys=True),
        json.dumps(body, sort_keys=True),
    )


# ---------------------------------------------------------------- probing one org


class OrgCheck:
    """Probes every endpoint of one API key's org, printing one line per endpoint."""

    def __init__(
        self,
        config: SourceConfig,
        settings: Mapping[str, Any],
        recorder: RecordingTransport,
        today: date,
        emit: Callable[[str], None],
    ) -> None:
        self.config = config
        self.settings = settings
        self.recorder = recorder
        self.today = today
        self.yesterday = today - timedelta(days=1)
        self.emit = emit
        self.probes: List[Probe] = []
        self.org: Optional[OrgContext] = None
        self.failed: Set[str] = set()

    @property
    def org_id(self) -> str:
        return self.org.org_id if self.org is not None else ""

    def probe(self, name: str, endpoint: str, run: Callable[[Probe], None]) -> Probe:
        """Runs one probe; Close's refusals and unreadable answers become its verdict."""
        probe = Probe(name, endpoint, self.org_id)
        start = len(self.recorder.exchanges)
        try:
            run(probe)
        except CloseAPIError as exc:
            _refused(probe, exc)
        except UnexpectedResponseError as exc:
            probe.outcome, probe.detail = DIFFERS, str(exc)
        except CloseConfigError as exc:
            probe.outcome, probe.detail = BAD_CONFIG, str(exc)
        probe.org_id = probe.org_id or self.org_id
        probe.exchanges = self.recorder.exchanges[start:]
        if probe.status is None and probe.exchanges:
            probe.status = probe.exchanges[-1].status
        if not probe.passed:
            self.failed.add(name)
        self.probes.append(probe)
        self.emit(probe.line())
        return probe

    def needs(self, probe: Probe, *names: str) -> bool:
        """Marks ``probe`` not probed when a probe it depends on failed."""
        failed = [n for n in names if n in self.failed]
        if failed:
            probe.outcome = NOT_PROBED
            probe.detail = f"needs {', '.join(failed)}, which did not pass"
        return not failed

    def run(self, seen: Set[str]) -> List[Probe]:
        """Every probe of the org, in the order the loader needs their answers; an org in
        ``seen`` (read with an earlier key) is not probed again, as the loader reads it once."""
        me = self.probe("me", "GET /me/", partial(self._me, seen))
        if not me.passed or self.org is None or self.org.org_id in seen:
            return self.probes
        seen.add(self.org.org_id)
        self.probe("organization", f"GET {ORGANIZATION_PATH}", self._organization)
        # opportunity_statuses and the funnels read the pipelines: probe them first
        for listing in sorted(LISTINGS, key=lambda item: item.table != "pipelines"):
            self.probe(listing.table, listing.endpoint, partial(self._listing, listing))
        for report in REPORTS:
            queries: Sequence[Optional[Dict[str, Any]]] = (
                self.config.custom_reports if report.per_query else (None,)
            )
            for query in queries:
                name = report.name if query is None else f"{report.name}:{query['name']}"
                self.probe(name, report.endpoint, partial(self._report, report, query))
        return self.probes

    def _me(self, seen: Set[str], probe: Probe) -> None:
        client_kwargs = {
            "transport": self.recorder,
            "max_rps": self.settings.get("max_rps"),
            **(self.settings.get("client_options") or {}),
        }
        base_url = str(self.settings.get("base_url"))
        # Explorer fields are checked per query (``_explorer_fields``), not all at once
        config = replace(self.config, custom_reports=())
        (self.org,) = connect(config, base_url, RunLog(), Stop(), client_kwargs)
        probe.org_id = self.org.org_id
        probe.detail = f"organization {self.org.org_id}"
        if self.org.org_id in seen:
            probe.detail += ", already checked with another key (the loader reads it once)"

    def _organization(self, probe: Probe) -> None:
        assert self.org is not None
        response = self.org.client.get(ORGANIZATION_PATH.format(org_id=self.org.org_id))
        if not isinstance(response, dict):
            raise UnexpectedResponseError(f"expected a JSON object, got {response!r:.80}")
        absent: Set[str] = set()
        active_user_ids(_Watched(response, absent))  # users.is_active comes from memberships
        self.org.organization = response  # the users listing reads it
        if absent:
            probe.outcome, probe.detail = DIFFERS, "; ".join(absent_keys(absent))

    def _listing(self, listing: Listing, probe: Probe) -> None:
        assert self.org is not None
        if listing.table == "users" and not self.needs(probe, "organization"):
            return
        if listing.table == "opportunity_statuses" and not self.needs(probe, "pipelines"):
            return
        start = len(self.recorder.exchanges)
        rows: List[Dict[str, Any]] = next(iter(listing.rows(self.org)), [])
        probe.parts = {listing.table: rows}
        differences = [
            "no `data` list in Close's answer to a paged request (the loader reads it)"
            for exchange in self.recorder.exchanges[start:]
            if "_limit" in exchange.params
            and 200 <= exchange.status < 300
            and not (isinstance(exchange.response, dict) and "data" in exchange.response)
        ][:1]
        found, notes = table_differences(listing.table, rows, arrow_schema(listing.table))
        _verdict_of(probe, differences + found, notes)

    def _report(self, report: Report, query: Optional[Dict[str, Any]], probe: Probe) -> None:
        org = self.org
        assert org is not None
        if report.with_metrics and not self.needs(probe, "activity_metrics"):
            return
        if report.name.startswith("funnel_") and not self.needs(probe, "pipelines"):
            return
        if query is not None and not self._explorer_fields(probe, query):
            return
        metric_keys = org.metric_keys if report.with_metrics else ()
        schemas = {t: arrow_schema(t, metric_keys) for t in report.tables}
        config = self.config
        scope = Scope(org, ALL, config.timezone, config.metrics_chunk_size,
                      config.overview_max_days, query, schemas)  # fmt: skip
        calls = report.plan(Window(self.yesterday, self.today), scope, self.today)
        call = probe_call(calls, self.yesterday)
        if call is None:
            probe.detail = "nothing to read: the loader plans no call for this org"
            return
        probe.context = {"call": _call_json(call), "query": query}
        responses = [org.client.send(request) for request in report.requests(call, scope)]
        differences, notes, parts = report_differences(report, responses, call, scope)
        probe.parts = parts
        window = f"{call.window}" + (
            f" {call.pipeline_id} {call.cohort_type}" if call.pipeline_id else ""
        )
        _verdict_of(probe, differences, notes, window)

    def _explorer_fields(self, probe: Probe, query: Mapping[str, Any]) -> bool:
        """The loader's field check of an Explorer query (before any Explorer request)."""
        assert self.org is not None
        if "custom_report_fields" in self.failed:
            return True  # the loader warns and sends the query unchecked
        rows = custom_field_rows(self.org.custom_fields, self.org.org_id)
        self.org.explorer_field_types = {str(r["name"]): str(r.get("type") or "") for r in rows}
        try:
            check_explorer_fields([query], list(self.org.explorer_field_types), self.org.org_id)
        except CloseConfigError as exc:
            probe.outcome, probe.detail = BAD_CONFIG, f"not sent: {exc}"
            return False
        return True


def _verdict_of(probe: Probe, differences: List[str], notes: List[str], window: str = "") -> None:
    if differences:
        probe.outcome, probe.detail = DIFFERS, "; ".join(differences)
        return
    probe.detail = "; ".join(([window] if window else []) + notes)


def _refused(probe: Probe, exc: CloseAPIError) -> None:
    probe.status = exc.status
    if isinstance(exc, (CloseRetryError, CloseUnavailableError)) or exc.status is None:
        probe.outcome, probe.detail = FAILED, str(exc)
        return
    if 200 <= exc.status < 300:
        probe.outcome, probe.detail = DIFFERS, str(exc)
        return
    said = "; ".join(exc.errors + [f"{k}: {v}" for k, v in exc.field_errors.items()])
    hint = REFUSAL_HINTS.get(exc.status, f"HTTP {exc.status}")
    probe.outcome = REFUSED
    probe.detail = f"{said} ({hint})" if said else f"{exc} ({hint})"


def _call_json(call: Call) -> Dict[str, Any]:
    return {
        "window_start": call.window.start.isoformat(),
        "window_end": call.window.end.isoformat(),
        "grain": call.grain,
        "pipeline_id": call.pipeline_id,
        "cohort_type": call.cohort_type,
    }


# ---------------------------------------------------------------- the whole check


def run_check(
    settings: Mapping[str, Any],
    *,
    emit: Callable[[str], None] = _print,
    record: Optional[Path] = None,
    transport: Optional[httpx.BaseTransport] = None,
) -> List[Probe]:
    """Probes every endpoint of every configured key's org (``settings`` as from
    ``resolve_settings``); with ``record``, writes the exchanges there, redacted.

    Raises:
        CloseConfigError: A setting is invalid (before any request).
    """
    config = check_config(
        api_key=settings.get("api_key"),
        api_keys=settings.get("api_keys"),
        timezone=settings.get("timezone") or "UTC",
        start_date=settings.get("start_date"),
        end_date=None,
        lookback_days=settings.get("lookback_days", 3),
        refresh_days=settings.get("refresh_days"),
        force_refresh_days=None,
        segments=settings.get("segments"),
        custom_reports=settings.get("custom_reports"),
        overview_max_days=settings.get("overview_max_days", 31),
        metrics_chunk_size=settings.get("metrics_chunk_size", 100),
        workers=settings.get("workers", 1),
    )
    for report in REPORTS:
        segments_for(report, config.segments)
    given = settings.get("today")
    today = local_today(config.timezone) if given is None else date.fromisoformat(str(given))
    given_transport = transport or settings.get("transport")
    inner = given_transport or httpx.HTTPTransport()
    base_url = str(settings.get("base_url"))
    day = Window(today - timedelta(days=1), today)
    emit(
        f"close-pipeline check: {base_url}, timezone {config.timezone}; day reports read "
        f"{day.start}, month reports {whole_months(day, today)}"
    )
    checks: List[OrgCheck] = []
    seen: Set[str] = set()
    for number, key in enumerate(config.api_keys, start=1):
        if len(config.api_keys) > 1:
            emit(f"API key {number} of {len(config.api_keys)}:")
        recorder = RecordingTransport(inner, base_url)
        check = OrgCheck(replace(config, api_keys=(key,)), settings, recorder, today, emit)
        try:
            check.run(seen)
        finally:
            if check.org is not None:
                check.org.client.close()
        checks.append(check)
    if given_transport is None:
        inner.close()
    if record is not None:
        secrets = tuple(config.api_keys) + tuple(
            base64.b64encode(f"{k}:".encode()).decode() for k in config.api_keys
        )
        write_records(record, checks, today, config, secrets)
    return [p for check in checks for p in check.probes]


# ---------------------------------------------------------------- recording and replay


def write_records(
    directory: Path,
    checks: Sequence[OrgCheck],
    today: date,
    config: SourceConfig,
    secrets: Tuple[str, ...],
) -> List[Path]:
    """Writes each probe's exchanges to ``directory`` (a folder per org when there are
    several), redacted, with a ``check.json`` manifest per org for ``replay``."""
    people = person_names(e.response for check in checks for p in check.probes for e in p.exchanges)
    written: List[Path] = []
    orgs: Set[str] = set()
    for number, check in enumerate(checks, start=1):
        org = check.org_id or f"key_{number}"
        if not check.probes or org in orgs:
            continue  # a second key of an org already recorded
        orgs.add(org)
        folder = directory
        if len(checks) > 1:
            folder = directory / org
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for probe in check.probes:
            document = {
                "name": probe.name,
                "endpoint": probe.endpoint,
                "org_id": probe.org_id,
                "outcome": probe.outcome,
                "status": probe.status,
                "detail": probe.detail,
                **probe.context,
                "exchanges": [vars(e) for e in probe.exchanges],
            }
            path = folder / f"{probe.name.replace(':', '.')}.json"
            _write_json(path, redact_document(document, secrets, people))
            files.append(path.name)
            written.append(path)
        manifest = {
            "today": today.isoformat(),
            "timezone": config.timezone,
            "metrics_chunk_size": config.metrics_chunk_size,
            "overview_max_days": config.overview_max_days,
            "custom_reports": list(config.custom_reports),
            "org_id": check.org_id,
            "files": files,
        }
        _write_json(folder / MANIFEST, redact_document(manifest, secrets, people))
    return written


def _write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")


def person_names(responses: Iterable[Any]) -> Set[str]:
    """Every name a person field of the answers holds (redacted wherever else it occurs)."""
    names: Set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                name = str(key).lower()
                if (name in NAME_FIELDS or name.endswith(NAME_SUFFIXES)) and isinstance(item, str):
                    names.update(word for word in re.findall(r"\w+", item) if len(word) > 1)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for response in responses:
        walk(response)
    return names


def redact_document(value: Any, secrets: Tuple[str, ...], names: Iterable[str] = ()) -> Any:
    """``value`` without the API key, person fields, emails and the words of ``names``."""
    pattern = (
        re.compile(
            r"\b(?:" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")\b"
        )
        if names
        else None
    )

    def text(item: str) -> str:
        item = EMAIL.sub(REDACTED, item)
        return pattern.sub(REDACTED, item) if pattern is not None else item

    def walk(item: Any, key: str = "") -> Any:
        if isinstance(item, dict):
            return {k: walk(v, str(k)) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, key) for v in item]
        if isinstance(item, str):
            if item and _is_person_field(key):
                return REDACTED
            return text(item)
        return item

    return walk(redact(value, secrets))


PERSON_SUFFIXES = ("first_name", "last_name", "full_name", "display_name", "_email")


def _is_person_field(key: str) -> bool:
    name = key.lower()
    return name in PERSON_FIELDS or name in ("email", "emails") or name.endswith(PERSON_SUFFIXES)


def replay(directory: Path, *, emit: Callable[[str], None] = _print) -> List[Probe]:
    """Checks answers saved with ``--record``: the same requests are sent (same day, zone and
    Explorer queries, from ``check.json``) and answered from the files, through the loader's
    own client and reshapers.

    Raises:
        CloseConfigError: ``directory`` holds no recorded check.
    """
    manifests = (
        [directory / MANIFEST]
        if (directory / MANIFEST).is_file()
        else sorted(directory.glob(f"*/{MANIFEST}"))
    )
    if not manifests:
        raise CloseConfigError(
            f"No recorded check in {directory} (no {MANIFEST}): record one with "
            "`close-pipeline check --record DIR`."
        )
    probes: List[Probe] = []
    for manifest_path in manifests:
        manifest = json.loads(manifest_path.read_text())
        answers: Dict[Tuple[str, ...], Tuple[int, Any]] = {}
        for name in manifest["files"]:
            document = json.loads((manifest_path.parent / name).read_text())
            for exchange in document.get("exchanges", []):
                key = _request_key(
                    exchange["method"], exchange["path"], exchange["params"], exchange["body"]
                )
                answers[key] = (int(exchange["status"]), exchange["response"])
        settings = {
            "api_key": "replay",
            "base_url": "http://recorded.invalid",
            "timezone": manifest["timezone"],
            "today": manifest["today"],
            "custom_reports": manifest["custom_reports"],
            "metrics_chunk_size": manifest["metrics_chunk_size"],
            "overview_max_days": manifest["overview_max_days"],
            "client_options": {"max_attempts": 1},
        }
        emit(f"replaying {manifest_path.parent} (recorded for {manifest['today']})")
        probes += run_check(settings, emit=emit, transport=_answering(answers))
    return probes


def _answering(answers: Mapping[Tuple[str, ...], Tuple[int, Any]]) -> httpx.MockTransport:
    """A transport answering each request with its recorded answer (404 if none)."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = _json_or_text(request.content) if request.content else None
        key = _request_key(
            request.method, request.url.path, dict(request.url.params.multi_items()), body
        )
        if key not in answers:
            return httpx.Response(404, json={"error": f"not recorded: {key[0]} {key[1]}"})
        status, response = answers[key]
        if isinstance(response, str):
            return httpx.Response(status, text=response)
        return httpx.Response(status, json=response)

    return httpx.MockTransport(handle)
