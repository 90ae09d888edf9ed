"""Request counters: one set for the run, and one per report unit (the run ledger's figures).

The client counts every attempt into the ``RequestStats`` it was given and into the counters
of the scope its thread is working for (``RequestStats.scope``), so the run ledger knows which
report spent which requests without the client knowing about reports.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Optional

_scope = threading.local()


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
        """Add to one counter, and to the same counter of the thread's scope, if any.

        Args:
            name: One of ``FIELDS``.
            by: How much to add.
        """
        if name not in self.FIELDS:
            raise ValueError(f"Unknown counter {name!r}; expected one of {self.FIELDS}")
        with self._lock:
            setattr(self, name, getattr(self, name) + by)
        for scoped in getattr(_scope, "stack", ()):
            if scoped is not self:
                scoped._add(name, by)

    def _add(self, name: str, by: int) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + by)

    @staticmethod
    @contextlib.contextmanager
    def scope(stats: Optional["RequestStats"]) -> Iterator[None]:
        """Counts this thread's requests into ``stats`` too while the block runs (scopes
        nest: a report unit's counters and a worker call's own)."""
        if stats is None:
            yield
            return
        stack = getattr(_scope, "stack", None)
        if stack is None:
            stack = _scope.stack = []
        stack.append(stats)
        try:
            yield
        finally:
            stack.pop()

    def as_dict(self) -> dict[str, int]:
        """A consistent snapshot of all counters."""
        with self._lock:
            return {name: getattr(self, name) for name in self.FIELDS}

    def __repr__(self) -> str:
        return f"RequestStats({self.as_dict()})"
