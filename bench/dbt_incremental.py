"""Incremental marts: a daily rerun's dbt build against the first build of a 2-year load.

    python bench/dbt_incremental.py            # large org (200 reps), 730 days
    python bench/dbt_incremental.py --quick    # small org, 120 days

1. Loads ``--days`` days of a simulated org (history ending ``anchor``) through the loader
   into a fresh DuckDB file (the simulator in-process: this bench times dbt, not the API).
2. ``dbt build``: the first build (every incremental mart built whole).
3. The next day: late edits in Close's recent past (calls, emails, status changes inside the
   refresh window), then the daily incremental load — one new day plus ``--rerun-lookback``
   days re-read of every report (28 by default: the refresh window of the as-of-now reports;
   stricter than the 3-day lookback of the status reports).
4. ``dbt build`` again: the daily rerun (incremental marts replace the re-read windows only).
5. ``--verify`` (default): a copy rebuilt with ``--full-refresh`` equals the rerun's marts
   row for row.

Figures per build: wall seconds of ``dbt build``, the sum of the models' execution times
(``run_results.json``), the incremental marts' share of it, the seconds DuckDB spent on the
models' and the tests' statements (dbt's debug log; the rest of a node's time is dbt's own),
and dbt's peak RSS (``VmHWM`` of the dbt process itself). ``--threads N`` runs every build
with N dbt threads (the sum of execution times counts a node's wait for the others when
threads outnumber cores). The ratios rerun / first build are the targets of issue 14: model
time ≤ 20 %, whole build ≤ 50 %, peak RSS ≤ 1.5 GiB. The machine is shared: load averages
and dbt's CPU seconds are recorded beside every build.

Writes ``bench/results/dbt_incremental[-quick].json``; the last line printed is the summary
JSON.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Dict, Iterator, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, duckdb_pipeline, fmt_table, machine, report_result  # noqa: E402

DBT_DIR = ROOT / "dbt"
INCREMENTAL_MARTS = (
    "fct_activity_metrics_daily",
    "fct_user_activity_daily",
    "fct_lead_status_daily",
    "fct_opportunity_status_daily",
    "fct_funnel_totals",
    "fct_funnel_stages",
    "fct_sent_email_templates",
)
TARGETS = {"model_time_ratio": 0.20, "build_wall_ratio": 0.50, "peak_rss_mib": 1536}

_LOG_NODE = re.compile(r"On (?:(model|test|unit_test)\.)?[\w.]+: ")  # no group: dbt's own
_LOG_SQL_SECONDS = re.compile(r"SQL status: \S+ in ([\d.]+) seconds")
_LOG_THREAD = re.compile(r"\[([\w-]+)")  # "[Thread-3 (worker)]": lines of threads interleave

# Runs dbt's CLI and, on the way out, writes the process's own peak RSS (VmHWM: a fresh
# address space after exec, unlike ru_maxrss, which keeps the forking parent's size).
DBT_LAUNCHER = """
import atexit, sys
from pathlib import Path

PEAK_FILE = Path(sys.argv[1])

def _peak():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            PEAK_FILE.write_text(line.split()[1])
            return

