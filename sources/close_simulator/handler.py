"""``CloseSimulator``: routes an ``httpx.Request`` to a report and answers like Close.

It authenticates (HTTP Basic, API key as user name, empty password), applies the knobs
(latency, rate limit, refused endpoints, faults), validates parameters with Close's error
shapes, computes the report from the organization's events as of the simulator's now
(``reports`` / ``explorer``), answers JSON or, where Close documents it, CSV, and records
every request in ``request_log`` and the counters of ``stats()``. The same object serves
in-process (``transport()``, an ``httpx.MockTransport``) and over real HTTP
(``server.serve``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Union

import httpx

from . import reports, resources
from .csvout import CSV_MEDIA_TYPE, CSV_RENDERERS, wants_csv
from .explorer import ExplorerError, custom_fields, custom_report
from .faults import FAULT_KINDS, RATE_WINDOW_SECONDS, FaultInjector, RateDecision, RateLimiter
from .index import LeadFilter, warm_up
from .metrics import METRIC_BY_KEY
from .org import INDUSTRIES, LEAD_SOURCES, Org, generate_org, iso_utc
from .timeutil import (
    DAY,
    RELATIVE_RANGES,
    Instant,
    TimeParseError,
    local_date,
    local_midnight,
    parse_instant,
    parse_tz_offset,
    relative_range,
    to_epoch,
)

JSON = dict[str, Any]
API_PREFIX = "/api/v1"
STATS_PATH = "/__simulator__/stats"
NOW_PATH = "/__simulator__/now"
DEFAULT_BASE_URL = "https://api.close.com/api/v1"
MAX_LIMIT = 200
DEFAULT_LIMIT = 100


class DroppedConnection(Exception):
    """Fault injection: the connection is closed without a response."""


class ApiError(Exception):
    """A non-2xx answer: HTTP ``status`` with a JSON ``body``."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def validation_error(field_errors: Mapping[str, str], errors: Sequence[str] = ()) -> ApiError:
    """Close's 400: ``{"errors": [...], "field-errors": {...}}``."""
    return ApiError(400, {"errors": list(errors), "field-errors": dict(field_errors)})


def not_found(message: str = "Not found.") -> ApiError:
    """Close's 404 body."""
    return ApiError(404, {"error": message})


@dataclass
class RequestRecord:
    """One request as the simulator saw it (the ``Authorization`` header is never kept)."""

    method: str
    path: str
    params: dict[str, str]
    json: Any
    headers: dict[str, str]
    status: int
    """HTTP status answered; 0 for a dropped connection."""
    timestamp: float
    org_id: str | None = None
    fault: str | None = None
    duration_ms: float = 0.0


NowSpec = Union[Instant, Callable[[], Instant], None]
"""``now`` of a simulator: an instant, a callable giving one per request, or None."""

