"""Incremental marts: after late edits inside the refresh window, an incremental build equals a
``--full-refresh`` rebuild row for row, and rebuilt only the windows the second load touched.

A real load of the simulator through ``close_source`` (as test_marts_vs_simulator does), a
first ``dbt build``; then Close's past changes inside the lookback (a call, a replied email, a
lead and an opportunity status change, activity for a rep who had none that day), a second,
incremental load re-reads those days, and a second ``dbt build`` runs the incremental models.
A copy of the file rebuilt with ``--full-refresh`` is the reference.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest

from close_reports.simulator import CloseSimulator
from close_reports.source import close_source
from close_reports.source.settings import REPORT_TABLES
from tests.utils import (
    ANCHOR,
    ONE_DAY,
    TODAY,
    isolate_environment,
    make_pipeline,
    run,
    small_org,
    source_kwargs,
)

from .runner import DbtRun, query, run_dbt

pytestmark = pytest.mark.dbt

DAYS = 45
START = ANCHOR - timedelta(days=DAYS - 1)
LOOKBACK_DAYS = 3
RE_READ_FROM = TODAY - timedelta(days=LOOKBACK_DAYS)  # the second run's first day window
INCREMENTAL_MARTS = (
    "fct_activity_metrics_daily",
    "fct_user_activity_daily",
    "fct_lead_status_daily",
    "fct_opportunity_status_daily",
    "fct_funnel_totals",
    "fct_funnel_stages",
    "fct_sent_email_templates",
)
DAY_COLUMN = {
    "fct_activity_metrics_daily": "activity_date",
    "fct_user_activity_daily": "activity_date",
    "fct_lead_status_daily": "status_date",
    "fct_opportunity_status_daily": "status_date",
    "fct_sent_email_templates": "window_start_date",
}


def noon(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, datetime.min.time(), timezone.utc).replace(hour=hour)


@dataclass
class Builds:
    incremental: Path
    full_refresh: Path
    first: dict[str, list[tuple]]
    load_ids: tuple[str, str]
    second_build: DbtRun
    second_sql: dict[str, str]
    """The SQL the second build ran per incremental mart (target/run)."""
    full_build: DbtRun


def mart_rows(duckdb_path: Path, mart: str) -> list[tuple]:
    return query(duckdb_path, f"select * from close_marts.{mart} order by all")


def load_ids(duckdb_path: Path) -> list[str]:
    return [
        load_id
        for (load_id,) in query(
            duckdb_path, "select distinct _dlt_load_id from close_raw.activity_by_user order by 1"
        )
    ]


def late_edits(simulator_org: Any) -> None:
    """Close's past changes inside the lookback, as it does for real (issue 11)."""
    org = simulator_org
    users = [user.id for user in org.users]
    org.add_call(users[0], noon(ANCHOR - ONE_DAY, 10), duration=300)
    org.add_call(users[1], noon(ANCHOR, 9), direction="inbound", duration=120)
    org.add_email(users[1], noon(ANCHOR, 11), replied_at=noon(ANCHOR, 15))
    org.add_email(
        users[2], noon(ANCHOR - ONE_DAY, 14), template_id=org.templates[0].id, opened_at=[]
    )
    org.add_sms(users[-1], noon(ANCHOR - 2 * ONE_DAY, 16))
    org.add_lead_status_change(org.lead_id(0), noon(ANCHOR - ONE_DAY, 13), org.lead_statuses[2].id)
    cutoff = noon(ANCHOR - 2 * ONE_DAY).timestamp()
    opportunity = next(
        i for i in range(len(org.opportunities)) if org.opportunities.created_at[i] < cutoff
    )
    won = next(status.id for status in org.opportunity_statuses if status.type == "won")
    org.add_opportunity_status_change(org.opportunity_id(opportunity), noon(ANCHOR, 16), won)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    work_dir = tmp_path_factory.mktemp("dbt_incremental")
    with pytest.MonkeyPatch.context() as patch:
        isolate_environment(patch, work_dir / "dlt_data")
        org = small_org()
        simulator = CloseSimulator(org)
        pipeline = make_pipeline(work_dir)
        kwargs = dict(
            start_date=START.isoformat(),
            timezone="UTC",
            lookback_days=LOOKBACK_DAYS,
            # every report re-reads the lookback only: the second build touches few windows
            refresh_days={table: LOOKBACK_DAYS for table in REPORT_TABLES},
        )
        duckdb_path = work_dir / "close.duckdb"
        run(pipeline, close_source(**source_kwargs(simulator, **kwargs)))
        first_build = run_dbt(["build"], duckdb_path, work_dir)
        assert first_build.success, first_build.output[-3000:]
        # made once by on-run-start, before two window-replace marts could race to create it
        kept_schema = "select count(*) from information_schema.schemata where schema_name = ?"
        assert query(duckdb_path, kept_schema, "close_marts_rebuilt_windows") == [(1,)]
        first = {mart: mart_rows(duckdb_path, mart) for mart in INCREMENTAL_MARTS}
        late_edits(org)
        run(pipeline, close_source(**source_kwargs(simulator, **kwargs)))
        ids = load_ids(duckdb_path)
        assert len(ids) == 2, ids
        second_build = run_dbt(["build"], duckdb_path, work_dir)
        run_dir = work_dir / "target" / "run" / "close_reports" / "models" / "marts"
        second_sql = {mart: (run_dir / f"{mart}.sql").read_text() for mart in INCREMENTAL_MARTS}
    full_dir = work_dir / "full_refresh"
    full_dir.mkdir()
    full_path = full_dir / "close.duckdb"
    shutil.copy(duckdb_path, full_path)
    full_build = run_dbt(["build", "--full-refresh"], full_path, full_dir)
    return Builds(
        duckdb_path, full_path, first, (ids[0], ids[1]), second_build, second_sql, full_build
    )


