"""``close-pipeline transform`` on the hand-computed fixture: what the run summary says about dbt.

The command runs in-process (``main([...])``), through dlt's dbt runner, against a fixture
DuckDB file; the dbt checks of Close's own numbers are warnings there (no ``--demo``), and the
summary lists them.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import duckdb
import pytest
import yaml

from close_reports import build_checks, close_pipeline
from close_reports.close_pipeline import main
from close_reports.failures import DbtBuildError
from close_reports.summary import RunSummary

from . import fixtures as fx

pytestmark = pytest.mark.dbt


def transform(duckdb_path: Path, *options: str) -> int:
    return main(["transform", "--duckdb-path", str(duckdb_path), *options])


def test_summary_lists_the_dbt_warnings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    duckdb_path = fx.create_raw_fixture(tmp_path / "broken.duckdb", breaks=["status_chain"])
    assert transform(duckdb_path) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("  warning: dbt test ")]
    assert len(warnings) == 1, out[-3000:]
    assert "assert_status_daily_counts_chain warned (" in warnings[0]
    assert "close_strict_invariants: true" in warnings[0]
    # the fixture was loaded in 2024: every source with a freshness threshold is named stale
    stale = [line for line in out.splitlines() if line.startswith("  warning: stale source ")]
    assert any("close.activity_by_user (last loaded" in line for line in stale), out[-3000:]
    assert out.rstrip().endswith("close-pipeline transform: done")


def test_demo_runs_make_the_invariants_errors(tmp_path: Path) -> None:
    """`run --demo` reads the simulator, whose numbers are consistent by construction: there a
    broken invariant is our bug, so transform() passes `close_strict_invariants` and fails."""
    duckdb_path = fx.create_raw_fixture(tmp_path / "broken.duckdb", breaks=["status_chain"])
    args = argparse.Namespace(
        demo=True, dataset="close_raw", destination="duckdb", duckdb_path=str(duckdb_path)
    )
    with pytest.raises(DbtBuildError, match="assert_status_daily_counts_chain"):
        close_pipeline.transform(args, RunSummary())
    assert build_checks.package_vars("close_raw", True)["close_strict_invariants"] is True


def test_fail_on_stale_fails_and_names_the_stale_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Everything fresh but one table, loaded 30 hours ago (past 26 h: a daily run missed):
    only that one is named, and every table's freshness was measured."""
    duckdb_path = fx.create_raw_fixture(
        tmp_path / "stale.duckdb", load_id=fx.fresh_load_id(hours_ago=2)
    )
    con = duckdb.connect(str(duckdb_path))
    try:
        con.execute(
            f"update {fx.RAW_SCHEMA}.funnel_totals set _dlt_load_id = ?",
            [fx.fresh_load_id(hours_ago=30)],
        )
    finally:
        con.close()
    assert transform(duckdb_path, "--fail-on-stale") == 1
    captured = capsys.readouterr()
    last_line = captured.err.strip().splitlines()[-1]
    assert last_line.startswith("close-pipeline transform failed: stale sources"), last_line
    assert re.search(
        r"close\.funnel_totals \(last loaded 30\.\d hours ago; warn after 26 hours\)", last_line
    ), last_line
    assert "activity_by_user" not in last_line
    assert "freshness not checked" not in captured.out
    stale = [ln for ln in captured.out.splitlines() if ln.startswith("  warning: stale source ")]
    assert len(stale) <= 1 and all("close.funnel_totals" in ln for ln in stale), captured.out


def test_the_github_actions_recipe_fails_on_stale_sources() -> None:
    recipe = Path(__file__).resolve().parents[2] / "docs" / "github-actions-close.yml"
    steps = yaml.safe_load(recipe.read_text())["jobs"]["load"]["steps"]
    runs = [step["run"] for step in steps if "close-pipeline run" in step.get("run", "")]
    assert runs and all("--fail-on-stale" in run for run in runs), runs
