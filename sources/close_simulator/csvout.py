"""CSV renderings of the reports Close documents as available in CSV (``Accept: text/csv``).

Close documents that the activity report and the two funnel reports can be requested as CSV
and that the funnel CSV "includes only per-user data"; it publishes no column layout. The
layouts here are the simulator's choice (docs/simulator.md), built from the JSON answer so
the numbers are the same by construction:

* activity ``overview``: ``datetime,<metric key>…``, one line per bucket;
* activity ``comparison``: ``user_id,user_name,<metric key>…``, one line per user;
* funnel totals: ``user_id,user_name,<totals field>…``, one line per user (no aggregate);
* funnel stages: ``user_id,user_name,stage_index,status_id,status_label,status_type,
  <stage field>…``, one line per user and stage.

Cells: numbers as in the JSON, ``null`` as an empty cell, booleans ``true`` / ``false``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .org import Org

JSON = dict[str, Any]
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return str(value)


def _render(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue().encode("utf-8")


def _user_names(org: Org) -> dict[str, str]:
    return {u.id: u.full_name for u in org.users}


def activity_csv(payload: JSON, org: Org) -> bytes:
    """The overview (buckets) or comparison (users) report as CSV."""
    data: list[JSON] = payload.get("data", [])
    if "lookup" in payload:
        lookup = payload["lookup"].get("user", {})
        metrics = list(payload["aggregations"]["totals"])
        rows = [
            [r["user_id"], lookup.get(r["user_id"], {}).get("display"), *(r[m] for m in metrics)]
            for r in data
        ]
        return _render(["user_id", "user_name", *metrics], rows)
    metrics = list(payload["aggregations"]["totals"])
    return _render(
        ["datetime", *metrics], [[r["datetime"], *(r[m] for m in metrics)] for r in data]
    )


def funnel_totals_csv(payload: JSON, org: Org) -> bytes:
    """Per-user funnel totals as CSV (Close: CSV has per-user data only)."""
    names = _user_names(org)
    fields = list(payload["aggregations"])
    rows = [
        [r["user_id"], names.get(r["user_id"]), *(r[f] for f in fields)] for r in payload["data"]
    ]
    return _render(["user_id", "user_name", *fields], rows)


def funnel_stages_csv(payload: JSON, org: Org) -> bytes:
    """Per-user funnel stages as CSV, one line per user and stage."""
    names = _user_names(org)
    stages = payload["aggregations"]["stages"]
    fields = [k for k in (stages[0] if stages else {}) if k != "status"]
    rows = []
    for item in payload["data"]:
        for index, stage in enumerate(item["stages"]):
            status = stage["status"]
            rows.append(
                [
                    item["user_id"],
                    names.get(item["user_id"]),
                    index,
                    status["id"],
                    status["label"],
                    status["type"],
                    *(stage[f] for f in fields),
                ]
            )
    header = ["user_id", "user_name", "stage_index", "status_id", "status_label", "status_type"]
    return _render([*header, *fields], rows)


CSV_RENDERERS: Mapping[str, Callable[[JSON, Org], bytes]] = {
    "report_activity": activity_csv,
    "report_funnel_totals": funnel_totals_csv,
    "report_funnel_stages": funnel_stages_csv,
}
"""Endpoint name -> CSV renderer, for the endpoints Close documents CSV for."""


def wants_csv(accept: str | None) -> bool:
    """Whether an ``Accept`` header prefers CSV over JSON (highest ``q``, then order;
    ``text/csv`` and ``text/*`` mean CSV, ``application/json``, ``application/*`` and
    ``*/*`` JSON; no header = JSON)."""
    if not accept:
        return False
    best: tuple[float, int, bool] | None = None
    for position, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        media = media.lower()
        if media in ("text/csv", "text/*"):
            csv_choice = True
        elif media in ("application/json", "application/*", "*/*"):
            csv_choice = False
        else:
            continue
        quality = 1.0
        for param in params:
            if param.lower().startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        candidate = (-quality, position, csv_choice)
        if best is None or candidate < best:
            best = candidate
    return best is not None and best[2]
