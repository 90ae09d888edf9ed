"""A Dagster code location for a fleet of Close orgs (``pip install -e ".[dagster]"``).

Serve it with ``dagster dev -m close_reports.dagster_definitions`` (needs ``dagster-webserver``)
or ``dagster code-server start -m close_reports.dagster_definitions`` in a deployment.

What it defines:

- ``close_raw_tables``: one multi-asset for the dlt source (dagster-dlt's translator: one asset
  per raw table, keys ``close/<table>`` as the dbt project names its sources, plus
  ``close/run_ledger``), **partitioned by org**: static partitions from
  ``[close_dagster] orgs`` (partition name -> the env var holding that org's API key), and a
  ``demo`` partition that reads the embedded simulator in-process, as ``close-pipeline run
  --demo`` does. A partition's run is ``load_with_ledger`` over ``close_source`` with that one
  key, into the one dlt pipeline ``close`` of the destination (its state is restored from the
  destination first, so any executor and machine can run any partition).
- ``close_marts``: the dbt project's models as assets (dagster-dbt, from a manifest that
  ``dbt parse`` writes at load time when missing or stale); its dbt tests are asset checks,
  the source tests on the raw assets.
- ``close_raw_freshness``: one asset check per raw table with a dbt source freshness: every org
  partition loaded within the source's ``warn_after`` / ``error_after`` (26 h / 50 h).
- Jobs ``close_load_job`` (partitioned), ``close_marts_job``, ``close_freshness_job``; the schedule
  ``close_daily`` (one run per org partition), the sensor ``close_marts_after_loads`` (one dbt
  build once the fleet's loads have settled) and the schedule ``close_freshness_hourly``.

Writers of one destination are serialized by the Dagster concurrency pool
``close_reports_warehouse`` (set its limit to 1): DuckDB allows one writing process, and the
pipeline's state is one document per destination (see docs/decisions.md, "Dagster").

Settings (dlt's providers: env vars ``CLOSE_DAGSTER__<NAME>`` override ``[close_dagster]`` in
``.dlt/config.toml``): ``orgs``, ``demo``, ``demo_scale``, ``demo_days``, ``demo_anchor_date``,
``destination``, ``duckdb_path``, ``dataset``, ``pipelines_dir``, ``dbt_target_path``, ``cron``,
``cron_timezone``, ``pool``. Everything else of the source (timezone, segments, refresh days,
Explorer queries) is read from ``[sources.close]`` as for the command line.
"""

import contextlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Tuple

import dagster as dg
import dlt
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from dagster_dlt import DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData

from close_reports.close_pipeline import (
    DEMO_DAYS,
    DEMO_KEY,
    DEMO_SCALE,
    DEMO_SEED,
    dbt_project_dir,
)
from close_reports.failures import PartialLoadError, explain, failed_reports
from close_reports.loading import load_with_ledger

