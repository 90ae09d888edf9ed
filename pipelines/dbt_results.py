"""What the dbt build said beyond pass / fail: warnings of the data tests, for the run summary.

The dbt project grades its tests (dbt_project.yml): checks of our own modelling (grains,
fan-out, relationships, accepted values) always fail the build; checks of Close's own numbers
(tag ``close_invariant``) only warn, unless ``close_strict_invariants`` is true, which the
command line sets for ``--demo`` (the simulator's numbers are consistent by construction).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List

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
