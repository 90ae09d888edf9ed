"""Rows per second through the loader, next to a direct DuckDB insert of the same rows.

A large simulated org (200 users, 730 days, every activity metric) is served in-process by
``CloseSimulator(...).transport()``, no rate limit, no latency. Three passes:

1. **live** — the project's dlt source backfills every table (all report resources with
   every metric, two Explorer queries, the dimensions) into DuckDB (temp dir,
   ``loader_file_format="parquet"``) with the simulator computing each answer in this
   process; extract / normalize / load timed. The simulator's handler is timed as well
   (thread CPU seconds computing and JSON-encoding answers): in-process it shares the
   cores and the GIL with the loader. Every answer is recorded (bytes, to disk).
2. **ours** (the headline) — the same backfill in a fresh process with the recorded answers
   replayed byte for byte (``ReplayTransport``): the loader's whole cost (HTTP client, JSON,
   reshaping, Arrow, dlt extract / normalize, DuckDB merge) without the simulator computing
   answers on the same cores. ``--repeat`` runs, median. Libraries are imported before the
   clock starts.
3. **direct** — the same reshaped rows (the source's own ``fetch`` / ``reshape`` functions,
   same windows, same recorded answers; fetching and reshaping not timed), in a fresh
   process, inserted into a fresh DuckDB file: ``pa.Table.from_pylist(rows, schema)`` per
   batch of up to 50 000 rows of a table (schema: the declared types), then
   ``INSERT INTO t BY NAME SELECT * FROM batch``. ``--repeat`` runs, median.

``ratio = direct rows/s / our rows/s`` (how many times slower than the direct insert). Row
counts of the three passes are compared per table. ``peak_rss_mb`` is the peak RSS
(``VmHWM``) of a replayed run's process — the loader alone, as it runs against Close; the
bench process with the simulator's org (~450 MiB) is reported beside it. dlt settings come
from the project's ``.dlt/config.toml`` (the bench runs from the repository root).

The last line is one JSON object, also written to ``bench/results/load_throughput[-quick]
.json`` with the machine and the settings. ``--quick``: the last 120 days of the same large
org (every table, every metric).

Usage: ``python bench/load_throughput.py [--quick] [--days N] [--repeat N] [--workers N]``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import httpx
import psutil
from _common import (
    BENCH_CUSTOM_REPORTS,
    dlt_settings,
    fmt_table,
    machine,
    peak_rss_mb,
    report_result,
    use_project_config,
)

BASE_URL = "http://close.bench/api/v1"
QUICK_DAYS = 120
DIRECT_BATCH_ROWS = 50_000


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / (1024.0 * 1024.0)


class PhasePeaks:
    """Samples this process's RSS every ``interval`` s; the peak of each named phase."""

    def __init__(self, interval: float = 0.02) -> None:
        self.phase = "start"
        self.peaks: Dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            rss = process.memory_info().rss / (1024.0 * 1024.0)
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss)
            self._stop.wait(interval)

    def stop(self) -> Dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {k: round(v) for k, v in self.peaks.items()}


def request_key(request: httpx.Request) -> str:
    """What identifies an answer: method, URL with query, body, timezone header."""
    digest = hashlib.sha1()
    for part in (
        request.method.encode(),
        str(request.url).encode(),
        request.headers.get("x-tz-offset", "").encode(),
        request.content,
    ):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()


class TimedSimulator:
    """``simulator.transport()`` whose handler time is summed (thread CPU and wall); with
    ``record_dir`` every answer is also written there for ``ReplayTransport``."""

    def __init__(self, simulator: Any, record_dir: Optional[Path] = None) -> None:
        self.simulator = simulator
        self.record_dir = record_dir
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.cpu_s = self.wall_s = 0.0
            self.requests = self.bytes = 0

    def transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            c0, w0 = time.thread_time(), time.perf_counter()
            response = self.simulator.handle(request)
            c1, w1 = time.thread_time(), time.perf_counter()
            with self._lock:
                self.cpu_s += c1 - c0
                self.wall_s += w1 - w0
                self.requests += 1
                self.bytes += len(response.content)
            if self.record_dir is not None and response.status_code == 200:
                path = self.record_dir / request_key(request)
                path.write_bytes(response.content)
            return response

        return httpx.MockTransport(handler)


