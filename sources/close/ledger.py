"""The run ledger: what each report unit of a run did, for the summary and the warehouse.

One ``Entry`` per run x report x org x segment: windows read, requests / retries / 429s
(counted by the client into the entry's ``RequestStats`` scope), rows handed to dlt, and
whether it was loaded (``ok``), had nothing to read (``skipped``) or was refused (``failed``,
with Close's message). The command line prints its totals and loads it into ``run_ledger``
(``ledger_resource``) in the same load step as the data it describes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Dict, Iterator, List, Optional, Tuple

import dlt
from dlt.common.schema.typing import TColumnSchema, TDataType
from dlt.extract.resource import DltResource

from .stats import RequestStats
from .windows import Window

LEDGER_TABLE = "run_ledger"
SETUP_REPORT = "_setup"
"""``report`` of the requests made before any report: ``/me/`` of every key, and the
Explorer field list when Explorer queries are configured."""

OK, SKIPPED, FAILED = "ok", "skipped", "failed"

LEDGER_COLUMNS: Dict[str, TDataType] = {
    "run_id": "text",
    "report": "text",
    "org_id": "text",
    "segment": "text",
    "tables": "text",
    "started_at": "timestamp",
    "finished_at": "timestamp",
    "windows": "bigint",
    "first_window": "date",
    "last_window": "date",
    "requests": "bigint",
    "retries": "bigint",
    "rate_limited": "bigint",
    "failed_requests": "bigint",
    "rows": "bigint",
    "status": "text",
    "error": "text",
}
LEDGER_KEY = ["run_id", "report", "org_id", "segment"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Entry:
    """One report unit of one run."""

    report: str
    org_id: str
    segment: str
    tables: Tuple[str, ...]
    stats: RequestStats = field(default_factory=RequestStats)
    started_at: datetime = field(default_factory=_now)
    finished_at: Optional[datetime] = None
    windows: int = 0
    first_window: Optional[date] = None
    last_window: Optional[date] = None
    rows: int = 0
    status: str = OK
    error: Optional[str] = None
    cause: Optional[str] = None
    """The failure behind ``error`` when the unit was stopped by another one's (Close down:
    one request spent its retries and the key's breaker stopped the rest)."""

    def read(self, window: Window, rows: int) -> None:
        """One window was read, giving ``rows`` rows."""
        self.windows += 1
        self.rows += rows
        if self.first_window is None or window.start < self.first_window:
            self.first_window = window.start
        if self.last_window is None or window.start > self.last_window:
            self.last_window = window.start

    def finish(self, status: str = OK, error: Optional[BaseException] = None) -> None:
        """Ends the entry with ``status`` (and the error that failed it)."""
        self.status = status
        self.error = None if error is None else " ".join(str(error).split())
        root = error.__cause__ if error is not None and error.__cause__ is not None else error
        self.cause = None if root is None else " ".join(str(root).split())
        self.finished_at = _now()

    def row(self, run_id: str) -> Dict[str, Any]:
        """The entry as a ``run_ledger`` row."""
        counts = self.stats.as_dict()
        return {
            "run_id": run_id,
            "report": self.report,
            "org_id": self.org_id,
            "segment": self.segment,
            "tables": ",".join(self.tables),
            "started_at": self.started_at,
            "finished_at": self.finished_at or _now(),
            "windows": self.windows,
            "first_window": self.first_window,
            "last_window": self.last_window,
            "requests": counts["requests"],
            "retries": counts["retries"],
            "rate_limited": counts["rate_limited"],
            "failed_requests": counts["failed"],
            "rows": self.rows if self.status == OK else 0,
            "status": self.status,
            "error": self.error,
        }


class RunLog:
    """Every ``Entry`` of one run, plus warnings for the summary (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: List[Entry] = []
        self.warnings: List[str] = []

    def entry(self, report: str, org_id: str, segment: str, tables: Tuple[str, ...]) -> Entry:
        """A new entry, kept in this log."""
        entry = Entry(report, org_id, segment, tables)
        with self._lock:
            self.entries.append(entry)
        return entry

    def warn(self, message: str) -> None:
        """A warning the run summary prints (once)."""
        with self._lock:
            if message not in self.warnings:
                self.warnings.append(message)

    @property
    def failed(self) -> List[Entry]:
        """Entries of units that were refused or failed."""
        return [e for e in self.entries if e.status == FAILED]

    @property
    def loaded(self) -> List[Entry]:
        """Entries of report units that loaded (setup excluded)."""
        return [e for e in self.entries if e.status == OK and e.report != SETUP_REPORT]

    def totals(self) -> Dict[str, int]:
        """Request counters summed over every entry (what the summary prints)."""
        totals = dict.fromkeys(RequestStats.FIELDS, 0)
        for entry in self.entries:
            for name, value in entry.stats.as_dict().items():
                totals[name] += value
        return totals

    def rows(self, run_id: str) -> List[Dict[str, Any]]:
        """Every entry as a ``run_ledger`` row."""
        with self._lock:
            return [entry.row(run_id) for entry in self.entries]


def ledger_resource(run_log: RunLog, run_id: str) -> DltResource:
    """The ``run_ledger`` rows of ``run_log`` as a dlt resource (append, typed columns)."""
    columns: Dict[str, TColumnSchema] = {
        name: {"name": name, "data_type": data_type, "nullable": name not in LEDGER_KEY}
        for name, data_type in LEDGER_COLUMNS.items()
    }

    def rows() -> Iterator[List[Dict[str, Any]]]:
        yield run_log.rows(run_id)

    resource: DltResource = dlt.resource(
        rows, name=LEDGER_TABLE, write_disposition="append", columns=columns
    )
    return resource
