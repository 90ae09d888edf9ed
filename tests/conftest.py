"""Fixtures shared by every test: an isolated dlt environment and a pinned "today"."""

import os
from datetime import datetime, timezone

import pytest

from tests.utils import ANCHOR, ONE_DAY

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> None:
    """No Close key, base URL or destination from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("SOURCES__CLOSE__", "DESTINATION__", "CLOSE_DUCKDB_PATH")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path_factory.mktemp("dlt_data")))


@pytest.fixture
def pin_today(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Makes "now" noon UTC on the day after the simulator's last day of history."""
    now = datetime.combine(ANCHOR + ONE_DAY, datetime.min.time(), timezone.utc).replace(hour=12)
    monkeypatch.setattr("close_reports.source.windows.utc_now", lambda: now)
    return now
