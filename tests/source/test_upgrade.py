"""State per resource (issue 10) and tables of an earlier version (issue 11): an existing
pipeline upgrades without a reload and without a gap; `dlt pipeline close drop <table>`
resets exactly that report."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List

import dlt

from close_reports.simulator import CloseSimulator
from close_reports.source import close_source
from close_reports.source.settings import EMPTY_WINDOW_COLUMN, REPORT_TABLES
from tests.utils import (
    ANCHOR,
    make_pipeline,
    rows,
    run,
    small_org,
    source_kwargs,
    table_snapshot,
    warehouse,
)

START = (ANCHOR - timedelta(days=45)).isoformat()
LATER = ANCHOR + timedelta(days=4)
OLD_KEYS = {
    "activity_overview": ["org_id", "date"],
    "activity_by_user": ["org_id", "date", "user_id"],
    "sent_emails_by_template": ["org_id", "window_start", "template_key"],
    "lead_status_overview": ["org_id", "grain", "window_start", "status_id"],
    "lead_status_transitions": ["org_id", "grain", "window_start", "kind", "from_status_key",
                                "to_status_id"],
    "funnel_totals": ["org_id", "window_start", "pipeline_id", "cohort_type", "user_id"],
}  # fmt: skip
"""Primary keys before segments (the tables an earlier version wrote)."""
OLD_STATE_NAMES = {"lead_status_overview": "lead_status_report",
                   "lead_status_transitions": "lead_status_report"}  # fmt: skip
TABLES = tuple(OLD_KEYS)
TEXT_COLUMNS = {"activity_overview": {"datetime": {"data_type": "text"}}}
"""As the earlier version typed it (dlt would read the ISO text as a timestamp)."""


def legacy_pipeline(tmp_path: Path, simulator: CloseSimulator) -> dlt.Pipeline:
    """A pipeline as an earlier version left it: report tables without ``segment`` (holding
    what that version loaded up to ``ANCHOR``) and cursors in source state."""
    reference = make_pipeline(tmp_path / "reference")
    run(
        reference,
        close_source(**source_kwargs(simulator, start_date=START)).with_resources(*TABLES),
    )
    con = warehouse(reference)
    tables: Dict[str, List[Dict[str, Any]]] = {}
    for table in TABLES:
        result = con.execute(f"select * exclude (segment, {EMPTY_WINDOW_COLUMN}, _dlt_load_id, "
                             f"_dlt_id) from {table}")  # fmt: skip
        names = [d[0] for d in result.description]
        tables[table] = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    con.close()
    org_id = simulator.request_log[0].org_id
    cursors = {OLD_STATE_NAMES.get(t, t): {org_id: ANCHOR.isoformat()} for t in TABLES}

    @dlt.source(name="close", section="close")
    def earlier_version() -> Any:
        def table_rows(table: str) -> Any:
            def rows_of() -> Any:
                dlt.current.source_state()["last_day"] = cursors
                yield tables[table]

            return dlt.resource(rows_of, name=table, primary_key=OLD_KEYS[table],
                                write_disposition="merge",
                                columns=TEXT_COLUMNS.get(table))  # fmt: skip

        return [table_rows(table) for table in TABLES]

    pipeline = make_pipeline(tmp_path / "upgraded")
    run(pipeline, earlier_version())
    return pipeline


def test_an_earlier_versions_pipeline_upgrades_without_reload_or_gap(tmp_path) -> None:
    simulator = CloseSimulator(small_org())
    pipeline = legacy_pipeline(tmp_path, simulator)
    assert "segment" not in {c[0] for c in rows(warehouse(pipeline), "describe activity_by_user")}

    simulator.request_log.clear()
    kwargs = source_kwargs(simulator, start_date=START, today=LATER)
    from close_reports.source.migrate import add_segment_column

    assert "close_raw.activity_by_user" in add_segment_column(pipeline)
    run(pipeline, close_source(**kwargs).with_resources(*TABLES))
    days = {r.json["datetime_range"]["start"][:10] for r in simulator.request_log
            if r.json and r.json.get("type") == "comparison"}  # fmt: skip
    # cursors migrated: the refresh window (28 days) and the 3 new days, not all 49 since START
    assert len(days) == 28 + 3 and min(days) == (ANCHOR + timedelta(days=1 - 28)).isoformat()
    state = pipeline.state["sources"]["close"]
    assert "last_day" not in state
    assert state["resources"]["lead_status_transitions"]["last_day"]

    clean = make_pipeline(tmp_path / "clean")
    run(clean, close_source(**kwargs).with_resources(*TABLES))
    assert table_snapshot(pipeline, list(TABLES)) == table_snapshot(clean, list(TABLES))


def dlt_cli(pipeline: dlt.Pipeline, *args: str) -> subprocess.CompletedProcess:
    """dlt's own command line on ``pipeline`` (its working dir and DuckDB file)."""
    env = {**os.environ, "DESTINATION__DUCKDB__CREDENTIALS":
           pipeline.destination.config_params["credentials"]}  # fmt: skip
    return subprocess.run(
        [str(Path(sys.executable).parent / "dlt"), "-y", "pipeline", "--pipelines-dir",
         pipeline.pipelines_dir, "close", *args],
        env=env, capture_output=True, text=True, input="y\n", timeout=120,
    )  # fmt: skip


def test_dlt_drop_of_one_table_reloads_exactly_that_report(tmp_path) -> None:
    simulator = CloseSimulator(small_org())
    pipeline = make_pipeline(tmp_path)
    kwargs = source_kwargs(simulator, start_date=START)
    run(pipeline, close_source(**kwargs))
    count = rows(warehouse(pipeline), "select count(*) from activity_by_user")[0][0]
    dropped = dlt_cli(pipeline, "drop", "activity_by_user")
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr

    assert "activity_by_user" not in {r[0] for r in rows(warehouse(pipeline), "show tables")}
    simulator.request_log.clear()
    again = make_pipeline(tmp_path)
    run(again, close_source(**kwargs))
    comparison = [r for r in simulator.request_log if r.json and r.json.get("type") == "comparison"]
    sent = [r for r in simulator.request_log if "/report/sent_emails/" in r.path]
    assert len(comparison) == 46  # the whole range again
    assert len(sent) == 28 + 0  # another report: its refresh window only
    assert rows(warehouse(again), "select count(*) from activity_by_user")[0][0] == count
    assert REPORT_TABLES
