"""close-pipeline: load Close CRM's reporting API with dlt, then build the dbt marts.

Commands:
    run             load, then dbt build
    load            extract + load the raw tables only
    transform       dbt build on what is loaded
    serve-demo-api  serve the embedded simulated Close org over HTTP
    dashboard       write one self-contained HTML dashboard of the marts
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from close_reports import destinations
from close_reports.failures import (
    DbtBuildError,
    PartialLoadError,
    UsageError,
    check_config_files,
    explain,
    failed_reports,
    interrupt_message,
    interrupted,
)
from close_reports.loading import duckdb_kept_open, load_with_ledger
from close_reports.progress import Progress, dbt_progress
from close_reports.simulator import defaults as simulator_defaults
from close_reports.summary import (
    RunSummary,
    drift_warnings,
    mart_row_counts,
    table_row_counts,
)


def dbt_project_dir() -> Path:
    """The dbt project: shipped inside the installed package, or ``dbt/`` of a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "dbt_project", here.parent / "dbt"):
        if (candidate / "dbt_project.yml").is_file():
            return candidate
    raise FileNotFoundError(f"No dbt project next to {here} (looked for dbt_project/ and ../dbt/)")


DBT_DIR = dbt_project_dir()
DEFAULT_DUCKDB = destinations.DEFAULT_DUCKDB
DEMO_DAYS = 90
DEMO_SCALE = simulator_defaults.SCALE
DEMO_SEED = simulator_defaults.SEED
DEMO_KEY = "demo"

EPILOG = """\
examples:
  close-pipeline run --demo                          # the embedded demo org, no key needed
  SOURCES__CLOSE__API_KEY=api_xxx close-pipeline run # your Close org, incremental
  close-pipeline load --start 2026-01-01 --end 2026-02-01 --resources activity_by_user
  close-pipeline load --destination postgres --dataset close_raw
  close-pipeline transform                           # dbt build on close.duckdb
  close-pipeline serve-demo-api --port 8765 --scale small
"""


# ---------------------------------------------------------------- argument parsing


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo",
        action="store_true",
        help="use the embedded simulated Close org in-process (no key; 90 days ending "
        "yesterday, medium scale)",
    )
    parser.add_argument(
        "--start",
        metavar="YYYY-MM-DD",
        help="first day to load. Alone: where a first run starts (default 90 days ago). "
        "With --end: a backfill that leaves incremental state alone",
    )
    parser.add_argument(
        "--end",
        metavar="YYYY-MM-DD",
        help="exclusive last day of a backfill, e.g. --start 2026-01-01 --end 2026-02-01 "
        "loads January",
    )
    parser.add_argument(
        "--resources",
        metavar="A,B,C",
        help="comma-separated subset of tables to load, e.g. activity_by_user,users",
    )
    _add_destination_options(parser)
    parser.add_argument(
        "--table-format",
        choices=destinations.TABLE_FORMATS,
        help="with --destination filesystem: write Delta or Iceberg tables, which can merge "
        "(plain files cannot, so report tables are refused without it)",
    )
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="drop this source's tables and state first, then load from scratch",
    )
    parser.add_argument(
        "--refresh-days",
        type=int,
        metavar="N",
        help="re-read at least the last N days of every report in this run (a deep refresh, "
        "e.g. weekly); state never moves backwards",
    )
    parser.add_argument(
        "--fail-fast",
        action="store_true",
        help="fail the whole run when Close refuses one report (default: skip that report, "
        "load the others, exit 3)",
    )


