"""The load step's DuckDB memory limit (issue 14.2): a load that runs out of it is loaded
again without it, whole and once."""

from __future__ import annotations

from datetime import timedelta

import duckdb

from close_reports import loading
from close_reports.simulator import CloseSimulator
from close_reports.source import RunLog, close_source
from tests.utils import ANCHOR, make_pipeline, small_org, source_kwargs, table_snapshot

START = (ANCHOR - timedelta(days=20)).isoformat()
TABLES = ["activity_by_user", "lead_status_transitions", "funnel_stages", "users"]


def _load(tmp_path, simulator: CloseSimulator) -> object:
    pipeline = make_pipeline(tmp_path)
    log = RunLog()
    source = close_source(**source_kwargs(simulator, start_date=START, run_log=log))
    loading.load_with_ledger(pipeline, source, log, loader_file_format="parquet")
    return pipeline


def test_a_load_out_of_duckdb_memory_is_loaded_again_without_the_limit(
    tmp_path, monkeypatch, capfd, caplog
) -> None:
    org = small_org()
    expected = table_snapshot(_load(tmp_path / "plain", CloseSimulator(org)), TABLES)

    monkeypatch.setattr(loading, "DUCKDB_LOAD_MEMORY_LIMIT", 4 * 2**20)  # too little for a load
    monkeypatch.setattr(loading, "DUCKDB_LOAD_MEMORY_PER_DATABASE_BYTE", 0)
    pipeline = _load(tmp_path / "limited", CloseSimulator(org))

    logged = caplog.text + capfd.readouterr().err  # dlt's logger: captured, or on stderr
    assert "ran out of the load step's memory limit" in logged
    assert table_snapshot(pipeline, TABLES) == expected  # every row, none twice
    con = duckdb.connect(str(tmp_path / "limited" / "close.duckdb"), read_only=True)
    loads = con.execute("select status, count(*) from close_raw._dlt_loads group by 1").fetchall()
    ledger = con.execute("select count(*) from close_raw.run_ledger").fetchall()[0][0]
    con.close()
    assert loads == [(0, 2)]  # the data package and the ledger's, each loaded once
    assert ledger > 0
    assert not list((tmp_path / "limited" / "pipelines").glob("close/load/normalized/*"))


def test_only_duckdb_running_out_of_memory_is_retried() -> None:
    oom = duckdb.OutOfMemoryException("could not allocate block of size 256.0 KiB")
    wrapped = RuntimeError("load step failed")
    wrapped.__cause__ = oom
    assert loading.out_of_duckdb_memory(wrapped)
    invalidated = duckdb.FatalException("database has been invalidated because of a previous")
    assert loading.out_of_duckdb_memory(invalidated)
    assert not loading.out_of_duckdb_memory(duckdb.CatalogException("table t does not exist"))
    assert not loading.out_of_duckdb_memory(ValueError("out of memory"))


def test_the_memory_limit_is_not_left_behind(tmp_path) -> None:
    pipeline = _load(tmp_path, CloseSimulator(small_org()))
    with loading.duckdb_kept_open(pipeline, memory_limit=64 * 2**20):
        with pipeline.sql_client() as client:
            limited = client.execute_sql("select current_setting('memory_limit')")[0][0]
        # the same DuckDB instance, without a limit
        with loading.duckdb_kept_open(pipeline), pipeline.sql_client() as client:
            unlimited = client.execute_sql("select current_setting('memory_limit')")[0][0]
    assert limited == "64.0 MiB"  # the small org's database is far below half of it
    assert unlimited != limited


def test_a_larger_database_gets_twice_its_size() -> None:
    floor = loading.DUCKDB_LOAD_MEMORY_LIMIT
    assert loading.load_memory_limit(floor, 0) == "80MiB"
    assert loading.load_memory_limit(floor, 40 * 2**20) == "80MiB"
    assert loading.load_memory_limit(floor, 103 * 2**20) == "206MiB"
