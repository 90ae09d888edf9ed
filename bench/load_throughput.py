"""Rows per second through the loader, next to a direct DuckDB insert of the same rows over
the same work; and the loader's peak memory against a real HTTP server.

A large simulated org (200 users, 730 days, every activity metric). Four passes:

1. **live** — the project's dlt source backfills every table (all report resources with
   every metric, two Explorer queries, the dimensions) with the in-process simulator
   (``CloseSimulator(...).transport()``) computing each answer; every answer is recorded
   (bytes, to disk). Timed, with the simulator's handler CPU beside it (it shares the
   cores and the GIL with the loader in-process).
2. **ours** (the headline) — the same backfill in a fresh process with the recorded answers
   replayed byte for byte (``ReplayTransport``, each answer read from disk when asked for),
   through what ``close-pipeline load`` runs: ``loading.load_with_ledger`` (extract, the
   run ledger, normalize, load into DuckDB with ``loader_file_format="parquet"``).
   ``--repeat`` runs, median.
3. **direct** — the same answers, in a fresh process, through the shortest loader that
   writes the same rows: the source's own ``fetch`` / ``reshape`` functions (same windows,
   one thread), then per table batches of up to 50 000 rows as Arrow
   (``pa.Table.from_pylist(rows, schema)`` for dict rows, the reshaper's Arrow tables as
   they are), each ``INSERT INTO t BY NAME SELECT * FROM batch`` into a fresh DuckDB file.
   No dlt: no schema, state, load package files, staging tables or merge. ``--repeat``
   runs, median.
4. **memory** — the simulator as a real HTTP server in its own process
   (``python -m close_reports.simulator --scale large``), the loader as a fresh
   ``close-pipeline load --start --end`` process (a first load into a fresh DuckDB file):
   its own peak RSS (``VmHWM``) and the peak per step, for 120 days and, without
   ``--quick``, 729 days (every day of the org's history but the first).

**What the ratio compares.** Both sides are timed over the same work, from the first request
to the last row in DuckDB: fetching the replayed answers and reshaping them (the same
functions on both sides) included. A loader's job is answers → warehouse rows, and fetch +
reshape are its first half; timing only ``from_pylist`` + ``INSERT`` on the direct side (as
this bench did before) compared our whole run with a part no loader can skip (the ratio
then read 2.96 on the full run and 4.4 on the quick one). ``ratio = ours wall ÷ direct wall
= direct rows/s ÷ our rows/s``: what dlt, the source's plumbing (threads, throttle, spool,
batches, state, run ledger) and the staged merge cost over the shortest correct insert. The
direct side's split (fetch + reshape / Arrow / insert) is printed, so the insert-only
figure stays visible. Row counts of the passes are compared per table (``run_ledger``, the
loader's own bookkeeping, is left out).

dlt settings come from the project's ``.dlt/config.toml`` (the bench runs from the
repository root). The last line is one JSON object, also written to
``bench/results/load_throughput[-quick].json`` with the machine, its load average and the
settings. ``--quick``: the last 120 days of the same large org (every table, every metric),
memory at 120 days only.

Usage: ``python bench/load_throughput.py [--quick] [--days N] [--repeat N] [--workers N]
[--no-memory]``.
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

# ``_common`` imports ``close_reports`` before anything loads pyarrow, as the command line does
# (``close_reports`` chooses pyarrow's memory pool, which pyarrow reads once, when imported).
from _common import (
    BENCH_CUSTOM_REPORTS,
    SimulatorProcess,
    dlt_settings,
    fmt_table,
    machine,
    peak_rss_mb,
    report_result,
    use_project_config,
)

BASE_URL = "http://close.bench/api/v1"
QUICK_DAYS = 120
MEMORY_DAYS = (120, 729)
"""Days of the memory pass (``--quick``: the first only)."""
DIRECT_BATCH_ROWS = 50_000
LEDGER_TABLE = "run_ledger"


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / (1024.0 * 1024.0)


class PhasePeaks:
    """Peak RSS (sampled every ``interval`` s, if given) and process CPU seconds of each named
    phase of this process."""

    def __init__(self, interval: Optional[float] = 0.02) -> None:
        self.phase = "start"
        self.peaks: Dict[str, float] = {}
        self.cpu: Dict[str, float] = {}
        self._process = psutil.Process()
        self._cpu_mark = self._cpu_now()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if interval:
            self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
            self._thread.start()

    def _cpu_now(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def enter(self, phase: str) -> None:
        now = self._cpu_now()
        self.cpu[self.phase] = self.cpu.get(self.phase, 0.0) + now - self._cpu_mark
        self._cpu_mark, self.phase = now, phase

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            rss = self._process.memory_info().rss / (1024.0 * 1024.0)
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss)
            self._stop.wait(interval)

    def stop(self) -> Dict[str, float]:
        """The peaks per phase (MiB); ``cpu`` then holds the CPU seconds per phase."""
        self.enter("end")
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return {k: round(v) for k, v in self.peaks.items()}

    def track(self, target: Any) -> None:
        """Names the phase after the dlt step ``target`` (a pipeline, or ``dlt.Pipeline``
        for every pipeline) runs: ``extract``, ``normalize``, ``load``, ``after_<step>``
        once it returned."""
        for step in ("extract", "normalize", "load"):
            method = getattr(target, step)

            def wrapped(*args: Any, _method: Any = method, _step: str = step, **kw: Any) -> Any:
                self.enter(_step)
                try:
                    return _method(*args, **kw)
                finally:
                    self.enter(f"after_{_step}")

            setattr(target, step, wrapped)


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


def run_ours(
    transport: httpx.BaseTransport,
    start: str,
    end: str,
    tmp: Path,
    name: str,
    timed: Optional[TimedSimulator] = None,
    workers: Optional[int] = None,
    sample_rss: bool = True,
) -> Dict[str, Any]:
    """One backfill with the project's source into ``tmp/<name>.duckdb`` as ``close-pipeline
    load`` runs it (``load_with_ledger``, the destination as the command line makes it).
    Without ``sample_rss`` no thread samples the RSS (the timed replays: only ``VmHWM``)."""
    import dlt

    from close_reports.loading import load_with_ledger
    from close_reports.source import RunLog, close_source
    from close_reports.source.client import RequestStats

    stats = RequestStats()
    run_log = RunLog()
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
        run_log=run_log,
        **({"workers": workers} if workers else {}),
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{name}",
        pipelines_dir=str(tmp / f"pipelines_{name}"),
        destination=dlt.destinations.duckdb(credentials=str(tmp / f"{name}.duckdb")),
        dataset_name="close_raw",
    )
    if timed is not None:
        timed.reset()
    peaks = PhasePeaks(0.02 if sample_rss else None)
    peaks.track(pipeline)
    cpu0 = psutil.Process().cpu_times()
    t0 = time.perf_counter()
    seconds = load_with_ledger(pipeline, source, run_log, loader_file_format="parquet")
    wall = time.perf_counter() - t0
    cpu1 = psutil.Process().cpu_times()
    sim = (timed.cpu_s, timed.wall_s, timed.requests, timed.bytes) if timed else None
    assert not run_log.failed, [e.error for e in run_log.failed]
    counts = pipeline.last_trace.last_normalize_info.row_counts or {}
    rows = {t: n for t, n in counts.items() if not t.startswith("_dlt") and t != LEDGER_TABLE}
    result: Dict[str, Any] = {
        "extract_s": seconds["extract"],
        "normalize_s": seconds["normalize"],
        "load_s": seconds["load"],
        "wall_s": wall,
        "cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "rss_peak_by_phase_mb": peaks.stop(),
        "cpu_by_phase_s": {k: round(v, 3) for k, v in peaks.cpu.items()},
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


def reshaped_parts(
    transport: httpx.BaseTransport, start: str, end: str
) -> Iterator[Tuple[str, Any]]:
    """``(table, part)`` of every table — an Arrow table or dict rows, as the source's
    reshapers give them — built from the report registry exactly as a backfill of
    ``[start, end)`` plans, requests and reshapes them (one org, unfiltered, one thread)."""
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
                yield from report.reshape(responses, call, scope).items()
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
    """The shortest loader of the same rows (see the module docstring), timed whole."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect(str(tmp / f"direct{index}.duckdb"))
    dicts: Dict[str, List[Dict[str, Any]]] = {}
    tables: Dict[str, List[Any]] = {}
    buffered: Dict[str, int] = {}
    rows: Dict[str, int] = {}
    created: set = set()
    timing = {"arrow_s": 0.0, "insert_s": 0.0}

    def insert(table: str, batch: Any) -> None:
        t0 = time.perf_counter()
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
        timing["insert_s"] += time.perf_counter() - t0
        rows[table] = rows.get(table, 0) + batch.num_rows

    def flush(table: str) -> None:
        batch_rows = dicts.pop(table, [])
        arrow_parts = tables.pop(table, [])
        buffered.pop(table, None)
        t0 = time.perf_counter()
        batches = []
        if arrow_parts:
            batches.append(pa.concat_tables(arrow_parts))
        if batch_rows:
            for row in batch_rows:  # JSON columns (Explorer `raw`, saved search `s_query`)
                for key, value in row.items():
                    if isinstance(value, (dict, list)):
                        row[key] = json.dumps(value)
            batches.append(
                pa.Table.from_pylist(batch_rows, schema=arrow_schema_for(table, batch_rows))
            )
        timing["arrow_s"] += time.perf_counter() - t0
        for batch in batches:
            insert(table, batch)

    cpu0 = psutil.Process().cpu_times()
    t_start = time.perf_counter()
    for table, part in reshaped_parts(transport, start, end):
        if isinstance(part, pa.Table):
            tables.setdefault(table, []).append(part)
            count = part.num_rows
        else:
            dicts.setdefault(table, []).extend(part)
            count = len(part)
        buffered[table] = buffered.get(table, 0) + count
        if buffered[table] >= DIRECT_BATCH_ROWS:
            flush(table)
    for table in list(buffered):
        flush(table)
    con.close()
    wall = time.perf_counter() - t_start
    cpu1 = psutil.Process().cpu_times()
    return {
        **timing,
        "wall_s": wall,
        "cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "fetch_and_reshape_s": wall - timing["arrow_s"] - timing["insert_s"],
        "rows": rows,
    }


