"""The fleet settings, schedule, freshness verdicts and key handling of the Dagster code
location, without running anything (``test_code_location.py`` runs it)."""

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest

dg = pytest.importorskip(
    "dagster", reason="the `dagster` extra is not installed: pip install -e '.[dagster]'"
)
pytest.importorskip(
    "dagster_dbt", reason="the `dagster` extra is not installed: pip install -e '.[dagster]'"
)
pytest.importorskip(
    "dagster_dlt", reason="the `dagster` extra is not installed: pip install -e '.[dagster]'"
)

from close_reports import dagster_definitions as dd  # noqa: E402


@pytest.mark.parametrize(
    ("ages", "expected"),
    [
        ({"a": timedelta(hours=1), "b": timedelta(hours=25)}, (True, None, [])),
        ({"a": timedelta(hours=1), "b": timedelta(hours=27)}, (False, "WARN", ["b"])),
        ({"a": timedelta(hours=51), "b": timedelta(hours=27)}, (False, "ERROR", ["a", "b"])),
        ({"a": None, "b": timedelta(hours=2)}, (False, "ERROR", ["a"])),
    ],
)
def test_a_late_org_fails_the_freshness_check(ages: Dict[str, Any], expected: tuple) -> None:
    passed, severity, late = dd.judge(ages, dd.Freshness(timedelta(hours=26), timedelta(hours=50)))
    assert (passed, None if passed else severity.value, late) == expected


def test_pool_without_a_limit_is_warned_about() -> None:
    messages: List[str] = []
    with dg.instance_for_test() as instance:
        context = SimpleNamespace(instance=instance, log=SimpleNamespace(warning=messages.append))
        dd.warn_if_pool_unlimited(context, "close_test_pool")  # type: ignore[arg-type]
        assert "dagster instance concurrency set close_test_pool 1" in messages[0]
        instance.event_log_storage.set_concurrency_slots("close_test_pool", 1)
        dd.warn_if_pool_unlimited(context, "close_test_pool")  # type: ignore[arg-type]
    assert len(messages) == 1


# --- configuration of a fleet ---------------------------------------------------------------


def test_orgs_become_partitions_and_demo_is_only_the_default() -> None:
    orgs = {"acme": "ACME_CLOSE_API_KEY", "globex": "GLOBEX_CLOSE_API_KEY"}
    assert dd.FleetSettings(orgs=orgs).partition_keys == ["acme", "globex"]
    assert dd.FleetSettings(orgs=orgs, demo=True).partition_keys == ["demo", "acme", "globex"]
    assert dd.FleetSettings().partition_keys == ["demo"]
    with pytest.raises(ValueError, match="no org configured and demo = false"):
        dd.FleetSettings(demo=False)


def test_settings_read_from_dlt_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSE_DAGSTER__ORGS", json.dumps({"acme": "ACME_CLOSE_API_KEY"}))
    monkeypatch.setenv("CLOSE_DAGSTER__CRON", "0 4 * * *")
    monkeypatch.setenv("CLOSE_DAGSTER__DUCKDB_PATH", "/tmp/fleet.duckdb")
    settings = dd.FleetSettings.from_config()
    assert settings.orgs == {"acme": "ACME_CLOSE_API_KEY"}
    assert (settings.cron, settings.duckdb_path) == ("0 4 * * *", "/tmp/fleet.duckdb")


@pytest.mark.parametrize(
    ("orgs", "message"),
    [
        ({"acme": "api_3fT9sEcReT"}, "NAME of the environment variable"),
        ({"acme corp": "ACME_KEY"}, "not a usable partition name"),
        ({"demo": "DEMO_KEY"}, "reserved"),
    ],
)
def test_bad_org_config_is_refused_without_echoing_a_key(orgs: Dict[str, str], message: str):
    with pytest.raises(ValueError, match=message) as error:
        dd.FleetSettings(orgs=orgs)
    assert "3fT9sEcReT" not in str(error.value)


def test_org_partition_without_its_key_fails_before_any_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    close = dd.CloseFleet(orgs={"acme": "ACME_CLOSE_API_KEY"})
    with pytest.raises(dg.Failure, match="ACME_CLOSE_API_KEY is not set"):
        close.source_kwargs("acme")
    monkeypatch.setenv("ACME_CLOSE_API_KEY", "api_acme")
    monkeypatch.setenv("SOURCES__CLOSE__API_KEYS", json.dumps(["api_other"]))
    assert close.source_kwargs("acme") == {"api_key": "api_acme", "api_keys": []}
    with pytest.raises(dg.Failure, match="not in"):
        close.source_kwargs("initech")


def test_daily_schedule_requests_one_run_per_org() -> None:
    settings = dd.FleetSettings(orgs={"acme": "A_KEY", "globex": "G_KEY"}, demo=True)
    job = dg.define_asset_job(dd.RAW_JOB, partitions_def=dg.StaticPartitionsDefinition(["x"]))
    schedule = dd.build_daily_schedule(settings, job)
    tick = datetime(2026, 3, 21, 5, 30, tzinfo=timezone.utc)
    requests = list(schedule(dg.build_schedule_context(scheduled_execution_time=tick)))
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("demo", "demo:2026-03-21"),
        ("acme", "acme:2026-03-21"),
        ("globex", "globex:2026-03-21"),
    ]