class ReplayTransport(httpx.BaseTransport):
    """Answers each request with the bytes the simulator gave it before (read from disk):
    the loader's own cost, without the simulator computing answers on the same cores.
    A request never recorded is answered live and counted as a miss."""

    def __init__(self, record_dir: Path, fallback: Optional[httpx.BaseTransport] = None) -> None:
        self.record_dir = record_dir
        self.fallback = fallback
        self.hits = 0
        self.misses = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        path = self.record_dir / request_key(request)
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            if self.fallback is None:
                raise RuntimeError(
                    f"no recorded answer for {request.method} {request.url}"
                ) from None
            return self.fallback.handle_request(request)
        self.hits += 1
        return httpx.Response(
            200,
            content=content,
            headers={"content-type": "application/json"},
            request=request,
        )


# ---------------------------------------------------------------- ours


def duckdb_destination(path: Path) -> Any:
    """DuckDB at ``path``, configured as the pipeline does (``DUCKDB_MEMORY_LIMIT`` in the
    environment sets DuckDB's ``memory_limit``, for experiments)."""
    import dlt
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    credentials = DuckDbCredentials(str(path))
    if os.environ.get("DUCKDB_MEMORY_LIMIT"):
        credentials.global_config = {"memory_limit": os.environ["DUCKDB_MEMORY_LIMIT"]}
    return dlt.destinations.duckdb(credentials)


def run_ours(
    transport: httpx.BaseTransport,
    start: str,
    end: str,
    tmp: Path,
    name: str,
    timed: Optional[TimedSimulator] = None,
    workers: Optional[int] = None,
) -> Dict[str, Any]:
    """One backfill with the project's source into ``tmp/<name>.duckdb``, phases timed."""
    import dlt

    from close_reports.source import close_source
    from close_reports.source.client import RequestStats

    stats = RequestStats()
    source = close_source(
        api_key="demo",
        api_keys=[],
        base_url=BASE_URL,
        start_date=start,
        end_date=end,
        timezone="UTC",
        custom_reports=BENCH_CUSTOM_REPORTS,
        transport=transport,
        stats=stats,
        **({"workers": workers} if workers else {}),
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{name}",
        pipelines_dir=str(tmp / f"pipelines_{name}"),
        destination=duckdb_destination(tmp / f"{name}.duckdb"),
        dataset_name="close_raw",
    )
    if timed is not None:
        timed.reset()
    peaks = PhasePeaks()
    t0 = time.perf_counter()
    peaks.phase = "extract"
    pipeline.extract(source, loader_file_format="parquet")
    t1 = time.perf_counter()
    sim = (timed.cpu_s, timed.wall_s, timed.requests, timed.bytes) if timed else None
    peaks.phase = "normalize"
    pipeline.normalize()
    t2 = time.perf_counter()
    peaks.phase = "load"
    info = pipeline.load()
    t3 = time.perf_counter()
    peaks.phase = "end"
    assert not info.has_failed_jobs, info
    counts = pipeline.last_trace.last_normalize_info.row_counts or {}
    rows = {t: n for t, n in counts.items() if not t.startswith("_dlt")}
    result: Dict[str, Any] = {
        "extract_s": t1 - t0,
        "normalize_s": t2 - t1,
        "load_s": t3 - t2,
        "wall_s": t3 - t0,
        "rss_peak_by_phase_mb": peaks.stop(),
        "request_stats": stats.as_dict(),
        "rows": rows,
    }
    if sim is not None:
        result.update(
            simulator_cpu_s=sim[0], simulator_wall_s=sim[1], simulator_requests=sim[2],
            simulator_mb=sim[3] / 1e6,
        )  # fmt: skip
    return result