CONFIG_SECTION = "close_dagster"
DEMO_PARTITION = "demo"
SOURCE_NAME = "close"
"""First part of every raw asset key: the dbt source name, so dbt's sources are these assets."""
LEDGER_TABLE = "run_ledger"
RAW_GROUP = "close_raw"
RAW_ASSETS = "close_raw_tables"
MARTS_ASSETS = "close_marts"
FRESHNESS_CHECKS = "close_raw_freshness"
RAW_JOB = "close_load_job"
MARTS_JOB = "close_marts_job"
FRESHNESS_JOB = "close_freshness_job"
DEFAULT_CRON = "30 5 * * *"
DEFAULT_POOL = "close_reports_warehouse"
PARTITION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENV_VAR_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
"""Upper case, as env var names are by convention: a Close key (``api_...``) never matches."""
PARSE_STAMP = "close_dagster_parse.json"
PENDING_RUN_STATUSES = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class FleetSettings:
    """What the code location is built from (``[close_dagster]``, env ``CLOSE_DAGSTER__*``).

    Attributes:
        orgs: Partition name -> name of the env var that holds that org's Close API key
            (the key itself never appears in config, logs or Dagster's storage).
        demo: Add the ``demo`` partition (the embedded simulator). Default: only when no org
            is configured, so a real fleet's marts never mix in the demo org.
        demo_scale: Simulated org size of the demo partition (``small``/``medium``/``large``).
        demo_days: Days the demo partition's first load reads.
        demo_anchor_date: Last day of the simulated history (default: yesterday); the demo
            partition then loads up to the day after it.
        destination: Any dlt destination name (credentials from dlt's usual config).
        duckdb_path: DuckDB file for ``destination = "duckdb"`` (made absolute at load time).
        dataset: Raw dataset (``close_raw``).
        pipelines_dir: Where the dlt pipeline's working files go (a cache: every run restores
            state from the destination). Default: ``<dlt data dir>/dagster/pipelines``.
        dbt_target_path: dbt's target directory (manifest, run results). Default:
            ``<dlt data dir>/dagster/dbt_target``.
        cron: When ``close_daily`` launches one load run per org.
        cron_timezone: Timezone of ``cron``.
        pool: Dagster concurrency pool of every step that writes the destination.
    """

    orgs: Mapping[str, str] = field(default_factory=dict)
    demo: Optional[bool] = None
    demo_scale: str = DEMO_SCALE
    demo_days: int = DEMO_DAYS
    demo_anchor_date: Optional[date] = None
    destination: str = "duckdb"
    duckdb_path: str = "close.duckdb"
    dataset: str = "close_raw"
    pipelines_dir: Optional[str] = None
    dbt_target_path: Optional[str] = None
    cron: str = DEFAULT_CRON
    cron_timezone: str = "UTC"
    pool: str = DEFAULT_POOL

    def __post_init__(self) -> None:
        for name, env_var in self.orgs.items():
            if name == DEMO_PARTITION or not PARTITION_NAME.match(str(name)):
                raise ValueError(
                    f"[{CONFIG_SECTION}] orgs: {name!r} is not a usable partition name: use "
                    "letters, digits, '_', '-' or '.', at most 64, and not 'demo' (reserved for "
                    "the embedded simulator)."
                )
            if not isinstance(env_var, str) or not ENV_VAR_NAME.match(env_var):
                raise ValueError(  # never echo the value: it may be a key pasted by mistake
                    f"[{CONFIG_SECTION}] orgs.{name} must be the NAME of the environment "
                    "variable (upper case) that holds this org's Close API key, e.g. "
                    "ACME_CLOSE_API_KEY, not the key itself."
                )
        if not self.partition_keys:
            raise ValueError(f"[{CONFIG_SECTION}] no org configured and demo = false.")

    @property
    def partition_keys(self) -> List[str]:
        """``demo`` (when enabled) then the configured orgs, in their configured order."""
        demo = not self.orgs if self.demo is None else self.demo
        return ([DEMO_PARTITION] if demo else []) + list(self.orgs)

    @classmethod
    def from_config(cls) -> "FleetSettings":
        """Reads ``[close_dagster]`` / ``CLOSE_DAGSTER__*`` with dlt's config providers."""
        values: Dict[str, Any] = {}
        for name, expected in (
            ("orgs", dict),
            ("demo", bool),
            ("demo_scale", str),
            ("demo_days", int),
            ("demo_anchor_date", str),
            ("destination", str),
            ("duckdb_path", str),
            ("dataset", str),
            ("pipelines_dir", str),
            ("dbt_target_path", str),
            ("cron", str),
            ("cron_timezone", str),
            ("pool", str),
        ):
            value = dlt.config.get(f"{CONFIG_SECTION}.{name}", expected)
            if value is not None:
                values[name] = value
        if "demo_anchor_date" in values:
            values["demo_anchor_date"] = date.fromisoformat(values["demo_anchor_date"])
        return cls(**values)

    def resolved_duckdb_path(self) -> str:
        return str(Path(self.duckdb_path).expanduser().resolve())

    def resolved_pipelines_dir(self) -> str:
        return self.pipelines_dir or _default_pipelines_dir()

    def resolved_dbt_target_path(self) -> Path:
        path = self.dbt_target_path or _dlt_data_dir() / "dagster" / "dbt_target"
        return Path(path).expanduser().resolve()

    @property
    def dbt_target(self) -> str:
        """The dbt/profiles.yml target of the destination (``duckdb``, ``postgres``, ...)."""
        return "duckdb" if self.destination == "duckdb" else self.destination

    @property
    def dbt_vars(self) -> Dict[str, Any]:
        return {"close_raw_schema": self.dataset}

    def dbt_env(self) -> Dict[str, str]:
        """Environment dbt/profiles.yml reads for this destination."""
        if self.destination != "duckdb":
            return {}
        return {"CLOSE_DUCKDB_PATH": self.resolved_duckdb_path()}


