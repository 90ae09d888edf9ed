"""Time arithmetic of the simulator: fixed UTC offsets, parsing, relative ranges, buckets.

All instants are integer UTC epoch seconds. A request's timezone is the fixed offset of its
``X-TZ-Offset`` header (hours, possibly fractional), as Close applies it; local days, weeks
(Monday-start), months, quarters and years are computed in that offset.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Union

DAY = 86_400

RELATIVE_RANGES = (
    "today",
    "this-week",
    "this-month",
    "this-quarter",
    "this-year",
    "yesterday",
    "last-week",
    "last-month",
    "last-quarter",
    "last-year",
    "all-time",
)

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class TimeParseError(ValueError):
    """A date, datetime or offset the simulator cannot read."""


Instant = Union[date, datetime, int, float, str]
"""A moment: an aware datetime (naive = UTC), a date (its 00:00 UTC), epoch seconds, or an
ISO 8601 string of either."""


def to_epoch(value: Instant) -> int:
    """Epoch seconds (floored) of an ``Instant``.

    Raises:
        ValueError: A string that is neither a date nor an ISO 8601 datetime.
        TypeError: Any other type.
    """
    if isinstance(value, bool):
        raise TypeError(f"not an instant: {value!r}")
    if isinstance(value, int | float):
        return int(value // 1)
    if isinstance(value, str):
        text = value.strip()
        if _DATE_RE.match(text):
            return to_epoch(date.fromisoformat(text))
        return to_epoch(datetime.fromisoformat(text.replace("z", "Z")))
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(moment.timestamp() // 1)
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
    raise TypeError(f"not an instant: {value!r}")


def parse_tz_offset(header: str | None) -> int:
    """Seconds east of UTC from an ``X-TZ-Offset`` header value (hours; ``None`` -> 0)."""
    if header is None or header.strip() == "":
        return 0
    try:
        hours = float(header)
    except ValueError as exc:
        raise TimeParseError(f"Invalid X-TZ-Offset: {header!r}") from exc
    if not -14 <= hours <= 14:
        raise TimeParseError(f"Invalid X-TZ-Offset: {header!r}")
    return int(round(hours * 3600))


def format_offset(offset: int, colon: bool = True) -> str:
    """``+HH:MM`` (or ``+HHMM``) rendering of an offset in seconds."""
    sign = "-" if offset < 0 else "+"
    minutes = abs(offset) // 60
    sep = ":" if colon else ""
    return f"{sign}{minutes // 60:02d}{sep}{minutes % 60:02d}"


def local_midnight(day: date, offset: int) -> int:
    """Epoch seconds of local midnight starting ``day`` in the zone ``offset``."""
    return (day - date(1970, 1, 1)).days * DAY - offset


def local_date(ts: int, offset: int) -> date:
    """Local calendar date of an instant."""
    return date(1970, 1, 1) + timedelta(days=(ts + offset) // DAY)


def render_local(ts: int, offset: int) -> str:
    """ISO 8601 rendering with the zone's offset: ``2019-01-01T00:00:00+00:00``."""
    tz = timezone(timedelta(seconds=offset))
    return datetime.fromtimestamp(ts, tz=tz).isoformat()


def render_utc_query(ts: int) -> str:
    """``2014-01-01 08:00:00`` (UTC) as in Close's search-query strings."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_query_instant(ts: int, offset: int) -> str:
    """``2019-01-01T00:00:00.000+0000`` as in the activity report's ``queries``."""
    tz = timezone(timedelta(seconds=offset))
    text = datetime.fromtimestamp(ts, tz=tz).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.000{format_offset(offset, colon=False)}"