# ---------------------------------------------------------------- direct


def reshaped_batches(
    transport: httpx.BaseTransport, start: str, end: str
) -> Iterator[Tuple[str, List[Dict[str, Any]]]]:
    """``(table, rows)`` of every table, built from the source's report registry exactly as a
    backfill of ``[start, end)`` plans, requests and reshapes them (one org, unfiltered)."""
    from datetime import date

    from close_reports.source.arrow import arrow_schema
    from close_reports.source.client import CloseClient
    from close_reports.source.config import ALL
    from close_reports.source.orgs import OrgContext
    from close_reports.source.reports import LISTINGS, REPORTS, Scope
    from close_reports.source.settings import METRICS_CHUNK_SIZE, OVERVIEW_MAX_DAYS
    from close_reports.source.windows import Window

    span = Window(date.fromisoformat(start), date.fromisoformat(end))
    org = OrgContext(CloseClient("demo", BASE_URL, transport=transport))
    for report in REPORTS:
        metric_keys = org.metric_keys if report.with_metrics else ()
        schemas = {t: arrow_schema(t, metric_keys) for t in report.tables}
        for query in BENCH_CUSTOM_REPORTS if report.per_query else [None]:
            scope = Scope(org, ALL, "UTC", METRICS_CHUNK_SIZE, OVERVIEW_MAX_DAYS, query, schemas)
            for call in report.plan(span, scope, span.end):
                responses = [org.client.send(r) for r in report.requests(call, scope)]
                for table, part in report.reshape(responses, call, scope).items():
                    yield table, part.to_pylist() if hasattr(part, "to_pylist") else part
    for listing in LISTINGS:
        for page in listing.rows(org):
            yield listing.table, page
    org.client.close()


def arrow_schema_for(table: str, rows: List[Dict[str, Any]]) -> Any:
    """Declared types of ``settings.TABLES`` (+ metric columns by suffix); other columns are
    inferred by pyarrow from the batch."""
    import pyarrow as pa

    from close_reports.source.settings import TABLES

    types = {
        "text": pa.string(),
        "bigint": pa.int64(),
        "double": pa.float64(),
        "bool": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.string(),
        "json": pa.string(),
    }
    declared, _, _ = TABLES[table]
    names: Dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    fields = []
    for name in names:
        if name in declared and declared[name] not in ("timestamp", "json"):
            fields.append(pa.field(name, types[declared[name]]))
        elif table.startswith("activity_") and name not in declared:
            fields.append(pa.field(name, pa.float64()))  # metric columns: numbers
        else:
            values = [row.get(name) for row in rows]
            if any(isinstance(v, (dict, list)) for v in values):
                fields.append(pa.field(name, pa.string()))
            else:
                fields.append(pa.field(name, pa.array(values).type))
    return pa.schema(fields)


