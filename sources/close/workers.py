"""Running report calls in worker threads: the pool and the per-key concurrency gate.

A report's calls (one per window, across every org and segment it reads) run in a thread
pool; each call passes its org's ``ConcurrencyGate``, so all reports of one key together run
only as many calls at once as keep the network and one CPU busy. The client knows nothing of
either: it reports its HTTP round trips through a callback, and request counts through
``RequestStats`` scopes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import (
    Callable,
    Deque,
    Generator,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
)

from .stats import RequestStats

T = TypeVar("T")
R = TypeVar("R")

MAX_THREADS = 32
"""Most threads of one report's pool, however many orgs it reads."""


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


def run_calls(
    fn: Callable[[T], R],
    chunks: Sequence[Sequence[T]],
    workers: int,
    gate_of: Callable[[T], Optional[ConcurrencyGate]] = lambda _: None,
    skip: Callable[[T], bool] = lambda _: False,
) -> Generator[Tuple[T, "R | BaseException"], None, None]:
    """Runs ``fn`` on every item of ``chunks`` in ``workers`` threads; yields
    ``(item, result)``, or ``(item, exception)`` for a call that raised, as chunks complete.

    A chunk (consecutive items of one org, in order) is one thread call: handing results
    from a worker thread to the consumer costs a GIL hand-over that can take milliseconds
    while other threads compute, so fewer, larger hand-overs keep a CPU-bound load fast. A
    chunk stops at its first failure. Each chunk passes the gate of its first item's org.
    Items for which ``skip`` is true when their turn comes are not run (their unit already
    failed). At most ``2 * workers`` chunks are pending, so a long backfill streams instead
    of being collected in memory; closing the iterator cancels the chunks not yet started.
    """

    def run(chunk: Sequence[T]) -> List[Tuple[T, "R | BaseException"]]:
        gate = gate_of(chunk[0])
        if gate is not None:
            gate.acquire()
        counted = RequestStats()
        cpu = time.thread_time()
        outcomes: List[Tuple[T, R | BaseException]] = []
        try:
            with RequestStats.scope(counted):
                for item in chunk:
                    if skip(item):
                        continue
                    try:
                        outcomes.append((item, fn(item)))
                    except Exception as exc:  # noqa: BLE001 - handed to the consumer
                        outcomes.append((item, exc))
                        break
        finally:
            if gate is not None:
                gate.release(time.thread_time() - cpu, counted.requests)
        return outcomes

    if workers <= 1:
        for chunk in chunks:
            yield from run(chunk)
        return
    queue = iter(chunks)
    pending: Deque[Future[List[Tuple[T, R | BaseException]]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="close") as pool:
        try:
            for chunk in queue:
                pending.append(pool.submit(run, chunk))
                if len(pending) >= 2 * workers:
                    yield from _completed(pending)
            while pending:
                yield from _completed(pending)
        finally:
            for future in pending:
                future.cancel()


def _completed(
    pending: Deque[Future[List[Tuple[T, "R | BaseException"]]]],
) -> Iterator[Tuple[T, "R | BaseException"]]:
    """Waits for at least one pending chunk; yields the outcomes of every finished one."""
    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
    for future in [f for f in pending if f in done]:
        pending.remove(future)
        yield from future.result()


def interleave(groups: Iterable[Sequence[T]], size: int) -> List[List[T]]:
    """Chunks of up to ``size`` consecutive items of each group, the groups' chunks taken in
    turn (so every org's throttle has work from the start, not one org after another)."""
    queues = [deque(_split(list(group), size)) for group in groups]
    chunks: List[List[T]] = []
    while any(queues):
        for queue in queues:
            if queue:
                chunks.append(queue.popleft())
    return chunks


def _split(items: List[T], size: int) -> List[List[T]]:
    return [items[i : i + max(1, size)] for i in range(0, len(items), max(1, size))]


def chunk_size(count: int, workers: int, most: int = 8) -> int:
    """Items per thread call: up to ``most``, but small enough that every worker gets
    several calls (so the last ones do not leave the other workers idle)."""
    return max(1, min(most, count // (4 * max(1, workers))))
