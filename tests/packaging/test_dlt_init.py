"""`dlt init close duckdb --location <clone>`: dlt's verified-sources layout.

A clean copy of the repository is committed to a git repository (what ``--location`` reads);
``dlt init`` copies the source into a fresh project directory, whose example script then
loads the simulated Close org served over real HTTP.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from close_reports.simulator import CloseSimulator, generate_org, serve
from tests.packaging.conftest import clean_copy, clean_env, git_commit_all, run

pytestmark = pytest.mark.packaging

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dlt_init")
    clone = clean_copy(root / "clone")
    git_commit_all(clone)
    project = root / "project"
    project.mkdir()
    env = clean_env(DLT_DATA_DIR=str(root / "dlt"))
    out = run(
        [
            str(BIN / "dlt"),
            "--non-interactive",
            "init",
            "close",
            "duckdb",
            "--location",
            str(clone),
        ],
        cwd=project,
        env=env,
    )
    assert "Verified source close was added to your project" in out, out
    return project


def test_dlt_init_copies_the_source_the_example_and_the_requirements(project: Path) -> None:
    assert (project / "close" / "__init__.py").is_file()
    assert (project / "close_pipeline.py").is_file()
    requirements = (project / "requirements.txt").read_text()
    assert "dlt" in requirements and "httpx" in requirements and "tenacity" in requirements
    assert "api_key" in (project / ".dlt" / "secrets.toml").read_text()


def test_the_copied_source_imports_as_close(project: Path) -> None:
    out = run(
        [sys.executable, "-c", "from close import close_source; print(close_source.__name__)"],
        cwd=project,
        env=clean_env(),
    )
    assert out.strip() == "close_source"


def test_the_example_script_loads_the_simulator(project: Path, tmp_path: Path) -> None:
    org = generate_org(seed=3, scale="small")
    http, _ = serve(CloseSimulator(org), port=0)
    try:
        env = clean_env(
            DLT_DATA_DIR=str(tmp_path / "dlt"),
            SOURCES__CLOSE__API_KEY="demo",  # overrides the "<configure me>" of secrets.toml
            SOURCES__CLOSE__BASE_URL=http.url,
            SOURCES__CLOSE__START_DATE=(date.today() - timedelta(days=7)).isoformat(),
            DESTINATION__DUCKDB__CREDENTIALS=str(tmp_path / "close.duckdb"),
        )  # fmt: skip
        result = subprocess.run(
            [sys.executable, "close_pipeline.py"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        http.shutdown()
        http.server_close()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "load package" in result.stdout.lower() or "loaded" in result.stdout.lower()
    with duckdb.connect(str(tmp_path / "close.duckdb"), read_only=True) as con:
        [(users,)] = con.execute("select count(*) from close_raw.users").fetchall()
        [(days,)] = con.execute(
            "select count(distinct date) from close_raw.activity_by_user"
        ).fetchall()
    assert users == len(org.users)
    assert days >= 6
