"""Progress while loading: a bar per report on a terminal, periodic log lines elsewhere."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import IO, Any, Dict, Iterator, Optional

from close_reports.source.windows import Window

try:  # the `progress` extra; without it a terminal gets the plain lines too
    from tqdm import tqdm
except ImportError:  # pragma: no cover - exercised by tests/packaging (core install)
    tqdm = None

LOG_EVERY_SECONDS = 5.0
DBT_EVERY_SECONDS = 15.0


class Progress:
    """Receives ``(table, org_id, window)`` after each report window is read.

    On a terminal each report gets a tqdm bar counting windows; otherwise (CI, cron, or tqdm
    not installed) a plain line per report at most every ``LOG_EVERY_SECONDS``, and one when
    it finishes.
    """

    def __init__(self, stream: Optional[IO[str]] = None, interactive: Optional[bool] = None):
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.interactive = self.interactive and tqdm is not None
        self._bars: Dict[str, Any] = {}
        self._counts: Dict[str, int] = {}
        self._last_window: Dict[str, Window] = {}
        self._logged_at: Dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, table: str, org_id: str, window: Window) -> None:
        with self._lock:
            self._counts[table] = self._counts.get(table, 0) + 1
            self._last_window[table] = window
            if self.interactive:
                self._bar(table).update(1)
                self._bar(table).set_postfix_str(f"{window.start.isoformat()}", refresh=False)
                return
            now = time.monotonic()
            if now - self._logged_at.get(table, 0.0) >= LOG_EVERY_SECONDS:
                self._logged_at[table] = now
                self._log(table, org_id)

    def _bar(self, table: str) -> Any:
        if table not in self._bars:
            self._bars[table] = tqdm(
                desc=f"{table:<32}",
                unit=" windows",
                file=self.stream,
                position=len(self._bars),
                leave=True,
                dynamic_ncols=True,
            )
        return self._bars[table]

    def _log(self, table: str, org_id: str) -> None:
        window = self._last_window[table]
        print(
            f"progress: {table} {self._counts[table]} windows read, last {window} (org {org_id})",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        """Closes the bars, or logs each report's final count."""
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            if not self.interactive:
                for table, count in self._counts.items():
                    print(f"progress: {table} done, {count} windows", file=self.stream, flush=True)


@contextlib.contextmanager
def dbt_progress(
    target: str, stream: Optional[IO[str]] = None, every: float = DBT_EVERY_SECONDS
) -> Iterator[None]:
    """Lines while dbt builds (most of a demo run, silent otherwise): one when it starts, one
    every ``every`` seconds with the time so far, and one with the total when it ends."""
    out = stream or sys.stderr
    started = time.monotonic()
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(every):
            print(f"dbt: still building ({time.monotonic() - started:.0f} s)", file=out, flush=True)

    print(
        f"dbt: building the marts on {target} (seeds, staging views, marts, tests)...",
        file=out,
        flush=True,
    )
    thread = threading.Thread(target=heartbeat, name="dbt-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    print(f"dbt: done in {time.monotonic() - started:.1f} s", file=out, flush=True)
