"""The dbt project against a hand-computed raw fixture (``tests/dbt/fixtures.py``).

Builds the fixture into a temporary DuckDB file, runs a real ``dbt build`` (models, data tests,
unit tests) and checks mart values against numbers computed by hand from the fixture rows. A
second build on a deliberately corrupted fixture proves the invariant tests bite: exactly the
tests guarding the broken invariants fail. How dbt is run: ``tests/dbt/runner.py``.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from close_reports.source.settings import TABLES

from . import fixtures as fx
from .runner import DBT_PROJECT_DIR, DbtRun, query, run_dbt

pytestmark = pytest.mark.dbt

STAGED_TABLES = {*TABLES, fx.LEDGER_TABLE}
"""Raw tables with a staging view: the loader's tables and the run ledger (its own contract)."""
MARTS = 18


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DbtRun]:
    """The good fixture, built by ``dbt build``: (DuckDB path, dbt result)."""
    work_dir = tmp_path_factory.mktemp("dbt_fixture")
    duckdb_path = fx.create_raw_fixture(work_dir / "close.duckdb")
    return duckdb_path, run_dbt(["build"], duckdb_path, work_dir)


def test_dbt_build_passes_on_fixture(built: tuple[Path, DbtRun]) -> None:
    _, run = built
    bad = {
        name: status for name, (_, status) in run.nodes.items() if status not in {"success", "pass"}
    }
    assert run.success, f"dbt build failed: {bad}\n{run.output[-3000:]}"
    assert not bad
    assert len(run.names("pass", resource_type="unit_test")) >= 6
    assert len(run.names("success", resource_type="model")) == len(STAGED_TABLES) + MARTS


def test_every_mart_is_non_empty(built: tuple[Path, DbtRun]) -> None:
    duckdb_path, _ = built
    tables = query(
        duckdb_path,
        "select table_name from information_schema.tables where table_schema = 'close_marts'",
    )
    assert len(tables) == MARTS
    for (table,) in tables:
        [(count,)] = query(duckdb_path, f"select count(*) from close_marts.{table}")
        assert count > 0, table


def test_user_activity_daily_is_zero_filled_without_fan_out(
    built: tuple[Path, DbtRun],
) -> None:
    duckdb_path, _ = built
    [(rows,)] = query(
        duckdb_path,
        "select count(*) from close_marts.fct_user_activity_daily where segment = '_all'",
    )
    assert rows == fx.EXPECTED_USER_DAY_ROWS
    sql = """
        select calls_count, calls_duration_seconds, has_report_row
        from close_marts.fct_user_activity_daily
        where user_id = ? and activity_date = ? and segment = '_all'
    """
    assert query(duckdb_path, sql, fx.ANN, fx.D1) == [(*fx.EXPECTED_ANN_D1_CALLS, True)]
    assert query(duckdb_path, sql, fx.BOB, fx.D2) == [(*fx.EXPECTED_BOB_D2_CALLS, False)]


def test_activity_long_form_keeps_org_rows_and_distinct_counts(
    built: tuple[Path, DbtRun],
) -> None:
    duckdb_path, _ = built
    sql = """
        select user_id, metric_value, is_additive
        from close_marts.fct_activity_metrics_daily
        where metric_key = ? and activity_date = ? and segment = '_all'
        order by user_id
    """
    # leads contacted is a distinct count: the org row is not the sum of the users' rows
    assert query(duckdb_path, sql, "leads.contacted.all.count", fx.D1) == [
        ("_org", fx.EXPECTED_ORG_LEADS_CONTACTED_D1, False),
        (fx.ANN, 4.0, False),
        (fx.BOB, 2.0, False),
    ]
    assert query(duckdb_path, sql, "calls.all.all.count", fx.D1) == [
        ("_org", 4.0, True),
        (fx.ANN, 3.0, True),
        (fx.BOB, 1.0, True),
    ]
    [(metrics,)] = query(
        duckdb_path,
        "select count(distinct metric_key) from close_marts.fct_activity_metrics_daily",
    )
    assert metrics == len(fx.METRIC_KEYS)


def test_rep_scorecard_matches_hand_computed_months(built: tuple[Path, DbtRun]) -> None:
    duckdb_path, _ = built
    rows = query(
        duckdb_path,
        """
        select user_id, month_start_date, calls_count, calls_duration_seconds,
               emails_sent_count, emails_replied_count, opportunities_won_count,
               opportunities_lost_count, won_value_cents, win_rate, average_time_to_win_seconds
        from close_marts.rpt_rep_scorecard
        where segment = '_all'
        """,
    )
    actual = {(user, month): tuple(values) for user, month, *values in rows}
    assert actual == fx.EXPECTED_SCORECARD


