"""A small, hand-computed ``close_raw`` dataset for building and testing the dbt project.

``create_raw_fixture(path)`` writes a DuckDB file whose schema ``close_raw`` holds every table
of the raw-table contract (``close_reports.source.settings.TABLES``: typed columns, plus dlt's
``_dlt_load_id`` / ``_dlt_id``, plus one column per activity metric on the two activity tables)
filled with one coherent organization:

- 2 users (Ann, Bob) over 3 days, 2024-01-30 .. 2024-02-01 (a month boundary on purpose);
  Bob has no ``activity_by_user`` row on 2024-01-31, so the daily fact must zero-fill him.
- the org-wide overview is the sum of the users' rows, except ``leads.contacted.all.count``
  (a distinct count: Ann and Bob reached the same lead on 2024-01-30, so the org counts it once).
- lead statuses "Potential" (listed) and "Old" (deleted, absent from ``lead_statuses``) with
  day rows that chain (``ended`` of a day = ``started`` of the next) and balance
  (``ended = started + gained - lost``), plus January and February (month-to-date) rows.
- one pipeline "Sales" with stages Demo -> Proposal -> Won (and a Lost status), both funnel
  cohort types for January, per user and for the ``_all`` aggregation row.
- sent-email rows for two templates and the "All Emails" row per day.

The numbers the tests check are the module constants below (``EXPECTED_*``), computed by hand
from these rows. ``breaks`` corrupts the data in named ways, to prove the dbt tests fail.

Run as a script to write a file for a manual ``dbt build``::

    .venv/bin/python -m tests.dbt.fixtures /tmp/close_fixture.duckdb
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from dlt.common.normalizers.naming.snake_case import NamingConvention

from close_reports.source.settings import TABLES, metric_data_type

_NAMING = NamingConvention()
RAW_SCHEMA = "close_raw"
ORG_ID = "orga_fixture"
ALL = "_all"
"""The unfiltered segment."""
SEGMENT = "hot_leads"
"""The fixture's second segment: a Smart View's leads (see ``SEGMENT_*`` below)."""
TIMEZONE = "UTC"
LOAD_ID = "1706832000.000001"

D1, D2, D3 = date(2024, 1, 30), date(2024, 1, 31), date(2024, 2, 1)
DAYS = (D1, D2, D3)
JAN, FEB = date(2024, 1, 1), date(2024, 2, 1)

ANN, BOB = "user_ann", "user_bob"
USERS = {ANN: ("Ann", "Archer"), BOB: ("Bob", "Baker")}

POTENTIAL, QUALIFIED, OLD = "stat_lead_potential", "stat_lead_qualified", "stat_lead_old"
PIPELINE = "pipe_sales"
DEMO, PROPOSAL, WON, LOST = "stat_opp_demo", "stat_opp_proposal", "stat_opp_won", "stat_opp_lost"
OPP_STATUSES = {  # id -> (label, type, stage_index)
    DEMO: ("Demo", "active", 0),
    PROPOSAL: ("Proposal", "active", 1),
    WON: ("Won", "won", 2),
    LOST: ("Lost", "lost", 3),
}

BREAKS = ("status_balance", "status_chain", "org_totals", "funnel_cohort")
"""Names accepted by ``create_raw_fixture(breaks=...)``; each violates one invariant."""

# The 50 keys of Close's documented /report/activity/metrics/ example, plus two seen live.
METRIC_KEYS: tuple[str, ...] = (
    "calls.all.all.count",
    "calls.all.all.sum_duration",
    "calls.all.all.avg_duration",
    "calls.inbound.all.count",
    "calls.inbound.all.sum_duration",
    "calls.inbound.all.avg_duration",
    "calls.outbound.all.count",
    "calls.outbound.all.sum_duration",
    "calls.outbound.all.avg_duration",
    "calls.outbound.regular.count",
    "calls.outbound.regular.sum_duration",
    "calls.outbound.regular.avg_duration",
    "calls.outbound.external.count",
    "calls.outbound.external.sum_duration",
    "calls.outbound.external.avg_duration",
    "calls.outbound.power_dialer.count",
    "calls.outbound.power_dialer.sum_duration",
    "calls.outbound.power_dialer.avg_duration",
    "calls.outbound.predictive_dialer.count",
    "calls.outbound.predictive_dialer.sum_duration",
    "calls.outbound.predictive_dialer.avg_duration",
    "emails.sent.all.count",
    "emails.sent.sequences.count",
    "emails.sent.sequences_with_reply.count",
    "emails.sent.sequences_without_reply.count",
    "emails.sent.manual_with_reply.count",
    "emails.sent.bulk_with_reply.count",
    "emails.received.all.count",
    "emails.opened.all.count",
    "emails.opened.sequences.count",
    "sms.sent.all.count",
    "sms.received.all.count",
    "leads.created.all.count",
    "leads.contacted.all.count",
    "opportunities.created.all.count",
    "opportunities.created_for.all.count",
    "opportunities.won.all.count",
    "opportunities.won.all.sum_annualized_value",
    "opportunities.lost.all.count",
    "opportunities.lost.all.sum_annualized_value",
    "opportunities.value_won.one_time.count",
    "opportunities.value_won.one_time.sum_value",
    "opportunities.value_won.monthly.count",
    "opportunities.value_won.monthly.sum_value",
    "opportunities.value_won.annual.count",
    "opportunities.value_won.annual.sum_value",
    "opportunities.value_lost.one_time.count",
    "opportunities.value_lost.one_time.sum_value",
    "opportunities.value_lost.monthly.count",
    "opportunities.value_lost.monthly.sum_value",
    "opportunities.value_lost.annual.count",
    "opportunities.value_lost.annual.sum_value",
)
ACTIVITY_TABLES = ("activity_overview", "activity_by_user")
REPORT_TABLES = (
    "activity_overview",
    "activity_by_user",
    "sent_emails_by_template",
    "lead_status_overview",
    "lead_status_transitions",
    "opportunity_status_overview",
    "opportunity_status_transitions",
    "funnel_totals",
    "funnel_stages",
    "custom_reports",
)
"""Tables whose key has ``segment`` right after ``org_id`` (the contract of the segments work)."""
LEDGER_COLUMNS: dict[str, str] = {
    "run_id": "text",
    "report": "text",
    "org_id": "text",
    "segment": "text",
    "started_at": "timestamp",
    "finished_at": "timestamp",
    "windows": "bigint",
    "first_window": "date",
    "last_window": "date",
    "requests": "bigint",
    "retries": "bigint",
    "rate_limited": "bigint",
    "rows": "bigint",
    "status": "text",
    "error": "text",
}
"""``run_ledger`` (one row per run x report x org x segment), as the run-ledger contract names
it; ``settings.TABLES`` describes it once the loader writes it."""

# Non-zero metric values per (day, user); every other count/sum is 0. Bob has no row on D2.
USER_ACTIVITY: dict[tuple[date, str], dict[str, int]] = {
    (D1, ANN): {
        "calls.all.all.count": 3,
        "calls.all.all.sum_duration": 600,
        "calls.inbound.all.count": 1,
        "calls.inbound.all.sum_duration": 100,
        "calls.outbound.all.count": 2,
        "calls.outbound.all.sum_duration": 500,
        "calls.outbound.regular.count": 2,
        "calls.outbound.regular.sum_duration": 500,
        "emails.sent.all.count": 5,
        "emails.sent.sequences.count": 2,
        "emails.sent.sequences_with_reply.count": 1,
        "emails.sent.sequences_without_reply.count": 1,
        "emails.sent.manual_with_reply.count": 1,
        "emails.received.all.count": 2,
        "emails.opened.all.count": 2,
        "emails.opened.sequences.count": 1,
        "leads.created.all.count": 1,
        "leads.contacted.all.count": 4,
        "opportunities.created.all.count": 1,
        "opportunities.created_for.all.count": 1,
        "opportunities.won.all.count": 1,
        "opportunities.won.all.sum_annualized_value": 500000,
        "opportunities.value_won.one_time.count": 1,
        "opportunities.value_won.one_time.sum_value": 500000,
    },
    (D1, BOB): {
        "calls.all.all.count": 1,
        "calls.all.all.sum_duration": 60,
        "calls.outbound.all.count": 1,
        "calls.outbound.all.sum_duration": 60,
        "calls.outbound.power_dialer.count": 1,
        "calls.outbound.power_dialer.sum_duration": 60,
        "emails.sent.all.count": 2,
        "emails.sent.bulk_with_reply.count": 1,
        "sms.sent.all.count": 3,
        "sms.received.all.count": 1,
        "leads.contacted.all.count": 2,
        "opportunities.lost.all.count": 1,
        "opportunities.lost.all.sum_annualized_value": 240000,
        "opportunities.value_lost.monthly.count": 1,
        "opportunities.value_lost.monthly.sum_value": 20000,
    },
    (D2, ANN): {
        "calls.all.all.count": 2,
        "calls.all.all.sum_duration": 300,
        "calls.outbound.all.count": 2,
        "calls.outbound.all.sum_duration": 300,
        "calls.outbound.regular.count": 2,
        "calls.outbound.regular.sum_duration": 300,
        "emails.sent.all.count": 1,
        "leads.contacted.all.count": 1,
    },
    (D3, ANN): {
        "calls.all.all.count": 1,
        "calls.all.all.sum_duration": 120,
        "calls.inbound.all.count": 1,
        "calls.inbound.all.sum_duration": 120,
        "leads.contacted.all.count": 1,
    },
    (D3, BOB): {
        "calls.all.all.count": 4,
        "calls.all.all.sum_duration": 480,
        "calls.outbound.all.count": 4,
        "calls.outbound.all.sum_duration": 480,
        "calls.outbound.predictive_dialer.count": 4,
        "calls.outbound.predictive_dialer.sum_duration": 480,
        "opportunities.won.all.count": 1,
        "opportunities.won.all.sum_annualized_value": 1200000,
        "opportunities.value_won.annual.count": 1,
        "opportunities.value_won.annual.sum_value": 1200000,
        "leads.contacted.all.count": 3,
    },
}
SHARED_CONTACTED_LEADS = {D1: 1}
"""Leads contacted by both users on a day: the org-wide distinct count is that much lower."""

# Status reports: (started, gained, lost, entered, left); ended = started + gained - lost.
LEAD_STATUS_DAYS: dict[str, dict[date, tuple[int, int, int, int, int]]] = {
    POTENTIAL: {D1: (10, 3, 1, 4, 2), D2: (12, 0, 2, 1, 3), D3: (10, 2, 0, 2, 0)},
    OLD: {D1: (5, 1, 2, 1, 2), D2: (4, 2, 0, 2, 0), D3: (6, 0, 6, 0, 6)},
}
LEAD_STATUS_MONTHS: dict[str, dict[date, tuple[int, int, int, int, int]]] = {
    POTENTIAL: {JAN: (8, 5, 3, 9, 6), FEB: (10, 2, 0, 2, 0)},
    OLD: {JAN: (3, 4, 1, 5, 2), FEB: (6, 0, 6, 0, 6)},
}
OPP_STATUS_DAYS: dict[str, dict[date, tuple[int, int, int, int, int]]] = {
    DEMO: {D1: (5, 2, 1, 2, 1), D2: (6, 0, 2, 0, 2), D3: (4, 1, 0, 1, 0)},
    WON: {D1: (1, 1, 0, 1, 0), D2: (2, 0, 0, 0, 0), D3: (2, 1, 0, 1, 0)},
    LOST: {D1: (0, 1, 0, 1, 0), D2: (1, 0, 0, 0, 0), D3: (1, 0, 0, 0, 0)},
}
OPP_STATUS_MONTHS: dict[str, dict[date, tuple[int, int, int, int, int]]] = {
    DEMO: {JAN: (3, 4, 3, 5, 4), FEB: (4, 1, 0, 1, 0)},
    WON: {JAN: (0, 2, 0, 2, 0), FEB: (2, 1, 0, 1, 0)},
    LOST: {JAN: (0, 1, 0, 1, 0), FEB: (1, 0, 0, 0, 0)},
}

# Funnels for January: cohort -> user -> (count, complete, won, avg time to win, stage counts).
FUNNEL: dict[str, dict[str, tuple[int, int, int, float | None, tuple[int, int, int]]]] = {
    "created-cohort": {
        ANN: (4, 2, 1, 432000.0, (4, 2, 1)),
        BOB: (3, 2, 1, 864000.0, (3, 1, 1)),
        "_all": (7, 4, 2, 648000.0, (7, 3, 2)),
    },
    "active-stage-cohort": {
        ANN: (6, 3, 2, 604800.0, (5, 3, 2)),
        BOB: (2, 0, 0, None, (2, 1, 0)),
        "_all": (8, 3, 2, 604800.0, (7, 4, 2)),
    },
}
FUNNEL_STAGES = (DEMO, PROPOSAL, WON)
OPPORTUNITY_VALUE_CENTS = 100000
"""Every fixture opportunity is worth $1,000."""

# Sent emails by template per day: template_key -> (total, opened, responded).
SENT_EMAILS: dict[date, dict[str, tuple[int, int, int]]] = {
    D1: {"_all": (7, 3, 1), "tmpl_promo": (3, 2, 1), "tmpl_follow_up": (2, 1, 0)},
    D2: {"_all": (1, 1, 0), "tmpl_follow_up": (0, 0, 0)},
    D3: {"_all": (0, 0, 0)},
}
TEMPLATE_NAMES = {"_all": "All Emails", "tmpl_promo": "Promo", "tmpl_follow_up": "Follow-up"}

# ------------------------------------------------------------------ the second segment
# The same reports filtered to a Smart View's leads. Its numbers are smaller than the
# unfiltered ones and satisfy every invariant on their own: a segment is only ever compared
# with itself. Ann works its leads on D1 and D3, Bob on D3 only.
SEGMENT_ACTIVITY: dict[tuple[date, str], dict[str, int]] = {
    (D1, ANN): {
        "calls.all.all.count": 2,
        "calls.all.all.sum_duration": 400,
        "calls.outbound.all.count": 2,
        "calls.outbound.all.sum_duration": 400,
        "calls.outbound.regular.count": 2,
        "calls.outbound.regular.sum_duration": 400,
        "emails.sent.all.count": 2,
        "emails.sent.manual_with_reply.count": 1,
        "leads.contacted.all.count": 2,
        "opportunities.won.all.count": 1,
        "opportunities.won.all.sum_annualized_value": 500000,
        "opportunities.value_won.one_time.count": 1,
        "opportunities.value_won.one_time.sum_value": 500000,
    },
    (D3, ANN): {
        "calls.all.all.count": 1,
        "calls.all.all.sum_duration": 120,
        "calls.inbound.all.count": 1,
        "calls.inbound.all.sum_duration": 120,
        "leads.contacted.all.count": 1,
    },
    (D3, BOB): {
        "calls.all.all.count": 2,
        "calls.all.all.sum_duration": 240,
        "calls.outbound.all.count": 2,
        "calls.outbound.all.sum_duration": 240,
        "calls.outbound.predictive_dialer.count": 2,
        "calls.outbound.predictive_dialer.sum_duration": 240,
        "leads.contacted.all.count": 1,
    },
}
SEGMENT_LEAD_STATUS_DAYS = {
    POTENTIAL: {D1: (4, 1, 0, 1, 0), D2: (5, 0, 1, 0, 1), D3: (4, 1, 0, 1, 0)}
}
SEGMENT_LEAD_STATUS_MONTHS = {POTENTIAL: {JAN: (3, 2, 1, 3, 2), FEB: (4, 1, 0, 1, 0)}}
SEGMENT_OPP_STATUS_DAYS = {DEMO: {D1: (2, 1, 0, 1, 0), D2: (3, 0, 1, 0, 1), D3: (2, 0, 0, 0, 0)}}
SEGMENT_OPP_STATUS_MONTHS = {DEMO: {JAN: (1, 2, 1, 2, 1), FEB: (2, 0, 0, 0, 0)}}
SEGMENT_FUNNEL: dict[str, dict[str, tuple[int, int, int, float | None, tuple[int, int, int]]]] = {
    "created-cohort": {
        ANN: (2, 1, 1, 432000.0, (2, 1, 1)),
        "_all": (2, 1, 1, 432000.0, (2, 1, 1)),
    },
    "active-stage-cohort": {
        ANN: (3, 1, 1, 604800.0, (3, 2, 1)),
        "_all": (3, 1, 1, 604800.0, (3, 2, 1)),
    },
}
SEGMENT_SENT_EMAILS: dict[date, dict[str, tuple[int, int, int]]] = {
    D1: {"_all": (3, 1, 1), "tmpl_promo": (2, 1, 1)},
    D2: {"_all": (0, 0, 0)},
    D3: {"_all": (0, 0, 0)},
}

# ------------------------------------------------------------------ expected mart values
EXPECTED_USER_DAY_ROWS = len(DAYS) * len(USERS)
EXPECTED_ANN_D1_CALLS = (3, 600)  # calls_count, calls_duration_seconds
EXPECTED_BOB_D2_CALLS = (0, 0)  # zero-filled
EXPECTED_SCORECARD = {
    # (user, month): (calls, talk seconds, emails sent, emails replied, won, lost, won cents,
    #                 win rate, average time to win in seconds)
    (ANN, JAN): (5, 900, 6, 2, 1, 0, 500000, 1.0, 604800.0),
    (BOB, JAN): (1, 60, 2, 1, 0, 1, 0, 0.0, None),
    (ANN, FEB): (1, 120, 0, 0, 0, 0, 0, None, None),
    (BOB, FEB): (4, 480, 0, 0, 1, 0, 1200000, 1.0, None),
}
EXPECTED_ORG_LEADS_CONTACTED_D1 = 4 + 2 - 1

# ------------------------------------------------------------------ the run ledger
LEDGER_TABLE = "run_ledger"
RUN_1, RUN_2 = LOAD_ID, "1706918400.000002"  # 2024-02-02 and 2024-02-03, 00:00 UTC
# (run, report, segment, start second, seconds, windows, first, last, requests, retries,
#  429s, rows, status, error); every run's reports start that many seconds after its id
RUN_LEDGER: tuple[tuple[Any, ...], ...] = (
    (RUN_1, "activity_by_user", ALL, 1, 3, 3, D1, D3, 4, 1, 1, 5, "ok", None),
    (RUN_1, "activity_by_user", SEGMENT, 1, 2, 3, D1, D3, 3, 0, 0, 3, "ok", None),
    (RUN_1, "activity_overview", ALL, 2, 1, 1, D1, D1, 1, 0, 0, 3, "ok", None),
    (RUN_1, "funnel_totals", ALL, 4, 5, 1, JAN, JAN, 2, 1, 0, 6, "ok", None),
    (RUN_2, "activity_by_user", ALL, 1, 2, 3, D1, D3, 3, 0, 0, 5, "ok", None),
    (RUN_2, "funnel_totals", ALL, 1, 6, 1, JAN, JAN, 5, 4, 0, 0, "failed",
     "403 Forbidden: This report is not available on your plan."),
    (RUN_2, "sent_emails_by_template", ALL, 7, 0, 0, None, None, 0, 0, 0, 0, "skipped", None),
)  # fmt: skip
EXPECTED_RUNS = {
    # run: (status, reports read / ok / failed / skipped, failed reports, requests, retries,
    #       429s, rows, first window, last window, duration in seconds)
    RUN_1: ("ok", 4, 4, 0, 0, None, 10, 2, 1, 17, JAN, D3, 8.0),
    RUN_2: ("partial", 3, 1, 1, 1, "funnel_totals", 8, 4, 0, 5, JAN, D3, 6.0),
}
# the segment: Ann and Bob both appear in its report, over D1 .. D3
EXPECTED_SEGMENT_USER_DAY_ROWS = len(DAYS) * 2
EXPECTED_SEGMENT_SCORECARD = {
    (ANN, JAN): (2, 400, 2, 1, 1, 0, 500000, 1.0, 604800.0),
    (BOB, JAN): (0, 0, 0, 0, 0, 0, 0, None, None),
    (ANN, FEB): (1, 120, 0, 0, 0, 0, 0, None, None),
    (BOB, FEB): (2, 240, 0, 0, 0, 0, 0, None, None),
}


def _dlt_type_to_duckdb(data_type: str) -> str:
    return {
        "text": "VARCHAR",
        "bigint": "BIGINT",
        "double": "DOUBLE",
        "bool": "BOOLEAN",
        "date": "DATE",
        "timestamp": "TIMESTAMP WITH TIME ZONE",
        "json": "JSON",
    }[data_type]


def metric_column(metric_key: str) -> str:
    """The raw column dlt gives a metric key (its naming convention, as the loader uses it):
    ``calls.all.all.count`` -> ``calls_all_all_count``."""
    return str(_NAMING.normalize_identifier(metric_key))


def table_columns(table: str, segments: bool = True) -> dict[str, str]:
    """Column -> DuckDB type of a raw table, as the loader creates it.

    Report tables get ``segment`` right after ``org_id`` (the contract's key order), whether or
    not ``settings.TABLES`` lists it yet; ``segments=False`` leaves it out: a table written by a
    loader from before segments.
    """
    if table == LEDGER_TABLE:  # the ledger contract's order, the loader's types once it has them
        loaded = TABLES[table][0] if table in TABLES else {}
        contract = {name: loaded.get(name, data_type) for name, data_type in LEDGER_COLUMNS.items()}
    else:
        contract = dict(TABLES[table][0])
        contract.pop("segment", None)
    columns: dict[str, str] = {}
    for name, data_type in contract.items():
        columns[name] = _dlt_type_to_duckdb(data_type)
        if name == "org_id" and segments and table in REPORT_TABLES:
            columns["segment"] = "VARCHAR NOT NULL"
    if table in ACTIVITY_TABLES:
        for key in METRIC_KEYS:
            columns[metric_column(key)] = _dlt_type_to_duckdb(metric_data_type(key))
    columns["_dlt_load_id"] = "VARCHAR NOT NULL"
    columns["_dlt_id"] = "VARCHAR NOT NULL"
    return columns


def _window(start: date, end: date, segment: str = ALL) -> dict[str, Any]:
    return {
        "org_id": ORG_ID,
        "segment": segment,
        "window_start": start,
        "window_end": end,
        "timezone": TIMEZONE,
    }


def _next_day(day: date) -> date:
    return date.fromordinal(day.toordinal() + 1)


def _metric_row(values: Mapping[str, int]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key in METRIC_KEYS:
        column = metric_column(key)
        if key.endswith(".avg_duration"):
            count = values.get(key.replace(".avg_duration", ".count"), 0)
            total = values.get(key.replace(".avg_duration", ".sum_duration"), 0)
            row[column] = total / count if count else None
        else:
            row[column] = values.get(key, 0)
    return row


def _activity_rows(
    breaks: Sequence[str],
    activity: Mapping[tuple[date, str], Mapping[str, int]] = USER_ACTIVITY,
    shared_contacted: Mapping[date, int] = SHARED_CONTACTED_LEADS,
    segment: str = ALL,
) -> dict[str, list[dict[str, Any]]]:
    by_user, overview = [], []
    for day in DAYS:
        org_totals: dict[str, int] = {}
        for user_id, (first, last) in USERS.items():
            values = activity.get((day, user_id))
            if values is None:
                continue
            for key, value in values.items():
                org_totals[key] = org_totals.get(key, 0) + value
            by_user.append(
                {
                    **_window(day, _next_day(day), segment),
                    "date": day,
                    "user_id": user_id,
                    "user_name": f"{first} {last}",
                    **_metric_row(values),
                }
            )
        if "leads.contacted.all.count" in org_totals:
            org_totals["leads.contacted.all.count"] -= shared_contacted.get(day, 0)
        if "org_totals" in breaks and day == D1:
            org_totals["calls.all.all.count"] += 1
        overview.append(
            {
                **_window(day, _next_day(day), segment),
                "date": day,
                "datetime": f"{day.isoformat()}T00:00:00+00:00",
                **_metric_row(org_totals),
            }
        )
    return {"activity_by_user": by_user, "activity_overview": overview}


def _status_overview_row(
    object_type: str,
    grain: str,
    start: date,
    end: date,
    status_id: str,
    label: str,
    is_deleted: bool,
    counts: tuple[int, int, int, int, int],
    segment: str = ALL,
) -> dict[str, Any]:
    started, gained, lost, entered, left = counts
    ended = started + gained - lost
    row: dict[str, Any] = {
        **_window(start, end, segment),
        "grain": grain,
        "status_id": status_id,
        "status_label": label,
        "status_is_deleted": is_deleted,
        "started": started,
        "ended": ended,
        "change": ended - started,
        "change_percent": round(100.0 * (ended - started) / started) if started else None,
        "gained": gained,
        "lost": lost,
        "entered": entered,
        "left": left,
    }
    for counter in ("started", "ended", "gained", "lost", "entered", "left"):
        row[f"_queries_{counter}"] = f'{object_type}_status(status:"{label}") {counter}'
        row[f"_leads_page_urls_{counter}"] = f"/search/{status_id}/{counter}/"
        if object_type == "opportunity":
            row[f"_opportunities_page_urls_{counter}"] = f"/opportunities/{status_id}/{counter}/"
    return row


StatusCounts = Mapping[str, Mapping[date, tuple[int, int, int, int, int]]]


def _lead_status_rows(
    breaks: Sequence[str],
    by_day: StatusCounts = LEAD_STATUS_DAYS,
    by_month: StatusCounts = LEAD_STATUS_MONTHS,
    segment: str = ALL,
) -> list[dict[str, Any]]:
    labels = {POTENTIAL: ("Potential", False), OLD: ("Old", True)}
    rows = []
    for status_id, days in by_day.items():
        label, deleted = labels[status_id]
        for day, counts in days.items():
            row = _status_overview_row(
                "lead", "day", day, _next_day(day), status_id, label, deleted, counts, segment
            )
            if "status_balance" in breaks and status_id == POTENTIAL and day == D2:
                row["gained"] += 1  # ended no longer = started + gained - lost
            rows.append(row)
    for status_id, months in by_month.items():
        label, deleted = labels[status_id]
        for month, counts in months.items():
            end = _next_day(D3) if month == FEB else FEB
            rows.append(
                _status_overview_row(
                    "lead", "month", month, end, status_id, label, deleted, counts, segment
                )
            )
    return rows


def _opportunity_status_rows(
    breaks: Sequence[str],
    by_day: StatusCounts = OPP_STATUS_DAYS,
    by_month: StatusCounts = OPP_STATUS_MONTHS,
    segment: str = ALL,
) -> list[dict[str, Any]]:
    rows = []
    for status_id, days in by_day.items():
        label = OPP_STATUSES[status_id][0]
        for day, counts in days.items():
            if "status_chain" in breaks and status_id == DEMO and day == D2:
                started, gained, lost, entered, left = counts
                counts = (started + 1, gained, lost + 1, entered, left + 1)  # still balances
            rows.append(
                _status_overview_row(
                    "opportunity",
                    "day",
                    day,
                    _next_day(day),
                    status_id,
                    label,
                    False,
                    counts,
                    segment,
                )
            )
    for status_id, months in by_month.items():
        label = OPP_STATUSES[status_id][0]
        for month, counts in months.items():
            end = _next_day(D3) if month == FEB else FEB
            rows.append(
                _status_overview_row(
                    "opportunity", "month", month, end, status_id, label, False, counts, segment
                )
            )
    return rows


def _transition_rows(
    object_type: str,
    transitions: Iterable[tuple[str, date, str, str | None, str, int]],
    segment: str = ALL,
) -> list[dict[str, Any]]:
    """Rows from (grain, window_start, kind, from_status_id, to_status_id, count)."""
    if object_type == "lead":
        labels = {POTENTIAL: ("Potential", False), OLD: ("Old", True)}
    else:
        labels = {k: (v[0], False) for k, v in OPP_STATUSES.items()}
    rows = []
    for grain, start, kind, from_id, to_id, count in transitions:
        end = _next_day(start) if grain == "day" else (_next_day(D3) if start == FEB else FEB)
        from_label, from_deleted = labels[from_id] if from_id else (None, None)
        to_label, to_deleted = labels[to_id]
        row: dict[str, Any] = {
            **_window(start, end, segment),
            "grain": grain,
            "kind": kind,
            "from_status_key": from_id or "_created",
            "from_status_id": from_id,
            "from_status_label": from_label,
            "from_status_is_deleted": from_deleted,
            "to_status_id": to_id,
            "to_status_label": to_label,
            "to_status_is_deleted": to_deleted,
            "count": count,
            "_query": f"{object_type} transition {from_label} -> {to_label}",
            "_leads_page_url": f"/search/{from_id}/{to_id}/",
        }
        if object_type == "opportunity":
            row["_opportunities_page_url"] = f"/opportunities/{from_id}/{to_id}/"
        rows.append(row)
    return rows


FunnelData = Mapping[str, Mapping[str, tuple[int, int, int, float | None, tuple[int, int, int]]]]


def _funnel_rows(
    breaks: Sequence[str], funnel: FunnelData = FUNNEL, segment: str = ALL
) -> dict[str, list[dict[str, Any]]]:
    totals, stages = [], []
    value = OPPORTUNITY_VALUE_CENTS
    for cohort_type, by_user in funnel.items():
        for user_id, (count, complete, won, time_to_win, stage_counts) in by_user.items():
            totals.append(
                {
                    **_window(JAN, FEB, segment),
                    "pipeline_id": PIPELINE,
                    "cohort_type": cohort_type,
                    "user_id": user_id,
                    "count": count,
                    "count_total_complete": complete,
                    "count_total_won": won,
                    "count_win_rate": won / complete if complete else 0,
                    "value_total_complete": complete * value,
                    "value_total_won": won * value,
                    "value_win_rate": won / complete if complete else 0,
                    "average_time_to_win": time_to_win,
                    "average_value_annualized_per_won_opportunity": value if won else 0,
                    "sales_velocity": 1000.0 * won,
                }
            )
            for index, status_id in enumerate(FUNNEL_STAGES):
                stage_count = stage_counts[index]
                if "funnel_cohort" in breaks and (cohort_type, user_id, index) == (
                    "created-cohort",
                    BOB,
                    0,
                ):
                    stage_count = count + 5  # more in a stage than in the whole cohort
                next_count = stage_counts[index + 1] if index + 1 < len(FUNNEL_STAGES) else None
                label, status_type, _ = OPP_STATUSES[status_id]
                lost = max(stage_count - (next_count or stage_count), 0) // 2
                conversion = (
                    next_count / stage_count if next_count is not None and stage_count else None
                )
                stages.append(
                    {
                        **_window(JAN, FEB, segment),
                        "pipeline_id": PIPELINE,
                        "cohort_type": cohort_type,
                        "user_id": user_id,
                        "status_id": status_id,
                        "status_label": label,
                        "status_type": status_type,
                        "stage_index": index,
                        "count": stage_count,
                        "count_conversion_rate": conversion,
                        "count_lost": lost,
                        "count_lost_ratio": lost / stage_count if stage_count else None,
                        "value": stage_count * value,
                        "value_conversion_rate": conversion,
                        "value_lost": lost * value,
                        "value_lost_ratio": lost / stage_count if stage_count else None,
                        "weighted_value": stage_count * value // 2,
                        "weighted_value_conversion_rate": conversion,
                        "average_time_to_advance": 86400.0 * (index + 1)
                        if next_count is not None
                        else None,
                    }
                )
    return {"funnel_totals": totals, "funnel_stages": stages}


def _sent_email_rows(
    sent: Mapping[date, Mapping[str, tuple[int, int, int]]] = SENT_EMAILS, segment: str = ALL
) -> list[dict[str, Any]]:
    rows = []
    for day, templates in sent.items():
        for template_key, (total, opened, responded) in templates.items():
            template_id = None if template_key == "_all" else template_key
            rows.append(
                {
                    **_window(day, _next_day(day), segment),
                    "template_key": template_key,
                    "template_id": template_id,
                    "name": TEMPLATE_NAMES[template_key],
                    "template_url": f"/organization/{ORG_ID}/email_templates/{template_id}/"
                    if template_id
                    else None,
                    "is_shared": True,
                    "total": total,
                    "opened": opened,
                    "responded": responded,
                    "percentage_opened": round(100.0 * opened / total) if total else 0,
                    "percentage_responded": round(100.0 * responded / total) if total else 0,
                    "_queries_total": "email(direction:sent)",
                    "_queries_opened": "email(direction:sent opened:yes)",
                    "_queries_responded": "email(direction:sent has_reply:yes)",
                }
            )
    return rows


def _reference_rows() -> dict[str, list[dict[str, Any]]]:
    created = datetime(2023, 6, 1, 9, 0, tzinfo=UTC)
    updated = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
    metrics = []
    for key in METRIC_KEYS:
        metrics.append(
            {
                "org_id": ORG_ID,
                "key": key,
                "name": key.replace(".", " ").title(),
                "description": f"Close activity metric {key}.",
                "column_name": metric_column(key),
                "data_type": metric_data_type(key),
            }
        )
    return {
        "activity_metrics": metrics,
        "users": [
            {
                "org_id": ORG_ID,
                "id": user_id,
                "email": f"{first.lower()}@example.com",
                "first_name": first,
                "last_name": last,
                "image": None,
                "date_created": created,
                "date_updated": updated,
                "is_active": True,
            }
            for user_id, (first, last) in USERS.items()
        ],
        "lead_statuses": [
            {"org_id": ORG_ID, "id": POTENTIAL, "label": "Potential", "organization_id": ORG_ID},
            {"org_id": ORG_ID, "id": QUALIFIED, "label": "Qualified", "organization_id": ORG_ID},
        ],
        "opportunity_statuses": [
            {
                "org_id": ORG_ID,
                "id": status_id,
                "label": label,
                "type": status_type,
                "pipeline_id": PIPELINE,
                "organization_id": ORG_ID,
                "stage_index": stage_index,
            }
            for status_id, (label, status_type, stage_index) in OPP_STATUSES.items()
        ],
        "pipelines": [
            {
                "org_id": ORG_ID,
                "id": PIPELINE,
                "name": "Sales",
                "organization_id": ORG_ID,
                "date_created": created,
                "date_updated": updated,
            }
        ],
        "groups": [
            {"org_id": ORG_ID, "id": "group_sales", "name": "Sales", "organization_id": ORG_ID}
        ],
        "saved_searches": [
            {
                "org_id": ORG_ID,
                "id": "save_hot_leads",
                "name": "Hot leads",
                "type": "lead",
                "user_id": ANN,
                "is_shared": True,
                "organization_id": ORG_ID,
                "date_created": created,
                "date_updated": updated,
            }
        ],
        "custom_report_fields": [
            {
                "org_id": ORG_ID,
                "name": "opportunity.value",
                "label": "Opportunity value",
                "type": "number",
                "object_type": "opportunity",
            },
            {
                "org_id": ORG_ID,
                "name": "opportunity.date_won",
                "label": "Date won",
                "type": "date",
                "object_type": "opportunity",
            },
        ],
        "custom_reports": [
            {
                **_window(JAN, FEB),
                "report_name": "won_value_by_month",
                "series": "_all",
                "series_label": "All",
                "x": "2024-01-01",
                "y": 500000.0,
                "x_field": "opportunity.date_won",
                "y_field": "opportunity.value",
                "interval": "month",
                "transform_y": "sum",
                "group_by": None,
                "raw": None,
            }
        ],
    }


def _segment_rows() -> dict[str, list[dict[str, Any]]]:
    """The report rows of ``SEGMENT``."""
    return {
        **_activity_rows((), SEGMENT_ACTIVITY, {}, SEGMENT),
        **_funnel_rows((), SEGMENT_FUNNEL, SEGMENT),
        "sent_emails_by_template": _sent_email_rows(SEGMENT_SENT_EMAILS, SEGMENT),
        "lead_status_overview": _lead_status_rows(
            (), SEGMENT_LEAD_STATUS_DAYS, SEGMENT_LEAD_STATUS_MONTHS, SEGMENT
        ),
        "opportunity_status_overview": _opportunity_status_rows(
            (), SEGMENT_OPP_STATUS_DAYS, SEGMENT_OPP_STATUS_MONTHS, SEGMENT
        ),
        "lead_status_transitions": _transition_rows(
            "lead",
            [
                ("day", D1, "transitions", None, POTENTIAL, 1),
                ("day", D1, "summary", None, POTENTIAL, 1),
            ],
            SEGMENT,
        ),
        "opportunity_status_transitions": _transition_rows(
            "opportunity",
            [("day", D1, "transitions", None, DEMO, 1), ("day", D1, "summary", None, DEMO, 1)],
            SEGMENT,
        ),
    }


def _ledger_rows() -> list[dict[str, Any]]:
    rows = []
    for run, report, segment, offset, seconds, windows, first, last, *counters in RUN_LEDGER:
        requests, retries, rate_limited, row_count, status, error = counters
        started = datetime.fromtimestamp(float(run) + offset, UTC).replace(microsecond=0)
        rows.append(
            {
                "run_id": run,
                "report": report,
                "org_id": ORG_ID,
                "segment": segment,
                "started_at": started,
                "finished_at": started + timedelta(seconds=seconds),
                "windows": windows,
                "first_window": first,
                "last_window": last,
                "requests": requests,
                "retries": retries,
                "rate_limited": rate_limited,
                "rows": row_count,
                "status": status,
                "error": error,
            }
        )
    return rows


def fixture_rows(
    breaks: Sequence[str] = (), segments: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """Every raw table's rows (without dlt's columns), optionally with broken invariants.

    ``segments``: report rows carry ``segment``, ``SEGMENT``'s rows are there beside the
    unfiltered (``_all``) ones, and ``run_ledger`` holds two runs. False: no ``segment`` at
    all and no ledger, as a loader from before segments wrote them (only unfiltered rows).
    """
    unknown = set(breaks) - set(BREAKS)
    if unknown:
        raise ValueError(f"unknown fixture breaks {sorted(unknown)}; choose from {BREAKS}")
    rows: dict[str, list[dict[str, Any]]] = {
        **_reference_rows(),
        **_activity_rows(breaks),
        **_funnel_rows(breaks),
        "sent_emails_by_template": _sent_email_rows(),
        "lead_status_overview": _lead_status_rows(breaks),
        "opportunity_status_overview": _opportunity_status_rows(breaks),
        "lead_status_transitions": _transition_rows(
            "lead",
            [
                ("day", D1, "transitions", None, POTENTIAL, 2),
                ("day", D1, "transitions", POTENTIAL, OLD, 1),
                ("day", D1, "summary", None, POTENTIAL, 2),
                ("day", D1, "summary", POTENTIAL, OLD, 1),
                ("day", D2, "transitions", OLD, POTENTIAL, 2),
                ("day", D2, "summary", OLD, POTENTIAL, 2),
                ("month", JAN, "transitions", None, POTENTIAL, 4),
                ("month", JAN, "transitions", POTENTIAL, OLD, 3),
                ("month", JAN, "transitions", OLD, POTENTIAL, 2),
                ("month", JAN, "summary", None, POTENTIAL, 4),
                ("month", JAN, "summary", POTENTIAL, OLD, 1),
            ],
        ),
        "opportunity_status_transitions": _transition_rows(
            "opportunity",
            [
                ("day", D1, "transitions", None, DEMO, 2),
                ("day", D1, "transitions", DEMO, WON, 1),
                ("day", D1, "transitions", PROPOSAL, LOST, 1),
                ("day", D1, "summary", None, DEMO, 2),
                ("day", D1, "summary", DEMO, WON, 1),
                ("day", D1, "summary", PROPOSAL, LOST, 1),
                ("day", D3, "transitions", PROPOSAL, WON, 1),
                ("day", D3, "summary", PROPOSAL, WON, 1),
                ("month", JAN, "transitions", DEMO, WON, 2),
                ("month", JAN, "summary", DEMO, WON, 2),
            ],
        ),
    }
    missing = set(TABLES) - set(rows)
    assert not missing, f"fixture lacks tables {missing}"
    if segments:
        for table, segment_rows in _segment_rows().items():
            rows[table] = rows[table] + segment_rows
        rows[LEDGER_TABLE] = _ledger_rows()
    else:
        for table in REPORT_TABLES:
            for row in rows[table]:
                del row["segment"]
    return rows


def create_raw_fixture(
    duckdb_path: str | Path,
    breaks: Sequence[str] = (),
    segments: bool = True,
    load_id: str | None = None,
) -> Path:
    """Create (or replace) schema ``close_raw`` in a DuckDB file, filled with the fixture.

    Args:
        duckdb_path: the DuckDB file to write; created if missing.
        breaks: names from ``BREAKS``; each corrupts the data so that one invariant fails.
        segments: report tables with a ``segment`` column and a second segment's rows (the
            loader with segments); False: without (a loader from before segments).
        load_id: ``_dlt_load_id`` of every row (default: ``LOAD_ID``, in 2024, and each ledger
            row its run); ``fresh_load_id()`` makes the tables fresh.

    Returns:
        The path of the DuckDB file.
    """
    path = Path(duckdb_path)
    rows = fixture_rows(breaks, segments)
    con = duckdb.connect(str(path))
    try:
        con.execute(f"drop schema if exists {RAW_SCHEMA} cascade")
        con.execute(f"create schema {RAW_SCHEMA}")
        for table in rows:
            columns = table_columns(table, segments)
            ddl = ", ".join(f'"{name}" {data_type}' for name, data_type in columns.items())
            con.execute(f"create table {RAW_SCHEMA}.{table} ({ddl})")
            names = list(columns)
            column_list = ", ".join(f'"{name}"' for name in names)
            placeholders = ", ".join("?" for _ in names)
            insert = f"insert into {RAW_SCHEMA}.{table} ({column_list}) values ({placeholders})"
            values = []
            for i, row in enumerate(rows[table]):
                unknown = set(row) - set(columns)
                assert not unknown, f"{table}: columns {unknown} are not in the contract"
                row_load_id = load_id or (row["run_id"] if table == LEDGER_TABLE else LOAD_ID)
                full = {**row, "_dlt_load_id": row_load_id, "_dlt_id": f"{table}-{i:04d}"}
                values.append([full.get(name) for name in names])
            if values:
                con.executemany(insert, values)
    finally:
        con.close()
    return path


def fresh_load_id(hours_ago: float = 0.0) -> str:
    """A dlt load id (epoch seconds as text) of ``hours_ago`` hours before now."""
    return f"{time.time() - hours_ago * 3600:.6f}"


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 2
    path = create_raw_fixture(argv[0], breaks=argv[1:])
    print(f"wrote {RAW_SCHEMA} fixture to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
