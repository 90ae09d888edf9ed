"""Where the command line loads: the dlt destination and pipeline for its options.

- ``make_pipeline(args)`` builds the ``close`` pipeline for ``--destination`` /
  ``--duckdb-path`` / ``--dataset``, with a local state bound to that destination
  (``bind_state``) and replace-disposition tables swapped in from staging.
- ``apply_destination_hints(source, args)`` rewrites the merge tables' write disposition where
  the destination cannot delete-insert (the filesystem destination with a table format).
- ``run_options(args)`` the keyword arguments of ``pipeline.run``.
- ``check_destination(args)`` refuses, before anything is read, a combination that cannot work:
  a plain filesystem load of merge tables, ``run`` without dbt or without a dbt target.

The DuckDB file is configured the way dlt does it: ``--duckdb-path``, else dlt's own setting
(``DESTINATION__DUCKDB__CREDENTIALS`` / ``[destination.duckdb] credentials`` in
``.dlt/config.toml``), else ``close.duckdb`` in the working directory. The file chosen is
recorded in dlt's local pipeline state, so ``dlt pipeline close info|drop|trace`` act on it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import stat
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from close_reports.failures import UsageError

PIPELINE_NAME = "close"
DEFAULT_DUCKDB = "close.duckdb"
TABLE_FORMATS = ("delta", "iceberg")

STATE_DESTINATION_KEY = "close_reports_destination"
"""Key in dlt's local state (``_local``, never sent to the destination) naming the destination
and dataset the local state belongs to."""
DUCKDB_STATE_KEY = "duckdb_database"
"""Key in dlt's local state that dlt itself reads as the DuckDB file of an attached pipeline
whose configuration names no absolute path (``dlt pipeline close info`` and friends)."""

DBT_ADAPTERS = {
    "duckdb": "dbt.adapters.duckdb",
    "motherduck": "dbt.adapters.duckdb",
    "postgres": "dbt.adapters.postgres",
    "bigquery": "dbt.adapters.bigquery",
    "snowflake": "dbt.adapters.snowflake",
}
"""The dbt adapter each destination's dbt target needs."""
DBT_EXTRAS = {"duckdb": "dbt", "motherduck": "dbt", "postgres": "postgres"}
"""The close-reports extra that installs each adapter."""


# ---------------------------------------------------------------- the DuckDB file


def configured_duckdb_path() -> Optional[str]:
    """dlt's own DuckDB setting (env ``DESTINATION__DUCKDB__CREDENTIALS`` or
    ``[destination.duckdb] credentials`` in ``.dlt/config.toml`` / ``secrets.toml``)."""
    import dlt

    value: Any = None
    for accessor in (dlt.secrets, dlt.config):
        try:
            value = accessor.get("destination.duckdb.credentials")
        except Exception:  # a value of another shape: dlt reports it when it resolves it
            value = None
        if value:
            break
    if isinstance(value, dict):
        value = value.get("database")
    if not isinstance(value, str) or not value or value in (":memory:", ":pipeline:"):
        return None
    return value.removeprefix("duckdb:///")


def resolve_duckdb_path(option: Optional[str]) -> Path:
    """``--duckdb-path``, else dlt's DuckDB setting, else ``close.duckdb``; absolute."""
    return Path(option or configured_duckdb_path() or DEFAULT_DUCKDB).expanduser().resolve()


def check_duckdb_file(path: Path) -> None:
    """Fails before any request when the DuckDB file cannot be written, saying why: a missing
    directory, a read-only file, a file that is not a DuckDB database (or is from a newer
    DuckDB), or one locked by another process."""
    import duckdb

    if not path.exists():
        if not path.parent.is_dir():
            raise UsageError(
                f"--duckdb-path {path}: the directory {path.parent} does not exist. Create it, "
                "or choose another path."
            )
        if not os.access(path.parent, os.W_OK):
            raise UsageError(
                f"--duckdb-path {path}: the directory {path.parent} is not writable. Choose a "
                "path in a writable directory."
            )
        return
    if path.is_dir():
        raise UsageError(f"--duckdb-path {path} is a directory, not a DuckDB file.")
    mode = path.stat().st_mode
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(path, os.W_OK):
        raise UsageError(
            f"The DuckDB file {path} is read-only (mode {stat.filemode(mode)}): make it writable "
            f"(chmod u+w {path}), or load into another file with --duckdb-path."
        )
    try:
        duckdb.connect(str(path)).close()
    except duckdb.Error as exc:
        raise UsageError(duckdb_open_error(path, exc)) from exc


