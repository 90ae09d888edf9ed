"""Knobs that make the simulator behave like a busy production API (all off by default).

* ``RateLimiter`` — a token bucket per API key (``rate`` requests per second, burst =
  ``rate``) and one per organization (3× the key limit, shared by the org's keys), as Close
  documents. Every decision carries the values of the ``RateLimit`` header.
* ``FaultInjector`` — a seeded draw per request: with probability ``rate`` one of the fault
  kinds (``500``, ``502``, ``503``, ``drop`` = connection closed without a response,
  ``truncate`` = a 200 whose JSON body is cut short).

Clocks are injected (``clock() -> seconds``) so tests never sleep.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

FAULT_KINDS: tuple[str, ...] = ("500", "502", "503", "drop", "truncate")
ORG_LIMIT_FACTOR = 3
RATE_WINDOW_SECONDS = 1


@dataclass(frozen=True)
class RateDecision:
    """Outcome of one rate-limit check and the ``RateLimit`` header values to send."""

    allowed: bool
    limit: int
    remaining: int
    reset: float
    """Allowed: seconds until the bucket is full again. Rejected: seconds until the next
    request will be accepted (also ``error.rate_reset``)."""
    limit_type: str = "key"
    """Which limit decided: ``key`` or ``organization``."""

    def header(self) -> str:
        """``RateLimit: limit=…, remaining=…, reset=…`` value (``reset`` may be decimal)."""
        return f"limit={self.limit}, remaining={self.remaining}, reset={_decimal(self.reset)}"

    @property
    def retry_after(self) -> int:
        """``Retry-After`` seconds: ``reset`` rounded up, at least 1."""
        return max(1, math.ceil(self.reset - 1e-9))


def _decimal(value: float) -> str:
    text = f"{max(0.0, value):.3f}".rstrip("0").rstrip(".")
    return text or "0"


class _Bucket:
    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def wait(self) -> float:
        """Seconds until one token is available."""
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def full_in(self) -> float:
        return max(0.0, (self.capacity - self.tokens) / self.rate)


class RateLimiter:
    """Token buckets per API key and per organization.

    Args:
        rate: Requests per second allowed per key (burst = rate); the organization may do
            ``ORG_LIMIT_FACTOR`` × that across all of its keys.
        clock: Monotonic seconds.
    """

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        if rate <= 0:
            raise ValueError("rate limit must be positive")
        self.rate = float(rate)
        self.org_rate = self.rate * ORG_LIMIT_FACTOR
        self.clock = clock
        self._keys: dict[str, _Bucket] = {}
        self._orgs: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        """The key limit as an integer (the ``limit=`` of the header)."""
        return max(1, round(self.rate))

    @property
    def org_limit(self) -> int:
        """The organization limit as an integer."""
        return max(1, round(self.org_rate))

    def idle(self) -> RateDecision:
        """Header values for a request that is not counted (e.g. a rejected API key)."""
        return RateDecision(True, self.limit, self.limit, 0.0)

    def check(self, key: str, org_id: str) -> RateDecision:
        """Takes one token from the key's and the org's buckets, or rejects the request."""
        with self._lock:
            now = self.clock()
            key_bucket = self._keys.get(key)
            if key_bucket is None:
                key_bucket = self._keys[key] = _Bucket(self.rate, now)
            org_bucket = self._orgs.get(org_id)
            if org_bucket is None:
                org_bucket = self._orgs[org_id] = _Bucket(self.org_rate, now)
            key_bucket.refill(now)
            org_bucket.refill(now)
            if key_bucket.tokens < 1.0:
                return RateDecision(False, self.limit, 0, key_bucket.wait(), "key")
            if org_bucket.tokens < 1.0:
                return RateDecision(False, self.org_limit, 0, org_bucket.wait(), "organization")
            key_bucket.tokens -= 1.0
            org_bucket.tokens -= 1.0
            key_left = math.floor(key_bucket.tokens)
            org_left = math.floor(org_bucket.tokens)
            if org_left < key_left:
                return RateDecision(True, self.org_limit, org_left, org_bucket.full_in())
            return RateDecision(True, self.limit, key_left, key_bucket.full_in())


class FaultInjector:
    """Seeded random faults: each request gets a fault kind with probability ``rate``."""

    def __init__(self, rate: float, seed: int = 0, kinds: Sequence[str] = FAULT_KINDS) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault rate must be within [0, 1]")
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown or not kinds:
            raise ValueError(f"fault kinds must be a non-empty subset of {FAULT_KINDS}")
        self.rate = rate
        self.kinds = tuple(kinds)
        self._rng = random.Random(f"close-sim-faults:{seed}")
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        """The fault for the next request, or None."""
        if self.rate <= 0:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            return self._rng.choice(self.kinds)
