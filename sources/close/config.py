"""The source's settings, checked once: keys, dates, windows, refresh windows, segments and
Explorer queries. Every problem is a ``CloseConfigError`` naming the setting and how to fix it,
raised before any request is sent."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import CloseConfigError
from .settings import (
    ALL_SEGMENT,
    DEFAULT_INITIAL_DAYS,
    MAX_REREAD_DAYS,
    OVERVIEW_MAX_DAYS,
    REPORT_TABLES,
)
from .windows import check_order, parse_day, zone

MISSING_KEY_MESSAGE = (
    "No Close API key configured: set SOURCES__CLOSE__API_KEY (or `api_key` under "
    "[sources.close] in .dlt/secrets.toml). Create a key in Close under Settings -> "
    "Developer -> API Keys. For several orgs set SOURCES__CLOSE__API_KEYS to a JSON list."
)
"""The one message for a missing key (the source and the client both raise it)."""

SEGMENT_FILTERS = ("smart_view_id", "query", "user_ids", "pipeline_ids")
"""The filters a segment may set; each report says which of them it accepts (``reports``)."""

_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True)
class Segment:
    """A slice of an org Close filters server-side (a Smart View, a query, some reps ...).

    Its rows carry ``segment = name``; the unfiltered rows are ``ALL``.
    """

    name: str
    smart_view_id: Optional[str] = None
    query: Optional[str] = None
    user_ids: Tuple[str, ...] = ()
    pipeline_ids: Tuple[str, ...] = ()
    reports: Optional[Tuple[str, ...]] = None
    """Table names the segment applies to; None = every report accepting its filters."""

    @property
    def filters(self) -> Tuple[str, ...]:
        """The filters this segment sets."""
        return tuple(name for name in SEGMENT_FILTERS if getattr(self, name))


ALL = Segment(ALL_SEGMENT)


@dataclass(frozen=True)
class SourceConfig:
    """Everything ``close_source`` was configured with, validated."""

    api_keys: Tuple[str, ...]
    timezone: str
    start_date: Optional[date]
    end_date: Optional[date]
    lookback_days: int
    refresh_days: Dict[str, int]
    force_refresh_days: Optional[int]
    segments: Tuple[Segment, ...]
    custom_reports: Tuple[Dict[str, Any], ...]
    overview_max_days: int
    metrics_chunk_size: int
    workers: int
    initial_days: int = DEFAULT_INITIAL_DAYS

    @property
    def is_backfill(self) -> bool:
        """A bounded ``start_date``/``end_date`` run: incremental state is not used."""
        return self.end_date is not None


def check_config(
    *,
    api_key: Optional[str],
    api_keys: Optional[Sequence[str]],
    timezone: str,
    start_date: Any,
    end_date: Any,
    lookback_days: Any,
    refresh_days: Optional[Mapping[str, Any]],
    force_refresh_days: Any,
    segments: Optional[Sequence[Any]],
    custom_reports: Optional[Sequence[Any]],
    overview_max_days: Any,
    metrics_chunk_size: Any,
    workers: Any,
) -> SourceConfig:
    """Validates the source's arguments.

    Raises:
        CloseConfigError: For the first problem found, naming the setting.
    """
    keys = _api_keys(api_key, api_keys)
    zone(timezone)
    start = parse_day(start_date, "start_date (--start, SOURCES__CLOSE__START_DATE)")
    end = parse_day(end_date, "end_date (--end)")
    check_order(start, end)
    lookback = _days(lookback_days, "lookback_days (SOURCES__CLOSE__LOOKBACK_DAYS)")
    return SourceConfig(
        api_keys=keys,
        timezone=timezone,
        start_date=start,
        end_date=end,
        lookback_days=lookback,
        refresh_days=_refresh_days(refresh_days),
        force_refresh_days=None
        if force_refresh_days is None
        else _days(force_refresh_days, "--refresh-days"),
        segments=_segments(segments),
        custom_reports=_custom_reports(custom_reports),
        overview_max_days=_whole(overview_max_days, "overview_max_days", low=1, high=366),
        metrics_chunk_size=_whole(metrics_chunk_size, "metrics_chunk_size", low=0),
        workers=max(1, _whole(workers, "workers (SOURCES__CLOSE__WORKERS)", low=0)),
    )


def _api_keys(api_key: Optional[str], api_keys: Optional[Sequence[str]]) -> Tuple[str, ...]:
    if isinstance(api_keys, str):
        raise CloseConfigError(
            "api_keys (SOURCES__CLOSE__API_KEYS) must be a JSON list of keys, e.g. "
            '\'["api_one", "api_two"]\'.'
        )
    keys = [k for k in ([api_key] if api_key else []) + list(api_keys or []) if k]
    if not all(isinstance(k, str) for k in keys):
        raise CloseConfigError("api_keys (SOURCES__CLOSE__API_KEYS) must hold strings only.")
    if not keys:
        raise CloseConfigError(MISSING_KEY_MESSAGE)
    return tuple(dict.fromkeys(keys))


def _whole(value: Any, setting: str, *, low: int = 0, high: Optional[int] = None) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CloseConfigError(f"{setting} must be a whole number, got {value!r}.")
    number: int = value
    if number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f"{low} or more"
        raise CloseConfigError(f"{setting} must be {bounds}, got {number}.")
    return number


def _days(value: Any, setting: str) -> int:
    """A lookback / refresh window: 0 to ``MAX_REREAD_DAYS`` days."""
    return _whole(value, f"{setting} (days re-read each run)", low=0, high=MAX_REREAD_DAYS)


def _refresh_days(value: Optional[Mapping[str, Any]]) -> Dict[str, int]:
    setting = "refresh_days ([sources.close.refresh_days], SOURCES__CLOSE__REFRESH_DAYS)"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CloseConfigError(
            f"{setting} must be a table of report table -> days, e.g. "
            "'{\"sent_emails_by_template\": 45}'."
        )
    unknown = sorted(set(value) - set(REPORT_TABLES))
    if unknown:
        raise CloseConfigError(
            f"{setting}: unknown report table(s) {', '.join(unknown)}; the report tables are "
            f"{', '.join(REPORT_TABLES)}."
        )
    return {table: _days(days, f"{setting}.{table}") for table, days in value.items()}


def _segments(value: Optional[Sequence[Any]]) -> Tuple[Segment, ...]:
    setting = "segments ([[sources.close.segments]], SOURCES__CLOSE__SEGMENTS)"
    if value is None:
        return ()
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
        raise CloseConfigError(f"{setting} must be a list of tables / a JSON list of objects.")
    segments: List[Segment] = []
    for entry in value:
        if not isinstance(entry, Mapping) or not entry.get("name"):
            raise CloseConfigError(f"Each entry of {setting} needs a `name`; got {entry!r}.")
        name = str(entry["name"])
        unknown = sorted(set(entry) - {"name", "reports", *SEGMENT_FILTERS})
        if unknown:
            raise CloseConfigError(
                f"segment {name!r}: unknown key(s) {', '.join(unknown)}; a segment has name, "
                f"{', '.join(SEGMENT_FILTERS)} and reports."
            )
        if not _NAME.match(name) or name == ALL_SEGMENT:
            raise CloseConfigError(
                f"segment name {name!r} must be letters, digits, '_' or '-' and not "
                f"{ALL_SEGMENT!r} (the unfiltered rows)."
            )
        if any(s.name == name for s in segments):
            raise CloseConfigError(f"segments: the name {name!r} is used twice.")
        reports = entry.get("reports")
        if reports is not None:
            reports = _names(reports, f"segment {name!r} reports")
            unknown_tables = sorted(set(reports) - set(REPORT_TABLES))
            if unknown_tables:
                raise CloseConfigError(
                    f"segment {name!r}: unknown report table(s) {', '.join(unknown_tables)}; "
                    f"the report tables are {', '.join(REPORT_TABLES)}."
                )
        segment = Segment(
            name=name,
            smart_view_id=_text(entry.get("smart_view_id"), f"segment {name!r} smart_view_id"),
            query=_text(entry.get("query"), f"segment {name!r} query"),
            user_ids=_names(entry.get("user_ids") or (), f"segment {name!r} user_ids"),
            pipeline_ids=_names(entry.get("pipeline_ids") or (), f"segment {name!r} pipeline_ids"),
            reports=reports,
        )
        if not segment.filters:
            raise CloseConfigError(
                f"segment {name!r} sets no filter: give it smart_view_id, query, user_ids or "
                "pipeline_ids."
            )
        segments.append(segment)
    return tuple(segments)


def _text(value: Any, setting: str) -> Optional[str]:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise CloseConfigError(f"{setting} must be text, got {value!r}.")
    return value


def _names(value: Any, setting: str) -> Tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v for v in value):
        raise CloseConfigError(f"{setting} must be a list of ids / names, got {value!r}.")
    return tuple(value)


def _custom_reports(reports: Optional[Sequence[Any]]) -> Tuple[Dict[str, Any], ...]:
    checked: List[Dict[str, Any]] = []
    for report in reports or []:
        if not isinstance(report, Mapping) or not report.get("name") or not report.get("x"):
            raise CloseConfigError(
                "Each entry of custom_reports (in .dlt/config.toml, [[sources.close.custom_"
                f"reports]]) needs at least `name` and `x`; got {report!r}."
            )
        if any(r["name"] == report["name"] for r in checked):
            raise CloseConfigError(f"custom_reports: the name {report['name']!r} is used twice.")
        checked.append(dict(report))
    return tuple(checked)


EXPLORER_FIELD_PARAMS = ("x", "y", "group_by")


def check_explorer_fields(
    queries: Sequence[Mapping[str, Any]], field_names: Sequence[str], org_id: str
) -> None:
    """Refuses an Explorer query naming a field Close does not list for the org.

    Raises:
        CloseConfigError: Naming the query, the parameter, the field and the closest listed
            fields.
    """
    listed = set(field_names)
    for query in queries:
        for param in EXPLORER_FIELD_PARAMS:
            value = query.get(param)
            if value in (None, "") or str(value) in listed:
                continue
            closest = difflib.get_close_matches(str(value), field_names, n=3, cutoff=0.5)
            hint = f"; closest listed: {', '.join(closest)}" if closest else ""
            raise CloseConfigError(
                f"custom_reports {query['name']!r}: {param} = {value!r} is not a field Close "
                f"lists in GET /report/custom/fields/ for organization {org_id}{hint}. Fix "
                "the query in [[sources.close.custom_reports]] (.dlt/config.toml)."
            )


__all__ = [
    "ALL",
    "MISSING_KEY_MESSAGE",
    "OVERVIEW_MAX_DAYS",
    "SEGMENT_FILTERS",
    "Segment",
    "SourceConfig",
    "check_config",
]
