"""What the dbt side of a run says beyond pass / fail: test warnings and stale sources.

- **Test warnings.** The dbt project grades its tests (dbt_project.yml): checks of our own
  modelling (grains, fan-out, relationships, accepted values) always fail the build; checks of
  Close's own numbers (tag ``close_invariant``) only warn, unless ``close_strict_invariants``
  is true, which the command line sets for ``--demo`` (the simulator's numbers are consistent
  by construction).
- **Freshness.** After the build, ``dbt source freshness`` measures each raw table's newest
  ``_dlt_load_id`` against the thresholds of the sources yml (a daily schedule: warn after
  26 h, error after 50 h). A table past either threshold is *stale*: named in the summary, and
  with ``--fail-on-stale`` it fails the run.

(Not named ``dbt_*.py``: dbt imports any top-level module of that name as a plugin.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from close_reports.failures import DbtBuildError

STRICT_INVARIANTS_VAR = "close_strict_invariants"
"""dbt var: true turns the checks of Close's own numbers from warnings into errors."""


def package_vars(dataset: str, strict_invariants: bool) -> Dict[str, Any]:
    """The dbt vars of one build: the raw schema, and whether Close's numbers must be consistent.

    Args:
        dataset: the raw dataset (schema) the loader wrote.
        strict_invariants: fail the build when Close's own numbers disagree with each other.
    """
    return {"close_raw_schema": dataset, STRICT_INVARIANTS_VAR: strict_invariants}


def dbt_warnings(results: Iterable[Any]) -> List[str]:
    """One summary line per dbt node that ended in ``warn``.

    Args:
        results: dlt's dbt runner results (``DBTNodeResult``: model_name, message, status).
    """
    lines = []
    for result in results or ():
        if str(getattr(result, "status", "")).lower() != "warn":
            continue
        message = " ".join(str(getattr(result, "message", "") or "").split())
        lines.append(
            f"dbt test {result.model_name} warned ({message or 'warn'}): Close's own numbers "
            "disagree there (a check of Close's data, not of the marts; it fails the build "
            f"with --vars '{{{STRICT_INVARIANTS_VAR}: true}}')"
        )
    return lines


# ---------------------------------------------------------------- freshness

STALE_STATUSES = ("warn", "error")
"""dbt freshness statuses of a table past its warn_after / error_after threshold."""


class StaleSourcesError(DbtBuildError):
    """``--fail-on-stale``: a raw table is older than its freshness threshold."""


@dataclass(frozen=True)
class SourceFreshness:
    """One raw table's freshness, as ``dbt source freshness`` measured it."""

    name: str
    """``<source>.<table>``, e.g. ``close.activity_by_user``."""
    status: str
    """``pass``, ``warn``, ``error`` or ``runtime error`` (could not be measured)."""
    age_seconds: Optional[float]
    """Seconds since the newest ``_dlt_load_id`` of the table."""
    threshold: str
    """The threshold it passed (``warn after 26 hours``), or the error for a runtime error."""

    @property
    def is_stale(self) -> bool:
        return self.status in STALE_STATUSES

    def describe(self) -> str:
        if self.status == "runtime error":
            return f"{self.name} (freshness not measured: {self.threshold})"
        age = "unknown" if self.age_seconds is None else _age(self.age_seconds)
        return f"{self.name} (last loaded {age} ago; {self.threshold})"


def _age(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"


def _threshold(status: str, criteria: Mapping[str, Any]) -> str:
    key = "error_after" if status == "error" else "warn_after"
    limit = criteria.get(key) or {}
    if not limit.get("count"):
        return status
    return f"{key.replace('_', ' ')} {limit['count']} {limit.get('period', '')}s".strip()


def parse_freshness(sources_json: Mapping[str, Any]) -> List[SourceFreshness]:
    """The tables of dbt's ``sources.json`` freshness artifact, sorted by name."""
    found = []
    for result in sources_json.get("results", []):
        unique_id = str(result.get("unique_id", ""))
        name = ".".join(unique_id.split(".")[2:]) or unique_id  # source.<project>.<src>.<t>
        status = str(result.get("status", ""))
        if status == "runtime error":
            error = " ".join(str(result.get("error") or result.get("message") or "").split())
            found.append(SourceFreshness(name, status, None, error[:200] or "unknown error"))
            continue
        age = result.get("max_loaded_at_time_ago_in_s")
        found.append(
            SourceFreshness(
                name,
                status,
                None if age is None else float(age),
                _threshold(status, result.get("criteria") or {}),
            )
        )
    return sorted(found, key=lambda f: f.name)


def source_freshness(
    project_dir: Path,
    target: str,
    package_vars: Mapping[str, Any],
    work_dir: Path,
    profile: str = "close_reports",
) -> List[SourceFreshness]:
    """Runs ``dbt source freshness`` on the project in a subprocess and reads its artifact.

    A subprocess, as dlt's runner does (dbt-duckdb would keep the DuckDB file open in this
    process). Target and logs go to ``work_dir``; profiles come from the project directory.

    Raises:
        DbtBuildError: dbt could not measure freshness at all (no artifact written).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    output = work_dir / "sources.json"
    output.unlink(missing_ok=True)
    command: Sequence[str] = [
        sys.executable,
        "-m",
        "dbt.cli.main",
        "--no-use-colors",
        "source",
        "freshness",
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--profile",
        profile,
        "--target",
        target,
        "--vars",
        json.dumps(dict(package_vars)),
        "--target-path",
        str(work_dir / "target"),
        "--log-path",
        str(work_dir / "logs"),
        "--output",
        str(output),
    ]
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    completed = subprocess.run(
        command, cwd=work_dir, env=env, capture_output=True, text=True, check=False
    )
    if not output.exists():
        tail = " ".join((completed.stdout + completed.stderr).split()[-60:])
        raise DbtBuildError(
            f"dbt source freshness did not run (exit {completed.returncode}): {tail}"
        )
    return parse_freshness(json.loads(output.read_text()))


def freshness_warnings(results: Iterable[SourceFreshness]) -> List[str]:
    """Summary lines: every stale table, and every table whose freshness could not be measured."""
    lines = []
    for result in results:
        if result.is_stale:
            lines.append(f"stale source {result.describe()}")
        elif result.status == "runtime error":
            lines.append(f"source {result.describe()}")
    return lines


def stale_error(results: Iterable[SourceFreshness]) -> Optional[StaleSourcesError]:
    """For ``--fail-on-stale``: the error naming every stale table, or None when all are fresh."""
    stale = [result.describe() for result in results if result.is_stale]
    if not stale:
        return None
    return StaleSourcesError(
        f"stale sources (loaded and built, but older than their freshness threshold): "
        f"{', '.join(stale)}"
    )


def check_freshness(
    summary: Any,
    project_dir: Path,
    target: str,
    package_vars: Mapping[str, Any],
    work_dir: Path,
    fail_on_stale: bool,
) -> None:
    """Measures freshness after a build: stale tables go into ``summary.warnings``.

    Raises:
        StaleSourcesError: ``fail_on_stale`` and a table is stale.
        DbtBuildError: ``fail_on_stale`` and freshness could not be measured at all (a
            scheduler asked to be told; without the flag that is a warning).
    """
    try:
        results = source_freshness(project_dir, target, package_vars, work_dir)
    except DbtBuildError as exc:
        if fail_on_stale:
            raise
        summary.warnings.append(f"freshness not checked: {exc}")
        return
    summary.warnings += freshness_warnings(results)
    error = stale_error(results)
    if fail_on_stale and error is not None:
        raise error
