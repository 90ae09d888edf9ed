"""The demo organization's defaults, shared by ``python -m close_reports.simulator``,
``close-pipeline serve-demo-api`` and ``close-pipeline run --demo``."""

SEED = 7
"""Seed of the demo organization."""
SCALE = "medium"
"""Size of the demo organization (``org.SCALES``)."""
