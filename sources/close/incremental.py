"""Incremental state of the report resources: which days a run reads, and what it records.

State lives in dlt's source state as ``last_day[<report>][<org_id>] = "YYYY-MM-DD"``, the last
complete local day loaded. dlt writes state in the same load package as the rows, so a run
that fails leaves it as it was. A bounded backfill (``end_date`` set) neither reads nor moves
it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Dict, Optional

import dlt

from .windows import Window, parse_day, plan_range

STATE_KEY = "last_day"


@dataclass(frozen=True)
class RunSettings:
    """What every report resource of one run needs to plan its windows."""

    timezone: str
    today: date
    start_date: Optional[date]
    end_date: Optional[date]
    lookback_days: int
    initial_days: int
    workers: int
    metrics_chunk_size: int

    @property
    def is_backfill(self) -> bool:
        """A bounded ``start_date``/``end_date`` run: state is not used."""
        return self.end_date is not None


def _report_state(report: str) -> Dict[str, Any]:
    state = dlt.current.source_state().setdefault(STATE_KEY, {})
    return state.setdefault(report, {})  # type: ignore[no-any-return]


def last_loaded_day(report: str, org_id: str) -> Optional[date]:
    """The last complete day of ``report`` loaded for ``org_id``, or None."""
    value = _report_state(report).get(org_id)
    return parse_day(value, f"state {STATE_KEY}.{report}.{org_id}") if value else None


def plan(report: str, org_id: str, run: RunSettings) -> Optional[Window]:
    """The range of days this run reads for ``report`` and ``org_id`` (None: nothing to do)."""
    return plan_range(
        today=run.today,
        last_loaded_day=None if run.is_backfill else last_loaded_day(report, org_id),
        start_date=run.start_date,
        end_date=run.end_date,
        lookback_days=run.lookback_days,
        initial_days=run.initial_days,
    )


def record(report: str, org_id: str, window: Window, run: RunSettings) -> None:
    """Records ``window`` as loaded; a backfill leaves state untouched."""
    if run.is_backfill:
        return
    last = window.end - timedelta(days=1)
    previous = last_loaded_day(report, org_id)
    if previous is None or last > previous:
        _report_state(report)[org_id] = last.isoformat()
