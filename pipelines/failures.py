"""Turning what went wrong into one line a user can act on, and an exit status."""

from __future__ import annotations

from typing import Dict, Iterator, List, Tuple

from close_reports.source.errors import (
    CloseAPIError,
    CloseAuthError,
    CloseConfigError,
    CloseValidationError,
)
from close_reports.source.ledger import RunLog
from close_reports.source.reshape import UnexpectedResponseError
from close_reports.source.settings import ALL_SEGMENT

EXIT_USAGE = 2
"""Bad options or configuration: nothing was read or written."""
EXIT_FAILED = 1
"""The load or the dbt build failed; tables and state are as before the run."""
EXIT_PARTIAL = 3
"""Some reports were refused or failed and were skipped; every other report loaded."""


class UsageError(Exception):
    """A bad command-line option or setting, with a message that says how to fix it."""


class DbtBuildError(Exception):
    """dbt build (models or tests) failed."""


class PartialLoadError(Exception):
    """Some report units failed; the rest loaded (or nothing did, when ``loaded`` is false)."""

    def __init__(self, failures: List[str], loaded: bool) -> None:
        what = "the other reports loaded" if loaded else "nothing was loaded"
        super().__init__(
            f"{len(failures)} report(s) not loaded ({what}; their tables and state are "
            f"unchanged, rerun to retry them): " + "; ".join(failures)
        )
        self.failures = failures
        self.loaded = loaded


def failed_reports(run_log: RunLog) -> List[str]:
    """What failed, one item per cause and org: the reports (and segments) it stopped, then
    the cause (Close's message; the first failure when Close went down for every report)."""
    grouped: Dict[Tuple[str, str], List[str]] = {}
    for entry in run_log.failed:
        name = entry.report + ("" if entry.segment == ALL_SEGMENT else f" [{entry.segment}]")
        grouped.setdefault((entry.org_id, entry.cause or entry.error or "?"), []).append(name)
    return [
        f"{', '.join(names)} (org {org_id}): {cause}" for (org_id, cause), names in grouped.items()
    ]


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it (dlt's wrapped ``exception``, causes, contexts)."""
    seen: set[int] = set()
    queue: List[BaseException] = [exc]
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = getattr(current, "exception", None)
        for following in (nested, current.__cause__, current.__context__):
            if isinstance(following, BaseException):
                queue.append(following)


def explain(exc: BaseException) -> Tuple[str, int]:
    """The message and exit status for a failed command."""
    chain = list(causes(exc))
    for cause in chain:
        if isinstance(cause, UsageError):
            return str(cause), EXIT_USAGE
    for cause in chain:
        if isinstance(cause, PartialLoadError):
            return str(cause), EXIT_PARTIAL if cause.loaded else EXIT_FAILED
    for cause in chain:
        if isinstance(cause, (CloseAuthError, CloseValidationError)):
            return str(cause), EXIT_FAILED
    for cause in chain:
        if isinstance(cause, CloseAPIError):
            return str(cause), EXIT_FAILED
    for cause in chain:
        if isinstance(cause, UnexpectedResponseError):
            return f"Close sent a response the loader cannot read: {cause}", EXIT_FAILED
    for cause in chain:
        if isinstance(cause, CloseConfigError):
            return str(cause), EXIT_USAGE
    for cause in chain:
        if _is_duckdb_lock(cause):
            return _duckdb_lock_message(cause), EXIT_FAILED
    for cause in chain:
        if isinstance(cause, DbtBuildError):
            return str(cause), EXIT_FAILED
    innermost = chain[-1]
    return f"{type(innermost).__name__}: {innermost}", EXIT_FAILED


def _is_duckdb_lock(exc: BaseException) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


def _duckdb_lock_message(exc: BaseException) -> str:
    return (
        "The DuckDB file is locked by another process (a DuckDB CLI, a notebook, a BI tool or "
        "another pipeline run): close it, or load into another file with --duckdb-path. "
        f"({str(exc).splitlines()[0]})"
    )
