"""Interrupted runs: Ctrl-C (SIGINT) exits 130 with one line and changes nothing; a process
killed (SIGKILL) in the middle of the load step leaves every dimension table whole, and the
next run repairs the rest.

Real subprocesses, a real DuckDB file; the simulator over HTTP (with latency, so that the
extract takes long enough to be interrupted) or in-process (``--demo``).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Dict, List

import duckdb
import pytest

from tests.cli.test_cli import CLI, START, counts, environment, serve

pytestmark = pytest.mark.e2e

DIMENSIONS = (
    "users",
    "groups",
    "pipelines",
    "lead_statuses",
    "opportunity_statuses",
    "saved_searches",
    "activity_metrics",
    "custom_report_fields",
)


@pytest.fixture(scope="module")
def slow_server():
    yield from serve("--latency-ms", "250")


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell may start us with SIGINT ignored


def start(tmp_path: Path, env: Dict[str, str], *args: str) -> subprocess.Popen:
    command = CLI + list(args) + ["--duckdb-path", str(tmp_path / "close.duckdb")]
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=open(tmp_path / "stdout.log", "w"),  # noqa: SIM115 - closed with the process
        stderr=open(tmp_path / "stderr.log", "w"),  # noqa: SIM115
        text=True,
        preexec_fn=default_sigint,
    )


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def state_digest(env: Dict[str, str]) -> str:
    state = json.loads((Path(env["DLT_DATA_DIR"]) / "pipelines/close/state.json").read_text())
    state.pop("_local", None)
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def stored_states(path: Path) -> List[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            "select version, version_hash from close_raw._dlt_pipeline_state order by version"
        ).fetchall()


def test_ctrl_c_during_extract_exits_130_and_changes_nothing(tmp_path, slow_server) -> None:
    env = environment(tmp_path, slow_server)
    first = subprocess.run(
        CLI + ["load", "--start", START, "--resources", "users,funnel_totals"]
        + ["--duckdb-path", str(tmp_path / "close.duckdb")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    tables, states, local = (
        counts(tmp_path / "close.duckdb"),
        stored_states(tmp_path / "close.duckdb"),
        state_digest(env),
    )

    process = start(tmp_path, env, "load", "--start", START)
    reading = wait_for(lambda: "progress:" in (tmp_path / "stderr.log").read_text(), process, 120)
    assert reading, (tmp_path / "stderr.log").read_text()[-3000:]
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    status = process.wait(timeout=120)
    stderr = (tmp_path / "stderr.log").read_text()
    assert status == 130, stderr[-3000:]
    assert time.monotonic() - sent < 60
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("close-pipeline load interrupted: "), lines[-1]
    assert "nothing of this run was committed" in lines[-1]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert sum("interrupted" in line for line in lines) == 1
    assert counts(tmp_path / "close.duckdb") == tables
    assert stored_states(tmp_path / "close.duckdb") == states
    assert state_digest(env) == local


def load_demo(tmp_path: Path, env: Dict[str, str]) -> subprocess.CompletedProcess:
    """``close-pipeline load --demo`` into ``tmp_path/close.duckdb``, run to its end."""
    return subprocess.run(
        CLI + ["load", "--demo", "--duckdb-path", str(tmp_path / "close.duckdb")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def demo_environment(tmp_path: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update(DLT_DATA_DIR=str(tmp_path / "dlt"), RUNTIME__DLTHUB_TELEMETRY="false")
    return env


def pending_packages(env: Dict[str, str]) -> List[Path]:
    return list((Path(env["DLT_DATA_DIR"]) / "pipelines/close/load/normalized").glob("*"))


def jobs_started(env: Dict[str, str]) -> bool:
    return any(
        any((package / folder).glob("*"))
        for package in pending_packages(env)
        for folder in ("started_jobs", "completed_jobs")
    )


def test_killed_during_the_load_step_dimensions_stay_whole(tmp_path) -> None:
    env = demo_environment(tmp_path)
    path = tmp_path / "close.duckdb"
    first = load_demo(tmp_path, env)
    assert first.returncode == 0, first.stderr[-3000:]
    before = counts(path)
    assert all(before[t] > 0 for t in DIMENSIONS), before

    # a backfill of the whole demo range: a load step of several seconds, every table replaced
    today = date.today()
    backfill = ["--start", (today - timedelta(days=90)).isoformat(), "--end", today.isoformat()]
    killed_mid_load = False
    for _ in range(3):  # the kill must land inside the load step; retry if it finished first
        process = start(tmp_path, env, "load", "--demo", *backfill)
        in_load = wait_for(lambda: jobs_started(env), process, 300)
        process.kill()
        process.wait()
        if in_load and pending_packages(env):
            killed_mid_load = True
            break
    assert killed_mid_load, "the load step never caught running"

    after_kill = counts(path)
    empty = [t for t in DIMENSIONS if not after_kill.get(t)]
    assert not empty, f"dimension tables empty after a kill in the load step: {empty}"
    assert {t: after_kill[t] for t in DIMENSIONS} == {t: before[t] for t in DIMENSIONS}

    repaired = load_demo(tmp_path, env)
    assert repaired.returncode == 0, repaired.stderr[-3000:]
    assert not pending_packages(env)
    assert counts(path) == before


def test_ctrl_c_in_the_load_step_exits_130_and_the_next_run_finishes(tmp_path) -> None:
    env = demo_environment(tmp_path)
    path = tmp_path / "close.duckdb"
    first = load_demo(tmp_path, env)
    assert first.returncode == 0, first.stderr[-3000:]
    before, states = counts(path), stored_states(path)

    today = date.today()
    backfill = ["--start", (today - timedelta(days=90)).isoformat(), "--end", today.isoformat()]
    for _ in range(3):  # the signal must land inside the load step; retry if it finished first
        process = start(tmp_path, env, "load", "--demo", *backfill)
        in_load = wait_for(lambda: jobs_started(env), process, 300)
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=120)
        stderr = (tmp_path / "stderr.log").read_text()
        if in_load and pending_packages(env):
            break
    else:
        pytest.fail("the load step never caught running")
    assert status == 130, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("close-pipeline load interrupted: stopped in the load step"), last
    assert "the next run finishes this load" in last
    assert "Traceback" not in stderr
    assert stored_states(path) == states
    assert {t: counts(path)[t] for t in DIMENSIONS} == {t: before[t] for t in DIMENSIONS}

    again = load_demo(tmp_path, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not pending_packages(env)
    assert counts(path) == before
