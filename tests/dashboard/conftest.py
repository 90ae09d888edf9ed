"""A real demo load (``close-pipeline load --demo``: the simulated org, 90 days, through dlt
into DuckDB) and the dbt models built on it, in a temporary working directory shared by the
dashboard tests; and one headless Chromium for them all.

``dbt run`` rather than the ``dbt build`` of ``close-pipeline run``: the marts are the same,
and their data tests are tests/dbt's job (this saves ~half the fixture's time)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.dashboard.browser import chromium
from tests.dbt.runner import run_dbt

CLI = [str(Path(sys.executable).parent / "close-pipeline")]


def clean_environment(work: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOURCES__", "DESTINATION__", "CLOSE_DUCKDB_PATH"))
    }
    env.update(DLT_DATA_DIR=str(work / "dlt"), RUNTIME__DLTHUB_TELEMETRY="false")
    return env


def close_pipeline(work: Path, *args: str) -> subprocess.CompletedProcess:
    """Runs ``close-pipeline`` in ``work`` (a user's working directory)."""
    return subprocess.run(
        CLI + list(args),
        cwd=work,
        env=clean_environment(work),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def demo_duckdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """close.duckdb with the demo org's raw tables and marts (read it; copy it to change it)."""
    work = tmp_path_factory.mktemp("demo")
    result = close_pipeline(work, "load", "--demo")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    path = work / "close.duckdb"
    dbt = run_dbt(["run"], path, work)
    assert dbt.success, dbt.output[-3000:]
    return path


@pytest.fixture
def demo_copy(demo_duckdb: Path, tmp_path: Path) -> Path:
    """A copy of the demo DuckDB file this test may change."""
    copy = tmp_path / "close.duckdb"
    shutil.copyfile(demo_duckdb, copy)
    return copy


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with chromium() as context:
        yield context
