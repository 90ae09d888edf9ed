"""How close a backfill gets to Close's rate limit, next to a naive client.

Starts the embedded Close API as a real HTTP server (``python -m close_reports.simulator
--rate-limit R --latency-ms L --scale medium``, a free port), then:

1. **ours** — a backfill of D days of every report resource (and the dimension tables) with
   the project's dlt source into DuckDB in a temporary directory. Every HTTP attempt is
   recorded by a transport wrapper (method, URL, body, ``X-TZ-Offset``, status).
2. **naive** — on a fresh server with the same settings (full token bucket, zeroed
   counters), the same requests replayed one at a time in the order ours sent them, the way
   Close's official Python client (``closeio_api`` 2.1) does: on a 429 it sleeps what its
   ``RateLimit`` regex reads (``reset=(\\d+)`` — only the integer part of a decimal reset),
   else ``Retry-After``, then retries, at most 5 attempts; it parses every JSON body.

Prints requests, 429s, failed requests, wall seconds, the lower bound ``requests / R``,
``efficiency = wall / lower bound`` for both, ``speedup = naive wall / ours``, and the
simulator's own counters (``GET /__simulator__/stats``) next to the client-side ones. The last
line is one JSON object; it is also written to ``bench/results/rate_limit_efficiency[-quick]
.json`` with the machine and the settings.

``wall_s`` (ours) is the extract step — from the start of ``pipeline.extract`` to the last
response reshaped and written to dlt's extract files — because that is the part the rate
limit bounds and the part the naive replay is comparable with; normalize + load into DuckDB
are timed and reported beside it (``run_wall_s``).

Usage: ``python bench/rate_limit_efficiency.py [--quick] [--rate-limit R] [--latency-ms L]
[--days D] [--scale medium] [--workers N]``.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Dict, List, Optional

import httpx
from _common import (
    BENCH_CUSTOM_REPORTS,
    SimulatorProcess,
    dlt_settings,
    duckdb_pipeline,
    fmt_table,
    machine,
    report_result,
    use_project_config,
)

QUICK = {"days": 30, "rate_limit": 30.0}
DEFAULTS = {"days": 60, "rate_limit": 10.0, "latency_ms": 150.0, "scale": "medium"}


@dataclass
class Sent:
    """One HTTP attempt as the source sent it."""

    started: float
    method: str
    url: str
    headers: Dict[str, str]
    content: bytes
    status: int = 0


@dataclass
class Recorder:
    sent: List[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    max_in_flight: int = 0
    first: Optional[float] = None
    last: Optional[float] = None


class RecordingTransport(httpx.HTTPTransport):
    """The network transport, recording every attempt and the concurrency reached."""

    KEEP = ("content-type", "x-tz-offset", "accept", "user-agent")

    def __init__(self, recorder: Recorder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recorder = recorder

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        record = Sent(
            started=time.perf_counter(),
            method=request.method,
            url=str(request.url),
            headers={k: v for k, v in request.headers.items() if k.lower() in self.KEEP},
            content=request.read(),
        )
        rec = self.recorder
        with rec.lock:
            rec.in_flight += 1
            rec.max_in_flight = max(rec.max_in_flight, rec.in_flight)
            rec.first = record.started if rec.first is None else rec.first
        try:
            response = super().handle_request(request)
            record.status = response.status_code
            return response
        finally:
            with rec.lock:
                rec.in_flight -= 1
                rec.last = time.perf_counter()
                rec.sent.append(record)


# ---------------------------------------------------------------- ours


def run_ours(url: str, args: argparse.Namespace, start: str, end: str) -> Dict[str, Any]:
    from close_reports.source import close_source
    from close_reports.source.client import MAX_CONNECTIONS, RequestStats

    recorder = Recorder()
    transport = RecordingTransport(
        recorder,
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
        ),
    )
    stats = RequestStats()
    source_kwargs: Dict[str, Any] = dict(
        api_key="demo",
        api_keys=[],
        base_url=url,
        start_date=start,
        end_date=end,
        timezone="UTC",
        custom_reports=BENCH_CUSTOM_REPORTS,
        transport=transport,
        stats=stats,
    )
    if args.workers is not None:
        source_kwargs["workers"] = args.workers
    source = close_source(**source_kwargs)
    with tempfile.TemporaryDirectory(prefix="bench-rate-") as tmp:
        pipeline = duckdb_pipeline(Path(tmp), "bench_rate")
        t0 = time.perf_counter()
        pipeline.extract(source, loader_file_format="parquet")
        t1 = time.perf_counter()
        pipeline.normalize()
        t2 = time.perf_counter()
        info = pipeline.load()
        t3 = time.perf_counter()
        assert not info.has_failed_jobs, info
        rows = {
            table: count
            for table, count in (pipeline.last_trace.last_normalize_info.row_counts or {}).items()
            if not table.startswith("_dlt")
        }
    counters = stats.as_dict()
    statuses: Dict[int, int] = {}
    for s in recorder.sent:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    return {
        "recorder": recorder,
        "counters": counters,
        "statuses": statuses,
        "extract_s": t1 - t0,
        "normalize_s": t2 - t1,
        "load_s": t3 - t2,
        "run_wall_s": t3 - t0,
        "requests_span_s": (recorder.last or 0) - (recorder.first or 0),
        "rows": rows,
    }


# ---------------------------------------------------------------- naive (closeio_api 2.1)

CLOSEIO_RATELIMIT = re.compile(r"limit=(\d+), remaining=(\d+), reset=(\d+)")
CLOSEIO_MAX_RETRIES = 5
CLOSEIO_DEFAULT_DELAY = 2.0


def closeio_sleep_time(response: httpx.Response) -> float:
    """``closeio_api.API._get_rate_limit_sleep_time`` (2.1), verbatim in behaviour."""
    rate_limit = response.headers.get("RateLimit")
    if rate_limit is not None:
        match = CLOSEIO_RATELIMIT.match(rate_limit)
        if match:
            return float(match.group(3))
    if "Retry-After" in response.headers:
        return float(response.headers["Retry-After"])
    if "RateLimit-Reset" in response.headers:
        return float(response.headers["RateLimit-Reset"])
    return CLOSEIO_DEFAULT_DELAY


def run_naive(url: str, recorded_url: str, requests: List[Sent]) -> Dict[str, Any]:
    """Replays ``requests`` (sent to ``recorded_url``) against ``url``, one at a time like
    ``closeio_api`` 2.1's ``_dispatch``."""
    attempts = throttled = failed = 0
    slept = 0.0
    with httpx.Client(auth=("demo", ""), timeout=60.0) as client:
        t0 = time.perf_counter()
        for item in requests:
            response: Optional[httpx.Response] = None
            for _ in range(CLOSEIO_MAX_RETRIES):
                attempts += 1
                response = client.request(
                    item.method,
                    url + item.url[len(recorded_url) :],
                    headers=item.headers,
                    content=item.content or None,
                )
                if response.status_code == 429:
                    throttled += 1
                    wait = closeio_sleep_time(response)
                    slept += wait
                    time.sleep(wait)
                    continue
                break
            if response is None or not response.is_success:
                failed += 1
            else:
                with suppress(ValueError):
                    response.json()
        wall = time.perf_counter() - t0
    return {
        "requests": attempts,
        "throttled": throttled,
        "failed": failed,
        "wall_s": wall,
        "slept_s": slept,
    }


