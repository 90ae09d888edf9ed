"""One org partition's load when Close refuses a report: the tables that loaded are
materialized, the refused ones are not, and the run fails naming Close's answer."""

from datetime import timedelta
from typing import Any, Dict

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
from close_reports.simulator import CloseSimulator  # noqa: E402
from tests.utils import ANCHOR, small_org  # noqa: E402

USERS = dg.AssetKey(["close", "users"])
FUNNEL_TOTALS = dg.AssetKey(["close", "funnel_totals"])
FUNNEL_STAGES = dg.AssetKey(["close", "funnel_stages"])
LEDGER = dg.AssetKey(["close", "run_ledger"])


class PlanGatedFleet(dd.CloseFleet):
    """The demo partition against an org whose plan refuses the funnel reports."""

    def source_kwargs(self, partition: str) -> Dict[str, Any]:
        simulator = CloseSimulator(
            small_org(), refuse={"/report/funnel/": (403, "Not available on your plan")}
        )
        return {
            "api_key": "demo",
            "api_keys": [],
            "base_url": "http://close.test/api/v1",
            "transport": simulator.transport(),
            "today": ANCHOR + timedelta(days=1),
            "start_date": (ANCHOR - timedelta(days=6)).isoformat(),
        }


def test_a_refused_report_fails_the_run_after_the_rest_is_materialized(tmp_path) -> None:
    settings = dd.FleetSettings(duckdb_path=str(tmp_path / "close.duckdb"))
    assets = dd.build_raw_assets(settings, dg.StaticPartitionsDefinition(["demo"]))
    close = PlanGatedFleet(
        duckdb_path=str(tmp_path / "close.duckdb"), pipelines_dir=str(tmp_path / "pipelines")
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [assets],
            selection=[USERS, FUNNEL_TOTALS, FUNNEL_STAGES, LEDGER],
            partition_key="demo",
            resources={"close": close},
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    done = {e.asset_key for e in result.get_asset_materialization_events()}
    assert done == {USERS, LEDGER}
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "Org 'demo': 2 report(s) not loaded (the other reports loaded" in message
    assert "Not available on your plan" in message and "403" in message
    con = duckdb.connect(str(tmp_path / "close.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from close_raw.users").fetchall() == [(6,)]
        ledger = con.execute(
            "select report, status from close_raw.run_ledger where report like 'funnel%' order by 1"
        ).fetchall()
        assert ledger == [("funnel_stages", "failed"), ("funnel_totals", "failed")]
    finally:
        con.close()