def _add_destination_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--destination",
        default="duckdb",
        help="any dlt destination (duckdb, postgres, motherduck, bigquery, ...); credentials "
        "from .dlt/secrets.toml or DESTINATION__<NAME>__CREDENTIALS (default: duckdb)",
    )
    parser.add_argument(
        "--dataset", default="close_raw", help="raw dataset / schema name (default: close_raw)"
    )
    parser.add_argument(
        "--duckdb-path",
        default=None,
        help="DuckDB file for --destination duckdb (default: dlt's setting "
        "DESTINATION__DUCKDB__CREDENTIALS / [destination.duckdb] credentials, else "
        f"{DEFAULT_DUCKDB} in the working directory)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser with its four commands."""
    parser = argparse.ArgumentParser(
        prog="close-pipeline",
        description="Load Close CRM's reporting API into a warehouse with dlt and model it "
        "with dbt.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary, description, epilog, add_options in (
        (
            "run",
            "load, then dbt build",
            "Load the raw report tables, then build and test the dbt marts.",
            EPILOG,
            _add_load_options,
        ),
        (
            "load",
            "extract + load the raw tables only",
            "Extract Close's reports and load the raw tables (no dbt).",
            EPILOG,
            _add_load_options,
        ),
        (
            "transform",
            "dbt build on what is loaded",
            "Build and test the dbt project in dbt/ on the loaded raw tables.",
            "example:\n  close-pipeline transform --duckdb-path close.duckdb\n",
            _add_destination_options,
        ),
    ):
        add_options(
            commands.add_parser(
                name,
                help=summary,
                description=description,
                epilog=epilog,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    commands.choices["transform"].add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the incremental marts from scratch instead of only the report windows "
        "loaded since the last build (same rows, slower)",
    )
    for name in ("run", "transform"):
        commands.choices[name].add_argument(
            "--fail-on-stale",
            action="store_true",
            help="after the build, fail (exit 1) when `dbt source freshness` finds a raw table "
            "older than its threshold (warn after 26 h, error after 50 h: a daily schedule); "
            "without it, stale tables are only named in the summary",
        )
    serve = commands.add_parser(
        "serve-demo-api",
        help="serve the simulated Close org over HTTP",
        description="Serve the embedded simulated Close API on a local port (key: demo).",
        epilog="example:\n"
        "  close-pipeline serve-demo-api --port 8765 --scale small --rate-limit 5\n"
        "  then: SOURCES__CLOSE__BASE_URL=http://127.0.0.1:8765/api/v1 "
        "SOURCES__CLOSE__API_KEY=demo close-pipeline run\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind")
    serve.add_argument("--seed", type=int, default=DEMO_SEED, help="organization seed")
    serve.add_argument(
        "--scale", choices=("small", "medium", "large"), default=DEMO_SCALE, help="org size"
    )
    serve.add_argument("--anchor-date", help="last day of history, YYYY-MM-DD (default: yesterday)")
    serve.add_argument("--rate-limit", type=float, help="requests per second per key (429 above)")
    serve.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    serve.add_argument("--fault-rate", type=float, default=0.0, help="fraction of failed requests")
    serve.add_argument("--orgs", type=int, default=1, help="distinct orgs (keys demo, demo-2, ...)")
    serve.add_argument(
        "--refuse",
        action="append",
        default=[],
        metavar="PREFIX=STATUS[:MESSAGE]",
        help="answer requests under PREFIX with STATUS, e.g. /report/funnel/=403 (repeatable)",
    )
    from close_reports.dashboard import add_arguments as add_dashboard_arguments

    add_dashboard_arguments(
        commands.add_parser(
            "dashboard",
            help="write an HTML dashboard of the marts",
            description="Write one self-contained HTML file (charts, scripts and data inline; "
            "opens offline) from the marts in the DuckDB file.",
            epilog="example:\n  close-pipeline dashboard --out close-dashboard.html "
            "--duckdb-path close.duckdb\n",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    from close_reports.check import EPILOG as CHECK_EPILOG
    from close_reports.check import add_arguments as add_check_arguments

    add_check_arguments(
        commands.add_parser(
            "check",
            help="probe every endpoint the loader reads once; name what differs",
            description="Call each Close endpoint the loader uses once, with the smallest "
            "window, and check each answer against the shapes the loader relies on (its "
            "reshapers and the declared column types). One line per endpoint. Reads the same "
            "configuration as load.",
            epilog=CHECK_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    return parser


# ---------------------------------------------------------------- loading


def _resources(option: Optional[str]) -> List[str]:
    from close_reports.source import RESOURCE_NAMES

    if not option:
        return []
    names = [n.strip() for n in option.split(",") if n.strip()]
    unknown = [n for n in names if n not in RESOURCE_NAMES]
    if unknown:
        raise UsageError(
            f"Unknown resource(s) in --resources: {', '.join(unknown)}. "
            f"Valid names: {', '.join(RESOURCE_NAMES)}."
        )
    return names


def _check_dates(args: argparse.Namespace) -> None:
    from close_reports.source.windows import check_order, parse_day

    try:
        start = parse_day(args.start, "--start")
        end = parse_day(args.end, "--end")
        check_order(start, end, "--start")
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if end and not start:
        raise UsageError("--end needs --start: a backfill is the range [--start, --end).")


def _destination(args: argparse.Namespace) -> Any:
    """The dlt destination for the options (``destinations.destination_factory``)."""
    return destinations.destination_factory(args)


def _demo_source_kwargs() -> Dict[str, Any]:
    import dlt

    from close_reports.simulator import CloseSimulator, generate_org
    from close_reports.source.settings import EXAMPLE_CUSTOM_REPORTS
    from close_reports.source.windows import local_today

    today = local_today("UTC")
    org = generate_org(seed=DEMO_SEED, scale=DEMO_SCALE)
    simulator = CloseSimulator({DEMO_KEY: org})
    configured: Any = dlt.config.get("sources.close.custom_reports")
    return {
        "custom_reports": configured or [dict(r) for r in EXAMPLE_CUSTOM_REPORTS],
        "api_key": DEMO_KEY,
        "api_keys": [],
        "base_url": "http://close-simulator.local/api/v1",
        "transport": simulator.transport(),
        "timezone": "UTC",
        "start_date": (today.fromordinal(today.toordinal() - DEMO_DAYS)).isoformat(),
    }


def load(args: argparse.Namespace, summary: RunSummary) -> Any:
    """Extracts and loads the raw tables; returns the dlt pipeline."""
    from close_reports.source import RunLog, close_source

    _check_dates(args)
    names = _resources(args.resources)
    destinations.check_destination(args)
    run_log = RunLog()
    progress = Progress()
    stop = threading.Event()
    kwargs: Dict[str, Any] = {
        "progress": progress,
        "run_log": run_log,
        "fail_fast": args.fail_fast,
        "force_refresh_days": args.refresh_days,
        "cancel": stop,
    }
    if args.demo:
        kwargs.update(_demo_source_kwargs())
    if args.start:
        kwargs["start_date"] = args.start
    if args.end:
        kwargs["end_date"] = args.end
    pipeline = destinations.make_pipeline(args)
    try:
        source = close_source(**kwargs)
        if names:
            source = source.with_resources(*names)
        destinations.apply_destination_hints(source, args, pipeline.destination)
        summary.phases.update(
            load_with_ledger(pipeline, source, run_log, **destinations.run_options(args))
        )
    except BaseException as exc:
        if interrupted(exc) is not None:
            stop.set()  # every worker's requests stop at once
        raise
    finally:
        progress.close()
        summary.requests = run_log.totals()
        summary.warnings += run_log.warnings
    with duckdb_kept_open(pipeline):  # the counts read under the load's DuckDB settings
        summary.table_rows = table_row_counts(pipeline)
    summary.warnings += drift_warnings(pipeline)
    summary.failed_reports = failed_reports(run_log)
    if summary.failed_reports and not run_log.loaded:
        raise PartialLoadError(summary.failed_reports, loaded=False)
    return pipeline


# ---------------------------------------------------------------- dbt


def transform(args: argparse.Namespace, summary: RunSummary, pipeline: Any = None) -> None:
    """Builds and tests the dbt project through dlt's dbt runner, in this environment."""
    import dlt
    from dlt.common.runners import Venv
    from dlt.helpers.dbt import create_runner
    from dlt.helpers.dbt.exceptions import DBTProcessingError

    from close_reports import build_checks

    if pipeline is None:
        pipeline = dlt.pipeline(
            pipeline_name="close", destination=_destination(args), dataset_name=args.dataset
        )
    if args.destination == "duckdb":
        duckdb_path = Path(args.duckdb_path).resolve()
        if not duckdb_path.exists():
            raise UsageError(
                f"No DuckDB file at {duckdb_path}: run `close-pipeline load` first, or point "
                "--duckdb-path at your file."
            )
        os.environ["CLOSE_DUCKDB_PATH"] = str(duckdb_path)
        summary.duckdb_path = str(duckdb_path)
    target = "duckdb" if args.destination == "duckdb" else args.destination
    os.environ.setdefault("VIRTUAL_ENV", sys.prefix)
    os.environ["DBT_TARGET"] = target
    started = time.monotonic()
    runner = create_runner(
        Venv.restore_current(),
        None,  # type: ignore[arg-type]  # credentials come from dbt/profiles.yml
        working_dir=str(Path(pipeline.working_dir) / "dbt"),
        package_location=str(DBT_DIR),
        package_profiles_dir=str(DBT_DIR),
        package_profile_name="close_reports",
    )
    # the simulator's numbers are consistent by construction: a broken invariant is our bug
    package_vars = build_checks.package_vars(args.dataset, bool(getattr(args, "demo", False)))
    try:
        # incremental marts: --full-refresh rebuilds them from scratch (`run --full-refresh`
        # reloads the raw tables, so the marts must not keep windows of the old load)
        full_refresh = bool(getattr(args, "full_refresh", False))
        run_params = ("--fail-fast", "--full-refresh") if full_refresh else ("--fail-fast",)
        built = list(runner.run_all(run_params=run_params, additional_vars=package_vars))
        built += list(runner.test(additional_vars=package_vars) or [])
        summary.warnings += build_checks.dbt_warnings(built)
    except DBTProcessingError as exc:
        results = exc.run_results or []
        failed = [f"{r.model_name} ({r.status})" for r in results if r.status in ("error", "fail")]
        skipped = sum(1 for r in results if r.status == "skipped")
        raise DbtBuildError(
            f"dbt {exc.command} failed: {', '.join(failed) or exc}"
            + (f"; {skipped} dependent nodes skipped" if skipped else "")
            + ". Rerun with `dbt build --project-dir dbt --profiles-dir dbt` for details."
        ) from exc
    finally:
        summary.phases["dbt"] = time.monotonic() - started
    if summary.duckdb_path:
        summary.mart_rows = mart_row_counts(summary.duckdb_path)
    started = time.monotonic()
    try:
        build_checks.check_freshness(
            summary,
            DBT_DIR,
            target,
            package_vars,
            Path(pipeline.working_dir) / "dbt_freshness",
            fail_on_stale=bool(getattr(args, "fail_on_stale", False)),
        )
    finally:
        summary.phases["freshness"] = time.monotonic() - started


# ---------------------------------------------------------------- commands


def serve_demo_api(args: argparse.Namespace) -> int:
    """Runs the simulator as an HTTP server until interrupted."""
    from close_reports.simulator.__main__ import main as simulator_main

    argv = ["--port", str(args.port), "--host", args.host, "--seed", str(args.seed)]
    argv += ["--scale", args.scale, "--latency-ms", str(args.latency_ms)]
    argv += ["--fault-rate", str(args.fault_rate)]
    if args.anchor_date:
        argv += ["--anchor-date", args.anchor_date]
    if args.rate_limit:
        argv += ["--rate-limit", str(args.rate_limit)]
    argv += ["--orgs", str(args.orgs)]
    for refusal in args.refuse:
        argv += ["--refuse", refusal]
    return int(simulator_main(argv) or 0)


def keep_dbt_files_out_of_the_package() -> None:
    """When the dbt project is the installed package's (not a checkout's ``dbt/``), dbt's
    ``target/``, ``logs/`` and ``dbt_packages/`` go to dlt's working dir of the pipeline, not into
    site-packages (which may be read-only, and is shared by every user of the install)."""
    if DBT_DIR.name != "dbt_project":
        return
    work = destinations.pipelines_dir() / destinations.PIPELINE_NAME / "dbt"
    os.environ.setdefault("DBT_TARGET_PATH", str(work / "target"))
    os.environ.setdefault("DBT_LOG_PATH", str(work / "logs"))
    os.environ.setdefault("DBT_PACKAGES_INSTALL_PATH", str(work / "dbt_packages"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``close-pipeline`` and ``python pipelines/close_pipeline.py``."""
    args = build_parser().parse_args(argv)
    if args.command == "serve-demo-api":
        return serve_demo_api(args)
    if args.command == "dashboard":
        import importlib.util

        if (
            importlib.util.find_spec("altair") is None
            or importlib.util.find_spec("vl_convert") is None
        ):
            print(
                "close-pipeline dashboard failed: it needs the dashboard extra: "
                "pip install 'close-reports[dashboard]'",
                file=sys.stderr,
            )
            return 2
        from close_reports.dashboard import command as dashboard_command

        return int(dashboard_command(args))
    if args.command == "check":
        from close_reports.check import command as check_command

        return int(check_command(args, _demo_source_kwargs))
    summary = RunSummary(dataset=args.dataset)
    step = "setup"
    try:
        check_config_files()
        if args.destination == "duckdb":
            # absolute, and resolved once: dlt's setting, else close.duckdb here
            args.duckdb_path = str(destinations.resolve_duckdb_path(args.duckdb_path))
            summary.duckdb_path = args.duckdb_path
        pipeline = None
        if args.command in ("run", "load"):
            step = "load"
            pipeline = load(args, summary)
        if args.command in ("run", "transform"):
            step = "dbt"
            duckdb_file = Path(args.duckdb_path or "")
            if args.command == "transform":
                destinations.check_dbt(args)
                if duckdb_file.is_file():
                    destinations.check_duckdb_file(duckdb_file)
            keep_dbt_files_out_of_the_package()
            with dbt_progress(destinations.dbt_target(args)):
                transform(args, summary, pipeline)
    except BaseException as exc:  # every failure ends with one actionable line
        if not isinstance(exc, Exception) and interrupted(exc) is None:
            raise  # SystemExit and the like
        signal_number = interrupted(exc)
        if signal_number is not None:
            print(
                f"\nclose-pipeline {args.command} interrupted: {interrupt_message(exc, step)}",
                file=sys.stderr,
            )
            return 128 + int(signal_number)
        message, status = explain(exc)
        message = " ".join(message.split())  # the last line says what failed, on one line
        print(f"close-pipeline {args.command} failed: {message}", file=sys.stderr)
        return int(status)
    for line in summary.lines():
        print(line)
    if summary.failed_reports:  # the rest loaded (and the marts were built on it)
        message, status = explain(PartialLoadError(summary.failed_reports, loaded=True))
        print(f"close-pipeline {args.command} failed: {message}", file=sys.stderr)
        return int(status)
    print(f"close-pipeline {args.command}: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
