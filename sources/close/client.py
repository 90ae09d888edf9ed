"""HTTP client for the Close API: auth, timezone header, retries and paging.

One ``CloseClient`` per API key (per org) is built once in the source and shared by all its
resources and worker threads. It wraps a single ``httpx.Client`` (Basic auth with the key as
user and an empty password), adds a trailing slash to every path, sends ``X-TZ-Offset`` when a
report asks for one, spaces requests through a ``Throttle`` that reads Close's rate-limit
headers, and retries 429 / 5xx / transport errors / truncated JSON with tenacity.
"""

import base64
import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from types import TracebackType
from typing import Any, NoReturn

import httpx
from dlt.common import logger
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from .config import MISSING_KEY_MESSAGE
from .errors import (
    CloseConfigError,
    CloseUnavailableError,
    error_for_response,
    excerpt,
    redact,
    retry_error,
)
from .settings import DEFAULT_BASE_URL, PAGE_LIMIT
from .stats import RequestStats
from .throttle import (
    Throttle,
    parse_rate_limit,
    parse_retry_after,
    positive_wait,
    to_float,
)

try:  # a dlt dependency on CPython
    import orjson
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]

__all__ = [
    "Breaker",
    "Stop",
    "CloseClient",
    "Request",
    "RequestStats",
    "format_tz_offset",
    "parse_json",
]

TZ_OFFSET_HEADER = "X-TZ-Offset"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_CONNECTIONS = 32
"""Connection pool size: room for ~16 worker threads with keep-alive to spare."""
MAX_RETRY_SECONDS = 60.0
"""No retry of a request starts later than this after its first attempt."""
RETRY_WARNING_SECONDS = 5.0
"""At most one retry warning per key in this time (every retry is logged at INFO)."""


def _package_version() -> str:
    try:
        return metadata.version("close-reports")
    except metadata.PackageNotFoundError:
        return "dev"


USER_AGENT = f"close-reports/{_package_version()}"


# ---------------------------------------------------------------- timezone header


def format_tz_offset(hours: float) -> str:
    """The ``X-TZ-Offset`` header value for an offset in hours: ``-5``, ``5.5``, ``0``."""
    rounded = round(hours, 4)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.4f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------- requests and the breaker


@dataclass(frozen=True)
class Request:
    """One call to Close, built by a report's request builder (``reports.py``)."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    body: Any = None
    tz_offset: float | None = None

    @property
    def endpoint(self) -> str:
        """``METHOD /path/`` as errors and the ledger name it."""
        return f"{self.method} {self.path}"


class Stop:
    """Stops every request of a run: when the caller's ``event`` is set (Ctrl-C) or when a
    report fails the whole run (``set(cause)``)."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event or threading.Event()
        self.cause: BaseException | None = None

    def set(self, cause: BaseException | None = None) -> None:
        """Stops the run, ``cause`` being the failure that ended it (None: interrupted)."""
        if self.cause is None:
            self.cause = cause
        self.event.set()

    def is_set(self) -> bool:
        """Whether the run is stopping."""
        return self.event.is_set()


class Breaker:
    """Stops every request of one API key once one has failed for good.

    When a request exhausts its retries (Close down, unreachable, or rate limiting without
    end) the other worker threads of that key would each retry for minutes more; the breaker
    makes them fail at once instead, naming the first failure, and wakes any retry wait. The
    run's ``Stop`` (Ctrl-C, or a report that fails the run) opens every breaker.
    """

    def __init__(self, stop: Stop | None = None) -> None:
        self._tripped = threading.Event()
        self._stop = stop
        self.cause: BaseException | None = None

    def trip(self, cause: BaseException) -> None:
        """Opens the breaker: later requests raise ``CloseUnavailableError``."""
        if not self._tripped.is_set():
            self.cause = cause
            self._tripped.set()

    @property
    def is_open(self) -> bool:
        """Whether requests of this key are refused."""
        return self._tripped.is_set() or bool(self._stop and self._stop.is_set())

    def check(self, endpoint: str) -> None:
        """Raises ``CloseUnavailableError`` when the breaker is open."""
        if not self.is_open:
            return
        cause = self.cause
        if self._stop is not None and self._stop.is_set() and not self._tripped.is_set():
            cause = self._stop.cause
            reason = f"the run failed: {cause}" if cause else "the run was interrupted"
        else:
            reason = f"an earlier request of this key failed for good: {cause}"
        raise CloseUnavailableError(
            f"{endpoint} not sent: {reason}", endpoint=endpoint, status=None
        ) from cause

    def wait(self, seconds: float, sleep: Callable[[float], None] | None = None) -> None:
        """Waits ``seconds`` (with ``sleep`` when given, e.g. a fake clock in tests), or less
        when the breaker opens meanwhile."""
        if sleep is not None:
            sleep(seconds)
        elif self._stop is None:
            self._tripped.wait(seconds)
        else:
            deadline = time.monotonic() + seconds
            while not self.is_open and (left := deadline - time.monotonic()) > 0:
                self._tripped.wait(min(left, 0.25))


