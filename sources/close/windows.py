"""Day windows in the configured timezone: planning, splitting and the request bounds.

Every report is read in half-open windows ``[start, end)`` of whole local days. A run never
includes today (a partial day). Incremental state keeps the last complete day loaded per
resource and org; each run re-reads ``lookback_days`` before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Iterator, List, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import CloseConfigError
from .settings import OVERVIEW_MAX_DAYS

ONE_DAY = timedelta(days=1)


def utc_now() -> datetime:
    """The current instant; tests replace it to pin "today"."""
    return datetime.now(dt_timezone.utc)


@dataclass(frozen=True, order=True)
class Window:
    """A half-open range of local days ``[start, end)``."""

    start: date
    end: date

    @property
    def days(self) -> int:
        """Number of days in the window."""
        return (self.end - self.start).days

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def zone(timezone: str) -> ZoneInfo:
    """The IANA zone for ``timezone``.

    Raises:
        ValueError: With a message naming the setting when the zone is unknown.
    """
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CloseConfigError(
            f"Unknown timezone {timezone!r}: set SOURCES__CLOSE__TIMEZONE (or `timezone` under "
            "[sources.close] in .dlt/config.toml) to an IANA name such as 'UTC' or "
            "'America/New_York'."
        ) from exc


def parse_day(value: str | date | None, setting: str) -> Optional[date]:
    """Parses a ``YYYY-MM-DD`` setting.

    Raises:
        ValueError: With a message naming ``setting`` when the value is not a date.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise CloseConfigError(
            f"{setting} must be a date written YYYY-MM-DD, got {value!r}."
        ) from exc


def local_today(timezone: str, now: Optional[datetime] = None) -> date:
    """Today's date in ``timezone``: the first day a run must not load."""
    return (now or utc_now()).astimezone(zone(timezone)).date()


def local_midnight(day: date, timezone: str) -> datetime:
    """The aware instant at which ``day`` starts in ``timezone``."""
    return datetime(day.year, day.month, day.day, tzinfo=zone(timezone))


def utc_offset_hours(day: date, timezone: str) -> float:
    """The zone's UTC offset in hours at the start of ``day`` (the ``X-TZ-Offset`` value)."""
    offset = local_midnight(day, timezone).utcoffset() or timedelta(0)
    return offset.total_seconds() / 3600


def plan_range(
    *,
    today: date,
    last_loaded_day: Optional[date],
    start_date: Optional[date],
    end_date: Optional[date],
    lookback_days: int,
    initial_days: int,
) -> Optional[Window]:
    """The range of days one run reads, or None when there is nothing complete to read.

    Args:
        today: Today in the report timezone; never read.
        last_loaded_day: The last complete day in state, or None on a first run.
        start_date: Configured first day; used when there is no state, or for a backfill.
        end_date: Exclusive end of a backfill. When set, state is neither read nor moved.
        lookback_days: Days before the day after ``last_loaded_day`` that are re-read.
        initial_days: Days loaded by a first run without ``start_date``.

    Raises:
        ValueError: When ``start_date`` is not before ``end_date``.
    """
    if start_date and end_date and start_date >= end_date:
        raise CloseConfigError(
            f"start date {start_date.isoformat()} must be before end date "
            f"{end_date.isoformat()} (the end is exclusive)."
        )
    default_start = today - timedelta(days=initial_days)
    if end_date is not None:
        start = start_date or default_start
        end = min(end_date, today)
    elif last_loaded_day is not None:
        start = last_loaded_day + ONE_DAY - timedelta(days=max(lookback_days, 0))
        end = today
    else:
        start = start_date or default_start
        end = today
    if start >= end:
        return None
    return Window(start, end)


def day_windows(window: Window) -> List[Window]:
    """One window per day of ``window``."""
    return [
        Window(window.start + timedelta(days=i), window.start + timedelta(days=i + 1))
        for i in range(window.days)
    ]


def month_start(day: date) -> date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The first day of the month after ``day``'s month."""
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def month_windows(window: Window) -> List[Window]:
    """Calendar months overlapping ``window``, each starting on the 1st.

    A month is never clipped at its start (so its merge key stays the month), only at the end
    of ``window`` (month to date while it is open, or a backfill's end).
    """
    months: List[Window] = []
    start = month_start(window.start)
    while start < window.end:
        months.append(Window(start, min(next_month(start), window.end)))
        start = next_month(start)
    return months


def overview_windows(
    window: Window, timezone: str, max_days: int = OVERVIEW_MAX_DAYS
) -> List[Window]:
    """Splits ``window`` for multi-day overview calls.

    Each piece has at most ``max_days`` days and one UTC offset from its first midnight to its
    end, so a single ``X-TZ-Offset`` buckets it correctly. A day on which the offset changes
    (a DST switch) gets a request of its own.
    """
    pieces: List[Window] = []
    current: Optional[date] = None
    current_offset: Optional[float] = None
    for day in _days(window):
        begins = utc_offset_hours(day, timezone)
        ends = utc_offset_hours(day + ONE_DAY, timezone)
        if begins != ends:
            if current is not None:
                pieces.append(Window(current, day))
            pieces.append(Window(day, day + ONE_DAY))
            current, current_offset = None, None
            continue
        if current is None:
            current, current_offset = day, begins
        elif begins != current_offset or (day - current).days >= max_days:
            pieces.append(Window(current, day))
            current, current_offset = day, begins
    if current is not None:
        pieces.append(Window(current, window.end))
    return pieces


def _days(window: Window) -> Iterator[date]:
    for i in range(window.days):
        yield window.start + timedelta(days=i)


def is_offset_constant(window: Window, timezone: str) -> bool:
    """Whether the UTC offset is the same at the window's start and end."""
    return utc_offset_hours(window.start, timezone) == utc_offset_hours(window.end, timezone)


def iso_instant(day: date, timezone: str) -> str:
    """Local midnight of ``day`` as ISO 8601 with its offset (``Z`` for UTC)."""
    text = local_midnight(day, timezone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def datetime_range(window: Window, timezone: str) -> dict[str, str]:
    """The ``datetime_range`` body field of a POST report for ``window``."""
    return {"start": iso_instant(window.start, timezone), "end": iso_instant(window.end, timezone)}


def date_params(window: Window, timezone: str) -> dict[str, str]:
    """``date_start`` / ``date_end`` query parameters of a GET report for ``window``.

    Plain ``YYYY-MM-DD`` dates (read by Close in the ``X-TZ-Offset`` zone) when the offset is
    the same at both ends; exact ISO instants when a DST change falls inside the window.
    """
    if is_offset_constant(window, timezone):
        return {"date_start": window.start.isoformat(), "date_end": window.end.isoformat()}
    return {
        "date_start": iso_instant(window.start, timezone),
        "date_end": iso_instant(window.end, timezone),
    }
