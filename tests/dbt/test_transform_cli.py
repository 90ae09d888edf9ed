"""``close-pipeline transform`` on the hand-computed fixture: what the run summary says about dbt.

The command runs in-process (``main([...])``), through dlt's dbt runner, against a fixture
DuckDB file; the dbt checks of Close's own numbers are warnings there (no ``--demo``), and the
summary lists them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from close_reports import close_pipeline, dbt_results
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
    assert dbt_results.package_vars("close_raw", True)["close_strict_invariants"] is True
