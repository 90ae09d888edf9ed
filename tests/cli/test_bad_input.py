"""Every bad input ends with one clear line naming the file or setting, and exit status 2.

The command line runs as a subprocess in ``tmp_path`` (a user's project directory, with its own
``.dlt/`` where a case needs one) against the simulator served over real HTTP.
"""

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from tests.cli.test_cli import START, cli, environment, last_line, serve

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server():
    yield from serve()


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".dlt" / "config.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def assert_usage_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    line = last_line(result)
    assert result.returncode == 2, result.stderr[-3000:]
    assert line.startswith("close-pipeline "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return line


def test_malformed_config_toml_names_the_file_and_line(tmp_path, server) -> None:
    path = write_config(tmp_path, '[sources.close]\nlookback_days = 3\nworkers = "4\n')
    result = cli(tmp_path, environment(tmp_path, server), "load", "--start", START)
    assert_usage_error(result, str(path), "line 3")
    assert not (tmp_path / "close.duckdb").exists()


def test_a_value_of_the_wrong_type_names_the_setting_and_where_it_is(tmp_path, server) -> None:
    path = write_config(tmp_path, '[sources.close]\nworkers = "four"\n')
    result = cli(tmp_path, environment(tmp_path, server), "load", "--start", START)
    assert_usage_error(result, "`workers`", f"{path}:2", "a whole number", "'four'")


def test_bad_json_in_api_keys_names_the_variable(tmp_path, server) -> None:
    env = environment(tmp_path, server, SOURCES__CLOSE__API_KEYS='["api_one", api_two]')
    result = cli(tmp_path, env, "load", "--start", START)
    line = assert_usage_error(result, "`api_keys`", "SOURCES__CLOSE__API_KEYS", "a list")
    assert "api_one" not in line or "api_two" in line  # the value is shown only as typed


def test_bad_json_in_another_setting_names_the_variable(tmp_path, server) -> None:
    env = environment(tmp_path, server, SOURCES__CLOSE__CUSTOM_REPORTS='[{"name": "x",}]')
    result = cli(tmp_path, env, "load", "--start", START)
    assert_usage_error(result, "`custom_reports`", "SOURCES__CLOSE__CUSTOM_REPORTS")


def test_corrupt_local_state_says_how_to_reset_it(tmp_path, server) -> None:
    env = environment(tmp_path, server)
    first = cli(tmp_path, env, "load", "--start", START, "--resources", "users")
    assert first.returncode == 0, first.stderr[-3000:]
    working_dir = Path(env["DLT_DATA_DIR"]) / "pipelines" / "close"
    (working_dir / "state.json").write_text('{"_state_version": 3, "truncated')
    result = cli(tmp_path, env, "load", "--resources", "users")
    assert_usage_error(result, f"{working_dir / 'state.json'}", f"rm -rf {working_dir}")
    # following the advice works: the state comes back from the DuckDB file
    subprocess.run(["rm", "-rf", str(working_dir)], check=True)
    again = cli(tmp_path, env, "load", "--resources", "users")
    assert again.returncode == 0, again.stderr[-3000:]


def test_garbage_duckdb_file_is_not_called_locked(tmp_path, server) -> None:
    (tmp_path / "close.duckdb").write_bytes(b"this is not a database\n" * 1000)
    result = cli(tmp_path, environment(tmp_path, server), "load", "--start", START)
    line = assert_usage_error(result, "is not a DuckDB database file", "close.duckdb")
    assert "locked" not in line


def test_read_only_duckdb_file_is_told_apart(tmp_path, server) -> None:
    path = tmp_path / "close.duckdb"
    duckdb.connect(str(path)).close()
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        result = cli(tmp_path, environment(tmp_path, server), "load", "--start", START)
    finally:
        path.chmod(0o644)
    line = assert_usage_error(result, "is read-only", "chmod u+w")
    assert "locked" not in line


def hold_lock(path: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time\ncon = duckdb.connect({str(path)!r})\nprint('locked', "
            "flush=True)\ntime.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout and holder.stdout.readline().strip() == "locked"
    return holder


def test_transform_on_a_locked_file_says_locked(tmp_path, server) -> None:
    env = environment(tmp_path, server)
    loaded = cli(tmp_path, env, "load", "--start", START, "--resources", "users")
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    holder = hold_lock(tmp_path / "close.duckdb")
    try:
        result = cli(tmp_path, env, "transform")
    finally:
        holder.kill()
        holder.wait()
    assert_usage_error(result, "is locked by another process")
    assert "dbt: building" not in result.stderr  # refused before dbt started


def test_postgres_without_credentials_is_one_short_line(tmp_path, server) -> None:
    env = environment(tmp_path, server)
    env = {k: v for k, v in env.items() if not k.startswith(("DESTINATION__", "CLOSE_PG_"))}
    result = cli(tmp_path, env, "load", "--start", START, "--destination", "postgres")
    line = assert_usage_error(result, "DESTINATION__POSTGRES__CREDENTIALS", "postgresql://")
    assert len(line) < 400, len(line)
    assert len(result.stderr) < 2000, result.stderr


def test_unknown_table_format_and_table_format_off_filesystem(tmp_path, server) -> None:
    env = environment(tmp_path, server)
    result = cli(tmp_path, env, "load", "--start", START, "--table-format", "delta")
    assert_usage_error(result, "--table-format delta applies to the filesystem destination")


def test_a_corrupt_schema_file_of_the_local_state_is_named(tmp_path, server) -> None:
    """A schema file of the local state that cannot be read is named too."""
    env = environment(tmp_path, server)
    first = cli(tmp_path, env, "load", "--start", START, "--resources", "users")
    assert first.returncode == 0, first.stderr[-3000:]
    schemas = Path(env["DLT_DATA_DIR"]) / "pipelines" / "close" / "schemas"
    schema = next(schemas.glob("*.json"))
    schema.write_text(json.dumps({"x": 1})[:-3])
    result = cli(tmp_path, env, "load", "--resources", "users")
    assert_usage_error(result, str(schema), "rm -rf")
    assert os.path.exists(schema)