def test_status_marts_keep_days_and_months_apart(built: tuple[Path, DbtRun]) -> None:
    duckdb_path, _ = built
    daily = query(
        duckdb_path,
        """
        select status_date, count_started, count_ended, count_gained, count_lost
        from close_marts.fct_lead_status_daily
        where status_id = ? and segment = '_all' order by status_date
        """,
        fx.POTENTIAL,
    )
    assert daily == [
        (fx.D1, 10, 12, 3, 1),
        (fx.D2, 12, 10, 0, 2),
        (fx.D3, 10, 12, 2, 0),
    ]
    # January's gained comes from the month report (5), not from summing the loaded days (3)
    monthly = query(
        duckdb_path,
        """
        select month_start_date, count_started, count_ended, count_gained, is_complete_month
        from close_marts.fct_status_monthly
        where object_type = 'lead' and status_id = ? and segment = '_all'
        order by month_start_date
        """,
        fx.POTENTIAL,
    )
    assert monthly == [(fx.JAN, 8, 10, 5, True), (fx.FEB, 10, 12, 2, False)]
    # the deleted status is in the dimension although /status/lead/ no longer lists it
    statuses = query(
        duckdb_path,
        "select status_id, is_deleted, is_in_status_list from close_marts.dim_lead_statuses"
        " order by status_id",
    )
    assert statuses == [
        (fx.OLD, True, False),
        (fx.POTENTIAL, False, True),
        (fx.QUALIFIED, False, True),
    ]


def test_funnel_rates_guard_zero_denominators(built: tuple[Path, DbtRun]) -> None:
    duckdb_path, _ = built
    totals = query(
        duckdb_path,
        """
        select user_id, opportunity_count, complete_count, won_count, win_rate
        from close_marts.fct_funnel_totals
        where cohort_type = 'active-stage-cohort' and segment = '_all' order by user_id
        """,
    )
    assert totals == [
        ("_all", 8, 3, 2, pytest.approx(2 / 3)),
        (fx.ANN, 6, 3, 2, pytest.approx(2 / 3)),
        (fx.BOB, 2, 0, 0, None),
    ]
    stages = query(
        duckdb_path,
        """
        select stage_index, stage_count, cohort_count, conversion_rate_to_next_stage
        from close_marts.fct_funnel_stages
        where cohort_type = 'created-cohort' and user_id = '_all' and segment = '_all'
        order by stage_index
        """,
    )
    assert stages == [
        (0, 7, 7, pytest.approx(3 / 7)),
        (1, 3, 7, pytest.approx(2 / 3)),
        (2, 2, 7, None),
    ]


def test_sent_email_rates(built: tuple[Path, DbtRun]) -> None:
    duckdb_path, _ = built
    rows = query(
        duckdb_path,
        """
        select window_start_date, template_key, sent_count, open_rate, reply_rate
        from close_marts.fct_sent_email_templates
        where template_key <> '_all' and segment = '_all' order by 1, 2
        """,
    )
    assert rows == [
        (fx.D1, "tmpl_follow_up", 2, 0.5, 0.0),
        (fx.D1, "tmpl_promo", 3, pytest.approx(2 / 3), pytest.approx(1 / 3)),
        (fx.D2, "tmpl_follow_up", 0, None, None),
    ]


def test_every_column_is_documented(built: tuple[Path, DbtRun]) -> None:
    """Each staging view and mart column has a description in the model's yml."""
    duckdb_path, _ = built
    documented: dict[str, dict[str, str]] = {}
    for yml in (DBT_PROJECT_DIR / "models").rglob("*.yml"):
        for model in yaml.safe_load(yml.read_text()).get("models", []):
            documented[model["name"]] = {
                c["name"]: c.get("description", "") for c in model.get("columns", [])
            }
    columns = query(
        duckdb_path,
        """
        select table_name, column_name from information_schema.columns
        where table_schema in ('close_staging', 'close_marts')
        """,
    )
    assert columns
    missing = [
        f"{table}.{column}"
        for table, column in columns
        if not documented.get(table, {}).get(column, "").strip()
    ]
    assert not missing, f"undocumented columns: {missing}"


