"""The Dagster code location (``close_reports.dagster_definitions``), run for real in-process.

One module fixture builds the Definitions (``dbt parse`` into a temporary target), then drives
the demo partition through them on one test instance, as a deployment would: the load job,
``dagster.materialize`` of one of its tables (continuing from the state restored out of the
DuckDB file), the marts sensor, the marts job (``dbt build``: every dbt test an asset check)
and the freshness job.
The checks compare the loaded rows and the marts with the simulator's own events.

Needs the ``dagster`` extra (``make setup`` installs it with the dev tools).
"""

import json
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List

import duckdb
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
from close_reports.close_pipeline import DEMO_SEED  # noqa: E402
from close_reports.simulator import events_to_duckdb, generate_org  # noqa: E402
from close_reports.source import RESOURCE_NAMES  # noqa: E402
from tests.utils import ANCHOR, isolate_environment  # noqa: E402

pytestmark = pytest.mark.dbt  # builds and tests the dbt project (about a minute)

DEMO_DAYS = 14
TODAY = ANCHOR + timedelta(days=1)
START = TODAY - timedelta(days=DEMO_DAYS)
BY_USER = dg.AssetKey(["close", "activity_by_user"])
LEDGER = dg.AssetKey(["close", "run_ledger"])
RAW_KEYS = {dg.AssetKey(["close", t]) for t in RESOURCE_NAMES} | {LEDGER}
DBT_MODELS = Path(__file__).resolve().parents[2] / "dbt" / "models"
STAGING_MODELS = sorted(DBT_MODELS.glob("staging/close/stg_close__*.sql"))
MARTS = sorted(DBT_MODELS.glob("marts/**/*.sql"))


@dataclass
class Fleet:
    settings: Any
    defs: Any
    instance: Any
    first_load: Any
    second_load: Any
    sensor_waiting: Any
    sensor_before_marts: Any
    marts: Any
    sensor_after_marts: Any
    freshness: Any
    duckdb_path: Path
    seconds: Dict[str, float]

    def rows(self, sql: str, *params: Any) -> List[tuple]:
        """Rows of ``sql`` on the warehouse (``wh``, read-only) with the demo org's events
        in ``memory.ev``."""
        con = duckdb.connect()
        events_to_duckdb(
            generate_org(seed=DEMO_SEED, scale="small", anchor_date=ANCHOR), con, schema="ev"
        )
        con.execute(f"attach '{self.duckdb_path}' as wh (read_only)")
        try:
            return con.execute(sql, list(params)).fetchall()
        finally:
            con.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("dagster")
    with pytest.MonkeyPatch.context() as patch:
        isolate_environment(patch, base / "dlt_data")
        # activity_by_user re-reads 28 days by default (an as-of-now report); 3 here, so the
        # second run shows how far the restored state lets it skip
        patch.setenv("SOURCES__CLOSE__REFRESH_DAYS", json.dumps({"activity_by_user": 3}))
        settings = dd.FleetSettings(
            demo_scale="small",
            demo_days=DEMO_DAYS,
            demo_anchor_date=ANCHOR,
            duckdb_path=str(base / "close.duckdb"),
            dbt_target_path=str(base / "dbt_target"),
        )
        seconds: Dict[str, float] = {}
        clock = time.monotonic()

        def lap(name: str) -> None:
            nonlocal clock
            seconds[name] = round(time.monotonic() - clock, 1)
            clock = time.monotonic()

        defs = dd.build_definitions(settings)
        lap("definitions (dbt parse)")
        with dg.instance_for_test() as instance:
            instance.event_log_storage.set_concurrency_slots(settings.pool, 1)
            load = defs.resolve_job_def(dd.RAW_JOB)
            first = load.execute_in_process(partition_key="demo", instance=instance)
            lap("first load")
            # a subset of the raw assets alone (without the dbt source tests that check them)
            second = dg.materialize(
                [defs.resolve_assets_def(BY_USER)],
                selection=[BY_USER, LEDGER],
                partition_key="demo",
                instance=instance,  # the resolved asset carries the code location's resources
            )
            lap("second load (one table)")
            sensor = defs.resolve_sensor_def("close_marts_after_loads")
            queued = dg.DagsterRun(job_name=dd.RAW_JOB, status=dg.DagsterRunStatus.NOT_STARTED)
            instance.add_run(queued)
            waiting = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
            instance.delete_run(queued.run_id)
            before = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
            marts = defs.resolve_job_def(dd.MARTS_JOB).execute_in_process(instance=instance)
            lap("marts (dbt build)")
            after = sensor.evaluate_tick(
                dg.build_sensor_context(instance=instance, cursor=before.cursor)
            )
            freshness = defs.resolve_job_def(dd.FRESHNESS_JOB).execute_in_process(instance=instance)
            lap("freshness checks")
            yield Fleet(
                settings=settings,
                defs=defs,
                instance=instance,
                first_load=first,
                second_load=second,
                sensor_waiting=waiting,
                sensor_before_marts=before,
                marts=marts,
                sensor_after_marts=after,
                freshness=freshness,
                duckdb_path=base / "close.duckdb",
                seconds=seconds,
            )


