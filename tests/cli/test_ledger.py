"""The run ledger (issue 13): one row per run x report x org x segment in close_raw.run_ledger,
written with the data it describes; the summary prints the same counters."""

from __future__ import annotations

import re

import duckdb
import pytest

from close_reports.source.ledger import LEDGER_COLUMNS
from close_reports.source.reports import LISTINGS, REPORTS
from tests.cli.test_cli import START, cli, environment, serve

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gated_server():
    yield from serve("--refuse", "/report/funnel/opportunity/stages/=403:Not on your plan")


def test_the_ledger_holds_every_report_and_the_summarys_requests(tmp_path, gated_server) -> None:
    env = environment(tmp_path, gated_server)
    result = cli(tmp_path, env, "load", "--start", START)
    assert result.returncode == 3, result.stderr[-3000:]
    made = int(re.search(r"requests: (\d+) made", result.stdout).group(1))
    last = result.stderr.strip().splitlines()[-1]
    assert "funnel_stages" in last and "Not on your plan" in last

    with duckdb.connect(str(tmp_path / "close.duckdb"), read_only=True) as con:
        columns = {r[0] for r in con.execute("describe close_raw.run_ledger").fetchall()}
        assert set(LEDGER_COLUMNS) <= columns
        (run_ids,) = con.execute(
            "select count(distinct run_id) from close_raw.run_ledger"
        ).fetchall()[0:1]
        assert run_ids == (1,)
        ledger = con.execute(
            "select report, status, requests, rows, error from close_raw.run_ledger"
        ).fetchall()
        loads = con.execute("select distinct load_id from close_raw._dlt_loads").fetchall()
    assert sum(r[2] for r in ledger) == made
    reports = {r[0].split(":")[0] for r in ledger}
    read = {r.name for r in REPORTS if not r.per_query}  # no Explorer query is configured here
    assert reports >= read | {listing.table for listing in LISTINGS}
    statuses = {r[0]: r[1] for r in ledger}
    assert statuses["funnel_stages"] == "failed" and statuses["activity_by_user"] == "ok"
    failed = [r for r in ledger if r[1] == "failed"]
    assert all(r[3] == 0 and "403" in r[4] for r in failed)
    assert all(r[4] is None for r in ledger if r[1] == "ok")
    assert len(loads) == 2  # the data package and the ledger's, in the same load step


def test_a_fresh_working_dir_restores_state_from_the_destination(tmp_path, gated_server) -> None:
    """A scheduler's fresh machine (no dlt working dir) reads only the refresh windows."""
    import shutil

    env = environment(tmp_path, gated_server)
    first = cli(tmp_path, env, "load", "--start", START, "--resources", "lead_status_overview")
    assert first.returncode == 0, first.stderr[-3000:]
    shutil.rmtree(tmp_path / "dlt")  # DLT_DATA_DIR: the pipeline's local state is gone
    again = cli(tmp_path, env, "load", "--start", START, "--resources", "lead_status_overview")
    assert again.returncode == 0, again.stderr[-3000:]
    made = [int(re.search(r"requests: (\d+) made", r.stdout).group(1)) for r in (first, again)]
    assert made[1] < made[0] / 2, made  # 3 days + the month, not the 12 days again
