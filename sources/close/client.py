"""HTTP client for the Close API: auth, timezone header, shared throttle, retries and paging.

One ``CloseClient`` per API key (per org) is built once in the source and shared by all its
resources and worker threads. It wraps a single ``httpx.Client`` (Basic auth with the key as
user and an empty password), adds a trailing slash to every path, sends ``X-TZ-Offset`` when a
report asks for one, spaces requests through a ``Throttle`` that reads Close's rate-limit
headers, and retries 429 / 5xx / transport errors / truncated JSON with tenacity.
"""

import base64
import email.utils
import json
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from types import TracebackType
from typing import Any, NamedTuple, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from dlt.common import logger
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from .errors import error_for_response, excerpt, redact, retry_error
from .settings import DEFAULT_BASE_URL, PAGE_LIMIT

try:  # a dlt dependency on CPython
    import orjson
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]

__all__ = [
    "CloseClient",
    "ConcurrencyGate",
    "RateLimitInfo",
    "RequestStats",
    "Throttle",
    "format_tz_offset",
    "parse_rate_limit",
    "tz_offset_hours",
]

TZ_OFFSET_HEADER = "X-TZ-Offset"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_CONNECTIONS = 32
"""Connection pool size: room for ~16 worker threads with keep-alive to spare."""


def _package_version() -> str:
    try:
        return metadata.version("close-reports")
    except metadata.PackageNotFoundError:
        return "dev"


USER_AGENT = f"close-reports/{_package_version()}"


# ---------------------------------------------------------------- timezone header