def duckdb_open_error(path: Path, exc: BaseException) -> str:
    """What a failure to open ``path`` means, in one actionable sentence."""
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if "Could not set lock" in text or "Conflicting lock" in text:
        return (
            f"The DuckDB file {path} is locked by another process (a DuckDB CLI, a notebook, a "
            "BI tool or another pipeline run): close it, or load into another file with "
            f"--duckdb-path. ({first})"
        )
    if "not a valid DuckDB database file" in text or "Unknown file" in text:
        return (
            f"{path} is not a DuckDB database file (it exists but holds something else): move "
            f"it away or delete it, or load into another file with --duckdb-path. ({first})"
        )
    if "newer version of DuckDB" in text or "storage version" in text.lower():
        return (
            f"The DuckDB file {path} was written by a newer DuckDB than this one "
            f"(duckdb {_duckdb_version()}): load into another file with --duckdb-path. ({first})"
        )
    if "Permission denied" in text or "Read-only file system" in text:
        return (
            f"The DuckDB file {path} cannot be written (permission denied or a read-only file "
            f"system): load into another file with --duckdb-path. ({first})"
        )
    return f"Cannot open the DuckDB file {path}: {first}"


def _duckdb_version() -> str:
    import duckdb

    return str(duckdb.__version__)


# ---------------------------------------------------------------- destinations


def destination_factory(args: argparse.Namespace) -> Any:
    """The dlt destination for ``--destination`` (a DuckDB file for ``duckdb``)."""
    import dlt
    from dlt.common.destination.exceptions import UnknownDestinationModule
    from dlt.common.destination.reference import Destination

    if args.destination == "duckdb":
        factory: Any = dlt.destinations.duckdb(
            credentials=str(resolve_duckdb_path(args.duckdb_path))
        )
    else:
        try:
            factory = Destination.from_reference(args.destination)
        except (UnknownDestinationModule, ImportError, ValueError) as exc:
            raise UsageError(
                f"Unknown or unavailable destination {args.destination!r}: use a dlt destination "
                "name such as duckdb, postgres, motherduck, bigquery, snowflake, filesystem "
                "(install its extra, e.g. pip install 'close-reports[postgres]'). "
                f"({str(exc).splitlines()[0]})"
            ) from exc
    strategy = replace_strategy(factory, table_format(args))
    if strategy:
        factory.config_params["replace_strategy"] = strategy
    return factory


def table_format(args: argparse.Namespace) -> Optional[str]:
    """``--table-format`` (only meaningful with the filesystem destination)."""
    return getattr(args, "table_format", None) or None


def replace_strategy(factory: Any, fmt: Optional[str] = None) -> Optional[str]:
    """``insert-from-staging`` where the destination supports it: replace-disposition tables
    are loaded into the staging dataset and copied over in one transaction per table, so a
    reader never sees them empty mid-load. None keeps the destination's default."""
    from dlt.common.destination.utils import resolve_replace_strategy

    caps = factory.capabilities()
    table: Any = {"name": "_probe", "table_format": fmt, "columns": {}}
    strategy = resolve_replace_strategy(table, "insert-from-staging", caps)
    return str(strategy) if strategy else None


def merge_strategy(factory: Any, fmt: Optional[str] = None) -> Optional[str]:
    """The merge strategy the merge tables get on this destination: ``delete-insert`` where
    supported (the source's own), else ``upsert``; None when the destination cannot merge."""
    caps = factory.capabilities()
    supported: Sequence[str] = caps.supported_merge_strategies or []
    if caps.merge_strategies_selector:
        supported = caps.merge_strategies_selector(
            supported, table_schema={"name": "_probe", "table_format": fmt, "columns": {}}
        )
    for strategy in ("delete-insert", "upsert"):
        if strategy in supported:
            return strategy
    return None


def _is_merge(disposition: Any) -> bool:
    if isinstance(disposition, dict):
        return bool(disposition.get("disposition") == "merge")
    return bool(disposition == "merge")