atexit.register(_peak)
from dbt.cli.main import cli
sys.argv = ["dbt", *sys.argv[2:]]
cli()
"""


def loadavg() -> List[float]:
    return [round(x, 2) for x in os.getloadavg()]


@contextmanager
def pinned_today(day: date) -> Iterator[Dict[str, Any]]:
    """close_source's "today": its ``today`` argument where it has one, else the module clock
    (the loader before it took ``today``)."""
    from close_reports.source import close_source, windows

    if "today" in inspect.signature(close_source).parameters:
        yield {"today": day}
        return
    original = windows.utc_now
    now = datetime.combine(day, datetime.min.time(), UTC).replace(hour=6)
    windows.utc_now = lambda: now  # type: ignore[assignment]
    try:
        yield {}
    finally:
        windows.utc_now = original  # type: ignore[assignment]


def load(pipeline: Any, simulator: Any, today: date, **kwargs: Any) -> Dict[str, Any]:
    from close_reports.source import close_source

    started = time.perf_counter()
    with pinned_today(today) as pinned:
        source = close_source(
            api_key="demo",
            base_url="http://close-simulator.local/api/v1",
            transport=simulator.transport(),
            timezone="UTC",
            custom_reports=[],
            **kwargs,
            **pinned,
        )
        info = pipeline.run(source, loader_file_format="parquet")
    assert not info.has_failed_jobs, info
    return {"seconds": round(time.perf_counter() - started, 1), "load_id": info.loads_ids[-1]}


def dbt_build(duckdb_path: Path, work_dir: Path, phase: str, *extra: str) -> Dict[str, Any]:
    """One ``dbt build`` in its own process: wall time, model times, peak RSS, CPU, load.

    Every build of one DuckDB file shares ``work_dir/target``, as a scheduled project does
    (dbt's partial parsing reuses the previous run's manifest); ``run_results.json`` is kept
    per phase.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    peak_file = work_dir / f"{phase}_peak_rss_kb"
    command = [
        sys.executable,
        "-c",
        DBT_LAUNCHER,
        str(peak_file),
        "--no-use-colors",
        "build",
        *extra,
        "--project-dir",
        str(DBT_DIR),
        "--profiles-dir",
        str(DBT_DIR),
        "--target-path",
        str(work_dir / "target"),
        "--log-path",
        str(work_dir / "logs"),
        "--vars",
        json.dumps({"close_strict_invariants": True}),
    ]
    env = {**os.environ, "CLOSE_DUCKDB_PATH": str(duckdb_path), "DO_NOT_TRACK": "1"}
    load_before = loadavg()
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=work_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output, _ = process.communicate()
    wall = time.perf_counter() - started
    usage = rusage_tracker.delta()  # CPU seconds of dbt (children reaped since the last)
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"dbt build failed ({process.returncode}):\n{text[-4000:]}")
    run_results = work_dir / "target" / "run_results.json"
    shutil.copy(run_results, work_dir / f"{phase}_run_results.json")
    results = json.loads(run_results.read_text())["results"]
    models = {
        r["unique_id"].split(".")[-1]: r["execution_time"]
        for r in results
        if r["unique_id"].startswith("model.")
    }
    tests = sum(r["execution_time"] for r in results if r["unique_id"].startswith("test."))
    not_passed = [
        r["unique_id"]
        for r in results
        if r["status"] not in ("success", "pass") and not r["unique_id"].startswith("exposure.")
    ]
    assert not not_passed, not_passed
    sql = sql_seconds(work_dir / "logs" / "dbt.log")
    return {
        "wall_s": round(wall, 2),
        "model_s": round(sum(models.values()), 2),
        "incremental_marts_s": round(sum(models[m] for m in INCREMENTAL_MARTS), 2),
        "tests_s": round(tests, 2),
        "model_sql_s": sql["model"],
        "test_sql_s": sql["test"],
        "peak_rss_mib": round(int(peak_file.read_text()) / 1024, 1),
        "cpu_s": usage,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "slowest_models": dict(sorted(models.items(), key=lambda kv: -kv[1])[:6]),
        "nodes": len(results),
    }


def sql_seconds(dbt_log: Path) -> Dict[str, float]:
    """Seconds the warehouse spent on the statements of the models and of the tests (unit tests
    included) in the last run written to ``dbt_log`` (dbt's debug log: each statement's "SQL
    status ... in N seconds" after the "On <node>:" line of the same thread). The rest of a node's
    execution time is dbt's own: compiling, rendering, caching, logging."""
    text = dbt_log.read_text(errors="replace")
    last_run = text.rfind("Running with dbt=")
    totals = {"model": 0.0, "test": 0.0}
    kinds: Dict[str, str | None] = {}  # thread → what its statements belong to
    for line in text[last_run:].splitlines():
        thread = _LOG_THREAD.search(line[line.find("]") + 1 :])
        if not thread:
            continue
        node = _LOG_NODE.search(line)
        if node:  # the thread's next statements are this node's (or dbt's own: no kind)
            kinds[thread.group(1)] = node.group(1) and (
                "model" if node.group(1) == "model" else "test"
            )
            continue
        seconds = _LOG_SQL_SECONDS.search(line)
        kind = kinds.get(thread.group(1))
        if seconds and kind:
            totals[kind] += float(seconds.group(1))
    return {name: round(value, 2) for name, value in totals.items()}


