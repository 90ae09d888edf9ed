"""One load of the Close source with its run ledger: extract, then the ledger, then normalize
and load both packages in the same load step.

dlt's ``pipeline.run`` would do extract + normalize + load of the data only. Here the ledger
(``close_raw.run_ledger``: what each report unit read, requested and whether it loaded) is
extracted right after the data, with the data package's load id as ``run_id``, so it lands
in the same load step; when the extract fails, the ledger still lands and names the failure.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, suppress
from typing import Any, Dict, Iterator, Optional

import dlt
from dlt.common import logger

from close_reports.failures import causes, interrupted
from close_reports.source import memory
from close_reports.source.ledger import RunLog, ledger_resource
from close_reports.source.migrate import add_segment_column


def load_with_ledger(
    pipeline: dlt.Pipeline,
    source: Any,
    run_log: RunLog,
    **options: Any,
) -> Dict[str, float]:
    """Extracts ``source``, then its ledger, then normalizes and loads everything.

    ``options`` go to ``pipeline.extract`` (``loader_file_format``, ``table_format``,
    ``refresh``: the ledger is extracted without ``refresh``).

    Returns:
        Seconds per step (extract, normalize, load).

    Raises:
        Whatever the extract raised (after the ledger is loaded), or the load's failure.
    """
    seconds: Dict[str, float] = {}
    started = time.monotonic()
    if pipeline.config.restore_from_destination:
        pipeline.sync_destination()  # as pipeline.run does: state and schema from the destination
    add_segment_column(pipeline)  # tables of an earlier version: segment = '_all'

    failure: Optional[BaseException] = None
    run_id = f"{time.time():.6f}"
    try:
        info = pipeline.extract(source, **options)
        run_id = info.loads_ids[-1] if info.loads_ids else run_id
    except Exception as exc:  # the ledger still lands, then the error goes on
        if interrupted(exc) is not None:
            raise  # Ctrl-C: stop now (dlt wraps the KeyboardInterrupt in its step error)
        failure = exc
    seconds["extract"] = time.monotonic() - started
    memory.release()  # what extract freed, before DuckDB takes its share
    if run_log.entries:
        ledger_options = {k: v for k, v in options.items() if k != "refresh"}
        pipeline.extract(ledger_resource(run_log, run_id), **ledger_options)
    step = time.monotonic()
    pipeline.normalize()
    seconds["normalize"] = time.monotonic() - step
    step = time.monotonic()
    load_within_memory_limit(pipeline)
    memory.release()
    seconds["load"] = time.monotonic() - step
    if failure is not None:
        raise failure
    return seconds


DUCKDB_LOAD_MEMORY_LIMIT = 80 * 2**20
"""DuckDB's memory limit in the load step, in bytes, for a database of up to half that size:
a backfill's memory does not grow with the days it reads. A load that runs out of it is
loaded again without it (``load_within_memory_limit``)."""

DUCKDB_LOAD_MEMORY_PER_DATABASE_BYTE = 2
"""A larger database gets this many times its size: dlt's merge into a large table deletes
with a join DuckDB runs 3-4x slower when it has less (docs/decisions.md)."""

DUCKDB_LOAD_SETTINGS: Dict[str, Any] = {
    "threads": 1,
    "preserve_insertion_order": False,
    "wal_autocheckpoint_entries": 1,
}
"""DuckDB's settings while the database is kept open (``duckdb_kept_open``): one thread per
statement (each thread buffers row groups of its own), appends in any order, and a checkpoint
after each commit (what a job wrote becomes compressed blocks DuckDB may evict, instead of
piling up until the end). A ``global_config`` of dlt's DuckDB credentials overrides them (dlt
sets it on each job's connection)."""


def load_within_memory_limit(pipeline: dlt.Pipeline) -> None:
    """``pipeline.load()`` with DuckDB kept open under its load memory limit
    (``load_memory_limit``); when DuckDB runs out of it, the same pending package is loaded
    again without the limit.

    dlt keeps the package: a job DuckDB refused is retried, the finished ones are not redone,
    and staging tables are truncated once per package (docs/decisions.md).
    """
    try:
        with duckdb_kept_open(pipeline, memory_limit=DUCKDB_LOAD_MEMORY_LIMIT):
            pipeline.load()
    except Exception as exc:  # noqa: BLE001 - anything else is re-raised as it was
        if not out_of_duckdb_memory(exc):
            raise
        logger.warning(
            "DuckDB ran out of the load step's memory limit; loading the same package again "
            "without the limit (this run's memory is not bounded)"
        )
        with duckdb_kept_open(pipeline):
            pipeline.load()


def out_of_duckdb_memory(exc: BaseException) -> bool:
    """Whether DuckDB's memory limit (or the database it invalidated over it) is behind ``exc``."""
    import duckdb

    for cause in causes(exc):
        if isinstance(cause, duckdb.OutOfMemoryException):
            return True
        if isinstance(cause, duckdb.Error) and "database has been invalidated" in str(cause):
            return True
    return False


def load_memory_limit(floor: int, database_bytes: int) -> str:
    """The load step's DuckDB memory limit for a database file of ``database_bytes``."""
    return f"{max(floor, DUCKDB_LOAD_MEMORY_PER_DATABASE_BYTE * database_bytes) // 2**20}MiB"


@contextmanager
def duckdb_kept_open(pipeline: dlt.Pipeline, memory_limit: Optional[int] = None) -> Iterator[None]:
    """Keeps a DuckDB destination's database open for the load step, with
    ``DUCKDB_LOAD_SETTINGS`` and a memory limit of at least ``memory_limit`` bytes
    (``load_memory_limit``; none when None). A no-op for other destinations.

    dlt opens the database for each load job and closes it when no job holds it; every
    close tears the database instance down (a checkpoint, DuckDB's caches dropped) and every
    open builds it again (a third of a 120-day load's time went there). A connection held
    here keeps the one instance alive between jobs; dlt's connections share it (DuckDB
    shares one instance per file within a process), so the settings apply to them too. A
    checkpoint comes first, before any limit: what DuckDB recovered from a killed run's
    write-ahead log is written out with all the memory it needs.
    """
    if getattr(pipeline.destination, "destination_name", None) != "duckdb":
        yield
        return
    import duckdb

    try:
        client = pipeline.sql_client()
        client.open_connection()
    except Exception:  # noqa: BLE001 - no schema or dataset yet: dlt's load reports it
        yield
        return
    try:
        connection = client.native_connection
        with suppress(duckdb.TransactionException):  # another writer: its commit checkpoints
            connection.execute("CHECKPOINT")
        for name, value in DUCKDB_LOAD_SETTINGS.items():
            connection.execute(f"SET GLOBAL {name} = ?", [value])
        if memory_limit is None:  # the instance may outlive this block: no limit left behind
            connection.execute("RESET GLOBAL memory_limit")
        else:
            size = connection.execute("pragma database_size").fetchall()
            database_bytes = sum(block_size * blocks for _, _, block_size, blocks, *_ in size)
            limit = load_memory_limit(memory_limit, database_bytes)
            connection.execute("SET GLOBAL memory_limit = ?", [limit])
        yield
    finally:
        client.close_connection()