def _dlt_data_dir() -> Path:
    """dlt's data directory (``DLT_DATA_DIR``, else dlt's default for this user)."""
    return Path(dlt.current.run_context().data_dir)


def _default_pipelines_dir() -> str:
    return str(_dlt_data_dir() / "dagster" / "pipelines")


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` set in ``os.environ`` for the block (a dbt process started inside inherits
    them), then restored."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ---------------------------------------------------------------- the resource


class CloseFleet(dg.ConfigurableResource):
    """Where a partition's load reads from (its org's key) and writes to (one destination)."""

    orgs: Dict[str, str] = {}
    demo_scale: str = DEMO_SCALE
    demo_days: int = DEMO_DAYS
    demo_anchor_date: Optional[str] = None
    destination: str = "duckdb"
    duckdb_path: str = "close.duckdb"
    dataset: str = "close_raw"
    pipelines_dir: str = ""

    @classmethod
    def from_settings(cls, settings: FleetSettings) -> "CloseFleet":
        return cls(
            orgs=dict(settings.orgs),
            demo_scale=settings.demo_scale,
            demo_days=settings.demo_days,
            demo_anchor_date=(
                settings.demo_anchor_date.isoformat() if settings.demo_anchor_date else None
            ),
            destination=settings.destination,
            duckdb_path=settings.resolved_duckdb_path(),
            dataset=settings.dataset,
            pipelines_dir=settings.resolved_pipelines_dir(),
        )

    def pipeline(self) -> dlt.Pipeline:
        """The destination's dlt pipeline ``close`` (one per destination, shared by every org)."""
        if self.destination == "duckdb":
            destination: Any = dlt.destinations.duckdb(credentials=self.duckdb_path)
        else:
            from dlt.common.destination.reference import Destination

            destination = Destination.from_reference(self.destination)
        return dlt.pipeline(
            pipeline_name="close",
            pipelines_dir=self.pipelines_dir or _default_pipelines_dir(),
            destination=destination,
            dataset_name=self.dataset,
        )

    def source_kwargs(self, partition: str) -> Dict[str, Any]:
        """``close_source`` arguments of one org partition: its key only (never the
        ``SOURCES__CLOSE__API_KEYS`` list), or the embedded simulator for ``demo``.

        Raises:
            dagster.Failure: The partition is not configured, or its key's env var is unset.
        """
        if partition == DEMO_PARTITION:
            return self._demo_kwargs()
        env_var = self.orgs.get(partition)
        if env_var is None:
            raise dg.Failure(
                f"Partition {partition!r} is not in [{CONFIG_SECTION}] orgs "
                f"({', '.join(self.orgs) or 'none configured'})."
            )
        api_key = os.environ.get(env_var, "").strip()
        if not api_key:
            raise dg.Failure(
                f"Org {partition!r}: the environment variable {env_var} is not set; set it to "
                f"this org's Close API key where the run executes (see [{CONFIG_SECTION}] orgs)."
            )
        return {"api_key": api_key, "api_keys": []}

    def _demo_kwargs(self) -> Dict[str, Any]:
        from close_reports.simulator import CloseSimulator, generate_org
        from close_reports.source.settings import EXAMPLE_CUSTOM_REPORTS
        from close_reports.source.windows import local_today

        anchor = date.fromisoformat(self.demo_anchor_date) if self.demo_anchor_date else None
        today = anchor + timedelta(days=1) if anchor else local_today("UTC")
        org = generate_org(seed=DEMO_SEED, scale=self.demo_scale, anchor_date=anchor)
        configured: Any = dlt.config.get("sources.close.custom_reports")
        return {
            "api_key": DEMO_KEY,
            "api_keys": [],
            "base_url": "http://close-simulator.local/api/v1",
            "transport": CloseSimulator({DEMO_KEY: org}).transport(),
            "timezone": "UTC",
            "today": today,
            "start_date": (today - timedelta(days=self.demo_days)).isoformat(),
            "custom_reports": configured or [dict(r) for r in EXAMPLE_CUSTOM_REPORTS],
        }


# ---------------------------------------------------------------- raw tables (dlt)


class CloseDltTranslator(DagsterDltTranslator):
    """Raw table ``t`` is asset ``close/t`` (what dagster-dbt names dbt source ``close.t``)."""

    def __init__(self, settings: FleetSettings) -> None:
        self.settings = settings

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        from close_reports.source.settings import TABLES

        table = data.resource.name
        spec = super().get_asset_spec(data)
        columns, primary_key, disposition = TABLES[table]
        return spec.replace_attributes(
            key=dg.AssetKey([SOURCE_NAME, table]),
            deps=[],  # the status reports' shared parent resource is not a table
            group_name=RAW_GROUP,
            description=(
                f"Raw table {self.settings.dataset}.{table} of the Close source ({disposition} "
                f"on {', '.join(primary_key)}), one partition per org."
            ),
            kinds={"dlt", self.settings.destination},
            metadata={
                **spec.metadata,
                "dagster/table_name": f"{self.settings.dataset}.{table}",
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name, str(kind)) for name, kind in columns.items()]
                ),
            },
        )


def _definition_source() -> Any:
    """The source's resources, for their names: built against the embedded simulator, which
    answers the ``GET /me/`` the source makes when it is created (no network, no key)."""
    from close_reports.simulator import CloseSimulator, generate_org
    from close_reports.source import close_source

    org = generate_org(seed=DEMO_SEED, scale="small")
    return close_source(
        api_key=DEMO_KEY,
        api_keys=[],
        base_url="http://close-simulator.local/api/v1",
        transport=CloseSimulator({DEMO_KEY: org}).transport(),
        segments=[],
        custom_reports=[],
    )


def raw_asset_specs(settings: FleetSettings) -> List[dg.AssetSpec]:
    """One spec per table of the source (dagster-dlt's translator), plus the run ledger."""
    translator = CloseDltTranslator(settings)
    source = _definition_source()
    specs = [
        translator.get_asset_spec(DltResourceTranslatorData(resource=resource, pipeline=None))
        for resource in source.selected_resources.values()
    ]
    specs.append(
        dg.AssetSpec(
            key=[SOURCE_NAME, LEDGER_TABLE],
            group_name=RAW_GROUP,
            kinds={"dlt", settings.destination},
            description=(
                f"{settings.dataset}.{LEDGER_TABLE}: what each report unit of each load did "
                "(appended by every load, in the same load step as its data)."
            ),
            metadata={"dagster/table_name": f"{settings.dataset}.{LEDGER_TABLE}"},
        )
    )
    return specs


def build_raw_assets(
    settings: FleetSettings, partitions: dg.StaticPartitionsDefinition
) -> dg.AssetsDefinition:
    """The dlt multi-asset: one org partition per run, every selected table at once."""
    specs = raw_asset_specs(settings)

    @dg.multi_asset(
        name=RAW_ASSETS,
        specs=specs,
        partitions_def=partitions,
        can_subset=True,
        pool=settings.pool,
    )
    def close_raw_tables(
        context: dg.AssetExecutionContext, close: CloseFleet
    ) -> Iterator[dg.MaterializeResult]:
        yield from load_partition(context, close, settings.pool)

    return close_raw_tables


def _selected_tables(context: dg.AssetExecutionContext) -> Tuple[List[str], bool]:
    tables = [key.path[-1] for key in context.selected_asset_keys]
    every = {key.path[-1] for key in context.assets_def.keys}
    return [t for t in tables if t != LEDGER_TABLE], set(tables) == every


def warn_if_pool_unlimited(context: dg.AssetExecutionContext, pool: str) -> None:
    """Logs a warning when nothing keeps two writers of the destination apart."""
    try:
        storage = context.instance.event_log_storage
        if pool in storage.get_concurrency_keys():
            limit: Optional[int] = storage.get_concurrency_info(pool).slot_count
        else:
            limit = storage.get_pool_config().default_pool_limit
    except Exception:  # noqa: BLE001 - a storage without concurrency support
        limit = None
    if limit is None or limit > 1:
        context.log.warning(
            f"Concurrency pool {pool!r} has limit {limit}: partitions can write the destination "
            f"at once (DuckDB refuses a second writer; state could be overwritten). Set it "
            f"with `dagster instance concurrency set {pool} 1`."
        )


def load_partition(
    context: dg.AssetExecutionContext, close: CloseFleet, pool: str = DEFAULT_POOL
) -> Iterator[dg.MaterializeResult]:
    """Loads the selected tables of one org partition with the run ledger.

    The pipeline's local working directory is a cache: it is dropped and the state restored
    from the destination (the newest state of pipeline ``close`` holds every org's cursors),
    so a run on any machine continues where the last run of any partition left off.

    Raises:
        dagster.Failure: With the command line's one-line explanation when the load failed, or
            after the loaded tables' results when some reports were refused.
    """
    from close_reports.source import RunLog, close_source

    partition = context.partition_key
    warn_if_pool_unlimited(context, pool)
    tables, everything = _selected_tables(context)
    kwargs = close.source_kwargs(partition)
    pipeline = close.pipeline()
    pipeline.drop()
    pipeline.sync_destination()
    run_log = RunLog()
    try:
        source = close_source(run_log=run_log, **kwargs)
        if not everything:
            source = source.with_resources(*tables)
        seconds = load_with_ledger(
            pipeline,
            source,
            run_log,
            loader_file_format="parquet" if close.destination == "duckdb" else None,
        )
    except Exception as exc:
        message, _ = explain(exc)
        raise dg.Failure(f"Org {partition!r}: {' '.join(message.split())}") from exc
    failed = failed_reports(run_log)
    refused = {t for entry in run_log.failed for t in entry.tables}
    org_ids = sorted({e.org_id for e in run_log.entries if e.org_id})
    trace = pipeline.last_trace
    normalize = trace.last_normalize_info if trace else None
    row_counts = dict(normalize.row_counts) if normalize else {}
    load_info = trace.last_load_info if trace else None
    load_ids = list(load_info.loads_ids) if load_info else []
    for key in context.selected_asset_keys:
        table = key.path[-1]
        if table in refused:
            continue
        entries = [e for e in run_log.entries if table in e.tables]
        windows = [e for e in entries if e.first_window is not None]
        metadata: Dict[str, Any] = {
            "org_id": ", ".join(org_ids),
            "rows_loaded": row_counts.get(table, 0),
            "load_ids": ", ".join(load_ids),
            "requests": sum(e.stats.as_dict()["requests"] for e in entries),
            "retries": sum(e.stats.as_dict()["retries"] for e in entries),
            "windows": sum(e.windows for e in entries),
            "seconds": {name: round(value, 2) for name, value in seconds.items()},
        }
        if windows:
            metadata["first_window"] = min(str(e.first_window) for e in windows)
            metadata["last_window"] = max(str(e.last_window) for e in windows)
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
    if failed:
        error = PartialLoadError(failed, loaded=bool(run_log.loaded))
        raise dg.Failure(f"Org {partition!r}: {error}")


# ---------------------------------------------------------------- marts (dbt)


class CloseDbtTranslator(DagsterDbtTranslator):
    """dagster-dbt's keys (sources ``close/<table>``, models ``<schema>/<model>``), grouped by
    layer (``close_staging``, ``close_marts``)."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: Optional[DbtProject]
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] not in ("model", "seed", "snapshot"):
            return spec
        layer = "close_marts" if "marts" in props.get("fqn", []) else "close_staging"
        return spec.replace_attributes(group_name=layer)


def _project_files_newest(project_dir: Path) -> float:
    newest = 0.0
    for path in project_dir.rglob("*"):
        parts = set(path.relative_to(project_dir).parts)
        if parts & {"target", "logs", "dbt_packages"} or not path.is_file():
            continue
        newest = max(newest, path.stat().st_mtime)
    return newest


def dbt_executable() -> str:
    """The ``dbt`` next to this Python (the venv's, even when the venv is not activated)."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else "dbt"


def dbt_cli_resource(project: DbtProject) -> DbtCliResource:
    return DbtCliResource(
        project_dir=project,
        profiles_dir=str(project.profiles_dir),
        target=project.target,
        dbt_executable=dbt_executable(),
    )


def dbt_project(settings: FleetSettings) -> DbtProject:
    """The dbt project with a manifest: ``dbt parse`` runs when the manifest is missing,
    older than a project file, or was parsed for another target, vars or DuckDB file (a file
    lock keeps processes loading the code location at once from parsing together)."""
    from dbt.version import __version__ as dbt_version
    from filelock import FileLock

    project_dir = dbt_project_dir()
    target_path = settings.resolved_dbt_target_path()
    target_path.mkdir(parents=True, exist_ok=True)
    project = DbtProject(
        project_dir=project_dir,
        profiles_dir=project_dir,
        target=settings.dbt_target,
        target_path=target_path,
    )
    stamp = {
        "project_dir": str(project_dir),
        "target": settings.dbt_target,
        "vars": settings.dbt_vars,
        "env": settings.dbt_env(),
        "dbt": dbt_version,
    }
    stamp_path = target_path / PARSE_STAMP

    def fresh() -> bool:
        manifest = project.manifest_path
        return (
            manifest.exists()
            and stamp_path.exists()
            and json.loads(stamp_path.read_text()) == stamp
            and manifest.stat().st_mtime >= _project_files_newest(project_dir)
        )

    with FileLock(str(target_path / ".parse.lock")):
        if not fresh():
            with _environment(settings.dbt_env()):
                dbt_cli_resource(project).cli(
                    ["parse", "--quiet", "--vars", json.dumps(settings.dbt_vars)],
                    target_path=target_path,
                ).wait()
            stamp_path.write_text(json.dumps(stamp))
    return project


def build_marts_assets(settings: FleetSettings, project: DbtProject) -> dg.AssetsDefinition:
    """The dbt models as assets; ``dbt build`` also runs their tests as asset checks."""

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        name=MARTS_ASSETS,
        dagster_dbt_translator=CloseDbtTranslator(
            DagsterDbtTranslatorSettings(enable_source_tests_as_checks=True)
        ),
        pool=settings.pool,
    )
    def close_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        with _environment(settings.dbt_env()):  # the dbt process starts inside
            invocation = dbt.cli(
                ["build", "--vars", json.dumps(settings.dbt_vars)],
                context=context,
                target_path=settings.resolved_dbt_target_path(),
            )
        yield from invocation.stream()

    return close_marts


# ---------------------------------------------------------------- freshness


@dataclass(frozen=True)
class Freshness:
    """A dbt source freshness: warn / error after this long without a load."""

    warn_after: Optional[timedelta]
    error_after: Optional[timedelta]


_PERIODS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def _after(rule: Optional[Mapping[str, Any]]) -> Optional[timedelta]:
    if not rule or rule.get("count") is None or rule.get("period") is None:
        return None
    return int(rule["count"]) * _PERIODS[str(rule["period"])]


def source_freshness(manifest: Mapping[str, Any]) -> Dict[str, Freshness]:
    """Table -> freshness of every source table of ``close`` that has one (dbt resolves the
    source-level default and per-table overrides into the manifest)."""
    found = {}
    for node in manifest.get("sources", {}).values():
        if node.get("source_name") != SOURCE_NAME:
            continue
        rules = node.get("freshness") or {}
        freshness = Freshness(_after(rules.get("warn_after")), _after(rules.get("error_after")))
        if freshness.warn_after or freshness.error_after:
            found[node["name"]] = freshness
    return found


def judge(
    ages: Mapping[str, Optional[timedelta]], freshness: Freshness
) -> Tuple[bool, dg.AssetCheckSeverity, List[str]]:
    """Passed, severity and the partitions at fault, from each partition's time since its
    last load (``None``: never loaded, which counts as past ``error_after``)."""
    errors = [
        p
        for p, age in ages.items()
        if age is None or (freshness.error_after is not None and age > freshness.error_after)
    ]
    warnings = [
        p
        for p, age in ages.items()
        if p not in errors
        and age is not None
        and freshness.warn_after is not None
        and age > freshness.warn_after
    ]
    if errors:
        return False, dg.AssetCheckSeverity.ERROR, errors + warnings
    if warnings:
        return False, dg.AssetCheckSeverity.WARN, warnings
    return True, dg.AssetCheckSeverity.WARN, []


def build_freshness_checks(
    settings: FleetSettings, manifest: Mapping[str, Any], raw_keys: Set[dg.AssetKey]
) -> dg.AssetChecksDefinition:
    """One ``freshness`` check per raw table with a dbt source freshness, judged per org
    partition from Dagster's own record of its last successful load."""
    rules = {
        dg.AssetKey([SOURCE_NAME, table]): freshness
        for table, freshness in source_freshness(manifest).items()
        if dg.AssetKey([SOURCE_NAME, table]) in raw_keys
    }
    specs = [
        dg.AssetCheckSpec(
            "freshness",
            asset=key,
            description=(
                f"Every org partition loaded within {freshness.warn_after} (warn) / "
                f"{freshness.error_after} (error), as dbt's source freshness for {key.path[-1]}."
            ),
        )
        for key, freshness in rules.items()
    ]
    partitions = settings.partition_keys

    @dg.multi_asset_check(name=FRESHNESS_CHECKS, specs=specs, can_subset=True)
    def close_raw_freshness(
        context: dg.AssetCheckExecutionContext,
    ) -> Iterator[dg.AssetCheckResult]:
        now = datetime.now(timezone.utc)
        for check_key in context.selected_asset_check_keys:
            key = check_key.asset_key
            ages: Dict[str, Optional[timedelta]] = {}
            for partition in partitions:
                records = context.instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
                ).records
                ages[partition] = (
                    now - datetime.fromtimestamp(records[0].timestamp, timezone.utc)
                    if records
                    else None
                )
            passed, severity, late = judge(ages, rules[key])
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name="freshness",
                passed=passed,
                severity=severity,
                description=("every org loaded recently" if passed else f"late: {', '.join(late)}"),
                metadata={
                    "hours_since_load": {
                        p: None if age is None else round(age.total_seconds() / 3600, 2)
                        for p, age in ages.items()
                    },
                    "late_partitions": late,
                },
            )

    return close_raw_freshness


# ---------------------------------------------------------------- schedules and sensors


def build_daily_schedule(settings: FleetSettings, raw_job: Any) -> dg.ScheduleDefinition:
    """One load run per org partition at ``cron`` (the pool runs them one writer at a time)."""

    @dg.schedule(
        name="close_daily",
        cron_schedule=settings.cron,
        execution_timezone=settings.cron_timezone,
        job=raw_job,
        description="Loads every org partition once a day (today is never loaded).",
    )
    def close_daily(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
        tick = context.scheduled_execution_time
        day = tick.strftime("%Y-%m-%d") if tick else "manual"
        for partition in settings.partition_keys:
            yield dg.RunRequest(run_key=f"{partition}:{day}", partition_key=partition)

    return close_daily


def build_marts_sensor(raw_assets: dg.AssetsDefinition, marts_job: Any) -> dg.SensorDefinition:
    """Requests one ``close_marts`` run once new raw loads exist and none is pending."""
    raw_keys = set(raw_assets.keys)

    @dg.sensor(
        name="close_marts_after_loads",
        job=marts_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Builds the marts once per batch of loads, after the last one finished.",
    )
    def close_marts_after_loads(
        context: dg.SensorEvaluationContext,
    ) -> Iterator[dg.RunRequest | dg.SkipReason]:
        records = context.instance.get_asset_records(list(raw_keys))
        newest = max(
            (
                r.asset_entry.last_materialization_record.storage_id
                for r in records
                if r.asset_entry.last_materialization_record
            ),
            default=0,
        )
        if newest <= int(context.cursor or 0):
            yield dg.SkipReason("No raw table loaded since the last marts build.")
            return
        pending = [
            run
            for run in context.instance.get_runs(dg.RunsFilter(statuses=PENDING_RUN_STATUSES))
            if run.job_name == RAW_JOB or raw_keys & set(run.asset_selection or ())
        ]
        if pending:
            yield dg.SkipReason(f"Waiting for {len(pending)} load run(s) to finish.")
            return
        context.update_cursor(str(newest))
        yield dg.RunRequest(run_key=f"after-{newest}")

    return close_marts_after_loads


# ---------------------------------------------------------------- the code location


def build_definitions(settings: Optional[FleetSettings] = None) -> dg.Definitions:
    """Every definition of the code location, from ``settings`` (default: the config)."""
    settings = settings or FleetSettings.from_config()
    partitions = dg.StaticPartitionsDefinition(settings.partition_keys)
    raw = build_raw_assets(settings, partitions)
    project = dbt_project(settings)
    marts = build_marts_assets(settings, project)
    manifest = json.loads(project.manifest_path.read_text())
    freshness = build_freshness_checks(settings, manifest, set(raw.keys))
    raw_job = dg.define_asset_job(
        RAW_JOB,
        selection=dg.AssetSelection.assets(raw).without_checks(),  # dbt's run with the marts
        partitions_def=partitions,
        description="Load one org partition's raw tables (pick the org as the partition).",
    )
    marts_job = dg.define_asset_job(
        MARTS_JOB,
        selection=dg.AssetSelection.assets(marts),
        description="dbt build: staging views, marts and their tests (as asset checks).",
    )
    freshness_job = dg.define_asset_job(
        FRESHNESS_JOB,
        selection=dg.AssetSelection.checks(freshness),
        description="Check that every org partition of every raw table loaded recently.",
    )
    freshness_schedule = dg.ScheduleDefinition(
        name="close_freshness_hourly",
        cron_schedule="15 * * * *",
        execution_timezone=settings.cron_timezone,
        job=freshness_job,
    )
    return dg.Definitions(
        assets=[raw, marts],
        asset_checks=[freshness],
        jobs=[raw_job, marts_job, freshness_job],
        schedules=[build_daily_schedule(settings, raw_job), freshness_schedule],
        sensors=[build_marts_sensor(raw, marts_job)],
        resources={
            "close": CloseFleet.from_settings(settings),
            "dbt": dbt_cli_resource(project),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What ``dagster dev -m close_reports.dagster_definitions`` loads (lazily)."""
    return build_definitions()
