"""Many orgs at once: one org vs four, each key at its own rate limit, the same days.

Starts the embedded Close as a real HTTP server serving four distinct organizations (``python
-m close_reports.simulator --orgs 4 --rate-limit R --latency-ms L``; Close limits per key),
then extracts D days of every report and dimension with the project's source: once with one
key, once with all four. Prints requests, 429s and extract wall time per run, the lower bound
of the four-org run (requests of its slowest org ÷ R: the keys' limits are independent), and
the ratios ``wall(4) / wall(1)`` (target ≤ 1.3) and ``wall(4) / lower bound``. The last line is
one JSON object, also written to ``bench/results/multi_org[-quick].json``.

Usage: ``python bench/multi_org.py [--quick] [--orgs 4] [--days 14] [--rate-limit 10]
[--latency-ms 150] [--scale small]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Dict, List

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

DEFAULTS = {"orgs": 4, "days": 14, "rate_limit": 10.0, "latency_ms": 150.0, "scale": "small"}
QUICK = {"days": 7}


def extract(url: str, keys: List[str], start: str, end: str) -> Dict[str, Any]:
    """One extract of every resource for ``keys``; wall time and requests per org."""
    from close_reports.source import RunLog, close_source

    log = RunLog()
    source = close_source(
        api_key=None,
        api_keys=keys,
        base_url=url,
        start_date=start,
        end_date=end,
        timezone="UTC",
        custom_reports=BENCH_CUSTOM_REPORTS,
        run_log=log,
    )
    with tempfile.TemporaryDirectory(prefix="bench-orgs-") as tmp:
        pipeline = duckdb_pipeline(Path(tmp), "bench_orgs")
        started = time.perf_counter()
        pipeline.extract(source, loader_file_format="parquet")
        wall = time.perf_counter() - started
    per_org: Dict[str, int] = {}
    for entry in log.entries:
        per_org[entry.org_id] = per_org.get(entry.org_id, 0) + entry.stats.requests
    totals = log.totals()
    assert not log.failed, [e.error for e in log.failed]
    return {"wall_s": wall, "requests": totals["requests"], "rate_limited": totals["rate_limited"],
            "requests_per_org": per_org}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK}")
    for name, value in DEFAULTS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=None)
    args = parser.parse_args()
    settings = {**DEFAULTS, **(QUICK if args.quick else {})}
    settings.update({k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None})
    use_project_config()
    end_day = datetime.now(UTC).date()
    start, end = (end_day - timedelta(days=settings["days"])).isoformat(), end_day.isoformat()
    command = ["--orgs", str(settings["orgs"]), "--scale", settings["scale"],
               "--rate-limit", str(settings["rate_limit"]),
               "--latency-ms", str(settings["latency_ms"])]  # fmt: skip
    keys = ["demo"] + [f"demo-{n}" for n in range(2, settings["orgs"] + 1)]
    runs = {}
    for label, chosen in (("one org", keys[:1]), (f"{len(keys)} orgs", keys)):
        with SimulatorProcess(command) as server:  # a full token bucket for each run
            runs[label] = extract(server.url, chosen, start, end)
    one, many = runs["one org"], runs[f"{len(keys)} orgs"]
    bound = max(many["requests_per_org"].values()) / settings["rate_limit"]
    ratio = many["wall_s"] / one["wall_s"]
    print(fmt_table([["run", "requests", "429s", "extract s", "slowest org's requests ÷ R"]]
                    + [[k, r["requests"], r["rate_limited"], f"{r['wall_s']:.1f}",
                        f"{max(r['requests_per_org'].values()) / settings['rate_limit']:.1f}"]
                       for k, r in runs.items()]))  # fmt: skip
    print(f"wall({len(keys)} orgs) / wall(1 org) = {ratio:.2f} (target <= 1.3); "
          f"wall({len(keys)} orgs) / lower bound = {many['wall_s'] / bound:.2f}")  # fmt: skip
    result = {
        "ratio_many_vs_one": round(ratio, 3),
        "ratio_many_vs_bound": round(many["wall_s"] / bound, 3),
        "one_wall_s": round(one["wall_s"], 2),
        "many_wall_s": round(many["wall_s"], 2),
        "lower_bound_s": round(bound, 2),
    }
    details = {"machine": machine(), "dlt": dlt_settings(), "settings": settings, "runs": runs,
               "result": result}  # fmt: skip
    report_result("multi_org", args.quick, True, details, result)


if __name__ == "__main__":
    main()
