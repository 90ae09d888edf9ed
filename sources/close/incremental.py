"""Incremental state: the last complete day loaded, per table, org and segment.

State lives in each table's dlt *resource* state,
``resources.<table>.last_day[<org_id>][<key>] = "YYYY-MM-DD"`` (``key``: the segment, and for
Explorer the query, ``"<segment>/<query>"``). dlt writes it in the load package with the rows,
so a failed run leaves it as it was, and ``dlt pipeline close drop <table>`` resets exactly
that table's report. A bounded backfill (``end_date`` set) neither reads nor moves it.

Earlier versions kept one *source* state entry per report (``last_day[<report>][<org_id>]``);
``migrate_legacy`` moves it on the first run, so an existing pipeline neither reloads nor
skips days.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any, Dict, Iterable, Mapping, Optional

import dlt

from .windows import Window, parse_day

STATE_KEY = "last_day"
FIRST_KEY = "first_day"
"""Per table, org and key: the first day ever loaded; a refresh never reads before it."""
_LOCK = threading.Lock()


def unit_key(segment: str, query: Optional[str] = None) -> str:
    """The state key of a report unit within its org."""
    return segment if query is None else f"{segment}/{query}"


def _table_state(table: str, name: str = STATE_KEY) -> Dict[str, Any]:
    state = dlt.current.resource_state(table)
    return state.setdefault(name, {})  # type: ignore[no-any-return]


def last_loaded_day(table: str, org_id: str, key: str, name: str = STATE_KEY) -> Optional[date]:
    """The last (or, with ``name=FIRST_KEY``, first) day of ``table`` loaded for ``org_id``
    and ``key``, or None."""
    value = _table_state(table, name).get(org_id, {}).get(key)
    return parse_day(value, f"state of {table}: {name}.{org_id}.{key}") if value else None


def first_loaded_day(tables: Iterable[str], org_id: str, key: str) -> Optional[date]:
    """The first day every one of ``tables`` was loaded from (None when unknown)."""
    days = [last_loaded_day(table, org_id, key, FIRST_KEY) for table in tables]
    if not days or any(day is None for day in days):
        return None
    return max(day for day in days if day is not None)


def cursor(tables: Iterable[str], org_id: str, key: str) -> Optional[date]:
    """The last day every one of ``tables`` holds (None when one of them has none)."""
    days = [last_loaded_day(table, org_id, key) for table in tables]
    if not days or any(day is None for day in days):
        return None
    return min(day for day in days if day is not None)


def record(tables: Iterable[str], org_id: str, key: str, span: Window) -> None:
    """Records ``span`` as loaded for ``tables``; state never moves backwards."""
    last = span.end - timedelta(days=1)
    with _LOCK:
        for table in tables:
            by_key = _table_state(table).setdefault(org_id, {})
            previous = by_key.get(key)
            if previous is None or last > date.fromisoformat(previous):
                by_key[key] = last.isoformat()
            firsts = _table_state(table, FIRST_KEY).setdefault(org_id, {})
            first = firsts.get(key)
            if first is None or span.start < date.fromisoformat(first):
                firsts[key] = span.start.isoformat()


def migrate_legacy(tables: Iterable[str], legacy: Mapping[str, str]) -> None:
    """Moves source-state cursors of an earlier version into ``tables``' resource state.

    Args:
        tables: Every table the legacy entries covered (all of them get the cursor).
        legacy: Legacy report name -> the unit key its cursor becomes.
    """
    source = dlt.current.source_state()
    with _LOCK:
        old = source.get(STATE_KEY)
        if not isinstance(old, dict):
            return
        for name, key in legacy.items():
            by_org = old.pop(name, None)
            if not isinstance(by_org, dict):
                continue
            for table in tables:
                state = _table_state(table)
                for org_id, day in by_org.items():
                    state.setdefault(org_id, {}).setdefault(key, day)
        if not old:
            del source[STATE_KEY]