# ---------------------------------------------------------------- main


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"D={QUICK['days']}, R={QUICK['rate_limit']:g}"
    )
    parser.add_argument("--rate-limit", type=float, default=None, help="requests/s per key (R)")
    parser.add_argument("--latency-ms", type=float, default=DEFAULTS["latency_ms"])
    parser.add_argument("--days", type=int, default=None, help="backfill length (D)")
    parser.add_argument("--scale", default=DEFAULTS["scale"])
    parser.add_argument(
        "--workers", type=int, default=None, help="source `workers` (default: its own)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    args = parser.parse_args(argv)
    use_project_config()
    preset = QUICK if args.quick else DEFAULTS
    rate = args.rate_limit if args.rate_limit is not None else float(preset["rate_limit"])
    days = args.days if args.days is not None else int(preset["days"])

    anchor = datetime.now(UTC).date() - timedelta(days=1)
    end = anchor + timedelta(days=1)
    start = end - timedelta(days=days)
    server_args = [
        "--scale", args.scale, "--seed", str(args.seed), "--anchor-date", anchor.isoformat(),
        "--rate-limit", f"{rate:g}", "--latency-ms", f"{args.latency_ms:g}",
    ]  # fmt: skip
    settings = {
        "rate_limit": rate,
        "latency_ms": args.latency_ms,
        "days": days,
        "scale": args.scale,
        "seed": args.seed,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "workers": args.workers,
        "quick": args.quick,
        "custom_reports": len(BENCH_CUSTOM_REPORTS),
    }
    print(f"settings: {json.dumps(settings)}", flush=True)
    bench_t0 = time.perf_counter()

    with SimulatorProcess(server_args) as server:
        print(f"ours:  {server.banner} (ready in {server.startup_s:.1f} s)", flush=True)
        ours = run_ours(server.url, args, start.isoformat(), end.isoformat())
        server_ours = server.stats()
        ours_url = server.url
    recorder: Recorder = ours["recorder"]
    attempts = len(recorder.sent)
    throttled = ours["statuses"].get(429, 0)
    failed = ours["counters"]["failed"]
    replay = [s for s in sorted(recorder.sent, key=lambda s: s.started) if s.status != 429]
    lower = attempts / rate
    wall = ours["extract_s"]
    # The simulator's bucket starts full (burst = R), so a perfect client needs only
    # (requests - R) / R seconds plus one round trip: the stricter floor, for reference.
    floor = max(0.0, (attempts - rate) / rate) + args.latency_ms / 1000.0

    naive: Dict[str, Any] = {}
    server_naive: Dict[str, Any] = {}
    if not args.no_naive:
        with SimulatorProcess(server_args) as server:
            print(f"naive: {server.banner} (ready in {server.startup_s:.1f} s)", flush=True)
            naive = run_naive(server.url, ours_url, replay)
            server_naive = server.stats()

    table = [
        ["", "requests", "429s", "failed", "wall s", "lower bound s", "efficiency"],
        [
            "ours (dlt source)",
            attempts,
            throttled,
            failed,
            f"{wall:.2f}",
            f"{lower:.2f}",
            f"{wall / lower:.3f}",
        ],
    ]
    if naive:
        naive_lower = naive["requests"] / rate
        table.append(
            [
                "naive (closeio_api-like)",
                naive["requests"],
                naive["throttled"],
                naive["failed"],
                f"{naive['wall_s']:.2f}",
                f"{naive_lower:.2f}",
                f"{naive['wall_s'] / naive_lower:.3f}",
            ]
        )
    print()
    print(fmt_table(table))
    print()
    print(
        f"stricter floor (the bucket starts full: (requests - R) / R + one round trip): "
        f"{floor:.2f} s; ours / that floor = {wall / floor:.3f}"
    )
    print(
        f"ours: extract {ours['extract_s']:.2f} s (first request -> last response "
        f"{ours['requests_span_s']:.2f} s), normalize {ours['normalize_s']:.2f} s, "
        f"load {ours['load_s']:.2f} s, whole run {ours['run_wall_s']:.2f} s; "
        f"most requests in flight at once: {recorder.max_in_flight}; "
        f"rows: {sum(ours['rows'].values())} in {len(ours['rows'])} tables"
    )
    print(
        "cross-check (client vs simulator /__simulator__/stats): "
        f"ours requests {attempts} vs {server_ours['requests']}, "
        f"429s {throttled} vs {server_ours['rate_limited']}, "
        f"RequestStats {ours['counters']}"
    )
    if naive:
        print(
            f"cross-check naive: requests {naive['requests']} vs {server_naive['requests']}, "
            f"429s {naive['throttled']} vs {server_naive['rate_limited']}; "
            f"slept on 429s {naive['slept_s']:.2f} s"
        )
    consistent = attempts == server_ours["requests"] and throttled == server_ours["rate_limited"]
    if naive:
        consistent = consistent and naive["requests"] == server_naive["requests"]
    if not consistent:
        print("WARNING: client and simulator request counts differ")

    result: Dict[str, Any] = {
        "requests": attempts,
        "throttled": throttled,
        "failed": failed,
        "wall_s": round(wall, 3),
        "lower_bound_s": round(lower, 3),
        "efficiency": round(wall / lower, 4),
        "naive_wall_s": round(naive["wall_s"], 3) if naive else None,
        "naive_efficiency": round(naive["wall_s"] / (naive["requests"] / rate), 4)
        if naive
        else None,
        "speedup": round(naive["wall_s"] / wall, 3) if naive else None,
    }
    details = {
        **result,
        "machine": machine(),
        "dlt_settings": dlt_settings(),
        "settings": settings,
        "ours": {
            "extract_s": round(ours["extract_s"], 3),
            "requests_span_s": round(ours["requests_span_s"], 3),
            "normalize_s": round(ours["normalize_s"], 3),
            "load_s": round(ours["load_s"], 3),
            "run_wall_s": round(ours["run_wall_s"], 3),
            "max_in_flight": recorder.max_in_flight,
            "request_stats": ours["counters"],
            "rows": ours["rows"],
        },
        "naive": naive,
        "simulator_stats": {
            "ours": {k: server_ours[k] for k in ("requests", "rate_limited", "by_status")},
            "naive": {k: server_naive[k] for k in ("requests", "rate_limited", "by_status")}
            if server_naive
            else None,
        },
        "counts_consistent": consistent,
        "floor_with_burst_s": round(floor, 3),
        "efficiency_vs_floor_with_burst": round(wall / floor, 4),
        "bench_wall_s": round(time.perf_counter() - bench_t0, 1),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    report_result("rate_limit_efficiency", args.quick, not args.no_write, details, result)
    return details


if __name__ == "__main__":
    main()