def run_direct(
    transport: httpx.BaseTransport, start: str, end: str, tmp: Path, index: int = 0
) -> Dict[str, Any]:
    import duckdb
    import pyarrow as pa

    con = duckdb.connect(str(tmp / f"direct{index}.duckdb"))
    buffers: Dict[str, List[Dict[str, Any]]] = {}
    rows: Dict[str, int] = {}
    created: set = set()
    timing = {"from_pylist_s": 0.0, "insert_s": 0.0}

    def flush(table: str) -> None:
        batch_rows = buffers.pop(table, [])
        if not batch_rows:
            return
        for row in batch_rows:  # JSON columns (Explorer `raw`, saved search `s_query`)
            for key, value in row.items():
                if isinstance(value, (dict, list)):
                    row[key] = json.dumps(value)
        schema = arrow_schema_for(table, batch_rows)
        t0 = time.perf_counter()
        batch = pa.Table.from_pylist(batch_rows, schema=schema)
        t1 = time.perf_counter()
        con.register("batch", batch)
        if table not in created:
            con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM batch')
            created.add(table)
        else:
            existing = {r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()}
            for field in batch.schema:
                if field.name not in existing:
                    con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{field.name}" VARCHAR')
            con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM batch')
        con.unregister("batch")
        t2 = time.perf_counter()
        timing["from_pylist_s"] += t1 - t0
        timing["insert_s"] += t2 - t1
        rows[table] = rows.get(table, 0) + len(batch_rows)

    t_fetch = time.perf_counter()
    for table, batch_rows in reshaped_batches(transport, start, end):
        buffer = buffers.setdefault(table, [])
        buffer.extend(batch_rows)
        if len(buffer) >= DIRECT_BATCH_ROWS:
            flush(table)
    for table in list(buffers):
        flush(table)
    total = time.perf_counter() - t_fetch
    con.close()
    return {
        **timing,
        "timed_s": timing["from_pylist_s"] + timing["insert_s"],
        "fetch_and_reshape_s": total - timing["from_pylist_s"] - timing["insert_s"],
        "rows": rows,
    }


# ---------------------------------------------------------------- main


def replay_main(args: argparse.Namespace) -> None:
    """``--replay-dir``: one replayed run in this (fresh) process; prints one JSON line.

    The libraries are imported before the clock starts (the direct insert, timed in the
    long-running bench process, does not pay for imports either)."""
    import dlt  # noqa: F401
    import duckdb  # noqa: F401
    import pyarrow.compute  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    from dlt.destinations import duckdb as _duckdb_factory  # noqa: F401

    import close_reports.source  # noqa: F401

    replay = ReplayTransport(Path(args.replay_dir))
    if args.direct:
        index = int(args.name.rsplit("direct", 1)[-1] or 0)
        result = run_direct(replay, args.start, args.end, Path(args.workdir), index)
        result.update(replay_misses=replay.misses, peak_rss_mb=peak_rss_mb())
        print(json.dumps(result))
        return
    result = run_ours(
        replay, args.start, args.end, Path(args.workdir), args.name, workers=args.workers
    )
    result.update(replay_hits=replay.hits, replay_misses=replay.misses, peak_rss_mb=peak_rss_mb())
    print(json.dumps(result))