REFUSAL_MESSAGES: dict[int, str] = {
    400: "This request is not supported.",
    401: "Unauthorized",
    402: "Your plan's limit has been reached for this feature. Upgrade your plan to continue.",
    403: "This report is not available on your plan.",
    404: "The requested URL was not found on the server.",
    405: "Method not allowed.",
    429: "API call count exceeded for this 1 second window",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
"""Default message of a refused endpoint, by status (Close-like; Close documents the codes,
not these texts)."""


def refusal_body(status: int, message: str) -> JSON:
    """Close's error body for a refused request (validation shape for 400)."""
    if status == 400:
        return {"errors": [message], "field-errors": {}}
    return {"error": message}


def _refusals(refuse: Mapping[str, Any] | None) -> dict[str, tuple[int, str]]:
    """Normalizes ``{path prefix: status | (status, message)}`` (prefixes relative to
    ``/api/v1``; a leading ``/api/v1`` is accepted)."""
    result: dict[str, tuple[int, str]] = {}
    for raw_prefix, spec in (refuse or {}).items():
        prefix = "/" + str(raw_prefix).strip().lstrip("/")
        if prefix.startswith(API_PREFIX + "/"):
            prefix = prefix[len(API_PREFIX) :]
        if isinstance(spec, tuple | list):
            status, message = int(spec[0]), str(spec[1])
        else:
            status = int(spec)
            message = REFUSAL_MESSAGES.get(status, "Request refused.")
        if not 400 <= status <= 599:
            raise ValueError(f"refuse: {raw_prefix!r} must map to a 4xx/5xx status, got {status}")
        result[prefix] = (status, message)
    return result


@dataclass
class _Context:
    org: Org
    key: str
    offset: int
    params: dict[str, str]
    body: Any
    match: re.Match[str]
    now: int
    """Default end of ranges ("now" in the request's zone)."""
    until: int
    """Exclusive bound of the visible events (now + 1 s)."""


Route = tuple[str, re.Pattern[str], str, Callable[["CloseSimulator", _Context], JSON]]


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


class CloseSimulator:
    """An embedded Close API answering from synthetic organizations' events.

    Args:
        org: The organization served under the key ``demo`` (generated with seed 1, small
            scale, when neither ``org`` nor ``api_keys`` is given); a mapping here is taken
            as ``api_keys``.
        api_keys: API key -> organization; several keys may share one organization.
        rate_limit: Requests per second per key (burst = rate; organization = 3×); ``None``
            disables rate limiting and the ``RateLimit`` header.
        latency_ms: Added latency per request (through ``sleep``).
        fault_rate: Fraction of requests that get an injected fault.
        fault_seed: Seed of the fault draws.
        fault_kinds: Which faults to inject (subset of ``500 502 503 drop truncate``).
        clock: Monotonic seconds for the rate limiter.
        sleep: Used for latency; inject a fake one in tests.
        wall_clock: Timestamps of ``request_log`` records.
        now: The simulator's "now" (see ``advance_to``): an instant, or a callable giving
            one per request (e.g. ``time.time``). ``None`` (default): the start of the day
            after each organization's anchor, as before; events after it are invisible.
        refuse: ``{path prefix: status}`` or ``{path prefix: (status, message)}``: requests
            under a prefix (relative to ``/api/v1``, e.g. ``"/report/funnel/"``) are answered
            with that status and a Close-like error body after authentication and the rate
            limit (e.g. ``403`` "This report is not available on your plan."). The longest
            matching prefix wins; ``simulator.refuse`` may be edited between requests.
    """

    def __init__(
        self,
        org: Org | Mapping[str, Org] | None = None,
        *,
        api_keys: Mapping[str, Org] | None = None,
        rate_limit: float | None = None,
        latency_ms: float = 0.0,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        fault_kinds: Sequence[str] = FAULT_KINDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        now: NowSpec = None,
        refuse: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(org, Mapping):
            if api_keys is not None:
                raise ValueError("pass either a key -> org mapping or api_keys, not both")
            api_keys, org = org, None
        if api_keys is None:
            api_keys = {"demo": org if org is not None else generate_org()}
        if not api_keys:
            raise ValueError("api_keys must name at least one key")
        self.api_keys: dict[str, Org] = dict(api_keys)
        self.latency_ms = float(latency_ms)
        self.rate_limiter = RateLimiter(rate_limit, clock) if rate_limit else None
        self.faults = FaultInjector(fault_rate, fault_seed, fault_kinds)
        self.sleep = sleep
        self.wall_clock = wall_clock
        self.request_log: list[RequestRecord] = []
        self.refuse: dict[str, tuple[int, str]] = _refusals(refuse)
        self._now_spec: NowSpec = None
        if now is not None:
            self.advance_to(now)
        self._lock = threading.Lock()
        self._counters: Counter[str] = Counter()
        self._by_status: Counter[str] = Counter()
        self._by_endpoint: Counter[str] = Counter()
        self._by_fault: Counter[str] = Counter()
        self._by_org: Counter[str] = Counter()

    # ------------------------------------------------------------ public helpers

    @property
    def org(self) -> Org:
        """The organization of the first API key."""
        return next(iter(self.api_keys.values()))

    @property
    def orgs(self) -> list[Org]:
        """Distinct organizations served, in key order."""
        seen: dict[str, Org] = {}
        for org in self.api_keys.values():
            seen.setdefault(org.id, org)
        return list(seen.values())

    # ------------------------------------------------------------ the clock

    @property
    def now(self) -> int | None:
        """The current now (epoch seconds), or None for the default (the start of the day
        after each organization's anchor)."""
        spec = self._now_spec
        if spec is None:
            return None
        return to_epoch(spec() if callable(spec) else spec)

    def advance_to(self, when: NowSpec) -> int | None:
        """Sets now: a date (its 00:00 UTC: the days before it are complete), a datetime
        (naive = UTC), epoch seconds, an ISO string, a callable returning one of those per
        request, or None (back to the default). Every report then answers as of that
        instant: only events at or before it count. Moving back in time is allowed.

        Returns:
            The new now (epoch seconds), or None.
        """
        if when is not None and not callable(when):
            to_epoch(when)  # validate now, not at the next request
        self._now_spec = when
        return self.now

    def advance(self, days: float = 0, hours: float = 0, seconds: float = 0) -> int:
        """Moves now forward (from the default now of the first organization when unset).

        Returns:
            The new now (epoch seconds).
        """
        current = self.now
        if current is None:
            current = self.org.history_end
        target = current + int(days * 86_400 + hours * 3_600 + seconds)
        self._now_spec = target
        return target

    def until(self, org: Org) -> int:
        """Exclusive bound of ``org``'s visible events: now + 1 s (default: the end of its
        history, ``history_end``)."""
        now = self.now
        return org.history_end if now is None else now + 1

    def warm_up(self) -> None:
        """Builds every organization's report indexes now (first requests are then fast)."""
        for org in self.orgs:
            warm_up(org)

    def transport(self) -> httpx.MockTransport:
        """An ``httpx.MockTransport`` answering with this simulator (dropped connections
        raise ``httpx.RemoteProtocolError``)."""

        def handler(request: httpx.Request) -> httpx.Response:
            try:
                return self.handle(request)
            except DroppedConnection as exc:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from exc

        return httpx.MockTransport(handler)

    def client(
        self, api_key: str = "demo", base_url: str = DEFAULT_BASE_URL, **kwargs: Any
    ) -> httpx.Client:
        """An ``httpx.Client`` wired to ``transport()`` with Basic auth for ``api_key``."""
        return httpx.Client(
            base_url=base_url, auth=(api_key, ""), transport=self.transport(), **kwargs
        )

    def stats(self) -> JSON:
        """Counters: requests, by status, 429s, faults injected (also served, without auth,
        at ``GET /__simulator__/stats``)."""
        with self._lock:
            return {
                "requests": self._counters["requests"],
                "by_status": dict(sorted(self._by_status.items())),
                "rate_limited": self._counters["rate_limited"],
                "refused": self._counters["refused"],
                "faults_injected": self._counters["faults"],
                "faults_by_kind": dict(sorted(self._by_fault.items())),
                "dropped": self._by_fault["drop"],
                "by_endpoint": dict(sorted(self._by_endpoint.items())),
                "by_org": dict(sorted(self._by_org.items())),
            }

    def reset_stats(self) -> None:
        """Clears ``request_log`` and the counters."""
        with self._lock:
            self.request_log.clear()
            for counter in (
                self._counters,
                self._by_status,
                self._by_endpoint,
                self._by_fault,
                self._by_org,
            ):
                counter.clear()

    # ------------------------------------------------------------ the request cycle

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answers one request.

        Raises:
            DroppedConnection: An injected dropped connection (the caller closes the socket
                or raises a transport error).
        """
        started = time.perf_counter()
        path = request.url.path
        control = path.rstrip("/").removeprefix(API_PREFIX)
        if control == STATS_PATH:
            return _json_response(200, self.stats())
        if control == NOW_PATH:
            return self._now_control(request)
        if self.latency_ms > 0:
            self.sleep(self.latency_ms / 1000.0)
        params = {k: v for k, v in request.url.params.multi_items()}
        body: Any = None
        raw_body = request.content
        method = request.method.upper()
        record = RequestRecord(
            method=method,
            path=path,
            params=params,
            json=None,
            headers={
                k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"
            },
            status=0,
            timestamp=self.wall_clock(),
        )
        endpoint = "unknown"
        decision: RateDecision | None = None
        fault: str | None = None
        try:
            if raw_body:
                try:
                    body = json.loads(raw_body)
                except ValueError:
                    body = _INVALID
                record.json = None if body is _INVALID else body
            key = _api_key(request.headers.get("authorization"))
            org = self.api_keys.get(key) if key is not None else None
            if org is None or key is None:
                if self.rate_limiter is not None:
                    decision = self.rate_limiter.idle()
                raise ApiError(401, {"error": "Unauthorized"})
            record.org_id = org.id
            if self.rate_limiter is not None:
                decision = self.rate_limiter.check(key, org.id)
                if not decision.allowed:
                    raise ApiError(429, _rate_limit_body(decision))
            refusal = self._refusal(path)
            if refusal is not None:
                endpoint = self._endpoint_name(method, path)
                with self._lock:
                    self._counters["refused"] += 1
                raise ApiError(refusal[0], refusal_body(*refusal))
            fault = self.faults.draw()
            if fault == "drop":
                raise DroppedConnection()
            if fault in ("500", "502", "503"):
                raise ApiError(int(fault), _fault_body(int(fault)))
            if (
                method == "POST"
                and request.headers.get("x-http-method-override", "").upper() == "GET"
            ):
                method = "GET"
                if isinstance(body, dict) and isinstance(body.get("_params"), dict):
                    params.update({k: str(v) for k, v in body["_params"].items()})
                body = None
            endpoint, fn, match = self._resolve(method, path)
            if body is _INVALID:
                raise ApiError(400, {"error": "The request contains invalid JSON."})
            try:
                offset = parse_tz_offset(request.headers.get("x-tz-offset"))
            except TimeParseError as exc:
                raise validation_error({}, [str(exc)]) from exc
            now = self.now
            ctx = _Context(
                org,
                key,
                offset,
                params,
                body,
                match,
                now=_default_now(org, offset) if now is None else now,
                until=org.history_end if now is None else now + 1,
            )
            payload = fn(self, ctx)
            renderer = CSV_RENDERERS.get(endpoint)
            if renderer is not None and wants_csv(request.headers.get("accept")):
                response = httpx.Response(
                    200, content=renderer(payload, org), headers={"content-type": CSV_MEDIA_TYPE}
                )
            else:
                response = _json_response(200, payload)
            if fault == "truncate":
                cut = max(1, len(response.content) // 2)
                response = httpx.Response(
                    200,
                    content=response.content[:cut],
                    headers={"content-type": response.headers["content-type"]},
                )
        except ApiError as exc:
            response = _json_response(exc.status, exc.body)
            if exc.status == 429:
                retry = decision.retry_after if decision is not None else 1
                response.headers["Retry-After"] = str(retry)
        except DroppedConnection:
            self._record(record, 0, endpoint, fault, started)
            raise
        if decision is not None:
            response.headers["RateLimit"] = decision.header()
        self._record(record, response.status_code, endpoint, fault, started)
        return response

    def _record(
        self,
        record: RequestRecord,
        status: int,
        endpoint: str,
        fault: str | None,
        started: float,
    ) -> None:
        record.status = status
        record.fault = fault
        record.duration_ms = (time.perf_counter() - started) * 1000.0
        with self._lock:
            self.request_log.append(record)
            self._counters["requests"] += 1
            self._by_status[str(status) if status else "dropped"] += 1
            self._by_endpoint[endpoint] += 1
            if record.org_id:
                self._by_org[record.org_id] += 1
            if status == 429:
                self._counters["rate_limited"] += 1
            if fault is not None:
                self._counters["faults"] += 1
                self._by_fault[fault] += 1

    def _refusal(self, path: str) -> tuple[int, str] | None:
        if not self.refuse or not path.startswith(API_PREFIX + "/"):
            return None
        local = path[len(API_PREFIX) :]
        best: str | None = None
        for prefix in self.refuse:
            if local.startswith(prefix) and (best is None or len(prefix) > len(best)):
                best = prefix
        return None if best is None else self.refuse[best]

    def _endpoint_name(self, method: str, path: str) -> str:
        try:
            return self._resolve(method, path)[0]
        except ApiError:
            return "unknown"

    def _now_control(self, request: httpx.Request) -> httpx.Response:
        """``GET /__simulator__/now`` reads now, ``POST`` ``{"now": <instant> | null}`` sets
        it (no auth, not counted): for a simulator running as a separate process."""
        if request.method.upper() == "POST":
            try:
                body = json.loads(request.content or b"{}")
                self.advance_to(body.get("now") if isinstance(body, dict) else None)
            except (ValueError, TypeError, AttributeError) as exc:
                return _json_response(400, {"error": f"Invalid now: {exc}"})
        now = self.now
        return _json_response(
            200,
            {
                "now": None if now is None else iso_utc(now),
                "now_epoch": now,
                "orgs": {
                    o.id: {
                        "until": iso_utc(self.until(o)),
                        "generated_until": iso_utc(o.generated_until),
                    }
                    for o in self.orgs
                },
            },
        )

    @staticmethod
    def _resolve(
        method: str, path: str
    ) -> tuple[str, Callable[[CloseSimulator, _Context], JSON], re.Match[str]]:
        if not path.startswith(API_PREFIX + "/"):
            raise not_found("The requested URL was not found on the server.")
        local = path[len(API_PREFIX) :]
        allowed: list[str] = []
        for verb, pattern, name, fn in _ROUTES:
            match = pattern.match(local)
            if match is None:
                continue
            if verb != method:
                allowed.append(verb)
                continue
            return name, fn, match
        if allowed:
            raise ApiError(405, {"error": "Method not allowed."})
        hint = "" if local.endswith("/") else " (Close API paths end with a slash)"
        raise not_found(f"The requested URL was not found on the server.{hint}")

    # ------------------------------------------------------------ endpoints: objects

    def _me(self, ctx: _Context) -> JSON:
        return _select_fields(resources.me_json(ctx.org), ctx.params)

    def _organization(self, ctx: _Context) -> JSON:
        _check_org(ctx)
        return _select_fields(resources.organization_json(ctx.org, memberships=True), ctx.params)

    def _users(self, ctx: _Context) -> JSON:
        users = list(ctx.org.users)
        order = ctx.params.get("_order_by")
        if order == "last_name,first_name":
            users.sort(key=lambda u: (u.last_name, u.first_name))
        elif order == "first_name,last_name":
            users.sort(key=lambda u: (u.first_name, u.last_name))
        return _page(ctx, [resources.user_json(ctx.org, u) for u in users])

    def _user(self, ctx: _Context) -> JSON:
        for user in ctx.org.users:
            if user.id == ctx.match.group("id"):
                return _select_fields(resources.user_json(ctx.org, user), ctx.params)
        raise not_found("Object not found.")

    def _lead_statuses(self, ctx: _Context) -> JSON:
        org = ctx.org
        items = [
            resources.lead_status_json(org, i)
            for i, s in enumerate(org.lead_statuses)
            if not s.is_deleted
        ]
        return _page(ctx, items)

    def _opportunity_statuses(self, ctx: _Context) -> JSON:
        org = ctx.org
        items = [
            resources.opportunity_status_json(org, org.opportunity_status_index(s))
            for p in org.pipelines
            for s in p.status_ids
        ]
        return _page(ctx, items)

    def _pipelines(self, ctx: _Context) -> JSON:
        return _page(ctx, [resources.pipeline_json(ctx.org, p) for p in ctx.org.pipelines])

    def _groups(self, ctx: _Context) -> JSON:
        return _page(ctx, [resources.group_json(ctx.org, g) for g in ctx.org.groups])

    def _group(self, ctx: _Context) -> JSON:
        for group in ctx.org.groups:
            if group.id == ctx.match.group("id"):
                return _select_fields(resources.group_json(ctx.org, group, True), ctx.params)
        raise not_found("Object not found.")

    def _saved_searches(self, ctx: _Context) -> JSON:
        wanted = {ctx.params.get("type") or "lead"}
        if ctx.params.get("type__in"):
            wanted = {t.strip() for t in ctx.params["type__in"].split(",")}
        items = [resources.saved_search_json(ctx.org, s) for s in ctx.org.saved_searches]
        return _page(ctx, [item for item in items if item["type"] in wanted])

    # ------------------------------------------------------------ endpoints: reports

    def _activity_metrics(self, ctx: _Context) -> JSON:
        return reports.activity_metrics_list()

    def _activity(self, ctx: _Context) -> JSON:
        body = _json_object(ctx.body)
        errors: dict[str, str] = {}
        report_type = body.get("type")
        if report_type is None:
            errors["type"] = "This field is required."
        elif report_type not in ("overview", "comparison"):
            errors["type"] = "Must be one of: overview, comparison."
        metrics = body.get("metrics")
        if metrics is None or metrics == []:
            errors["metrics"] = "This field is required."
        elif not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
            errors["metrics"] = "Must be a list of metric keys."
        else:
            unknown = [m for m in metrics if m not in METRIC_BY_KEY]
            if unknown:
                errors["metrics"] = "Unknown metric(s): " + ", ".join(unknown)
        window = _range(ctx, body, "datetime_range", "relative_range", errors, required=True)
        users = _user_list(ctx.org, body.get("users"), errors, allow_groups=False)
        lead_filter, saved_search_id = _saved_search_query(ctx.org, body.get("query"), errors)
        if errors or window is None:
            raise validation_error(errors, _messages(errors))
        return reports.activity_report(
            ctx.org,
            report_type=str(report_type),
            metric_keys=list(dict.fromkeys(metrics or [])),
            start=window[0],
            end=window[1],
            offset=ctx.offset,
            until=ctx.until,
            users=sorted(users) if users is not None else None,
            lead_filter=lead_filter,
            saved_search_id=saved_search_id,
        )

    def _sent_emails(self, ctx: _Context) -> JSON:
        _check_org(ctx)
        errors: dict[str, str] = {}
        start, end = _date_params(ctx, errors)
        user = None
        if ctx.params.get("user_id"):
            try:
                user = ctx.org.user_index(ctx.params["user_id"])
            except KeyError:
                errors["user_id"] = "User not found."
        if errors:
            raise validation_error(errors, _messages(errors))
        return reports.sent_emails_report(ctx.org, start=start, end=end, until=ctx.until, user=user)

    def _lead_status_report(self, ctx: _Context) -> JSON:
        return self._status_report(ctx, "lead")

    def _opportunity_status_report(self, ctx: _Context) -> JSON:
        return self._status_report(ctx, "opportunity")

    def _status_report(self, ctx: _Context, kind: str) -> JSON:
        _check_org(ctx)
        errors: dict[str, str] = {}
        start, end = _date_params(ctx, errors)
        query, smart_view = ctx.params.get("query"), ctx.params.get("smart_view_id")
        lead_filter: LeadFilter | None = None
        user: int | None = None
        if query and smart_view:
            raise validation_error(
                {"query": "Specify either query or smart_view_id, not both."},
                ["You can specify either query or smart_view_id, but not both."],
            )
        if smart_view:
            lead_filter = LeadFilter.for_search(ctx.org, smart_view)
        elif query:
            lead_filter, user = _status_query(ctx.org, kind, query, errors)
        if kind == "opportunity" and ctx.params.get("user_id"):
            try:
                param_user = ctx.org.user_index(ctx.params["user_id"])
            except KeyError:
                errors["user_id"] = "User not found."
            else:
                if user is not None and user != param_user:
                    errors["user_id"] = "Conflicts with the user in query."
                user = param_user
        if errors:
            raise validation_error(errors, _messages(errors))
        return reports.status_report(
            ctx.org,
            kind,
            start=start,
            end=end,
            offset=ctx.offset,
            until=ctx.until,
            lead_filter=lead_filter,
            user=user,
        )

    def _funnel_totals(self, ctx: _Context) -> JSON:
        return self._funnel(ctx, "totals")

    def _funnel_stages(self, ctx: _Context) -> JSON:
        return self._funnel(ctx, "stages")

    def _funnel(self, ctx: _Context, which: str) -> JSON:
        body = _json_object(ctx.body)
        org = ctx.org
        errors: dict[str, str] = {}
        pipeline_id = body.get("pipeline")
        pipeline: int | None = None
        if not pipeline_id:
            errors["pipeline"] = "This field is required."
        else:
            try:
                pipeline = org.pipeline_index(str(pipeline_id))
            except KeyError:
                errors["pipeline"] = "Pipeline not found."
        cohort_type = body.get("type")
        if cohort_type is None:
            errors["type"] = "This field is required."
        elif cohort_type not in ("created-cohort", "active-stage-cohort"):
            errors["type"] = "Must be one of: created-cohort, active-stage-cohort."
        report = _range(ctx, body, "report_datetime_range", "report_relative_range", errors)
        cohort = _range(ctx, body, "cohort_datetime_range", "cohort_relative_range", errors)
        if cohort_type == "active-stage-cohort" and report is None:
            errors.setdefault(
                "report_datetime_range",
                "Either report_datetime_range or report_relative_range is required.",
            )
        if cohort_type == "created-cohort" and cohort is None:
            errors.setdefault(
                "cohort_datetime_range",
                "Either cohort_datetime_range or cohort_relative_range is required.",
            )
        users = _user_list(org, body.get("users"), errors, allow_groups=True)
        lead_filter, _ = _saved_search_query(org, body.get("query"), errors)
        if not errors:
            report, cohort = _compared(ctx, body, str(cohort_type), report, cohort, errors)
        if errors or pipeline is None:
            raise validation_error(errors, _messages(errors))
        return reports.funnel_report(
            org,
            which,
            pipeline=pipeline,
            cohort_type=str(cohort_type),
            report_range=report,
            cohort_range=cohort,
            until=ctx.until,
            users=users,
            lead_filter=lead_filter,
        )

    def _custom_fields(self, ctx: _Context) -> JSON:
        return custom_fields()

    def _custom(self, ctx: _Context) -> JSON:
        _check_org(ctx)
        try:
            return custom_report(ctx.org, ctx.params, ctx.offset, ctx.now, ctx.until)
        except ExplorerError as exc:
            raise validation_error(exc.field_errors, _messages(exc.field_errors)) from exc


_INVALID = object()

_ROUTES: list[Route] = [
    ("GET", _pattern("/me/"), "me", CloseSimulator._me),
    ("GET", _pattern("/organization/{org_id}/"), "organization", CloseSimulator._organization),
    ("GET", _pattern("/user/"), "user", CloseSimulator._users),
    ("GET", _pattern("/user/{id}/"), "user_detail", CloseSimulator._user),
    ("GET", _pattern("/status/lead/"), "status_lead", CloseSimulator._lead_statuses),
    (
        "GET",
        _pattern("/status/opportunity/"),
        "status_opportunity",
        CloseSimulator._opportunity_statuses,
    ),
    ("GET", _pattern("/pipeline/"), "pipeline", CloseSimulator._pipelines),
    ("GET", _pattern("/group/"), "group", CloseSimulator._groups),
    ("GET", _pattern("/group/{id}/"), "group_detail", CloseSimulator._group),
    ("GET", _pattern("/saved_search/"), "saved_search", CloseSimulator._saved_searches),
    (
        "GET",
        _pattern("/report/activity/metrics/"),
        "report_activity_metrics",
        CloseSimulator._activity_metrics,
    ),
    ("POST", _pattern("/report/activity/"), "report_activity", CloseSimulator._activity),
    (
        "GET",
        _pattern("/report/sent_emails/{org_id}/"),
        "report_sent_emails",
        CloseSimulator._sent_emails,
    ),
    (
        "GET",
        _pattern("/report/statuses/lead/{org_id}/"),
        "report_statuses_lead",
        CloseSimulator._lead_status_report,
    ),
    (
        "GET",
        _pattern("/report/statuses/opportunity/{org_id}/"),
        "report_statuses_opportunity",
        CloseSimulator._opportunity_status_report,
    ),
    (
        "POST",
        _pattern("/report/funnel/opportunity/totals/"),
        "report_funnel_totals",
        CloseSimulator._funnel_totals,
    ),
    (
        "POST",
        _pattern("/report/funnel/opportunity/stages/"),
        "report_funnel_stages",
        CloseSimulator._funnel_stages,
    ),
    (
        "GET",
        _pattern("/report/custom/fields/"),
        "report_custom_fields",
        CloseSimulator._custom_fields,
    ),
    ("GET", _pattern("/report/custom/{org_id}/"), "report_custom", CloseSimulator._custom),
]


# ---------------------------------------------------------------- helpers


def _json_response(status: int, payload: Any) -> httpx.Response:
    content = json.dumps(payload, separators=(",", ":")).encode()
    return httpx.Response(status, content=content, headers={"content-type": "application/json"})


def _api_key(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, _password = decoded.partition(":")
        return user or None
    if scheme.lower() == "bearer":
        return value.strip() or None
    return None


def _rate_limit_body(decision: RateDecision) -> JSON:
    return {
        "error": {
            "message": (f"API call count exceeded for this {RATE_WINDOW_SECONDS} second window"),
            "rate_reset": round(decision.reset, 3),
            "rate_limit": decision.limit,
            "rate_window": RATE_WINDOW_SECONDS,
            "rate_limit_type": decision.limit_type,
        }
    }


def _fault_body(status: int) -> JSON:
    messages = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    return {"error": messages[status]}


def _messages(errors: Mapping[str, str]) -> list[str]:
    return [f"{k}: {v}" for k, v in errors.items()]


def _json_object(body: Any) -> JSON:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise validation_error({}, ["The request body must be a JSON object."])
    return body


def _check_org(ctx: _Context) -> None:
    if ctx.match.group("org_id") != ctx.org.id:
        raise not_found("Organization not found.")


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise validation_error(
            {name: "Input should be a valid integer, unable to parse string as an integer"}
        ) from exc


def _page(ctx: _Context, items: list[JSON]) -> JSON:
    limit = _int_param(ctx.params, "_limit", DEFAULT_LIMIT)
    skip = _int_param(ctx.params, "_skip", 0)
    if limit > MAX_LIMIT:
        raise validation_error({"_limit": f"Input should be less than or equal to {MAX_LIMIT}"})
    if limit < 1:
        raise validation_error({"_limit": "Input should be greater than or equal to 1"})
    if skip < 0:
        raise validation_error({"_skip": "Input should be greater than or equal to 0"})
    page = items[skip : skip + limit]
    return {
        "data": [_select_fields(item, ctx.params) for item in page],
        "has_more": skip + limit < len(items),
    }


def _select_fields(item: JSON, params: Mapping[str, str]) -> JSON:
    fields = params.get("_fields")
    if not fields:
        return item
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    return {k: item[k] for k in wanted if k in item}


def _default_now(org: Org, offset: int) -> int:
    """The default "now": local midnight (in the request's zone) after the last day of
    history."""
    return local_midnight(org.anchor_date + timedelta(days=1), offset)


def _first_day(org: Org, offset: int) -> date:
    return local_date(org.date_created, offset)


def _range(
    ctx: _Context,
    body: JSON,
    absolute: str,
    relative: str,
    errors: dict[str, str],
    *,
    required: bool = False,
) -> tuple[int, int] | None:
    """Parses an ``{absolute: {start, end}}`` xor ``{relative: name}`` pair of fields."""
    has_abs = body.get(absolute) is not None
    has_rel = body.get(relative) is not None
    if has_abs and has_rel:
        errors[relative] = f"Specify either {absolute} or {relative}, not both."
        return None
    if not has_abs and not has_rel:
        if required:
            errors[absolute] = f"Either {absolute} or {relative} needs to be specified."
        return None
    if has_rel:
        name = body[relative]
        if name not in RELATIVE_RANGES:
            errors[relative] = "Must be one of: " + ", ".join(RELATIVE_RANGES) + "."
            return None
        today = ctx.now
        return relative_range(
            name, local_date(today, ctx.offset), ctx.offset, _first_day(ctx.org, ctx.offset)
        )
    value = body[absolute]
    if not isinstance(value, dict) or "start" not in value or "end" not in value:
        errors[absolute] = "Must be an object with start and end."
        return None
    try:
        start = parse_instant(value["start"], ctx.offset)
        end = parse_instant(value["end"], ctx.offset)
    except TimeParseError as exc:
        errors[absolute] = str(exc)
        return None
    if end <= start:
        errors[absolute] = "end must be after start."
        return None
    return start, end


def _date_params(ctx: _Context, errors: dict[str, str]) -> tuple[int, int]:
    """``date_start`` / ``date_end`` (dates = local midnight; end exclusive). Missing start =
    the organization's creation, missing end = now."""
    start = local_midnight(_first_day(ctx.org, ctx.offset), ctx.offset)
    end = ctx.now
    for name in ("date_start", "date_end"):
        raw = ctx.params.get(name)
        if not raw:
            continue
        try:
            value = parse_instant(raw, ctx.offset)
        except TimeParseError as exc:
            errors[name] = str(exc)
            continue
        if name == "date_start":
            start = value
        else:
            end = value
    if "date_start" not in errors and "date_end" not in errors and end <= start:
        errors["date_end"] = "date_end must be after date_start."
    return start, end


def _user_list(
    org: Org, value: Any, errors: dict[str, str], *, allow_groups: bool
) -> set[int] | None:
    if value is None or value == []:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors["users"] = "Must be a list of user ids."
        return None
    found: set[int] = set()
    unknown = []
    groups = {g.id: g for g in org.groups}
    for item in value:
        if allow_groups and item in groups:
            found.update(org.user_index(u) for u in groups[item].member_ids)
            continue
        try:
            found.add(org.user_index(item))
        except KeyError:
            unknown.append(item)
    if unknown:
        errors["users"] = "Unknown user or group id(s): " + ", ".join(unknown)
        return None
    return found


def _saved_search_query(
    org: Org, value: Any, errors: dict[str, str]
) -> tuple[LeadFilter | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict) or value.get("type") != "saved_search":
        errors["query"] = 'Only {"type": "saved_search", "saved_search_id": ...} is supported.'
        return None, None
    saved_search_id = value.get("saved_search_id")
    if not isinstance(saved_search_id, str) or not saved_search_id:
        errors["query"] = "saved_search_id is required."
        return None, None
    return LeadFilter.for_search(org, saved_search_id), saved_search_id


_QUERY_CLAUSE = re.compile(r'^\s*([a-z_]+)\s*:\s*"([^"]*)"\s*$|^\s*([a-z_]+)\s*:\s*(\S+)\s*$')


def _status_query(
    org: Org, kind: str, query: str, errors: dict[str, str]
) -> tuple[LeadFilter | None, int | None]:
    """The supported subset of search queries for status reports: ``*``, ``in:"save_…"``,
    ``source:"…"``, ``industry:"…"`` and (opportunities) ``opportunity_user:"Full Name"`` /
    ``user:"user_…"``, joined by ``and``."""
    lead_filter: LeadFilter | None = None
    user: int | None = None
    if query.strip() == "*":
        return None, None
    for clause in re.split(r"\s+and\s+", query.strip()):
        match = _QUERY_CLAUSE.match(clause)
        if not match:
            errors["query"] = f"Unsupported query: {clause!r}"
            return None, None
        name = match.group(1) or match.group(3)
        value = match.group(2) if match.group(1) else match.group(4)
        if name in ("in", "saved_search"):
            candidate = LeadFilter.for_search(org, value)
        elif name in ("source", "industry"):
            names = LEAD_SOURCES if name == "source" else INDUSTRIES
            if value not in names:
                errors["query"] = f"Unknown {name}: {value!r}"
                return None, None
            candidate = LeadFilter(f"{name}={value}", name, value)
        elif kind == "opportunity" and name in ("opportunity_user", "user"):
            matches = [i for i, u in enumerate(org.users) if value in (u.id, u.full_name)]
            if not matches:
                errors["query"] = f"Unknown user: {value!r}"
                return None, None
            user = matches[0]
            continue
        else:
            errors["query"] = f"Unsupported query field: {name!r}"
            return None, None
        if lead_filter is not None and lead_filter != candidate:
            errors["query"] = "Only one lead condition is supported."
            return None, None
        lead_filter = candidate
    return lead_filter, user


_COMPARED_SHIFTS = {
    "same-days-last-week": ("days", 7),
    "same-days-last-month": ("months", 1),
    "same-days-last-quarter": ("months", 3),
    "same-days-last-year": ("months", 12),
}


def _shift(ts: int, offset: int, unit: str, amount: int) -> int:
    if unit == "days":
        return ts - amount * DAY
    local = ts + offset
    day = date(1970, 1, 1) + timedelta(days=local // DAY)
    index = day.year * 12 + day.month - 1 - amount
    year, month = index // 12, index % 12 + 1
    day_of_month = min(day.day, _days_in_month(year, month))
    shifted = date(year, month, day_of_month)
    return local_midnight(shifted, offset) + local % DAY


def _days_in_month(year: int, month: int) -> int:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return (nxt - timedelta(days=1)).day


def _compared(
    ctx: _Context,
    body: JSON,
    cohort_type: str,
    report: tuple[int, int] | None,
    cohort: tuple[int, int] | None,
    errors: dict[str, str],
) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """Applies ``compared_*``: the response is then the compared report (as Close documents).

    The compared range replaces the report range (active-stage cohorts) or the cohort range
    (created cohorts).
    """
    created = cohort_type == "created-cohort"
    base_abs = "cohort_datetime_range" if created else "report_datetime_range"
    base_rel = "cohort_relative_range" if created else "report_relative_range"
    base = cohort if created else report
    present = [
        k
        for k in ("compared_relative_range", "compared_datetime_range", "compared_custom_range")
        if body.get(k) is not None
    ]
    if not present:
        return report, cohort
    if len(present) > 1:
        errors[present[1]] = "Only one compared_* field may be given."
        return report, cohort
    name = present[0]
    value = body[name]
    replacement: tuple[int, int] | None = None
    if name == "compared_relative_range":
        if body.get(base_rel) is None:
            errors[name] = f"Only allowed together with {base_rel}."
        else:
            replacement = _range(ctx, {base_rel: value}, base_abs, base_rel, errors)
    elif name == "compared_datetime_range":
        if body.get(base_abs) is None or base is None:
            errors[name] = f"Only allowed together with {base_abs}."
        elif value not in _COMPARED_SHIFTS:
            errors[name] = "Must be one of: " + ", ".join(_COMPARED_SHIFTS) + "."
        else:
            unit, amount = _COMPARED_SHIFTS[value]
            replacement = (
                _shift(base[0], ctx.offset, unit, amount),
                _shift(base[1], ctx.offset, unit, amount),
            )
    else:
        replacement = _range(ctx, {"compared_custom_range": value}, name, "_unused", errors)
    if replacement is None:
        return report, cohort
    return (report, replacement) if created else (replacement, cohort)