def merge_tables(source: Any) -> List[str]:
    """The selected resources of ``source`` written with ``merge``."""
    return [
        name
        for name, resource in source.selected_resources.items()
        if _is_merge(resource.write_disposition)
    ]


def apply_destination_hints(source: Any, args: argparse.Namespace, factory: Any = None) -> Any:
    """Fits the source's write dispositions to the destination, from outside the source.

    Where the destination cannot ``delete-insert`` (the filesystem destination with
    ``--table-format delta|iceberg``), merge tables are written with ``upsert`` on their
    primary key instead, and any ``merge_key`` is dropped (upsert cannot delete a window's
    partition; see docs/decisions.md). A destination that cannot merge at all (plain files)
    is refused with a message naming ``--table-format delta``. Returns ``source``.
    """
    factory = factory or destination_factory(args)
    fmt = table_format(args)
    merging = merge_tables(source)
    if not merging:
        return source
    strategy = merge_strategy(factory, fmt)
    if strategy is None:
        raise UsageError(_no_merge_message(args, merging))
    if strategy == "delete-insert":
        return source
    for name in merging:
        resource = source.resources[name]
        resource.apply_hints(
            write_disposition={"disposition": "merge", "strategy": strategy}, merge_key=""
        )
    return source


def _no_merge_message(args: argparse.Namespace, tables: Sequence[str]) -> str:
    return (
        f"The {args.destination} destination cannot merge, so rerunning would duplicate the rows "
        f"of {len(tables)} report tables ({', '.join(sorted(tables)[:3])}, ...): load them as "
        "Delta or Iceberg tables with --table-format delta (needs `pip install "
        "'close-reports[delta]'`) or --table-format iceberg, or load only the replace tables "
        "with --resources."
    )


def run_options(args: argparse.Namespace) -> Dict[str, Any]:
    """Keyword arguments of ``pipeline.run`` for the options."""
    options: Dict[str, Any] = {}
    if args.destination == "duckdb":
        options["loader_file_format"] = "parquet"
    fmt = table_format(args)
    if fmt:
        options["table_format"] = fmt
    if getattr(args, "full_refresh", False):
        options["refresh"] = "drop_sources"
    return options


# ---------------------------------------------------------------- dbt


def dbt_profiles_file() -> Path:
    from close_reports.close_pipeline import dbt_project_dir

    return Path(dbt_project_dir()) / "profiles.yml"


def dbt_targets() -> List[str]:
    """The targets of the ``close_reports`` profile in the shipped ``profiles.yml``."""
    import yaml  # type: ignore[import-untyped, unused-ignore]  # a dependency of dlt and dbt

    profiles = yaml.safe_load(dbt_profiles_file().read_text()) or {}
    return sorted((profiles.get("close_reports") or {}).get("outputs") or {})


def dbt_target(args: argparse.Namespace) -> str:
    """The dbt target for the destination: its name (``duckdb``, ``postgres``, ...)."""
    return str(args.destination)


def check_dbt(args: argparse.Namespace) -> None:
    """Fails (before anything is loaded) when dbt cannot build on this destination: dbt or its
    adapter is not installed, or ``profiles.yml`` has no target for it."""
    target = dbt_target(args)
    if target not in dbt_targets():
        raise UsageError(
            f"dbt has no target for the {args.destination} destination in {dbt_profiles_file()} "
            f"(targets: {', '.join(dbt_targets())}): add one (templates for BigQuery and "
            "Snowflake are in that file), or run `close-pipeline load` and build the dbt "
            "project yourself."
        )
    adapter = DBT_ADAPTERS.get(target, f"dbt.adapters.{target}")
    if importlib.util.find_spec("dbt") is None or not _has_module(adapter):
        extra = DBT_EXTRAS.get(target)
        install = (
            f"pip install 'close-reports[{extra}]'"
            if extra
            else f"pip install 'close-reports[dbt]' dbt-{target}"
        )
        raise UsageError(
            f"`close-pipeline {args.command}` builds the marts with dbt, which is not installed "
            f"here ({adapter} is missing): {install} (in a checkout: make setup), or run "
            "`close-pipeline load` for the raw tables only."
        )


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check_destination(args: argparse.Namespace) -> None:
    """Refuses, before any request, options that cannot work together."""
    fmt = table_format(args)
    if fmt and args.destination != "filesystem":
        raise UsageError(
            f"--table-format {fmt} applies to the filesystem destination only "
            f"(--destination {args.destination} has its own tables)."
        )
    if args.destination == "duckdb":
        check_duckdb_file(resolve_duckdb_path(args.duckdb_path))
    if args.command == "run":
        check_dbt(args)
    merging = _selected_merge_tables(args)
    if merging and merge_strategy(destination_factory(args), fmt) is None:
        raise UsageError(_no_merge_message(args, merging))


