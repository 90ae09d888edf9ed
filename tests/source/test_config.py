"""The committed configuration matches what the code documents and falls back to."""

import tomllib
from pathlib import Path

from close_reports.source.settings import (
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_TIMEZONE,
    EXAMPLE_CUSTOM_REPORTS,
)

CONFIG = Path(__file__).resolve().parents[2] / ".dlt" / "config.toml"


def test_config_toml_holds_the_documented_defaults() -> None:
    close = tomllib.loads(CONFIG.read_text())["sources"]["close"]
    assert close["timezone"] == DEFAULT_TIMEZONE
    assert close["lookback_days"] == DEFAULT_LOOKBACK_DAYS
    assert close["custom_reports"] == list(EXAMPLE_CUSTOM_REPORTS)