def parse_instant(value: object, offset: int) -> int:
    """Epoch seconds of a ``YYYY-MM-DD`` date (local midnight in ``offset``) or an ISO 8601
    datetime (``Z`` / ``+HH:MM``; a naive one is read in ``offset``).

    Raises:
        TimeParseError: The value is not a date or datetime.
    """
    if not isinstance(value, str) or not value.strip():
        raise TimeParseError(f"Invalid date: {value!r}")
    text = value.strip()
    if _DATE_RE.match(text):
        try:
            return local_midnight(date.fromisoformat(text), offset)
        except ValueError as exc:
            raise TimeParseError(f"Invalid date: {value!r}") from exc
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise TimeParseError(f"Invalid datetime: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone(timedelta(seconds=offset)))
    return int(moment.timestamp() // 1)


def week_start(day: date) -> date:
    """Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def month_start(day: date) -> date:
    """First day of ``day``'s month."""
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    """First day of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def quarter_start(day: date) -> date:
    """First day of ``day``'s quarter."""
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def relative_range(name: str, today: date, offset: int, first_day: date) -> tuple[int, int]:
    """Half-open instants of a relative range, evaluated in the zone ``offset``.

    ``this-*`` ranges run from the start of the current period to the end of today;
    ``last-*`` ranges are the previous complete period; ``all-time`` starts at ``first_day``.

    Raises:
        ValueError: Unknown range name.
    """
    tomorrow = today + timedelta(days=1)
    if name == "today":
        lo, hi = today, tomorrow
    elif name == "yesterday":
        lo, hi = today - timedelta(days=1), today
    elif name == "this-week":
        lo, hi = week_start(today), tomorrow
    elif name == "last-week":
        hi = week_start(today)
        lo = hi - timedelta(days=7)
    elif name == "this-month":
        lo, hi = month_start(today), tomorrow
    elif name == "last-month":
        hi = month_start(today)
        lo = add_months(hi, -1)
    elif name == "this-quarter":
        lo, hi = quarter_start(today), tomorrow
    elif name == "last-quarter":
        hi = quarter_start(today)
        lo = add_months(hi, -3)
    elif name == "this-year":
        lo, hi = date(today.year, 1, 1), tomorrow
    elif name == "last-year":
        lo, hi = date(today.year - 1, 1, 1), date(today.year, 1, 1)
    elif name == "all-time":
        lo, hi = first_day, tomorrow
    else:
        raise ValueError(name)
    return local_midnight(lo, offset), local_midnight(hi, offset)


def bucket_interval(start: int, end: int) -> str:
    """Overview bucket size for a window: ``day`` up to 62 days, ``week`` up to 366, else
    ``month`` (like a reporting backend that coarsens long ranges)."""
    days = -(-(end - start) // DAY)
    if days <= 62:
        return "day"
    if days <= 366:
        return "week"
    return "month"


def period_start(day: date, interval: str) -> date:
    """Start of the ``day`` / ``week`` / ``month`` / ``quarter`` / ``year`` containing ``day``."""
    if interval == "day":
        return day
    if interval == "week":
        return week_start(day)
    if interval == "month":
        return month_start(day)
    if interval == "quarter":
        return quarter_start(day)
    if interval == "year":
        return date(day.year, 1, 1)
    raise ValueError(interval)


def next_period(day: date, interval: str) -> date:
    """Start of the period after the one starting at ``day``."""
    if interval == "day":
        return day + timedelta(days=1)
    if interval == "week":
        return day + timedelta(days=7)
    if interval == "month":
        return add_months(day, 1)
    if interval == "quarter":
        return add_months(day, 3)
    if interval == "year":
        return date(day.year + 1, 1, 1)
    raise ValueError(interval)


def buckets(start: int, end: int, offset: int, interval: str) -> list[tuple[int, int, int]]:
    """Calendar buckets covering ``[start, end)`` in the zone ``offset``.

    Returns:
        ``(label_ts, lo, hi)`` per bucket: ``label_ts`` is the aligned local start of the
        period (it may precede ``start``), ``[lo, hi)`` the part of the window it covers.
    """
    result: list[tuple[int, int, int]] = []
    if end <= start:
        return result
    if interval == "hour":
        label = start - (start + offset) % 3600
        while label < end:
            result.append((label, max(label, start), min(label + 3600, end)))
            label += 3600
        return result
    day = period_start(local_date(start, offset), interval)
    while True:
        label = local_midnight(day, offset)
        if label >= end:
            break
        nxt = next_period(day, interval)
        result.append((label, max(label, start), min(local_midnight(nxt, offset), end)))
        day = nxt
    return result
