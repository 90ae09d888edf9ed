"""Calendar math in the report timezone: windows of whole local days and their request bounds.

Every report is read in half-open windows ``[start, end)`` of whole local days. A run never
includes today (a partial day). pendulum (dlt's own date library) does the calendar and
timezone arithmetic: local midnights, UTC offsets across DST, months, weeks, quarters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable, List, Optional

from dlt.common.pendulum import pendulum

from .errors import CloseConfigError
from .settings import OVERVIEW_MAX_DAYS

ONE_DAY = timedelta(days=1)

Clock = Callable[[], datetime]
"""Returns the current aware instant (``close_source(clock=...)`` in tests)."""


def utc_now() -> datetime:
    """The current instant."""
    return pendulum.now("UTC")


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


def zone(timezone: str) -> pendulum.Timezone:
    """The IANA zone for ``timezone``.

    Raises:
        CloseConfigError: With a message naming the setting when the zone is unknown.
    """
    try:
        return pendulum.timezone(timezone)
    except Exception as exc:  # noqa: BLE001 - pendulum raises several types for bad names
        raise CloseConfigError(
            f"Unknown timezone {timezone!r}: set SOURCES__CLOSE__TIMEZONE (or `timezone` under "
            "[sources.close] in .dlt/config.toml) to an IANA name such as 'UTC' or "
            "'America/New_York'."
        ) from exc


def parse_day(value: str | date | None, setting: str) -> Optional[date]:
    """Parses a ``YYYY-MM-DD`` setting; the one date validation of the source and the CLI.

    Raises:
        CloseConfigError: With a message naming ``setting`` when the value is not a date.
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


def check_order(start: Optional[date], end: Optional[date], what: str = "start date") -> None:
    """Refuses a range whose start is not before its (exclusive) end.

    Raises:
        CloseConfigError: Naming both dates.
    """
    if start and end and start >= end:
        end_name = "--end" if what.startswith("--") else "end date"
        raise CloseConfigError(
            f"{what} {start.isoformat()} must be before {end_name} {end.isoformat()} (the end "
            "is exclusive: --start 2026-01-01 --end 2026-02-01 loads January)."
        )


def local_today(timezone: str, now: Optional[datetime] = None) -> date:
    """Today's date in ``timezone``: the first day a run must not load."""
    instant = pendulum.instance(now or utc_now())
    return _plain(instant.in_timezone(zone(timezone)).date())


def local_midnight(day: date, timezone: str) -> datetime:
    """The aware instant at which ``day`` starts in ``timezone``."""
    return pendulum.datetime(day.year, day.month, day.day, tz=zone(timezone))


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
        start_date: Configured first day; where a first run starts, the earliest day an
            incremental run re-reads, and the start of a backfill.
        end_date: Exclusive end of a backfill. When set, state is neither read nor moved.
        lookback_days: Days before the day after ``last_loaded_day`` that are re-read.
        initial_days: Days loaded by a first run without ``start_date``.

    Raises:
        CloseConfigError: When ``start_date`` is not before ``end_date``.
    """
    check_order(start_date, end_date)
    default_start = today - timedelta(days=initial_days)
    if end_date is not None:
        start = start_date or default_start
        end = min(end_date, today)
    elif last_loaded_day is not None:
        start = last_loaded_day + ONE_DAY - timedelta(days=max(lookback_days, 0))
        if start_date is not None:
            start = max(start, min(start_date, last_loaded_day + ONE_DAY))
        end = today
    else:
        start = start_date or default_start
        end = today
    if start >= end:
        return None
    return Window(start, end)


def day_windows(window: Window) -> List[Window]:
    """One window per day of ``window``."""
    return [Window(day, day + ONE_DAY) for day in _days(window)]


def _plain(day: date) -> date:
    """A ``datetime.date`` (pendulum's ``Date`` subclass carries behaviour Arrow, dlt and
    equality checks do not need)."""
    return date(day.year, day.month, day.day)


def month_start(day: date) -> date:
    """The first day of ``day``'s month."""
    return date(day.year, day.month, 1)


def next_month(day: date) -> date:
    """The first day of the month after ``day``'s month."""
    return _plain(pendulum.date(day.year, day.month, 1).add(months=1))


def bucket_start(day: date, unit: str) -> date:
    """The first day of the ``unit`` (``week`` from Monday, ``month``, ``quarter``, ``year``)
    holding ``day``."""
    if unit == "quarter":  # pendulum's Date knows weeks, months and years, not quarters
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return _plain(pendulum.date(day.year, day.month, day.day).start_of(unit))


def add_units(day: date, unit: str, count: int) -> date:
    """``day`` plus ``count`` weeks / months / quarters / years."""
    moved = pendulum.date(day.year, day.month, day.day)
    if unit == "quarter":
        return _plain(moved.add(months=3 * count))
    return _plain(moved.add(**{f"{unit}s": count}))


def whole_months(window: Window, today: date) -> Window:
    """``window`` widened to whole calendar months, but never past ``today``.

    A month report of a past month is only ever read whole: a backfill that ends mid-month
    must not replace a complete month with a partial one (only the current month is read to
    date).
    """
    last_month = month_start(window.end - ONE_DAY)
    return Window(month_start(window.start), min(next_month(last_month), today))


def month_windows(window: Window) -> List[Window]:
    """Calendar months overlapping ``window``, each starting on the 1st.

    A month is never clipped at its start (so its merge key stays the month), only at the end
    of ``window`` (month to date while it is open).
    """
    months: List[Window] = []
    start = month_start(window.start)
    while start < window.end:
        months.append(Window(start, min(next_month(start), window.end)))
        start = next_month(start)
    return months


INTERVAL_UNITS = {"week": "week", "quarter": "quarter", "year": "year"}
"""Explorer intervals whose buckets do not nest in calendar months; their windows are aligned
to the bucket instead (weeks start on Monday, as ISO weeks do)."""

WEEKS_PER_WINDOW = 4
WEEK_GRID = date(2001, 1, 1)
"""A Monday: week windows are the blocks of ``WEEKS_PER_WINDOW`` weeks counted from it, so
every run cuts the same windows (a window's start is its merge key)."""


def interval_windows(window: Window, interval: Optional[str], today: date) -> List[Window]:
    """Windows of an Explorer query: whole buckets of its ``interval``, never past ``today``.

    Day-or-finer intervals (and ``auto`` / an integer) are read per calendar month; weeks in
    blocks of ``WEEKS_PER_WINDOW`` Monday-aligned weeks on a fixed grid, quarters and years
    whole, so that no bucket is ever split between two windows (two partial rows with the same
    ``x``) and every run cuts the same windows.
    """
    unit = INTERVAL_UNITS.get(str(interval or "").lower())
    if unit is None:
        return month_windows(whole_months(window, today))
    step = WEEKS_PER_WINDOW if unit == "week" else 1
    start = bucket_start(window.start, unit)
    if unit == "week":
        weeks = (start - WEEK_GRID).days // 7
        start = start - timedelta(weeks=weeks % WEEKS_PER_WINDOW)
    windows: List[Window] = []
    while start < window.end and start < today:
        end = add_units(start, unit, step)
        windows.append(Window(start, min(end, today)))
        start = end
    return windows


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


def _days(window: Window) -> List[date]:
    return [window.start + timedelta(days=i) for i in range(window.days)]


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
