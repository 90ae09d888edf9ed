"""Pacing requests to Close's rate limit: the ``Throttle`` shared by every thread of one key.

The throttle spaces request starts from Close's rate-limit headers (``RateLimit: limit=…,
remaining=…, reset=…``, older ``X-Rate-Limit-*``), an optional hard ``max_rps`` and pauses after
a 429.
"""

import email.utils
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import NamedTuple

from .errors import CloseConfigError

__all__ = ["RateLimitInfo", "Throttle", "parse_rate_limit", "parse_retry_after"]


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


def to_float(value: str | None) -> float | None:
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
            value = to_float(lowered.get(prefix + name))
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
    seconds = to_float(value)
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
            raise CloseConfigError(
                f"max_rps must be a positive number of requests per second, got {max_rps} "
                "(SOURCES__CLOSE__MAX_RPS)."
            )
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


def positive_wait(value: float | None) -> float | None:
    """The value if it is a usable wait (> 0), else None."""
    return value if value is not None and value > 0 else None