class _RusageTracker:
    """CPU seconds of the children reaped since the last call (RUSAGE_CHILDREN deltas)."""

    def __init__(self) -> None:
        import resource

        self._resource = resource
        self._last = self._now()

    def _now(self) -> float:
        usage = self._resource.getrusage(self._resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def delta(self) -> float:
        now = self._now()
        spent, self._last = now - self._last, now
        return round(spent, 1)


rusage_tracker = _RusageTracker()


def late_edits(org: Any, anchor: date) -> int:
    """Close's recent past changes (issue 11): activity, replies, status changes, a win."""
    users = [user.id for user in org.users]
    edits = 0
    for back in range(1, 26, 3):  # inside a 28-day refresh window
        day = datetime.combine(anchor - timedelta(days=back), datetime.min.time(), UTC)
        user = users[back % len(users)]
        org.add_call(user, day.replace(hour=10), duration=240)
        org.add_email(user, day.replace(hour=11), replied_at=day.replace(hour=17))
        org.add_lead_status_change(org.lead_id(back), day.replace(hour=12), org.lead_statuses[2].id)
        edits += 3
    return edits


def compare_with_full_refresh(incremental: Path, full: Path) -> Dict[str, Any]:
    """Rows of every mart only in one of the two files (floats rounded to 9 decimals)."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"attach '{incremental}' as inc (read_only)")
    con.execute(f"attach '{full}' as ful (read_only)")
    marts = [
        name
        for (name,) in con.execute(
            "select table_name from information_schema.tables"
            " where table_catalog = 'inc' and table_schema = 'close_marts' order by 1"
        ).fetchall()
    ]
    differences: Dict[str, Any] = {}
    for mart in marts:
        columns = con.execute(
            "select column_name, data_type from information_schema.columns"
            " where table_catalog = 'inc' and table_schema = 'close_marts' and table_name = ?"
            " order by ordinal_position",
            [mart],
        ).fetchall()
        select = ", ".join(
            f'round("{c}", 9)' if t in ("DOUBLE", "FLOAT") else f'"{c}"' for c, t in columns
        )
        rows = {}
        for a, b in (("inc", "ful"), ("ful", "inc")):
            [(count,)] = con.execute(
                f"select count(*) from (select {select} from {a}.close_marts.{mart}"
                f" except all select {select} from {b}.close_marts.{mart})"
            ).fetchall()
            rows[f"only_{a}"] = count
        [(total,)] = con.execute(f"select count(*) from inc.close_marts.{mart}").fetchall()
        differences[mart] = {"rows": total, **rows}
    con.close()
    return {
        "marts": len(marts),
        "identical": all(d["only_inc"] == 0 and d["only_ful"] == 0 for d in differences.values()),
        "per_mart": differences,
    }


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small org, 120 days")
    parser.add_argument("--scale", choices=("small", "medium", "large"))
    parser.add_argument("--days", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rerun-lookback", type=int, default=28)
    parser.add_argument("--no-verify", action="store_true", help="skip the full-refresh check")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    parser.add_argument(
        "--threads",
        type=int,
        help="dbt threads (CLOSE_DBT_THREADS) of every build; results go to "
        "dbt_incremental-threadsN[-quick].json. Default: the profile's",
    )
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["CLOSE_DBT_THREADS"] = str(args.threads)
    scale = args.scale or ("small" if args.quick else "large")
    days = args.days or (120 if args.quick else 730)

    os.chdir(ROOT)
    from close_reports.simulator import CloseSimulator, generate_org

    anchor = datetime.now(UTC).date() - timedelta(days=2)  # the rerun's new day is history
    first_today, rerun_today = anchor, anchor + timedelta(days=1)
    work = Path(tempfile.mkdtemp(prefix="dbt_incremental_"))
    os.environ["DLT_DATA_DIR"] = str(work / "dlt_data")
    duckdb_path = work / "close.duckdb"
    print(f"{scale} org, {days} days ending {anchor - timedelta(days=1)}; work dir {work}")
    print(f"load average at start: {loadavg()} on {os.cpu_count()} cores")

    started = time.perf_counter()
    org = generate_org(seed=args.seed, scale=scale, anchor_date=anchor)
    simulator = CloseSimulator(org)
    org_s = round(time.perf_counter() - started, 1)
    pipeline = duckdb_pipeline(work, "close", duckdb_path)
    first_load = load(
        pipeline,
        simulator,
        first_today,
        start_date=(first_today - timedelta(days=days)).isoformat(),
    )
    print(f"first load: {first_load['seconds']} s")
    first = dbt_build(duckdb_path, work / "dbt", "first")
    print(f"first dbt build: {first['wall_s']} s, models {first['model_s']} s")

    edits = late_edits(org, anchor)
    rerun_load = load(pipeline, simulator, rerun_today, lookback_days=args.rerun_lookback)
    print(f"rerun load: {rerun_load['seconds']} s ({edits} late edits)")
    rerun = dbt_build(duckdb_path, work / "dbt", "rerun")
    print(f"rerun dbt build: {rerun['wall_s']} s, models {rerun['model_s']} s")

    import duckdb

    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        raw_rows = {
            table: con.execute(f"select count(*) from close_raw.{table}").fetchall()[0][0]
            for table in ("activity_by_user", "funnel_stages", "lead_status_overview")
        }
        mart_rows = {
            mart: con.execute(f"select count(*) from close_marts.{mart}").fetchall()[0][0]
            for mart in INCREMENTAL_MARTS
        }
        rebuilt = con.execute(
            "select count(*) from close_marts.fct_activity_metrics_daily where _dlt_load_id = ?",
            [rerun_load["load_id"]],
        ).fetchall()[0][0]

    verification: Dict[str, Any] = {"skipped": True}
    full: Dict[str, Any] = {}
    if not args.no_verify:
        full_dir = work / "full_refresh"
        full_dir.mkdir()
        full_path = full_dir / "close.duckdb"
        shutil.copy(duckdb_path, full_path)
        full = dbt_build(full_path, full_dir, "full_refresh", "--full-refresh")
        verification = compare_with_full_refresh(duckdb_path, full_path)
        print(
            f"full refresh of the rerun: {full['wall_s']} s; identical: {verification['identical']}"
        )

    ratios = {
        "model_time_ratio": round(rerun["model_s"] / first["model_s"], 3),
        "incremental_marts_ratio": round(
            rerun["incremental_marts_s"] / first["incremental_marts_s"], 3
        ),
        "build_wall_ratio": round(rerun["wall_s"] / first["wall_s"], 3),
    }
    peak = max(first["peak_rss_mib"], rerun["peak_rss_mib"])
    met = {
        "model_time_ratio": ratios["model_time_ratio"] <= TARGETS["model_time_ratio"],
        "build_wall_ratio": ratios["build_wall_ratio"] <= TARGETS["build_wall_ratio"],
        "peak_rss_mib": peak <= TARGETS["peak_rss_mib"],
    }
    print()
    print(
        fmt_table(
            [
                ["build", "wall s", "model s", "model SQL s", "incr. marts s", "tests s",
                 "test SQL s", "peak RSS MiB", "dbt CPU s", "load avg before/after"],
                *[
                    [name, b["wall_s"], b["model_s"], b["model_sql_s"], b["incremental_marts_s"],
                     b["tests_s"], b["test_sql_s"], b["peak_rss_mib"], b["cpu_s"],
                     f"{b['loadavg_before'][0]} / {b['loadavg_after'][0]}"]
                    for name, b in (("first", first), ("rerun", rerun), ("full refresh", full))
                    if b
                ],
            ]
        )
    )  # fmt: skip
    print(
        f"\nrerun / first: model time {ratios['model_time_ratio']:.1%} (target ≤ 20 %), "
        f"whole build {ratios['build_wall_ratio']:.1%} (target ≤ 50 %); "
        f"peak dbt RSS {peak:.0f} MiB (target ≤ 1536)"
    )
    details = {
        "settings": {
            "scale": scale,
            "seed": args.seed,
            "days": days,
            "anchor": anchor.isoformat(),
            "rerun_lookback_days": args.rerun_lookback,
            "late_edits": edits,
            "quick": args.quick,
            "dbt_threads": os.environ.get("CLOSE_DBT_THREADS", "the profile's default"),
        },
        "machine": {**machine(), "loadavg_at_end": loadavg()},
        "org_generation_s": org_s,
        "loads": {"first": first_load, "rerun": rerun_load},
        "raw_rows": raw_rows,
        "mart_rows": mart_rows,
        "fct_activity_metrics_daily_rows_rebuilt": rebuilt,
        "first_build": first,
        "rerun_build": rerun,
        "full_refresh_build": full,
        "ratios": ratios,
        "peak_rss_mib": peak,
        "targets": TARGETS,
        "targets_met": met,
        "verification": verification,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        **ratios,
        "peak_rss_mib": peak,
        "first_model_s": first["model_s"],
        "rerun_model_s": rerun["model_s"],
        "first_wall_s": first["wall_s"],
        "rerun_wall_s": rerun["wall_s"],
        "identical_to_full_refresh": verification.get("identical"),
        "targets_met": met,
    }
    name = f"dbt_incremental-threads{args.threads}" if args.threads else "dbt_incremental"
    report_result(name, args.quick, not args.no_write, details, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