def _rounded(rows: list[tuple]) -> list[tuple]:
    """Floats to 12 significant digits: a sum of doubles may add up in another order."""
    return [
        tuple(float(f"{v:.12g}") if isinstance(v, float) and math.isfinite(v) else v for v in row)
        for row in rows
    ]


def test_both_builds_pass(builds: Builds) -> None:
    for build in (builds.second_build, builds.full_build):
        assert build.success, f"{build.not_passed()}\n{build.output[-3000:]}"
        assert not build.not_passed()


@pytest.mark.parametrize(
    "mart",
    [
        *INCREMENTAL_MARTS,
        "fct_status_monthly",
        "fct_status_transitions",
        "rpt_rep_scorecard",
        "dim_users",
        "dim_dates",
    ],
)
def test_incremental_equals_full_refresh_row_for_row(builds: Builds, mart: str) -> None:
    incremental = _rounded(mart_rows(builds.incremental, mart))
    full = _rounded(mart_rows(builds.full_refresh, mart))
    assert incremental, mart
    incremental_set, full_set = set(incremental), set(full)
    missing = [row for row in full if row not in incremental_set]
    extra = [row for row in incremental if row not in full_set]
    assert len(incremental) == len(full) and not missing and not extra, (
        f"{mart}: {len(incremental)} rows incremental, {len(full)} full refresh; "
        f"only in the full refresh {missing[:3]}; only incremental {extra[:3]}"
    )


def test_the_late_edits_reached_the_marts(builds: Builds) -> None:
    """Without them the equality above proves nothing: the second build did change rows."""
    changed = {
        mart: builds.first[mart] != mart_rows(builds.incremental, mart)
        for mart in INCREMENTAL_MARTS
    }
    for mart in (
        "fct_activity_metrics_daily",
        "fct_user_activity_daily",
        "fct_lead_status_daily",
        "fct_opportunity_status_daily",
        "fct_sent_email_templates",
    ):
        assert changed[mart], f"{mart} did not change after the late edits"


