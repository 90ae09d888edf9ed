"""Helpers shared by the loader, command-line and dbt tests."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import dlt
import duckdb
import pytest
from dlt.common.configuration.container import Container
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

from close_reports.simulator import CloseSimulator, Org, events_to_duckdb, generate_org

ANCHOR = date(2026, 3, 20)
"""Last day of the simulator's history in tests (US DST starts inside it, on 2026-03-08)."""
ONE_DAY = timedelta(days=1)
TODAY = ANCHOR + ONE_DAY
BASE_URL = "http://close.test/api/v1"
SEED = 3


LEAKY_ENV_PREFIXES = ("SOURCES__CLOSE__", "DESTINATION__", "CLOSE_DUCKDB_PATH", "DBT_")


def isolate_environment(patch: pytest.MonkeyPatch, dlt_data_dir: Path) -> None:
    """No Close key, base URL, destination or dbt setting from the developer's shell leaks into
    a test; dlt keeps its pipelines under ``dlt_data_dir``, and dbt its target and logs
    (tests run in parallel: the checkout's ``dbt/target`` would be shared)."""
    for name in list(os.environ):
        if name.startswith(LEAKY_ENV_PREFIXES):
            patch.delenv(name, raising=False)
    patch.setenv("DLT_DATA_DIR", str(dlt_data_dir))
    patch.setenv("DBT_TARGET_PATH", str(dlt_data_dir / "dbt_target"))
    patch.setenv("DBT_LOG_PATH", str(dlt_data_dir / "dbt_logs"))


@contextmanager
def project_dir(patch: pytest.MonkeyPatch, path: Path) -> Iterator[None]:
    """Runs the block from ``path`` as dlt's project directory (its ``.dlt`` config), then gives
    the rest of the test session its own again: dlt reads the config files once per process,
    from the directory current at that moment, so a bare ``chdir`` would strand every later
    test on ``path``'s (empty) config."""
    context = Container()[PluggableRunContext]
    run_dir, cwd = context.context.run_dir, os.getcwd()
    patch.chdir(path)
    context.reload(str(path))
    try:
        yield
    finally:
        os.chdir(cwd)
        context.reload(run_dir)


def small_org(seed: int = SEED) -> Org:
    """A small simulated org whose history ends on ``ANCHOR``."""
    return generate_org(seed=seed, scale="small", anchor_date=ANCHOR)


def make_pipeline(tmp_path: Path, name: str = "close") -> dlt.Pipeline:
    """A dlt pipeline writing ``close.duckdb`` and its working files under ``tmp_path``."""
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "close.duckdb")),
        dataset_name="close_raw",
    )


def run(pipeline: dlt.Pipeline, source: Any) -> Any:
    """Runs ``source`` the way the command line does and checks every job loaded."""
    info = pipeline.run(source, loader_file_format="parquet")
    assert not info.has_failed_jobs, info
    return info


def source_kwargs(simulator: CloseSimulator, **overrides: Any) -> Dict[str, Any]:
    """Arguments of ``close_source`` that read ``simulator`` in-process, "today" being the day
    after the simulator's last day of history."""
    return {
        "api_key": "demo",
        "base_url": BASE_URL,
        "transport": simulator.transport(),
        "today": TODAY,
        **overrides,
    }


def warehouse(pipeline: dlt.Pipeline, org: Optional[Org] = None) -> duckdb.DuckDBPyConnection:
    """A connection on the loaded tables (``close_raw`` in use) with the event log of ``org``
    in ``memory.ev`` (``memory.ev.calls``, ...), for truth computed independently."""
    con = duckdb.connect()
    if org is not None:
        events_to_duckdb(org, con, schema="ev")
    path = pipeline.destination.config_params["credentials"]
    con.execute(f"attach '{path}' as wh (read_only)")
    con.execute("use wh.close_raw")
    return con


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> List[tuple]:
    return con.execute(sql).fetchall()


def query(pipeline: dlt.Pipeline, sql: str) -> List[tuple]:
    """Rows of ``sql`` on the loaded tables; the connection is closed again, so the next run
    can write the file."""
    con = warehouse(pipeline)
    try:
        return rows(con, sql)
    finally:
        con.close()


def table_snapshot(pipeline: dlt.Pipeline, tables: Sequence[str]) -> Dict[str, List[tuple]]:
    """Every row of ``tables`` without dlt's load columns, sorted: for before/after checks."""
    con = warehouse(pipeline)
    snapshot = {}
    for table in tables:
        columns = [
            c[0] for c in rows(con, f"describe {table}") if c[0] not in ("_dlt_load_id", "_dlt_id")
        ]
        quoted = ", ".join(f'"{c}"' for c in sorted(columns))
        snapshot[table] = rows(con, f"select {quoted} from {table} order by all")
    con.close()
    return snapshot


class FakeClock:
    """A monotonic clock that only moves when something sleeps on it (thread-safe): the one
    fake clock of the tests. ``sleep`` records waits in ``sleeps``; ``throttle_sleep`` moves
    the same clock but records in ``throttle_sleeps`` (a client's throttle beside its retries).
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: List[float] = []
        self.throttle_sleeps: List[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def clock(self) -> float:
        """The current reading (for APIs that take a ``clock`` callable by name)."""
        return self()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(seconds, 0.0)

    def throttle_sleep(self, seconds: float) -> None:
        with self._lock:
            self.throttle_sleeps.append(seconds)
            self.now += max(seconds, 0.0)