# --- the code location loads ------------------------------------------------------------------


def test_definitions_load_with_jobs_schedules_and_sensor(fleet: Fleet) -> None:
    print(f"\nDagster demo fleet, seconds: {fleet.seconds}")
    defs = fleet.defs
    dg.Definitions.validate_loadable(defs)
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {dd.RAW_JOB, dd.MARTS_JOB, dd.FRESHNESS_JOB} <= jobs
    assert defs.resolve_job_def(dd.RAW_JOB).partitions_def.get_partition_keys() == ["demo"]
    assert defs.resolve_schedule_def("close_daily").cron_schedule == dd.DEFAULT_CRON
    assert defs.resolve_schedule_def("close_freshness_hourly")
    assert (
        defs.resolve_sensor_def("close_marts_after_loads").default_status
        == dg.DefaultSensorStatus.RUNNING
    )


def test_the_module_entry_point_loads_from_the_config(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``dagster dev -m close_reports.dagster_definitions`` loads: ``[close_dagster]``
    from dlt's providers (here env vars), the manifest reused when nothing changed."""
    manifest = Path(fleet.settings.resolved_dbt_target_path()) / "manifest.json"
    parsed_at = manifest.stat().st_mtime
    monkeypatch.setenv("CLOSE_DAGSTER__ORGS", json.dumps({"acme": "ACME_CLOSE_API_KEY"}))
    monkeypatch.setenv("CLOSE_DAGSTER__DEMO", "true")
    monkeypatch.setenv("CLOSE_DAGSTER__DUCKDB_PATH", fleet.settings.duckdb_path)
    monkeypatch.setenv("CLOSE_DAGSTER__DBT_TARGET_PATH", fleet.settings.dbt_target_path)
    defs = dd.defs()
    dg.Definitions.validate_loadable(defs)
    keys = defs.resolve_job_def(dd.RAW_JOB).partitions_def.get_partition_keys()
    assert keys == ["demo", "acme"]
    assert manifest.stat().st_mtime == parsed_at  # no second dbt parse


def test_one_asset_per_raw_table_and_the_marts_downstream_of_them(fleet: Fleet) -> None:
    graph = fleet.defs.resolve_asset_graph()
    raw = fleet.defs.resolve_assets_def(dg.AssetKey(["close", "users"]))
    assert set(raw.keys) == RAW_KEYS
    assert raw.partitions_def.get_partition_keys() == ["demo"]
    staging = [k for k in graph.get_all_asset_keys() if k.path[-1].startswith("stg_close__")]
    assert len(staging) == len(STAGING_MODELS)
    for key in staging:  # every staging view reads its raw table, which is a dlt asset
        parents = graph.get(key).parent_keys
        assert dg.AssetKey(["close", key.path[-1].removeprefix("stg_close__")]) in parents
        assert parents <= RAW_KEYS  # (the activity views also read activity_metrics)
    mart = graph.get(dg.AssetKey(["close_marts", "fct_user_activity_daily"]))
    assert dg.AssetKey(["close_staging", "stg_close__activity_by_user"]) in mart.parent_keys
    assert mart.partitions_def is None  # the marts span every org


def test_writers_of_the_destination_share_one_pool(fleet: Fleet) -> None:
    for key in (BY_USER, dg.AssetKey(["close_marts", "fct_user_activity_daily"])):
        assert fleet.defs.resolve_assets_def(key).op.pool == dd.DEFAULT_POOL


# --- the demo partition loads -----------------------------------------------------------------


def _materialized(result: Any) -> Dict[dg.AssetKey, Dict[str, Any]]:
    return {
        m.asset_key: {k: v.value for k, v in m.metadata.items()}
        for m in (e.materialization for e in result.get_asset_materialization_events())
    }


def test_demo_partition_materializes_every_raw_table(fleet: Fleet) -> None:
    assert fleet.first_load.success
    done = _materialized(fleet.first_load)
    assert set(done) == RAW_KEYS
    assert {e.partition for e in fleet.first_load.get_asset_materialization_events()} == {"demo"}
    users = done[dg.AssetKey(["close", "users"])]
    assert users["rows_loaded"] == 6  # the small org's users
    by_user = done[BY_USER]
    assert by_user["windows"] == DEMO_DAYS
    assert (by_user["first_window"], by_user["last_window"]) == (str(START), str(ANCHOR))
    assert by_user["org_id"].startswith("orga_")


def test_raw_rows_equal_the_simulator_events(fleet: Fleet) -> None:
    [(users,)] = fleet.rows("select count(*) from wh.close_raw.users")
    [(truth_users,)] = fleet.rows("select count(*) from memory.ev.users")
    assert users == truth_users == 6
    loaded = fleet.rows(
        """select user_id, date, calls_all_all_count from wh.close_raw.activity_by_user
           where segment = '_all' and calls_all_all_count > 0 order by all"""
    )
    truth = fleet.rows(
        """select user_id, cast(created_at as date) as day, count(*) from memory.ev.calls
           where created_at >= ? and created_at < ? group by all order by all""",
        START,
        TODAY,
    )
    assert loaded == truth
    assert len(truth) > DEMO_DAYS


def test_second_load_continues_from_the_state_in_the_destination(fleet: Fleet) -> None:
    """Each run drops the local pipeline directory and restores state from DuckDB: the
    second run re-reads only the lookback days, and the merge leaves no duplicate."""
    assert fleet.second_load.success
    done = _materialized(fleet.second_load)
    assert set(done) == {BY_USER, LEDGER}  # a subset of the tables: only they are read
    by_user = done[BY_USER]
    assert by_user["windows"] == 3  # its refresh window, not the 14 days of the first run
    assert by_user["first_window"] == str(ANCHOR - timedelta(days=2))
    [(rows, keys)] = fleet.rows(
        "select count(*), count(distinct (org_id, segment, date, user_id)) "
        "from wh.close_raw.activity_by_user"
    )
    assert rows == keys
    ledger = fleet.rows(
        "select count(distinct run_id), count(*) filter (status <> 'ok') "
        "from wh.close_raw.run_ledger"
    )
    assert ledger == [(2, 0)]


# --- the marts build after the loads, and their checks pass ----------------------------------


def test_sensor_requests_one_marts_build_after_new_loads(fleet: Fleet) -> None:
    assert not fleet.sensor_waiting.run_requests  # a load still queued: wait for it
    assert "Waiting for 1 load run" in (fleet.sensor_waiting.skip_message or "")
    [request] = fleet.sensor_before_marts.run_requests
    assert request.run_key.startswith("after-")
    assert not fleet.sensor_after_marts.run_requests  # nothing loaded since
    assert "No raw table loaded" in (fleet.sensor_after_marts.skip_message or "")


def test_marts_job_builds_every_model_and_every_dbt_test_passes(fleet: Fleet) -> None:
    assert fleet.marts.success
    built = {key.path[-1] for key in _materialized(fleet.marts)}
    assert {"fct_user_activity_daily", "rpt_rep_scorecard", "dim_users"} <= built
    assert len(built) == len(STAGING_MODELS) + len(MARTS)  # every staging view and mart
    checks = fleet.marts.get_asset_check_evaluations()
    assert len(checks) >= 200
    failed = [(c.asset_key, c.check_name) for c in checks if not c.passed]
    assert not failed
    on_raw = {c.asset_key for c in checks} & RAW_KEYS  # dbt's source tests on the dlt assets
    assert BY_USER in on_raw


def test_marts_equal_the_simulator_events(fleet: Fleet) -> None:
    mart = fleet.rows(
        """select user_id, activity_date, calls_count, calls_duration_seconds
           from wh.close_marts.fct_user_activity_daily where calls_count > 0 order by all"""
    )
    truth = fleet.rows(
        """select user_id, cast(created_at as date), count(*), sum(duration) from memory.ev.calls
           where created_at >= ? and created_at < ? group by all order by all""",
        START,
        TODAY,
    )
    assert mart == truth
    [(rows,)] = fleet.rows("select count(*) from wh.close_marts.fct_user_activity_daily")
    assert rows == 6 * DEMO_DAYS  # zero-filled: every user every day


# --- freshness ------------------------------------------------------------------------------


def test_freshness_checks_pass_right_after_the_load(fleet: Fleet) -> None:
    assert fleet.freshness.success
    checks = fleet.freshness.get_asset_check_evaluations()
    unchecked = {"custom_reports", "custom_report_fields"}  # no dbt freshness
    assert {c.asset_key for c in checks} == {k for k in RAW_KEYS if k.path[-1] not in unchecked}
    assert all(c.passed for c in checks)
    hours = checks[0].metadata["hours_since_load"].value
    assert set(hours) == {"demo"} and hours["demo"] < 1


def test_freshness_thresholds_come_from_the_dbt_sources(fleet: Fleet) -> None:
    manifest = json.loads(
        (Path(fleet.settings.resolved_dbt_target_path()) / "manifest.json").read_text()
    )
    rules = dd.source_freshness(manifest)
    assert rules["users"] == dd.Freshness(timedelta(hours=26), timedelta(hours=50))
    assert "custom_reports" not in rules  # `freshness: null` in the sources yml