def _selected_merge_tables(args: argparse.Namespace) -> List[str]:
    """The merge tables among ``--resources`` (all tables without it), from the source's
    settings; the check on the built source (``apply_destination_hints``) is the final one."""
    try:
        from close_reports.source.settings import TABLES, write_disposition
    except ImportError:  # pragma: no cover - the source's settings moved
        return []
    option = getattr(args, "resources", None) or ""
    names = [n.strip() for n in option.split(",") if n.strip()] or list(TABLES)
    return [n for n in names if n in TABLES and _is_merge(write_disposition(n))]


# ---------------------------------------------------------------- the pipeline and its state


def pipelines_dir() -> Path:
    """dlt's directory of pipeline working dirs (``DLT_DATA_DIR``/pipelines, ~/.dlt/pipelines,
    /var/dlt/pipelines for root)."""
    from dlt.common.pipeline import get_dlt_pipelines_dir

    return Path(get_dlt_pipelines_dir())


def check_local_state(working_dir: Path) -> None:
    """Fails with how to reset it when dlt's local state of the pipeline cannot be read."""
    files = [working_dir / "state.json", *sorted((working_dir / "schemas").glob("*.json"))]
    for path in files:
        if not path.is_file():
            continue
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"dlt's local state of pipeline {PIPELINE_NAME} is corrupt: {path} cannot be "
                f"read ({exc}). Reset it with `rm -rf {working_dir}` (or `make clean`): the next "
                "run restores the state from the destination."
            ) from exc


def destination_identity(pipeline: Any) -> str:
    """``<type>:<location>/<dataset>``: two values differ exactly when two loads would write
    different tables (another DuckDB file, database, bucket or dataset)."""
    client = pipeline.destination_client()
    config = client.config
    try:
        location = config.data_location()
    except Exception:  # a destination that cannot say where its data is: its name
        location = None
    if not location:
        location = config.destination_name or config.destination_type
    return f"{config.destination_type}:{location}/{pipeline.dataset_name}"


def bind_state(pipeline: Any) -> Any:
    """Binds the pipeline's local state to its destination; returns the pipeline to use.

    dlt keeps one working dir per pipeline name, and restores state from the destination only
    when the destination's is newer. Loading ``close`` into another DuckDB file (or Postgres
    database, dataset, bucket) would then reuse the first one's cursor and skip days. So the
    local state records which destination it belongs to; when that is not this one, the local
    state is dropped, and dlt's run restores it from this destination (or starts fresh when
    it has none).
    """
    identity = destination_identity(pipeline)
    try:
        bound = pipeline.get_local_state_val(STATE_DESTINATION_KEY)
    except KeyError:
        bound = None
    if bound != identity and (bound is not None or not pipeline.first_run):
        pipeline = pipeline.drop()
    if bound != identity:
        pipeline.set_local_state_val(STATE_DESTINATION_KEY, identity)
    if pipeline.destination.destination_type.rsplit(".", 1)[-1] == "duckdb":
        database = pipeline.destination_client().config.credentials.database
        pipeline.set_local_state_val(DUCKDB_STATE_KEY, database)
    return pipeline


def make_pipeline(args: argparse.Namespace, bind: bool = True) -> Any:
    """The ``close`` pipeline for the options, its local state bound to the destination."""
    import dlt

    factory = destination_factory(args)
    check_local_state(pipelines_dir() / PIPELINE_NAME)
    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE_NAME, destination=factory, dataset_name=args.dataset
    )
    return bind_state(pipeline) if bind else pipeline
