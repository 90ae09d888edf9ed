"""The real command line against the simulator served over real HTTP on loopback."""

import json
import os
import re
import subprocess
import sys
import textwrap
from datetime import date, timedelta
from pathlib import Path
from typing import Dict, Iterator, List

import duckdb
import pytest

from close_reports.source.settings import REPORT_TABLES

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
CLI = [str(BIN / "close-pipeline")]
START = (date.today() - timedelta(days=12)).isoformat()
LOOKBACK_ONLY = {table: 3 for table in REPORT_TABLES}


def serve(*options: str) -> Iterator[str]:
    """Starts ``close-pipeline serve-demo-api`` on a free port; yields its base URL."""
    process = subprocess.Popen(
        CLI + ["serve-demo-api", "--port", "0", "--scale", "small", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        match = re.search(r"listening on (http://\S+)", line)
        assert match, (
            f"no listening line: {line!r} {process.stderr.read() if process.stderr else ''}"
        )
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    yield from serve()


@pytest.fixture(scope="module")
def failing_server() -> Iterator[str]:
    yield from serve("--fault-rate", "1.0")


def environment(tmp_path: Path, base_url: str, key: str = "demo", **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update(
        SOURCES__CLOSE__BASE_URL=base_url,
        SOURCES__CLOSE__API_KEY=key,
        DLT_DATA_DIR=str(tmp_path / "dlt"),
        RUNTIME__DLTHUB_TELEMETRY="false",
        **extra,
    )
    if not key:
        del env["SOURCES__CLOSE__API_KEY"]
    return env


def cli(tmp_path: Path, env: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Runs ``close-pipeline`` in ``tmp_path`` (a user's working directory) and returns it."""
    return subprocess.run(
        CLI
        + list(args)
        + (
            ["--duckdb-path", str(tmp_path / "close.duckdb")]
            if args and args[0] in ("run", "load", "transform")
            else []
        ),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def counts(path: Path, schema: str = "close_raw") -> Dict[str, int]:
    """Rows per data table (the run ledger, which every run appends to, left out)."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select table_name from information_schema.tables where table_schema = ? "
            "and table_name not like '\\_dlt%' escape '\\' and table_name <> 'run_ledger'",
            [schema],
        ).fetchall()
        return {
            t: con.execute(f'select count(*) from {schema}."{t}"').fetchall()[0][0]
            for (t,) in tables
        }


def last_line(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else ""


def test_run_loads_builds_marts_and_rerun_changes_nothing(tmp_path, server) -> None:
    env = environment(tmp_path, server)
    first = cli(tmp_path, env, "run", "--start", START)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "raw tables in close_raw (rows):" in first.stdout
    assert "marts in close_marts (rows):" in first.stdout
    assert re.search(
        r"requests: \d+ made, \d+ retried, \d+ rate-limited \(429\), 0 failed", first.stdout
    )
    assert "seconds: extract" in first.stdout and "dbt" in first.stdout
    assert f"DuckDB file: {tmp_path / 'close.duckdb'}" in first.stdout
    assert first.stdout.count("duckdb ") >= 2  # two example queries
    raw = counts(tmp_path / "close.duckdb")
    marts = counts(tmp_path / "close.duckdb", "close_marts")
    assert all(raw[t] > 0 for t in ("activity_by_user", "funnel_stages", "users")), raw
    assert marts and all(n > 0 for n in marts.values()), marts

    # every report re-reading a 3-day lookback only (the default refresh windows are longer)
    lookback_only = {**env, "SOURCES__CLOSE__REFRESH_DAYS": json.dumps(LOOKBACK_ONLY)}
    second = cli(tmp_path, lookback_only, "load")  # (the marts' rerun: tests/dbt)
    assert second.returncode == 0, second.stderr[-3000:]
    assert counts(tmp_path / "close.duckdb") == raw
    assert "where schema_name = 'close_raw' order by 1" in second.stdout  # load's example query
    # fewer requests, not a fixed share: early in a month the 3 days reach back into the last
    # month, and every month-grain report re-reads both months whole
    made = int(re.search(r"requests: (\d+) made", second.stdout).group(1))
    assert made < int(re.search(r"requests: (\d+) made", first.stdout).group(1))


def test_resources_subset_and_full_refresh(tmp_path, server) -> None:
    env = environment(tmp_path, server)
    subset = cli(tmp_path, env, "load", "--start", START, "--resources", "users,funnel_totals")
    assert subset.returncode == 0, subset.stderr[-3000:]
    assert set(counts(tmp_path / "close.duckdb")) == {"users", "funnel_totals"}

    again = cli(
        tmp_path,
        env,
        "load",
        "--start",
        START,
        "--resources",
        "users,funnel_totals",
        "--full-refresh",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    made = [int(re.search(r"requests: (\d+) made", r.stdout).group(1)) for r in (subset, again)]
    assert made[0] == made[1]  # state was dropped: the whole range was read again
    assert set(counts(tmp_path / "close.duckdb")) == {"users", "funnel_totals"}


@pytest.mark.parametrize(
    "args, status, message",
    [
        (
            ["load", "--resources", "users,nope"],
            2,
            "Unknown resource(s) in --resources: nope. Valid",
        ),
        (["load", "--start", "2026-02-01", "--end", "2026-01-01"], 2, "must be before --end"),
        (["load", "--start", "01/02/2026"], 2, "--start must be a date written YYYY-MM-DD"),
        (["load", "--destination", "nosuchdb"], 2, "Unknown or unavailable destination"),
    ],
)
def test_usage_errors(tmp_path, server, args: List[str], status: int, message: str) -> None:
    result = cli(tmp_path, environment(tmp_path, server), *args)
    assert result.returncode == status, result.stderr[-2000:]
    assert message in last_line(result)
    assert not (tmp_path / "close.duckdb").exists()


def test_missing_key(tmp_path, server) -> None:
    result = cli(tmp_path, environment(tmp_path, server, key=""), "load")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "No Close API key configured: set SOURCES__CLOSE__API_KEY" in last_line(result)


def test_refused_key(tmp_path, server) -> None:
    result = cli(tmp_path, environment(tmp_path, server, key="api_wrongwrongwrong"), "load")
    assert result.returncode == 1
    line = last_line(result)
    assert "refused the API key" in line and "SOURCES__CLOSE__API_KEY" in line
    assert "api_wrongwrongwrong" not in result.stdout + result.stderr


def test_close_400_field_errors_and_nothing_half_written(tmp_path, server) -> None:
    env = environment(tmp_path, server)
    good = cli(tmp_path, env, "load", "--start", START)
    assert good.returncode == 0, good.stderr[-3000:]
    before = counts(tmp_path / "close.duckdb")
    bad = environment(
        tmp_path,
        server,
        SOURCES__CLOSE__CUSTOM_REPORTS=(
            '[{"name": "bad", "x": "lead.date_created", "y": "lead.count", "interval": "x"}]'
        ),
    )
    result = cli(tmp_path, bad, "load", "--start", START, "--fail-fast")
    assert result.returncode == 1
    line = last_line(result)
    assert "HTTP 400" in line and "interval: " in line and "/report/custom/" in line
    assert counts(tmp_path / "close.duckdb") == before


def test_close_down_after_all_retries(tmp_path, failing_server) -> None:
    env = environment(
        tmp_path,
        failing_server,
        SOURCES__CLOSE__CLIENT_OPTIONS=(
            '{"max_attempts": 2, "backoff_base": 0.01, "backoff_max": 0.02}'
        ),
    )
    result = cli(tmp_path, env, "load", "--start", START)
    assert result.returncode == 1
    assert "failed after 2 attempts" in last_line(result)
    assert "Close may be down" in last_line(result)


def test_duckdb_file_locked_by_another_process(tmp_path, server) -> None:
    path = tmp_path / "close.duckdb"
    duckdb.connect(str(path)).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(path)!r})
            print("locked", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "locked"
        result = cli(tmp_path, environment(tmp_path, server), "load", "--start", START)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2
    assert "is locked by another process" in last_line(result)


def test_transform_without_a_load_says_what_to_do(tmp_path, server) -> None:
    result = cli(tmp_path, environment(tmp_path, server), "transform")
    assert result.returncode == 2
    assert "run `close-pipeline load` first" in last_line(result)


@pytest.mark.parametrize("command", ["run", "load", "transform", "serve-demo-api"])
def test_help_explains_every_option_with_examples(command: str) -> None:
    result = subprocess.run(CLI + [command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "example" in result.stdout
    if command in ("run", "load"):
        for option in (
            "--demo",
            "--start",
            "--end",
            "--resources",
            "--destination",
            "--dataset",
            "--duckdb-path",
            "--full-refresh",
        ):
            assert option in result.stdout, option


def test_demo_needs_no_key_and_brings_its_explorer_queries(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update(DLT_DATA_DIR=str(tmp_path / "dlt"), RUNTIME__DLTHUB_TELEMETRY="false")
    result = cli(tmp_path, env, "load", "--demo", "--resources", "custom_reports,users")
    assert result.returncode == 0, result.stderr[-3000:]
    with duckdb.connect(str(tmp_path / "close.duckdb"), read_only=True) as con:
        assert con.execute(
            "select count(distinct report_name) from close_raw.custom_reports"
        ).fetchall() == [(2,)]
        assert con.execute("select count(*) from close_raw.users").fetchall()[0][0] == 25