def replay_in_subprocess(
    record_dir: Path,
    start: str,
    end: str,
    tmp: Path,
    name: str,
    workers: Optional[int],
    direct: bool = False,
) -> Dict[str, Any]:
    """One replayed run (ours, or with ``direct`` the direct insert) in a fresh process, so
    both sides start from the same clean interpreter and heap."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--replay-dir", str(record_dir),
        "--start", start, "--end", end, "--workdir", str(tmp), "--name", name,
    ]  # fmt: skip
    if workers:
        command += ["--workers", str(workers)]
    if direct:
        command += ["--direct"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"replayed run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def median(values: List[float]) -> float:
    return statistics.median(values)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"the last {QUICK_DAYS} days only")
    parser.add_argument("--days", type=int, default=None, help="days of history to load")
    parser.add_argument("--scale", default="large")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="source `workers`")
    parser.add_argument("--repeat", type=int, default=3, help="replayed and direct runs")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    parser.add_argument("--replay-dir", help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    parser.add_argument("--end", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--name", default="replay", help=argparse.SUPPRESS)
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    use_project_config()
    if args.replay_dir:
        replay_main(args)
        return {}

    from close_reports.simulator import CloseSimulator, generate_org
    from close_reports.simulator.org import SCALES

    anchor = datetime.now(UTC).date() - timedelta(days=1)
    end = anchor + timedelta(days=1)
    days = args.days or (QUICK_DAYS if args.quick else SCALES[args.scale][1])
    start = end - timedelta(days=days)
    settings = {
        "scale": args.scale,
        "users": SCALES[args.scale][0],
        "seed": args.seed,
        "days": days,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "quick": args.quick,
        "resources": "every table: reports (all activity metrics), 2 Explorer queries, dims",
        "custom_reports": len(BENCH_CUSTOM_REPORTS),
        "direct_batch_rows": DIRECT_BATCH_ROWS,
        "workers": args.workers,
        "repeat": args.repeat,
    }
    print(f"settings: {json.dumps(settings)}", flush=True)
    bench_t0 = time.perf_counter()

    t0 = time.perf_counter()
    org = generate_org(seed=args.seed, scale=args.scale, anchor_date=anchor)
    t1 = time.perf_counter()
    simulator = CloseSimulator(org)
    simulator.warm_up()
    t2 = time.perf_counter()
    gc.collect()
    rss_org = rss_mb()
    print(
        f"org: {len(org.users)} users, {SCALES[args.scale][1]} days, generated in "
        f"{t1 - t0:.1f} s, indexes {t2 - t1:.1f} s; RSS {rss_org:.0f} MiB",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmpdir:
        tmp = Path(tmpdir)
        record_dir = tmp / "answers"
        record_dir.mkdir()
        # 1. live: the in-process simulator computes every answer (and they are recorded)
        timed = TimedSimulator(simulator, record_dir)
        live = run_ours(
            timed.transport(), start.isoformat(), end.isoformat(), tmp, "live", timed, args.workers
        )
        simulator.reset_stats()  # its request log is not ours to keep in memory
        peak_live = peak_rss_mb()
        print(f"live run (in-process simulator): {live['wall_s']:.1f} s", flush=True)
        # 2. ours: the recorded answers replayed, each run in a fresh process
        replays = []
        for i in range(args.repeat):
            replays.append(
                replay_in_subprocess(
                    record_dir, start.isoformat(), end.isoformat(), tmp, f"replay{i}", args.workers
                )
            )
            print(f"replayed run {i + 1}: {replays[-1]['wall_s']:.2f} s", flush=True)
        # 3. direct insert of the same reshaped rows
        directs = []
        for i in range(args.repeat):
            directs.append(
                replay_in_subprocess(
                    record_dir,
                    start.isoformat(),
                    end.isoformat(),
                    tmp,
                    f"direct{i}",
                    None,
                    direct=True,
                )
            )
            print(f"direct run {i + 1}: {directs[-1]['timed_s']:.2f} s", flush=True)

    n_rows = sum(replays[0]["rows"].values())
    ours_s = median([r["wall_s"] for r in replays])
    ours = min(replays, key=lambda r: abs(r["wall_s"] - ours_s))
    direct_s = median([d["timed_s"] for d in directs])
    direct = min(directs, key=lambda d: abs(d["timed_s"] - direct_s))
    rows_per_s = n_rows / ours_s
    direct_rows = sum(direct["rows"].values())
    direct_rows_per_s = direct_rows / direct_s
    ratio = direct_rows_per_s / rows_per_s
    peak_ours = max(r["peak_rss_mb"] for r in replays)
    live_minus_sim = live["wall_s"] - live["simulator_cpu_s"]

    print()
    table = [["", "extract s", "normalize s", "load s", "total s", "rows/s"]]

    def line(label: str, r: Dict[str, Any]) -> List[Any]:
        return [
            label,
            f"{r['extract_s']:.2f}",
            f"{r['normalize_s']:.2f}",
            f"{r['load_s']:.2f}",
            f"{r['wall_s']:.2f}",
            f"{n_rows / r['wall_s']:,.0f}",
        ]

    table.append(line(f"ours, replayed (median of {len(replays)})", ours))
    table.append(line("ours, live in-process simulator", live))
    table.append(
        [
            "  live minus simulator handler CPU",
            f"{live['extract_s'] - live['simulator_cpu_s']:.2f}",
            "",
            "",
            f"{live_minus_sim:.2f}",
            f"{n_rows / live_minus_sim:,.0f}",
        ]
    )
    table.append(
        [
            f"direct (median of {len(directs)})",
            f"{direct['from_pylist_s']:.2f} from_pylist",
            "",
            f"{direct['insert_s']:.2f} insert",
            f"{direct_s:.2f}",
            f"{direct_rows_per_s:,.0f}",
        ]
    )
    print(fmt_table(table))
    print()
    per_table = [["table", "ours rows", "direct rows"]]
    for name in sorted(set(ours["rows"]) | set(direct["rows"])):
        per_table.append([name, ours["rows"].get(name, 0), direct["rows"].get(name, 0)])
    print(fmt_table(per_table))
    print()
    same = direct["rows"] == ours["rows"] == live["rows"]
    ours_runs = ", ".join(f"{r['wall_s']:.2f}" for r in replays)
    direct_runs = ", ".join(f"{d['timed_s']:.2f}" for d in directs)
    print(
        f"rows: {n_rows} (identical per table in live, replayed and direct runs: {same}); "
        f"requests {live['request_stats']['requests']} ({live['simulator_mb']:.0f} MB of JSON), "
        f"failed {live['request_stats']['failed'] + ours['request_stats']['failed']}; "
        f"replay misses {ours['replay_misses']}; ours runs {ours_runs} s, "
        f"direct runs {direct_runs} s"
    )
    print(
        f"memory: peak RSS of a replayed run (fresh process: Python, dlt, DuckDB, no simulator) "
        f"{peak_ours:.0f} MiB; this process (org + indexes {rss_org:.0f} MiB, live run "
        f"included) {peak_live:.0f} MiB"
    )

    result = {
        "rows": n_rows,
        "rows_per_s": round(rows_per_s),
        "direct_rows_per_s": round(direct_rows_per_s),
        "ratio": round(ratio, 3),
        "peak_rss_mb": round(peak_ours),
    }
    details = {
        **result,
        "what_is_timed": (
            "rows_per_s: rows / (extract + normalize + load) of the project's dlt source into "
            "DuckDB (loader_file_format=parquet), replaying byte for byte the answers the "
            "in-process CloseSimulator gave in the live run, in a fresh process (median of "
            "the runs): the loader's whole cost (HTTP client, JSON, reshaping, Arrow, dlt, "
            "DuckDB merge) without the simulator computing answers on the same cores. "
            "direct_rows_per_s: rows / (pa.Table.from_pylist(rows, schema) + INSERT INTO t "
            "BY NAME SELECT * FROM batch, batches of up to 50 000 rows) of the same rows "
            "made by the source's fetch/reshape functions; fetching and reshaping not timed. "
            "peak_rss_mb: ru_maxrss of a replayed run's process (loader only); the bench "
            "process with the simulator's org is reported as peak_rss_with_simulator_mb."
        ),
        "peak_rss_with_simulator_mb": round(peak_live),
        "rows_per_s_live": round(n_rows / live["wall_s"]),
        "rows_per_s_live_minus_simulator_cpu": round(n_rows / live_minus_sim),
        "machine": machine(),
        "dlt_settings": dlt_settings(),
        "settings": settings,
        "ours_replayed_runs": [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "rows"}
            for r in replays
        ],
        "rows_per_table": ours["rows"],
        "ours_live": {
            k: (round(v, 3) if isinstance(v, float) else v) for k, v in live.items() if k != "rows"
        },
        "direct_runs": [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items() if k != "rows"}
            for d in directs
        ],
        "rows_identical": same,
        "rss_org_mb": round(rss_org),
        "org_generation_s": round(t1 - t0, 2),
        "index_warm_up_s": round(t2 - t1, 2),
        "bench_wall_s": round(time.perf_counter() - bench_t0, 1),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    report_result("load_throughput", args.quick, not args.no_write, details, result)
    return details


if __name__ == "__main__":
    main()