# ---------------------------------------------------------------- client


class _RetryableResponse(Exception):
    """An attempt got a response worth retrying (429, 5xx, a 2xx that is not JSON)."""

    def __init__(self, status: int, description: str, wait_hint: float | None, body: Any) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.wait_hint = wait_hint
        self.body = body


class CloseClient:
    """Thread-safe client for one Close API key.

    Attributes:
        base_url: The API root, without a trailing slash.
        throttle: The throttle shared by every request made with this key.
        stats: Request counters (may be shared with other clients).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        transport: httpx.BaseTransport | None = None,
        throttle: Throttle | None = None,
        max_rps: float | None = None,
        max_attempts: int = 8,
        max_retry_seconds: float = MAX_RETRY_SECONDS,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        timeout: float = 60.0,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        stats: RequestStats | None = None,
        rng: random.Random | None = None,
        breaker: Breaker | None = None,
        on_round_trip: Callable[[float], None] | None = None,
    ) -> None:
        """Build the client and its ``httpx.Client``.

        Args:
            api_key: Close API key; sent as the Basic auth user with an empty password.
            base_url: API root, e.g. ``https://api.close.com/api/v1``.
            transport: httpx transport to use instead of the network (tests, simulator).
            throttle: Throttle to share; by default one is built from ``max_rps``, ``sleep``
                and ``clock``.
            max_rps: Hard cap on requests per second for the throttle built here.
            max_attempts: Attempts per request, the first included.
            max_retry_seconds: No retry starts later than this after a request's first
                attempt (a Close that is down fails the run in about this time).
            backoff_base: First exponential backoff ceiling, in seconds.
            backoff_max: Largest exponential backoff ceiling, in seconds.
            timeout: Connect / read / write / pool timeout, in seconds.
            sleep: Sleeps between retries (and in the throttle built here); by default the
                breaker's wait, which ends early when the breaker opens.
            clock: Monotonic clock for the throttle built here.
            stats: Counters to add to; by default a fresh ``RequestStats``.
            rng: Random source for backoff jitter.
            breaker: Shared by every request of this key (see ``Breaker``).
            on_round_trip: Called with the seconds of each HTTP round trip (the worker
                pool's concurrency gate learns from it).

        Raises:
            ValueError: The key is empty, ``max_attempts`` < 1, or both ``throttle`` and
                ``max_rps`` are given.
        """
        if not api_key:
            raise CloseConfigError(MISSING_KEY_MESSAGE)
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if throttle is not None and max_rps is not None:
            raise ValueError("Pass max_rps to the shared Throttle, not to CloseClient")
        token = base64.b64encode(f"{api_key}:".encode()).decode()
        self._secrets = (api_key, token)
        self.base_url = base_url.rstrip("/")
        self.breaker = breaker or Breaker()
        self._sleep = partial(self.breaker.wait, sleep=sleep)
        self.throttle = throttle or Throttle(max_rps=max_rps, clock=clock, sleep=self._sleep)
        self.stats = stats if stats is not None else RequestStats()
        self.max_attempts = max_attempts
        self.max_retry_seconds = max_retry_seconds
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._rng = rng or random.Random()
        self._on_round_trip = on_round_trip
        self._warned_lock = threading.Lock()
        self._warned_at = -math.inf
        self._quiet_retries = 0
        self._http = httpx.Client(
            auth=httpx.BasicAuth(api_key, ""),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
            ),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"CloseClient(base_url={self.base_url!r})"

    def __enter__(self) -> "CloseClient":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        tz_offset: float | None = None,
    ) -> Any:
        """GET a path and return the parsed JSON.

        Args:
            path: Path below ``base_url``; a trailing slash is added if missing.
            params: Query parameters.
            tz_offset: Hours for the ``X-TZ-Offset`` header; no header when None.

        Returns:
            The parsed JSON body (None for an empty body).

        Raises:
            CloseAPIError: Or one of its subclasses, see ``errors.py``.
        """
        return self._request("GET", path, params=params, tz_offset=tz_offset)

    def post(self, path: str, json_body: Any, *, tz_offset: float | None = None) -> Any:
        """POST a JSON body to a path and return the parsed JSON.

        Args:
            path: Path below ``base_url``; a trailing slash is added if missing.
            json_body: The request body, serialized as JSON.
            tz_offset: Hours for the ``X-TZ-Offset`` header; no header when None.

        Returns:
            The parsed JSON body (None for an empty body).

        Raises:
            CloseAPIError: Or one of its subclasses, see ``errors.py``.
        """
        return self._request("POST", path, json_body=json_body, tz_offset=tz_offset)

    def send(self, request: Request) -> Any:
        """Sends a ``Request`` built by a report and returns the parsed JSON."""
        if request.method == "POST":
            return self.post(request.path, request.body, tz_offset=request.tz_offset)
        return self.get(request.path, request.params, tz_offset=request.tz_offset)

    def paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        page_size: int = PAGE_LIMIT,
    ) -> Iterator[list[dict[str, Any]]]:
        """GET a list endpoint page by page with ``_skip`` / ``_limit``.

        Args:
            path: Path below ``base_url``.
            params: Extra query parameters sent with every page.
            page_size: ``_limit`` of each page.

        Yields:
            The ``data`` list of each page, until ``has_more`` is false or missing or a page
            is empty.

        Raises:
            CloseAPIError: Or one of its subclasses, see ``errors.py``.
        """
        skip = 0
        while True:
            page = self.get(path, {**(params or {}), "_skip": skip, "_limit": page_size})
            data = page.get("data") if isinstance(page, dict) else None
            if not data:
                return
            yield data
            if not page.get("has_more"):
                return
            skip += len(data)

    # ------------------------------------------------------------ internals

    def _split_path(self, path: str) -> tuple[str, str]:
        """The full URL and the clean path (leading and trailing slash, no query)."""
        clean, separator, query = path.partition("?")
        if not clean.startswith("/"):
            clean = "/" + clean
        if not clean.endswith("/"):
            clean += "/"
        return f"{self.base_url}{clean}{separator}{query}", clean

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        tz_offset: float | None = None,
    ) -> Any:
        url, clean_path = self._split_path(path)
        endpoint = f"{method} {clean_path}"
        headers = {TZ_OFFSET_HEADER: format_tz_offset(tz_offset)} if tz_offset is not None else {}
        retrying = Retrying(
            retry=retry_if_exception_type((_RetryableResponse, httpx.TransportError)),
            stop=stop_after_attempt(self.max_attempts) | stop_after_delay(self.max_retry_seconds),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=partial(self._before_sleep, endpoint),
            retry_error_callback=partial(self._give_up, endpoint),
        )
        try:
            self.breaker.check(endpoint)
            return retrying(self._attempt, method, url, endpoint, params, json_body, headers)
        except Exception:
            self.stats.increment("failed")
            raise

    def _attempt(
        self,
        method: str,
        url: str,
        endpoint: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        headers: dict[str, str],
    ) -> Any:
        self.breaker.check(endpoint)
        ticket = self.throttle.acquire()
        self.breaker.check(endpoint)
        self.stats.increment("requests")
        response: httpx.Response | None = None
        started = time.perf_counter()
        try:
            response = self._http.request(
                method,
                url,
                params=dict(params) if params is not None else None,
                json=json_body,
                headers=headers,
            )
        except httpx.TransportError:
            self.stats.increment("transport_errors")
            raise
        finally:
            if self._on_round_trip is not None:
                self._on_round_trip(time.perf_counter() - started)
            self.throttle.observe(response.headers if response is not None else None, ticket)
        return self._handle(response, endpoint)

    def _handle(self, response: httpx.Response, endpoint: str) -> Any:
        status = response.status_code
        if status in RETRY_STATUSES:
            body = self._body(response)
            if status == 429:
                self.stats.increment("rate_limited")
                hint = self._rate_limit_wait(response.headers, body)
            else:
                self.stats.increment("server_errors")
                hint = positive_wait(parse_retry_after(response.headers.get("retry-after")))
            raise _RetryableResponse(status, f"HTTP {status}", hint, body)
        if status >= 300:
            raise error_for_response(endpoint, status, self._body(response))
        if status == 204 or not response.content:
            return None
        try:
            return parse_json(response.content)
        except ValueError:
            text = excerpt(redact(response.text, self._secrets), 120)
            description = f"HTTP {status} with a body that is not valid JSON: {text!r}"
        raise _RetryableResponse(status, description, None, text)

    def _body(self, response: httpx.Response) -> Any:
        try:
            return redact(response.json(), self._secrets)
        except ValueError:
            return excerpt(redact(response.text, self._secrets))

    @staticmethod
    def _rate_limit_wait(headers: Mapping[str, str], body: Any) -> float | None:
        """The wait a 429 asks for: RateLimit reset, then Retry-After, then error.rate_reset."""
        info = parse_rate_limit(headers)
        if info is not None and positive_wait(info.reset) is not None:
            return info.reset
        retry_after = positive_wait(parse_retry_after(headers.get("retry-after")))
        if retry_after is not None:
            return retry_after
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            rate_reset = error.get("rate_reset")
            if isinstance(rate_reset, int | float) and not isinstance(rate_reset, bool):
                return positive_wait(float(rate_reset))
            if isinstance(rate_reset, str):
                return positive_wait(to_float(rate_reset))
        return None

    def _backoff(self, attempt_number: int) -> float:
        """Full-jitter exponential backoff after the given (1-based) attempt."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(attempt_number - 1, 64))
        return self._rng.uniform(0.0, ceiling)

    def _wait(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _RetryableResponse) and error.wait_hint is not None:
            return error.wait_hint
        return self._backoff(retry_state.attempt_number)

    def _describe(self, error: BaseException | None) -> tuple[int | None, str]:
        """The status (None without a response) and a redacted one-line description."""
        if isinstance(error, _RetryableResponse):
            return error.status, error.description
        if error is None:
            return None, "unknown error"
        text = excerpt(redact(str(error), self._secrets), 200)
        return None, f"{type(error).__name__}: {text}" if text else type(error).__name__

    def _before_sleep(self, endpoint: str, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        self.stats.increment("retries")
        if isinstance(error, _RetryableResponse) and error.status == 429:
            self.throttle.pause(wait)
        status, description = self._describe(error)
        message = "Close API %s: %s (status %s, attempt %d of %d); retrying in %.2f s"
        args = (endpoint, description, status if status is not None else "none",
                retry_state.attempt_number, self.max_attempts, wait)  # fmt: skip
        with self._warned_lock:
            now = time.monotonic()
            loud = now - self._warned_at >= RETRY_WARNING_SECONDS
            quiet, self._quiet_retries = self._quiet_retries, 0 if loud else self._quiet_retries + 1
            if loud:
                self._warned_at = now
        if not loud:  # every retry at INFO; a warning per key every few seconds at most
            logger.info(message, *args)
            return
        more = f" ({quiet} more retries of this key since the last warning)" if quiet else ""
        logger.warning(message + more, *args)

    def _give_up(self, endpoint: str, retry_state: RetryCallState) -> NoReturn:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        status, description = self._describe(error)
        body = error.body if isinstance(error, _RetryableResponse) else None
        if isinstance(error, CloseUnavailableError):
            raise error
        failure = retry_error(endpoint, status, retry_state.attempt_number, description, body)
        self.breaker.trip(failure)
        cause = error if isinstance(error, httpx.TransportError) else None
        if cause is not None and not self._is_clean(cause):
            cause = None
        raise failure from cause

    def _is_clean(self, error: BaseException) -> bool:
        """Whether no exception in the chain mentions a secret in its text."""
        seen: set[int] = set()
        pending: list[BaseException] = [error]
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            text = f"{current!s} {current!r}"
            if any(secret and secret in text for secret in self._secrets):
                return False
            pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        return True


def parse_json(content: bytes) -> Any:
    """Parse a JSON body: orjson (several times faster on report-sized bodies), with the
    standard library as the fallback for what orjson refuses but Python accepts (integers
    beyond 64 bits, ``NaN``).

    Raises:
        ValueError: The body is not JSON (truncated, HTML, ...).
    """
    if orjson is not None:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return json.loads(content)
