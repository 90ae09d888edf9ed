"""The real HTTP server (concurrency, faults over sockets) and the command line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from close_reports.simulator import CloseSimulator, Org, serve
from close_reports.simulator.server import SimulatorHTTPServer

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^Close simulator listening on (http://[\d.]+:\d+/api/v1) "
    r"\(org (orga_\w+), scale (\w+), seed (\d+)\)$"
)


@pytest.fixture()
def running(org: Org) -> Iterator[tuple[SimulatorHTTPServer, CloseSimulator]]:
    simulator = CloseSimulator(org)
    server, thread = serve(simulator, "127.0.0.1", 0)
    yield server, simulator
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_concurrent_requests(running: tuple[SimulatorHTTPServer, CloseSimulator], org: Org) -> None:
    server, simulator = running
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/api/v1")

    def worker(i: int) -> list[int]:
        with httpx.Client(base_url=server.url, auth=("demo", ""), timeout=30) as client:
            codes = []
            for j in range(6):
                if j % 2:
                    body = {
                        "type": "comparison",
                        "metrics": ["calls.all.all.count"],
                        "datetime_range": {"start": "2026-03-02", "end": "2026-03-03"},
                    }
                    codes.append(client.post("/report/activity/", json=body).status_code)
                else:
                    codes.append(client.get(f"/report/statuses/lead/{org.id}/").status_code)
            return codes

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8)))
    assert all(code == 200 for codes in results for code in codes)
    stats = httpx.get(server.url.replace("/api/v1", "/__simulator__/stats"), timeout=10).json()
    assert stats["requests"] == 48 == len(simulator.request_log)
    assert stats["by_status"] == {"200": 48}


def test_same_answers_over_http_and_in_process(
    running: tuple[SimulatorHTTPServer, CloseSimulator], client: httpx.Client, org: Org
) -> None:
    server, _ = running
    body = {
        "type": "overview",
        "metrics": ["emails.sent.all.count", "calls.all.all.sum_duration"],
        "datetime_range": {"start": "2026-03-01", "end": "2026-03-08"},
    }
    with httpx.Client(base_url=server.url, auth=("demo", "")) as remote:
        over_http = remote.post("/report/activity/", json=body, headers={"X-TZ-Offset": "-5"})
        unauthorized = remote.get("/me/", auth=("nobody", ""))
    in_process = client.post("/report/activity/", json=body, headers={"X-TZ-Offset": "-5"})
    assert over_http.status_code == 200
    assert over_http.content == in_process.content
    assert unauthorized.status_code == 401


def test_faults_over_the_socket(org: Org) -> None:
    dropping = CloseSimulator(org, fault_rate=1.0, fault_kinds=("drop",))
    server, thread = serve(dropping)
    try:
        with (
            httpx.Client(base_url=server.url, auth=("demo", ""), timeout=10) as client,
            pytest.raises(httpx.TransportError),
        ):
            client.get("/me/")
        assert dropping.stats()["dropped"] == 1
    finally:
        server.shutdown()
        server.server_close()
    limited = CloseSimulator(org, rate_limit=5, clock=lambda: 0.0)
    server, thread = serve(limited)
    try:
        with httpx.Client(base_url=server.url, auth=("demo", ""), timeout=10) as client:
            codes = [client.get("/me/") for _ in range(12)]
        assert [r.status_code for r in codes].count(429) == 7
        assert all("RateLimit" in r.headers for r in codes)
        assert all(r.headers["Retry-After"] == "1" for r in codes if r.status_code == 429)
    finally:
        server.shutdown()
        server.server_close()


def test_cli_prints_the_listening_line() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "close_reports.simulator",
            "--port",
            "0",
            "--seed",
            "4",
            "--scale",
            "small",
            "--anchor-date",
            "2026-03-20",
            "--rate-limit",
            "5",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().rstrip("\n")
        match = LINE.match(line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        url, org_id, scale, seed = match.groups()
        assert (scale, seed) == ("small", "4")
        with httpx.Client(base_url=url, auth=("demo", ""), timeout=10) as client:
            me = client.get("/me/")
            assert me.status_code == 200
            assert me.json()["organizations"][0]["id"] == org_id
            burst = [client.get("/user/").status_code for _ in range(40)]
        assert burst.count(429) > 0
        stats = httpx.get(url.replace("/api/v1", "/__simulator__/stats"), timeout=10).json()
        assert stats["requests"] == 41
        assert stats["rate_limited"] == burst.count(429)
    finally:
        process.terminate()
        process.wait(10)
    assert process.stdout.read() == ""