# ---------------------------------------------------------------- memory


def memory_child(args: argparse.Namespace) -> None:
    """``--memory-child``: ``close-pipeline load`` in this (fresh) process against the
    simulator at ``--url``, its RSS sampled per dlt step; prints one JSON line."""
    work = Path(args.workdir)
    os.environ.update(
        SOURCES__CLOSE__API_KEY="demo",
        SOURCES__CLOSE__BASE_URL=args.url,
        DLT_DATA_DIR=str(work / "dlt"),
    )
    import dlt

    from close_reports import close_pipeline

    peaks = PhasePeaks()
    peaks.track(dlt.Pipeline)  # every pipeline's steps
    t0 = time.perf_counter()
    code = close_pipeline.main(
        [
            "load",
            "--start",
            args.start,
            "--end",
            args.end,
            "--duckdb-path",
            str(work / "close.duckdb"),
        ]
    )
    wall = time.perf_counter() - t0
    by_phase = peaks.stop()
    print(json.dumps({"exit_code": code, "wall_s": wall, "peak_rss_mb": peak_rss_mb(),
                      "rss_peak_by_phase_mb": by_phase}))  # fmt: skip


def memory_run(url: str, start: str, end: str, tmp: Path, name: str) -> Dict[str, Any]:
    """One ``memory_child`` in a fresh process; its result and the rows it loaded."""
    import duckdb

    work = tmp / name
    work.mkdir()
    command = [
        sys.executable, str(Path(__file__).resolve()), "--memory-child", "--url", url,
        "--start", start, "--end", end, "--workdir", str(work),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory run failed:\n{done.stderr[-3000:]}")
    result: Dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["exit_code"] != 0:
        raise RuntimeError(f"close-pipeline load failed:\n{done.stderr[-3000:]}")
    with duckdb.connect(str(work / "close.duckdb"), read_only=True) as con:
        names = con.execute(
            "select table_name from information_schema.tables where table_schema = 'close_raw'"
        ).fetchall()
        result["rows"] = {
            t: con.execute(f'select count(*) from close_raw."{t}"').fetchall()[0][0]
            for (t,) in names
            if not t.startswith("_dlt") and t != LEDGER_TABLE
        }
    return result


# ---------------------------------------------------------------- main


def replay_main(args: argparse.Namespace) -> None:
    """``--replay-dir``: one replayed run in this (fresh) process; prints one JSON line.

    The libraries are imported before the clock starts, on both sides."""
    import dlt  # noqa: F401
    import duckdb  # noqa: F401
    import pyarrow.compute  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    from dlt.destinations import duckdb as _duckdb_factory  # noqa: F401

    import close_reports.loading  # noqa: F401
    import close_reports.source  # noqa: F401

    replay = ReplayTransport(Path(args.replay_dir))
    if args.direct:
        index = int(args.name.rsplit("direct", 1)[-1] or 0)
        result = run_direct(replay, args.start, args.end, Path(args.workdir), index)
        result.update(replay_misses=replay.misses, peak_rss_mb=peak_rss_mb())
        print(json.dumps(result))
        return
    result = run_ours(
        replay, args.start, args.end, Path(args.workdir), args.name, workers=args.workers,
        sample_rss=False,
    )  # fmt: skip
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


def rounded(run: Dict[str, Any]) -> Dict[str, Any]:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in run.items() if k != "rows"}


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"the last {QUICK_DAYS} days only")
    parser.add_argument("--days", type=int, default=None, help="days of history to load")
    parser.add_argument("--scale", default="large")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None, help="source `workers`")
    parser.add_argument("--repeat", type=int, default=3, help="replayed and direct runs")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory pass")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    parser.add_argument("--replay-dir", help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    parser.add_argument("--end", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--name", default="replay", help=argparse.SUPPRESS)
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    use_project_config()
    if args.memory_child:
        memory_child(args)
        return {}
    if args.replay_dir:
        replay_main(args)
        return {}

    from close_reports.simulator import CloseSimulator, generate_org
    from close_reports.simulator.org import SCALES

    anchor = datetime.now(UTC).date() - timedelta(days=1)
    end = anchor + timedelta(days=1)
    days = args.days or (QUICK_DAYS if args.quick else SCALES[args.scale][1])
    start = end - timedelta(days=days)
    memory_days = () if args.no_memory else MEMORY_DAYS[:1] if args.quick else MEMORY_DAYS
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
        "memory_days": list(memory_days),
    }
    print(f"settings: {json.dumps(settings)}", flush=True)
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
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
        del simulator, org, timed
        gc.collect()
        # 2. ours and 3. direct, alternating, each run in a fresh process on the same answers
        replays, directs = [], []
        for i in range(args.repeat):
            replays.append(
                replay_in_subprocess(
                    record_dir, start.isoformat(), end.isoformat(), tmp, f"replay{i}", args.workers
                )
            )
            directs.append(
                replay_in_subprocess(
                    record_dir, start.isoformat(), end.isoformat(), tmp, f"direct{i}", None,
                    direct=True,
                )
            )  # fmt: skip
            print(
                f"run {i + 1}: ours {replays[-1]['wall_s']:.2f} s, direct "
                f"{directs[-1]['wall_s']:.2f} s",
                flush=True,
            )
        # 4. memory: the loader against the simulator as a real HTTP server
        memory: Dict[int, Dict[str, Any]] = {}
        if memory_days:
            command = ["--scale", args.scale, "--seed", str(args.seed),
                       "--anchor-date", anchor.isoformat()]  # fmt: skip
            with SimulatorProcess(command, timeout=600) as server:
                print(f"memory: {server.banner} (started in {server.startup_s:.0f} s)")
                for mdays in memory_days:
                    mstart = (end - timedelta(days=mdays)).isoformat()
                    memory[mdays] = memory_run(
                        server.url, mstart, end.isoformat(), tmp, f"mem{mdays}"
                    )
                    peak, took = memory[mdays]["peak_rss_mb"], memory[mdays]["wall_s"]
                    print(f"memory, {mdays} days over HTTP: peak RSS {peak:.0f} MiB ({took:.1f} s)")

    load_after = os.getloadavg()
    n_rows = sum(replays[0]["rows"].values())
    ours_s = median([r["wall_s"] for r in replays])
    ours = min(replays, key=lambda r: abs(r["wall_s"] - ours_s))
    direct_s = median([d["wall_s"] for d in directs])
    direct = min(directs, key=lambda d: abs(d["wall_s"] - direct_s))
    rows_per_s = n_rows / ours_s
    direct_rows = sum(direct["rows"].values())
    direct_rows_per_s = direct_rows / direct_s
    ratio = direct_rows_per_s / rows_per_s
    insert_only = direct["arrow_s"] + direct["insert_s"]
    live_minus_sim = live["wall_s"] - live["simulator_cpu_s"]

    print()
    table = [["", "fetch+reshape / extract s", "normalize s", "Arrow + insert / load s",
              "total s", "CPU s", "rows/s"]]  # fmt: skip

    def line(label: str, r: Dict[str, Any]) -> List[Any]:
        steps = [f"{r[k]:.2f}" for k in ("extract_s", "normalize_s", "load_s", "wall_s")]
        return [label, *steps, f"{r.get('cpu_s', 0):.2f}", f"{n_rows / r['wall_s']:,.0f}"]

    table.append(line(f"ours, replayed (median of {len(replays)})", ours))
    table.append(
        [
            f"direct, replayed (median of {len(directs)})",
            f"{direct['fetch_and_reshape_s']:.2f}",
            "",
            f"{direct['arrow_s']:.2f} + {direct['insert_s']:.2f}",
            f"{direct_s:.2f}",
            f"{direct['cpu_s']:.2f}",
            f"{direct_rows_per_s:,.0f}",
        ]
    )
    table.append(line("ours, live in-process simulator", live))
    table.append(
        ["  live minus simulator handler CPU", f"{live['extract_s'] - live['simulator_cpu_s']:.2f}",
         "", "", f"{live_minus_sim:.2f}", "", f"{n_rows / live_minus_sim:,.0f}"]
    )  # fmt: skip
    print(fmt_table(table))
    print()
    per_table = [["table", "ours rows", "direct rows"]]
    for name in sorted(set(ours["rows"]) | set(direct["rows"])):
        per_table.append([name, ours["rows"].get(name, 0), direct["rows"].get(name, 0)])
    print(fmt_table(per_table))
    print()
    same = direct["rows"] == ours["rows"] == live["rows"]
    ours_runs = ", ".join(f"{r['wall_s']:.2f}" for r in replays)
    direct_runs = ", ".join(f"{d['wall_s']:.2f}" for d in directs)
    print(
        f"rows: {n_rows} (identical per table in live, replayed and direct runs: {same}); "
        f"requests {live['request_stats']['requests']} ({live['simulator_mb']:.0f} MB of JSON), "
        f"failed {live['request_stats']['failed'] + ours['request_stats']['failed']}; "
        f"replay misses {ours['replay_misses']}; ours runs {ours_runs} s, direct runs "
        f"{direct_runs} s"
    )
    print(
        f"ratio (ours wall / direct wall, same work): {ratio:.2f}; direct's Arrow + insert alone "
        f"{insert_only:.2f} s (ours / that: {ours_s / insert_only:.2f})"
    )
    result: Dict[str, Any] = {
        "rows": n_rows,
        "rows_per_s": round(rows_per_s),
        "direct_rows_per_s": round(direct_rows_per_s),
        "ratio": round(ratio, 3),
    }
    memory_same = True
    if memory:
        lines = [["memory (loader process, simulator over HTTP)", "extract", "normalize", "load",
                  "after load", "peak RSS MiB", "wall s"]]  # fmt: skip
        for mdays, m in memory.items():
            p = m["rss_peak_by_phase_mb"]
            lines.append([f"{mdays} days", p.get("extract", ""), p.get("normalize", ""),
                          p.get("load", ""), p.get("after_load", ""), f"{m['peak_rss_mb']:.0f}",
                          f"{m['wall_s']:.1f}"])  # fmt: skip
        print()
        print(fmt_table(lines))
        first = memory[memory_days[0]]
        if days == memory_days[0]:
            memory_same = first["rows"] == ours["rows"]
            print(f"rows of the {days}-day HTTP run identical to the replayed runs: {memory_same}")
        result["peak_rss_mb"] = round(max(m["peak_rss_mb"] for m in memory.values()))
        if len(memory) > 1:
            last = memory[memory_days[-1]]
            growth = last["peak_rss_mb"] / first["peak_rss_mb"]
            result["peak_rss_ratio"] = round(growth, 3)
            print(f"peak RSS {memory_days[-1]} days / {memory_days[0]} days: {growth:.3f}")
    print(
        f"replayed runs' peak RSS (answers read from disk, no simulator) "
        f"{max(r['peak_rss_mb'] for r in replays):.0f} MiB; this process with the in-process "
        f"simulator (org + indexes {rss_org:.0f} MiB) {peak_live:.0f} MiB"
    )
    print(
        f"load average: {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min; "
        f"{os.cpu_count()} cores)"
    )

    details = {
        **result,
        "what_is_timed": (
            "Both sides over the same work, in fresh processes on the same recorded answers, "
            "from the first request to the last row in DuckDB. rows_per_s: rows / wall of "
            "close_reports.loading.load_with_ledger (extract with the project's dlt source, run "
            "ledger, normalize, load into DuckDB, loader_file_format=parquet), median of the runs. "
            "direct_rows_per_s: rows / wall of the source's fetch/reshape functions in one "
            "thread, then per table batches of up to 50 000 rows as Arrow (from_pylist for dict "
            "rows, the reshapers' Arrow tables as they are) and INSERT INTO t BY NAME SELECT * "
            "FROM batch into a fresh DuckDB file. ratio = direct_rows_per_s / rows_per_s. "
            "peak_rss_mb: VmHWM of a fresh `close-pipeline load` process reading the simulator "
            "over HTTP (the simulator in its own process), the largest of memory_days; "
            "peak_rss_ratio: last memory_days / first."
        ),
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in load_after],
        },  # fmt: skip
        "insert_only_s": round(insert_only, 3),
        "peak_rss_with_simulator_mb": round(peak_live),
        "replayed_peak_rss_mb": round(max(r["peak_rss_mb"] for r in replays)),
        "rows_per_s_live": round(n_rows / live["wall_s"]),
        "rows_per_s_live_minus_simulator_cpu": round(n_rows / live_minus_sim),
        "machine": machine(),
        "dlt_settings": dlt_settings(),
        "settings": settings,
        "ours_replayed_runs": [rounded(r) for r in replays],
        "direct_runs": [rounded(d) for d in directs],
        "memory_runs": {str(k): rounded(v) for k, v in memory.items()},
        "rows_per_table": ours["rows"],
        "ours_live": rounded(live),
        "rows_identical": same and memory_same,
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