def test_sources_yml_matches_raw_table_contract() -> None:
    """The dbt source describes exactly the raw tables and columns of settings.TABLES."""
    sources_yml = DBT_PROJECT_DIR / "models" / "staging" / "close" / "_close__sources.yml"
    [source] = yaml.safe_load(sources_yml.read_text())["sources"]
    described = {t["name"]: [c["name"] for c in t["columns"]] for t in source["tables"]}
    assert set(described) == STAGED_TABLES
    for table in STAGED_TABLES:
        expected = list(fx.table_columns(table))
        assert described[table] == expected, table
        for column in source["tables"][list(described).index(table)]["columns"]:
            assert column.get("description", "").strip(), f"{table}.{column['name']}"


BROKEN_INVARIANT_TESTS = {
    "status_balance": "fct_lead_status_daily_ended_balance",
    "status_chain": "assert_status_daily_counts_chain",
    "org_totals": "assert_org_activity_equals_sum_of_users",
    "funnel_cohort": "assert_funnel_stages_within_cohort",
}
"""Fixture break -> the one test that must catch it."""


def test_broken_invariants_warn_by_default_and_fail_when_strict(tmp_path: Path) -> None:
    """Without `close_strict_invariants` (a user's build on real data), each corrupted fixture
    row makes exactly the check guarding that invariant warn and the build succeeds; the
    checks are the tests tagged `close_invariant`, and with the var (a simulated or
    hand-computed load) exactly those fail."""
    assert set(BROKEN_INVARIANT_TESTS) == set(fx.BREAKS)
    duckdb_path = fx.create_raw_fixture(tmp_path / "broken.duckdb", breaks=fx.BREAKS)
    run = run_dbt(["build"], duckdb_path, tmp_path, strict=False)
    assert run.success, run.output[-3000:]
    assert not run.names("fail", "error")
    assert run.names("warn") == set(BROKEN_INVARIANT_TESTS.values()), run.output[-3000:]

    strict = run_dbt(["test", "--select", "tag:close_invariant"], duckdb_path, tmp_path)
    assert not strict.success
    assert strict.names("fail", "error") == set(BROKEN_INVARIANT_TESTS.values()), strict.output
    tagged = set(strict.nodes)
    assert set(BROKEN_INVARIANT_TESTS.values()) <= tagged
    assert not {name for name in tagged if name.startswith(("unique", "not_null", "relationships"))}


def test_a_modelling_error_fails_even_when_invariants_only_warn(tmp_path: Path) -> None:
    """Tests of our own modelling (here: a grain) stay errors whatever the invariant policy."""
    duckdb_path = fx.create_raw_fixture(tmp_path / "duplicate.duckdb")
    con = duckdb.connect(str(duckdb_path))
    try:
        con.execute(
            f"insert into {fx.RAW_SCHEMA}.lead_statuses select * from {fx.RAW_SCHEMA}.lead_statuses"
            " limit 1"
        )
    finally:
        con.close()
    run = run_dbt(["build"], duckdb_path, tmp_path, strict=False)
    assert not run.success
    failed = run.names("fail", "error")
    assert failed and all(name.startswith("source_unique_combination") for name in failed), failed


