"""The command line on several destinations: each DuckDB file keeps its own state, dlt's own CLI
acts on the file the command line loaded, the filesystem destination merges (Delta) or is
refused (plain files), and `run` refuses a destination dbt has no target for before loading.

Real subprocesses against the simulator served over HTTP; real DuckDB files; real Delta tables.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, List

import duckdb
import pytest

from close_reports.source.settings import TABLES
from tests.cli.test_cli import BIN, CLI, START, counts, environment, last_line, serve

pytestmark = pytest.mark.e2e

SUBSET = "users,activity_by_user,funnel_totals"
MORE = "lead_status_overview,lead_status_transitions,sent_emails_by_template"


@pytest.fixture(scope="module")
def server():
    yield from serve()


def load(cwd: Path, env: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        CLI + ["load", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    return result


def rows(path: Path, table: str) -> List[tuple]:
    """Every row of a raw table without dlt's load columns, sorted."""
    with duckdb.connect(str(path), read_only=True) as con:
        columns = [
            c[0]
            for c in con.execute(f"describe close_raw.{table}").fetchall()
            if not c[0].startswith("_dlt_")
        ]
        quoted = ", ".join(f'"{c}"' for c in sorted(columns))
        return con.execute(f"select {quoted} from close_raw.{table} order by all").fetchall()


def test_two_duckdb_files_never_share_one_state(tmp_path, server) -> None:
    """a gets S, then the rest R; b gets S; a runs again; b gets S+R. With one shared state b
    would take a's cursor for R and load only its lookback; each must equal a clean load."""
    env = environment(tmp_path, server)  # one DLT_DATA_DIR: one dlt working dir for all
    a, b, clean = (str(tmp_path / f"{n}.duckdb") for n in ("a", "b", "clean"))
    steps = [
        (a, SUBSET),
        (a, MORE),
        (b, SUBSET),
        (a, SUBSET),
        (b, f"{SUBSET},{MORE}"),
    ]
    for path, resources in steps:
        result = load(
            tmp_path, env, "--start", START, "--resources", resources, "--duckdb-path", path
        )
        assert result.returncode == 0, result.stderr[-3000:]
    (tmp_path / "fresh").mkdir()
    fresh = environment(tmp_path / "fresh", server)  # its own dlt working dir
    result = load(
        tmp_path / "fresh", fresh, "--start", START, "--resources", f"{SUBSET},{MORE}",
        "--duckdb-path", clean,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for table in f"{SUBSET},{MORE}".split(","):
        expected = rows(Path(clean), table)
        assert expected, table
        assert rows(Path(a), table) == expected, f"a.{table}"
        assert rows(Path(b), table) == expected, f"b.{table}"


def dlt_cli(cwd: Path, env: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """dlt's own command line, as a user runs it after close-pipeline."""
    return subprocess.run(
        [str(BIN / "dlt"), "--yes", "pipeline", "close", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def drop_and_reload(tmp_path: Path, server: str, *drop_options: str) -> Dict[str, Dict[str, int]]:
    env = environment(tmp_path, server)
    path = tmp_path / "warehouse" / "reports.duckdb"
    path.parent.mkdir()
    first = load(tmp_path, env, "--start", START, "--resources", SUBSET, "--duckdb-path", str(path))
    assert first.returncode == 0, first.stderr[-3000:]
    before = counts(path)

    info = dlt_cli(tmp_path, env, "info")
    assert info.returncode == 0, info.stderr[-3000:]
    assert str(path) in info.stdout + info.stderr or "reports.duckdb" in info.stdout
    drop = dlt_cli(tmp_path, env, "drop", "activity_by_user", *drop_options)
    assert drop.returncode == 0, drop.stdout[-2000:] + drop.stderr[-2000:]
    assert not (tmp_path / "close.duckdb").exists(), "dlt acted on ./close.duckdb"
    dropped = counts(path)
    assert "activity_by_user" not in dropped
    assert dropped["users"] == before["users"]

    # the next load reads the dropped report again from the start, the others incrementally
    reload = load(
        tmp_path, env, "--start", START, "--resources", SUBSET, "--duckdb-path", str(path)
    )
    assert reload.returncode == 0, reload.stderr[-3000:]
    return {"before": before, "after": counts(path)}


def test_dlt_pipeline_drop_table_alone_reloads_that_report(tmp_path, server) -> None:
    """dlt's own CLI acts on the file close-pipeline loaded, and dropping a table resets that
    table's cursor (its resource state) with it."""
    tables = drop_and_reload(tmp_path, server)
    assert tables["after"] == tables["before"]


def test_plain_filesystem_refuses_merge_tables_before_reading(tmp_path, server) -> None:
    env = environment(tmp_path, server, DESTINATION__FILESYSTEM__BUCKET_URL=str(tmp_path / "lake"))
    result = load(tmp_path, env, "--start", START, "--destination", "filesystem")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "--table-format delta" in last_line(result)
    assert "requests:" not in result.stdout
    assert not (tmp_path / "lake").exists()


def delta_rows(lake: Path, table: str) -> List[tuple]:
    from deltalake import DeltaTable

    arrow = DeltaTable(str(lake / "close_raw" / table)).to_pyarrow_table()
    con = duckdb.connect()
    con.register("t", arrow)
    columns = sorted(c for c in arrow.column_names if not c.startswith("_dlt_"))
    quoted = ", ".join(f'"{c}"' for c in columns)
    return con.execute(f"select {quoted} from t order by all").fetchall()


def test_filesystem_delta_reruns_keep_one_row_per_key_and_equal_duckdb(tmp_path, server) -> None:
    lake = tmp_path / "lake"
    env = environment(tmp_path, server, DESTINATION__FILESYSTEM__BUCKET_URL=lake.as_uri())
    options = ["--destination", "filesystem", "--table-format", "delta"]
    resources = ["--resources", f"{SUBSET},{MORE}"]
    for _ in range(2):  # the second run re-reads the lookback days: merged, not appended
        result = load(tmp_path, env, "--start", START, *options, *resources)
        assert result.returncode == 0, result.stderr[-3000:]
    duck = tmp_path / "duck"
    duck.mkdir()
    on_duckdb = load(
        duck, environment(duck, server), "--start", START, *resources,
        "--duckdb-path", str(duck / "close.duckdb"),
    )  # fmt: skip
    assert on_duckdb.returncode == 0, on_duckdb.stderr[-3000:]
    for table in f"{SUBSET},{MORE}".split(","):
        in_delta = delta_rows(lake, table)
        _, primary_key, _ = TABLES[table]
        with duckdb.connect() as con:
            from deltalake import DeltaTable

            con.register("t", DeltaTable(str(lake / "close_raw" / table)).to_pyarrow_table())
            keys = ", ".join(f'"{k}"' for k in primary_key)
            [(duplicates,)] = con.execute(
                f"select count(*) from (select {keys} from t group by all having count(*) > 1)"
            ).fetchall()
        assert duplicates == 0, table
        assert in_delta == rows(duck / "close.duckdb", table), table


def test_run_refuses_a_destination_without_a_dbt_target_before_loading(tmp_path, server) -> None:
    env = environment(tmp_path, server)
    result = subprocess.run(
        CLI + ["run", "--start", START, "--destination", "bigquery"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    line = last_line(result)
    assert "dbt has no target for the bigquery destination" in line
    assert "profiles.yml" in line and "close-pipeline load" in line
    assert "requests:" not in result.stdout
