"""Day windows: planning from state, splitting, DST, and the bounds sent to Close."""

from datetime import date, datetime, timezone

import pytest

from close_reports.source.windows import (
    Window,
    date_params,
    datetime_range,
    day_windows,
    local_today,
    month_windows,
    overview_windows,
    parse_day,
    plan_range,
    utc_offset_hours,
    zone,
)

TODAY = date(2026, 3, 20)


def plan(**kwargs):
    defaults = dict(
        today=TODAY,
        last_loaded_day=None,
        start_date=None,
        end_date=None,
        lookback_days=3,
        initial_days=90,
    )
    return plan_range(**{**defaults, **kwargs})


def test_first_run_reads_initial_days_up_to_yesterday() -> None:
    assert plan() == Window(date(2025, 12, 20), TODAY)


def test_first_run_from_start_date() -> None:
    assert plan(start_date=date(2026, 3, 1)) == Window(date(2026, 3, 1), TODAY)


def test_incremental_run_rereads_lookback_days() -> None:
    assert plan(last_loaded_day=date(2026, 3, 17)) == Window(date(2026, 3, 15), TODAY)
    assert plan(last_loaded_day=date(2026, 3, 19), lookback_days=0) is None


def test_state_wins_over_start_date_without_end_date() -> None:
    assert plan(last_loaded_day=date(2026, 3, 17), start_date=date(2026, 1, 1)).start == date(
        2026, 3, 15
    )


def test_backfill_ignores_state_and_never_reaches_today() -> None:
    window = plan(
        last_loaded_day=date(2026, 3, 17), start_date=date(2026, 3, 1), end_date=date(2026, 4, 1)
    )
    assert window == Window(date(2026, 3, 1), TODAY)


def test_start_after_end_is_refused() -> None:
    with pytest.raises(ValueError, match="must be before end date"):
        plan(start_date=date(2026, 3, 5), end_date=date(2026, 3, 5))


def test_parse_day_messages_name_the_setting() -> None:
    assert parse_day("2026-03-01", "x") == date(2026, 3, 1)
    assert parse_day(None, "x") is None
    with pytest.raises(ValueError, match="--start must be a date written YYYY-MM-DD"):
        parse_day("03/01/2026", "--start")


def test_unknown_timezone_says_how_to_fix() -> None:
    with pytest.raises(ValueError, match="SOURCES__CLOSE__TIMEZONE"):
        zone("Mars/Olympus")


def test_local_today_depends_on_timezone() -> None:
    now = datetime(2026, 3, 20, 2, 0, tzinfo=timezone.utc)
    assert local_today("UTC", now) == date(2026, 3, 20)
    assert local_today("America/Los_Angeles", now) == date(2026, 3, 19)


def test_day_and_month_windows() -> None:
    span = Window(date(2026, 1, 30), date(2026, 3, 3))
    assert len(day_windows(span)) == 32
    assert day_windows(span)[0] == Window(date(2026, 1, 30), date(2026, 1, 31))
    assert month_windows(span) == [
        Window(date(2026, 1, 1), date(2026, 2, 1)),  # a month always starts on the 1st
        Window(date(2026, 2, 1), date(2026, 3, 1)),
        Window(date(2026, 3, 1), date(2026, 3, 3)),  # month to date
    ]
    assert month_windows(Window(date(2025, 12, 31), date(2026, 1, 1))) == [
        Window(date(2025, 12, 1), date(2026, 1, 1))
    ]


def test_overview_windows_are_capped_in_length() -> None:
    pieces = overview_windows(Window(date(2026, 1, 1), date(2026, 3, 5)), "UTC", max_days=31)
    assert pieces == [
        Window(date(2026, 1, 1), date(2026, 2, 1)),
        Window(date(2026, 2, 1), date(2026, 3, 4)),
        Window(date(2026, 3, 4), date(2026, 3, 5)),
    ]


def test_overview_windows_split_at_dst_with_the_switch_day_alone() -> None:
    # US DST starts on Sunday 2026-03-08
    pieces = overview_windows(Window(date(2026, 3, 5), date(2026, 3, 12)), "America/New_York")
    assert pieces == [
        Window(date(2026, 3, 5), date(2026, 3, 8)),
        Window(date(2026, 3, 8), date(2026, 3, 9)),
        Window(date(2026, 3, 9), date(2026, 3, 12)),
    ]
    assert [utc_offset_hours(p.start, "America/New_York") for p in pieces] == [-5, -5, -4]


def test_request_bounds_in_utc_and_across_dst() -> None:
    day = Window(date(2019, 1, 1), date(2019, 1, 2))
    assert datetime_range(day, "UTC") == {
        "start": "2019-01-01T00:00:00Z",
        "end": "2019-01-02T00:00:00Z",
    }
    assert date_params(day, "UTC") == {"date_start": "2019-01-01", "date_end": "2019-01-02"}
    switch = Window(date(2026, 3, 8), date(2026, 3, 9))
    assert datetime_range(switch, "America/New_York") == {
        "start": "2026-03-08T00:00:00-05:00",
        "end": "2026-03-09T00:00:00-04:00",
    }
    assert date_params(switch, "America/New_York") == {
        "date_start": "2026-03-08T00:00:00-05:00",
        "date_end": "2026-03-09T00:00:00-04:00",
    }
    assert utc_offset_hours(date(2026, 1, 1), "Asia/Kolkata") == 5.5


@pytest.mark.parametrize(
    "zone_name, day, hours",
    [
        ("America/New_York", date(2024, 1, 15), -5.0),
        ("America/New_York", date(2024, 7, 15), -4.0),
        ("America/New_York", date(2024, 3, 10), -5.0),  # DST starts later that day
        ("America/New_York", date(2024, 3, 11), -4.0),
        ("Asia/Kolkata", date(2024, 7, 15), 5.5),
        ("Asia/Kathmandu", date(2024, 7, 15), 5.75),
        ("America/St_Johns", date(2024, 1, 15), -3.5),
        ("UTC", date(2024, 7, 15), 0.0),
    ],
)
def test_utc_offset_hours_at_local_midnight(zone_name: str, day: date, hours: float) -> None:
    assert utc_offset_hours(day, zone_name) == hours
