"""Close going down mid-run (issue 16): the command ends within two minutes, its last line
names the cause and the reports it stopped, and nothing of those reports is written."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.test_cli import CLI, START, environment

pytestmark = pytest.mark.e2e


def test_a_close_killed_mid_run_ends_fast_and_says_why_last(tmp_path: Path) -> None:
    server = subprocess.Popen(
        CLI + ["serve-demo-api", "--port", "0", "--scale", "small", "--latency-ms", "40",
               "--rate-limit", "15"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    url = re.search(r"listening on (http://\S+)", server.stdout.readline())
    assert url, server.stderr.read() if server.stderr else ""
    env = environment(tmp_path, url.group(1))
    started = time.monotonic()
    load = subprocess.Popen(
        CLI + ["load", "--start", START, "--duckdb-path", str(tmp_path / "close.duckdb")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(4)  # the run is reading reports by now (about 200 requests at 15 a second)
    server.kill()
    server.wait(timeout=10)
    try:
        _, stderr = load.communicate(timeout=150)
    finally:
        load.kill()
    elapsed = time.monotonic() - started
    last = stderr.strip().splitlines()[-1]
    assert load.returncode in (1, 3), stderr[-2000:]
    assert elapsed < 120, f"took {elapsed:.0f} s"
    assert "not loaded" in last
    assert re.search(r"failed after \d+ attempts", last) and "ConnectError" in last, last
    warnings = stderr.count("retrying in")
    assert warnings < 40, f"{warnings} retry warnings after the outage"
