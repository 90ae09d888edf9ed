"""The wheel as a user installs it: built from a clean copy of the repository, installed
(not editable) into a fresh virtualenv, run from an empty directory.

One module fixture builds the wheel and installs its core (no extras); the tests then check the
wheel's contents, that the core loads without dbt or tqdm and that `run` says how to get dbt
before loading; then the `dbt` extra is installed and `close-pipeline run --demo` runs load +
dbt in an empty directory. The DuckDB file it writes is opened by a DuckDB 1.x reader, and
`pipeline.dataset()` (row_counts, arrow) works in that environment.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

import pytest

from tests.packaging.conftest import clean_copy, clean_env, make_venv, run

pytestmark = pytest.mark.packaging

OWN_TOP_LEVEL = {"close_reports"}
READER_DUCKDB = "1.1.3"
"""An older DuckDB 1.x, as BI tools and drivers embed."""


@dataclass
class Installed:
    wheel: Path
    bin: Path
    home: Path  # an empty directory, the user's working directory
    env: Dict[str, str]

    def cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin / "close-pipeline"), *args],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    source = clean_copy(root / "source")
    # what a used checkout has and the wheel must never carry
    for junk in ("dbt/target/manifest.json", "dbt/logs/dbt.log", "dbt/target/run/x.sql"):
        (source / junk).parent.mkdir(parents=True, exist_ok=True)
        (source / junk).write_text("{}")
    dist = root / "dist"
    env = clean_env(DLT_DATA_DIR=str(root / "dlt"))
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist)]
        + [str(source)],
        cwd=root,
        env=env,
    )
    [wheel] = dist.glob("close_reports-*.whl")
    bin_dir = make_venv(root / "venv")
    run([str(bin_dir / "pip"), "install", "--quiet", str(wheel)], cwd=root, env=env)
    home = root / "home"
    home.mkdir()
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    return Installed(wheel=wheel, bin=bin_dir, home=home, env=env)


def test_wheel_has_only_its_own_top_level_names(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(
        (".dist-info", ".data")
    )}  # fmt: skip
    assert top_level == OWN_TOP_LEVEL, top_level
    assert "close_reports/dbt_project/dbt_project.yml" in names
    assert "close_reports/dbt_project/profiles.yml" in names
    assert any(n.startswith("close_reports/dbt_project/models/marts/") for n in names)
    assert "close_reports/source/__init__.py" in names
    assert "close_reports/simulator/__init__.py" in names
    leaked = [n for n in names if "/target/" in n or "/logs/" in n or "__pycache__" in n]
    assert not leaked, leaked


def test_core_install_has_no_dbt_nor_tqdm(installed: Installed) -> None:
    probe = "import importlib.util as u; print(u.find_spec('dbt'), u.find_spec('tqdm'))"
    out = run([str(installed.bin / "python"), "-c", probe], installed.home, installed.env)
    assert out.strip() == "None None", out


def test_run_without_dbt_says_how_to_install_it_before_loading(installed: Installed) -> None:
    result = installed.cli("run", "--demo")
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "pip install 'close-reports[dbt]'" in last and "close-pipeline load" in last, last
    assert not (installed.home / "close.duckdb").exists()


def test_core_loads_with_plain_progress_lines(installed: Installed) -> None:
    result = installed.cli("load", "--demo", "--resources", "users,funnel_totals")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "progress: funnel_totals done" in result.stderr
    assert (installed.home / "close.duckdb").exists()


@pytest.fixture(scope="module")
def demo_run(installed: Installed) -> subprocess.CompletedProcess:
    """The `dbt` extra installed, then `close-pipeline run --demo` in the empty directory."""
    wheel = installed.wheel
    run(
        [
            str(installed.bin / "pip"),
            "install",
            "--quiet",
            f"close-reports[dbt] @ {wheel.as_uri()}",
        ],
        cwd=installed.home,
        env=installed.env,
    )
    for leftover in installed.home.iterdir():  # the core-only load above
        subprocess.run(["rm", "-rf", str(leftover)], check=True)
    subprocess.run(["rm", "-rf", installed.env["DLT_DATA_DIR"]], check=True)
    return installed.cli("run", "--demo")


def test_run_demo_from_an_empty_directory_loads_and_builds_the_marts(
    installed: Installed, demo_run: subprocess.CompletedProcess
) -> None:
    assert demo_run.returncode == 0, demo_run.stdout[-3000:] + demo_run.stderr[-3000:]
    assert "marts in close_marts (rows):" in demo_run.stdout
    assert "dbt: building the marts on duckdb" in demo_run.stderr
    assert (installed.home / "close.duckdb").is_file()
    assert f"DuckDB file: {installed.home / 'close.duckdb'}" in demo_run.stdout
    created = sorted(p.name for p in installed.home.iterdir())
    assert "dbt" not in created and "target" not in created, created
    package = next((installed.bin.parent / "lib").glob("python3*/site-packages/close_reports"))
    written = sorted(p.name for p in (package / "dbt_project").iterdir())
    assert not {"target", "logs", "dbt_packages"} & set(written), written


def test_dataset_row_counts_and_arrow_work(
    installed: Installed, demo_run: subprocess.CompletedProcess
) -> None:
    assert demo_run.returncode == 0
    script = textwrap.dedent("""
        import dlt
        pipeline = dlt.attach("close")
        dataset = pipeline.dataset()
        counts = dict(dataset.row_counts().fetchall())
        assert counts["users"] == 25, counts
        table = dataset.users.arrow()
        assert table.num_rows == 25, table.num_rows
        print("ok", len(counts))
    """)
    out = run([str(installed.bin / "python"), "-c", script], installed.home, installed.env)
    assert out.startswith("ok"), out


def test_a_duckdb_1x_reader_opens_the_file_and_reads_a_mart(
    installed: Installed, demo_run: subprocess.CompletedProcess, tmp_path: Path
) -> None:
    assert demo_run.returncode == 0
    reader = tmp_path / "reader"
    run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(reader)]
        + [f"duckdb=={READER_DUCKDB}"],
        cwd=tmp_path,
        env=installed.env,
    )
    script = textwrap.dedent(f"""
        import duckdb
        assert duckdb.__version__ == {READER_DUCKDB!r}, duckdb.__version__
        con = duckdb.connect({str(installed.home / "close.duckdb")!r}, read_only=True)
        [(rows, users)] = con.execute(
            "select count(*), count(distinct user_id) from close_marts.fct_user_activity_daily"
        ).fetchall()
        assert rows > 0 and users > 0, (rows, users)
        print("ok", rows)
    """)
    env = {**installed.env, "PYTHONPATH": str(reader)}
    out = run([sys.executable, "-S", "-c", script], tmp_path, env)
    assert out.startswith("ok"), out
