"""Requests per daily run with the default refresh windows, for the demo org and a large one.

A first load of ``--history`` days, then the next morning's incremental run (the simulator's
clock moved one day): the requests of that second run per report, from the run ledger, beside
what a 3-day lookback for every report would cost. Prints the figures and a JSON line; writes
``bench/results/daily_run_cost.json``. Not a timed test: the figure is a count.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Dict

from _common import (
    BENCH_CUSTOM_REPORTS,
    duckdb_pipeline,
    machine,
    report_result,
    use_project_config,
)

from close_reports.simulator import CloseSimulator, generate_org
from close_reports.source import RunLog, close_source
from close_reports.source.settings import REPORT_TABLES

KEY = "demo"


def daily_cost(
    scale: str, seed: int, history: int, refresh: Dict[str, int] | None
) -> Dict[str, Any]:
    """Requests of the run the morning after a first load, per report and in all."""
    anchor = date.today() - timedelta(days=1)
    org = generate_org(seed, scale, anchor, horizon_days=2)
    today = anchor + timedelta(days=1)
    simulator = CloseSimulator({KEY: org}, now=datetime.combine(today, time(6), timezone.utc))
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = duckdb_pipeline(Path(tmp), "close")
        kwargs: Dict[str, Any] = {
            "api_key": KEY,
            "base_url": "http://close-simulator.local/api/v1",
            "transport": simulator.transport(),
            "custom_reports": BENCH_CUSTOM_REPORTS,
            "start_date": (today - timedelta(days=history)).isoformat(),
            "refresh_days": refresh,
        }
        pipeline.run(close_source(**kwargs, today=today), loader_file_format="parquet")
        tomorrow = today + timedelta(days=1)
        simulator.advance_to(datetime.combine(tomorrow, time(6), timezone.utc))
        log = RunLog()
        pipeline.run(close_source(**kwargs, today=tomorrow, run_log=log),
                     loader_file_format="parquet")  # fmt: skip
    per_report: Dict[str, int] = {}
    for entry in log.entries:
        name = entry.report.split(":")[0]
        per_report[name] = per_report.get(name, 0) + entry.stats.requests
    return {"requests": log.totals()["requests"], "per_report": per_report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=90, help="days of the first load")
    parser.add_argument("--quick", action="store_true", help="the demo org only")
    args = parser.parse_args()
    use_project_config()
    orgs = [("demo (medium, seed 7)", "medium", 7)]
    if not args.quick:
        orgs.append(("large (200 users)", "large", 1))
    lookback_only = {table: 3 for table in REPORT_TABLES}
    results = []
    for label, scale, seed in orgs:
        defaults = daily_cost(scale, seed, args.history, None)
        short = daily_cost(scale, seed, args.history, lookback_only)
        results.append({"org": label, "defaults": defaults, "lookback_3": short,
                        "ratio": defaults["requests"] / max(1, short["requests"])})  # fmt: skip
        print(f"{label}: {defaults['requests']} requests per daily run with the default "
              f"refresh windows ({short['requests']} with a 3-day lookback only; "
              f"x{results[-1]['ratio']:.1f})")  # fmt: skip
        for report, count in sorted(defaults["per_report"].items()):
            print(f"    {report:<32} {count:>5}  (3-day: {short['per_report'].get(report, 0)})")
    details = {"machine": machine(), "history_days": args.history, "results": results}
    summary = {r["org"]: r["defaults"]["requests"] for r in results}
    report_result("daily_run_cost", args.quick, True, details, summary)


if __name__ == "__main__":
    main()
