"""Fixtures shared by every test: an isolated dlt environment."""

import os

import pytest

from tests.utils import isolate_environment

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> None:
    """No Close key, base URL or destination from the developer's shell leaks into a test."""
    isolate_environment(monkeypatch, tmp_path_factory.mktemp("dlt_data"))