def test_fixture_rejects_unknown_break(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown fixture breaks"):
        fx.create_raw_fixture(tmp_path / "x.duckdb", breaks=["nope"])


def test_build_tolerates_raw_tables_not_loaded_yet(tmp_path: Path) -> None:
    """dlt creates a table only once it has rows: missing raw tables are staged as empty."""
    duckdb_path = fx.create_raw_fixture(tmp_path / "partial.duckdb")
    not_loaded = (
        "custom_reports",
        "custom_report_fields",
        "funnel_stages",
        "activity_overview",
        fx.LEDGER_TABLE,
    )
    con = duckdb.connect(str(duckdb_path))
    try:
        for table in not_loaded:
            con.execute(f"drop table {fx.RAW_SCHEMA}.{table}")
    finally:
        con.close()
    run = run_dbt(["build"], duckdb_path, tmp_path)
    assert run.success, run.output[-3000:]
    [(stages,)] = query(duckdb_path, "select count(*) from close_marts.fct_funnel_stages")
    [(days,)] = query(
        duckdb_path,
        "select count(*) from close_marts.fct_user_activity_daily where segment = '_all'",
    )
    assert (stages, days) == (0, fx.EXPECTED_USER_DAY_ROWS)
    assert query(duckdb_path, "select count(*) from close_marts.rpt_pipeline_runs") == [(0,)]


# --- segments ---------------------------------------------------------------------------------


def _fact_grains() -> dict[str, list[str]]:
    """Mart -> the columns of its grain test (the first unique_combination_of_columns)."""
    grains: dict[str, list[str]] = {}
    for yml in (DBT_PROJECT_DIR / "models" / "marts").glob("*.yml"):
        for model in yaml.safe_load(yml.read_text()).get("models", []):
            for test in model.get("data_tests", []):
                if isinstance(test, dict) and "unique_combination_of_columns" in test:
                    arguments = test["unique_combination_of_columns"]["arguments"]
                    grains.setdefault(model["name"], arguments["combination_of_columns"])
    return grains


def test_segment_is_part_of_every_fact_grain(built: tuple[Path, DbtRun]) -> None:
    """Every fact and report mart has `segment` in its grain, and needs it: with the second
    segment loaded, its key is unique with `segment` and repeats without it."""
    duckdb_path, _ = built
    grains = _fact_grains()
    facts = sorted(name for name in grains if not name.startswith("dim_"))
    assert len(facts) == 10, facts
    for mart in facts:
        key = grains[mart]
        assert key[:2] == ["org_id", "segment"], (mart, key)
        without = ", ".join(c for c in key if c != "segment")
        [(rows, unique, unique_without, segments)] = query(
            duckdb_path,
            f"""
            select count(*), count(distinct ({", ".join(key)})), count(distinct ({without})),
                   count(distinct segment)
            from close_marts.{mart}
            """,
        )
        assert rows == unique, f"{mart}: {rows} rows, {unique} keys"
        assert segments == 2, mart
        assert unique_without < unique, f"{mart}: the second segment's rows add no key"
    for dim in (name for name in grains if name.startswith("dim_")):
        assert "segment" not in grains[dim], dim


def test_segment_rows_are_modelled_within_their_segment(built: tuple[Path, DbtRun]) -> None:
    """The second segment: its own zero-filled spine (its range, the users its report
    mentions), its own scorecard; the unfiltered rows are unchanged beside it."""
    duckdb_path, _ = built
    [(days,)] = query(
        duckdb_path,
        "select count(*) from close_marts.fct_user_activity_daily where segment = ?",
        fx.SEGMENT,
    )
    assert days == fx.EXPECTED_SEGMENT_USER_DAY_ROWS
    rows = query(
        duckdb_path,
        """
        select user_id, month_start_date, calls_count, calls_duration_seconds,
               emails_sent_count, emails_replied_count, opportunities_won_count,
               opportunities_lost_count, won_value_cents, win_rate, average_time_to_win_seconds
        from close_marts.rpt_rep_scorecard
        where segment = ?
        """,
        fx.SEGMENT,
    )
    assert {(user, month): tuple(values) for user, month, *values in rows} == (
        fx.EXPECTED_SEGMENT_SCORECARD
    )
    # the segment's org row is its own overview (Ann 2 + Bob 0 calls on D1), not the org's
    assert query(
        duckdb_path,
        """
        select user_id, metric_value from close_marts.fct_activity_metrics_daily
        where segment = ? and metric_key = 'calls.all.all.count' and activity_date = ?
        order by user_id
        """,
        fx.SEGMENT,
        fx.D1,
    ) == [("_org", 2.0), (fx.ANN, 2.0)]
    # dimensions have no segment: one row per status, whatever the segments
    assert query(duckdb_path, "select count(*) from close_marts.dim_lead_statuses") == [(3,)]


FACT_MARTS = (
    "fct_activity_metrics_daily",
    "fct_funnel_stages",
    "fct_funnel_totals",
    "fct_lead_status_daily",
    "fct_opportunity_status_daily",
    "fct_sent_email_templates",
    "fct_status_monthly",
    "fct_status_transitions",
    "fct_user_activity_daily",
    "rpt_rep_scorecard",
)


def _unfiltered_rows(duckdb_path: Path, mart: str) -> list[tuple]:
    return query(
        duckdb_path, f"select * from close_marts.{mart} where segment = '_all' order by all"
    )


def test_tables_loaded_before_segments_build_as_all(
    built: tuple[Path, DbtRun], tmp_path: Path
) -> None:
    """Raw report tables without a `segment` column (a loader from before segments) build:
    every row is `_all`, and those rows equal the `_all` rows of a build with segments."""
    with_segments, _ = built
    duckdb_path = fx.create_raw_fixture(tmp_path / "no_segments.duckdb", segments=False)
    run = run_dbt(["build"], duckdb_path, tmp_path)
    assert run.success, f"{run.not_passed()}\n{run.output[-3000:]}"
    assert not run.not_passed()
    for mart in FACT_MARTS:
        assert query(duckdb_path, f"select distinct segment from close_marts.{mart}") == [
            ("_all",)
        ], mart
        assert _unfiltered_rows(duckdb_path, mart) == _unfiltered_rows(with_segments, mart), mart


# --- metric columns ---------------------------------------------------------------------------


def test_metric_columns_are_found_through_activity_metrics(tmp_path: Path) -> None:
    """Staging reads a metric's raw column from activity_metrics.column_name, not from a rule
    of its own: a loader that named `calls.all.all.count` differently still fills calls_count,
    and the metric columns carry their readable names from staging on."""
    duckdb_path = fx.create_raw_fixture(tmp_path / "renamed.duckdb")
    con = duckdb.connect(str(duckdb_path))
    try:
        for table in fx.ACTIVITY_TABLES:
            con.execute(
                f"alter table {fx.RAW_SCHEMA}.{table} rename column calls_all_all_count "
                "to calls_all_all_count_v2"
            )
        con.execute(
            f"update {fx.RAW_SCHEMA}.activity_metrics set column_name = 'calls_all_all_count_v2' "
            "where key = 'calls.all.all.count'"
        )
    finally:
        con.close()
    run = run_dbt(["build"], duckdb_path, tmp_path)

    assert run.success, f"{run.not_passed()}\n{run.output[-3000:]}"
    staging_columns = {
        column
        for (column,) in query(
            duckdb_path,
            "select column_name from information_schema.columns "
            "where table_schema = 'close_staging' and table_name = 'stg_close__activity_by_user'",
        )
    }
    assert {"calls_count", "close_calls_average_duration_seconds"} <= staging_columns
    assert not {c for c in staging_columns if c.startswith("calls_all_all")}
    assert query(
        duckdb_path,
        "select calls_count from close_marts.fct_user_activity_daily"
        " where segment = '_all' and user_id = ? and activity_date = ?",
        fx.ANN,
        fx.D1,
    ) == [(fx.EXPECTED_ANN_D1_CALLS[0],)]
    assert query(
        duckdb_path,
        "select metric_value from close_marts.fct_activity_metrics_daily where segment = '_all'"
        " and user_id = '_org' and metric_key = 'calls.all.all.count' and activity_date = ?",
        fx.D1,
    ) == [(4.0,)]


# --- the run ledger ---------------------------------------------------------------------------


def test_pipeline_runs_sum_the_ledger_per_run(built: tuple[Path, DbtRun]) -> None:
    duckdb_path, _ = built
    rows = query(
        duckdb_path,
        """
        select run_id, run_status, reports_read, reports_ok, reports_failed, reports_skipped,
               failed_reports, request_count, retry_count, rate_limited_count, row_count,
               first_window_date, last_window_date, duration_seconds
        from close_marts.rpt_pipeline_runs
        """,
    )
    assert {run: tuple(values) for run, *values in rows} == fx.EXPECTED_RUNS
    detail = query(
        duckdb_path,
        """
        select report_status, error_message, duration_seconds, rate_limited_share
        from close_marts.rpt_pipeline_run_reports
        where run_id = ? and report_name = 'funnel_totals'
        """,
        fx.RUN_2,
    )
    assert detail == [("failed", fx.RUN_LEDGER[5][-1], 6.0, 0.0)]


# --- for BI tools: descriptions in the warehouse, exposures, the semantic layer ---------------


def test_descriptions_reach_the_warehouse(built: tuple[Path, DbtRun]) -> None:
    """persist_docs: every staging view, mart and column carries its yml description as a
    comment (what a BI tool or SQL client shows)."""
    duckdb_path, _ = built
    [(columns, commented)] = query(
        duckdb_path,
        "select count(*), count(comment) filter (where comment <> '') from duckdb_columns()"
        " where schema_name in ('close_staging', 'close_marts')",
    )
    assert columns > 700 and commented == columns
    relations = query(
        duckdb_path,
        "select table_name, comment from duckdb_tables() where schema_name = 'close_marts'"
        " union all "
        "select view_name, comment from duckdb_views() where schema_name = 'close_staging'",
    )
    assert len(relations) == MARTS + len(STAGED_TABLES)
    assert all(comment for _, comment in relations), relations
    assert query(
        duckdb_path,
        "select comment from duckdb_columns() where schema_name = 'close_marts'"
        " and table_name = 'fct_user_activity_daily' and column_name = 'calls_count'",
    ) == [("`calls.all.all.count` (All Calls - All Types); 0 when zero-filled.",)]


def _listed(resource_type: str, work_dir: Path) -> set[str]:
    """`dbt ls` of one resource type, with the project's default vars (no --vars)."""
    run = run_dbt(
        ["--quiet", "ls", "--resource-type", resource_type, "--output", "name"],
        work_dir / "none.duckdb",
        work_dir,
        strict=None,
    )
    assert run.success, run.output[-3000:]
    return set(run.output.split())


def test_dbt_lists_the_metrics_and_exposures(tmp_path: Path) -> None:
    """The semantic layer parses and validates (dbt parse), with no --vars at all."""
    metrics = _listed("metric", tmp_path)
    assert len(metrics) >= 6
    assert {
        "calls",
        "talk_time_hours",
        "emails_sent",
        "email_reply_rate",
        "leads_entered",
        "opportunities_won",
        "win_rate",
        "won_value",
    } <= metrics
    assert _listed("exposure", tmp_path) == {"close_dashboard", "rep_scorecard"}
    assert _listed("semantic_model", tmp_path) == {"user_activity_daily", "lead_status_daily"}


def _mf_query(
    project: Path, env: dict[str, str], metrics: str, group_by: str, out: Path
) -> subprocess.CompletedProcess:
    """`mf query` of ``metrics`` by ``group_by`` in ``project``, written as CSV to ``out``."""
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("mf")),
            *("query", "--metrics", metrics, "--group-by", group_by, "--csv", str(out)),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_metricflow_query_equals_the_marts(built: tuple[Path, DbtRun], tmp_path: Path) -> None:
    """MetricFlow (dbt-metricflow) answers the metrics from the built fixture: per month, the
    same numbers as SQL over the marts' unfiltered rows (the metrics filter `segment = '_all'`)."""
    duckdb_path, _ = built
    project = tmp_path / "project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DBT_")},  # mf reads ./target
        "CLOSE_DUCKDB_PATH": str(duckdb_path),
        "DBT_PROFILES_DIR": str(project),
        "DO_NOT_TRACK": "1",
    }
    parse = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "--quiet", "parse"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert parse.returncode == 0, parse.stdout + parse.stderr
    out = tmp_path / "metrics.csv"
    metrics = "calls,talk_time_hours,emails_sent,email_reply_rate,opportunities_won,win_rate"
    mf = _mf_query(project, env, f"{metrics},won_value", "metric_time__month", out)
    assert mf.returncode == 0 and out.exists(), mf.stdout + mf.stderr
    with out.open() as handle:
        answered = {row["metric_time__month"][:10]: row for row in csv.DictReader(handle)}
    marts = query(
        duckdb_path,
        """
        select cast(month_start_date as varchar), sum(calls_count),
               sum(calls_duration_seconds) / 3600.0, sum(emails_sent_count),
               sum(emails_replied_count) / nullif(sum(emails_sent_count), 0),
               sum(opportunities_won_count),
               sum(opportunities_won_count)
                   / nullif(sum(opportunities_won_count + opportunities_lost_count), 0),
               sum(won_value_cents)
        from close_marts.rpt_rep_scorecard where segment = '_all'
        group by 1 order by 1
        """,
    )
    assert sorted(answered) == [month for month, *_ in marts] == ["2024-01-01", "2024-02-01"]
    names = [*metrics.split(","), "won_value"]
    for month, *expected in marts:
        for name, value in zip(names, expected, strict=True):
            got = answered[month][name]
            if value is None:
                assert got in ("", "None"), (month, name, got)
            else:
                assert float(got) == pytest.approx(float(value)), (month, name, got, value)
    # leads entered per status, against the daily lead status mart
    by_status = tmp_path / "leads.csv"
    mf = _mf_query(project, env, "leads_entered", "lead_status_day__status_label", by_status)
    assert mf.returncode == 0, mf.stdout + mf.stderr
    with by_status.open() as handle:
        entered = {
            row["lead_status_day__status_label"]: int(float(row["leads_entered"]))
            for row in csv.DictReader(handle)
        }
    assert entered == dict(
        query(
            duckdb_path,
            "select status_label, sum(count_entered) from close_marts.fct_lead_status_daily"
            " where segment = '_all' group by 1",
        )
    )