def tz_offset_hours(timezone: str, at: datetime) -> float:
    """The UTC offset of an IANA timezone at an instant, in hours (DST-correct).

    Args:
        timezone: IANA name, e.g. ``America/New_York`` or ``UTC``.
        at: The instant; a naive datetime is taken as UTC.

    Returns:
        Hours east of UTC, e.g. -5.0 for New York in January, 5.5 for Kolkata.

    Raises:
        ValueError: The timezone is not a known IANA name.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"Unknown timezone {timezone!r}: use an IANA name such as 'UTC' or "
            "'America/New_York' (SOURCES__CLOSE__TIMEZONE)"
        ) from None
    instant = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    offset = instant.astimezone(zone).utcoffset()
    return offset.total_seconds() / 3600 if offset is not None else 0.0


def format_tz_offset(hours: float) -> str:
    """The ``X-TZ-Offset`` header value for an offset in hours: ``-5``, ``5.5``, ``0``."""
    rounded = round(hours, 4)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.4f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------- rate-limit headers


class RateLimitInfo(NamedTuple):
    """What a response says about the rate limit; any field may be unknown."""

    limit: float | None
    remaining: float | None
    reset: float | None
    """Seconds until the quota is restored (may be decimal)."""


_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"
_RATELIMIT_FIELD = re.compile(rf"\b(limit|remaining|reset)\s*=\s*{_NUMBER}", re.IGNORECASE)
_LEGACY_PREFIXES = ("x-rate-limit-", "x-ratelimit-", "ratelimit-")
_EPOCH_THRESHOLD = 1e8
"""A legacy ``reset`` larger than this is a Unix timestamp, not a number of seconds."""


def _to_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """Read Close's rate-limit headers.

    The current ``RateLimit: limit=100, remaining=50, reset=5`` header wins; the older
    ``X-Rate-Limit-Limit`` / ``-Remaining`` / ``-Reset`` (and ``RateLimit-*``) headers fill in
    whatever it does not say.

    Args:
        headers: Response headers (any case).

    Returns:
        The parsed values, or None when no rate-limit header is present.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    fields: dict[str, float] = {}
    combined = lowered.get("ratelimit")
    if combined:
        for name, number in _RATELIMIT_FIELD.findall(combined):
            fields.setdefault(name.lower(), float(number))
    for prefix in _LEGACY_PREFIXES:
        for name in ("limit", "remaining", "reset"):
            value = _to_float(lowered.get(prefix + name))
            if value is None or name in fields:
                continue
            if name == "reset" and value > _EPOCH_THRESHOLD:
                value = max(0.0, value - time.time())
            fields[name] = value
    if not fields:
        return None
    return RateLimitInfo(fields.get("limit"), fields.get("remaining"), fields.get("reset"))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds, or an HTTP date)."""
    if not value:
        return None
    seconds = _to_float(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


# ---------------------------------------------------------------- throttle


class Throttle:
    """Spaces request starts for one API key, across all resources and threads.

    Three limits; a request starts when all allow it:

    * ``max_rps``: a hard minimum interval between two request starts.
    * ``pause(seconds)``: after a 429 every thread holds off until then.
    * The server's budget. ``observe`` reads ``remaining`` / ``reset`` from each answer and
      estimates how many requests may still start before the quota resets: ``remaining``
      minus the requests still in flight (sent, not answered, so maybe not yet counted by
      Close). Every start takes one from the budget under the lock, so a burst of threads
      cannot overspend it. Answers arrive out of order: one whose request started before the
      answer that last set the budget came back may have been served earlier, so within the
      same window it can only lower the budget; a fresh one replaces it (which is how a
      token bucket's refill gets credited). Above the safety margin requests go at full
      speed; at or below it the rest of the budget is spread evenly until the reset; at zero
      nobody starts until the reset (plus a small cushion). When the reset passes, the budget
      is ``limit`` minus what is in flight.
    * A quota that refills continuously (a token bucket: within a window its ``reset``, the
      time until it is full again, grows as ``remaining`` falls; a fixed window's only counts
      down). Waiting for that reset would idle: one unit comes back every
      ``reset / (limit - remaining)`` seconds, so at or below the margin starts are paced at
      that interval instead (never slower than spreading the budget until the reset, never
      later than the reset). A 429 withdraws the finding for good.

    Until the first answer, and after a reset that followed a 429, one probe request goes
    alone and its answer sets the budget; if answers carry no rate-limit headers the budget
    stays unknown and only ``max_rps`` and ``pause`` apply.
    """

    def __init__(
        self,
        max_rps: float | None = None,
        *,
        safety_margin: float = 0.2,
        min_margin: int = 2,
        reset_cushion: float = 0.05,
        window_tolerance: float = 0.25,
        poll_interval: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Build a throttle.

        Args:
            max_rps: Hard cap on request starts per second, or None for no cap.
            safety_margin: Fraction of ``limit`` below which requests are spread until reset.
            min_margin: Smallest margin, in requests, when ``limit`` is small or unknown.
            reset_cushion: Seconds added to every advertised ``reset``, against rounding and
                clock skew between Close and this machine.
            window_tolerance: An answer whose reset lies more than this many seconds after the
                known one belongs to a new window; otherwise it can only lower the budget.
            poll_interval: Longest single sleep while waiting for the budget, so a fresh
                response can release waiting threads early.
            clock: Monotonic clock in seconds.
            sleep: Sleeps for the given seconds.

        Raises:
            ValueError: ``max_rps`` is not positive.
        """
        if max_rps is not None and max_rps <= 0:
            raise ValueError(f"max_rps must be positive, got {max_rps}")
        self.max_rps = max_rps
        self._safety_margin = safety_margin
        self._min_margin = min_margin
        self._reset_cushion = reset_cushion
        self._window_tolerance = window_tolerance
        self._poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last_start: float | None = None
        self._paused_until = -math.inf
        self._budget: float | None = None
        self._reset_at: float | None = None
        self._limit: float | None = None
        self._in_flight = 0
        self._rate_limited = False
        self._probing = True
        self._started = 0
        """Requests started so far; a start's number is its ticket."""
        self._continuous = False
        """A fresh answer showed the quota refilling within a window (a token bucket)."""
        self._refill_interval: float | None = None
        """Seconds for one unit of quota to come back, from the last answer."""
        self._first_answer: tuple[float, float] | None = None
        """``(reset, remaining)`` of the first answer of the current window."""
        self._authority = 0
        """Starts counted when the answer that set the budget arrived."""

    def acquire(self) -> int:
        """Block until a request may start, then count it as started.

        Returns:
            A ticket for ``observe``: the sequence number of this start.
        """
        while True:
            with self._lock:
                now = self._clock()
                ready_at, may_move_earlier = self._ready_at(now)
                if ready_at <= now:
                    return self._start(now)
            wait = ready_at - now
            self._sleep(min(wait, self._poll_interval) if may_move_earlier else wait)

    def observe(self, headers: Mapping[str, str] | None, ticket: int | None = None) -> None:
        """Record that a started request came back, and learn from its rate-limit headers.

        Args:
            headers: The response headers, or None when the request failed without one.
            ticket: What ``acquire`` returned for this request. Without it the answer is
                treated as possibly stale: it can lower the budget but not raise it within
                the current window.
        """
        info = parse_rate_limit(headers) if headers is not None else None
        with self._lock:
            self._probing = False
            others_in_flight = max(0, self._in_flight - 1)
            self._in_flight = max(0, self._in_flight - 1)
            if info is None:
                return
            if info.limit is not None:
                self._limit = info.limit
            if info.remaining is None:
                return
            estimate = info.remaining - others_in_flight
            self._learn_refill(info)
            reset_at = None
            if info.reset is not None:
                reset_at = self._clock() + max(0.0, info.reset) + self._reset_cushion
            fresh = ticket is not None and ticket > self._authority
            stale = (
                not fresh
                and self._budget is not None
                and self._reset_at is not None
                and (reset_at is None or reset_at <= self._reset_at + self._window_tolerance)
            )
            if stale and self._budget is not None:
                # Started before the answer that set the budget came back, and from the same
                # window: served earlier perhaps, so it may only lower the budget.
                self._budget = min(self._budget, estimate)
            else:
                self._budget = estimate
                self._reset_at = reset_at if reset_at is not None else self._reset_at
                self._authority = self._started

    def _learn_refill(self, info: RateLimitInfo) -> None:
        """Tell a token bucket from a fixed window (see the class doc), under the lock.

        Within a window, a fixed window's ``reset`` only counts down; a token bucket's grows
        as the quota is used (it is the time until the bucket is full again). So ``reset``
        growing by more than ``window_tolerance`` while ``remaining`` falls is a bucket.
        """
        if info.remaining is None or info.reset is None:
            return
        if self._first_answer is None:
            self._first_answer = (info.reset, info.remaining)
        else:
            first_reset, first_remaining = self._first_answer
            if (
                info.reset > first_reset + self._window_tolerance
                and info.remaining < first_remaining
                and not self._rate_limited
            ):
                self._continuous = True
        if self._limit is not None:
            spent = self._limit - info.remaining
            self._refill_interval = info.reset / spent if spent >= 1 else None

    def pause(self, seconds: float) -> None:
        """Hold every thread off for ``seconds`` from now (after a 429)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))
            self._rate_limited = True
            self._continuous = False

    @property
    def budget(self) -> float | None:
        """Requests estimated to be left before the quota resets; None while unknown."""
        with self._lock:
            self._roll_window(self._clock())
            return self._budget

    def _margin(self) -> float:
        if self._limit is None:
            return float(self._min_margin)
        return max(float(self._min_margin), self._safety_margin * self._limit)

    def _roll_window(self, now: float) -> None:
        if self._reset_at is not None and now >= self._reset_at:
            # Requests still in flight may be counted in the new window.
            self._reset_at = None
            self._first_answer = None
            if self._rate_limited:
                self._budget = None
                self._probing = True
            elif self._limit is not None:
                self._budget = self._limit - self._in_flight
            else:
                self._budget = None

    def _ready_at(self, now: float) -> tuple[float, bool]:
        """When the next request may start, and whether a response could make that earlier."""
        self._roll_window(now)
        ready = self._paused_until
        if self.max_rps is not None and self._last_start is not None:
            ready = max(ready, self._last_start + 1.0 / self.max_rps)
        budget = self._budget
        refill = self._refill_interval if self._continuous else None
        if budget is not None and budget < 1:
            if self._reset_at is not None:
                if refill is not None and self._last_start is not None:
                    return max(ready, min(self._reset_at, self._last_start + refill)), True
                return max(ready, self._reset_at), True
            # Spent, with no reset known: wait for answers in flight, else probe.
            self._budget = budget = None
            self._probing = True
        if budget is None:
            if self._probing and self._in_flight > 0:
                return math.inf, True
            return ready, False
        if self._reset_at is not None and self._last_start is not None and budget <= self._margin():
            spacing = (self._reset_at - self._last_start) / (budget + 1)
            if refill is not None:
                spacing = min(spacing, refill)
            return max(ready, self._last_start + spacing), True
        return ready, False

    def _start(self, now: float) -> int:
        self._last_start = now
        self._in_flight += 1
        self._started += 1
        if self._budget is not None:
            self._budget -= 1
        return self._started


# ---------------------------------------------------------------- concurrency gate


class ConcurrencyGate:
    """How many report calls of one org run at once, from Little's law.

    Python computes in one thread at a time (the GIL), so calls beyond
    ``1 + round trip / CPU per request`` cannot make a backfill faster: they only queue for
    the GIL, where every hand-over between threads can cost milliseconds. The gate learns
    both figures as it goes: the round trip is the shortest of the last ``window`` HTTP
    round trips (an uncontended one: contention only lengthens them), the CPU per request is
    an exponentially weighted average of the thread CPU time calls consume (waiting for the
    GIL or the network uses none). Its capacity is that number plus ``spare``, between 1 and
    ``most``; until ``warm_up`` calls have reported, all ``most`` may run.

    Against Close (round trips of 100+ ms for a few ms of parsing) the capacity is ``most``
    and only the throttle paces requests; against a fast local API (the embedded simulator,
    a replay) it keeps a CPU-bound backfill from thrashing between dozens of threads.
    """

    def __init__(
        self,
        most: int = 64,
        *,
        spare: int = 1,
        window: int = 64,
        smoothing: float = 0.2,
        warm_up: int = 8,
    ) -> None:
        if most < 1:
            raise ValueError(f"most must be at least 1, got {most}")
        self.most = most
        self._spare = spare
        self._smoothing = smoothing
        self._warm_up = warm_up
        self._condition = threading.Condition()
        self._round_trips: deque[float] = deque(maxlen=window)
        self._running = 0
        self._reports = 0
        self._cpu_per_request: float | None = None
        self.capacity = most

    def acquire(self) -> None:
        """Block until a call may run."""
        with self._condition:
            while self._running >= self.capacity:
                self._condition.wait()
            self._running += 1

    def release(self, cpu_seconds: float, requests: int) -> None:
        """A call ended, having used ``cpu_seconds`` of thread CPU time for ``requests``."""
        with self._condition:
            self._running = max(0, self._running - 1)
            if requests > 0:
                self._learn(max(0.0, cpu_seconds) / requests)
            self._condition.notify(max(1, self.capacity - self._running))

    def observe_round_trip(self, seconds: float) -> None:
        """One HTTP round trip took ``seconds`` (wall time, throttle waits excluded)."""
        with self._condition:
            self._round_trips.append(max(0.0, seconds))

    def _learn(self, cpu: float) -> None:
        if self._cpu_per_request is None:
            self._cpu_per_request = cpu
        else:
            self._cpu_per_request += self._smoothing * (cpu - self._cpu_per_request)
        self._reports += 1
        if self._reports < self._warm_up or not self._round_trips:
            return
        needed = 1.0 + min(self._round_trips) / max(self._cpu_per_request, 1e-6)
        self.capacity = max(1, min(self.most, math.ceil(needed) + self._spare))


# ---------------------------------------------------------------- request counters


class RequestStats:
    """Thread-safe request counters; one instance may be shared by several clients.

    Attributes:
        requests: HTTP attempts sent.
        retries: Attempts that were followed by another one.
        rate_limited: 429 responses received.
        server_errors: Retryable 5xx responses received.
        transport_errors: Attempts that got no response (connect/read errors, timeouts).
        failed: Requests that finally raised.
    """

    FIELDS = ("requests", "retries", "rate_limited", "server_errors", "transport_errors", "failed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.rate_limited = 0
        self.server_errors = 0
        self.transport_errors = 0
        self.failed = 0

    def increment(self, name: str, by: int = 1) -> None:
        """Add to one counter.

        Args:
            name: One of ``FIELDS``.
            by: How much to add.
        """
        if name not in self.FIELDS:
            raise ValueError(f"Unknown counter {name!r}; expected one of {self.FIELDS}")
        with self._lock:
            setattr(self, name, getattr(self, name) + by)

    def as_dict(self) -> dict[str, int]:
        """A consistent snapshot of all counters."""
        with self._lock:
            return {name: getattr(self, name) for name in self.FIELDS}

    def __repr__(self) -> str:
        return f"RequestStats({self.as_dict()})"


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
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        stats: RequestStats | None = None,
        rng: random.Random | None = None,
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
            backoff_base: First exponential backoff ceiling, in seconds.
            backoff_max: Largest exponential backoff ceiling, in seconds.
            timeout: Connect / read / write / pool timeout, in seconds.
            sleep: Sleeps between retries (and in the throttle built here).
            clock: Monotonic clock for the throttle built here.
            stats: Counters to add to; by default a fresh ``RequestStats``.
            rng: Random source for backoff jitter.

        Raises:
            ValueError: The key is empty, ``max_attempts`` < 1, or both ``throttle`` and
                ``max_rps`` are given.
        """
        if not api_key:
            raise ValueError(
                "No Close API key: set the SOURCES__CLOSE__API_KEY environment variable or "
                "api_key under [sources.close] in .dlt/secrets.toml"
            )
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if throttle is not None and max_rps is not None:
            raise ValueError("Pass max_rps to the shared Throttle, not to CloseClient")
        token = base64.b64encode(f"{api_key}:".encode()).decode()
        self._secrets = (api_key, token)
        self.base_url = base_url.rstrip("/")
        self.throttle = throttle or Throttle(max_rps=max_rps, clock=clock, sleep=sleep)
        self.stats = stats if stats is not None else RequestStats()
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._local = threading.local()
        self.gate = ConcurrencyGate()
        """Bounds the report calls of this key running at once (see ``ConcurrencyGate``)."""
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

    def thread_requests(self) -> int:
        """HTTP attempts this thread has sent with this client so far."""
        return int(getattr(self._local, "requests", 0))

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
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=partial(self._before_sleep, endpoint),
            retry_error_callback=partial(self._give_up, endpoint),
        )
        try:
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
        ticket = self.throttle.acquire()
        self.stats.increment("requests")
        self._local.requests = self.thread_requests() + 1
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
            self.gate.observe_round_trip(time.perf_counter() - started)
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
                hint = _positive(parse_retry_after(response.headers.get("retry-after")))
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
        if info is not None and _positive(info.reset) is not None:
            return info.reset
        retry_after = _positive(parse_retry_after(headers.get("retry-after")))
        if retry_after is not None:
            return retry_after
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            rate_reset = error.get("rate_reset")
            if isinstance(rate_reset, int | float) and not isinstance(rate_reset, bool):
                return _positive(float(rate_reset))
            if isinstance(rate_reset, str):
                return _positive(_to_float(rate_reset))
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
        logger.warning(
            "Close API %s: %s (status %s, attempt %d of %d); retrying in %.2f s",
            endpoint,
            description,
            status if status is not None else "none",
            retry_state.attempt_number,
            self.max_attempts,
            wait,
        )

    def _give_up(self, endpoint: str, retry_state: RetryCallState) -> NoReturn:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        status, description = self._describe(error)
        body = error.body if isinstance(error, _RetryableResponse) else None
        failure = retry_error(endpoint, status, retry_state.attempt_number, description, body)
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


def _positive(value: float | None) -> float | None:
    """The value if it is a usable wait (> 0), else None."""
    return value if value is not None and value > 0 else None
