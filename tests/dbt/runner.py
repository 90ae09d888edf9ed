"""Runs the dbt project in ``dbt/`` against a DuckDB file, for the dbt tests.

dbt runs in a subprocess (the venv's ``dbt``), as dlt's dbt runner does: dbt-duckdb keeps its
DuckDB instance open for the life of the process, which would lock the file against the
read-only connections the checks use. Its target and log directories go to a temporary
directory, so the repo tree stays clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt"
DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")
NO_RUN_RESULTS = ("ls", "list", "parse", "deps")
"""dbt commands that write no run_results.json."""


@dataclass
class DbtRun:
    """Outcome of one dbt command: exit status, output, and node name -> (type, status)."""

    returncode: int
    output: str
    nodes: dict[str, tuple[str, str]]

    @property
    def success(self) -> bool:
        return self.returncode == 0

    def names(self, *statuses: str, resource_type: str | None = None) -> set[str]:
        return {
            name
            for name, (node_type, status) in self.nodes.items()
            if status in statuses and resource_type in (None, node_type)
        }

    def not_passed(self) -> dict[str, str]:
        """Nodes that neither succeeded (models) nor passed (tests), with their status."""
        return {
            name: status
            for name, (_, status) in self.nodes.items()
            if status not in {"success", "pass"}
        }


def run_dbt(
    args: Sequence[str],
    duckdb_path: Path,
    work_dir: Path,
    strict: bool | None = True,
    dbt_vars: Mapping[str, Any] | None = None,
) -> DbtRun:
    """Run one dbt command against ``duckdb_path``; target and logs go to ``work_dir``.

    ``strict``: the checks of Close's own numbers are errors (var ``close_strict_invariants``),
    as for every simulated or hand-computed load; False: they only warn, as in a user's build;
    None: no ``--vars`` at all (the project's defaults). ``dbt_vars``: further ``--vars``.
    """
    variables = dict(dbt_vars or {})
    if strict is not None:
        variables["close_strict_invariants"] = strict
    vars_option = ["--vars", json.dumps(variables)] if variables else []
    env = {
        **os.environ,
        "CLOSE_DUCKDB_PATH": str(duckdb_path),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DO_NOT_TRACK": "1",
    }
    target_path = work_dir / "target"
    run_results = target_path / "run_results.json"
    run_results.unlink(missing_ok=True)  # an earlier command's results are not this one's
    completed = subprocess.run(
        [
            str(DBT_EXECUTABLE),
            "--no-use-colors",
            *args,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(target_path),
            "--log-path",
            str(work_dir / "logs"),
            *vars_option,
        ],
        cwd=work_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = completed.stdout + completed.stderr
    nodes: dict[str, tuple[str, str]] = {}
    command = next(arg for arg in args if not arg.startswith("-"))
    if command in NO_RUN_RESULTS:
        return DbtRun(completed.returncode, output, nodes)
    assert run_results.exists(), f"dbt did not run:\n{output}"
    for result in json.loads(run_results.read_text())["results"]:
        # model.<project>.<name>, test.<project>.<name>[.<hash>],
        # unit_test.<project>.<model>.<name>
        parts = result["unique_id"].split(".")
        if parts[0] == "exposure":  # declared, not built (status no-op)
            continue
        name = parts[3] if parts[0] == "unit_test" else parts[2]
        nodes[name] = (parts[0], result["status"])
    return DbtRun(completed.returncode, output, nodes)


def query(duckdb_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()