def test_rows_of_the_second_load_are_the_re_read_windows(builds: Builds) -> None:
    """A clean cut in every incremental mart: its rows from the second load are the re-read
    windows (the last days; the current month for the funnels), older windows kept the first
    load's rows — nothing in between mixes the two."""
    first_id, second_id = builds.load_ids
    for mart, day in DAY_COLUMN.items():
        [(first_last, second_first, second_last)] = query(
            builds.incremental,
            f"""
            select max({day}) filter (where _dlt_load_id = ?),
                   min({day}) filter (where _dlt_load_id = ?),
                   max({day}) filter (where _dlt_load_id = ?)
            from close_marts.{mart}
            """,
            first_id,
            second_id,
            second_id,
        )
        assert first_last < second_first <= RE_READ_FROM, (mart, first_last, second_first)
        assert second_last == ANCHOR, mart
    for mart in ("fct_funnel_totals", "fct_funnel_stages"):
        months = dict(
            query(
                builds.incremental,
                f"select _dlt_load_id, list(distinct window_start_date) from close_marts.{mart}"
                " group by 1",
            )
        )
        assert ANCHOR.replace(day=1) in months[second_id], mart
        assert all(old < new for old in months.get(first_id, []) for new in months[second_id]), (
            months
        )


def test_the_second_build_replaced_windows_in_place(builds: Builds) -> None:
    """The second build ran the incremental strategy (delete the re-read windows, insert
    them), not a rebuild: the rows it kept are the first build's, and it appended the rest."""
    for mart in INCREMENTAL_MARTS:
        assert builds.second_build.nodes[mart] == ("model", "success"), mart
        sql = builds.second_sql[mart]
        assert "delete from" in sql and "as replaced_target" in sql, sql[:300]
        assert "create table" not in sql.lower().split("delete from")[0], sql[:300]
    first_id, second_id = builds.load_ids
    [(kept, appended_from)] = query(
        builds.incremental,
        """
        select count(*) filter (where _dlt_load_id = ?), min(rowid) filter (where _dlt_load_id = ?)
        from close_marts.fct_activity_metrics_daily
        """,
        first_id,
        second_id,
    )
    # DuckDB keeps the row ids of rows it did not touch and appends new rows after the
    # table's original ones: the re-read windows came after everything the first build wrote
    assert appended_from >= kept > 0
    [(rows,)] = query(
        builds.incremental, "select count(*) from close_marts.fct_activity_metrics_daily"
    )
    assert rows - kept < rows / 5, (rows, kept)


def test_tests_of_an_incremental_mart_check_the_windows_it_rebuilt(
    builds: Builds, tmp_path: Path
) -> None:
    """After the incremental build, a mart's tests read the windows it replaced (kept in
    ``close_marts_rebuilt_windows``): a duplicate there fails the grain test, one in an older
    window is not read, unless var ``close_test_all_rows``; a full refresh keeps none."""
    duckdb_path = tmp_path / "close.duckdb"
    shutil.copy(builds.incremental, duckdb_path)
    [(first_rebuilt, rebuilt_days)] = query(
        duckdb_path,
        "select min(activity_date), count(distinct activity_date)"
        " from close_marts_rebuilt_windows.fct_activity_metrics_daily",
    )
    assert first_rebuilt >= RE_READ_FROM - ONE_DAY and 0 < rebuilt_days <= LOOKBACK_DAYS + 2
    con = duckdb.connect(str(duckdb_path))
    for day in (first_rebuilt, START):
        con.execute(
            "insert into close_marts.fct_activity_metrics_daily"
            " select * from close_marts.fct_activity_metrics_daily"
            " where activity_date = ? and user_id = '_org' limit 1",
            [day],
        )
    con.close()
    grain_test = "unique_combination_of_columns_fct_activity_metrics_daily"
    for dbt_vars, duplicates in (({}, "Got 1 result"), ({"close_test_all_rows": True}, "Got 2")):
        checked = run_dbt(
            ["test", "--select", "fct_activity_metrics_daily,test_type:data"],
            duckdb_path,
            tmp_path,
            dbt_vars=dbt_vars,
        )
        failed = [name for name, (_, status) in checked.nodes.items() if status == "fail"]
        assert [name for name in failed if name.startswith(grain_test)] and len(failed) == 1, failed
        assert duplicates in checked.output, checked.output[-3000:]
    assert not query(
        builds.full_refresh,
        "select table_name from duckdb_tables() where schema_name = 'close_marts_rebuilt_windows'",
    )
